//! Timing: scenarios measured side by side (interleaved round by round, in a new random order
//! each round, so a burst of load from elsewhere on a shared machine, or the aftermath of a
//! scenario that waits on fsync, hits every scenario alike and the ratios hold), and the
//! statistics printed for them.

use anyhow::Context;
use std::time::{Duration, Instant};

/// Samples of one scenario, in the order taken and sorted.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    raw: Vec<Duration>,
    sorted: Vec<Duration>,
}

impl Stats {
    pub fn new(samples: Vec<Duration>) -> Stats {
        let mut sorted = samples.clone();
        sorted.sort_unstable();
        Stats {
            raw: samples,
            sorted,
        }
    }

    /// The samples in the order they were taken (round by round).
    pub fn raw(&self) -> &[Duration] {
        &self.raw
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Nearest-rank percentile, `p` in 0..=100; zero when there are no samples.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.sorted.len() as f64).ceil() as usize;
        self.sorted[rank.clamp(1, self.sorted.len()) - 1]
    }

    pub fn median(&self) -> Duration {
        self.percentile(50.0)
    }

    pub fn p90(&self) -> Duration {
        self.percentile(90.0)
    }

    pub fn p99(&self) -> Duration {
        self.percentile(99.0)
    }
}

/// One thing to time: `run` does one unit of work and checks its result.
pub struct Scenario<'a> {
    pub name: String,
    /// Runs in every `every`-th round only: process spawns are thousands of times slower than an
    /// in-process run, and this keeps their fewer samples spread over the whole measurement.
    pub every: usize,
    pub run: Box<dyn FnMut() -> anyhow::Result<()> + 'a>,
}

impl<'a> Scenario<'a> {
    pub fn new(name: impl Into<String>, run: impl FnMut() -> anyhow::Result<()> + 'a) -> Self {
        Scenario {
            name: name.into(),
            every: 1,
            run: Box::new(run),
        }
    }

    /// Sample this scenario about `samples` times over `rounds` rounds.
    pub fn sampled(mut self, samples: usize, rounds: usize) -> Self {
        self.every = (rounds / samples.max(1)).max(1);
        self
    }
}

/// A small deterministic PRNG (xorshift64*): the order of scenarios only has to vary, and the
/// same order on every run of the bench keeps runs comparable.
struct Shuffle(u64);

impl Shuffle {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Fisher-Yates.
    fn permute(&mut self, order: &mut [usize]) {
        for i in (1..order.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
    }
}

/// Run `warmup` rounds unrecorded, then `rounds` recorded ones. Each round runs every scenario
/// due in it once, in a random order: a scenario that always ran right after another would pay
/// for its aftermath (after a run that waited on fsync, the next few hundred µs run on cold
/// caches and, in a VM, a vCPU the hypervisor had descheduled), which biases the ratios.
pub fn interleaved(
    scenarios: &mut [Scenario<'_>],
    warmup: usize,
    rounds: usize,
) -> anyhow::Result<Vec<Stats>> {
    let n = scenarios.len();
    let mut samples: Vec<Vec<Duration>> = scenarios
        .iter()
        .map(|s| Vec::with_capacity(rounds / s.every + 1))
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    let mut shuffle = Shuffle(0x9e37_79b9_7f4a_7c15);
    for round in 0..warmup + rounds {
        shuffle.permute(&mut order);
        for &i in &order {
            let s = &mut scenarios[i];
            if round % s.every != 0 {
                continue;
            }
            let t = Instant::now();
            (s.run)().with_context(|| format!("scenario `{}`", s.name))?;
            let elapsed = t.elapsed();
            if round >= warmup {
                samples[i].push(elapsed);
            }
        }
    }
    Ok(samples.into_iter().map(Stats::new).collect())
}

/// A duration with a unit that keeps 3-4 significant digits.
pub fn fmt_duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1_000.0 {
        format!("{us:.1} µs")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

/// `a / b` as a ratio, or `-` when `b` is zero.
pub fn ratio(a: Duration, b: Duration) -> String {
    if b.is_zero() {
        return "-".into();
    }
    let r = a.as_secs_f64() / b.as_secs_f64();
    if r >= 100.0 {
        format!("{r:.0}×")
    } else {
        format!("{r:.2}×")
    }
}

/// Microseconds as a float, for per-call arithmetic.
pub fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A table with a left-aligned first column and right-aligned others, printed as plain text, or
/// as a Markdown table (for `docs/PERFORMANCE.md`) when `markdown` is set.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn print(&self, markdown: bool) {
        let cols = self.header.len();
        let width = |c: usize| {
            self.rows
                .iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .chain([self.header[c].chars().count()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..cols).map(width).collect();
        let line = |cells: &[String]| {
            let mut out = String::new();
            for (c, w) in widths.iter().enumerate() {
                let cell = cells.get(c).map_or("", String::as_str);
                let pad = w.saturating_sub(cell.chars().count());
                if markdown {
                    out.push_str("| ");
                }
                if c == 0 {
                    out.push_str(cell);
                    out.push_str(&" ".repeat(pad));
                } else {
                    out.push_str(&" ".repeat(pad));
                    out.push_str(cell);
                }
                out.push(' ');
                if !markdown {
                    out.push(' ');
                }
            }
            if markdown {
                out.push('|');
            }
            out.trim_end().to_string()
        };
        println!("{}", line(&self.header));
        if markdown {
            let sep: Vec<String> = widths
                .iter()
                .enumerate()
                .map(|(c, w)| {
                    if c == 0 {
                        "-".repeat(*w)
                    } else {
                        format!("{}:", "-".repeat(w.saturating_sub(1)))
                    }
                })
                .collect();
            println!("{}", line(&sep));
        }
        for r in &self.rows {
            println!("{}", line(r));
        }
        if markdown {
            // Without a blank line, Markdown would take the next line of text as a table row.
            println!();
        }
    }
}

/// The median of `(b[i] - a[i]) / n` over rounds, in µs: `a` and `b` sampled in the same rounds,
/// so each difference is taken under the same load, and a slow outlier run of either side (an
/// fsync stalling) moves the median of differences less than it moves a difference of medians.
pub fn per_unit_us(a: &Stats, b: &Stats, n: u32) -> f64 {
    let mut d: Vec<f64> = a
        .raw()
        .iter()
        .zip(b.raw())
        .map(|(a, b)| (micros(*b) - micros(*a)) / f64::from(n.max(1)))
        .collect();
    if d.is_empty() {
        return 0.0;
    }
    d.sort_by(f64::total_cmp);
    d[(d.len() - 1) / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s = Stats::new((1..=100).rev().map(Duration::from_micros).collect());
        assert_eq!(s.median(), Duration::from_micros(50));
        assert_eq!(s.p90(), Duration::from_micros(90));
        assert_eq!(s.p99(), Duration::from_micros(99));
        assert_eq!(Stats::new(vec![]).median(), Duration::ZERO);
    }

    #[test]
    fn shuffling_permutes() {
        let mut order: Vec<usize> = (0..10).collect();
        let mut shuffle = Shuffle(1);
        shuffle.permute(&mut order);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        assert_ne!(order, sorted);
    }

    #[test]
    fn per_unit_is_the_median_paired_difference() {
        let us = |v: &[u64]| Stats::new(v.iter().copied().map(Duration::from_micros).collect());
        // Round 2's stall on the zero side would make the difference of medians 30/10 = 3.
        let zero = us(&[100, 200, 5000]);
        let many = us(&[120, 230, 5010]);
        assert_eq!(per_unit_us(&zero, &many, 10), 2.0);
    }

    #[test]
    fn interleaving_samples_spawn_scenarios_less_often() {
        let mut a = 0;
        let mut b = 0;
        let mut scenarios = vec![
            Scenario::new("a", || {
                a += 1;
                Ok(())
            }),
            Scenario::new("b", || {
                b += 1;
                Ok(())
            })
            .sampled(10, 100),
        ];
        let stats = interleaved(&mut scenarios, 10, 100).expect("runs");
        drop(scenarios);
        assert_eq!(stats[0].len(), 100);
        assert_eq!(stats[1].len(), 10);
        assert_eq!((a, b), (110, 11));
    }
}
