//! The controller against a real nats-server 2.12.8 in operator mode (`cargo xtask nats`), with
//! agents simulated at the protocol level (support/mod.rs): presence, targeting, results stored
//! once, re-sends and expiry, an agent served when it comes back, tenant isolation in the API,
//! and unauthenticated calls refused.
//!
//! "Did not arrive" is decided without sleeping: the controller publishes every command on one
//! connection, and NATS keeps order per connection, so an agent whose next command is a later
//! run never got the earlier one.

mod support;

use prost::Message as _;
use support::*;
use tonic::Code;
use warden_controller::presence::OFFLINE_INTERVALS;
use warden_controller::runs::RESEND_FIRST_MS;
use warden_fleet_wire::{RefusalReason, RunResult, RunStatus};
use warden_proto::fleet as pb;

fn dispatch(target: &str, ttl: i64) -> pb::DispatchRequest {
    pb::DispatchRequest {
        runbook: "restart-spooler".into(),
        target: target.into(),
        params: [("service".to_string(), "spooler".to_string())].into(),
        dry_run: false,
        ttl_seconds: ttl,
        bundle: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_goes_online_offline_and_back_with_heartbeats() {
    let fleet = Fleet::start().await;
    let mut a = fleet.agent("acme", "db-1").await;
    let b = fleet.agent("acme", "web-1").await;
    let hb = a.heartbeat_with("linux", &[("role", "db")]);
    a.send_heartbeat(&hb).await;
    fleet.wait_for("a heartbeat", |p| p.heartbeats >= 1).await;
    let mut api = fleet.api(NOC_VIEWER).await;
    let list = |offline_only: bool| pb::ListAgentsRequest {
        tenant: "acme".into(),
        tags: vec![],
        offline_only,
        ..Default::default()
    };
    let agents = api
        .list_agents(list(false))
        .await
        .expect("list")
        .into_inner()
        .agents;
    let presence = |agents: &[pb::AgentView], id: &str| {
        agents
            .iter()
            .find(|x| x.agent == id)
            .map(|x| x.presence.clone())
            .expect("listed")
    };
    assert_eq!(presence(&agents, a.id.as_str()), "online");
    assert_eq!(presence(&agents, b.id.as_str()), "never-seen");
    let row = agents.iter().find(|x| x.agent == a.id.as_str()).expect("a");
    assert_eq!(row.os, "linux");
    assert_eq!(row.tags.get("role").map(String::as_str), Some("db"));

    fleet.clock.advance_ms(OFFLINE_INTERVALS * INTERVAL_MS + 1);
    let offline = api
        .list_agents(list(true))
        .await
        .expect("list")
        .into_inner()
        .agents;
    assert_eq!(presence(&offline, a.id.as_str()), "offline");
    assert_eq!(offline.len(), 2, "both agents are not online");

    let hb = a.heartbeat_with("linux", &[("role", "db")]);
    a.send_heartbeat(&hb).await;
    fleet
        .wait_for("the second heartbeat", |p| p.heartbeats >= 2)
        .await;
    let offline = api
        .list_agents(list(true))
        .await
        .expect("list")
        .into_inner()
        .agents;
    assert_eq!(offline.len(), 1, "{offline:?}");
    assert_eq!(offline[0].agent, b.id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatch_reaches_exactly_the_matching_agents() {
    let fleet = Fleet::start().await;
    let mut agents = Vec::new();
    for (tenant, os, role) in [
        ("acme", "linux", "db"),
        ("acme", "linux", "web"),
        ("acme", "windows", "db"),
        ("globex", "linux", "db"),
    ] {
        let mut a = fleet.agent(tenant, &format!("{os}-{role}")).await;
        a.listen().await;
        let hb = a.heartbeat_with(os, &[("role", role)]);
        a.send_heartbeat(&hb).await;
        agents.push(a);
    }
    fleet
        .wait_for("four heartbeats", |p| p.heartbeats >= 4)
        .await;
    let mut api = fleet.api(NOC_ADMIN).await;
    let first = api
        .dispatch(dispatch("tenant=acme,role=db,os=linux", 0))
        .await
        .expect("dispatch")
        .into_inner();
    assert_eq!(first.agents, vec![agents[0].id.to_string()]);
    let second = api
        .dispatch(dispatch("*", 0))
        .await
        .expect("dispatch")
        .into_inner();
    assert_eq!(second.agents.len(), 4);

    let c = agents[0].next_command().await;
    assert_eq!(c.run.as_str(), first.run_id);
    assert_eq!(c.agent, agents[0].id);
    assert_eq!(
        c.validate(c.issued_at, &agents[0].id, &agents[0].tenant),
        Ok(())
    );
    for a in agents.iter_mut() {
        let c = a.next_command().await;
        assert_eq!(
            c.run.as_str(),
            second.run_id,
            "{} got another run first",
            a.id
        );
        assert_eq!(c.agent, a.id);
    }
    // The run's view lists the one targeted agent as missing.
    let view = api
        .get_run(pb::GetRunRequest {
            run_id: first.run_id.clone(),
        })
        .await
        .expect("run")
        .into_inner();
    assert_eq!(view.agents.len(), 1);
    assert_eq!(view.agents[0].state, "missing");
    assert_eq!(view.target, "tenant=acme,os=linux,role=db");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_result_is_stored_once() {
    let fleet = Fleet::start().await;
    let mut a = fleet.agent("acme", "db-1").await;
    a.listen().await;
    let mut api = fleet.api(NOC_ADMIN).await;
    let run = api
        .dispatch(dispatch(&format!("agent={}", a.id), 0))
        .await
        .expect("dispatch")
        .into_inner();
    let c = a.next_command().await;
    let mut done = RunResult::new(
        c.run.clone(),
        a.tenant.clone(),
        a.id.clone(),
        RunStatus::Succeeded,
    );
    done.started_at = Some(c.issued_at);
    done.finished_at = Some(c.issued_at.plus_millis(10));
    assert!(!a.publish_result(&done, &done.msg_id()).await);
    // The same msg id inside the window: JetStream drops it.
    assert!(
        a.publish_result(&done, &done.msg_id()).await,
        "the stream deduplicates"
    );
    // Past the window (another id), and a late `replayed` from a re-send: the store keeps one.
    assert!(
        !a.publish_result(&done, &format!("{}.later", done.msg_id()))
            .await
    );
    let replayed = RunResult::new(
        c.run.clone(),
        a.tenant.clone(),
        a.id.clone(),
        RunStatus::Refused {
            reason: RefusalReason::Replayed,
        },
    );
    assert!(!a.publish_result(&replayed, "another-id").await);
    fleet.wait_for("three results", |p| p.results >= 3).await;
    let view = api
        .get_run(pb::GetRunRequest {
            run_id: run.run_id.clone(),
        })
        .await
        .expect("run")
        .into_inner();
    assert_eq!(view.agents.len(), 1);
    assert_eq!(view.agents[0].state, "succeeded");
    assert!(view.done);
    // Stored once: one `fleet.result` audit record for the run, however many copies came.
    let audit = std::fs::read_to_string(fleet.dir.path().join("controller/audit/audit.log"))
        .expect("audit");
    let stored = audit
        .lines()
        .filter(|l| l.contains("\"fleet.result\"") && l.contains(c.run.as_str()))
        .count();
    assert_eq!(stored, 1, "{audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_agent_gets_a_resend_and_is_reported_expired() {
    let fleet = Fleet::start().await;
    let mut quiet = fleet.agent("acme", "quiet").await;
    let mut busy = fleet.agent("acme", "busy").await;
    quiet.listen().await;
    busy.listen().await;
    let mut api = fleet.api(NOC_ADMIN).await;
    let run = api
        .dispatch(dispatch("tenant=acme", 60))
        .await
        .expect("dispatch")
        .into_inner();
    assert_eq!(run.agents.len(), 2);
    let first = quiet.next_command().await;
    let c = busy.next_command().await;
    let running = RunResult::new(
        c.run.clone(),
        busy.tenant.clone(),
        busy.id.clone(),
        RunStatus::Running,
    );
    busy.publish_result(&running, &running.msg_id()).await;
    fleet.wait_for("busy's running", |p| p.results >= 1).await;

    // Not due yet: nothing is sent.
    let sends = fleet.progress().sends;
    fleet.running.controller.tick().await.expect("tick");
    assert_eq!(fleet.progress().sends, sends);
    fleet.clock.advance_ms(RESEND_FIRST_MS);
    fleet.running.controller.tick().await.expect("tick");
    assert_eq!(
        fleet.progress().sends,
        sends + 1,
        "one re-send, to the quiet agent only"
    );
    let again = quiet.next_command().await;
    assert_eq!(again.run, first.run);

    fleet.clock.advance_ms(61_000);
    fleet.running.controller.tick().await.expect("tick");
    let view = api
        .get_run(pb::GetRunRequest {
            run_id: run.run_id.clone(),
        })
        .await
        .expect("run")
        .into_inner();
    let state = |id: &warden_fleet_identity::AgentId| {
        view.agents
            .iter()
            .find(|x| x.agent == id.as_str())
            .map(|x| (x.state.clone(), x.sends))
            .expect("row")
    };
    assert_eq!(state(&quiet.id), ("expired".to_string(), 2));
    assert_eq!(state(&busy.id), ("running".to_string(), 1));
    // Closed: no more re-sends, however long we wait.
    let sends = fleet.progress().sends;
    fleet.clock.advance_ms(10 * 60_000);
    fleet.running.controller.tick().await.expect("tick");
    assert_eq!(fleet.progress().sends, sends);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_offline_at_dispatch_gets_the_command_when_it_comes_back() {
    let fleet = Fleet::start().await;
    let mut away = fleet.agent("acme", "laptop").await;
    let mut api = fleet.api(NOC_ADMIN).await;
    let run = api
        .dispatch(dispatch("tenant=acme", 0))
        .await
        .expect("dispatch")
        .into_inner();
    assert_eq!(run.agents, vec![away.id.to_string()]);
    // It comes online: subscribes, then its first heartbeat.
    away.listen().await;
    let hb = away.heartbeat_with("linux", &[]);
    away.send_heartbeat(&hb).await;
    let c = away.next_command().await;
    assert_eq!(c.run.as_str(), run.run_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_scoped_token_cannot_list_target_or_read_another_tenant() {
    let fleet = Fleet::start().await;
    let mut acme = fleet.agent("acme", "acme-1").await;
    let mut globex = fleet.agent("globex", "globex-1").await;
    acme.listen().await;
    globex.listen().await;
    let mut noc = fleet.api(NOC_ADMIN).await;
    let globex_run = noc
        .dispatch(dispatch("tenant=globex", 0))
        .await
        .expect("dispatch")
        .into_inner();
    let mut scoped = fleet.api(ACME_OPERATOR).await;
    let mut scoped_admin = fleet.api(ACME_ADMIN).await;

    let all = scoped
        .list_agents(pb::ListAgentsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .agents;
    assert_eq!(
        all.iter().map(|a| a.agent.as_str()).collect::<Vec<_>>(),
        vec![acme.id.as_str()]
    );
    let err = scoped
        .list_agents(pb::ListAgentsRequest {
            tenant: "globex".into(),
            ..Default::default()
        })
        .await
        .expect_err("another tenant");
    assert_eq!(err.code(), Code::PermissionDenied);

    let err = scoped
        .dispatch(dispatch("tenant=globex", 0))
        .await
        .expect_err("target globex");
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = scoped
        .dispatch(dispatch(&format!("agent={}", globex.id), 0))
        .await
        .expect_err("globex's agent by id");
    assert_eq!(
        err.code(),
        Code::FailedPrecondition,
        "no agent of its tenant matches"
    );
    let own = scoped
        .dispatch(dispatch("*", 0))
        .await
        .expect("own tenant")
        .into_inner();
    assert_eq!(own.agents, vec![acme.id.to_string()]);

    let err = scoped
        .get_run(pb::GetRunRequest {
            run_id: globex_run.run_id.clone(),
        })
        .await
        .expect_err("globex's run");
    assert_eq!(err.code(), Code::NotFound);
    let runs = scoped
        .list_runs(pb::ListRunsRequest::default())
        .await
        .expect("runs")
        .into_inner()
        .runs;
    assert_eq!(
        runs.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(),
        vec![own.run_id.as_str()]
    );
    let err = scoped_admin
        .issue_enrollment_token(pb::IssueEnrollmentTokenRequest {
            tenant: "globex".into(),
            ..Default::default()
        })
        .await
        .expect_err("globex token");
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = scoped_admin
        .revoke(pb::RevokeRequest {
            agent: globex.id.to_string(),
            reason: String::new(),
        })
        .await
        .expect_err("revoke globex's agent");
    assert_eq!(err.code(), Code::NotFound);
    // The globex agent got its own run only; the acme agent only its own tenant's.
    assert_eq!(globex.next_command().await.run.as_str(), globex_run.run_id);
    assert_eq!(acme.next_command().await.run.as_str(), own.run_id);
    // And the NOC sees both runs.
    let runs = noc
        .list_runs(pb::ListRunsRequest::default())
        .await
        .expect("runs")
        .into_inner()
        .runs;
    assert_eq!(runs.len(), 2);
}

/// Every method of the controller's API, by path, from the descriptor set.
fn registered_methods() -> Vec<String> {
    let set = prost_types::FileDescriptorSet::decode(warden_proto::FLEET_DESCRIPTOR_SET)
        .expect("descriptor set");
    let mut methods = Vec::new();
    for file in set.file {
        for service in &file.service {
            for method in &service.method {
                methods.push(format!(
                    "/{}.{}/{}",
                    file.package(),
                    service.name(),
                    method.name()
                ));
            }
        }
    }
    methods
}

async fn raw_call(
    channel: tonic::transport::Channel,
    path: &str,
    token: Option<&str>,
) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let mut req = tonic::Request::new(());
    if let Some(t) = token {
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {t}").parse().expect("header"),
        );
    }
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let path = http::uri::PathAndQuery::try_from(path).expect("path");
    let is_stream = path.path().contains("/Watch");
    if is_stream {
        match grpc.server_streaming(req, path, codec).await {
            Ok(_) => tonic::Status::ok("streaming"),
            Err(s) => s,
        }
    } else {
        match grpc.unary(req, path, codec).await {
            Ok(_) => tonic::Status::ok("answered"),
            Err(s) => s,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_refuses_a_call_without_credentials() {
    let fleet = Fleet::start().await;
    let methods = registered_methods();
    let mut listed: Vec<String> = warden_controller::grpc::auth::METHOD_ACCESS
        .iter()
        .map(|(m, _)| m.to_string())
        .collect();
    listed.sort();
    let mut sorted = methods.clone();
    sorted.sort();
    assert_eq!(sorted, listed, "METHOD_ACCESS lists every method");
    for method in &methods {
        for token in [None, Some("not-a-token")] {
            let status = raw_call(fleet.channel().await, method, token).await;
            assert_eq!(
                status.code(),
                Code::Unauthenticated,
                "{method} with {token:?}: {status:?}"
            );
        }
    }
    let audit = std::fs::read_to_string(fleet.dir.path().join("controller/audit/audit.log"))
        .expect("audit");
    assert!(
        audit.matches("\"unauthenticated\"").count() >= 14,
        "every Fleet refusal audited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_restarted_mid_run_loses_nothing_and_resumes_resends() {
    let mut fleet = Fleet::start().await;
    let mut done = fleet.agent("acme", "done").await;
    let mut quiet = fleet.agent("acme", "quiet").await;
    done.listen().await;
    quiet.listen().await;
    let run = fleet
        .api(NOC_ADMIN)
        .await
        .dispatch(dispatch("tenant=acme", 600))
        .await
        .expect("dispatch")
        .into_inner();
    let c = done.next_command().await;
    let first = quiet.next_command().await;
    // The controller goes down; meanwhile one agent answers: the result waits in the stream.
    let result = RunResult::new(
        c.run.clone(),
        done.tenant.clone(),
        done.id.clone(),
        RunStatus::Succeeded,
    );
    let publisher = &done;
    fleet
        .restart_controller(async {
            assert!(!publisher.publish_result(&result, &result.msg_id()).await);
        })
        .await;
    fleet
        .wait_for("the result stored while down", |p| p.results >= 1)
        .await;
    let mut api = fleet.api(NOC_VIEWER).await;
    let view = api
        .get_run(pb::GetRunRequest {
            run_id: run.run_id.clone(),
        })
        .await
        .expect("run")
        .into_inner();
    let state = |id: &warden_fleet_identity::AgentId| {
        view.agents
            .iter()
            .find(|x| x.agent == id.as_str())
            .map(|x| x.state.clone())
            .expect("row")
    };
    assert_eq!(state(&done.id), "succeeded");
    assert_eq!(state(&quiet.id), "missing");
    // The new controller knows whom to re-send to, from the store.
    fleet.clock.advance_ms(RESEND_FIRST_MS);
    fleet.running.controller.tick().await.expect("tick");
    assert_eq!(quiet.next_command().await.run, first.run);
    assert_eq!(
        fleet.progress().sends,
        1,
        "one re-send, to the quiet agent only"
    );
}

fn report(
    a: &SimAgent,
    sha256: &str,
    outcome: warden_fleet_wire::DeployOutcome,
    at: i64,
) -> warden_fleet_wire::DeployReport {
    warden_fleet_wire::DeployReport {
        v: warden_fleet_wire::WIRE_VERSION,
        tenant: a.tenant.clone(),
        agent: a.id.clone(),
        kind: Default::default(),
        name: "disk-usage".into(),
        version: "0.2.0".into(),
        sha256: sha256.into(),
        outcome,
        error: None,
        check: None,
        at: warden_fleet_wire::UnixMillis(at),
    }
}

async fn publish_report(a: &SimAgent, r: &warden_fleet_wire::DeployReport) {
    let js = async_nats::jetstream::new(a.client.clone());
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(warden_fleet_wire::MSG_ID_HEADER, r.msg_id().as_str());
    js.publish_with_headers(
        r.nats_subject(),
        headers,
        warden_fleet_wire::encode(r).expect("encode").into(),
    )
    .await
    .expect("publish")
    .await
    .expect("PubAck");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_reaches_each_targeted_agents_own_key_and_status_counts_their_reports() {
    use tokio_stream::StreamExt as _;
    use warden_fleet_wire::{DeployOutcome, DeployRefusal, DesiredState, decode};
    let fleet = Fleet::start().await;
    let mut agents = Vec::new();
    for (tenant, name) in [("acme", "db-1"), ("acme", "db-2"), ("globex", "db-3")] {
        let a = fleet.agent(tenant, name).await;
        let hb = a_heartbeat(&a);
        a.send_heartbeat(&hb).await;
        agents.push(a);
    }
    fleet
        .wait_for("three heartbeats", |p| p.heartbeats >= 3)
        .await;
    let mut notice = agents[0]
        .client
        .subscribe(warden_fleet_identity::subjects::desired(
            &agents[0].tenant,
            &agents[0].id,
        ))
        .await
        .expect("subscribe");
    agents[0].client.flush().await.expect("flush");

    // Over two chunks; an acme-scoped operator's `*` is acme only.
    let bundle = plugin_bundle(&fleet.dir.path().join("plugin"), "0.2.0", 300 * 1024);
    let sha256 = warden_core::sha256_hex(&bundle);
    let mut api = fleet.api(ACME_OPERATOR).await;
    let published = api
        .publish(pb::PublishRequest {
            bundle: bundle.clone(),
            target: "*".into(),
            ..Default::default()
        })
        .await
        .expect("publish")
        .into_inner();
    assert_eq!(
        (published.plugin.as_str(), published.version.as_str()),
        ("disk-usage", "0.2.0")
    );
    assert_eq!(published.sha256, sha256);
    let mut targeted = published.agents.clone();
    targeted.sort();
    let mut acme: Vec<String> = agents[..2].iter().map(|a| a.id.to_string()).collect();
    acme.sort();
    assert_eq!(targeted, acme);

    // The agent is told, reads its own document and the blob by Direct-Get, with its own
    // credentials.
    let m = tokio::time::timeout(WAIT, notice.next())
        .await
        .expect("a notice in time")
        .expect("open");
    let noticed: DesiredState = decode(&m.payload).expect("a desired document");
    let a = &agents[0];
    let got = a
        .client
        .request(
            warden_fleet_identity::subjects::desired_direct_get(&a.tenant, &a.id),
            "".into(),
        )
        .await
        .expect("direct get");
    let doc: DesiredState = decode(&got.payload).expect("a desired document");
    assert_eq!(doc, noticed);
    assert_eq!((&doc.tenant, &doc.agent), (&a.tenant, &a.id));
    assert_eq!(doc.plugins.len(), 1);
    let item = &doc.plugins[0];
    assert_eq!(
        (item.sha256.as_str(), item.size),
        (sha256.as_str(), bundle.len() as u64)
    );
    assert_eq!(item.chunks(), 2);
    let mut fetched = Vec::new();
    for n in 0..item.chunks() {
        let chunk = a
            .client
            .request(
                warden_fleet_identity::subjects::blob_direct_get(&a.tenant, &sha256, n),
                "".into(),
            )
            .await
            .expect("chunk");
        fetched.extend_from_slice(&chunk.payload);
    }
    assert_eq!(fetched, bundle, "the blob is the bundle, byte for byte");

    // Reports: one installed (twice: a redelivery changes nothing), one refused; the status
    // says 1 of 2, who refused and why; the globex agent is not targeted.
    let before = fleet.progress().results;
    publish_report(
        &agents[0],
        &report(&agents[0], &sha256, DeployOutcome::Installed, 10),
    )
    .await;
    publish_report(
        &agents[1],
        &report(
            &agents[1],
            &sha256,
            DeployOutcome::Refused {
                reason: DeployRefusal::Untrusted,
            },
            11,
        ),
    )
    .await;
    let mut again = report(&agents[0], &sha256, DeployOutcome::Installed, 10);
    again.error = Some("a copy".into());
    // Another msg id (the stream's window would drop the same one): the store keeps one.
    let js = async_nats::jetstream::new(agents[0].client.clone());
    js.publish(
        again.nats_subject(),
        warden_fleet_wire::encode(&again).expect("encode").into(),
    )
    .await
    .expect("publish")
    .await
    .expect("PubAck");
    fleet
        .wait_for("three reports", |p| p.results >= before + 3)
        .await;
    let status = fleet
        .api(NOC_VIEWER)
        .await
        .deploy_status(pb::DeployStatusRequest {
            plugin: "disk-usage".into(),
        })
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status.agents.len(), 2);
    let row = |id: &warden_fleet_identity::AgentId| {
        status
            .agents
            .iter()
            .find(|r| r.agent == id.as_str())
            .expect("a row")
            .clone()
    };
    let installed = row(&agents[0].id);
    assert_eq!(
        (installed.state.as_str(), installed.error.as_str()),
        ("installed", "")
    );
    let refused = row(&agents[1].id);
    assert_eq!(
        (refused.state.as_str(), refused.reason.as_str()),
        ("refused", "untrusted")
    );

    // A viewer may not publish; an acme-scoped token may not target globex.
    let denied = fleet
        .api(NOC_VIEWER)
        .await
        .publish(pb::PublishRequest {
            bundle: bundle.clone(),
            target: "*".into(),
            ..Default::default()
        })
        .await
        .expect_err("a viewer publishes");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let denied = api
        .publish(pb::PublishRequest {
            bundle,
            target: "tenant=globex".into(),
            ..Default::default()
        })
        .await
        .expect_err("acme publishes to globex");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let audit = std::fs::read_to_string(fleet.dir.path().join("controller/audit/audit.log"))
        .expect("audit");
    assert_eq!(audit.matches("\"fleet.publish\"").count(), 1);
    assert_eq!(audit.matches("\"fleet.deploy-report\"").count(), 2);
}

fn a_heartbeat(a: &SimAgent) -> warden_fleet_wire::Heartbeat {
    let mut hb = warden_fleet_wire::Heartbeat::new(
        a.tenant.clone(),
        a.id.clone(),
        warden_fleet_wire::UnixMillis::now(),
        1,
        INTERVAL_MS,
    );
    hb.os = "linux".into();
    hb.hostname = "host".into();
    hb.agent_version = "0.1.0".into();
    hb
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_calls_need_an_operator_to_change_a_viewer_to_read_and_stay_in_the_callers_tenants()
{
    let (fleet, _agents, bundle) =
        rollout_fleet(&[("acme", "db-1"), ("acme", "db-2"), ("globex", "db-3")]).await;
    let start = |target: &str| pb::StartRolloutRequest {
        bundle: bundle.clone(),
        target: target.into(),
        canary: 1,
        waves: "100%".into(),
        max_failures: "0%".into(),
        ..Default::default()
    };
    let id = |id: &str| pb::RolloutRequest { id: id.into() };
    let mut viewer = fleet.api(NOC_VIEWER).await;
    let denied = viewer
        .start_rollout(start("*"))
        .await
        .expect_err("a viewer starts a rollout");
    assert_eq!(denied.code(), Code::PermissionDenied);

    // An acme-scoped operator's `*` is acme only; the canary is released at the start.
    let mut acme = fleet.api(ACME_OPERATOR).await;
    let v = acme
        .start_rollout(start("*"))
        .await
        .expect("start")
        .into_inner();
    assert_eq!(v.agents.len(), 2);
    assert!(v.agents.iter().all(|a| a.tenant == "acme"));
    assert_eq!((v.state.as_str(), v.wave.as_str()), ("running", "canary"));
    assert_eq!((v.waves[0].released, v.waves[1].released), (1, 0));

    // A viewer reads it but may not pause it; the operator pauses and resumes.
    let read = viewer
        .get_rollout(id(&v.id))
        .await
        .expect("a viewer reads")
        .into_inner();
    assert_eq!(read.id, v.id);
    let denied = viewer
        .pause_rollout(id(&v.id))
        .await
        .expect_err("a viewer pauses");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let paused = acme.pause_rollout(id(&v.id)).await.expect("pause");
    assert_eq!(paused.into_inner().state, "paused");
    let resumed = acme.resume_rollout(id(&v.id)).await.expect("resume");
    assert_eq!(resumed.into_inner().state, "running");

    // Another tenant's rollout does not exist for the acme operator.
    let globex = fleet
        .api(NOC_ADMIN)
        .await
        .start_rollout(start("tenant=globex"))
        .await
        .expect("start on globex")
        .into_inner();
    let hidden = acme
        .get_rollout(id(&globex.id))
        .await
        .expect_err("acme reads globex's rollout");
    assert_eq!(hidden.code(), Code::NotFound);
    let hidden = acme
        .rollback_rollout(pb::RollbackRolloutRequest {
            id: globex.id.clone(),
            to_bundle: Vec::new(),
        })
        .await
        .expect_err("acme rolls back globex's rollout");
    assert_eq!(hidden.code(), Code::NotFound);

    // The console's list: newest first, and only the rollouts within the caller's tenants.
    let caller = |tenant: Option<&str>| warden_access::Caller {
        name: "lister".into(),
        role: warden_access::Role::Viewer,
        scope: tenant.map_or(warden_access::Scope::AllTenants, |t| {
            warden_access::Scope::Tenant(t.into())
        }),
    };
    let listed = |tenant| -> Vec<String> {
        fleet
            .running
            .controller
            .list_rollouts(&caller(tenant), 10)
            .expect("list")
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    assert_eq!(listed(None), [globex.id.clone(), v.id.clone()]);
    assert_eq!(listed(Some("acme")), std::slice::from_ref(&v.id));

    // A plan that leaves agents out is a clear refusal, and records nothing.
    let bad = acme
        .start_rollout(pb::StartRolloutRequest {
            waves: "10%,50%".into(),
            ..start("*")
        })
        .await
        .expect_err("an incomplete plan");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("100%"), "{}", bad.message());
    let audit = std::fs::read_to_string(fleet.dir.path().join("controller/audit/audit.log"))
        .expect("audit");
    assert_eq!(audit.matches("\"fleet.rollout.start\"").count(), 2);
    assert_eq!(audit.matches("\"fleet.rollout.pause\"").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_the_canary_opens_during_its_soak_fails_the_gate_and_halts_the_rollout() {
    use warden_controller::Clock as _;
    use warden_fleet_wire::{AgentEvent, DeployOutcome, EventKind};
    let (fleet, agents, bundle) =
        rollout_fleet(&[("acme", "db-1"), ("acme", "db-2"), ("acme", "db-3")]).await;
    let sha256 = warden_core::sha256_hex(&bundle);
    let mut api = fleet.api(NOC_ADMIN).await;
    let v = api
        .start_rollout(pb::StartRolloutRequest {
            bundle,
            target: "tenant=acme".into(),
            canary: 1,
            waves: "100%".into(),
            max_failures: "0%".into(),
            soak_secs: 60,
            ..Default::default()
        })
        .await
        .expect("start")
        .into_inner();
    let canary = v
        .agents
        .iter()
        .find(|a| a.wave == "canary")
        .expect("a canary");
    let canary = agents
        .iter()
        .find(|a| a.id.as_str() == canary.agent)
        .expect("one of ours");
    let status = |api: &mut FleetClientOf| {
        let mut api = api.clone();
        let id = v.id.clone();
        async move {
            api.get_rollout(pb::RolloutRequest { id })
                .await
                .expect("status")
                .into_inner()
        }
    };

    // Installed: the wave soaks (60 s), the next wave waits.
    let before = fleet.progress().results;
    let at = fleet.clock.now().as_millis();
    publish_report(
        canary,
        &report(canary, &sha256, DeployOutcome::Installed, at),
    )
    .await;
    fleet
        .wait_for("the canary's report", |p| p.results > before)
        .await;
    fleet.clock.advance_ms(30_000);
    fleet
        .running
        .controller
        .tick_rollouts()
        .await
        .expect("tick");
    let soaking = status(&mut api).await;
    assert_eq!(soaking.state, "running");
    assert_eq!(
        (soaking.waves[0].healthy, soaking.waves[1].released),
        (1, 0)
    );

    // Its monitor opens an incident within the soak: the gate fails, nothing more goes out.
    let events = fleet.progress().events;
    let e = AgentEvent::new(
        canary.tenant.clone(),
        canary.id.clone(),
        1,
        fleet.clock.now(),
        EventKind::IncidentOpened,
        "disk-space",
    );
    canary
        .client
        .publish(
            e.nats_subject(),
            warden_fleet_wire::encode(&e).expect("encode").into(),
        )
        .await
        .expect("publish");
    canary.client.flush().await.expect("flush");
    fleet.wait_for("the incident", |p| p.events > events).await;
    fleet
        .running
        .controller
        .tick_rollouts()
        .await
        .expect("tick");
    let halted = status(&mut api).await;
    assert_eq!(
        (halted.state.as_str(), halted.wave.as_str()),
        ("halted", "canary")
    );
    assert_eq!((halted.waves[0].failed, halted.waves[1].released), (1, 0));
    let row = halted
        .agents
        .iter()
        .find(|a| a.agent == canary.id.as_str())
        .expect("the canary's row");
    assert_eq!(row.detail, "incident: disk-space");
    // Past the soak, a halted rollout still releases nothing.
    fleet.clock.advance_ms(60_000);
    fleet
        .running
        .controller
        .tick_rollouts()
        .await
        .expect("tick");
    assert_eq!(status(&mut api).await.waves[1].released, 0);
}

type FleetClientOf = warden_proto::fleet::fleet_client::FleetClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>,
>;

/// A controller with these agents (tenant, name), each heartbeating once, and a 0.2.0 bundle.
async fn rollout_fleet(names: &[(&str, &str)]) -> (Fleet, Vec<SimAgent>, Vec<u8>) {
    let fleet = Fleet::start().await;
    let mut agents = Vec::new();
    for (tenant, name) in names {
        let a = fleet.agent(tenant, name).await;
        a.send_heartbeat(&a_heartbeat(&a)).await;
        agents.push(a);
    }
    let n = names.len() as u64;
    fleet
        .wait_for("the heartbeats", |p| p.heartbeats >= n)
        .await;
    let bundle = plugin_bundle(&fleet.dir.path().join("plugin"), "0.2.0", 1024);
    (fleet, agents, bundle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_policy_rolls_out_as_the_documents_policy_and_a_canary_refusal_halts_it() {
    use warden_controller::Clock as _;
    use warden_fleet_wire::{DeployOutcome, DeployRefusal, ItemKind, POLICY_ITEM};
    let (fleet, agents, _) = rollout_fleet(&[("acme", "db-1"), ("acme", "db-2")]).await;
    let policy = warden_bundle::Bundle::from_policy(
        "[allow]\nkv = true\n",
        &semver::Version::new(3, 0, 0),
        30,
    )
    .expect("policy")
    .to_bytes()
    .expect("bytes");
    let sha256 = warden_core::sha256_hex(&policy);
    let mut api = fleet.api(NOC_ADMIN).await;
    let v = api
        .start_rollout(pb::StartRolloutRequest {
            bundle: policy.clone(),
            target: "tenant=acme".into(),
            canary: 1,
            waves: "100%".into(),
            max_failures: "0%".into(),
            ..Default::default()
        })
        .await
        .expect("start")
        .into_inner();
    assert_eq!(
        (v.plugin.as_str(), v.version.as_str()),
        (POLICY_ITEM, "3.0.0")
    );
    let canary_id = &v
        .agents
        .iter()
        .find(|a| a.wave == "canary")
        .expect("a canary")
        .agent;
    let canary = agents
        .iter()
        .find(|a| a.id.as_str() == canary_id)
        .expect("one of ours");
    let other = agents
        .iter()
        .find(|a| a.id.as_str() != canary_id)
        .expect("the other");

    // The canary's document names the policy (not a plugin); the other's names nothing yet.
    let document = |a: &SimAgent| {
        let client = a.client.clone();
        let subject = warden_fleet_identity::subjects::desired_direct_get(&a.tenant, &a.id);
        async move {
            let got = client
                .request(subject, "".into())
                .await
                .expect("direct get");
            warden_fleet_wire::decode::<warden_fleet_wire::DesiredState>(&got.payload).ok()
        }
    };
    fleet
        .running
        .controller
        .tick_rollouts()
        .await
        .expect("tick");
    let doc = document(canary).await.expect("the canary's document");
    let desired = doc.policy.expect("a desired policy");
    assert_eq!(
        (
            desired.version.as_str(),
            desired.sha256.as_str(),
            doc.plugins.len()
        ),
        ("3.0.0", sha256.as_str(), 0)
    );
    assert!(document(other).await.is_none_or(|d| d.policy.is_none()));

    // The canary refuses it (say, signed by a key it does not hold as a policy key): halted.
    let before = fleet.progress().results;
    let mut refusal = report(
        canary,
        &sha256,
        DeployOutcome::Refused {
            reason: DeployRefusal::Untrusted,
        },
        fleet.clock.now().as_millis(),
    );
    refusal.kind = ItemKind::Policy;
    refusal.name = "site-policy".into();
    refusal.version = "3.0.0".into();
    publish_report(canary, &refusal).await;
    fleet
        .wait_for("the canary's report", |p| p.results > before)
        .await;
    fleet
        .running
        .controller
        .tick_rollouts()
        .await
        .expect("tick");
    let halted = api
        .get_rollout(pb::RolloutRequest { id: v.id.clone() })
        .await
        .expect("status")
        .into_inner();
    assert_eq!(
        (halted.state.as_str(), halted.wave.as_str()),
        ("halted", "canary")
    );
    assert_eq!(halted.waves[1].released, 0);
    let status = api
        .deploy_status(pb::DeployStatusRequest {
            plugin: POLICY_ITEM.into(),
        })
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status.agents.len(), 1, "only the canary was released");
    assert_eq!(
        (
            status.agents[0].state.as_str(),
            status.agents[0].reason.as_str()
        ),
        ("refused", "untrusted")
    );
}

/// The word on why for `a`'s row of a rollout's status.
fn member_detail(v: &pb::RolloutView, a: &SimAgent) -> String {
    v.agents
        .iter()
        .find(|r| r.agent == a.id.as_str())
        .expect("its row")
        .detail
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_whose_own_check_fails_to_run_halts_the_rollout_and_a_critical_verdict_does_not() {
    use warden_fleet_wire::{DeployOutcome, OwnCheck, OwnCheckStatus};
    let (fleet, agents, bundle) =
        rollout_fleet(&[("acme", "db-1"), ("acme", "db-2"), ("acme", "db-3")]).await;
    let sha256 = warden_core::sha256_hex(&bundle);
    let mut api = fleet.api(NOC_ADMIN).await;
    let v = api
        .start_rollout(pb::StartRolloutRequest {
            bundle,
            target: "tenant=acme".into(),
            canary: 2,
            waves: "100%".into(),
            max_failures: "0%".into(),
            ..Default::default()
        })
        .await
        .expect("start")
        .into_inner();
    let canaries: Vec<&SimAgent> = v
        .agents
        .iter()
        .filter(|a| a.wave == "canary")
        .map(|c| {
            agents
                .iter()
                .find(|a| a.id.as_str() == c.agent)
                .expect("one of ours")
        })
        .collect();
    assert_eq!(canaries.len(), 2);
    let (critical, broken) = (canaries[0], canaries[1]);

    // One canary's check runs and finds the disk full; the other's traps.
    let before = fleet.progress().results;
    for (a, status, summary) in [
        (critical, OwnCheckStatus::Critical, "/ is 97% full"),
        (broken, OwnCheckStatus::Error, "wasm trap: unreachable"),
    ] {
        let mut r = report(a, &sha256, DeployOutcome::Installed, 10);
        r.check = Some(OwnCheck {
            status,
            summary: summary.into(),
        });
        publish_report(a, &r).await;
    }
    fleet
        .wait_for("the canaries' reports", |p| p.results >= before + 2)
        .await;
    fleet
        .running
        .controller
        .tick_rollouts()
        .await
        .expect("tick");
    let halted = api
        .get_rollout(pb::RolloutRequest { id: v.id.clone() })
        .await
        .expect("status")
        .into_inner();
    assert_eq!(
        (halted.state.as_str(), halted.wave.as_str()),
        ("halted", "canary")
    );
    assert_eq!(
        (
            halted.waves[0].healthy,
            halted.waves[0].failed,
            halted.waves[1].released
        ),
        (1, 1, 0)
    );
    let detail = |a: &SimAgent| member_detail(&halted, a);
    assert_eq!(detail(broken), "own check failed: wasm trap: unreachable");
    assert_eq!(detail(critical), "");

    // `warden fleet status` shows each verdict, as stored.
    let status = api
        .deploy_status(pb::DeployStatusRequest {
            plugin: "disk-usage".into(),
        })
        .await
        .expect("status")
        .into_inner();
    let check = |a: &SimAgent| {
        let row = status
            .agents
            .iter()
            .find(|r| r.agent == a.id.as_str())
            .expect("its row");
        (row.check_status.clone(), row.check_summary.clone())
    };
    assert_eq!(
        check(critical),
        ("critical".to_string(), "/ is 97% full".to_string())
    );
    assert_eq!(check(broken).0, "error");
}

/// The gate on a change of verdict: a canary whose new version says `critical` where the
/// version it held before said `ok` fails (the machine did not change, the plugin did); one
/// whose previous version said `critical` too does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_whose_verdict_got_worse_than_the_previous_versions_halts_the_rollout() {
    use warden_fleet_wire::{DeployOutcome, OwnCheck, OwnCheckStatus};
    let (fleet, agents, new) = rollout_fleet(&[("acme", "db-1"), ("acme", "db-2")]).await;
    let old = plugin_bundle(&fleet.dir.path().join("plugin-old"), "0.1.0", 1024);
    let (old_sha, new_sha) = (warden_core::sha256_hex(&old), warden_core::sha256_hex(&new));
    let mut api = fleet.api(NOC_ADMIN).await;
    api.publish(pb::PublishRequest {
        bundle: old,
        target: "tenant=acme".into(),
        ..Default::default()
    })
    .await
    .expect("publish the old version");
    let (was_ok, was_critical) = (&agents[0], &agents[1]);
    let verdict = |status, summary: &str| {
        Some(OwnCheck {
            status,
            summary: summary.into(),
        })
    };
    let before = fleet.progress().results;
    for (a, status) in [
        (was_ok, OwnCheckStatus::Ok),
        (was_critical, OwnCheckStatus::Critical),
    ] {
        let mut r = report(a, &old_sha, DeployOutcome::Installed, 5);
        r.version = "0.1.0".into();
        r.check = verdict(status, "as before");
        publish_report(a, &r).await;
    }
    fleet
        .wait_for("the old version's reports", |p| p.results >= before + 2)
        .await;

    let v = api
        .start_rollout(pb::StartRolloutRequest {
            bundle: new,
            target: "tenant=acme".into(),
            canary: 2,
            waves: "100%".into(),
            max_failures: "0%".into(),
            ..Default::default()
        })
        .await
        .expect("start")
        .into_inner();
    let before = fleet.progress().results;
    for a in [was_ok, was_critical] {
        let mut r = report(a, &new_sha, DeployOutcome::Installed, 10);
        r.check = verdict(OwnCheckStatus::Critical, "/ is 97% full");
        publish_report(a, &r).await;
    }
    fleet
        .wait_for("the canaries' reports", |p| p.results >= before + 2)
        .await;
    fleet
        .running
        .controller
        .tick_rollouts()
        .await
        .expect("tick");
    let halted = api
        .get_rollout(pb::RolloutRequest { id: v.id.clone() })
        .await
        .expect("status")
        .into_inner();
    assert_eq!(
        (halted.state.as_str(), halted.wave.as_str()),
        ("halted", "canary"),
        "{halted:?}"
    );
    assert_eq!((halted.waves[0].healthy, halted.waves[0].failed), (1, 1));
    let detail = |a: &SimAgent| member_detail(&halted, a);
    assert_eq!(
        detail(was_ok),
        "own check turned critical (0.1.0 said ok): / is 97% full"
    );
    assert_eq!(detail(was_critical), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_nothing_needs_are_purged_after_their_grace_and_the_desired_ones_stay() {
    let (fleet, agents, old) = rollout_fleet(&[("acme", "db-1"), ("acme", "db-2")]).await;
    let new = plugin_bundle(&fleet.dir.path().join("plugin-new"), "0.3.0", 300 * 1024);
    let (old_sha, new_sha) = (warden_core::sha256_hex(&old), warden_core::sha256_hex(&new));
    let mut api = fleet.api(NOC_ADMIN).await;
    for bundle in [&old, &new] {
        api.publish(pb::PublishRequest {
            bundle: bundle.clone(),
            target: "tenant=acme".into(),
            ..Default::default()
        })
        .await
        .expect("publish");
    }
    let a = &agents[0];
    let chunk = |sha: String, n: u32| {
        let client = a.client.clone();
        let subject = warden_fleet_identity::subjects::blob_direct_get(&a.tenant, &sha, n);
        async move {
            let reply = client
                .request(subject, "".into())
                .await
                .expect("direct get");
            reply.status != Some(async_nats::StatusCode::NOT_FOUND)
        }
    };
    assert!(chunk(old_sha.clone(), 0).await, "the old blob is stored");
    let gc = |dry_run: bool| {
        let mut api = api.clone();
        async move {
            api.collect_blobs(pb::CollectBlobsRequest { dry_run })
                .await
                .map(|r| r.into_inner())
        }
    };

    // Within the hour's grace nothing goes, whatever names it.
    assert!(gc(false).await.expect("gc").blobs.is_empty());
    // Past it, the superseded version goes; the desired one stays, chunk for chunk.
    fleet.clock.advance_ms(2 * 60 * 60 * 1000);
    let dry = gc(true).await.expect("dry run");
    assert_eq!(
        dry.blobs
            .iter()
            .map(|b| b.sha256.as_str())
            .collect::<Vec<_>>(),
        [old_sha.as_str()]
    );
    assert!(chunk(old_sha.clone(), 0).await, "a dry run purges nothing");
    let done = gc(false).await.expect("gc");
    assert_eq!(done.blobs.len(), 1);
    assert_eq!(done.bytes, old.len() as u64);
    assert!(!chunk(old_sha.clone(), 0).await, "purged");
    assert!(chunk(new_sha.clone(), 0).await && chunk(new_sha.clone(), 1).await);
    assert!(gc(false).await.expect("gc").blobs.is_empty(), "once");
    let audit = std::fs::read_to_string(fleet.dir.path().join("controller/audit/audit.log"))
        .expect("audit");
    assert_eq!(audit.matches("\"fleet.blobs.collected\"").count(), 1);

    // Only an MSP-wide admin collects: an operator and a tenant's admin are refused.
    for token in [ACME_OPERATOR, ACME_ADMIN] {
        let mut api = fleet.api(token).await;
        let refused = api
            .collect_blobs(pb::CollectBlobsRequest { dry_run: true })
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{token}");
    }
}

/// The agent page's audit records (issue 18): only those about that agent (its enrollment, the
/// runs dispatched to it, its results), newest first, bounded; a caller scoped to another
/// tenant is not told the agent exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_s_audit_records_are_its_own_newest_first_bounded_and_tenant_scoped() {
    use warden_access::{Caller, Role, Scope};
    use warden_controller::FleetError;
    let fleet = Fleet::start().await;
    let mut a = fleet.agent("acme", "db-1").await;
    let mut b = fleet.agent("acme", "web-1").await;
    a.listen().await;
    b.listen().await;
    let mut api = fleet.api(NOC_ADMIN).await;
    let mut runs = Vec::new();
    for agent in [&mut a, &mut b] {
        let run = api
            .dispatch(dispatch(&format!("agent={}", agent.id), 0))
            .await
            .expect("dispatch")
            .into_inner()
            .run_id;
        let c = agent.next_command().await;
        let done = RunResult::new(
            c.run.clone(),
            agent.tenant.clone(),
            agent.id.clone(),
            RunStatus::Succeeded,
        );
        assert!(!agent.publish_result(&done, &done.msg_id()).await);
        runs.push(run);
    }
    fleet.wait_for("two results", |p| p.results >= 2).await;
    let controller = &fleet.running.controller;
    let caller = |name: &str, scope: Scope| Caller {
        name: name.into(),
        role: Role::Viewer,
        scope,
    };
    let noc = caller("noc-viewer", Scope::AllTenants);
    let trail = controller
        .agent_audit(&noc, &a.id, 50)
        .expect("a's audit records");
    let events: Vec<&str> = trail.entries.iter().map(|e| e.event.as_str()).collect();
    // Newest first: the result, the dispatch of a's run, a's enrollment.
    assert_eq!(
        events,
        vec!["fleet.result", "fleet.dispatch", "fleet.enrolled"],
        "{trail:#?}"
    );
    assert!(trail.entries.windows(2).all(|w| w[0].seq > w[1].seq));
    assert!(trail.entries[1].detail.contains(&runs[0]), "{trail:#?}");
    assert_eq!(trail.entries[0].actor, "agent");
    assert_eq!(trail.entries[1].actor, "noc-admin");
    // Nothing of b's: neither its run nor its id.
    assert!(
        trail
            .entries
            .iter()
            .all(|e| !e.detail.contains(&runs[1]) && !e.detail.contains(b.id.as_str())),
        "{trail:#?}"
    );
    // Each one's successor in the log names its hash: the chain holds there.
    assert!(trail.entries.iter().all(|e| e.linked == Some(true)));
    assert_eq!(trail.searched_back_to, None);

    let newest = controller.agent_audit(&noc, &a.id, 1).expect("one");
    assert_eq!(newest.entries, trail.entries[..1].to_vec());
    let acme = caller("acme-viewer", Scope::Tenant("acme".into()));
    assert_eq!(
        controller
            .agent_audit(&acme, &a.id, 50)
            .expect("acme's own")
            .entries,
        trail.entries
    );
    let globex = caller("globex-viewer", Scope::Tenant("globex".into()));
    assert!(matches!(
        controller.agent_audit(&globex, &a.id, 50),
        Err(FleetError::NotFound(_))
    ));
}
