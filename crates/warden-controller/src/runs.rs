//! A run across its agents: each agent's state now, and whom to send the command to again.
//! Pure, clock-injected.
//!
//! Per targeted agent, from its stored result and the run's expiry:
//!
//! | state | when |
//! | --- | --- |
//! | `missing` | no answer yet, the command has not expired: it is re-sent (below) |
//! | `running` | the agent accepted it (a `running` result), no final result yet |
//! | `succeeded` / `failed` / `cancelled` / `refused` | its final result |
//! | `expired` | no answer at all by `expires_at`: never re-sent again |
//!
//! **Re-sends.** Commands go over core NATS (at most once), so the controller re-sends to each
//! `missing` agent with a backoff: [`RESEND_FIRST_MS`] after the first send, doubling, at most
//! [`RESEND_MAX_MS`] apart, until the command expires. An agent coming back online (a heartbeat
//! after it was not online, or its first after a restart) gets its unanswered commands at once,
//! so the backoff bounds the load of offline agents, not how soon a returning one hears.
//! Re-sends are safe: the agent's ledger never runs a run id twice.
//!
//! A run is **closed** (no more re-sends) when every agent has answered or expired; results
//! arriving later are still stored and shown.

use std::collections::BTreeMap;

use serde::Serialize;
use warden_fleet_identity::{AgentId, TenantId};
use warden_fleet_wire::{RefusalReason, RunStatus, UnixMillis};

use crate::store::{ResultRecord, RunRecord, TargetRecord};

/// First re-send to an agent that has not answered: 5 s. Long enough for a loaded agent to
/// accept (a PubAck of `running` takes milliseconds), short enough that a command lost in a
/// reconnect is repeated before a human wonders.
pub const RESEND_FIRST_MS: i64 = 5_000;
/// Longest gap between re-sends: 5 minutes. A day-long run with thousands of offline agents
/// costs one message per agent per 5 minutes, and returning agents are served by their
/// heartbeat anyway.
pub const RESEND_MAX_MS: i64 = 5 * 60_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentState {
    Missing,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Refused,
    Expired,
}

impl AgentState {
    pub fn name(self) -> &'static str {
        match self {
            AgentState::Missing => "missing",
            AgentState::Running => "running",
            AgentState::Succeeded => "succeeded",
            AgentState::Failed => "failed",
            AgentState::Cancelled => "cancelled",
            AgentState::Refused => "refused",
            AgentState::Expired => "expired",
        }
    }

    /// Nothing more is expected from the agent.
    pub fn is_settled(self) -> bool {
        !matches!(self, AgentState::Missing | AgentState::Running)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRun {
    pub agent: AgentId,
    pub tenant: TenantId,
    pub hostname: String,
    pub state: AgentState,
    pub reason: Option<RefusalReason>,
    pub error: Option<String>,
    pub started_at: Option<UnixMillis>,
    pub finished_at: Option<UnixMillis>,
    pub sends: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunView {
    pub run: RunRecord,
    pub agents: Vec<AgentRun>,
    /// Every agent is settled.
    pub done: bool,
}

impl RunView {
    pub fn count(&self, state: AgentState) -> usize {
        self.agents.iter().filter(|a| a.state == state).count()
    }
}

/// The run's state at `now`. `hostnames` names the agents for humans (missing ones show their
/// id only).
pub fn view(
    run: &RunRecord,
    targets: &[TargetRecord],
    results: &[ResultRecord],
    hostnames: &BTreeMap<AgentId, String>,
    now: UnixMillis,
) -> RunView {
    let by_agent: BTreeMap<&AgentId, &ResultRecord> =
        results.iter().map(|r| (&r.agent, r)).collect();
    let expired = now > run.expires_at;
    let agents: Vec<AgentRun> = targets
        .iter()
        .map(|t| {
            let result = by_agent.get(&t.agent);
            let (state, reason) = match result.map(|r| &r.status) {
                None if expired => (AgentState::Expired, None),
                None => (AgentState::Missing, None),
                Some(RunStatus::Running) => (AgentState::Running, None),
                Some(RunStatus::Succeeded) => (AgentState::Succeeded, None),
                Some(RunStatus::Failed) => (AgentState::Failed, None),
                Some(RunStatus::Cancelled) => (AgentState::Cancelled, None),
                Some(RunStatus::Refused { reason }) => (AgentState::Refused, Some(*reason)),
            };
            AgentRun {
                agent: t.agent.clone(),
                tenant: t.tenant.clone(),
                hostname: hostnames.get(&t.agent).cloned().unwrap_or_default(),
                state,
                reason,
                error: result.and_then(|r| r.error.clone()),
                started_at: result.and_then(|r| r.started_at),
                finished_at: result.and_then(|r| r.finished_at),
                sends: t.sends,
            }
        })
        .collect();
    let done = agents.iter().all(|a| a.state.is_settled());
    RunView {
        run: run.clone(),
        agents,
        done,
    }
}

/// The gap after the `sends`-th send before the next.
pub fn resend_delay_ms(sends: u32) -> i64 {
    let doublings = sends.saturating_sub(1).min(16);
    RESEND_FIRST_MS
        .saturating_mul(1_i64 << doublings)
        .min(RESEND_MAX_MS)
}

/// The agents to send the command to now: not answered, not expired, and due by the backoff
/// (never sent at all: due at once).
pub fn due_sends(
    run: &RunRecord,
    targets: &[TargetRecord],
    results: &[ResultRecord],
    now: UnixMillis,
) -> Vec<AgentId> {
    if now > run.expires_at {
        return Vec::new();
    }
    let answered: Vec<&AgentId> = results.iter().map(|r| &r.agent).collect();
    targets
        .iter()
        .filter(|t| !answered.contains(&&t.agent))
        .filter(|t| match t.last_sent {
            None => true,
            Some(at) => now.millis_since(at) >= resend_delay_ms(t.sends),
        })
        .map(|t| t.agent.clone())
        .collect()
}

/// Whether the controller can stop re-sending: every agent answered (anything, `running`
/// included) or the command expired.
pub fn can_close(
    run: &RunRecord,
    targets: &[TargetRecord],
    results: &[ResultRecord],
    now: UnixMillis,
) -> bool {
    now > run.expires_at
        || targets
            .iter()
            .all(|t| results.iter().any(|r| r.agent == t.agent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_fleet_wire::RunId;

    const NOW: UnixMillis = UnixMillis(1_764_590_000_000);

    fn agent() -> AgentId {
        AgentId::new(nkeys::KeyPair::new_user().public_key()).expect("agent")
    }

    fn acme() -> TenantId {
        TenantId::new("acme").expect("tenant")
    }

    fn run() -> RunRecord {
        RunRecord {
            id: RunId::from_parts(NOW, [0; 10]),
            runbook: "r".into(),
            target: "*".into(),
            params: BTreeMap::new(),
            dry_run: false,
            requested_by: "noc".into(),
            created_at: NOW,
            expires_at: NOW.plus_millis(600_000),
            tenants: vec![acme()],
            bundle: None,
            closed_at: None,
        }
    }

    fn target(agent: &AgentId, sends: u32, last_sent: Option<UnixMillis>) -> TargetRecord {
        TargetRecord {
            agent: agent.clone(),
            tenant: acme(),
            sends,
            last_sent,
        }
    }

    fn result(agent: &AgentId, status: RunStatus) -> ResultRecord {
        ResultRecord {
            agent: agent.clone(),
            status,
            error: None,
            started_at: None,
            finished_at: None,
            steps: Vec::new(),
            received_at: NOW,
        }
    }

    #[test]
    fn resends_back_off_and_stop_at_answer_or_expiry() {
        assert_eq!(resend_delay_ms(1), RESEND_FIRST_MS);
        assert_eq!(resend_delay_ms(2), 2 * RESEND_FIRST_MS);
        assert_eq!(resend_delay_ms(40), RESEND_MAX_MS);
        let r = run();
        let (a, b, c) = (agent(), agent(), agent());
        let targets = [
            target(&a, 0, None),
            target(&b, 1, Some(NOW)),
            target(&c, 1, Some(NOW)),
        ];
        let results = [result(&c, RunStatus::Running)];
        assert_eq!(due_sends(&r, &targets, &results, NOW), vec![a.clone()]);
        let later = NOW.plus_millis(RESEND_FIRST_MS);
        assert_eq!(due_sends(&r, &targets, &results, later), vec![a, b]);
        assert!(due_sends(&r, &targets, &results, r.expires_at.plus_millis(1)).is_empty());
        assert!(!can_close(&r, &targets, &results, later));
        assert!(can_close(
            &r,
            &targets,
            &results,
            r.expires_at.plus_millis(1)
        ));
    }

    #[test]
    fn the_view_says_missing_then_expired_and_done_when_all_settled() {
        let r = run();
        let (a, b, c) = (agent(), agent(), agent());
        let targets = [
            target(&a, 1, Some(NOW)),
            target(&b, 1, Some(NOW)),
            target(&c, 2, Some(NOW)),
        ];
        let results = [
            result(&a, RunStatus::Succeeded),
            result(
                &b,
                RunStatus::Refused {
                    reason: RefusalReason::Untrusted,
                },
            ),
        ];
        let names = BTreeMap::new();
        let v = view(&r, &targets, &results, &names, NOW);
        assert_eq!(v.count(AgentState::Succeeded), 1);
        assert_eq!(v.count(AgentState::Refused), 1);
        assert_eq!(v.count(AgentState::Missing), 1);
        assert!(!v.done);
        let v = view(&r, &targets, &results, &names, r.expires_at.plus_millis(1));
        assert_eq!(v.count(AgentState::Expired), 1);
        assert!(v.done);
        let b_row = v.agents.iter().find(|x| x.agent == b).expect("b");
        assert_eq!(b_row.reason, Some(RefusalReason::Untrusted));
        // Running past the expiry is still running: the agent has it.
        let running = [result(&a, RunStatus::Running)];
        let v = view(
            &r,
            &targets[..1],
            &running,
            &names,
            r.expires_at.plus_millis(1),
        );
        assert_eq!(v.agents[0].state, AgentState::Running);
        assert!(!v.done);
    }
}
