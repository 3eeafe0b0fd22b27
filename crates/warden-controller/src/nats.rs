//! The controller's NATS side: its two connections, the shared results stream and its one
//! durable consumer.
//!
//! - **Connections.** One in the `fleet` account (commands out, heartbeats, events and
//!   results in) and one in the system account (account JWT pushes). Each signs the server's
//!   nonce with credentials minted afresh at every (re)connect from the controller's own keys
//!   ([`warden_fleet_identity::FleetAuthority::controller_credentials`]), so a controller
//!   running for months never holds an expired JWT.
//! - **Account pushes.** On every (re)connect of the system connection the controller pushes
//!   every account JWT (`$SYS.REQ.CLAIMS.UPDATE`): a restarted server gets the current tenant
//!   accounts and revocations (see docs/FLEET.md: a revoked agent was seen to get in right after
//!   a server restart, before the account's revocations were loaded, and is closed by the push).
//! - **Results stream** [`RESULTS_STREAM`]: file storage, work-queue retention (a result leaves
//!   the stream once the controller has stored it and acknowledged it), R1 on one server and R3
//!   on a cluster, deduplicating on `Nats-Msg-Id` for [`RESULTS_DUPLICATE_WINDOW`].
//! - **Desired state** (issue 16): the KV bucket `desired` (stream `KV_desired`, one message
//!   per key, Direct-Get on, RePublish of `$KV.desired.>` to `fleet.desired.>`) and the blob
//!   stream `FLEET_BLOBS` (`fleet.blob.>`, one message per chunk subject, Direct-Get on); R1 on
//!   one server, R3 on a cluster, as the results stream. Agents read both by Direct-Get: no
//!   consumer or watcher per agent.
//! - **One durable pull consumer** [`RESULTS_CONSUMER`] for the whole fleet, never one per
//!   agent: several controller processes pulling from it share the work.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use async_nats::{Auth, AuthError, Client, ConnectOptions, Event};
use tokio::sync::mpsc;
use warden_fleet_identity::{Credentials, FleetAuthority, unix_now};

pub const RESULTS_STREAM: &str = "FLEET_RESULTS";
pub const RESULTS_CONSUMER: &str = "controller";
/// How long the stream remembers a `Nats-Msg-Id`: 10 minutes. It must cover an agent's retries
/// of one publish (a PubAck lost in a leader election, measured at about 10 s on R3), and an
/// outbox replayed after a short disconnect. Longer gaps (days offline) are deduplicated by the
/// store's unique key, so the window only saves the store work; each id costs the server memory
/// for the window, about 100 bytes, so 10,000 agents x a few runs stays a few MB.
pub const RESULTS_DUPLICATE_WINDOW: Duration = Duration::from_secs(10 * 60);
/// How long a stored result may wait in the stream for a controller: 7 days (a controller down
/// over a long weekend loses nothing; the agents' outboxes hold what never reached the stream).
pub const RESULTS_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long the consumer waits for an ack before redelivering: 30 s (a store commit takes
/// milliseconds; this covers a controller stalled on a slow disk).
pub const RESULTS_ACK_WAIT: Duration = Duration::from_secs(30);
/// Results delivered and not yet acknowledged, at most: 10,000 (one run to a 10k fleet).
pub const RESULTS_MAX_ACK_PENDING: i64 = 10_000;
/// Queue group of the controllers' heartbeat and event subscriptions: with several controller
/// processes, each heartbeat is handled by one of them.
pub const CONTROLLERS_QUEUE: &str = "warden-controllers";
/// A request on NATS (account push, stream management) waits at most this long.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Which of the controller's users a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Fleet,
    System,
}

fn sign_with(creds: &Credentials, nonce: &[u8]) -> Result<Auth, AuthError> {
    let key = nkeys::KeyPair::from_seed(creds.seed.expose())
        .map_err(|e| AuthError::new(format!("controller seed: {e}")))?;
    let signature = key
        .sign(nonce)
        .map_err(|e| AuthError::new(format!("signing the nonce: {e}")))?;
    let mut auth = Auth::new();
    auth.jwt = Some(creds.jwt.clone());
    auth.signature = Some(signature);
    Ok(auth)
}

/// Connect as `role`, minting new credentials at each connect. `connected` gets a message at
/// every (re)connect.
pub async fn connect(
    url: &str,
    authority: Arc<Mutex<FleetAuthority>>,
    role: Role,
    connected: Option<mpsc::UnboundedSender<()>>,
) -> Result<Client, async_nats::ConnectError> {
    let name = match role {
        Role::Fleet => "warden-controller",
        Role::System => "warden-controller-system",
    };
    let options = ConnectOptions::with_auth_callback(move |nonce: Vec<u8>| {
        let authority = authority.clone();
        async move {
            let creds = {
                let authority = authority
                    .lock()
                    .map_err(|_| AuthError::new("the controller's keys are poisoned"))?;
                match role {
                    Role::Fleet => authority.controller_credentials(unix_now()),
                    Role::System => authority.system_credentials(unix_now()),
                }
                .map_err(|e| AuthError::new(e.to_string()))?
            };
            sign_with(&creds, &nonce)
        }
    })
    .name(name)
    .request_timeout(Some(REQUEST_TIMEOUT))
    .event_callback(move |event| {
        let connected = connected.clone();
        async move {
            match &event {
                Event::Connected => {
                    if let Some(tx) = &connected {
                        let _ = tx.send(());
                    }
                }
                other => tracing::info!("nats ({name}): {other}"),
            }
        }
    });
    let client = options.connect(url).await?;
    Ok(client)
}

/// Largest blob stream message: a chunk and room for headers.
const BLOB_MAX_MESSAGE: usize = warden_fleet_wire::desired::BLOB_CHUNK_BYTES + 4096;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("creating the results stream {RESULTS_STREAM}: {0}")]
    Stream(String),
    #[error("creating the results consumer {RESULTS_CONSUMER}: {0}")]
    Consumer(String),
    #[error("creating the desired-state stream {0}: {1}")]
    Desired(String, String),
}

/// How long the controller's start waits out a JetStream that is not ready yet: 30 s. A
/// cluster forming (or restarted together with the controller) answers `503` until its meta
/// leader is elected and the account's JWT has reached it: a few seconds here (docs/FLEET.md,
/// "Test servers"); longer is a server that is misconfigured, reported then.
pub const SETUP_PATIENCE: Duration = Duration::from_secs(30);
/// First pause between attempts, doubled up to [`SETUP_PAUSE_MAX`].
const SETUP_PAUSE_MIN: Duration = Duration::from_millis(250);
const SETUP_PAUSE_MAX: Duration = Duration::from_secs(2);

/// Whether a JetStream API answer says "not ready yet" rather than "no".
fn not_ready(e: &jetstream::Error) -> bool {
    e.code() == 503
}

fn stream_not_ready(e: &jetstream::context::CreateStreamError) -> bool {
    use jetstream::context::CreateStreamErrorKind as K;
    match e.kind() {
        K::JetStreamUnavailable | K::TimedOut => true,
        K::JetStream(e) => not_ready(&e),
        _ => false,
    }
}

fn consumer_not_ready(e: &jetstream::stream::ConsumerError) -> bool {
    use jetstream::stream::ConsumerErrorKind as K;
    match e.kind() {
        K::TimedOut => true,
        K::JetStream(e) => not_ready(&e),
        _ => false,
    }
}

/// Run a setup `step` again while it fails with an error `transient` calls "not ready yet",
/// for at most [`SETUP_PATIENCE`]; any other error, or the last, is returned at once.
async fn patiently<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
    what: &str,
    transient: fn(&E) -> bool,
    mut step: impl FnMut() -> F,
) -> Result<T, E> {
    let until = tokio::time::Instant::now() + SETUP_PATIENCE;
    let mut pause = SETUP_PAUSE_MIN;
    loop {
        match step().await {
            Err(e) if transient(&e) && tokio::time::Instant::now() + pause < until => {
                tracing::info!("{what}: JetStream not ready yet ({e}); again in {pause:?}");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(SETUP_PAUSE_MAX);
            }
            other => return other,
        }
    }
}

/// The desired-state bucket and the blob stream, created if absent.
pub async fn distribution_streams(client: &Client, replicas: usize) -> Result<(), SetupError> {
    use warden_fleet_identity::subjects;
    let js = jetstream::new(client.clone());
    let bucket = subjects::DESIRED_BUCKET;
    let kv = format!("KV_{bucket}");
    patiently(&kv, stream_not_ready, || {
        js.get_or_create_stream(stream::Config {
            name: kv.clone(),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            allow_direct: true,
            allow_rollup: true,
            deny_delete: true,
            storage: stream::StorageType::File,
            num_replicas: replicas,
            max_message_size: i32::try_from(warden_fleet_wire::desired::MAX_DESIRED_BYTES)
                .unwrap_or(i32::MAX),
            republish: Some(stream::Republish {
                source: format!("$KV.{bucket}.>"),
                destination: format!("{}.>", subjects::DESIRED),
                headers_only: false,
            }),
            ..Default::default()
        })
    })
    .await
    .map_err(|e| SetupError::Desired(kv.clone(), e.to_string()))?;
    patiently(subjects::BLOBS_STREAM, stream_not_ready, || {
        js.get_or_create_stream(stream::Config {
            name: subjects::BLOBS_STREAM.to_string(),
            subjects: vec![subjects::blob_stream_subjects()],
            max_messages_per_subject: 1,
            allow_direct: true,
            storage: stream::StorageType::File,
            num_replicas: replicas,
            max_message_size: i32::try_from(BLOB_MAX_MESSAGE).unwrap_or(i32::MAX),
            ..Default::default()
        })
    })
    .await
    .map_err(|e| SetupError::Desired(subjects::BLOBS_STREAM.to_string(), e.to_string()))?;
    Ok(())
}

/// The results stream and its consumer, created if absent.
pub async fn results_consumer(
    client: &Client,
    replicas: usize,
) -> Result<consumer::PullConsumer, SetupError> {
    let js = jetstream::new(client.clone());
    let stream = patiently(RESULTS_STREAM, stream_not_ready, || {
        js.get_or_create_stream(stream::Config {
            name: RESULTS_STREAM.to_string(),
            subjects: vec![warden_fleet_identity::subjects::RESULTS_STREAM_SUBJECTS.to_string()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            num_replicas: replicas,
            duplicate_window: RESULTS_DUPLICATE_WINDOW,
            max_age: RESULTS_MAX_AGE,
            max_message_size: i32::try_from(warden_fleet_wire::result::MAX_RESULT_BYTES)
                .unwrap_or(i32::MAX),
            ..Default::default()
        })
    })
    .await
    .map_err(|e| SetupError::Stream(e.to_string()))?;
    patiently(RESULTS_CONSUMER, consumer_not_ready, || {
        stream.get_or_create_consumer(
            RESULTS_CONSUMER,
            consumer::pull::Config {
                durable_name: Some(RESULTS_CONSUMER.to_string()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: RESULTS_ACK_WAIT,
                max_ack_pending: RESULTS_MAX_ACK_PENDING,
                ..Default::default()
            },
        )
    })
    .await
    .map_err(|e| SetupError::Consumer(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug, PartialEq)]
    enum Answer {
        NotReady,
        No,
    }

    impl std::fmt::Display for Answer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{self:?}")
        }
    }

    fn transient(a: &Answer) -> bool {
        *a == Answer::NotReady
    }

    #[tokio::test]
    async fn setup_waits_out_a_jetstream_not_ready_and_stops_at_a_real_refusal() {
        let calls = AtomicU32::new(0);
        let ready = patiently("test", transient, || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(Answer::NotReady),
                _ => Ok("stream"),
            }
        })
        .await;
        assert_eq!(ready, Ok("stream"));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            3,
            "two retries, then the answer"
        );

        let calls = AtomicU32::new(0);
        let refused: Result<(), Answer> = patiently("test", transient, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(Answer::No)
        })
        .await;
        assert_eq!(refused, Err(Answer::No));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "a refusal is not retried");
    }
}
