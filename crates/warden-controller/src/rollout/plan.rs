//! A rollout plan as the operator writes it (`--canary 1 --waves 10%,50%,100% --max-failures
//! 0%`), parsed into validated values, and its split of the targeted agents into waves.
//!
//! Waves are cumulative: `10%,50%,100%` means "up to 10 % of the targets, then up to 50 %, then
//! all"; a count (`5`) is a cumulative number of agents. Percentages round up, so a wave of a
//! small fleet is never empty; the canary wave (if any) comes first and counts towards them.
//! The last wave must reach every target: a plan that leaves agents out is refused, not
//! silently cut short.

use serde::{Deserialize, Serialize};

/// Waves at most (a plan is read by people).
pub const MAX_WAVES: usize = 20;
/// Default time a wave's agents have to report before the unreported count as failed.
pub const DEFAULT_WAVE_TIMEOUT_SECS: i64 = 600;

/// Why a plan is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("wave {0:?} is neither a percentage (`10%`) nor a count of agents (`5`)")]
    BadWave(String),
    #[error("waves must grow: {0:?} does not reach further than the wave before it")]
    NotGrowing(String),
    #[error("the last wave must reach every target (`100%`), not {0:?}")]
    Incomplete(String),
    #[error("at most {MAX_WAVES} waves, and at least one")]
    WaveCount,
    #[error("--max-failures {0:?} is not a percentage from 0% to 100%")]
    BadThreshold(String),
    #[error("{what} must be positive, not {value}")]
    NotPositive { what: &'static str, value: i64 },
}

/// One cumulative wave boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reach {
    Percent(u32),
    Count(usize),
}

impl Reach {
    fn parse(text: &str) -> Result<Reach, PlanError> {
        let t = text.trim();
        let bad = || PlanError::BadWave(text.to_string());
        if let Some(p) = t.strip_suffix('%') {
            let p: u32 = p.trim().parse().map_err(|_| bad())?;
            if p == 0 || p > 100 {
                return Err(bad());
            }
            Ok(Reach::Percent(p))
        } else {
            let n: usize = t.parse().map_err(|_| bad())?;
            if n == 0 {
                return Err(bad());
            }
            Ok(Reach::Count(n))
        }
    }

    /// How many of `total` agents this boundary reaches (percentages round up).
    fn of(self, total: usize) -> usize {
        match self {
            Reach::Percent(p) => (total * p as usize).div_ceil(100),
            Reach::Count(n) => n.min(total),
        }
    }
}

impl std::fmt::Display for Reach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reach::Percent(p) => write!(f, "{p}%"),
            Reach::Count(n) => write!(f, "{n}"),
        }
    }
}

/// A validated plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Agents in the first, canary wave (0: none).
    pub canary: usize,
    pub waves: Vec<Reach>,
    /// Agents of a wave given the new desired state before earlier ones report (0: the whole
    /// wave at once).
    pub max_in_flight: usize,
    /// A wave fails its gate when more than this share of its agents failed.
    pub max_failure_percent: u32,
    /// After every agent of a wave reported, how long its incidents still count against it.
    pub soak_ms: i64,
    /// How long a wave's agents have to report; the unreported then count as failed.
    pub wave_timeout_ms: i64,
}

/// What the operator asked for, as written.
#[derive(Debug, Clone, Default)]
pub struct PlanRequest {
    pub canary: usize,
    pub waves: String,
    pub max_in_flight: usize,
    pub max_failures: String,
    pub soak_secs: i64,
    /// 0: [`DEFAULT_WAVE_TIMEOUT_SECS`].
    pub wave_timeout_secs: i64,
}

/// Parse `--max-failures`: `0%` ..= `100%`.
pub fn parse_threshold(text: &str) -> Result<u32, PlanError> {
    let bad = || PlanError::BadThreshold(text.to_string());
    let p: u32 = text
        .trim()
        .strip_suffix('%')
        .ok_or_else(bad)?
        .trim()
        .parse()
        .map_err(|_| bad())?;
    if p > 100 {
        return Err(bad());
    }
    Ok(p)
}

impl Plan {
    /// What the NOC calls wave `wave` (0-based): `canary` when the plan has one, then
    /// `wave 1`, `wave 2`, ... In one place so that a halt's reason and the status table
    /// name the same wave.
    pub fn wave_name(&self, wave: usize) -> String {
        match (self.canary > 0, wave) {
            (true, 0) => "canary".into(),
            (true, n) => format!("wave {n}"),
            (false, n) => format!("wave {}", n + 1),
        }
    }

    pub fn parse(req: &PlanRequest) -> Result<Plan, PlanError> {
        let waves = req
            .waves
            .split(',')
            .map(Reach::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if waves.is_empty() || waves.len() > MAX_WAVES {
            return Err(PlanError::WaveCount);
        }
        if let Some(last) = waves.last()
            && *last != Reach::Percent(100)
            && !matches!(last, Reach::Count(_))
        {
            return Err(PlanError::Incomplete(last.to_string()));
        }
        if req.soak_secs < 0 {
            return Err(PlanError::NotPositive {
                what: "--soak",
                value: req.soak_secs,
            });
        }
        let timeout = match req.wave_timeout_secs {
            0 => DEFAULT_WAVE_TIMEOUT_SECS,
            t if t < 0 => {
                return Err(PlanError::NotPositive {
                    what: "--wave-timeout",
                    value: t,
                });
            }
            t => t,
        };
        Ok(Plan {
            canary: req.canary,
            waves,
            max_in_flight: req.max_in_flight,
            max_failure_percent: parse_threshold(&req.max_failures)?,
            soak_ms: req.soak_secs.saturating_mul(1000),
            wave_timeout_ms: timeout.saturating_mul(1000),
        })
    }

    /// The size of each non-empty wave, canary first, for `total` targets; they add up to
    /// `total`.
    pub fn split(&self, total: usize) -> Result<Vec<usize>, PlanError> {
        let mut sizes = Vec::new();
        let mut reached = self.canary.min(total);
        if reached > 0 {
            sizes.push(reached);
        }
        for wave in &self.waves {
            let to = wave.of(total);
            if to < reached {
                return Err(PlanError::NotGrowing(wave.to_string()));
            }
            if to > reached {
                sizes.push(to - reached);
                reached = to;
            }
        }
        if reached < total {
            let last = self.waves.last().map(Reach::to_string).unwrap_or_default();
            return Err(PlanError::Incomplete(last));
        }
        Ok(sizes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(canary: usize, waves: &str) -> Result<Plan, PlanError> {
        Plan::parse(&PlanRequest {
            canary,
            waves: waves.into(),
            max_failures: "0%".into(),
            ..PlanRequest::default()
        })
    }

    #[test]
    fn cumulative_waves_round_up_and_add_up_to_the_targets() {
        let p = plan(1, "10%,50%,100%").expect("plan");
        // 6 agents: the canary, then 10 % (1, reached already), 50 % (3), all.
        assert_eq!(p.split(6).expect("split"), [1, 2, 3]);
        assert_eq!(p.split(1).expect("split"), [1]);
        assert_eq!(
            plan(0, "2,100%").expect("plan").split(5).expect("split"),
            [2, 3]
        );
    }

    #[test]
    fn a_plan_that_leaves_agents_out_or_shrinks_is_refused() {
        assert!(matches!(plan(0, "10%,50%"), Err(PlanError::Incomplete(_))));
        assert!(matches!(
            plan(0, "3").expect("plan").split(5),
            Err(PlanError::Incomplete(_))
        ));
        assert!(matches!(
            plan(0, "4,2,100%").expect("plan").split(5),
            Err(PlanError::NotGrowing(_))
        ));
        assert!(matches!(plan(0, "0%,100%"), Err(PlanError::BadWave(_))));
        assert!(matches!(plan(0, "half"), Err(PlanError::BadWave(_))));
        assert_eq!(parse_threshold("12%"), Ok(12));
        assert!(parse_threshold("12").is_err());
        assert!(parse_threshold("101%").is_err());
    }
}
