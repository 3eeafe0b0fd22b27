//! Who may call the agent's API: bearer tokens, stored as sha256 hashes in the agent config, each
//! with a role (viewer < operator < admin). A tower layer in front of every service checks the
//! token and the method's role before a handler runs, and audits each call; a method missing
//! from [`METHOD_ROLES`] is denied to everyone.

use super::streams::{STREAMING_METHODS, SlotBody, StreamRefused, StreamSlots};
use crate::PluginManager;
use crate::daemon::config::TokenConfig;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use tonic::Status;
pub use warden_access::{Caller, Role, new_token, token_hash};
use warden_access::{TokenEntry, Tokens};

/// The role each gRPC method needs, by its path. The API tests check this covers every method
/// the server registers.
pub const METHOD_ROLES: &[(&str, Role)] = &[
    ("/warden.v1.Runbooks/Trigger", Role::Operator),
    ("/warden.v1.Runbooks/Watch", Role::Viewer),
    ("/warden.v1.Runbooks/GetRun", Role::Viewer),
    ("/warden.v1.Runbooks/ListRuns", Role::Viewer),
    ("/warden.v1.Runbooks/Cancel", Role::Operator),
    ("/warden.v1.Plugins/List", Role::Viewer),
    ("/warden.v1.Plugins/Inspect", Role::Viewer),
    ("/warden.v1.Plugins/Install", Role::Admin),
    ("/warden.v1.Plugins/Remove", Role::Admin),
    ("/warden.v1.Inventory/Latest", Role::Viewer),
    ("/warden.v1.Agent/Version", Role::Viewer),
    ("/warden.v1.Agent/WatchEvents", Role::Viewer),
    ("/warden.v1.Agent/Report", Role::Viewer),
    // Viewer: a head is a sequence number and a hash, and says nothing of what the log holds;
    // the collectors that save it off the machine should need no power over the agent.
    ("/warden.v1.Agent/AuditHead", Role::Viewer),
    ("/grpc.health.v1.Health/Check", Role::Viewer),
    ("/grpc.health.v1.Health/Watch", Role::Viewer),
];

/// Checks tokens and roles; audits every decision.
pub struct Authenticator {
    /// Replaced whole when the agent reloads its config (SIGHUP).
    tokens: RwLock<Tokens>,
    /// Its audit log records every decision.
    runner: Arc<PluginManager>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("tokens", &self.tokens.read().map(|t| t.len()).unwrap_or(0))
            .finish()
    }
}

impl Authenticator {
    /// `tokens` are validated at config load (64 hex digits each).
    pub fn new(tokens: &[TokenConfig], runner: Arc<PluginManager>) -> Authenticator {
        Authenticator {
            tokens: RwLock::new(Authenticator::hashed(tokens)),
            runner,
        }
    }

    /// Accept exactly `tokens` from now on (a reloaded config's); calls already authorized
    /// and open streams go on.
    pub fn replace_tokens(&self, tokens: &[TokenConfig]) {
        let hashed = Authenticator::hashed(tokens);
        match self.tokens.write() {
            Ok(mut current) => *current = hashed,
            Err(poisoned) => *poisoned.into_inner() = hashed,
        }
    }

    /// The config load has refused bad entries already; if one got here, no call is served
    /// rather than some.
    fn hashed(tokens: &[TokenConfig]) -> Tokens {
        let entries: Vec<TokenEntry> = tokens.iter().map(TokenConfig::entry).collect();
        Tokens::new(&entries).unwrap_or_else(|e| {
            tracing::error!("the API tokens are refused ({e}): no call is served");
            Tokens::none()
        })
    }

    fn identify(&self, headers: &http::HeaderMap) -> Option<Caller> {
        let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
        self.tokens.read().ok()?.identify(Some(value))
    }

    /// Decide on one call and audit the decision; `Err` is the status to answer with.
    pub fn authorize(&self, method: &str, headers: &http::HeaderMap) -> Result<Caller, Status> {
        let needed = METHOD_ROLES
            .iter()
            .find(|(m, _)| *m == method)
            .map(|(_, r)| *r);
        let caller = self.identify(headers);
        let (decision, result) = match (&caller, needed) {
            (None, _) => (
                "unauthenticated",
                Err(Status::unauthenticated(
                    "a valid bearer token is required (authorization: Bearer <token>)",
                )),
            ),
            (Some(c), Some(role)) if c.role >= role => ("allowed", Ok(c.clone())),
            (Some(c), Some(role)) => (
                "denied",
                Err(Status::permission_denied(format!(
                    "{method} needs the {} role; `{}` has {}",
                    role.name(),
                    c.name,
                    c.role.name()
                ))),
            ),
            (Some(_), None) => (
                "denied",
                Err(Status::permission_denied(format!(
                    "{method} is not open to any role"
                ))),
            ),
        };
        let record = serde_json::json!({
            "method": method,
            "caller": caller.as_ref().map(|c| c.name.as_str()),
            "role": caller.as_ref().map(|c| c.role),
            "decision": decision,
        });
        // Allowed reads are group-committed like read-only runs; anything that changes the
        // machine, and every refusal, is on disk before the call goes on.
        let audit = self.runner.audit();
        let written = if decision == "allowed" && needed == Some(Role::Viewer) {
            warden_audit::Pending::new("api.call", &record)
                .map_err(warden_audit::AuditError::from)
                .and_then(|p| audit.append_lazy(vec![p]))
        } else {
            audit.append("api.call", record).map(drop)
        };
        if let Err(e) = written {
            tracing::error!("cannot audit an API call: {e}");
            return Err(Status::unavailable(
                "the agent cannot write its audit log; no call is served until it can",
            ));
        }
        result
    }
}

impl Authenticator {
    /// Audit a stream refused for want of a slot (group-committed: nothing changed).
    fn record_refused_stream(&self, method: &str, caller: &Caller, refused: &StreamRefused) {
        let record = serde_json::json!({
            "method": method,
            "caller": caller.name,
            "role": caller.role,
            "decision": "too-many-streams",
            "reason": refused.to_string(),
        });
        let written = warden_audit::Pending::new("api.call", &record)
            .map_err(warden_audit::AuditError::from)
            .and_then(|p| self.runner.audit().append_lazy(vec![p]));
        if let Err(e) = written {
            tracing::error!("cannot audit a refused stream: {e}");
        }
    }
}

/// How tonic starts the message of a request larger than the service's decoding limit.
const TONIC_REQUEST_TOO_LARGE: &str = "Error, decoded message length too large";

/// tonic answers a request over the decoding limit (`max-message-bytes`) `OUT_OF_RANGE`; gRPC's
/// own implementations, and docs/API.md, answer `RESOURCE_EXHAUSTED` for a message larger than the
/// receiver accepts. The refusal comes before any handler, as headers only: it is rewritten here.
fn oversized_is_exhausted(
    response: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    match Status::from_header_map(response.headers()) {
        Some(s)
            if s.code() == tonic::Code::OutOfRange
                && s.message().starts_with(TONIC_REQUEST_TOO_LARGE) =>
        {
            Status::resource_exhausted(format!(
                "the request is larger than this agent accepts (max-message-bytes): {}",
                s.message()
            ))
            .into_http()
        }
        _ => response,
    }
}

/// The tower layer that puts an [`Authenticator`] in front of every service, and takes a
/// [`StreamSlots`] slot for every stream it lets through.
#[derive(Debug, Clone)]
pub struct AuthLayer(pub Arc<Authenticator>, pub Arc<StreamSlots>);

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            auth: self.0.clone(),
            streams: self.1.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Arc<Authenticator>,
    streams: Arc<StreamSlots>,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        // The ready clone serves this call; a fresh clone waits for the next poll_ready.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        let streams = self.streams.clone();
        Box::pin(async move {
            let method = req.uri().path().to_string();
            let headers = req.headers().clone();
            let streaming = STREAMING_METHODS.contains(&method.as_str());
            // The audit append is a blocking write (fsync'd): keep it off the async workers.
            let decision = tokio::task::spawn_blocking({
                let auth = auth.clone();
                let method = method.clone();
                move || auth.authorize(&method, &headers)
            })
            .await;
            match decision {
                Ok(Ok(caller)) if streaming => {
                    let slot = match streams.acquire(&caller.name) {
                        Ok(slot) => slot,
                        Err(refused) => {
                            let status = Status::resource_exhausted(refused.to_string());
                            tokio::task::spawn_blocking(move || {
                                auth.record_refused_stream(&method, &caller, &refused)
                            });
                            return Ok(status.into_http());
                        }
                    };
                    req.extensions_mut().insert(caller);
                    let response = oversized_is_exhausted(inner.call(req).await?);
                    Ok(response.map(|body| SlotBody::wrap(body, slot)))
                }
                Ok(Ok(caller)) => {
                    req.extensions_mut().insert(caller);
                    inner.call(req).await.map(oversized_is_exhausted)
                }
                Ok(Err(status)) => Ok(status.into_http()),
                Err(_) => Ok(Status::internal("authorization task failed").into_http()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(dir: &std::path::Path) -> Authenticator {
        let runner = Arc::new(
            PluginManager::new(dir, warden_core::SitePolicy::embedded_default()).expect("runner"),
        );
        let tokens = [("v", Role::Viewer, "tok-v"), ("o", Role::Operator, "tok-o")].map(
            |(name, role, token)| TokenConfig {
                name: name.into(),
                role,
                sha256: token_hash(token),
            },
        );
        Authenticator::new(&tokens, runner)
    }

    fn bearer(token: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {token}").parse().expect("header"),
        );
        h
    }

    #[test]
    fn roles_order_and_unknown_methods_are_denied() {
        let tmp = tempfile::tempdir().expect("tmp");
        let a = auth(tmp.path());
        let trigger = "/warden.v1.Runbooks/Trigger";
        assert_eq!(
            a.authorize(trigger, &http::HeaderMap::new())
                .expect_err("no token")
                .code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            a.authorize(trigger, &bearer("wrong"))
                .expect_err("bad token")
                .code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            a.authorize(trigger, &bearer("tok-v"))
                .expect_err("viewer")
                .code(),
            tonic::Code::PermissionDenied
        );
        assert_eq!(
            a.authorize(trigger, &bearer("tok-o"))
                .expect("operator")
                .name,
            "o"
        );
        assert_eq!(
            a.authorize("/warden.v1.Runbooks/Nope", &bearer("tok-o"))
                .expect_err("unlisted")
                .code(),
            tonic::Code::PermissionDenied
        );
        let log = std::fs::read_to_string(tmp.path().join("audit/audit.log")).expect("log");
        assert_eq!(log.matches("\"api.call\"").count(), 5, "{log}");
    }
}
