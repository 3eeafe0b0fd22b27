//! Who may call the controller's API. A tower layer in front of every service checks the
//! caller before a handler runs and audits each decision:
//! - `warden.fleet.v1.Fleet`: a bearer token ([`warden_access::Tokens`]) whose role is at least
//!   the method's ([`METHOD_ACCESS`]); the token's tenant scope goes to the handler, which the
//!   controller core checks on every object it touches;
//! - `warden.fleet.v1.Enrollment`: no bearer token; the enrollment token in the request is the
//!   credential, checked by the handler (an empty one is refused there as unauthenticated).
//!
//! A method missing from [`METHOD_ACCESS`] is denied to everyone.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::Status;
use warden_access::{Caller, Role, Tokens};
use warden_audit::AuditLog;

/// How a method is authorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Bearer(Role),
    /// The enrollment token in the request body.
    EnrollmentToken,
}

/// Every method of the controller's API and what it needs. The API tests check this covers
/// every method in `warden_proto::FLEET_DESCRIPTOR_SET`.
pub const METHOD_ACCESS: &[(&str, Access)] = &[
    ("/warden.fleet.v1.Enrollment/Begin", Access::EnrollmentToken),
    (
        "/warden.fleet.v1.Enrollment/Complete",
        Access::EnrollmentToken,
    ),
    (
        "/warden.fleet.v1.Fleet/ListAgents",
        Access::Bearer(Role::Viewer),
    ),
    (
        "/warden.fleet.v1.Fleet/Dispatch",
        Access::Bearer(Role::Operator),
    ),
    (
        "/warden.fleet.v1.Fleet/GetRun",
        Access::Bearer(Role::Viewer),
    ),
    (
        "/warden.fleet.v1.Fleet/CancelRun",
        Access::Bearer(Role::Operator),
    ),
    (
        "/warden.fleet.v1.Fleet/WatchRun",
        Access::Bearer(Role::Viewer),
    ),
    (
        "/warden.fleet.v1.Fleet/ListRuns",
        Access::Bearer(Role::Viewer),
    ),
    (
        "/warden.fleet.v1.Fleet/IssueEnrollmentToken",
        Access::Bearer(Role::Admin),
    ),
    ("/warden.fleet.v1.Fleet/Revoke", Access::Bearer(Role::Admin)),
    (
        "/warden.fleet.v1.Fleet/ListEvents",
        Access::Bearer(Role::Viewer),
    ),
    (
        "/warden.fleet.v1.Fleet/WatchEvents",
        Access::Bearer(Role::Viewer),
    ),
    (
        "/warden.fleet.v1.Fleet/Publish",
        Access::Bearer(Role::Operator),
    ),
    (
        "/warden.fleet.v1.Fleet/DeployStatus",
        Access::Bearer(Role::Viewer),
    ),
    (
        "/warden.fleet.v1.Fleet/ListApprovals",
        Access::Bearer(Role::Viewer),
    ),
    (
        "/warden.fleet.v1.Fleet/Approve",
        // The least role that may approve; the core checks `[approvals] approvers`.
        Access::Bearer(Role::Approver),
    ),
    (
        "/warden.fleet.v1.Fleet/Deny",
        // The least role that may approve; the core checks `[approvals] approvers`.
        Access::Bearer(Role::Approver),
    ),
    // Staged rollouts.
    (
        "/warden.fleet.v1.Fleet/StartRollout",
        Access::Bearer(Role::Operator),
    ),
    (
        "/warden.fleet.v1.Fleet/GetRollout",
        Access::Bearer(Role::Viewer),
    ),
    (
        "/warden.fleet.v1.Fleet/GetReport",
        Access::Bearer(Role::Viewer),
    ),
    // Air-gapped sites.
    (
        "/warden.fleet.v1.Fleet/ExportKit",
        Access::Bearer(Role::Operator),
    ),
    (
        "/warden.fleet.v1.Fleet/ImportResults",
        Access::Bearer(Role::Operator),
    ),
    (
        "/warden.fleet.v1.Fleet/PauseRollout",
        Access::Bearer(Role::Operator),
    ),
    (
        "/warden.fleet.v1.Fleet/ResumeRollout",
        Access::Bearer(Role::Operator),
    ),
    (
        "/warden.fleet.v1.Fleet/RollbackRollout",
        Access::Bearer(Role::Operator),
    ),
    // Blob collection: the controller's call checks the scope (every tenant) too.
    (
        "/warden.fleet.v1.Fleet/CollectBlobs",
        Access::Bearer(Role::Admin),
    ),
];

pub struct Authenticator {
    tokens: Tokens,
    audit: Arc<AuditLog>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    pub fn new(tokens: Tokens, audit: Arc<AuditLog>) -> Authenticator {
        Authenticator { tokens, audit }
    }

    /// Decide on one call and audit the decision; `Ok(None)` lets an enrollment call through
    /// to its handler.
    pub fn authorize(
        &self,
        method: &str,
        headers: &http::HeaderMap,
    ) -> Result<Option<Caller>, Status> {
        let access = METHOD_ACCESS
            .iter()
            .find(|(m, _)| *m == method)
            .map(|(_, a)| *a);
        let authorization = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let caller = self.tokens.identify(authorization);
        let (decision, result) = match (access, &caller) {
            (Some(Access::EnrollmentToken), _) => ("enrollment-token", Ok(None)),
            (None, _) => (
                "denied",
                Err(Status::permission_denied(format!(
                    "{method} is not open to any caller"
                ))),
            ),
            (Some(Access::Bearer(_)), None) => (
                "unauthenticated",
                Err(Status::unauthenticated(
                    "a valid bearer token is required (authorization: Bearer <token>)",
                )),
            ),
            (Some(Access::Bearer(role)), Some(c)) if c.role >= role => {
                ("allowed", Ok(Some(c.clone())))
            }
            (Some(Access::Bearer(role)), Some(c)) => (
                "denied",
                Err(Status::permission_denied(format!(
                    "{method} needs the {} role; `{}` has {}",
                    role.name(),
                    c.name,
                    c.role.name()
                ))),
            ),
        };
        let record = serde_json::json!({
            "method": method,
            "caller": caller.as_ref().map(|c| c.name.as_str()),
            "role": caller.as_ref().map(|c| c.role),
            "tenant": caller.as_ref().and_then(|c| c.scope.tenant()),
            "decision": decision,
        });
        // Durable, its flush shared with the calls and enrollments in flight meanwhile.
        if let Err(e) = crate::controller::audit_grouped(&self.audit, "api.call", &record) {
            tracing::error!("cannot audit an API call: {e}");
            return Err(Status::unavailable(
                "the controller cannot write its audit log; no call is served until it can",
            ));
        }
        result
    }
}

/// The tower layer putting an [`Authenticator`] in front of every service.
#[derive(Debug, Clone)]
pub struct AuthLayer(pub Arc<Authenticator>);

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            auth: self.0.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Arc<Authenticator>,
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
        Box::pin(async move {
            let method = req.uri().path().to_string();
            let headers = req.headers().clone();
            // The audit append is a blocking, fsync'd write: keep it off the async workers.
            let decision =
                tokio::task::spawn_blocking(move || auth.authorize(&method, &headers)).await;
            match decision {
                Ok(Ok(caller)) => {
                    if let Some(caller) = caller {
                        req.extensions_mut().insert(caller);
                    }
                    inner.call(req).await
                }
                Ok(Err(status)) => Ok(status.into_http()),
                Err(_) => Ok(Status::internal("authorization task failed").into_http()),
            }
        })
    }
}
