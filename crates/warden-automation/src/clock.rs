//! The wall clock the drivers read, injectable so tests can step it. Waiting is always done
//! with tokio's monotonic timer; the wall clock only says which cron slot we are at.

use chrono::{DateTime, Utc};

pub trait WallClock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's real-time clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
