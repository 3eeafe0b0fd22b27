//! Which run ids this process is running, kept in step with the ledger. A re-sent command
//! (the controller's backoff, or its re-send when the agent says hello after a reconnect) can
//! arrive while the first copy is still being claimed: the claim and the in-flight mark are
//! one step under one lock, so the second copy always sees either the run going or its kept
//! result, never "taken before and gone" (seen once in the 1,000-agent test before this).

use super::ledger::Claim;
use super::store::{FleetStore, StoreError};
use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};
use warden_fleet_wire::{RunId, UnixMillis};

/// What a command's run id means to this agent now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Taken {
    /// First time: recorded in the ledger and marked in flight; run it.
    New,
    /// Taken before.
    Seen(Seen),
}

/// A run id taken before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Finished: its kept final result.
    Kept(Vec<u8>),
    /// Being run by this process.
    Running,
    /// In the ledger without a result and not running here: the agent stopped mid-run.
    Gone,
}

#[derive(Debug, Default)]
pub(crate) struct InFlight {
    runs: Mutex<HashSet<RunId>>,
}

impl InFlight {
    /// Claim `run` in the ledger and, when new, mark it in flight, as one step.
    pub fn claim(
        &self,
        store: &FleetStore,
        run: &RunId,
        keep_until: UnixMillis,
        now: UnixMillis,
    ) -> Result<Taken, StoreError> {
        let mut runs = self.lock();
        Ok(match store.claim(run, keep_until, now)? {
            Claim::New => {
                runs.insert(run.clone());
                Taken::New
            }
            Claim::Seen {
                result: Some(result),
            } => Taken::Seen(Seen::Kept(result)),
            Claim::Seen { result: None } if runs.contains(run) => Taken::Seen(Seen::Running),
            Claim::Seen { result: None } => Taken::Seen(Seen::Gone),
        })
    }

    /// The run is over: its result is in the ledger, or its claim was released.
    pub fn done(&self, run: &RunId) {
        self.lock().remove(run);
    }

    fn lock(&self) -> MutexGuard<'_, HashSet<RunId>> {
        // The set holds no invariant a panic could break halfway.
        self.runs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::outbox::{OutboxKind, Outgoing};

    fn run(n: u8) -> RunId {
        RunId::from_parts(UnixMillis(1_764_590_000_000), [n; 10])
    }

    #[test]
    fn a_second_copy_claimed_right_after_the_first_sees_it_running_then_its_result() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FleetStore::open(&dir.path().join("s.sqlite")).expect("open");
        let in_flight = InFlight::default();
        let claim = |n| in_flight.claim(&store, &run(n), UnixMillis(10), UnixMillis(1));
        assert_eq!(claim(1).expect("first"), Taken::New);
        // Nothing else happened between the two claims: the first is already marked.
        assert_eq!(claim(1).expect("second"), Taken::Seen(Seen::Running));
        let result = Outgoing {
            kind: OutboxKind::Result,
            subject: "fleet.res.acme.U".into(),
            msg_id: "R.U".into(),
            payload: b"{\"done\":true}".to_vec(),
        };
        store
            .finish(&run(1), &result, 10, UnixMillis(2))
            .expect("finish");
        in_flight.done(&run(1));
        assert_eq!(
            claim(1).expect("third"),
            Taken::Seen(Seen::Kept(result.payload))
        );
    }

    #[test]
    fn a_claim_left_by_a_stopped_process_is_gone_not_running() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FleetStore::open(&dir.path().join("s.sqlite")).expect("open");
        let before = InFlight::default();
        let at = |f: &InFlight| f.claim(&store, &run(2), UnixMillis(10), UnixMillis(1));
        assert_eq!(at(&before).expect("claim"), Taken::New);
        // A new process: the ledger remembers the id, nothing runs it.
        assert_eq!(
            at(&InFlight::default()).expect("claim"),
            Taken::Seen(Seen::Gone)
        );
    }
}
