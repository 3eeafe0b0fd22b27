//! Four eyes (issue 16) against a real nats-server and the controller's gRPC API: a run above
//! the `[approvals]` threshold is not sent but waits as a request; a second operator's approval
//! dispatches exactly the bound run; the requester cannot approve its own; an expired request,
//! a viewer and an approver scoped to another tenant are refused; an approval presented for
//! other parameters, another target or another artifact digest is refused and not spent; a
//! request whose target now resolves to other agents is void. The approver role approves and
//! acts on nothing itself, and `approvers = "approvers-only"` leaves operators out; a
//! maintenance runbook to an agent outside the windows it reported waits (`outside-window`).
//!
//! "Nothing was sent" is the controller's own counter of published commands
//! ([`Progress::sends`]), which a dispatch moves before it returns.

mod support;

use support::*;
use tonic::Code;
use warden_access::{Approvers, Caller, Role, Scope};
use warden_controller::Clock as _;
use warden_controller::approvals::{ApprovalError, ApprovalSubject, Gate, SubjectKind};
use warden_controller::{FleetError, approvals::ApprovalPolicy};
use warden_proto::fleet as pb;

const OP_A: &str = "tok-noc-operator-a";
const OP_B: &str = "tok-noc-operator-b";
const GLOBEX_OPERATOR: &str = "tok-globex-operator";
const APPROVER: &str = "tok-noc-approver";
const ACME_APPROVER: &str = "tok-acme-approver";
/// The request lifetime of these tests.
const REQUEST_TTL_SECS: i64 = 600;

/// A controller whose policy asks for approval above one agent or across tenants, operators
/// approving as before the approver role ([`fleet_of`]).
async fn fleet() -> Fleet {
    fleet_of(Approvers::Operators).await
}

fn run(target: &str, kb: &str) -> pb::DispatchRequest {
    pb::DispatchRequest {
        runbook: "patch".into(),
        target: target.into(),
        params: [("kb".to_string(), kb.to_string())].into(),
        dry_run: false,
        ttl_seconds: 0,
        bundle: vec![],
    }
}

fn decide(id: &str) -> pb::DecideApprovalRequest {
    pb::DecideApprovalRequest {
        id: id.into(),
        reason: String::new(),
    }
}

/// Dispatch `req` as `token`; the request it became (the run must not have been sent).
async fn request(fleet: &Fleet, token: &str, req: pb::DispatchRequest) -> pb::ApprovalView {
    let sends = fleet.progress().sends;
    let answer = fleet
        .api(token)
        .await
        .dispatch(req)
        .await
        .expect("dispatch answers")
        .into_inner();
    assert_eq!(answer.run_id, "", "no run was started");
    assert_eq!(fleet.progress().sends, sends, "nothing was sent");
    answer.approval.expect("the dispatch became a request")
}

async fn approve(fleet: &Fleet, token: &str, id: &str) -> Result<pb::ApprovalView, tonic::Status> {
    fleet
        .api(token)
        .await
        .approve(decide(id))
        .await
        .map(tonic::Response::into_inner)
}

/// Approving `id` as `token` is refused with `code`, saying `says`.
async fn refused(fleet: &Fleet, token: &str, id: &str, code: Code, says: &str) {
    let status = approve(fleet, token, id)
        .await
        .expect_err("the approval is refused");
    assert_eq!(status.code(), code, "{token}: {status:?}");
    assert!(status.message().contains(says), "{token}: {status:?}");
}

async fn listening(fleet: &Fleet, tenant: &str, name: &str) -> SimAgent {
    let mut a = fleet.agent(tenant, name).await;
    a.listen().await;
    a
}

async fn list(fleet: &Fleet, token: &str, all: bool) -> Vec<pb::ApprovalView> {
    fleet
        .api(token)
        .await
        .list_approvals(pb::ListApprovalsRequest { all })
        .await
        .expect("list")
        .into_inner()
        .approvals
}

async fn state_of(fleet: &Fleet, id: &str) -> pb::ApprovalView {
    list(fleet, NOC_VIEWER, true)
        .await
        .into_iter()
        .find(|a| a.id == id)
        .expect("listed")
}

fn audit(fleet: &Fleet) -> String {
    std::fs::read_to_string(fleet.dir.path().join("controller/audit/audit.log")).expect("audit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_above_the_threshold_waits_and_runs_once_a_second_operator_approves() {
    let fleet = fleet().await;
    let mut a = listening(&fleet, "acme", "db-1").await;
    let mut b = listening(&fleet, "acme", "db-2").await;

    // One agent is within the policy: sent at once.
    let small = fleet
        .api(OP_A)
        .await
        .dispatch(run(&format!("agent={}", a.id), "1"))
        .await
        .expect("dispatch")
        .into_inner();
    assert!(small.approval.is_none());
    assert_eq!(a.next_command().await.run.as_str(), small.run_id);

    let pending = request(&fleet, OP_A, run("tenant=acme", "5031356")).await;
    assert_eq!(pending.state, "pending");
    assert_eq!(pending.requested_by, "noc-op-a");
    assert_eq!(pending.target, "tenant=acme");
    assert_eq!(pending.agents.len(), 2);
    assert_eq!(pending.reasons, vec!["2 agents, over max-agents 1"]);
    let waiting = list(&fleet, OP_B, false).await;
    assert_eq!(
        waiting.iter().map(|w| w.id.as_str()).collect::<Vec<_>>(),
        vec![pending.id.as_str()]
    );

    let approved = approve(&fleet, OP_B, &pending.id)
        .await
        .expect("a second operator approves");
    assert_eq!(approved.state, "consumed");
    assert_eq!(approved.decided_by, "noc-op-b");
    assert!(!approved.run_id.is_empty(), "{approved:?}");
    // Exactly the bound run, to both agents: the next command each gets.
    for agent in [&mut a, &mut b] {
        let c = agent.next_command().await;
        assert_eq!(c.run.as_str(), approved.run_id);
        let warden_fleet_wire::CommandKind::RunRunbook(r) = &c.kind else {
            panic!("a run command: {c:?}")
        };
        assert_eq!(r.runbook.as_deref(), Some("patch"));
        assert_eq!(r.params.get("kb").map(String::as_str), Some("5031356"));
    }
    let view = fleet
        .api(NOC_VIEWER)
        .await
        .get_run(pb::GetRunRequest {
            run_id: approved.run_id.clone(),
        })
        .await
        .expect("run")
        .into_inner();
    assert_eq!(view.requested_by, "noc-op-a", "the requester's run");
    assert_eq!(view.agents.len(), 2);

    // An approval is consumed once.
    refused(
        &fleet,
        NOC_ADMIN,
        &pending.id,
        Code::FailedPrecondition,
        "consumed",
    )
    .await;
    let log = audit(&fleet);
    for event in [
        "fleet.approval.requested",
        "fleet.approval.approved",
        "fleet.approval.refused",
    ] {
        assert!(log.contains(event), "{event} audited");
    }
    assert!(log.contains("\"approved_by\":\"noc-op-b\""), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_approval_is_refused() {
    let fleet = fleet().await;
    let _a = listening(&fleet, "acme", "db-1").await;
    let _b = listening(&fleet, "acme", "db-2").await;
    let pending = request(&fleet, OP_A, run("tenant=acme", "1")).await;
    refused(
        &fleet,
        OP_A,
        &pending.id,
        Code::PermissionDenied,
        "a second operator must approve it",
    )
    .await;
    assert_eq!(state_of(&fleet, &pending.id).await.state, "pending");
    assert!(audit(&fleet).contains("fleet.approval.refused"));
    // The requester may withdraw its own request.
    let denied = fleet
        .api(OP_A)
        .await
        .deny(pb::DecideApprovalRequest {
            id: pending.id.clone(),
            reason: "wrong KB".into(),
        })
        .await
        .expect("withdrawn")
        .into_inner();
    assert_eq!(
        (denied.state.as_str(), denied.note.as_str()),
        ("denied", "wrong KB")
    );
    refused(
        &fleet,
        OP_B,
        &pending.id,
        Code::FailedPrecondition,
        "denied",
    )
    .await;
    assert_eq!(fleet.progress().sends, 0);
}

fn op(name: &str) -> Caller {
    Caller {
        name: name.into(),
        role: Role::Operator,
        scope: Scope::AllTenants,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_replayed_for_other_parameters_or_another_target_is_refused() {
    let fleet = fleet().await;
    let a = fleet.agent("acme", "db-1").await;
    let b = fleet.agent("acme", "db-2").await;
    let c = fleet.agent("acme", "web-1").await;
    let controller = &fleet.running.controller;
    // A rollout's start (the seam): bound to its plugin's digest, params, target and agents.
    let subject = ApprovalSubject {
        kind: SubjectKind::Rollout,
        artifact: "patcher".into(),
        sha256: Some("ab".repeat(32)),
        params: [("wave".to_string(), "canary".to_string())].into(),
        dry_run: false,
        ttl_ms: 3_600_000,
        target: "tenant=acme".into(),
        agents: vec![
            (a.id.clone(), a.tenant.clone()),
            (b.id.clone(), b.tenant.clone()),
        ],
        approval: None,
    };
    let Gate::Pending(id) = controller
        .gate(&op("noc-op-a"), subject.clone())
        .expect("gate")
    else {
        panic!("two agents are above the threshold");
    };
    let approved = approve(&fleet, OP_B, id.as_str()).await.expect("approved");
    assert_eq!(
        approved.state, "approved",
        "a rollout's waits for its start"
    );

    let presented = |change: fn(&mut ApprovalSubject)| {
        let mut s = subject.clone();
        s.approval = Some(id.clone());
        change(&mut s);
        s
    };
    let replays: [(&str, ApprovalSubject); 4] = [
        (
            "other parameters",
            presented(|s| {
                s.params.insert("wave".into(), "all".into());
            }),
        ),
        ("another target", presented(|s| s.target = "*".into())),
        (
            "another artifact digest",
            presented(|s| s.sha256 = Some("cd".repeat(32))),
        ),
        ("other agents", presented(|s| s.agents.truncate(1))),
    ];
    for (what, replay) in replays {
        let err = controller.gate(&op("noc-op-a"), replay).expect_err(what);
        assert!(
            matches!(err, FleetError::Approval(ApprovalError::Mismatch { .. })),
            "{what}: {err}"
        );
    }
    let mut other_agents = presented(|_| {});
    other_agents.agents.push((c.id.clone(), c.tenant.clone()));
    assert!(controller.gate(&op("noc-op-a"), other_agents).is_err());
    assert_eq!(
        state_of(&fleet, id.as_str()).await.state,
        "approved",
        "not spent"
    );

    // Exactly what was approved proceeds, once.
    assert_eq!(
        controller
            .gate(&op("noc-op-a"), presented(|_| {}))
            .expect("the bound subject"),
        Gate::Proceed
    );
    let twice = controller
        .gate(&op("noc-op-a"), presented(|_| {}))
        .expect_err("consumed once");
    assert!(
        matches!(
            twice,
            FleetError::Approval(ApprovalError::NotPending { .. })
        ),
        "{twice}"
    );
    assert!(audit(&fleet).matches("fleet.approval.refused").count() >= 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_target_now_resolves_to_other_agents_is_not_sent() {
    let fleet = fleet().await;
    let _a = listening(&fleet, "acme", "db-1").await;
    let _b = listening(&fleet, "acme", "db-2").await;
    let pending = request(&fleet, OP_A, run("tenant=acme", "1")).await;
    // A third acme agent enrolls: the same selector now means three agents.
    let _c = fleet.agent("acme", "db-3").await;
    refused(
        &fleet,
        OP_B,
        &pending.id,
        Code::FailedPrecondition,
        "the target's agents (+1 -0, 3 now)",
    )
    .await;
    let view = state_of(&fleet, &pending.id).await;
    assert_eq!(view.state, "void");
    assert_eq!(view.run_id, "");
    assert_eq!(fleet.progress().sends, 0, "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_request_is_refused() {
    let fleet = fleet().await;
    let _a = listening(&fleet, "acme", "db-1").await;
    let _b = listening(&fleet, "acme", "db-2").await;
    let pending = request(&fleet, OP_A, run("tenant=acme", "1")).await;
    fleet.clock.advance_ms(REQUEST_TTL_SECS * 1000);
    refused(
        &fleet,
        OP_B,
        &pending.id,
        Code::FailedPrecondition,
        "expired at",
    )
    .await;
    assert_eq!(state_of(&fleet, &pending.id).await.state, "expired");
    let waiting = list(&fleet, OP_B, false).await;
    assert!(waiting.is_empty(), "{waiting:?}");
    assert_eq!(fleet.progress().sends, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_cannot_approve_and_a_tenant_scoped_approver_cannot_approve_another_tenants_request()
 {
    let fleet = fleet().await;
    let _a = listening(&fleet, "acme", "db-1").await;
    let _b = listening(&fleet, "acme", "db-2").await;
    let _g = listening(&fleet, "globex", "db-1").await;
    let acme = request(&fleet, OP_A, run("tenant=acme", "1")).await;
    let both = request(&fleet, OP_A, run("*", "1")).await;
    assert_eq!(both.tenants, vec!["acme", "globex"]);
    assert!(
        both.reasons.iter().any(|r| r.contains("multi-tenant")),
        "{both:?}"
    );

    refused(
        &fleet,
        NOC_VIEWER,
        &acme.id,
        Code::PermissionDenied,
        "approver role",
    )
    .await;
    for (token, id) in [
        (GLOBEX_OPERATOR, &acme.id),
        (GLOBEX_OPERATOR, &both.id),
        (ACME_OPERATOR, &both.id),
    ] {
        refused(
            &fleet,
            token,
            id,
            Code::PermissionDenied,
            "may act on tenant",
        )
        .await;
    }
    // A scoped operator does not even see another tenant's requests.
    let seen = list(&fleet, GLOBEX_OPERATOR, true).await;
    assert!(seen.is_empty(), "{seen:?}");
    assert_eq!(state_of(&fleet, &acme.id).await.state, "pending");
    assert_eq!(state_of(&fleet, &both.id).await.state, "pending");
    // Within its tenant, another identity's scoped approval is good.
    let approved = approve(&fleet, ACME_OPERATOR, &acme.id)
        .await
        .expect("acme's operator approves acme's request");
    assert_eq!(approved.state, "consumed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_approvers_at_once_dispatch_the_run_once() {
    let fleet = fleet().await;
    let _a = listening(&fleet, "acme", "db-1").await;
    let _b = listening(&fleet, "acme", "db-2").await;
    let pending = request(&fleet, OP_A, run("tenant=acme", "1")).await;
    let (one, two) = tokio::join!(
        approve(&fleet, OP_B, &pending.id),
        approve(&fleet, NOC_ADMIN, &pending.id)
    );
    let won: Vec<&pb::ApprovalView> = [&one, &two].into_iter().flatten().collect();
    assert_eq!(won.len(), 1, "{one:?} {two:?}");
    let lost = [one.as_ref().err(), two.as_ref().err()]
        .into_iter()
        .flatten()
        .next()
        .expect("one refused");
    assert_eq!(lost.code(), Code::FailedPrecondition, "{lost:?}");
    assert_eq!(fleet.progress().sends, 2, "one run to two agents");
    let runs = fleet
        .api(NOC_VIEWER)
        .await
        .list_runs(pb::ListRunsRequest {
            tenant: String::new(),
            limit: 0,
        })
        .await
        .expect("runs")
        .into_inner()
        .runs;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].run_id, won[0].run_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_survives_a_controller_restart_and_is_approved_after_it() {
    let mut fleet = fleet().await;
    let mut a = listening(&fleet, "acme", "db-1").await;
    let _b = listening(&fleet, "acme", "db-2").await;
    let pending = request(&fleet, OP_A, run("tenant=acme", "7")).await;
    fleet.restart_controller(async {}).await;
    let after = state_of(&fleet, &pending.id).await;
    assert_eq!(
        (after.state.as_str(), after.digest.as_str()),
        ("pending", pending.digest.as_str())
    );
    let approved = approve(&fleet, OP_B, &pending.id)
        .await
        .expect("approved after the restart");
    assert_eq!(a.next_command().await.run.as_str(), approved.run_id);
}

fn rollout(bundle: &[u8], target: &str, waves: &str, approval: &str) -> pb::StartRolloutRequest {
    pb::StartRolloutRequest {
        bundle: bundle.to_vec(),
        target: target.into(),
        canary: 1,
        waves: waves.into(),
        max_failures: "0%".into(),
        approval: approval.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_above_the_threshold_starts_only_with_an_approval_bound_to_its_plan() {
    let fleet = fleet().await;
    let _a = fleet.agent("acme", "db-1").await;
    let _b = fleet.agent("acme", "db-2").await;
    let bundle = plugin_bundle(&fleet.dir.path().join("plugin"), "0.2.0", 1024);
    let start = |token: &'static str, req: pb::StartRolloutRequest| {
        let fleet = &fleet;
        async move { fleet.api(token).await.start_rollout(req).await }
    };

    // Two agents, over max-agents 1: not started, a request instead, naming how to go on.
    let refused = start(OP_A, rollout(&bundle, "tenant=acme", "100%", ""))
        .await
        .expect_err("waits for approval");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(refused.message().contains("--approval"), "{refused:?}");
    let pending = list(&fleet, OP_B, false).await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    let request = &pending[0];
    assert_eq!(request.kind, "rollout");
    assert_eq!(request.sha256, warden_core::sha256_hex(&bundle));
    assert_eq!(
        request.params.get("waves").map(String::as_str),
        Some("100%")
    );
    assert!(
        audit(&fleet).contains("fleet.approval.requested"),
        "audited"
    );

    // The requester cannot approve its own; another operator can.
    refused_self(&fleet, &request.id).await;
    let approved = approve(&fleet, OP_B, &request.id).await.expect("approved");
    assert_eq!(
        approved.state, "approved",
        "a rollout's approval waits to be presented"
    );

    // Presented for another plan or another bundle: refused, and not spent.
    let other_plan = start(
        OP_A,
        rollout(&bundle, "tenant=acme", "50%,100%", &request.id),
    )
    .await
    .expect_err("another plan");
    assert_eq!(
        other_plan.code(),
        Code::FailedPrecondition,
        "{other_plan:?}"
    );
    let newer = plugin_bundle(&fleet.dir.path().join("newer"), "0.3.0", 1024);
    let other_bundle = start(OP_A, rollout(&newer, "tenant=acme", "100%", &request.id))
        .await
        .expect_err("another bundle");
    assert_eq!(
        other_bundle.code(),
        Code::FailedPrecondition,
        "{other_bundle:?}"
    );

    // The exact start proceeds once; presenting the approval again is refused.
    let started = start(OP_A, rollout(&bundle, "tenant=acme", "100%", &request.id))
        .await
        .expect("the approved rollout starts")
        .into_inner();
    assert_eq!(started.agents.len(), 2);
    let again = start(OP_A, rollout(&bundle, "tenant=acme", "100%", &request.id))
        .await
        .expect_err("an approval is used once");
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
}

/// The requester approving its own request is refused.
async fn refused_self(fleet: &Fleet, id: &str) {
    let status = approve(fleet, OP_A, id).await.expect_err("self-approval");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
}

/// `token` approves the run request `id`, which dispatches it.
async fn consumed(fleet: &Fleet, token: &str, id: &str) -> pb::ApprovalView {
    let view = approve(fleet, token, id)
        .await
        .unwrap_or_else(|e| panic!("{token} approves {id}: {e:?}"));
    assert_eq!(view.state, "consumed", "{view:?}");
    view
}

/// A policy of `approvers` that asks above one agent or across tenants, with the support's
/// tokens, two MSP-wide operators and a globex-scoped one, and two approvers (one scoped to
/// acme).
async fn fleet_of(approvers: Approvers) -> Fleet {
    Fleet::start_with(|config| {
        config.approvals = Some(ApprovalPolicy {
            max_agents: Some(1),
            max_percent: None,
            multi_tenant: true,
            request_ttl_secs: REQUEST_TTL_SECS,
            outside_window: true,
            approvers,
        });
        config.tokens.extend([
            token("noc-op-a", Role::Operator, OP_A, None),
            token("noc-op-b", Role::Operator, OP_B, None),
            token(
                "globex-operator",
                Role::Operator,
                GLOBEX_OPERATOR,
                Some("globex"),
            ),
            token("noc-approver", Role::Approver, APPROVER, None),
            token("acme-approver", Role::Approver, ACME_APPROVER, Some("acme")),
        ]);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_approves_and_reads_but_cannot_dispatch_publish_or_start_a_rollout() {
    let fleet = fleet_of(Approvers::Operators).await;
    let mut a = listening(&fleet, "acme", "db-1").await;
    let mut b = listening(&fleet, "acme", "db-2").await;
    let _g = listening(&fleet, "globex", "db-1").await;
    let mut api = fleet.api(APPROVER).await;

    // Acting is refused at the API, whatever it is.
    let dispatch = api
        .dispatch(run(&format!("agent={}", a.id), "1"))
        .await
        .expect_err("an approver does not dispatch");
    assert_eq!(dispatch.code(), Code::PermissionDenied, "{dispatch:?}");
    assert!(dispatch.message().contains("operator"), "{dispatch:?}");
    let bundle = plugin_bundle(&fleet.dir.path().join("plugin"), "0.2.0", 1024);
    let publish = api
        .publish(pb::PublishRequest {
            bundle: bundle.clone(),
            target: "tenant=acme".into(),
            remove: String::new(),
        })
        .await
        .expect_err("an approver does not publish");
    assert_eq!(publish.code(), Code::PermissionDenied, "{publish:?}");
    let start = api
        .start_rollout(rollout(&bundle, "tenant=acme", "100%", ""))
        .await
        .expect_err("an approver does not start a rollout");
    assert_eq!(start.code(), Code::PermissionDenied, "{start:?}");
    assert_eq!(fleet.progress().sends, 0, "nothing was sent");

    // It reads what waits, approves, and the bound run goes out as the requester's.
    let pending = request(&fleet, OP_A, run("tenant=acme", "7")).await;
    let both = request(&fleet, OP_A, run("*", "7")).await;
    let seen = list(&fleet, APPROVER, false).await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    // Tenant scoping is as for operators: an acme approver does not approve across tenants.
    refused(
        &fleet,
        ACME_APPROVER,
        &both.id,
        Code::PermissionDenied,
        "may act on tenant",
    )
    .await;
    let approved = consumed(&fleet, APPROVER, &pending.id).await;
    assert_eq!(approved.decided_by, "noc-approver");
    for agent in [&mut a, &mut b] {
        assert_eq!(agent.next_command().await.run.as_str(), approved.run_id);
    }
    // Under the default setting operators still approve, as before the role existed.
    consumed(&fleet, OP_B, &both.id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvers_only_leaves_operators_and_admins_out_but_lets_a_requester_withdraw() {
    let fleet = fleet_of(Approvers::ApproversOnly).await;
    let _a = listening(&fleet, "acme", "db-1").await;
    let _b = listening(&fleet, "acme", "db-2").await;
    let pending = request(&fleet, OP_A, run("tenant=acme", "1")).await;
    for token in [OP_B, NOC_ADMIN] {
        refused(
            &fleet,
            token,
            &pending.id,
            Code::PermissionDenied,
            "approvers-only",
        )
        .await;
        let denied = fleet
            .api(token)
            .await
            .deny(decide(&pending.id))
            .await
            .expect_err("nor deny another's");
        assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    }
    assert_eq!(state_of(&fleet, &pending.id).await.state, "pending");
    assert_eq!(fleet.progress().sends, 0);
    assert!(
        audit(&fleet).contains("approvers-only"),
        "each refusal is audited"
    );

    // The requester takes its own question back.
    let other = request(&fleet, OP_A, run("tenant=acme", "2")).await;
    let withdrawn = fleet
        .api(OP_A)
        .await
        .deny(decide(&other.id))
        .await
        .expect("the requester withdraws")
        .into_inner();
    assert_eq!(withdrawn.state, "denied");

    // An approver of the tenant approves.
    consumed(&fleet, ACME_APPROVER, &pending.id).await;
}

/// A window in UTC opening at `hour` for an hour, every day.
fn hourly_window(name: &str, hour: u32) -> warden_fleet_wire::WindowInfo {
    warden_fleet_wire::WindowInfo {
        name: name.into(),
        cron: format!("0 {hour} * * *"),
        timezone: "UTC".into(),
        duration_secs: 3600,
    }
}

fn runbook_bundle(maintenance: bool) -> Vec<u8> {
    let text = format!("name = \"patch\"\nmaintenance = {maintenance}\n");
    warden_bundle::Bundle::from_runbook("patch", &text, 1)
        .expect("bundle")
        .to_bytes()
        .expect("bytes")
}

fn bundled(target: &str, maintenance: bool) -> pb::DispatchRequest {
    pb::DispatchRequest {
        bundle: runbook_bundle(maintenance),
        ..run(target, "1")
    }
}

/// The patch runbook (`maintenance` or not) to `agent` as OP_A is sent without approval.
async fn sent_at_once(fleet: &Fleet, agent: &mut SimAgent, maintenance: bool) {
    let answer = fleet
        .api(OP_A)
        .await
        .dispatch(bundled(&format!("agent={}", agent.id), maintenance))
        .await
        .expect("dispatch")
        .into_inner();
    assert!(answer.approval.is_none(), "{answer:?}");
    assert_eq!(agent.next_command().await.run.as_str(), answer.run_id);
}

/// A controller whose only approval rule is the window rule (no blast-radius limit), with an
/// operator and an approver.
async fn window_fleet() -> Fleet {
    Fleet::start_with(|config| {
        config.approvals = Some(ApprovalPolicy {
            max_agents: None,
            max_percent: None,
            multi_tenant: false,
            request_ttl_secs: REQUEST_TTL_SECS,
            outside_window: true,
            approvers: Approvers::Operators,
        });
        config.tokens.extend([
            token("noc-op-a", Role::Operator, OP_A, None),
            token("noc-approver", Role::Approver, APPROVER, None),
        ]);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintenance_runbook_waits_outside_an_agents_reported_window_and_runs_inside_it() {
    let fleet = window_fleet().await;
    // The windows are placed around the controller's (manual) clock: `day` is open now,
    // `night` twelve hours later.
    let now =
        chrono::DateTime::from_timestamp_millis(fleet.clock.now().as_millis()).expect("a time");
    let hour = chrono::Timelike::hour(&now);
    let mut day = listening(&fleet, "acme", "day-1").await;
    let mut night = listening(&fleet, "acme", "night-1").await;
    let mut old = listening(&fleet, "acme", "old-1").await;
    let before = fleet.progress().heartbeats;
    for (agent, windows) in [
        (&mut day, Some(vec![hourly_window("day", hour)])),
        (
            &mut night,
            Some(vec![hourly_window("night", (hour + 12) % 24)]),
        ),
        // An agent older than the report sends none: unknown, which asks.
        (&mut old, None),
    ] {
        let mut hb = agent.heartbeat_with("linux", &[]);
        hb.windows = windows;
        agent.send_heartbeat(&hb).await;
    }
    fleet
        .wait_for("three heartbeats", |p| p.heartbeats >= before + 3)
        .await;

    // Inside its window: sent at once.
    sent_at_once(&fleet, &mut day, true).await;

    // Outside: it waits, the reason says so, and an approval sends exactly it.
    let waiting = request(&fleet, OP_A, bundled(&format!("agent={}", night.id), true)).await;
    assert_eq!(
        waiting.reasons,
        vec![
            "maintenance runbook: 1 of 1 agents outside their maintenance windows (outside-window)"
        ]
    );
    let approved = consumed(&fleet, APPROVER, &waiting.id).await;
    assert_eq!(night.next_command().await.run.as_str(), approved.run_id);
    // A runbook not marked maintenance is not the window rule's.
    sent_at_once(&fleet, &mut night, false).await;
    // The agent that never reported, with one inside: counted, and named as unknown.
    let old_too = request(&fleet, OP_A, bundled("tenant=acme,os=linux", true)).await;
    assert_eq!(old_too.agents.len(), 3);
    assert_eq!(
        old_too.reasons,
        vec![
            "maintenance runbook: 2 of 3 agents outside their maintenance windows (outside-window), 1 of them never reported windows"
        ]
    );

    // Twelve hours later the windows have turned: night runs at once, day waits.
    fleet.clock.advance_ms(12 * 3600 * 1000);
    sent_at_once(&fleet, &mut night, true).await;
    let day_waits = request(&fleet, OP_A, bundled(&format!("agent={}", day.id), true)).await;
    assert!(
        day_waits.reasons[0].contains("(outside-window)"),
        "{day_waits:?}"
    );
}

/// A run of `patch` by name (no inline bundle) to `agent`, as OP_A.
fn by_name(agent: &SimAgent, kb: &str) -> pb::DispatchRequest {
    run(&format!("agent={}", agent.id), kb)
}

/// The window rule for runbooks the controller published (issue 16): a run by name of a
/// runbook published marked `maintenance = true` waits outside the agent's window like an
/// inline one, the request is bound to the published digest (publishing the runbook again
/// before the approval voids it), and a runbook the controller never published is the agents'
/// to know (sent at once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_maintenance_runbook_run_by_name_waits_outside_the_window_bound_to_its_digest()
{
    let fleet = window_fleet().await;
    let now =
        chrono::DateTime::from_timestamp_millis(fleet.clock.now().as_millis()).expect("a time");
    let night_hour = (chrono::Timelike::hour(&now) + 12) % 24;
    let mut night = listening(&fleet, "acme", "night-1").await;
    let before = fleet.progress().heartbeats;
    let mut hb = night.heartbeat_with("linux", &[]);
    hb.windows = Some(vec![hourly_window("night", night_hour)]);
    night.send_heartbeat(&hb).await;
    fleet
        .wait_for("the heartbeat", |p| p.heartbeats > before)
        .await;

    // Never published: the controller cannot read a marker, the run goes out.
    let answer = fleet
        .api(OP_A)
        .await
        .dispatch(by_name(&night, "0"))
        .await
        .expect("dispatch")
        .into_inner();
    assert!(answer.approval.is_none(), "{answer:?}");
    assert_eq!(night.next_command().await.run.as_str(), answer.run_id);

    let publish = |maintenance: bool, signed_at: u64| {
        let text = format!("name = \"patch\"\nmaintenance = {maintenance}\n");
        let bundle = warden_bundle::Bundle::from_runbook("patch", &text, signed_at)
            .expect("bundle")
            .to_bytes()
            .expect("bytes");
        let fleet = &fleet;
        async move {
            fleet
                .api(OP_A)
                .await
                .publish(pb::PublishRequest {
                    bundle: bundle.clone(),
                    target: "tenant=acme".into(),
                    remove: String::new(),
                })
                .await
                .expect("publish");
            warden_core::sha256_hex(&bundle)
        }
    };
    let marked = publish(true, 1).await;

    // Published marked: outside the window it waits, bound to the published digest.
    let waiting = request(&fleet, OP_A, by_name(&night, "1")).await;
    assert_eq!(
        waiting.reasons,
        vec![
            "maintenance runbook: 1 of 1 agents outside their maintenance windows (outside-window)"
        ]
    );
    assert_eq!(waiting.sha256, marked, "{waiting:?}");
    let approved = consumed(&fleet, APPROVER, &waiting.id).await;
    assert_eq!(night.next_command().await.run.as_str(), approved.run_id);

    // A request waits; the runbook is published again (unmarked) before the approval: what
    // would run is no longer what was asked, so the approval is refused and nothing is sent.
    let stale = request(&fleet, OP_A, by_name(&night, "2")).await;
    let unmarked = publish(false, 2).await;
    assert_ne!(unmarked, marked);
    let sends = fleet.progress().sends;
    let status = approve(&fleet, APPROVER, &stale.id)
        .await
        .expect_err("a request for another digest is refused");
    assert!(status.message().contains("sha256"), "{status:?}");
    assert_eq!(fleet.progress().sends, sends, "nothing was sent");

    // Published unmarked: not the window rule's, sent at once.
    let answer = fleet
        .api(OP_A)
        .await
        .dispatch(by_name(&night, "3"))
        .await
        .expect("dispatch")
        .into_inner();
    assert!(answer.approval.is_none(), "{answer:?}");
    assert_eq!(night.next_command().await.run.as_str(), answer.run_id);
}
