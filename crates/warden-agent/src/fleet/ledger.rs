//! The ledger of run ids: exactly-once execution over an at-least-once transport. A command's
//! run id is recorded (durably) before anything runs; a run id found here is never run again.
//! The run's final result is kept beside it, so a re-sent command gets the same result
//! re-published (same `Nats-Msg-Id`) rather than a second run. Ids are kept until
//! `Command::keep_in_ledger_until` (the command's expiry plus the clock-skew allowance): after
//! that a re-send is refused as expired anyway, so the ledger is bounded by the commands of the
//! last week ([`warden_fleet_wire::command::MAX_COMMAND_LIFETIME_MS`]).

use super::outbox::{self, Outgoing};
use super::store::{FleetStore, StoreError};
use rusqlite::{OptionalExtension as _, params};
use warden_fleet_wire::{RunId, UnixMillis};

/// What the ledger says about a command's run id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First time: recorded now; run it.
    New,
    /// Seen before; here is its final result if it has one (else it is in flight).
    Seen { result: Option<Vec<u8>> },
}

impl FleetStore {
    /// Record `run` unless it is known; say which.
    pub fn claim(
        &self,
        run: &RunId,
        keep_until: UnixMillis,
        now: UnixMillis,
    ) -> Result<Claim, StoreError> {
        self.transaction(|tx| {
            let seen: Option<Option<Vec<u8>>> = tx
                .prepare_cached("SELECT result FROM ledger WHERE run = ?1")?
                .query_row(params![run.as_str()], |r| r.get(0))
                .optional()?;
            if let Some(result) = seen {
                return Ok(Claim::Seen { result });
            }
            tx.prepare_cached(
                "INSERT INTO ledger (run, accepted_ms, keep_until_ms) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![
                run.as_str(),
                now.as_millis(),
                keep_until.as_millis()
            ])?;
            Ok(Claim::New)
        })
    }

    /// Forget a claim that ran nothing and must stay retryable (the agent was busy).
    pub fn release(&self, run: &RunId) -> Result<(), StoreError> {
        self.transaction(|tx| {
            tx.execute(
                "DELETE FROM ledger WHERE run = ?1 AND result IS NULL",
                params![run.as_str()],
            )
        })
        .map(|_| ())
    }

    /// The run's final result: kept in the ledger and queued in the outbox, in one
    /// transaction. Returns the events dropped to keep the outbox's cap.
    pub fn finish(
        &self,
        run: &RunId,
        result: &Outgoing,
        cap: usize,
        now: UnixMillis,
    ) -> Result<u64, StoreError> {
        self.transaction(|tx| {
            tx.prepare_cached("UPDATE ledger SET result = ?2 WHERE run = ?1")?
                .execute(params![run.as_str(), result.payload])?;
            outbox::insert(tx, result, cap, now.as_millis())
        })
    }

    /// Run ids accepted without a final result: in flight when the agent last stopped.
    pub fn unfinished(&self) -> Result<Vec<RunId>, StoreError> {
        let ids = self.transaction(|tx| {
            let mut stmt =
                tx.prepare("SELECT run FROM ledger WHERE result IS NULL ORDER BY accepted_ms")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
        })?;
        ids.into_iter()
            .map(|id| RunId::parse(id).map_err(|e| self.corrupt(e.to_string())))
            .collect()
    }

    /// Forget ids past their keep-until time; returns how many.
    pub fn prune_ledger(&self, now: UnixMillis) -> Result<usize, StoreError> {
        self.transaction(|tx| {
            tx.execute(
                "DELETE FROM ledger WHERE keep_until_ms < ?1 AND result IS NOT NULL",
                params![now.as_millis()],
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::outbox::OutboxKind;

    fn run(n: u8) -> RunId {
        RunId::from_parts(UnixMillis(1_764_590_000_000), [n; 10])
    }

    #[test]
    fn a_run_id_is_claimed_once_and_its_result_survives_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fleet.sqlite");
        let result = Outgoing {
            kind: OutboxKind::Result,
            subject: "fleet.res.acme.U".into(),
            msg_id: "R.U".into(),
            payload: b"{\"done\":true}".to_vec(),
        };
        {
            let store = FleetStore::open(&path).expect("open");
            assert_eq!(
                store
                    .claim(&run(1), UnixMillis(10), UnixMillis(1))
                    .expect("claim"),
                Claim::New
            );
            assert_eq!(
                store
                    .claim(&run(1), UnixMillis(10), UnixMillis(2))
                    .expect("claim"),
                Claim::Seen { result: None }
            );
            assert_eq!(store.unfinished().expect("unfinished"), [run(1)]);
            store
                .finish(&run(1), &result, 10, UnixMillis(3))
                .expect("finish");
        }
        let store = FleetStore::open(&path).expect("reopen");
        assert_eq!(
            store
                .claim(&run(1), UnixMillis(10), UnixMillis(4))
                .expect("claim"),
            Claim::Seen {
                result: Some(result.payload.clone())
            }
        );
        assert!(store.unfinished().expect("unfinished").is_empty());
        assert_eq!(
            store.oldest().expect("outbox").map(|q| q.item),
            Some(result)
        );
        // Kept until its time, then forgotten.
        assert_eq!(store.prune_ledger(UnixMillis(10)).expect("prune"), 0);
        assert_eq!(store.prune_ledger(UnixMillis(11)).expect("prune"), 1);
        assert_eq!(
            store
                .claim(&run(1), UnixMillis(20), UnixMillis(12))
                .expect("claim"),
            Claim::New
        );
    }

    #[test]
    fn a_released_claim_can_be_claimed_again_but_a_finished_one_cannot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FleetStore::open(&dir.path().join("s.sqlite")).expect("open");
        assert_eq!(
            store
                .claim(&run(2), UnixMillis(10), UnixMillis(1))
                .expect("c"),
            Claim::New
        );
        store.release(&run(2)).expect("release");
        assert_eq!(
            store
                .claim(&run(2), UnixMillis(10), UnixMillis(1))
                .expect("c"),
            Claim::New
        );
    }
}
