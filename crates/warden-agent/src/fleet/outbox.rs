//! The durable outbox: every result and event is written here before it is published, and
//! leaves only when the server has it (a JetStream PubAck for results; a flushed publish on a
//! live connection for events, which travel on core NATS). The publisher takes entries oldest
//! first, one at a time, so they reach the fleet in the order they happened, after a restart
//! or days offline too.
//!
//! Bounded: past its cap (`[fleet] outbox-cap`) the outbox drops its **oldest events** to make
//! room, and the caller audits how many (`fleet.outbox-events-dropped`). **Results are never
//! dropped**: a result is what the NOC waits for, and there is at most one final and one
//! `running` result per run id the ledger accepted, so results cannot outgrow the ledger. A new
//! event that finds the outbox full of results only is dropped itself.

use super::store::{FleetStore, StoreError};
use rusqlite::{OptionalExtension as _, params};

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxKind {
    /// A run's result: JetStream, retried until PubAck; never dropped.
    Result,
    /// An automation event: core NATS; the oldest go first when the outbox is full.
    Event,
}

impl OutboxKind {
    fn as_str(self) -> &'static str {
        match self {
            OutboxKind::Result => "result",
            OutboxKind::Event => "event",
        }
    }

    fn parse(s: &str) -> Option<OutboxKind> {
        match s {
            "result" => Some(OutboxKind::Result),
            "event" => Some(OutboxKind::Event),
            _ => None,
        }
    }
}

/// A message waiting to be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub kind: OutboxKind,
    pub subject: String,
    /// `Nats-Msg-Id`: the stream (and the controller) deduplicate re-sends on it.
    pub msg_id: String,
    pub payload: Vec<u8>,
}

/// An entry of the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub id: i64,
    pub item: Outgoing,
}

/// Insert `item` into the outbox within `tx`, keeping the cap; returns how many events were
/// dropped (the new one included, if it was an event with no older event to make room).
pub(crate) fn insert(
    tx: &rusqlite::Transaction<'_>,
    item: &Outgoing,
    cap: usize,
    now_ms: i64,
) -> rusqlite::Result<u64> {
    let count: i64 = tx
        .prepare_cached("SELECT COUNT(*) FROM outbox")?
        .query_row([], |r| r.get(0))?;
    let cap = i64::try_from(cap).unwrap_or(i64::MAX);
    let mut dropped = 0u64;
    let over = count + 1 - cap;
    if over > 0 {
        let removed = tx.execute(
            "DELETE FROM outbox WHERE id IN
             (SELECT id FROM outbox WHERE kind = 'event' ORDER BY id LIMIT ?1)",
            params![over],
        )?;
        dropped = u64::try_from(removed).unwrap_or(0);
        if item.kind == OutboxKind::Event && i64::try_from(removed).unwrap_or(0) < over {
            return Ok(dropped + 1);
        }
    }
    tx.prepare_cached(
        "INSERT INTO outbox (kind, subject, msg_id, payload, queued_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        item.kind.as_str(),
        item.subject,
        item.msg_id,
        item.payload,
        now_ms
    ])?;
    Ok(dropped)
}

/// An outbox row as stored: id, kind, subject, msg id, payload.
type Row = (i64, String, String, String, Vec<u8>);

fn oldest_row(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<Option<Row>> {
    tx.prepare_cached("SELECT id, kind, subject, msg_id, payload FROM outbox ORDER BY id LIMIT 1")?
        .query_row([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()
}

impl FleetStore {
    /// Queue one message; returns the number of events dropped to keep the cap.
    pub fn enqueue(&self, item: &Outgoing, cap: usize, now_ms: i64) -> Result<u64, StoreError> {
        self.transaction(|tx| insert(tx, item, cap, now_ms))
    }

    /// Queue an event built with the next event sequence number (per agent, from 1, never
    /// reused: the counter is stored with the outbox). `build` failing queues nothing.
    pub fn enqueue_event(
        &self,
        cap: usize,
        now_ms: i64,
        build: impl FnOnce(u64) -> Result<Outgoing, String>,
    ) -> Result<u64, StoreError> {
        let mut failure = None;
        let dropped = self.transaction(|tx| {
            let last: i64 = tx
                .query_row(
                    "SELECT value FROM counters WHERE name = 'event_seq'",
                    [],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0);
            let seq = last + 1;
            match build(u64::try_from(seq).unwrap_or(0)) {
                Ok(item) => {
                    tx.execute(
                        "INSERT INTO counters (name, value) VALUES ('event_seq', ?1)
                         ON CONFLICT(name) DO UPDATE SET value = ?1",
                        params![seq],
                    )?;
                    insert(tx, &item, cap, now_ms)
                }
                Err(e) => {
                    failure = Some(e);
                    Ok(0)
                }
            }
        })?;
        match failure {
            Some(e) => Err(self.corrupt(format!("event not queued: {e}"))),
            None => Ok(dropped),
        }
    }

    /// The oldest entry.
    pub fn oldest(&self) -> Result<Option<Queued>, StoreError> {
        let row = self.transaction(oldest_row)?;
        self.queued(row)
    }

    /// The server has it: forget it, and say what comes next (one trip to the store where a
    /// busy publisher took two). Not flushed: lost to a power cut, the entry is only
    /// published again, and deduplicated by its msg id (the store's module doc).
    pub fn remove_then_oldest(&self, id: i64) -> Result<Option<Queued>, StoreError> {
        let row = self.transaction_unsynced(|tx| {
            tx.prepare_cached("DELETE FROM outbox WHERE id = ?1")?
                .execute(params![id])?;
            oldest_row(tx)
        })?;
        self.queued(row)
    }

    fn queued(&self, row: Option<Row>) -> Result<Option<Queued>, StoreError> {
        let Some((id, kind, subject, msg_id, payload)) = row else {
            return Ok(None);
        };
        let kind = OutboxKind::parse(&kind)
            .ok_or_else(|| self.corrupt(format!("outbox entry {id} has kind {kind:?}")))?;
        Ok(Some(Queued {
            id,
            item: Outgoing {
                kind,
                subject,
                msg_id,
                payload,
            },
        }))
    }

    /// Entries waiting, by kind: (results, events).
    pub fn outbox_len(&self) -> Result<(u64, u64), StoreError> {
        self.transaction(|tx| {
            let count = |kind: &str| -> rusqlite::Result<u64> {
                tx.query_row(
                    "SELECT COUNT(*) FROM outbox WHERE kind = ?1",
                    params![kind],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| u64::try_from(n).unwrap_or(0))
            };
            Ok((count("result")?, count("event")?))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(kind: OutboxKind, id: &str) -> Outgoing {
        Outgoing {
            kind,
            subject: "fleet.res.acme.U".into(),
            msg_id: id.into(),
            payload: id.as_bytes().to_vec(),
        }
    }

    #[test]
    fn entries_come_out_oldest_first_and_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fleet.sqlite");
        {
            let store = FleetStore::open(&path).expect("open");
            for id in ["a", "b", "c"] {
                store
                    .enqueue(&item(OutboxKind::Result, id), 10, 1)
                    .expect("queued");
            }
        }
        let store = FleetStore::open(&path).expect("reopen");
        let mut seen = Vec::new();
        while let Some(q) = store.oldest().expect("read") {
            seen.push(q.item.msg_id.clone());
            store.remove_then_oldest(q.id).expect("remove");
        }
        assert_eq!(seen, ["a", "b", "c"]);
    }

    #[test]
    fn a_removal_is_unflushed_alone_and_every_other_commit_stays_flushed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fleet.sqlite");
        let synchronous = |store: &FleetStore| -> i64 {
            store
                .transaction(|tx| tx.query_row("PRAGMA synchronous", [], |r| r.get(0)))
                .expect("pragma")
        };
        {
            let store = FleetStore::open(&path).expect("open");
            for id in ["a", "b"] {
                store
                    .enqueue(&item(OutboxKind::Result, id), 10, 1)
                    .expect("queued");
            }
            let first = store.oldest().expect("read").expect("an entry");
            let next = store.remove_then_oldest(first.id).expect("remove");
            assert_eq!(next.map(|q| q.item.msg_id).as_deref(), Some("b"));
            // 2 = FULL: the claim and the result commits after a removal are flushed again.
            assert_eq!(synchronous(&store), 2);
        }
        let store = FleetStore::open(&path).expect("reopen");
        let left = store.oldest().expect("read").expect("an entry");
        assert_eq!(left.item.msg_id, "b", "the removal survived the close");
    }

    #[test]
    fn a_full_outbox_drops_its_oldest_events_and_never_a_result() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FleetStore::open(&dir.path().join("s.sqlite")).expect("open");
        // Into an outbox capped at 3; returns how many events it dropped.
        let enqueue = |kind, id| store.enqueue(&item(kind, id), 3, 1).expect("q");
        assert_eq!(enqueue(OutboxKind::Event, "e1"), 0);
        assert_eq!(enqueue(OutboxKind::Result, "r1"), 0);
        assert_eq!(enqueue(OutboxKind::Event, "e2"), 0);
        // Full: a result makes room by dropping e1.
        assert_eq!(enqueue(OutboxKind::Result, "r2"), 1);
        // Full: a result drops e2; then results only, and a result still goes in.
        assert_eq!(enqueue(OutboxKind::Result, "r3"), 1);
        assert_eq!(enqueue(OutboxKind::Result, "r4"), 0);
        // An event finding only results is dropped itself.
        assert_eq!(enqueue(OutboxKind::Event, "e3"), 1);
        assert_eq!(store.outbox_len().expect("len"), (4, 0));
    }

    #[test]
    fn event_numbers_are_never_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sqlite");
        let mut seqs = Vec::new();
        for _ in 0..2 {
            let store = FleetStore::open(&path).expect("open");
            store
                .enqueue_event(10, 1, |seq| {
                    seqs.push(seq);
                    Ok(item(OutboxKind::Event, &format!("e{seq}")))
                })
                .expect("queued");
            let q = store.oldest().expect("read").expect("one");
            store.remove_then_oldest(q.id).expect("remove");
        }
        assert_eq!(seqs, [1, 2]);
    }
}
