//! The credentials against a real nats-server 2.12.8 (`cargo xtask nats` installs it) in
//! operator mode with the full resolver: what an agent's permissions let it do and not do,
//! across agents and tenants, and what a revocation pushed at runtime does.
//!
//! A forbidden subscribe or publish is not refused at the client: the server answers with an
//! `-ERR 'Permissions Violation ...'` (an async event) and drops it. Each test therefore checks
//! both: the violation is reported, and the message did not arrive. "Did not arrive" is decided
//! without sleeping: a later message that was allowed, sent on the same path, arrives after
//! where the forbidden one would have been (NATS keeps order per connection).

use std::time::Duration;

use async_nats::{Client, ConnectOptions, Event, ServerError};
use tokio::sync::mpsc;
use tokio_stream::{Stream, StreamExt};
use warden_fleet_identity::{
    AgentJwt, AgentKey, CLAIMS_UPDATE_SUBJECT, Credentials, DenyList, FleetAuthority, SpentTokens,
    TenantId, claims_update_result, enroll::ENROLLMENT_TOKEN_LIFETIME, subjects, unix_now,
};
use warden_natstest::{Nats, Options};

/// Bound on every wait for something that should happen (a message, an event).
const WAIT: Duration = Duration::from_secs(10);
/// How long a JetStream publish or request waits for its answer when the test expects none.
const NO_ANSWER: Duration = Duration::from_secs(2);

struct Fleet {
    nats: Nats,
    authority: FleetAuthority,
    deny: DenyList,
    spent: SpentTokens,
    acme: TenantId,
    globex: TenantId,
}

impl Fleet {
    fn start() -> Fleet {
        let mut authority = FleetAuthority::generate();
        let acme = TenantId::new("acme").expect("tenant");
        let globex = TenantId::new("globex").expect("tenant");
        authority.add_tenant(&acme).expect("acme");
        authority.add_tenant(&globex).expect("globex");
        let deny = DenyList::new();
        // Written a second before anything is pushed: a pushed account JWT replaces a
        // preloaded one only if issued later (or in the same second), and the revocation test
        // restarts the server on this config.
        let config = authority
            .server_config(&deny, "jwt", unix_now() - 1)
            .expect("config");
        let options = Options {
            extra_config: config,
            ..Options::default()
        };
        let nats = tokio::task::block_in_place(|| Nats::start(1, options))
            .expect("nats-server in operator mode (run `cargo xtask nats` first)");
        Fleet {
            nats,
            authority,
            deny,
            spent: SpentTokens::new(),
            acme,
            globex,
        }
    }

    /// The whole enrollment of a new agent, as controller and agent would run it.
    fn enroll(&mut self, tenant: &TenantId, name: &str) -> (AgentKey, AgentJwt) {
        let now = unix_now();
        let token = self
            .authority
            .issue_enrollment_token(tenant, &[], ENROLLMENT_TOKEN_LIFETIME, now)
            .expect("token");
        let key = AgentKey::generate();
        let request = key.request(&token.token, tenant, name);
        let pending = self
            .authority
            .begin_enrollment(&request, &self.spent, &self.deny, now)
            .expect("begin");
        let answer = key.answer(&pending.challenge).expect("answer");
        let enrolled = self
            .authority
            .complete_enrollment(&pending, &answer, &mut self.spent, &self.deny, now)
            .expect("complete");
        (key, enrolled.jwt)
    }

    async fn controller(&self) -> Client {
        let creds = self
            .authority
            .controller_credentials(unix_now())
            .expect("controller creds");
        connect(&self.nats.url(0), &creds, None)
            .await
            .expect("controller connects")
    }

    async fn system(&self) -> Client {
        let creds = self
            .authority
            .system_credentials(unix_now())
            .expect("system creds");
        connect(&self.nats.url(0), &creds, None)
            .await
            .expect("system user connects")
    }
}

/// A connected agent and the events its client reported.
struct Agent {
    client: Client,
    events: mpsc::UnboundedReceiver<Event>,
}

impl Agent {
    async fn connect(url: &str, key: &AgentKey, jwt: &AgentJwt) -> Result<Agent, String> {
        let (tx, events) = mpsc::unbounded_channel();
        let creds = key.credentials(jwt).expect("creds");
        let client = connect(url, &creds, Some((subjects::inbox_prefix(&key.id()), tx))).await?;
        Ok(Agent { client, events })
    }

    /// Wait for a server error whose text contains `needle` (case-insensitive).
    async fn expect_server_error(&mut self, needle: &str) -> String {
        let needle = needle.to_lowercase();
        let found = tokio::time::timeout(WAIT, async {
            while let Some(event) = self.events.recv().await {
                if let Event::ServerError(ServerError::Other(text)) = &event
                    && text.to_lowercase().contains(&needle)
                {
                    return Some(text.clone());
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(text)) => text,
            other => panic!("no server error containing {needle:?}: {other:?}"),
        }
    }
}

async fn connect(
    url: &str,
    creds: &Credentials,
    agent: Option<(String, mpsc::UnboundedSender<Event>)>,
) -> Result<Client, String> {
    let mut options = ConnectOptions::with_credentials(&creds.creds())
        .map_err(|e| format!("creds: {e}"))?
        .request_timeout(Some(NO_ANSWER))
        .connection_timeout(Duration::from_secs(5));
    if let Some((inbox, events)) = agent {
        options = options
            .custom_inbox_prefix(inbox)
            .event_callback(move |event| {
                let events = events.clone();
                async move {
                    let _ = events.send(event);
                }
            });
    }
    options.connect(url).await.map_err(|e| e.to_string())
}

async fn next_payload(sub: &mut async_nats::Subscriber) -> (String, String) {
    let message = tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("a message in time")
        .expect("subscription open");
    (
        message.subject.to_string(),
        String::from_utf8_lossy(&message.payload).into_owned(),
    )
}

/// A round trip on the controller's connection (a JetStream API request): the server has
/// processed everything the controller sent before, its subscriptions included. (`flush` only
/// writes the socket.)
async fn controller_round_trip(controller: &Client) {
    async_nats::jetstream::new(controller.clone())
        .query_account()
        .await
        .expect("account info");
}

/// Make sure the server has processed every subscription the agents made so far: each
/// publishes a heartbeat after them, and the controller (subscribed to `fleet.hb.>`, round trip
/// done) sees them all. The server handles one connection's messages in order.
async fn sync_agents(heartbeats: &mut async_nats::Subscriber, agents: &[(&Agent, String)]) {
    let mut waiting: Vec<&String> = agents.iter().map(|(_, subject)| subject).collect();
    for (agent, subject) in agents {
        agent
            .client
            .publish(subject.clone(), "sync".into())
            .await
            .expect("heartbeat");
    }
    while !waiting.is_empty() {
        let (subject, _) = next_payload(heartbeats).await;
        waiting.retain(|s| **s != subject);
    }
}

/// Whatever the subscription already holds, without waiting.
fn already_delivered(sub: &mut async_nats::Subscriber) -> Option<String> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match std::pin::Pin::new(sub).poll_next(&mut cx) {
        std::task::Poll::Ready(Some(m)) => Some(m.subject.to_string()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_reads_its_own_commands_only_and_publishes_only_as_itself() {
    let mut fleet = Fleet::start();
    let acme = fleet.acme.clone();
    let (key_a, jwt_a) = fleet.enroll(&acme, "host-a");
    let (key_b, jwt_b) = fleet.enroll(&acme, "host-b");
    let (a_id, b_id) = (key_a.id(), key_b.id());
    let url = fleet.nats.url(0);
    let controller = fleet.controller().await;
    let js = async_nats::jetstream::new(controller.clone());
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "RESULTS".into(),
        subjects: vec![subjects::RESULTS_STREAM_SUBJECTS.into()],
        ..Default::default()
    })
    .await
    .expect("results stream");
    let mut heartbeats = controller.subscribe("fleet.hb.>").await.expect("sub");
    controller_round_trip(&controller).await;

    let mut a = Agent::connect(&url, &key_a, &jwt_a)
        .await
        .expect("A connects");
    let b = Agent::connect(&url, &key_b, &jwt_b)
        .await
        .expect("B connects");
    let mut a_own = a
        .client
        .subscribe(subjects::command(&acme, &a_id))
        .await
        .expect("sub");
    let mut b_own = b
        .client
        .subscribe(subjects::command(&acme, &b_id))
        .await
        .expect("sub");
    sync_agents(
        &mut heartbeats,
        &[
            (&a, subjects::heartbeat(&acme, &a_id)),
            (&b, subjects::heartbeat(&acme, &b_id)),
        ],
    )
    .await;

    // A tries B's commands, every command of the tenant, all commands, and all replies.
    let forbidden = [
        subjects::command(&acme, &b_id),
        format!("fleet.cmd.{acme}.*"),
        "fleet.cmd.>".to_string(),
        "_INBOX.>".to_string(),
        format!("fleet.res.{acme}.{b_id}"),
    ];
    let mut snoops = Vec::new();
    for subject in &forbidden {
        snoops.push(
            a.client
                .subscribe(subject.clone())
                .await
                .expect("local sub"),
        );
        let text = a
            .expect_server_error(&format!(
                "Permissions Violation for Subscription to \"{subject}\""
            ))
            .await;
        println!("A subscribing {subject}: server said {text:?}");
    }

    controller
        .publish(subjects::command(&acme, &b_id), "for B".into())
        .await
        .expect("publish");
    controller
        .publish(subjects::command(&acme, &a_id), "for A".into())
        .await
        .expect("publish");
    controller.flush().await.expect("flush");
    assert_eq!(next_payload(&mut b_own).await.1, "for B");
    assert_eq!(next_payload(&mut a_own).await.1, "for A");
    // "for B" was sent first: had any snoop been live, it would hold it by now.
    for (subject, snoop) in forbidden.iter().zip(&mut snoops) {
        assert_eq!(already_delivered(snoop), None, "A read through {subject}");
    }

    // Heartbeats: as B refused, as itself delivered (and first, so B's never was).
    a.client
        .publish(subjects::heartbeat(&acme, &b_id), "A posing as B".into())
        .await
        .expect("publish");
    a.expect_server_error(&format!(
        "Permissions Violation for Publish to \"{}\"",
        subjects::heartbeat(&acme, &b_id)
    ))
    .await;
    a.client
        .publish(subjects::heartbeat(&acme, &a_id), "A".into())
        .await
        .expect("publish");
    assert_eq!(
        next_payload(&mut heartbeats).await,
        (subjects::heartbeat(&acme, &a_id), "A".to_string())
    );

    // Results through JetStream (cross-account, with its PubAck): as B no ack and not stored,
    // as itself acknowledged.
    let a_js = async_nats::jetstream::ContextBuilder::new()
        .timeout(NO_ANSWER)
        .build(a.client.clone());
    let as_b = a_js
        .publish(subjects::result(&acme, &b_id), "forged result".into())
        .await
        .expect("sent");
    assert!(
        as_b.await.is_err(),
        "a result published as B was acknowledged"
    );
    a.expect_server_error(&format!(
        "Permissions Violation for Publish to \"{}\"",
        subjects::result(&acme, &b_id)
    ))
    .await;
    let ack = a_js
        .publish(subjects::result(&acme, &a_id), "A's result".into())
        .await
        .expect("sent")
        .await
        .expect("A's own result acknowledged");
    assert_eq!(ack.stream, "RESULTS");
    let mut stream = js.get_stream("RESULTS").await.expect("stream");
    let info = stream.info().await.expect("info");
    assert_eq!(info.state.messages, 1, "only A's own result is stored");
    let stored = stream.get_raw_message(ack.sequence).await.expect("stored");
    assert_eq!(stored.subject.as_str(), subjects::result(&acme, &a_id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_reads_only_its_own_desired_state_and_its_tenants_blobs() {
    let mut fleet = Fleet::start();
    let (acme, globex) = (fleet.acme.clone(), fleet.globex.clone());
    let (key_x, jwt_x) = fleet.enroll(&acme, "acme-host");
    let (key_w, jwt_w) = fleet.enroll(&acme, "acme-neighbour");
    let (key_y, jwt_y) = fleet.enroll(&globex, "globex-host");
    let (x_id, w_id, y_id) = (key_x.id(), key_w.id(), key_y.id());
    let url = fleet.nats.url(0);
    let controller = fleet.controller().await;
    let mut heartbeats = controller.subscribe("fleet.hb.>").await.expect("sub");
    controller_round_trip(&controller).await;
    let js = async_nats::jetstream::new(controller.clone());
    // The desired-state bucket as the controller keeps it: a KV stream that RePublishes every
    // put to the plain notice subjects, with Direct-Get on; and the blob stream.
    let bucket = subjects::DESIRED_BUCKET;
    js.create_stream(async_nats::jetstream::stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        allow_direct: true,
        republish: Some(async_nats::jetstream::stream::Republish {
            source: format!("$KV.{bucket}.>"),
            destination: "fleet.desired.>".into(),
            headers_only: false,
        }),
        ..Default::default()
    })
    .await
    .expect("desired bucket");
    js.create_stream(async_nats::jetstream::stream::Config {
        name: subjects::BLOBS_STREAM.into(),
        subjects: vec![subjects::blob_stream_subjects()],
        max_messages_per_subject: 1,
        allow_direct: true,
        ..Default::default()
    })
    .await
    .expect("blob stream");

    let mut x = Agent::connect(&url, &key_x, &jwt_x)
        .await
        .expect("X connects");
    let w = Agent::connect(&url, &key_w, &jwt_w)
        .await
        .expect("W connects");
    let y = Agent::connect(&url, &key_y, &jwt_y)
        .await
        .expect("Y connects");
    let mut x_own = x
        .client
        .subscribe(subjects::desired(&acme, &x_id))
        .await
        .expect("sub");
    let mut w_own = w
        .client
        .subscribe(subjects::desired(&acme, &w_id))
        .await
        .expect("sub");
    let mut y_own = y
        .client
        .subscribe(subjects::desired(&globex, &y_id))
        .await
        .expect("sub");
    sync_agents(
        &mut heartbeats,
        &[
            (&x, subjects::heartbeat(&acme, &x_id)),
            (&w, subjects::heartbeat(&acme, &w_id)),
            (&y, subjects::heartbeat(&globex, &y_id)),
        ],
    )
    .await;
    let forbidden = [
        subjects::desired(&acme, &w_id),
        subjects::desired(&globex, &y_id),
        format!("{}.acme.>", subjects::DESIRED),
        "fleet.desired.>".to_string(),
    ];
    let mut snoops = Vec::new();
    for subject in &forbidden {
        snoops.push(
            x.client
                .subscribe(subject.clone())
                .await
                .expect("local sub"),
        );
        x.expect_server_error(&format!(
            "Permissions Violation for Subscription to \"{subject}\""
        ))
        .await;
    }

    for (tenant, agent, value) in [
        (&globex, &y_id, "y-v1"),
        (&acme, &w_id, "w-v1"),
        (&acme, &x_id, "x-v1"),
    ] {
        js.publish(format!("$KV.{bucket}.{tenant}.{agent}"), value.into())
            .await
            .expect("put")
            .await
            .expect("stored");
    }
    assert_eq!(
        next_payload(&mut y_own).await,
        (subjects::desired(&globex, &y_id), "y-v1".to_string())
    );
    assert_eq!(
        next_payload(&mut w_own).await,
        (subjects::desired(&acme, &w_id), "w-v1".to_string())
    );
    // X's own notice comes last (NATS keeps order per connection): had a snoop been let
    // through, W's and Y's notices would be in it by now.
    assert_eq!(
        next_payload(&mut x_own).await,
        (subjects::desired(&acme, &x_id), "x-v1".to_string())
    );
    for (subject, snoop) in forbidden.iter().zip(&mut snoops) {
        assert_eq!(already_delivered(snoop), None, "X read through {subject}");
    }

    // Direct-Get: its own key answers; its neighbour's and another tenant's are refused.
    let own = x
        .client
        .request(subjects::desired_direct_get(&acme, &x_id), "".into())
        .await
        .expect("X reads its own desired state");
    assert_eq!(own.payload.as_ref(), b"x-v1");
    for (tenant, agent) in [(&acme, &w_id), (&globex, &y_id)] {
        let other = x
            .client
            .request(subjects::desired_direct_get(tenant, agent), "".into())
            .await;
        assert!(other.is_err(), "X read {agent}'s desired state: {other:?}");
        x.expect_server_error("Permissions Violation for Publish to \"$JS.API.DIRECT.GET")
            .await;
    }

    // Blobs: a chunk of its tenant answers, the same digest stored for another tenant does not.
    let digest = "ab".repeat(32);
    for (tenant, value) in [(&acme, "acme-chunk"), (&globex, "globex-chunk")] {
        js.publish(subjects::blob_chunk(tenant, &digest, 0), value.into())
            .await
            .expect("put")
            .await
            .expect("stored");
    }
    let chunk = x
        .client
        .request(subjects::blob_direct_get(&acme, &digest, 0), "".into())
        .await
        .expect("X reads its tenant's blob");
    assert_eq!(chunk.payload.as_ref(), b"acme-chunk");
    let theirs = x
        .client
        .request(subjects::blob_direct_get(&globex, &digest, 0), "".into())
        .await;
    assert!(theirs.is_err(), "X read globex's blob: {theirs:?}");
    x.expect_server_error("Permissions Violation for Publish to \"$JS.API.DIRECT.GET")
        .await;
    // Nor may it write a blob or a desired document (only the controller's account does).
    x.client
        .publish(subjects::blob_chunk(&acme, &digest, 1), "forged".into())
        .await
        .expect("publish");
    x.expect_server_error("Permissions Violation for Publish to \"fleet.blob.")
        .await;
    x.client
        .publish(format!("$KV.{bucket}.acme.{x_id}"), "forged".into())
        .await
        .expect("publish");
    x.expect_server_error("Permissions Violation for Publish to \"$KV.")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_agent_is_disconnected_and_stays_out_across_restarts() {
    let mut fleet = Fleet::start();
    let acme = fleet.acme.clone();
    let (key_a, jwt_a) = fleet.enroll(&acme, "host-a");
    let (key_b, jwt_b) = fleet.enroll(&acme, "host-b");
    let url = fleet.nats.url(0);
    let controller = fleet.controller().await;
    let mut heartbeats = controller.subscribe("fleet.hb.>").await.expect("sub");
    controller_round_trip(&controller).await;
    let mut a = Agent::connect(&url, &key_a, &jwt_a)
        .await
        .expect("A connects");
    let b = Agent::connect(&url, &key_b, &jwt_b)
        .await
        .expect("B connects");

    // Revoke A: a new tenant account JWT, pushed through the system account. No restart.
    let update = fleet
        .authority
        .revoke(
            &mut fleet.deny,
            &acme,
            &key_a.id(),
            "stolen laptop",
            unix_now(),
        )
        .expect("revoke");
    let system = fleet.system().await;
    let pushed = std::time::Instant::now();
    let reply = system
        .request(CLAIMS_UPDATE_SUBJECT, update.jwt.clone().into())
        .await
        .expect("the server answers the push");
    assert_eq!(
        claims_update_result(&reply.payload).expect("accepted"),
        update.account
    );

    // The server closes A's live connection, saying why.
    let said = a.expect_server_error("revoked").await;
    println!("A's connection after the push: server said {said:?}");
    let disconnected = tokio::time::timeout(WAIT, async {
        while let Some(event) = a.events.recv().await {
            if matches!(event, Event::Disconnected) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(disconnected, Ok(true), "A's connection was not closed");
    println!(
        "A disconnected {:?} after the push was sent",
        pushed.elapsed()
    );
    // Its reconnects are refused (async-nats keeps trying; the server says why).
    let after = tokio::time::timeout(WAIT, async {
        while let Some(event) = a.events.recv().await {
            match event {
                Event::Connected => return Some("reconnected".to_string()),
                Event::ServerError(e) => return Some(format!("refused: {e}")),
                Event::ClientError(e) => return Some(format!("refused: {e}")),
                _ => {}
            }
        }
        None
    })
    .await;
    println!("A's reconnect: {after:?}");
    assert!(
        matches!(&after, Ok(Some(s)) if s.starts_with("refused")),
        "A got back in: {after:?}"
    );
    let log = fleet.nats.log(0);
    for line in log.lines().filter(|l| {
        let l = l.to_lowercase();
        l.contains("revoked") || l.contains("authorization") || l.contains("authentication")
    }) {
        println!("server log: {line}");
    }
    // A fresh connection with the same credentials is refused outright.
    let again = Agent::connect(&url, &key_a, &jwt_a).await;
    println!("A connecting again: {:?}", again.as_ref().err());
    assert!(again.is_err(), "revoked A connected again");

    // B, same tenant, untouched: its connection stayed up and still works.
    b.client
        .publish(subjects::heartbeat(&acme, &key_b.id()), "B".into())
        .await
        .expect("publish");
    assert_eq!(next_payload(&mut heartbeats).await.1, "B");

    // The controller refuses A a new JWT: not by renewal, not by enrolling again.
    assert!(
        fleet
            .authority
            .agent_jwt(&acme, &key_a.id(), "host-a", &fleet.deny, unix_now())
            .is_err()
    );
    let token = fleet
        .authority
        .issue_enrollment_token(&acme, &[], ENROLLMENT_TOKEN_LIFETIME, unix_now())
        .expect("token");
    let refused = fleet.authority.begin_enrollment(
        &key_a.request(&token.token, &acme, "host-a"),
        &fleet.spent,
        &fleet.deny,
        unix_now(),
    );
    assert!(
        matches!(
            refused,
            Err(warden_fleet_identity::EnrollError::AgentRevoked(_))
        ),
        "{refused:?}"
    );

    // A controller restart: keys and deny list come back from what it persisted, and the
    // tenant account it signs still revokes A.
    let secrets =
        serde_json::to_string(&fleet.authority.secrets().expect("secrets")).expect("json");
    let deny_json = serde_json::to_string(&fleet.deny).expect("json");
    drop(system);
    drop(controller);
    let authority = FleetAuthority::from_secrets(&serde_json::from_str(&secrets).expect("parse"))
        .expect("keys");
    let deny: DenyList = serde_json::from_str(&deny_json).expect("parse");
    let resigned = authority
        .tenant_account_jwt(&acme, &deny, unix_now())
        .expect("account");
    let claims: warden_fleet_identity::jwt::Claims<warden_fleet_identity::jwt::Account> =
        warden_fleet_identity::jwt::decode(&resigned.jwt).expect("decode");
    assert!(claims.nats.revocations.contains_key(key_a.id().as_str()));

    // A server restart on its original config (preloaded before the revocation): the full
    // resolver kept the pushed JWT (a preload replaces a stored JWT only if issued later).
    let took = tokio::task::block_in_place(|| fleet.nats.restart(0)).expect("restart");
    println!("server restarted in {took:?}");
    let stored = std::fs::read_to_string(
        fleet
            .nats
            .dir()
            .join("n0/jwt")
            .join(format!("{}.jwt", update.account)),
    )
    .expect("the resolver stored the tenant's account JWT");
    let stored: warden_fleet_identity::jwt::Claims<warden_fleet_identity::jwt::Account> =
        warden_fleet_identity::jwt::decode(&stored).expect("decode");
    assert!(
        stored.nats.revocations.contains_key(key_a.id().as_str()),
        "the stored account JWT lost the revocation: {stored:?}"
    );
    Agent::connect(&url, &key_b, &jwt_b)
        .await
        .expect("B connects after the restart");
    // Measured on 2.12.8: a connection with A's revoked credentials made right after the
    // restart, while A's old client and B were reconnecting, was *accepted* in 3 of about 35
    // runs. Apparently a concurrent connect can use the tenant account while the server is
    // still building it (its import from the fleet account is resolved before the revocations
    // are set; nats-server `buildInternalAccount` / `tmpAccounts`), and a connection once in is
    // not re-checked until the next account update. So the controller re-pushes every account
    // JWT when it sees a server (re)start: the update closes any revoked connection.
    let slipped_in = a.client.connection_state() == async_nats::connection::State::Connected;
    println!(
        "A's old client connected during the account's first load after the restart: {slipped_in}"
    );
    let system = fleet.system().await;
    let repush = authority
        .tenant_account_jwt(&acme, &deny, unix_now())
        .expect("account");
    let reply = system
        .request(CLAIMS_UPDATE_SUBJECT, repush.jwt.into())
        .await
        .expect("the server answers the push");
    claims_update_result(&reply.payload).expect("accepted");
    let out = tokio::time::timeout(WAIT, async {
        while a.client.connection_state() == async_nats::connection::State::Connected {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(out.is_ok(), "A's connection survived the re-push");
    let back = Agent::connect(&url, &key_a, &jwt_a).await;
    assert!(
        back.is_err(),
        "A connected after the restart and the re-push; log:\n{}",
        fleet.nats.log(0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_added_at_runtime_works_without_a_restart_and_expired_jwts_are_refused() {
    let mut fleet = Fleet::start();
    let initech = TenantId::new("initech").expect("tenant");
    fleet.authority.add_tenant(&initech).expect("add");
    // Unknown to the running server until its account JWT is pushed.
    let (key, jwt) = fleet.enroll(&initech, "initech-host");
    let url = fleet.nats.url(0);
    assert!(
        Agent::connect(&url, &key, &jwt).await.is_err(),
        "an agent of an account the server never saw connected"
    );
    let account = fleet
        .authority
        .tenant_account_jwt(&initech, &fleet.deny, unix_now())
        .expect("account");
    let system = fleet.system().await;
    let reply = system
        .request(CLAIMS_UPDATE_SUBJECT, account.jwt.into())
        .await
        .expect("answer");
    assert_eq!(
        claims_update_result(&reply.payload).expect("accepted"),
        account.account
    );
    let agent = Agent::connect(&url, &key, &jwt)
        .await
        .expect("the new tenant's agent connects");
    let controller = fleet.controller().await;
    let mut heartbeats = controller.subscribe("fleet.hb.>").await.expect("sub");
    controller_round_trip(&controller).await;
    let mut commands = agent
        .client
        .subscribe(subjects::command(&initech, &key.id()))
        .await
        .expect("sub");
    // Its heartbeat reaching the controller also shows the new tenant's service imports work.
    sync_agents(
        &mut heartbeats,
        &[(&agent, subjects::heartbeat(&initech, &key.id()))],
    )
    .await;
    controller
        .publish(subjects::command(&initech, &key.id()), "hello".into())
        .await
        .expect("publish");
    let got = tokio::time::timeout(WAIT, commands.next()).await;
    assert!(
        matches!(&got, Ok(Some(m)) if m.payload.as_ref() == b"hello"),
        "{got:?}; log:\n{}",
        fleet.nats.log(0)
    );

    // A JWT past its expiry is refused by the server itself.
    let acme = fleet.acme.clone();
    let old_key = AgentKey::generate();
    let expired = fleet
        .authority
        .agent_jwt(
            &acme,
            &old_key.id(),
            "old",
            &fleet.deny,
            unix_now() - warden_fleet_identity::AGENT_JWT_LIFETIME - 60,
        )
        .expect("mint");
    let refused = Agent::connect(&url, &old_key, &expired).await;
    println!("expired JWT: {:?}", refused.as_ref().err());
    assert!(refused.is_err(), "an expired JWT connected");

    // A push of an account JWT signed by an operator the server does not trust: on 2.12.8 the
    // full resolver answers "jwt updated" and stores it, but never applies it (the account's
    // issuer is checked when it is used): that account's users cannot connect.
    let mut stranger = FleetAuthority::generate();
    stranger.add_tenant(&acme).expect("add");
    let forged = stranger
        .tenant_account_jwt(&acme, &DenyList::new(), unix_now())
        .expect("account");
    let reply = system
        .request(CLAIMS_UPDATE_SUBJECT, forged.jwt.into())
        .await
        .expect("answer");
    println!(
        "foreign account JWT pushed: {:?}",
        claims_update_result(&reply.payload)
    );
    let intruder = AgentKey::generate();
    let intruder_jwt = stranger
        .agent_jwt(
            &acme,
            &intruder.id(),
            "intruder",
            &DenyList::new(),
            unix_now(),
        )
        .expect("mint");
    assert!(
        Agent::connect(&url, &intruder, &intruder_jwt)
            .await
            .is_err(),
        "a user of a foreign operator's account connected"
    );
}
