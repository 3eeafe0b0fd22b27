//! The controller's clock, injected: presence, expiry and re-sends are functions of "now", and
//! the tests move now instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use warden_fleet_wire::UnixMillis;

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> UnixMillis;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixMillis {
        UnixMillis::now()
    }
}

/// A clock that moves only when told (tests).
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(at: UnixMillis) -> ManualClock {
        ManualClock(Arc::new(AtomicI64::new(at.as_millis())))
    }

    pub fn advance_ms(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixMillis {
        UnixMillis(self.0.load(Ordering::SeqCst))
    }
}
