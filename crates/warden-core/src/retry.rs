//! Retry pauses, shared by every place that tries again: runbook steps, the fleet link's
//! publisher, credential renewal and the ticket outbox.
//!
//! The schedule is backon's exponential backoff (factor 2, capped), wrapped so that the callers
//! say what they mean once:
//!
//! - [`Retry::fixed`]: pause `n` (1-based) is `first * 2^(n-1)`, at most `cap`. Runbook steps
//!   use it: an author reads the pauses off the runbook.
//! - [`Retry::jittered`]: "equal jitter" over the same nominal pause: uniform in
//!   `[nominal / 2, nominal)`, so every wait is at least half the nominal one (a retry is never
//!   almost immediate) and never above `cap`, while agents that lost the same server at the same
//!   moment (a stream leader election, a PSA outage, a controller restart) do not come back in
//!   lockstep. backon's jitter adds `[0, d)` to a delay `d`; asking it for half the nominal
//!   pause and half the cap gives exactly that interval.
//!
//! The randomness is a seed the caller passes, so a schedule is a pure function of
//! `(first, cap, seed, n)`: the tests check bounds and spread, and a caller that persists only a
//! failure count (the ticket outbox, across restarts) gets its `n`-th pause back with
//! [`Retry::pause`].

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Doublings after which every nominal pause is at its cap whatever `first` and `cap` are (a
/// `Duration` is at most 2^64 s; starting from 1 ns, 2^94 ns passes it): [`Retry::pause`]
/// never walks further, so a failure count of days offline costs no more than this.
const DOUBLINGS_TO_ANY_CAP: u32 = 96;

/// A retry schedule: see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    first: Duration,
    cap: Duration,
    /// `Some(seed)`: equal jitter drawn from this seed.
    jitter: Option<u64>,
}

impl Retry {
    /// `first`, `2 x first`, ... at most `cap`; no randomness.
    pub fn fixed(first: Duration, cap: Duration) -> Retry {
        Retry {
            first: first.min(cap),
            cap,
            jitter: None,
        }
    }

    /// The same nominal pauses, each drawn uniformly from `[nominal / 2, nominal)` by `seed`.
    pub fn jittered(first: Duration, cap: Duration, seed: u64) -> Retry {
        Retry {
            jitter: Some(seed),
            ..Retry::fixed(first, cap)
        }
    }

    /// A jittered schedule seeded from the OS; without randomness to give, a fixed seed
    /// (pauses are then only less spread, the backoff still holds).
    pub fn jittered_from_os(first: Duration, cap: Duration) -> Retry {
        Retry::jittered(first, cap, os_seed())
    }

    /// The pauses after the first, second, ... failure, endlessly.
    pub fn pauses(&self) -> impl Iterator<Item = Duration> + use<> {
        let exponential = ExponentialBuilder::new()
            .with_factor(2.0)
            .without_max_times();
        let nominal = exponential
            .with_min_delay(self.first)
            .with_max_delay(self.cap)
            .build()
            .map(whole_millis);
        let seed = self.jitter;
        let mut jittered = seed.map(|seed| {
            exponential
                .with_min_delay(self.first / 2)
                .with_max_delay(self.cap / 2)
                .with_jitter()
                .with_jitter_seed(seed)
                .build()
        });
        // backon computes in f32 seconds: 0.1 s doubled is 199.99999 ms. Every caller counts
        // in milliseconds, so pauses are rounded to them, and a jittered pause is clamped into
        // its interval so that rounding never moves it out.
        nominal.map(
            move |nominal| match jittered.as_mut().and_then(Iterator::next) {
                None => nominal,
                Some(pause) => whole_millis(pause).clamp(nominal / 2, nominal),
            },
        )
    }

    /// The pause after the `failures`-th failure in a row (1-based; 0 is read as 1).
    pub fn pause(&self, failures: u32) -> Duration {
        let n = failures.clamp(1, DOUBLINGS_TO_ANY_CAP);
        self.pauses().nth((n - 1) as usize).unwrap_or(self.cap)
    }

    /// The nominal pause after the `failures`-th failure: the fixed schedule's value, the upper
    /// end of the jittered one's interval.
    pub fn nominal(&self, failures: u32) -> Duration {
        Retry::fixed(self.first, self.cap).pause(failures)
    }
}

fn whole_millis(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from((d.as_nanos() + 500_000) / 1_000_000).unwrap_or(u64::MAX))
}

/// Eight bytes from the OS, or 0 when it has none to give.
pub fn os_seed() -> u64 {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_fixed_schedule_doubles_from_first_up_to_the_cap() {
        let r = Retry::fixed(Duration::from_secs(10), Duration::from_secs(60));
        let secs: Vec<u64> = (1..=6).map(|n| r.pause(n).as_secs()).collect();
        assert_eq!(secs, [10, 20, 40, 60, 60, 60]);
        assert_eq!(
            r.pause(0),
            Duration::from_secs(10),
            "0 reads as the first failure"
        );
        assert_eq!(r.pause(u32::MAX), Duration::from_secs(60));
        let walked: Vec<Duration> = r.pauses().take(6).collect();
        let indexed: Vec<Duration> = (1..=6).map(|n| r.pause(n)).collect();
        assert_eq!(walked, indexed);
    }

    #[test]
    fn a_first_pause_above_the_cap_is_the_cap_and_zero_stays_zero() {
        let r = Retry::fixed(Duration::from_secs(90), Duration::from_secs(60));
        assert_eq!(r.pause(1), Duration::from_secs(60));
        let zero = Retry::fixed(Duration::ZERO, Duration::from_secs(60));
        assert!(zero.pauses().take(10).all(|p| p == Duration::ZERO));
    }

    #[test]
    fn every_jittered_pause_is_within_half_and_all_of_its_nominal_pause() {
        let (first, cap) = (100 * MS, Duration::from_secs(5));
        for seed in 0..300 {
            let r = Retry::jittered(first, cap, seed);
            for (i, pause) in r.pauses().take(40).enumerate() {
                let nominal = r.nominal(i as u32 + 1);
                assert!(
                    pause >= nominal / 2 && pause <= nominal,
                    "seed {seed}, failure {}: {pause:?} for nominal {nominal:?}",
                    i + 1
                );
            }
        }
    }

    #[test]
    fn the_same_seed_and_count_give_the_same_pause_and_seeds_differ() {
        let (first, cap) = (Duration::from_secs(10), Duration::from_secs(3600));
        let a = Retry::jittered(first, cap, 42);
        assert_eq!(a.pause(5), Retry::jittered(first, cap, 42).pause(5));
        let walked: Vec<Duration> = a.pauses().take(5).collect();
        assert_eq!(
            walked[4],
            a.pause(5),
            "the n-th pause is the same walked or indexed"
        );
        let schedule = |seed| {
            let r = Retry::jittered(first, cap, seed);
            r.pauses().take(8).collect::<Vec<_>>()
        };
        assert_ne!(schedule(42), schedule(43));
    }

    #[test]
    fn a_thousand_clients_failing_together_do_not_retry_in_lockstep() {
        // 1,000 agents held by the same election: when each one's third retry happens.
        let mut slots = BTreeMap::<u128, usize>::new();
        for seed in 0..1000u64 {
            let r = Retry::jittered(100 * MS, Duration::from_secs(5), seed.wrapping_mul(7919));
            let third: Duration = r.pauses().take(3).sum();
            *slots.entry(third.as_millis() / 10).or_default() += 1;
        }
        // The third retries fall in [350, 700) ms: 35 slots of 10 ms; evenly, ~29 each.
        let busiest = slots.values().max().copied().unwrap_or(0);
        assert!(slots.len() >= 30, "{} slots used", slots.len());
        assert!(
            busiest < 80,
            "{busiest} of 1,000 third retries in one 10 ms slot"
        );
    }

    #[test]
    fn a_failure_count_of_days_offline_is_at_the_cap_and_cheap() {
        let r = Retry::jittered(Duration::from_secs(10), Duration::from_secs(3600), 7);
        let p = r.pause(1_000_000);
        assert!(
            p >= Duration::from_secs(1800) && p <= Duration::from_secs(3600),
            "{p:?}"
        );
    }
}
