//! Four-eyes requests waiting for a second operator: what each is bound to (the kind, the
//! artifact and its SHA-256, the parameters, the target and its agents, the expiry, who asked
//! and why it needs approval), with approve and deny forms for operators. Every check
//! (role, scope, not the requester, not expired, decided once) is the controller's; a refusal
//! comes back as a page with its message.

use maud::{Markup, html};
use warden_access::Role;
use warden_controller::approvals::{ApprovalRecord, ApprovalState};
use warden_fleet_wire::UnixMillis;

use super::{encode, layout, shown};
use crate::session::Session;
use crate::times;

fn decide(session: &Session, r: &ApprovalRecord, what: &str, label: &str) -> Markup {
    html! {
        form.action method="post" action=(format!("/approvals/{}/{what}", encode(r.id.as_str()))) {
            input type="hidden" name="csrf" value=(session.csrf);
            button class=(what) type="submit" { (label) }
        }
    }
}

pub fn page(session: &Session, approvals: &[ApprovalRecord], now: UnixMillis) -> Markup {
    let caller = session.caller.as_ref();
    // The controller decides whether this caller may approve (its `[approvals] approvers`);
    // the buttons are shown to every role that can under some setting.
    let operator = caller.is_some_and(|c| c.role >= Role::Approver);
    let body = html! {
        h1 { "Approvals" }
        @if approvals.is_empty() { p #none { "Nothing waits for approval." } }
        @if !operator { p.hint { "Approving and denying need the approver role (or, as the controller is set, operator)." } }
        @for r in approvals {
            @let s = &r.subject;
            section.approval id=(format!("approval-{}", r.id)) {
                h2 { (s.kind.name()) " " (shown(&s.artifact)) " · " code { (r.id.as_str()) } }
                table.facts {
                    tr { th { "State" } td { span class=(format!("state {}", r.state.name())) { (r.state.name()) } } }
                    tr { th { "Requested by" } td.requester { (shown(&r.requested_by)) } }
                    tr { th { "Requested" } td { (times::ago(r.created_at, now)) " (" (times::utc(r.created_at)) ")" } }
                    tr { th { "Expires" } td { (times::utc(r.expires_at)) } }
                    tr { th { "Artifact SHA-256" } td { code.sha256 {
                        @match &s.sha256 { Some(h) => (shown(h)), None => "— (each agent's own signed copy)" } } } }
                    tr { th { "Target" } td { code { (shown(&s.target)) } " (" (s.agents.len()) " agent(s); tenants "
                        (r.tenants.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")) ")" } }
                    @if s.dry_run { tr { th { "Dry run" } td { "yes" } } }
                    tr { th { "Parameters" } td {
                        @if s.params.is_empty() { "none" } @else {
                            ul.params { @for (k, v) in &s.params { li { code { (shown(k)) "=" (shown(v)) } } } }
                        } } }
                    tr { th { "Why" } td { (r.reasons.join("; ")) } }
                    tr { th { "Digest" } td { code { (r.digest) } } }
                    @if let Some(by) = &r.decided_by { tr { th { "Decided by" } td.decider { (shown(by)) } } }
                }
                @if operator {
                    div.actions {
                        @if r.state == ApprovalState::Pending {
                            @if caller.is_some_and(|c| c.name == r.requested_by) {
                                p.hint { "You requested this: a second operator must approve it." }
                            } @else {
                                (decide(session, r, "approve", "Approve"))
                            }
                        }
                        @if matches!(r.state, ApprovalState::Pending | ApprovalState::Approved) {
                            (decide(session, r, "deny", "Deny"))
                        }
                    }
                }
            }
        }
    };
    layout("Approvals", Some(session), body)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use warden_controller::approvals::{ApprovalSubject, RequestId, SubjectKind};
    use warden_fleet_identity::{AgentKey, TenantId};

    use super::*;
    use crate::pages::test_session as session;

    fn request() -> ApprovalRecord {
        let tenant = TenantId::new("acme").expect("tenant");
        ApprovalRecord {
            id: RequestId::parse("01JD0000000000000000000000").expect("id"),
            subject: ApprovalSubject {
                kind: SubjectKind::Run,
                artifact: "disk-check".into(),
                sha256: Some("a".repeat(64)),
                params: BTreeMap::from([("path".into(), "\u{1b}[2J/var<i>".into())]),
                dry_run: false,
                ttl_ms: 0,
                target: "tenant=acme".into(),
                agents: vec![(AgentKey::generate().id(), tenant.clone())],
                approval: None,
            },
            bundle: None,
            digest: "d".repeat(64),
            reasons: vec!["2 agents, over 1".into()],
            tenants: vec![tenant],
            requested_by: "op-b".into(),
            created_at: UnixMillis(0),
            expires_at: UnixMillis(600_000),
            state: ApprovalState::Pending,
            decided_by: None,
            decided_at: None,
            run: None,
            note: None,
        }
    }

    #[test]
    fn a_request_shows_what_it_binds_inert_and_only_another_operator_gets_approve() {
        let html = page(
            &session("op-a", Role::Operator),
            &[request()],
            UnixMillis(0),
        )
        .into_string();
        assert!(html.contains(&"a".repeat(64)), "the artifact's digest");
        assert!(
            html.contains("path=/var&lt;i&gt;"),
            "the parameter, inert: {html}"
        );
        assert!(!html.contains('\u{1b}'));
        assert!(html.contains("op-b") && html.contains("tenant=acme"));
        assert!(html.contains("class=\"approve\"") && html.contains("class=\"deny\""));
        let own = page(
            &session("op-b", Role::Operator),
            &[request()],
            UnixMillis(0),
        )
        .into_string();
        assert!(
            !own.contains("class=\"approve\""),
            "not the requester's own"
        );
        assert!(
            own.contains("class=\"deny\""),
            "the requester may withdraw it"
        );
        let viewer = page(&session("v", Role::Viewer), &[request()], UnixMillis(0)).into_string();
        assert!(!viewer.contains("class=\"approve\"") && !viewer.contains("class=\"deny\""));
    }
}
