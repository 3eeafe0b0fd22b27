//! The outbox's publisher: oldest entry first, one at a time, only while connected. A result
//! is a JetStream publish with `Nats-Msg-Id`, removed on its PubAck (a duplicate ack counts:
//! the stream has it); an event is a core NATS publish with the same header, removed once the
//! connection flushed it to the server. A failure is retried with a growing, jittered pause
//! ([`warden_core::retry`]: agents held by the same leader election do not retry in lockstep);
//! nothing is skipped, so order holds.

use super::core::LinkCore;
use super::outbox::{OutboxKind, Outgoing};
use async_nats::jetstream;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use warden_core::retry::Retry;
use warden_fleet_wire::MSG_ID_HEADER;

/// The nominal pause after a first failed publish (the pause itself is drawn from its upper
/// half, 100-200 ms); it doubles with each failure in a row up to [`RETRY_MAX`]. Short,
/// because the usual failure is a server that just restarted or a stream leader election
/// (seconds).
pub const RETRY_MIN: Duration = Duration::from_millis(200);
/// Longest pause: the client reconnects on its own; this only paces retries of a stream that
/// answers with an error (missing, full) so the agent does not spin on it.
pub const RETRY_MAX: Duration = Duration::from_secs(5);
/// How long the PubAck of one result may take: a stream leader election on an R3 stream took
/// 5 to 7 s here (docs/FLEET.md), and a retry after the timeout costs nothing (same msg id).
pub const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// At stop, how long the publisher keeps sending what is queued; the rest waits in the
/// outbox for the next start.
pub const DRAIN_AT_STOP: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
enum PublishError {
    #[error("publish: {0}")]
    Send(String),
    #[error("no PubAck: {0}")]
    Ack(String),
}

async fn publish(
    client: &async_nats::Client,
    js: &jetstream::Context,
    item: &Outgoing,
) -> Result<(), PublishError> {
    match item.kind {
        OutboxKind::Result => {
            let message = jetstream::message::PublishMessage::build()
                .payload(item.payload.clone().into())
                .message_id(&item.msg_id);
            let ack = js
                .send_publish(item.subject.clone(), message)
                .await
                .map_err(|e| PublishError::Send(e.to_string()))?;
            ack.await.map_err(|e| PublishError::Ack(e.to_string()))?;
            Ok(())
        }
        OutboxKind::Event => {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(MSG_ID_HEADER, item.msg_id.as_str());
            client
                .publish_with_headers(item.subject.clone(), headers, item.payload.clone().into())
                .await
                .map_err(|e| PublishError::Send(e.to_string()))?;
            client
                .flush()
                .await
                .map_err(|e| PublishError::Send(e.to_string()))
        }
    }
}

/// Publish the outbox until `stop` (then for at most [`DRAIN_AT_STOP`] more while entries
/// remain and the connection is up).
pub(crate) async fn run(
    core: Arc<LinkCore>,
    client: async_nats::Client,
    mut connected: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let js = jetstream::ContextBuilder::new()
        .timeout(ACK_TIMEOUT)
        .build(client.clone());
    let retry = Retry::jittered_from_os(RETRY_MIN, RETRY_MAX);
    // Failures in a row: the publisher's whole retry state.
    let mut failures = 0u32;
    let mut deadline: Option<tokio::time::Instant> = None;
    // The next entry, read with the removal of the one before it.
    let mut carried: Option<super::outbox::Queued> = None;
    loop {
        if deadline.is_none() && *stop.borrow() {
            deadline = Some(tokio::time::Instant::now() + DRAIN_AT_STOP);
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            return;
        }
        if !*connected.borrow() {
            if deadline.is_some() {
                return;
            }
            tokio::select! {
                _ = connected.wait_for(|c| *c) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
            continue;
        }
        let next = match carried.take() {
            Some(queued) => Ok(Some(queued)),
            None => core.blocking(|core| core.store.oldest()).await,
        };
        let queued = match next {
            Ok(Some(queued)) => queued,
            Ok(None) => {
                if deadline.is_some() {
                    return;
                }
                tokio::select! {
                    _ = core.wake.notified() => {}
                    _ = stop.wait_for(|s| *s) => {}
                }
                continue;
            }
            Err(e) => {
                tracing::error!("fleet outbox unreadable: {e}");
                failures = failures.saturating_add(1);
                sleep_or_stop(retry.pause(failures), &mut stop, deadline).await;
                continue;
            }
        };
        match publish(&client, &js, &queued.item).await {
            Ok(()) => {
                failures = 0;
                let id = queued.id;
                match core
                    .blocking(move |core| core.store.remove_then_oldest(id))
                    .await
                {
                    Ok(next) => carried = next,
                    // Published again at the next pass: deduplicated by its msg id.
                    Err(e) => tracing::error!(
                        "fleet outbox: {} sent but not removed: {e}",
                        queued.item.msg_id
                    ),
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let pause = retry.pause(failures);
                tracing::debug!(
                    "fleet: {} not published yet ({e}); retry in {pause:?}",
                    queued.item.msg_id
                );
                sleep_or_stop(pause, &mut stop, deadline).await;
            }
        }
    }
}

/// Pace a retry; a stop cuts the pause short (the loop then drains or ends).
async fn sleep_or_stop(
    pause: Duration,
    stop: &mut watch::Receiver<bool>,
    deadline: Option<tokio::time::Instant>,
) {
    if deadline.is_some() {
        tokio::time::sleep(pause).await;
        return;
    }
    tokio::select! {
        _ = tokio::time::sleep(pause) => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}
