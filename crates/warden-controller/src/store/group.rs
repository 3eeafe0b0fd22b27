//! Group commit for the store's enrollments: concurrent callers each queue their item, and one
//! of them at a time (whoever takes the writer first) commits everything queued in one
//! transaction, one flush, on behalf of the others. Every caller returns only once its own item
//! is committed (or with the error of the commit that carried it), so each enrollment is
//! durable before its answer, as before, but N enrollments in flight cost one flush per batch
//! instead of N. The pattern of `warden-audit`'s group commit, for SQLite.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::StoreError;

/// Items queued and the outcomes of commits made on others' behalf.
struct State<T> {
    next: u64,
    pending: Vec<(u64, T)>,
    /// The outcome of each ticket committed by another caller, until that caller takes it.
    done: HashMap<u64, Result<(), String>>,
}

/// A group committer of `T`s.
pub struct GroupCommit<T> {
    state: Mutex<State<T>>,
    /// Held while a batch commits: callers queueing meanwhile form the next batch.
    writer: Mutex<()>,
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T> Default for GroupCommit<T> {
    fn default() -> GroupCommit<T> {
        GroupCommit {
            state: Mutex::new(State {
                next: 0,
                pending: Vec::new(),
                done: HashMap::new(),
            }),
            writer: Mutex::new(()),
        }
    }
}

impl<T> GroupCommit<T> {
    /// Commit `item`, with whatever else is queued, through `write` (one transaction); returns
    /// once `item` is committed. `write` gets the batch in queueing order.
    pub fn commit(
        &self,
        item: T,
        write: impl FnOnce(&[T]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let ticket = {
            let mut state = relock(&self.state);
            let ticket = state.next;
            state.next += 1;
            state.pending.push((ticket, item));
            ticket
        };
        let _writer = relock(&self.writer);
        let (tickets, batch): (Vec<u64>, Vec<T>) = {
            let mut state = relock(&self.state);
            // A writer before us took our item: its outcome is ours.
            if let Some(outcome) = state.done.remove(&ticket) {
                return outcome.map_err(|cause| StoreError::Corrupt {
                    what: "group commit",
                    cause,
                });
            }
            std::mem::take(&mut state.pending).into_iter().unzip()
        };
        let result = write(&batch);
        let shared = result.as_ref().map(|_| ()).map_err(ToString::to_string);
        let mut state = relock(&self.state);
        for t in tickets.into_iter().filter(|&t| t != ticket) {
            state.done.insert(t, shared.clone());
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn concurrent_callers_share_commits_and_each_returns_after_its_own() {
        let group = Arc::new(GroupCommit::<u32>::default());
        let committed = Arc::new(Mutex::new(Vec::new()));
        let commits = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..64u32)
            .map(|i| {
                let (group, committed, commits) =
                    (group.clone(), committed.clone(), commits.clone());
                std::thread::spawn(move || {
                    group
                        .commit(i, |batch| {
                            commits.fetch_add(1, Ordering::SeqCst);
                            // A slow flush: others queue meanwhile.
                            std::thread::sleep(std::time::Duration::from_millis(5));
                            relock(&committed).extend_from_slice(batch);
                            Ok(())
                        })
                        .expect("committed");
                    // Returned: its own item is committed.
                    assert!(relock(&committed).contains(&i), "{i} returned uncommitted");
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let mut all = relock(&committed).clone();
        all.sort_unstable();
        assert_eq!(all, (0..64).collect::<Vec<_>>(), "each committed once");
        assert!(
            commits.load(Ordering::SeqCst) < 64,
            "some commits were shared"
        );
    }

    #[test]
    fn a_failed_commit_fails_every_caller_it_carried() {
        let group = Arc::new(GroupCommit::<u32>::default());
        let failures = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..16u32)
            .map(|i| {
                let (group, failures) = (group.clone(), failures.clone());
                std::thread::spawn(move || {
                    let r = group.commit(i, |_| {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        Err(StoreError::Corrupt {
                            what: "test",
                            cause: "disk full".into(),
                        })
                    });
                    if let Err(e) = r {
                        assert!(e.to_string().contains("disk full"), "{e}");
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(failures.load(Ordering::SeqCst), 16);
    }
}
