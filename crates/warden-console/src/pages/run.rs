//! One run: its request, each targeted agent's state, steps and error, and for an operator a
//! cancel of a run still going on. The agents' table
//! is also what the live stream sends ([`agents_table`]), rendered (and escaped) here.

use maud::{Markup, html};
use warden_access::Role;
use warden_controller::runs::RunView;
use warden_fleet_wire::UnixMillis;

use super::{encode, layout, shown};
use crate::session::Session;
use crate::times;

/// The agents' table (the live part).
pub fn agents_table(
    view: &RunView,
    steps: &[(String, Vec<warden_fleet_wire::StepSummary>)],
) -> Markup {
    html! {
        p #summary { @if view.done { "Finished" } @else { "In progress" } ": "
            (view.agents.iter().filter(|a| a.state.is_settled()).count()) " of " (view.agents.len()) " agents settled" }
        table #agents {
            thead { tr { th { "Agent" } th { "Tenant" } th { "State" } th { "Sends" } th { "Error" } th { "Steps" } } }
            tbody { @for a in &view.agents {
                @let name = if a.hostname.is_empty() { a.agent.as_str() } else { a.hostname.as_str() };
                tr {
                    td { a href=(format!("/agents/{}", encode(a.agent.as_str()))) { (shown(name)) } }
                    td { (a.tenant.as_str()) }
                    td class=(format!("state {}", a.state.name())) { (a.state.name())
                        @if let Some(r) = a.reason { " (" (r.name()) ")" } }
                    td.num { (a.sends) }
                    td { (shown(a.error.as_deref().unwrap_or(""))) }
                    td { @if let Some((_, s)) = steps.iter().find(|(id, _)| id == a.agent.as_str()) {
                        ol.steps { @for step in s { li {
                            (shown(&step.name)) ": " (format!("{:?}", step.status).to_lowercase())
                            @if !step.detail.is_empty() { pre.output { (shown(&step.detail)) } }
                        } } }
                    } }
                }
            } }
        }
    }
}

pub fn page(
    session: &Session,
    view: &RunView,
    steps: &[(String, Vec<warden_fleet_wire::StepSummary>)],
    now: UnixMillis,
) -> Markup {
    let r = &view.run;
    // Only operators see the button; the controller decides again on the POST.
    let may_cancel = session
        .caller
        .as_ref()
        .is_some_and(|c| c.role >= Role::Operator);
    let body = html! {
        h1 { "Run " code { (r.id.as_str()) } }
        table.facts {
            tr { th { "Runbook" } td { (shown(&r.runbook)) } }
            tr { th { "Target" } td { code { (shown(&r.target)) } } }
            tr { th { "Requested by" } td { (shown(&r.requested_by)) } }
            tr { th { "Started" } td { (times::ago(r.created_at, now)) " (" (times::utc(r.created_at)) ")" } }
            tr { th { "Dry run" } td { (if r.dry_run { "yes" } else { "no" }) } }
            tr { th { "Expires" } td { (times::utc(r.expires_at)) } }
        }
        @if !view.done && may_cancel {
            form.action method="post" action=(format!("/runs/{}/cancel", encode(r.id.as_str()))) {
                input type="hidden" name="csrf" value=(session.csrf);
                button #cancel type="submit" { "Cancel the run" }
            }
        }
        div #live data-live=[(!view.done).then(|| format!("/runs/{}/live", encode(r.id.as_str())))] {
            (agents_table(view, steps))
        }
    };
    layout("Run", Some(session), body)
}
