//! Approvals, four eyes (issue 16): a run (or a rollout) whose blast radius is above the
//! `[approvals]` policy is not sent; it becomes a recorded **request** that a second operator
//! approves or denies. A fleet run of a runbook marked `maintenance = true` to an agent
//! outside its reported maintenance windows waits the same way ([`windows`]).
//!
//! A request is bound to exactly what it would do: the artifact (runbook or plugin name, and
//! its bundle's SHA-256 when the controller holds the bundle), the parameters, the resolved
//! target (the selector and the set of agents) and its own expiry, by a digest over all of them
//! ([`binding::digest`]). The digest is checked again where the approved thing starts: an
//! approval presented for other parameters or another target, or one whose runbook or agents
//! changed meanwhile, is refused ([`ApprovalError::Mismatch`], [`ApprovalError::Changed`]).
//!
//! - [`policy`]: the `[approvals]` config and the threshold rule (pure);
//! - [`binding`]: what a request is bound to, and its digest (pure);
//! - [`windows`]: a maintenance runbook to agents outside their reported maintenance
//!   windows (pure, on the agent's own window logic);
//! - [`flow`]: the controller's calls (`gate`, `approve`, `deny`, the listing), role and
//!   scope checks, and audit.
//!
//! Rollouts call [`crate::Controller::gate`] before they start (the seam): `Proceed`, or
//! `Pending(id)` until someone else approves, after which the same call with the request's id
//! proceeds once.

pub mod binding;
pub mod flow;
pub mod policy;
pub mod windows;

pub use binding::{ApprovalSubject, SubjectKind};
pub use policy::{ApprovalPolicy, Reason};

use warden_fleet_wire::{RunId, UnixMillis};

/// A request's id: a ULID like a run's (time-ordered, 26 characters).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(String);

impl RequestId {
    pub(crate) fn generate(at: UnixMillis, random: [u8; 10]) -> RequestId {
        RequestId(RunId::from_parts(at, random).to_string())
    }

    pub fn parse(text: &str) -> Result<RequestId, ApprovalError> {
        RunId::parse(text)
            .map(|id| RequestId(id.to_string()))
            .map_err(|_| ApprovalError::BadId(text.chars().take(40).collect()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the gate decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Within the policy, or an approval for exactly this was presented (and is now spent).
    Proceed,
    /// Recorded as a request; nothing was started.
    Pending(RequestId),
}

/// Where a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalState {
    /// Waiting for a second operator (until it expires).
    Pending,
    /// Approved and not yet used (a rollout's, until its start presents it).
    Approved,
    /// Approved and used: the bound run was dispatched (or the rollout started).
    Consumed,
    Denied,
    /// Past its expiry before anyone approved it.
    Expired,
    /// Approved, but what it was bound to had changed: nothing was started.
    Void,
}

impl ApprovalState {
    pub fn name(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Consumed => "consumed",
            ApprovalState::Denied => "denied",
            ApprovalState::Expired => "expired",
            ApprovalState::Void => "void",
        }
    }

    pub fn parse(text: &str) -> Option<ApprovalState> {
        [
            ApprovalState::Pending,
            ApprovalState::Approved,
            ApprovalState::Consumed,
            ApprovalState::Denied,
            ApprovalState::Expired,
            ApprovalState::Void,
        ]
        .into_iter()
        .find(|s| s.name() == text)
    }
}

/// A request as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRecord {
    pub id: RequestId,
    pub subject: ApprovalSubject,
    /// The inline runbook bundle of a run, kept to dispatch exactly it.
    pub bundle: Option<Vec<u8>>,
    /// [`binding::digest`] of the subject and the expiry, as requested.
    pub digest: String,
    /// Why it needs approval (one line each).
    pub reasons: Vec<String>,
    /// The targeted agents' tenants: an approver's scope must cover all of them.
    pub tenants: Vec<warden_fleet_identity::TenantId>,
    /// The requester's identity (its token's name).
    pub requested_by: String,
    pub created_at: UnixMillis,
    pub expires_at: UnixMillis,
    pub state: ApprovalState,
    pub decided_by: Option<String>,
    pub decided_at: Option<UnixMillis>,
    /// The run the approval dispatched.
    pub run: Option<RunId>,
    /// Why it was denied or voided.
    pub note: Option<String>,
}

impl ApprovalRecord {
    /// The state as of `now`: a pending request past its expiry reads as expired.
    pub fn state_at(&self, now: UnixMillis) -> ApprovalState {
        match self.state {
            ApprovalState::Pending | ApprovalState::Approved if now >= self.expires_at => {
                ApprovalState::Expired
            }
            s => s,
        }
    }
}

/// Why an approval (or a gate with one) was refused. Every refusal is audited.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApprovalError {
    #[error("{0:?} is not an approval request id")]
    BadId(String),
    #[error("approval request {0} not found")]
    NotFound(RequestId),
    #[error("`{caller}` requested {id}: a second operator must approve it")]
    SelfApproval { id: RequestId, caller: String },
    #[error("approval request {id} expired at {expires_at}")]
    Expired { id: RequestId, expires_at: String },
    #[error("approval request {id} is {state}, not {wanted}")]
    NotPending {
        id: RequestId,
        state: &'static str,
        wanted: &'static str,
    },
    #[error("approval request {id} was for another {kind}")]
    WrongKind { id: RequestId, kind: &'static str },
    #[error(
        "approval request {id} does not match: it was approved for other parameters, target, agents or artifact"
    )]
    Mismatch { id: RequestId },
    #[error("approval request {id} is void: {what} changed since it was requested")]
    Changed { id: RequestId, what: String },
}
