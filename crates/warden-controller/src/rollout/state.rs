//! The rollout state machine: the current wave's agents in, what to release and where the
//! rollout goes out, time injected by the caller (the controller's tick).
//!
//! ```text
//! pending ──tick──▶ running(wave 0 = canary) ──gate passed──▶ running(wave k+1) … ──▶ completed
//!                      │  ▲                     │
//!               pause  │  │ resume              │ gate failed (automatic)
//!                      ▼  │                     ▼
//!                    paused                   halted
//! any but rolled-back ──rollback──▶ rolled-back
//! ```
//!
//! - **Release**: in a running wave, agents get the new desired state at most `max_in_flight`
//!   at a time that have not reported yet (0: the whole wave at once). Paused or halted, nobody
//!   is released; reports keep counting.
//! - **Gate**: a wave fails when its failed agents exceed `max_failure_percent` of the wave.
//!   An agent failed when it reported the bundle refused, or opened an incident after its
//!   release; an agent that has not reported when the wave's timeout passes counts as failed.
//!   The gate is checked at every tick, so the rollout halts as soon as the threshold is
//!   crossed, without waiting for the rest of the wave.
//! - **Soak**: when every agent of the wave reported and the gate holds, the machine waits
//!   `soak_ms` (incidents still count) before the next wave, or `completed` after the last.
//! - **Halt** is final for the rollout's waves: only rollback leaves it. A later wave's agents
//!   were never released, so they never got the new desired state.

use serde::{Deserialize, Serialize};
use warden_fleet_wire::UnixMillis;

use super::plan::Plan;

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Pending,
    Running,
    Paused,
    Halted,
    Completed,
    RolledBack,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Running => "running",
            Phase::Paused => "paused",
            Phase::Halted => "halted",
            Phase::Completed => "completed",
            Phase::RolledBack => "rolled-back",
        }
    }

    /// Whether the tick still has work (releases, gates).
    pub fn is_active(self) -> bool {
        matches!(self, Phase::Pending | Phase::Running)
    }
}

/// The machine's state, stored with the rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub phase: Phase,
    /// The current wave (0-based; the canary wave is 0 when there is one).
    pub wave: usize,
    /// When the current wave started (or resumed): its timeout counts from here.
    pub wave_started: Option<UnixMillis>,
    /// When every agent of the current wave had reported with the gate holding.
    pub soak_started: Option<UnixMillis>,
    /// Why it halted (or what the operator did), for people.
    pub reason: Option<String>,
}

impl State {
    pub fn new() -> State {
        State {
            phase: Phase::Pending,
            wave: 0,
            wave_started: None,
            soak_started: None,
            reason: None,
        }
    }
}

impl Default for State {
    fn default() -> State {
        State::new()
    }
}

/// One agent of the current wave, as the controller sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member {
    /// Not yet given the new desired state.
    Unreleased,
    /// Released; no report about the new digest yet.
    InFlight,
    /// Installed, and no incident since its release.
    Healthy,
    /// Refused the bundle, or opened an incident after its release.
    Failed,
}

/// What a tick decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Indices (into the members given) to release now.
    pub release: Vec<usize>,
    pub state: State,
}

impl Decision {
    /// Whether the phase or wave changed (a transition to audit).
    pub fn moved(&self, before: &State) -> bool {
        self.state.phase != before.phase || self.state.wave != before.wave
    }
}

/// The gate: more failed than the threshold allows?
fn fails_gate(plan: &Plan, failed: usize, size: usize) -> bool {
    // failed / size > pct / 100, in integers.
    failed * 100 > plan.max_failure_percent as usize * size
}

/// One tick of a rollout with `waves` waves, whose current wave's agents are `members`.
pub fn tick(
    plan: &Plan,
    state: &State,
    waves: usize,
    members: &[Member],
    now: UnixMillis,
) -> Decision {
    let mut next = state.clone();
    match state.phase {
        Phase::Pending => {
            next.phase = Phase::Running;
            next.wave = 0;
            next.wave_started = Some(now);
            next.soak_started = None;
        }
        Phase::Running => {}
        Phase::Paused | Phase::Halted | Phase::Completed | Phase::RolledBack => {
            return Decision {
                release: Vec::new(),
                state: next,
            };
        }
    }
    let size = members.len();
    let count = |m: Member| members.iter().filter(|x| **x == m).count();
    let (failed, in_flight, unreleased) = (
        count(Member::Failed),
        count(Member::InFlight),
        count(Member::Unreleased),
    );
    let started = next.wave_started.unwrap_or(now);
    let timed_out = now.as_millis() >= started.as_millis().saturating_add(plan.wave_timeout_ms);
    // Unreported agents count as failed once the wave's time is up.
    let counted = if timed_out {
        failed + in_flight + unreleased
    } else {
        failed
    };
    if fails_gate(plan, counted, size) {
        next.phase = Phase::Halted;
        next.reason = Some(if counted > failed {
            format!(
                "{}: {failed} of {size} agents failed and {} did not report in time (more than {}% allowed)",
                plan.wave_name(next.wave),
                counted - failed,
                plan.max_failure_percent
            )
        } else {
            format!(
                "{}: {failed} of {size} agents failed (more than {}% allowed)",
                plan.wave_name(next.wave),
                plan.max_failure_percent
            )
        });
        return Decision {
            release: Vec::new(),
            state: next,
        };
    }
    if in_flight + unreleased > 0 && !timed_out {
        let room = match plan.max_in_flight {
            0 => usize::MAX,
            n => n.saturating_sub(in_flight),
        };
        let release = members
            .iter()
            .enumerate()
            .filter(|(_, m)| **m == Member::Unreleased)
            .map(|(i, _)| i)
            .take(room)
            .collect();
        return Decision {
            release,
            state: next,
        };
    }
    // Every agent reported (or the time is up within the threshold): soak, then move on.
    let soak = *next.soak_started.get_or_insert(now);
    if now.as_millis() < soak.as_millis().saturating_add(plan.soak_ms) {
        return Decision {
            release: Vec::new(),
            state: next,
        };
    }
    if next.wave + 1 >= waves {
        next.phase = Phase::Completed;
    } else {
        next.wave += 1;
        next.wave_started = Some(now);
    }
    next.soak_started = None;
    Decision {
        release: Vec::new(),
        state: next,
    }
}

/// What an operator asks of a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Pause,
    Resume,
    Rollback,
}

impl Command {
    pub fn name(self) -> &'static str {
        match self {
            Command::Pause => "pause",
            Command::Resume => "resume",
            Command::Rollback => "rollback",
        }
    }
}

/// A command that does not apply in the rollout's phase.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {phase} rollout cannot {command}")]
pub struct Refused {
    pub phase: &'static str,
    pub command: &'static str,
}

/// The state after an operator's command: pause a pending or running rollout, resume a paused
/// one (its wave's timeout starts again), roll back any that is not rolled back already.
/// A halted rollout does not resume: what halted it is still there; roll it back.
pub fn command(state: &State, cmd: Command, by: &str, now: UnixMillis) -> Result<State, Refused> {
    let refused = || Refused {
        phase: state.phase.name(),
        command: cmd.name(),
    };
    let mut next = state.clone();
    match (cmd, state.phase) {
        (Command::Pause, Phase::Pending | Phase::Running) => {
            next.phase = Phase::Paused;
            next.reason = Some(format!("paused by {by}"));
        }
        (Command::Resume, Phase::Paused) => {
            next.phase = if state.wave_started.is_some() {
                Phase::Running
            } else {
                Phase::Pending
            };
            next.wave_started = state.wave_started.map(|_| now);
            next.soak_started = None;
            next.reason = None;
        }
        (Command::Rollback, phase) if phase != Phase::RolledBack => {
            next.phase = Phase::RolledBack;
            next.reason = Some(match &state.reason {
                Some(why) if phase == Phase::Halted => format!("rolled back by {by} ({why})"),
                _ => format!("rolled back by {by}"),
            });
        }
        _ => return Err(refused()),
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::plan::{Plan, PlanRequest};
    use Member::{Failed, Healthy, InFlight, Unreleased};

    fn plan(max_in_flight: usize, max_failures: &str, soak_secs: i64) -> Plan {
        Plan::parse(&PlanRequest {
            canary: 1,
            waves: "50%,100%".into(),
            max_in_flight,
            max_failures: max_failures.into(),
            soak_secs,
            wave_timeout_secs: 60,
        })
        .expect("plan")
    }

    fn at(s: i64) -> UnixMillis {
        UnixMillis(1_000_000 + s * 1000)
    }

    fn running(wave: usize, since: i64) -> State {
        State {
            phase: Phase::Running,
            wave,
            wave_started: Some(at(since)),
            soak_started: None,
            reason: None,
        }
    }

    #[test]
    fn a_pending_rollout_starts_its_canary_wave_and_releases_it() {
        let d = tick(&plan(0, "0%", 0), &State::new(), 3, &[Unreleased], at(0));
        assert_eq!(d.state.phase, Phase::Running);
        assert_eq!(d.state.wave, 0);
        assert_eq!(d.state.wave_started, Some(at(0)));
        assert_eq!(d.release, [0]);
    }

    #[test]
    fn releases_keep_at_most_max_in_flight_unreported() {
        let p = plan(2, "50%", 0);
        let members = [Healthy, InFlight, Unreleased, Unreleased, Unreleased];
        let d = tick(&p, &running(1, 0), 3, &members, at(1));
        assert_eq!(d.release, [2], "one in flight already: room for one more");
        let d = tick(&p, &running(1, 0), 3, &[Unreleased; 4], at(1));
        assert_eq!(d.release, [0, 1]);
    }

    #[test]
    fn a_failed_canary_halts_at_once_and_releases_nobody() {
        let d = tick(&plan(0, "0%", 0), &running(0, 0), 3, &[Failed], at(1));
        assert_eq!(d.state.phase, Phase::Halted);
        assert_eq!(d.state.wave, 0);
        assert!(d.release.is_empty());
        assert!(
            d.state
                .reason
                .as_deref()
                .is_some_and(|r| r.starts_with("canary: 1 of 1")),
            "the reason names the wave as the status table does: {:?}",
            d.state.reason
        );
        // And it stays halted: a later tick does nothing.
        let again = tick(&plan(0, "0%", 0), &d.state, 3, &[Healthy], at(2));
        assert_eq!(again.state, d.state);
        assert!(again.release.is_empty());
    }

    #[test]
    fn the_gate_halts_once_failures_exceed_the_threshold_not_before() {
        let p = plan(0, "25%", 0);
        // 1 of 4 failed: 25 % is allowed; the others still in flight: wait.
        let d = tick(
            &p,
            &running(1, 0),
            3,
            &[Failed, InFlight, InFlight, Healthy],
            at(1),
        );
        assert_eq!(d.state.phase, Phase::Running);
        // 2 of 4: halted even though one has not reported.
        let d = tick(
            &p,
            &running(1, 0),
            3,
            &[Failed, Failed, InFlight, Healthy],
            at(1),
        );
        assert_eq!(d.state.phase, Phase::Halted);
    }

    #[test]
    fn agents_that_do_not_report_in_time_count_as_failed() {
        let p = plan(0, "0%", 0);
        let d = tick(&p, &running(0, 0), 3, &[InFlight], at(59));
        assert_eq!(d.state.phase, Phase::Running);
        let d = tick(&p, &running(0, 0), 3, &[InFlight], at(60));
        assert_eq!(d.state.phase, Phase::Halted);
        assert!(
            d.state
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("did not report"))
        );
    }

    #[test]
    fn a_healthy_wave_soaks_then_the_next_starts_and_the_last_completes() {
        let p = plan(0, "0%", 30);
        let d = tick(&p, &running(0, 0), 3, &[Healthy], at(5));
        assert_eq!((d.state.phase, d.state.wave), (Phase::Running, 0));
        assert_eq!(d.state.soak_started, Some(at(5)));
        let d = tick(&p, &d.state, 3, &[Healthy], at(34));
        assert_eq!(d.state.wave, 0, "still soaking");
        // An incident during the soak fails the wave.
        let halted = tick(&p, &d.state, 3, &[Failed], at(34));
        assert_eq!(halted.state.phase, Phase::Halted);
        let d = tick(&p, &d.state, 3, &[Healthy], at(35));
        assert_eq!((d.state.phase, d.state.wave), (Phase::Running, 1));
        assert_eq!(d.state.wave_started, Some(at(35)));
        assert_eq!(d.state.soak_started, None);
        let last = State {
            wave: 2,
            ..d.state.clone()
        };
        let d = tick(&plan(0, "0%", 0), &last, 3, &[Healthy, Healthy], at(40));
        assert_eq!(d.state.phase, Phase::Completed);
    }

    #[test]
    fn pause_resume_and_rollback_apply_only_where_they_mean_something() {
        let now = at(10);
        let paused = command(&running(1, 0), Command::Pause, "ann", now).expect("pause");
        assert_eq!(paused.phase, Phase::Paused);
        // Paused: nobody is released.
        let d = tick(&plan(0, "0%", 0), &paused, 3, &[Unreleased], now);
        assert!(d.release.is_empty());
        let resumed = command(&paused, Command::Resume, "ann", at(20)).expect("resume");
        assert_eq!(resumed.phase, Phase::Running);
        assert_eq!(
            resumed.wave_started,
            Some(at(20)),
            "the wave's time starts again"
        );
        let halted = State {
            phase: Phase::Halted,
            reason: Some("canary: 1 of 1 agents failed".into()),
            ..running(0, 0)
        };
        assert!(command(&halted, Command::Resume, "ann", now).is_err());
        assert!(command(&halted, Command::Pause, "ann", now).is_err());
        let back = command(&halted, Command::Rollback, "ann", now).expect("rollback");
        assert_eq!(back.phase, Phase::RolledBack);
        assert!(back.reason.as_deref().is_some_and(|r| r.contains("1 of 1")));
        assert!(command(&back, Command::Rollback, "ann", now).is_err());
        let completed = State {
            phase: Phase::Completed,
            ..running(2, 0)
        };
        assert!(command(&completed, Command::Rollback, "ann", now).is_ok());
    }
}
