//! The NATS identity layer of the fleet (issue 15, "Enrollment and identity"): who may connect
//! to the fleet's NATS servers and what each may publish and read. The controller uses it to
//! mint credentials and revoke them, the agent to enroll and connect. It knows nothing of the
//! sandbox, and nothing of the transport: keys, JWTs, a server config fragment and pure
//! enrollment functions.
//!
//! # Design: one NATS account per tenant, one scoped signing key per tenant account
//!
//! An operator signs a system account, the controller's `fleet` account (JetStream: the shared
//! results stream, the desired-state KV) and **one account per tenant**. A tenant account
//! imports only its own slice of the fleet's subjects (`fleet.cmd.<t>.>`, `fleet.res.<t>.>`,
//! ...; see [`subjects`]) and has one *scoped* signing key whose permission template allows an
//! agent its own subjects only, filled in by the server from the key the connection proved
//! (`{{subject()}}`). Agent JWTs carry no permissions.
//!
//! Considered instead: one account for all agents with a scoped signing key per tenant. Simpler
//! (no imports and exports), but at 10k-60k agents it loses on each point that matters:
//! - **Revocation cost.** Every account JWT update makes the server walk *every* connection
//!   of that account and decode (signature check included) its user JWT (nats-server 2.12
//!   `updateAccountClaimsWithRefresh`). In one account that is all 60k agents for each
//!   revocation or new tenant; per tenant it is that tenant's agents only.
//! - **Size.** The single account JWT would hold every tenant's scope and every revocation,
//!   and must travel as one message (under `max_payload`, 1 MiB by default): a few hundred
//!   tenants plus revocations approach that. Per tenant, each JWT stays a few KiB.
//! - **Isolation.** Per-tenant accounts are separate subject spaces: a tenant's agent cannot
//!   see another tenant's traffic even if a permission were wrong, because nothing of the
//!   other tenant is imported into its account. One account relies on permissions alone.
//! - **Tenant kill switch.** A tenant is cut off by revoking `*` in its own account, without
//!   touching anyone else's connections.
//!
//! The price is the cross-account wiring, done once here: the fleet account exports commands
//! and announcements as streams and the result, heartbeat, event and Direct-Get subjects as
//! services (so JetStream PubAcks and Direct-Get answers flow back to the agent).
//!
//! Revocation ([`revocation`]) is an entry in the tenant account JWT, pushed to running servers
//! through the system account; the servers run the full resolver ([`config`]), which applies it
//! without a restart and keeps it across one. The controller persists a [`DenyList`] and
//! refuses to mint for a denied key.
//!
//! Lifetimes: see [`AGENT_JWT_LIFETIME`], [`CONTROLLER_JWT_LIFETIME`],
//! [`enroll::ENROLLMENT_TOKEN_LIFETIME`], [`enroll::CHALLENGE_LIFETIME`].
//!
//! JWTs are encoded here ([`jwt`]) on top of `nkeys` 0.4: `nats-jwt` 0.3 cannot express the
//! operator, imports, exports, scopes or revocations (see the module).

pub mod authority;
pub mod config;
pub mod creds;
pub mod enroll;
pub mod ids;
pub mod jwt;
pub mod renewal;
pub mod revocation;
pub mod subjects;

pub use authority::{
    AccountJwt, AccountSecrets, AgentJwt, AuthorityError, FleetAuthority, FleetSecrets, Seed,
};
pub use config::ConfigError;
pub use creds::Credentials;
pub use enroll::{
    AgentKey, Challenge, ChallengeResponse, EnrollError, Enrolled, EnrollmentRequest,
    EnrollmentToken, PendingEnrollment, SpentTokens,
};
pub use ids::{AgentId, InvalidId, TenantId};
pub use renewal::{RenewalError, RenewalReply, RenewalRequest};
pub use revocation::{DenyList, Revoked};

use serde::Deserialize;

/// How long an agent's user JWT is valid: 30 days. Revocation, not expiry, is how an agent is
/// cut off, so this is the backstop for a key stolen unnoticed and the bound on how long a
/// revocation must stay in the account JWT ([`DenyList::account_revocations`]). An agent renews
/// at half-life ([`AgentJwt::needs_renewal`]), so one online every 15 days never lapses, and one
/// offline for a fortnight (holidays, a stored laptop) still reconnects by itself; beyond 30
/// days it needs a new enrollment token.
pub const AGENT_JWT_LIFETIME: i64 = 30 * 24 * 60 * 60;

/// How long the controller's own credentials are valid: 7 days. The controller can mint itself
/// new ones at any time from its keys, so this only limits what a copied credential (a log, a
/// backup, a NOC laptop) is worth; the controller reconnects with fresh ones well before.
pub const CONTROLLER_JWT_LIFETIME: i64 = 7 * 24 * 60 * 60;

/// Where a system-account user publishes (request/reply) an account JWT to update it on the
/// servers running the full resolver. Each server answers; see [`claims_update_result`].
pub const CLAIMS_UPDATE_SUBJECT: &str = "$SYS.REQ.CLAIMS.UPDATE";

/// Unix seconds now; every function here takes the time as an argument so it can be tested.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A server's refusal of a pushed account JWT.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsUpdateError {
    #[error("the server refused the account JWT ({code}): {description}")]
    Refused { code: i64, description: String },
    #[error("the server's answer is not a claims update reply: {0}")]
    Unreadable(String),
}

/// Read a server's answer to a push on [`CLAIMS_UPDATE_SUBJECT`]: `Ok` with the updated account.
pub fn claims_update_result(reply: &[u8]) -> Result<String, ClaimsUpdateError> {
    #[derive(Deserialize)]
    struct Reply {
        data: Option<Data>,
        error: Option<Refusal>,
    }
    #[derive(Deserialize)]
    struct Data {
        account: String,
        code: i64,
    }
    #[derive(Deserialize)]
    struct Refusal {
        code: i64,
        #[serde(default)]
        description: String,
    }
    let reply: Reply =
        serde_json::from_slice(reply).map_err(|e| ClaimsUpdateError::Unreadable(e.to_string()))?;
    match (reply.data, reply.error) {
        (_, Some(e)) => Err(ClaimsUpdateError::Refused {
            code: e.code,
            description: e.description,
        }),
        (Some(d), None) if d.code == 200 => Ok(d.account),
        (Some(d), None) => Err(ClaimsUpdateError::Refused {
            code: d.code,
            description: String::new(),
        }),
        (None, None) => Err(ClaimsUpdateError::Unreadable(
            "neither data nor error".into(),
        )),
    }
}
