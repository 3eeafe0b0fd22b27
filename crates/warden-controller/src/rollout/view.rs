//! What `warden fleet rollout status` shows: the plan's waves with their counts and where
//! each stands, and every targeted agent (pure, from the stored rollout).

use warden_fleet_identity::{AgentId, TenantId};
use warden_fleet_wire::UnixMillis;

use super::record::{RolloutAgent, RolloutRecord};
use super::state::{Member, Phase};

/// One wave of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaveView {
    /// `canary`, or `wave N` (1-based, as people count).
    pub name: String,
    pub size: usize,
    pub released: usize,
    pub healthy: usize,
    pub failed: usize,
    pub in_flight: usize,
    /// `passed`, `running`, `paused`, `halted`, `waiting`, `rolled back`, `not released`.
    pub state: &'static str,
}

/// One agent of the rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInRollout {
    pub agent: AgentId,
    pub tenant: TenantId,
    pub wave: String,
    /// `unreleased`, `in-flight`, `healthy`, `failed`.
    pub state: &'static str,
    pub detail: Option<String>,
    pub released_at: Option<UnixMillis>,
    /// What was desired before the release, if anything.
    pub previous_version: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RolloutView {
    pub record: RolloutRecord,
    pub waves: Vec<WaveView>,
    pub agents: Vec<AgentInRollout>,
}

fn member_name(m: Member) -> &'static str {
    match m {
        Member::Unreleased => "unreleased",
        Member::InFlight => "in-flight",
        Member::Healthy => "healthy",
        Member::Failed => "failed",
    }
}

pub(super) fn build(
    record: RolloutRecord,
    agents: Vec<RolloutAgent>,
    health: Vec<(Member, Option<String>)>,
) -> RolloutView {
    let count = agents.iter().map(|a| a.wave + 1).max().unwrap_or(0);
    let (phase, current) = (record.state.phase, record.state.wave);
    let waves = (0..count)
        .map(|w| {
            let of: Vec<Member> = agents
                .iter()
                .zip(&health)
                .filter(|(a, _)| a.wave == w)
                .map(|(_, (m, _))| *m)
                .collect();
            let n = |m: Member| of.iter().filter(|x| **x == m).count();
            let state = match phase {
                Phase::Completed => "passed",
                Phase::RolledBack if w <= current => "rolled back",
                _ if w < current => "passed",
                Phase::Running | Phase::Paused | Phase::Halted if w == current => phase.name(),
                Phase::Pending | Phase::Running | Phase::Paused => "waiting",
                Phase::Halted | Phase::RolledBack => "not released",
            };
            WaveView {
                name: record.plan.wave_name(w),
                size: of.len(),
                released: of.len() - n(Member::Unreleased),
                healthy: n(Member::Healthy),
                failed: n(Member::Failed),
                in_flight: n(Member::InFlight),
                state,
            }
        })
        .collect();
    let agents = agents
        .into_iter()
        .zip(health)
        .map(|(a, (m, detail))| AgentInRollout {
            wave: record.plan.wave_name(a.wave),
            agent: a.agent,
            tenant: a.tenant,
            state: member_name(m),
            detail,
            released_at: a.released_at,
            previous_version: a.previous.map(|p| p.version),
        })
        .collect();
    RolloutView {
        record,
        waves,
        agents,
    }
}
