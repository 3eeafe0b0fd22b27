//! The publisher's retry pauses, with decorrelated jitter: each pause is drawn uniformly from
//! `[min, 3 x the previous pause]`, capped at `max` (the "decorrelated jitter" of Marc Brooker's
//! AWS analysis). Without jitter, the agents that a stream leader election held (every agent
//! with a result in flight, thousands at once) all retry at 100 ms, 200 ms, 400 ms, ... after
//! it, in lockstep, and hit the new leader together; with it their retries spread over the
//! whole interval while each agent's pauses still grow about as fast as doubling.
//!
//! Pure: the random numbers come in ([`Rng`], a seeded SplitMix64; each link seeds its own from
//! the OS), so the schedule's bounds are unit-tested.

use std::time::Duration;

/// Growth of the upper bound of the next pause over the last one (the analysis' factor 3).
const GROWTH: u32 = 3;

/// A small seeded generator: SplitMix64 (enough to spread retries; nothing secret).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    #[cfg(test)]
    pub fn seeded(seed: u64) -> Rng {
        Rng(seed)
    }

    /// Seeded from the OS; a fixed seed if it has no randomness to give (retries still work).
    pub fn from_os() -> Rng {
        let mut bytes = [0u8; 8];
        let _ = getrandom::fill(&mut bytes);
        Rng(u64::from_le_bytes(bytes))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `low..=high` (milliseconds).
    fn between(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        let span = high - low + 1;
        low + self.next_u64() % span
    }
}

/// The pauses between retries of one publisher.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    last: Duration,
    rng: Rng,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration, rng: Rng) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            last: min,
            rng,
        }
    }

    /// The next pause: uniform in `[min, GROWTH x the last]`, at most `max`.
    pub fn next_pause(&mut self) -> Duration {
        let min = millis(self.min);
        let high = millis(self.last)
            .saturating_mul(u64::from(GROWTH))
            .min(millis(self.max));
        self.last = Duration::from_millis(self.rng.between(min, high));
        self.last
    }

    /// After a success: the next failure starts again from `min`.
    pub fn reset(&mut self) {
        self.last = self.min;
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    #[test]
    fn every_pause_is_within_min_and_max_and_three_times_the_last() {
        for seed in 0..500 {
            let mut backoff = Backoff::new(MIN, MAX, Rng::seeded(seed));
            let mut last = MIN;
            for _ in 0..50 {
                let pause = backoff.next_pause();
                assert!(pause >= MIN && pause <= MAX, "seed {seed}: {pause:?}");
                assert!(
                    pause <= last * GROWTH,
                    "seed {seed}: {pause:?} after {last:?}"
                );
                last = pause;
            }
            backoff.reset();
            assert!(backoff.next_pause() <= MIN * GROWTH, "a reset starts again");
        }
    }

    #[test]
    fn agents_seeded_differently_do_not_retry_in_lockstep() {
        // 1,000 agents held by the same election: their first three pauses, and when each
        // third retry happens.
        let mut firsts = BTreeSet::new();
        let mut thirds = Vec::new();
        for seed in 0..1000u64 {
            let mut backoff = Backoff::new(MIN, MAX, Rng::seeded(seed.wrapping_mul(7919)));
            let pauses: Vec<Duration> = (0..3).map(|_| backoff.next_pause()).collect();
            firsts.insert(pauses[0]);
            thirds.push(pauses.iter().sum::<Duration>());
        }
        // Spread over the first interval [100, 300] ms: most of its 201 values are taken.
        assert!(firsts.len() > 150, "{} distinct first pauses", firsts.len());
        // No single 10 ms slot holds more than a few percent of the third retries.
        let mut slots = std::collections::BTreeMap::<u128, usize>::new();
        for t in &thirds {
            *slots.entry(t.as_millis() / 10).or_default() += 1;
        }
        let busiest = slots.values().max().copied().unwrap_or(0);
        assert!(
            busiest < 50,
            "{busiest} of 1,000 third retries in one 10 ms slot"
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let schedule = |seed| {
            let mut b = Backoff::new(MIN, MAX, Rng::seeded(seed));
            (0..10).map(|_| b.next_pause()).collect::<Vec<_>>()
        };
        assert_eq!(schedule(42), schedule(42));
        assert_ne!(schedule(42), schedule(43));
    }
}
