//! Enrollment over the controller's gRPC API and revocation through it, against a real
//! nats-server: a token enrolls once, a revoked agent is disconnected and cannot enroll again,
//! and an agent's events reach the controller's store once.

mod support;

use support::*;
use tonic::Code;
use warden_fleet_identity::AgentKey;
use warden_fleet_wire::{AgentEvent, EventKind, UnixMillis};
use warden_proto::fleet as pb;

async fn token(fleet: &Fleet, tenant: &str) -> String {
    fleet
        .api(NOC_ADMIN)
        .await
        .issue_enrollment_token(pb::IssueEnrollmentTokenRequest {
            tenant: tenant.into(),
            tags: vec!["site=hq".into()],
            ttl_seconds: 0,
        })
        .await
        .expect("token")
        .into_inner()
        .token
}

/// A spent token is persisted (one row per token) before the JWT goes out: a controller
/// restarted on the same store still refuses it, and still takes an unspent one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_token_stays_spent_across_a_controller_restart() {
    let mut fleet = Fleet::start().await;
    let (spent, unspent) = (token(&fleet, "acme").await, token(&fleet, "acme").await);
    enroll(
        fleet.channel().await,
        &AgentKey::generate(),
        &spent,
        &tenant("acme"),
        "pc-1",
    )
    .await
    .expect("enrolls");
    fleet.restart_controller(async {}).await;
    let err = enroll(
        fleet.channel().await,
        &AgentKey::generate(),
        &spent,
        &tenant("acme"),
        "pc-2",
    )
    .await
    .expect_err("spent before the restart");
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(err.message().contains("used already"), "{err:?}");
    enroll(
        fleet.channel().await,
        &AgentKey::generate(),
        &unspent,
        &tenant("acme"),
        "pc-3",
    )
    .await
    .expect("an unspent token still enrolls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_enrolls_once_and_only_into_its_tenant() {
    let fleet = Fleet::start().await;
    let t = token(&fleet, "acme").await;
    // Pasted into a machine configured for another client: refused, token not spent.
    let err = enroll(
        fleet.channel().await,
        &AgentKey::generate(),
        &t,
        &tenant("globex"),
        "pc",
    )
    .await
    .expect_err("wrong tenant");
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let key = AgentKey::generate();
    let jwt = enroll(fleet.channel().await, &key, &t, &tenant("acme"), "pc-1")
        .await
        .expect("enrolls");
    assert_eq!(jwt.agent, key.id());
    let err = enroll(
        fleet.channel().await,
        &AgentKey::generate(),
        &t,
        &tenant("acme"),
        "pc-2",
    )
    .await
    .expect_err("second use");
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("used already"), "{err:?}");
    // The enrolled agent is listed with the token's tags, never seen yet.
    let agents = fleet
        .api(NOC_VIEWER)
        .await
        .list_agents(pb::ListAgentsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .agents;
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0].presence, "never-seen");
    assert_eq!(agents[0].tags.get("site").map(String::as_str), Some("hq"));
    // A viewer may not issue tokens.
    let err = fleet
        .api(NOC_VIEWER)
        .await
        .issue_enrollment_token(pb::IssueEnrollmentTokenRequest {
            tenant: "acme".into(),
            ..Default::default()
        })
        .await
        .expect_err("viewer");
    assert_eq!(err.code(), Code::PermissionDenied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_agent_is_disconnected_and_cannot_enroll_again() {
    let fleet = Fleet::start().await;
    let mut a = fleet.agent("acme", "stolen-laptop").await;
    let neighbour = fleet.agent("acme", "desk").await;
    let r = fleet
        .api(NOC_ADMIN)
        .await
        .revoke(pb::RevokeRequest {
            agent: a.id.to_string(),
            reason: "laptop stolen".into(),
        })
        .await
        .expect("revoke")
        .into_inner();
    assert_eq!(r.tenant, "acme");
    let said = tokio::time::timeout(WAIT, async {
        while let Some(event) = a.events.recv().await {
            let text = event.to_string().to_lowercase();
            if text.contains("revoked") {
                return text;
            }
        }
        String::new()
    })
    .await
    .expect("the server closes the revoked agent's connection");
    assert!(said.contains("revoked"), "{said}");
    // The neighbour is still connected and can still talk.
    neighbour
        .client
        .flush()
        .await
        .expect("neighbour stays connected");
    let t = token(&fleet, "acme").await;
    let err = enroll(
        fleet.channel().await,
        &a.key,
        &t,
        &tenant("acme"),
        "stolen-laptop",
    )
    .await
    .expect_err("a revoked key");
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("revoked"), "{err:?}");
    let agents = fleet
        .api(NOC_VIEWER)
        .await
        .list_agents(pb::ListAgentsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .agents;
    let row = agents
        .iter()
        .find(|x| x.agent == a.id.as_str())
        .expect("listed");
    assert!(row.revoked);
    let audit = std::fs::read_to_string(fleet.dir.path().join("controller/audit/audit.log"))
        .expect("audit");
    assert!(audit.contains("\"fleet.revoke\"") && audit.contains("laptop stolen"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_events_are_stored_once_and_streamed_to_its_tenant_only() {
    let fleet = Fleet::start().await;
    let a = fleet.agent("acme", "db-1").await;
    let g = fleet.agent("globex", "db-9").await;
    let mut watch = fleet
        .api(ACME_OPERATOR)
        .await
        .watch_events(pb::WatchEventsRequest::default())
        .await
        .expect("watch")
        .into_inner();
    // Globex's event first: the acme-scoped watcher must skip it and see acme's.
    let ge = AgentEvent::new(
        g.tenant.clone(),
        g.id.clone(),
        1,
        UnixMillis::now(),
        EventKind::Escalation,
        "backup",
    );
    g.client
        .publish(
            ge.nats_subject(),
            warden_fleet_wire::encode(&ge).expect("encode").into(),
        )
        .await
        .expect("publish");
    g.client.flush().await.expect("flush");
    fleet.wait_for("globex's event", |p| p.events >= 1).await;
    let mut e = AgentEvent::new(
        a.tenant.clone(),
        a.id.clone(),
        1,
        UnixMillis::now(),
        EventKind::IncidentOpened,
        "disk-space",
    );
    e.detail = "/var at 97 %".into();
    let bytes = warden_fleet_wire::encode(&e).expect("encode");
    // Twice, as an outbox replay would.
    for _ in 0..2 {
        a.client
            .publish(e.nats_subject(), bytes.clone().into())
            .await
            .expect("publish");
    }
    a.client.flush().await.expect("flush");
    fleet
        .wait_for("two more event messages", |p| p.events >= 3)
        .await;
    let seen = tokio::time::timeout(WAIT, tokio_stream::StreamExt::next(&mut watch))
        .await
        .expect("an event in time")
        .expect("stream open")
        .expect("event");
    assert_eq!(
        (seen.agent.as_str(), seen.kind.as_str()),
        (a.id.as_str(), "incident-opened")
    );
    let listed = fleet
        .api(ACME_OPERATOR)
        .await
        .list_events(pb::ListEventsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .events;
    assert_eq!(listed.len(), 1, "one acme event, stored once: {listed:?}");
    assert_eq!(listed[0].detail, "/var at 97 %");
    let all = fleet
        .running
        .controller
        .events(&warden_controller::controller::internal_caller(), None, 10)
        .expect("events");
    assert_eq!(all.len(), 2);
}

/// A renewal request on `agent`'s subject from `client`, and the controller's answer.
async fn ask_renewal(
    client: &async_nats::Client,
    tenant_id: &warden_fleet_identity::TenantId,
    agent: &warden_fleet_identity::AgentId,
    request: &warden_fleet_identity::RenewalRequest,
) -> warden_fleet_identity::RenewalReply {
    let answer = client
        .request(
            warden_fleet_identity::subjects::renewal(tenant_id, agent),
            serde_json::to_vec(request).expect("json").into(),
        )
        .await
        .expect("the controller answers");
    serde_json::from_slice(&answer.payload).expect("a renewal reply")
}

fn audit_records(fleet: &Fleet, event: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(fleet.dir.path().join("controller/audit/audit.log"))
        .expect("audit")
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["event"] == event)
        .collect()
}

/// Renewal over the agent's own connection: a request signed by its key gets a new JWT for
/// that key, issued at the controller's (injected) time, and the agent connects with it; a
/// request signed by another key, and one for a revoked agent, are refused; each answer is
/// audited before it is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_renews_its_jwt_over_its_connection_and_a_revoked_key_is_refused() {
    let fleet = Fleet::start().await;
    let a = fleet.agent("acme", "laptop").await;
    let b = fleet.agent("acme", "stolen").await;
    // Half a (short) lifetime later on the controller's clock.
    fleet.clock.advance_ms(90_000);
    let now = warden_controller::Clock::now(&fleet.clock).as_secs();

    let request = a.key.renewal_request(&a.tenant, now).expect("request");
    let reply = ask_renewal(&a.client, &a.tenant, &a.id, &request).await;
    assert_eq!(reply.error, None, "{reply:?}");
    let jwt = reply.jwt.clone().expect("a new JWT");
    assert_ne!(jwt, a.jwt.jwt, "a new JWT");
    let claims = warden_fleet_identity::jwt::decode::<warden_fleet_identity::jwt::User>(&jwt)
        .expect("a user JWT");
    assert_eq!(claims.subject, a.id.as_str(), "for the same key");
    assert_eq!(claims.issued_at, now, "issued at the controller's time");
    assert_eq!(
        reply.expires_at,
        Some(now + warden_fleet_identity::AGENT_JWT_LIFETIME)
    );
    let renewed = audit_records(&fleet, "fleet.renewed");
    assert_eq!(renewed.len(), 1, "{renewed:?}");
    assert_eq!(renewed[0]["data"]["agent"], a.id.as_str());

    // The agent connects with the new JWT and is heard.
    let renewed_jwt = warden_fleet_identity::AgentJwt {
        tenant: a.tenant.clone(),
        agent: a.id.clone(),
        jwt,
        issued_at: now,
        expires_at: reply.expires_at.expect("expiry"),
    };
    let before = fleet.progress().heartbeats;
    let mut again = SimAgent::connect(
        &fleet.nats.url(0),
        AgentKey::from_seed(a.key.seed().expect("seed").expose()).expect("key"),
        renewed_jwt,
    )
    .await;
    let hb = again.heartbeat_with("linux", &[]);
    again.send_heartbeat(&hb).await;
    fleet
        .wait_for("the renewed agent's heartbeat", |p| p.heartbeats > before)
        .await;

    // Signed by another key (a neighbour asking for the laptop's credentials on its subject
    // is impossible: the server forbids it; so the laptop's own connection carries it).
    let mut forged = b.key.renewal_request(&a.tenant, now).expect("request");
    forged.agent = a.id.to_string();
    let reply = ask_renewal(&a.client, &a.tenant, &a.id, &forged).await;
    assert!(reply.jwt.is_none());
    assert!(
        reply
            .error
            .as_deref()
            .is_some_and(|e| e.contains("signature")),
        "{reply:?}"
    );

    // A revoked agent: the server cuts its connection; a request of its that was on the way
    // (sent here by a client of the fleet account) is refused by the controller itself.
    fleet
        .api(NOC_ADMIN)
        .await
        .revoke(pb::RevokeRequest {
            agent: b.id.to_string(),
            reason: "stolen".into(),
        })
        .await
        .expect("revoke");
    let (authority, _) =
        warden_controller::keys::load_or_create(&fleet.config.data_dir, &fleet.config.tenants)
            .expect("keys");
    let controller_creds = authority
        .controller_credentials(warden_fleet_identity::unix_now())
        .expect("creds");
    let fleet_client = async_nats::ConnectOptions::with_credentials(&controller_creds.creds())
        .expect("creds")
        .connect(fleet.nats.url(0))
        .await
        .expect("a fleet-account client");
    let request = b.key.renewal_request(&b.tenant, now).expect("request");
    let reply = ask_renewal(&fleet_client, &b.tenant, &b.id, &request).await;
    assert!(reply.jwt.is_none());
    assert!(
        reply
            .error
            .as_deref()
            .is_some_and(|e| e.contains("revoked")),
        "{reply:?}"
    );
    let refused = audit_records(&fleet, "fleet.renew-refused");
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused.iter().any(|r| {
        r["data"]["agent"] == b.id.as_str()
            && r["data"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("revoked"))
    }));
    assert_eq!(audit_records(&fleet, "fleet.renewed").len(), 1);
}
