//! The rollouts and approvals pages over plain HTTP: a viewer reads them but gets no buttons
//! and a 403 for a POST (nothing changes, the refusal audited); an operator pauses, resumes
//! and rolls back a rollout, approves another operator's request and cancels a run;
//! self-approval is the controller's refusal, shown as its message.

use hyper::{StatusCode, header};
use warden_access::Role;
use warden_controller::FleetError;
use warden_controller::approvals::{ApprovalState, RequestId};
use warden_controller::controller::DispatchRequest;
use warden_controller::rollout::Phase;

use crate::support::http::{Client, Reply, form};
use crate::support::*;

/// Agents of `tenant` named `hosts` and a running rollout of a plugin to them (its canary
/// released), started by `noc-operator`.
async fn running_rollout(h: &Harness, tenant: &str, hosts: &[&str]) -> String {
    h.agents(tenant, hosts);
    let bundle = plugin_bundle(&h.dir.path().join("plugin"), "0.2.0");
    let v = h
        .start_rollout(
            &caller("noc-operator", Role::Operator),
            &bundle,
            &format!("tenant={tenant}"),
            None,
        )
        .await
        .expect("the rollout starts");
    assert_eq!(v.record.state.phase, Phase::Running);
    v.record.id
}

/// POST a form with only the CSRF token (what the page's buttons send).
async fn act(c: &mut Client, path: &str, csrf: &str) -> Reply {
    c.post(path, &form(&[("csrf", csrf)])).await
}

fn phase(h: &Harness, id: &str) -> Phase {
    h.controller()
        .rollout_status(&caller("test", Role::Viewer), id)
        .expect("status")
        .record
        .state
        .phase
}

/// A run over two agents requested by `noc-operator-b`: above the policy's one agent, so a
/// request waits instead.
async fn pending_run(h: &Harness) -> RequestId {
    h.agents("acme", &["web-1", "web-2"]);
    let request = DispatchRequest {
        runbook: "disk-check".into(),
        target: "tenant=acme".into(),
        params: [("min-free".to_string(), "10%".to_string())].into(),
        dry_run: false,
        ttl_secs: None,
        bundle: None,
    };
    match h
        .controller()
        .dispatch(&caller("noc-operator-b", Role::Operator), request)
        .await
    {
        Err(FleetError::NeedsApproval(id)) => id,
        other => panic!("expected a request, got {other:?}"),
    }
}

fn state_of(h: &Harness, id: &RequestId) -> ApprovalState {
    h.controller()
        .approval(&caller("test", Role::Viewer), id)
        .expect("the request")
        .state
}

#[tokio::test(flavor = "multi_thread")]
async fn a_viewer_sees_rollouts_and_approvals_without_buttons_and_cannot_pause_or_approve() {
    let h = Harness::with_approvals().await;
    let request = pending_run(&h).await;
    // One agent: within the policy, so this rollout starts without a request.
    let rollout = running_rollout(&h, "globex", &["db-1"]).await;

    let mut c = Client::new(&h.url);
    c.sign_in(NOC_VIEWER).await;
    let list = c.get("/rollouts").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains(&rollout), "{}", list.body);
    assert!(list.body.contains("href=\"/approvals\""), "navigation");
    let page = c.get(&format!("/rollouts/{rollout}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"waves\""), "{}", page.body);
    assert!(
        !page.body.contains("id=\"pause\""),
        "no pause button for a viewer"
    );
    let approvals = c.get("/approvals").await;
    assert!(
        approvals.body.contains(request.as_str()),
        "{}",
        approvals.body
    );
    assert!(
        approvals.body.contains("min-free"),
        "the bound parameters shown"
    );
    assert!(
        !approvals.body.contains("class=\"approve\""),
        "no approve button"
    );

    let csrf = page.csrf().expect("the sign-out form's token");
    let r = act(&mut c, &format!("/rollouts/{rollout}/pause"), &csrf).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains("operator role"), "{}", r.body);
    assert_eq!(phase(&h, &rollout), Phase::Running, "not paused");
    let r = act(&mut c, &format!("/approvals/{request}/approve"), &csrf).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(
        state_of(&h, &request),
        ApprovalState::Pending,
        "not approved"
    );

    let denied: Vec<_> = h
        .audited("console.action")
        .into_iter()
        .filter(|a| a["decision"] == "denied")
        .collect();
    assert_eq!(denied.len(), 2, "{denied:?}");
    assert_eq!(denied[0]["action"], "rollout-pause");
    assert_eq!(denied[0]["caller"], "noc-viewer");
    assert_eq!(denied[1]["action"], "approve");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_pauses_resumes_and_rolls_back_a_rollout_from_its_page() {
    let h = Harness::start().await;
    let rollout = running_rollout(&h, "acme", &["db-1", "db-2"]).await;
    let mut c = Client::new(&h.url);
    c.sign_in(NOC_OPERATOR).await;
    let path = format!("/rollouts/{rollout}");
    let page = c.get(&path).await;
    assert!(page.body.contains("id=\"pause\""), "{}", page.body);
    assert!(page.body.contains("canary"), "the waves: {}", page.body);
    let csrf = page.csrf().expect("csrf");

    // Without the token: refused, still running.
    let r = c.post(&format!("{path}/pause"), "").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(phase(&h, &rollout), Phase::Running);

    for (action, after) in [("pause", Phase::Paused), ("resume", Phase::Running)] {
        let r = act(&mut c, &format!("{path}/{action}"), &csrf).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{action}: {}", r.body);
        assert_eq!(r.header(header::LOCATION).as_deref(), Some(path.as_str()));
        assert_eq!(phase(&h, &rollout), after, "after {action}");
    }
    let resumed = c.get(&path).await;
    assert!(
        resumed.body.contains("id=\"pause\""),
        "running again: {}",
        resumed.body
    );

    // The canary had nothing desired before: the controller refuses a plain rollback and
    // says why; the page shows its message.
    let r = act(&mut c, &format!("{path}/rollback"), &csrf).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains("no earlier desired version"), "{}", r.body);
    assert_eq!(phase(&h, &rollout), Phase::Running);

    let actions = h.audited("console.action");
    let decisions: Vec<(&str, &str)> = actions
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap_or_default(),
                a["decision"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        decisions,
        [
            ("rollout-pause", "done"),
            ("rollout-resume", "done"),
            ("rollout-rollback", "failed")
        ]
    );
    assert_eq!(h.audited("fleet.rollout.pause").len(), 1);
    assert_eq!(h.audited("console.csrf-refused").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_rolls_back_a_rollout_to_what_was_desired_before() {
    let h = Harness::start().await;
    h.agents("acme", &["db-1", "db-2"]);
    let op = caller("noc-operator", Role::Operator);
    let old = plugin_bundle(&h.dir.path().join("old"), "0.1.0");
    h.controller()
        .publish(&op, &old, "tenant=acme")
        .await
        .expect("the old version published");
    let new = plugin_bundle(&h.dir.path().join("new"), "0.2.0");
    let rollout = h
        .start_rollout(&op, &new, "tenant=acme", None)
        .await
        .expect("starts")
        .record
        .id;
    let mut c = Client::new(&h.url);
    c.sign_in(NOC_OPERATOR).await;
    let path = format!("/rollouts/{rollout}");
    let csrf = c.get(&path).await.csrf().expect("csrf");
    let r = act(&mut c, &format!("{path}/rollback"), &csrf).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(phase(&h, &rollout), Phase::RolledBack);
    let page = c.get(&path).await;
    assert!(page.body.contains("rolled-back"), "{}", page.body);
    assert!(!page.body.contains("id=\"rollback\""), "no second rollback");
    assert_eq!(h.audited("fleet.rollout.rollback").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_approves_another_operators_run_and_cannot_approve_its_own() {
    let h = Harness::with_approvals().await;
    let request = pending_run(&h).await;
    let sends = h.controller().progress().borrow().sends;

    // The requester: no approve button, and a POST is the controller's refusal, readable.
    let mut requester = Client::new(&h.url);
    requester.sign_in(NOC_OPERATOR_B).await;
    let page = requester.get("/approvals").await;
    assert!(
        page.body.contains("a second operator must approve it"),
        "{}",
        page.body
    );
    let csrf = page.csrf().expect("csrf");
    let r = act(
        &mut requester,
        &format!("/approvals/{request}/approve"),
        &csrf,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(
        r.body.contains("`noc-operator-b` requested") && r.body.contains("second operator"),
        "{}",
        r.body
    );
    assert_eq!(state_of(&h, &request), ApprovalState::Pending);

    let mut c = Client::new(&h.url);
    c.sign_in(NOC_OPERATOR).await;
    let page = c.get("/approvals").await;
    assert!(page.body.contains("class=\"approve\""), "{}", page.body);
    assert!(page.body.contains("noc-operator-b"), "the requester shown");
    let csrf = page.csrf().expect("csrf");
    let r = act(&mut c, &format!("/approvals/{request}/approve"), &csrf).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        state_of(&h, &request),
        ApprovalState::Consumed,
        "approved and dispatched"
    );
    assert_eq!(
        h.controller().progress().borrow().sends,
        sends + 2,
        "sent to both agents"
    );
    let done = h.audited("console.action");
    let approved = done.last().expect("audited");
    assert_eq!(approved["action"], "approve");
    assert_eq!(approved["decision"], "done");
    assert!(approved["run"].is_string(), "{approved}");
    assert_eq!(h.audited("fleet.approval.approved").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_denies_a_request() {
    let h = Harness::with_approvals().await;
    let request = pending_run(&h).await;
    let mut c = Client::new(&h.url);
    c.sign_in(NOC_OPERATOR).await;
    let csrf = c.get("/approvals").await.csrf().expect("csrf");
    let r = act(&mut c, &format!("/approvals/{request}/deny"), &csrf).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(state_of(&h, &request), ApprovalState::Denied);
    let page = c.get("/approvals").await;
    assert!(
        !page.body.contains(request.as_str()),
        "no longer waiting: {}",
        page.body
    );
    assert_eq!(h.audited("fleet.approval.denied").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_scoped_operator_sees_and_pauses_its_tenants_rollouts_only() {
    let h = Harness::start().await;
    let ours = running_rollout(&h, "acme", &["acme-db"]).await;
    let theirs = running_rollout(&h, "globex", &["globex-db"]).await;
    let mut c = Client::new(&h.url);
    c.sign_in(ACME_OPERATOR).await;
    let list = c.get("/rollouts").await;
    assert!(list.body.contains(&ours), "{}", list.body);
    assert!(
        !list.body.contains(&theirs),
        "another tenant's rollout is not listed"
    );
    assert_eq!(
        c.get(&format!("/rollouts/{theirs}")).await.status,
        StatusCode::NOT_FOUND,
        "not even its existence"
    );
    let csrf = list.csrf().expect("csrf");
    let r = act(&mut c, &format!("/rollouts/{theirs}/pause"), &csrf).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert_eq!(phase(&h, &theirs), Phase::Running);
    let r = act(&mut c, &format!("/rollouts/{ours}/pause"), &csrf).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(phase(&h, &ours), Phase::Paused);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_cancels_a_run_from_its_page_and_a_viewer_cannot() {
    let h = Harness::start().await;
    h.agents("acme", &["db-1"]);
    let dispatched = h
        .controller()
        .dispatch(
            &caller("noc-operator", Role::Operator),
            DispatchRequest {
                runbook: "disk-check".into(),
                target: "tenant=acme".into(),
                params: Default::default(),
                dry_run: false,
                ttl_secs: None,
                bundle: None,
            },
        )
        .await
        .expect("dispatched");
    let path = format!("/runs/{}", dispatched.run);

    let mut viewer = Client::new(&h.url);
    viewer.sign_in(NOC_VIEWER).await;
    let page = viewer.get(&path).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        !page.body.contains("id=\"cancel\""),
        "no button for a viewer"
    );
    let csrf = page.csrf().expect("csrf");
    let r = act(&mut viewer, &format!("{path}/cancel"), &csrf).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(h.audited("fleet.cancel").is_empty(), "nothing was sent");

    let mut operator = Client::new(&h.url);
    operator.sign_in(NOC_OPERATOR).await;
    let page = operator.get(&path).await;
    assert!(page.body.contains("id=\"cancel\""), "{}", page.body);
    let csrf = page.csrf().expect("csrf");
    let r = act(&mut operator, &format!("{path}/cancel"), &csrf).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.header(header::LOCATION).as_deref(), Some(path.as_str()));
    let sent = h.audited("fleet.cancel");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (&sent[0]["agents"], &sent[0]["caller"]),
        (&1.into(), &"noc-operator".into())
    );
    let actions: Vec<(String, String)> = h
        .audited("console.action")
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap_or_default().to_string(),
                a["decision"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("run-cancel".to_string(), "denied".to_string()),
            ("run-cancel".to_string(), "done".to_string())
        ]
    );
}
