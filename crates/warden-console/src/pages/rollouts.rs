//! Staged rollouts: the list (newest first) and one rollout's status (its plan, the waves with
//! their counts, the halted reason, every targeted agent), with pause, resume and rollback
//! forms for operators. The controller refuses what the phase does not allow; the forms are
//! only offered where they apply, so a NOC is not shown buttons that can only fail.

use maud::{Markup, html};
use warden_access::Role;
use warden_controller::rollout::{Phase, RolloutRecord, RolloutView};
use warden_fleet_wire::UnixMillis;

use super::{encode, layout, shown};
use crate::session::Session;
use crate::times;

fn may_act(session: &Session) -> bool {
    session
        .caller
        .as_ref()
        .is_some_and(|c| c.role >= Role::Operator)
}

fn plan_waves(r: &RolloutRecord) -> String {
    r.plan
        .waves
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn list(session: &Session, rollouts: &[RolloutRecord], now: UnixMillis) -> Markup {
    let body = html! {
        h1 { "Rollouts" }
        @if rollouts.is_empty() { p #none { "No rollouts yet." } } @else {
            table #rollouts {
                thead { tr { th { "Rollout" } th { "Plugin" } th { "Target" } th { "State" }
                    th { "Wave" } th { "Started" } th { "By" } } }
                tbody { @for r in rollouts { tr.rollout {
                    td { a href=(format!("/rollouts/{}", encode(&r.id))) { code { (r.id) } } }
                    td { (shown(&r.plugin)) " " (shown(&r.version)) }
                    td { code { (shown(&r.target)) } }
                    td class=(format!("state {}", r.state.phase.name())) { (r.state.phase.name()) }
                    td { (r.plan.wave_name(r.state.wave)) }
                    td { span title=(times::utc(r.created_at)) { (times::ago(r.created_at, now)) } }
                    td { (shown(&r.created_by)) }
                } } }
            }
        }
    };
    layout("Rollouts", Some(session), body)
}

/// One action's form: a POST with the session's CSRF token.
fn action(session: &Session, id: &str, what: &str, label: &str) -> Markup {
    html! {
        form.action method="post" action=(format!("/rollouts/{}/{what}", encode(id))) {
            input type="hidden" name="csrf" value=(session.csrf);
            button id=(what) type="submit" { (label) }
        }
    }
}

pub fn page(session: &Session, view: &RolloutView, now: UnixMillis) -> Markup {
    let r = &view.record;
    let phase = r.state.phase;
    let body = html! {
        h1 { "Rollout " code { (r.id) } }
        table.facts {
            tr { th { "Plugin" } td { (shown(&r.plugin)) " " (shown(&r.version)) } }
            tr { th { "SHA-256" } td { code { (r.sha256) } } }
            tr { th { "Target" } td { code { (shown(&r.target)) } } }
            tr { th { "State" } td { span #state class=(format!("state {}", phase.name())) { (phase.name()) } } }
            tr { th { "Current wave" } td { (r.plan.wave_name(r.state.wave)) } }
            @if let Some(reason) = &r.state.reason {
                tr { th { "Reason" } td #reason { (shown(reason)) } }
            }
            tr { th { "Canary" } td { (r.plan.canary) " agent(s)" } }
            tr { th { "Waves" } td { (plan_waves(r)) } }
            tr { th { "Max in flight" } td { @if r.plan.max_in_flight == 0 { "whole wave" } @else { (r.plan.max_in_flight) } } }
            tr { th { "Max failures" } td { (r.plan.max_failure_percent) "%" } }
            tr { th { "Soak" } td { (r.plan.soak_ms / 1000) " s" } }
            tr { th { "Started" } td { (times::ago(r.created_at, now)) " (" (times::utc(r.created_at)) ") by " (shown(&r.created_by)) } }
            tr { th { "Updated" } td { (times::ago(r.updated_at, now)) } }
        }
        @if may_act(session) {
            div #actions {
                @if matches!(phase, Phase::Pending | Phase::Running) { (action(session, &r.id, "pause", "Pause")) }
                @if phase == Phase::Paused || phase == Phase::Halted { (action(session, &r.id, "resume", "Resume")) }
                @if phase != Phase::RolledBack { (action(session, &r.id, "rollback", "Roll back")) }
            }
        } @else {
            p.hint { "Pausing, resuming and rolling back need the operator role." }
        }
        section {
            h2 { "Waves" }
            table #waves {
                thead { tr { th { "Wave" } th { "Agents" } th { "Released" } th { "Healthy" } th { "Failed" } th { "In flight" } th { "State" } } }
                tbody { @for w in &view.waves { tr.wave {
                    td { (w.name) } td.num { (w.size) } td.num { (w.released) } td.num { (w.healthy) }
                    td.num { (w.failed) } td.num { (w.in_flight) } td { (w.state) }
                } } }
            }
        }
        section {
            h2 { "Agents" }
            table #rollout-agents {
                thead { tr { th { "Agent" } th { "Tenant" } th { "Wave" } th { "State" } th { "Detail" } th { "Before" } } }
                tbody { @for a in &view.agents { tr {
                    td { a href=(format!("/agents/{}", encode(a.agent.as_str()))) { code { (a.agent.as_str()) } } }
                    td { (a.tenant.as_str()) }
                    td { (a.wave) }
                    td class=(format!("state {}", a.state)) { (a.state) }
                    td { (shown(a.detail.as_deref().unwrap_or(""))) }
                    td { (shown(a.previous_version.as_deref().unwrap_or("—"))) }
                } } }
            }
        }
    };
    layout("Rollout", Some(session), body)
}

#[cfg(test)]
mod tests {
    use warden_controller::rollout::{AgentInRollout, Plan, PlanRequest, State, WaveView};
    use warden_fleet_identity::{AgentKey, TenantId};

    use super::*;
    use crate::pages::test_session as session;

    /// A halted rollout whose reason and agent detail carry what a plugin wrote.
    fn halted() -> RolloutView {
        let tenant = TenantId::new("acme").expect("tenant");
        let mut state = State::new();
        state.phase = Phase::Halted;
        state.reason = Some("incident: \u{1b}[31m<b>disk</b>\u{1b}[0m full".into());
        let plan = Plan::parse(&PlanRequest {
            canary: 1,
            waves: "100%".into(),
            max_failures: "0%".into(),
            ..PlanRequest::default()
        })
        .expect("plan");
        RolloutView {
            record: RolloutRecord {
                id: "ro-00112233aabbccdd".into(),
                plugin: "disk-usage".into(),
                version: "0.2.0".into(),
                sha256: "b".repeat(64),
                size: 3,
                bundle: Vec::new(),
                target: "tenant=acme".into(),
                tenants: vec![tenant.clone()],
                plan,
                state,
                created_at: UnixMillis(0),
                created_by: "noc".into(),
                updated_at: UnixMillis(0),
            },
            waves: vec![WaveView {
                name: "canary".into(),
                size: 1,
                released: 1,
                healthy: 0,
                failed: 1,
                in_flight: 0,
                state: "halted",
            }],
            agents: vec![AgentInRollout {
                agent: AgentKey::generate().id(),
                tenant,
                wave: "canary".into(),
                state: "failed",
                detail: Some("refused: \u{7}<script>x</script>".into()),
                released_at: Some(UnixMillis(0)),
                previous_version: None,
            }],
        }
    }

    #[test]
    fn what_plugins_wrote_is_inert_and_a_halted_rollout_offers_resume_and_rollback() {
        let html = page(&session("noc", Role::Operator), &halted(), UnixMillis(0)).into_string();
        assert!(
            !html.contains('\u{1b}') && !html.contains('\u{7}'),
            "{html}"
        );
        assert!(html.contains("&lt;b&gt;disk&lt;/b&gt; full"), "{html}");
        assert!(html.contains("refused: \\u{7}&lt;script&gt;"), "{html}");
        assert!(html.contains("id=\"resume\"") && html.contains("id=\"rollback\""));
        assert!(
            !html.contains("id=\"pause\""),
            "a halted rollout is not paused"
        );
        assert!(
            html.contains("value=\"c5rf\""),
            "the forms carry the CSRF token"
        );
        let html = page(&session("noc", Role::Viewer), &halted(), UnixMillis(0)).into_string();
        assert!(!html.contains("id=\"resume\"") && !html.contains("id=\"rollback\""));
    }
}
