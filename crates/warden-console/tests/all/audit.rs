//! The agent page's "Audit" section over plain HTTP: the controller's own audit records about
//! that agent (the run dispatched to it, its result, its revocation), newest first and inert,
//! and none about another agent.

use hyper::StatusCode;
use warden_access::Role;
use warden_controller::controller::DispatchRequest;
use warden_fleet_identity::AgentId;
use warden_fleet_wire::{RefusalReason, RunId, RunResult, RunStatus};

use crate::patches::holds;
use crate::support::http::Client;
use crate::support::*;

async fn run_on(h: &Harness, agent: &AgentId, runbook: &str) -> RunId {
    h.controller()
        .dispatch(
            &caller("noc-operator", Role::Operator),
            DispatchRequest {
                runbook: runbook.into(),
                target: format!("agent={agent}"),
                params: Default::default(),
                dry_run: false,
                ttl_secs: None,
                bundle: None,
            },
        )
        .await
        .expect("dispatched")
        .run
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_page_lists_its_own_audit_records_and_not_another_agents() {
    let h = Harness::start().await;
    let agents = h.agents("acme", &["db-1", "web-1"]);
    let (a, b) = (&agents[0], &agents[1]);
    let a_run = run_on(&h, &a.id, "disk-check").await;
    let b_run = run_on(&h, &b.id, "web-check").await;
    h.result(&RunResult::new(
        a_run.clone(),
        a.tenant.clone(),
        a.id.clone(),
        RunStatus::Refused {
            reason: RefusalReason::Untrusted,
        },
    ));
    let admin = warden_access::Caller {
        name: "noc-admin".into(),
        role: Role::Admin,
        scope: warden_access::Scope::AllTenants,
    };
    h.controller()
        .revoke(&admin, &a.id, "<script>window.__pwned=1</script>")
        .await
        .expect("revoked");

    let mut c = Client::new(&h.url);
    c.sign_in(NOC_VIEWER).await;
    let page = c.get(&format!("/agents/{}", a.id)).await;
    assert_eq!(page.status, StatusCode::OK);
    let body = &page.body;
    holds(body, "id=\"audit\"");
    let audit = &body[body.find("id=\"audit\"").unwrap_or(0)..];
    // Newest first: the revocation, the agent's refusal, the dispatch of its run.
    let at = |text: &str| {
        audit
            .find(text)
            .unwrap_or_else(|| panic!("{text}: {audit}"))
    };
    assert!(at("fleet.revoke") < at("fleet.result"));
    assert!(at("fleet.result") < at("fleet.dispatch"));
    holds(audit, "status=refused untrusted");
    holds(audit, &format!("run={a_run}"));
    holds(audit, "noc-operator");
    // What an admin typed is text, never markup.
    assert!(!body.contains("<script>window.__pwned"), "{body}");
    holds(
        audit,
        "reason=&lt;script&gt;window.__pwned=1&lt;/script&gt;",
    );
    // Nothing of the other agent's.
    assert!(!audit.contains(b_run.as_str()), "{audit}");

    let other = c.get(&format!("/agents/{}", b.id)).await.body;
    let other = &other[other.find("id=\"audit\"").unwrap_or(0)..];
    holds(other, &format!("run={b_run}"));
    assert!(!other.contains(a_run.as_str()), "{other}");
    assert!(!other.contains("fleet.revoke"), "{other}");
}
