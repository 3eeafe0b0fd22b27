//! Long-lived answers are bounded. Each server stream (`Runbooks.Watch`, `Agent.WatchEvents`,
//! `Health.Watch`) holds a task, a buffer and a connection's share of the agent for as long as
//! the client keeps it open; without a bound, one token (or a leaked one) could open them until
//! the agent ran out of memory or file descriptors. A stream takes a slot from [`StreamSlots`]
//! when it opens, per token ([`crate::daemon::config::ApiConfig::max_streams_per_token`]) and in
//! all ([`crate::daemon::config::ApiConfig::max_streams`]); beyond either it is refused with
//! `RESOURCE_EXHAUSTED`. The slot is given back when the stream ends (before its last frame
//! leaves, so a client that saw the end can open another at once) or when the client goes away.
//!
//! A client that vanishes without closing (a crashed console, a cut network) is found by HTTP/2
//! keepalive: the agent pings every [`KEEPALIVE_INTERVAL`] and closes a connection whose ping is
//! not answered within [`KEEPALIVE_TIMEOUT`], ending its streams and freeing their slots.

use bytes::Bytes;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

/// The methods that answer with a stream. The API tests check this list against every
/// server-streaming method the agent registers.
pub const STREAMING_METHODS: &[&str] = &[
    "/warden.v1.Runbooks/Watch",
    "/warden.v1.Agent/WatchEvents",
    "/grpc.health.v1.Health/Watch",
];

/// How often the agent pings each connection. Idle TCP mappings in NATs and firewalls last
/// minutes; a ping every 30 s keeps a quiet but live stream open through them.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long a ping may go unanswered before the connection is closed as dead: a live client's
/// HTTP/2 stack answers in milliseconds, even when its application is busy. A dead client's
/// streams end at most 50 s after it went away.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a stream was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamRefused {
    #[error(
        "`{caller}` already has {limit} open stream(s), the most one token may (api.max-streams-per-token): close one first"
    )]
    PerToken { caller: String, limit: usize },
    #[error("the agent already serves {limit} open streams (api.max-streams): try again later")]
    Total { limit: usize },
}

#[derive(Debug, Default)]
struct Open {
    by_caller: HashMap<String, usize>,
    total: usize,
}

/// The open streams, counted per caller and in all.
#[derive(Debug)]
pub struct StreamSlots {
    per_token: usize,
    total: usize,
    open: Mutex<Open>,
}

impl StreamSlots {
    pub fn new(per_token: usize, total: usize) -> Arc<StreamSlots> {
        Arc::new(StreamSlots {
            per_token,
            total,
            open: Mutex::new(Open::default()),
        })
    }

    /// A slot for one more stream of `caller`, or why not.
    pub fn acquire(self: &Arc<Self>, caller: &str) -> Result<StreamSlot, StreamRefused> {
        // A poisoned count is still a count: the lock guards plain integers.
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let mine = open.by_caller.get(caller).copied().unwrap_or(0);
        if mine >= self.per_token {
            return Err(StreamRefused::PerToken {
                caller: caller.to_string(),
                limit: self.per_token,
            });
        }
        if open.total >= self.total {
            return Err(StreamRefused::Total { limit: self.total });
        }
        open.by_caller.insert(caller.to_string(), mine + 1);
        open.total += 1;
        Ok(StreamSlot {
            slots: self.clone(),
            caller: caller.to_string(),
        })
    }

    /// Streams open now, in all.
    pub fn open(&self) -> usize {
        self.open
            .lock()
            .map(|o| o.total)
            .unwrap_or_else(|p| p.into_inner().total)
    }

    fn release(&self, caller: &str) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_caller.get_mut(caller) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.by_caller.remove(caller);
            }
        }
    }
}

/// One open stream's slot; dropping it gives the slot back.
#[derive(Debug)]
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    caller: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.slots.release(&self.caller);
    }
}

/// A stream's response body holding its slot: given back with the last frame (the trailers),
/// at an error, or when the body is dropped because the client went away.
pub struct SlotBody {
    inner: tonic::body::Body,
    slot: Option<StreamSlot>,
}

impl SlotBody {
    pub fn wrap(inner: tonic::body::Body, slot: StreamSlot) -> tonic::body::Body {
        tonic::body::Body::new(SlotBody {
            inner,
            slot: Some(slot),
        })
    }
}

impl http_body::Body for SlotBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let last = match &polled {
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => true,
            Poll::Ready(Some(Ok(frame))) => frame.is_trailers(),
            Poll::Pending => false,
        };
        if last {
            this.slot = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn slots_are_counted_per_token_and_in_all_and_come_back() {
        let slots = StreamSlots::new(2, 3);
        let a1 = slots.acquire("a").expect("a1");
        let _a2 = slots.acquire("a").expect("a2");
        assert_eq!(
            slots.acquire("a").expect_err("a3"),
            StreamRefused::PerToken {
                caller: "a".into(),
                limit: 2
            }
        );
        let _b1 = slots.acquire("b").expect("b1");
        assert_eq!(
            slots.acquire("c").expect_err("c1"),
            StreamRefused::Total { limit: 3 }
        );
        drop(a1);
        assert_eq!(slots.open(), 2);
        let _c1 = slots.acquire("c").expect("a freed slot is taken");
    }

    /// Every server-streaming method of the services the agent registers is counted.
    #[test]
    fn every_streaming_method_takes_a_slot() {
        let mut streaming = Vec::new();
        for bytes in [
            crate::grpc::DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ] {
            let set = prost_types::FileDescriptorSet::decode(bytes).expect("descriptor set");
            for file in set.file {
                for service in &file.service {
                    for method in service.method.iter().filter(|m| m.server_streaming()) {
                        streaming.push(format!(
                            "/{}.{}/{}",
                            file.package(),
                            service.name(),
                            method.name()
                        ));
                    }
                }
            }
        }
        streaming.sort();
        let mut listed: Vec<String> = STREAMING_METHODS.iter().map(|m| m.to_string()).collect();
        listed.sort();
        assert_eq!(streaming, listed);
    }
}
