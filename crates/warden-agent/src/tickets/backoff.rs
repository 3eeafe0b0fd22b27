//! The outbox's retry delays: capped exponential backoff with "equal jitter" (half the delay
//! fixed, half random), so a fleet of agents that lost the same PSA does not retry in step,
//! and every wait is at least half the nominal one. Pure: the caller supplies the randomness.

use std::time::Duration;

/// The retry schedule of `[tickets]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The nominal delay after the `failures`-th failed attempt (1-based): `initial * 2^(n-1)`,
    /// at most `max`.
    pub fn nominal(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(32);
        self.initial
            .checked_mul(1u32 << doublings.min(31))
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The delay to wait: in `[nominal / 2, nominal]`, placed by `random`.
    pub fn delay(&self, failures: u32, random: u64) -> Duration {
        let nominal = self.nominal(failures);
        let half = nominal / 2;
        let spread = u64::try_from((nominal - half).as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(if spread == 0 {
            0
        } else {
            random % (spread + 1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_jitters_within_the_upper_half() {
        let b = Backoff {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(60),
        };
        let nominal: Vec<u64> = (1..=6).map(|n| b.nominal(n).as_secs()).collect();
        assert_eq!(nominal, [10, 20, 40, 60, 60, 60]);
        assert_eq!(b.nominal(u32::MAX), Duration::from_secs(60));
        assert_eq!(b.delay(2, 0), Duration::from_secs(10));
        assert_eq!(b.delay(2, 10_000), Duration::from_secs(20));
        for r in [1, 999, 123_456_789, u64::MAX] {
            let d = b.delay(3, r);
            assert!(
                d >= Duration::from_secs(20) && d <= Duration::from_secs(40),
                "{d:?}"
            );
        }
    }
}
