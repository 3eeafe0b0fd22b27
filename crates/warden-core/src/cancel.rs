//! Cooperative cancellation of a run, shared between whoever may cancel it (the API, a
//! shutdown) and the run's host calls, which check it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Cooperative cancellation of a run, shared with whoever may cancel it.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Sleep for `duration` or until cancelled, whichever comes first; true when cancelled.
    pub fn wait(&self, duration: Duration) -> bool {
        // Polled in short slices: a backoff is rare and short, and a flag needs no lock.
        const SLICE: Duration = Duration::from_millis(10);
        let end = Instant::now() + duration;
        loop {
            if self.is_cancelled() {
                return true;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            std::thread::sleep(left.min(SLICE));
        }
    }
}
