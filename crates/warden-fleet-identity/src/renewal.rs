//! Renewal of an agent's user JWT at half-life, over the agent's own NATS connection. Pure
//! functions and wire types; the transport is the controller's and the agent's.
//!
//! ```text
//! agent       AgentKey::renewal_request(tenant, now)  signs (context, tenant, agent, now)
//!             -> request on fleet.renew.<t>.<a>, the reply comes to its inbox
//! controller  FleetAuthority::renew(request, subject's tenant and agent, deny, now)
//!             checks the subject, the signature and the time, refuses a denied key,
//!             mints a new user JWT for the same key -> RenewalReply
//! agent       joins the JWT to its seed, replaces its .creds file, reconnects with it
//! ```
//!
//! Why over NATS rather than the controller's gRPC API: the agent already holds one
//! authenticated outbound connection (the server checked its key and its current JWT at
//! connect, and its permissions let it publish `fleet.renew.<t>.<a>` for its own key only), an
//! agent enrolled by hand does not know the controller's gRPC address, and a second outbound
//! port is one more thing for a customer's firewall. The signature is proof of possession on
//! top: it binds the request to the agent's key, its tenant and a time, so a request relayed or
//! replayed later (more than [`RENEWAL_SKEW`] away) or from another key is refused.

use data_encoding::BASE64URL_NOPAD;
use nkeys::KeyPair;
use serde::{Deserialize, Serialize};

use crate::authority::{AgentJwt, AuthorityError, FleetAuthority};
use crate::enroll::AgentKey;
use crate::ids::{AgentId, TenantId};
use crate::revocation::DenyList;

/// What the agent signs before the tenant, its key and the time: never a bare value a NATS
/// server or the enrollment could ask it to sign.
const RENEWAL_CONTEXT: &str = "warden-fleet-renewal-v1";

/// How far a request's time may be from the controller's clock: 5 minutes, the skew the fleet's
/// commands allow too. It bounds how long a captured request is worth anything.
pub const RENEWAL_SKEW: i64 = 5 * 60;

/// The version of the renewal messages.
pub const RENEWAL_VERSION: u32 = 1;

/// Largest renewal message accepted (either way): a JWT and a signature are under 2 KiB.
pub const MAX_RENEWAL_BYTES: usize = 8 * 1024;

/// The agent's request, JSON on `fleet.renew.<tenant>.<agent>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalRequest {
    pub v: u32,
    pub tenant: String,
    pub agent: String,
    /// Unix seconds on the agent's clock when it asked.
    pub at: i64,
    /// base64url (no padding) ed25519 signature of [`RenewalRequest::signed_bytes`].
    pub signature: String,
}

/// The controller's answer: a new JWT, or why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalReply {
    pub v: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RenewalReply {
    pub fn renewed(jwt: &AgentJwt) -> RenewalReply {
        RenewalReply {
            v: RENEWAL_VERSION,
            jwt: Some(jwt.jwt.clone()),
            issued_at: Some(jwt.issued_at),
            expires_at: Some(jwt.expires_at),
            error: None,
        }
    }

    pub fn refused(error: &RenewalError) -> RenewalReply {
        RenewalReply {
            v: RENEWAL_VERSION,
            jwt: None,
            issued_at: None,
            expires_at: None,
            error: Some(error.to_string()),
        }
    }
}

/// Why a renewal was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenewalError {
    #[error("renewal message version {0} is not {RENEWAL_VERSION}")]
    Version(u32),
    #[error("the request names {claimed}, but came on the subject of {subject}")]
    Misaddressed { claimed: String, subject: String },
    #[error("the request's signature is not the agent's key's")]
    BadSignature,
    #[error(
        "the request was made at {at}, more than {RENEWAL_SKEW} s from the controller's clock \
         ({now})"
    )]
    Skewed { at: i64, now: i64 },
    #[error("agent {0} is revoked: it cannot be issued credentials")]
    Revoked(AgentId),
    #[error("agent {0} is not enrolled here")]
    Unknown(AgentId),
    #[error("{0}")]
    Authority(String),
}

impl From<AuthorityError> for RenewalError {
    fn from(e: AuthorityError) -> RenewalError {
        match e {
            AuthorityError::Revoked { agent, .. } => RenewalError::Revoked(agent),
            other => RenewalError::Authority(other.to_string()),
        }
    }
}

impl RenewalRequest {
    fn signed_bytes(tenant: &str, agent: &str, at: i64) -> Vec<u8> {
        format!("{RENEWAL_CONTEXT}\n{tenant}\n{agent}\n{at}").into_bytes()
    }
}

impl AgentKey {
    /// A renewal request for this key in `tenant`, signed now.
    pub fn renewal_request(
        &self,
        tenant: &TenantId,
        now: i64,
    ) -> Result<RenewalRequest, AuthorityError> {
        let agent = self.id();
        let signature = self.sign(&RenewalRequest::signed_bytes(
            tenant.as_str(),
            agent.as_str(),
            now,
        ))?;
        Ok(RenewalRequest {
            v: RENEWAL_VERSION,
            tenant: tenant.to_string(),
            agent: agent.to_string(),
            at: now,
            signature: BASE64URL_NOPAD.encode(&signature),
        })
    }
}

impl FleetAuthority {
    /// Check `request`, which came on the renewal subject of `tenant` and `agent` (the server
    /// lets only that agent's connection publish there), and mint the agent a new user JWT
    /// named `name`. Refused: another version, a payload naming another agent or tenant than
    /// its subject, a signature not by the agent's key, a time more than [`RENEWAL_SKEW`] from
    /// `now`, a denied key.
    pub fn renew(
        &self,
        request: &RenewalRequest,
        tenant: &TenantId,
        agent: &AgentId,
        name: &str,
        deny: &DenyList,
        now: i64,
    ) -> Result<AgentJwt, RenewalError> {
        if request.v != RENEWAL_VERSION {
            return Err(RenewalError::Version(request.v));
        }
        if request.tenant != tenant.as_str() || request.agent != agent.as_str() {
            return Err(RenewalError::Misaddressed {
                claimed: format!("{}/{}", request.tenant, request.agent),
                subject: format!("{tenant}/{agent}"),
            });
        }
        let signature = BASE64URL_NOPAD
            .decode(request.signature.as_bytes())
            .map_err(|_| RenewalError::BadSignature)?;
        let key =
            KeyPair::from_public_key(agent.as_str()).map_err(|_| RenewalError::BadSignature)?;
        key.verify(
            &RenewalRequest::signed_bytes(tenant.as_str(), agent.as_str(), request.at),
            &signature,
        )
        .map_err(|_| RenewalError::BadSignature)?;
        if (request.at - now).abs() > RENEWAL_SKEW {
            return Err(RenewalError::Skewed {
                at: request.at,
                now,
            });
        }
        if deny.is_denied(agent) {
            return Err(RenewalError::Revoked(agent.clone()));
        }
        Ok(self.agent_jwt(tenant, agent, name, deny, now)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::{self as claims, User};

    fn setup() -> (FleetAuthority, TenantId, AgentKey) {
        let mut authority = FleetAuthority::generate();
        let acme = TenantId::new("acme").expect("tenant");
        authority.add_tenant(&acme).expect("tenant");
        authority
            .add_tenant(&TenantId::new("globex").expect("tenant"))
            .expect("tenant");
        (authority, acme, AgentKey::generate())
    }

    #[test]
    fn a_signed_request_gets_a_new_jwt_for_the_same_key_issued_now() {
        let (authority, acme, key) = setup();
        let now = 1_900_000_000;
        let request = key.renewal_request(&acme, now).expect("request");
        let jwt = authority
            .renew(
                &request,
                &acme,
                &key.id(),
                "host",
                &DenyList::new(),
                now + 10,
            )
            .expect("renewed");
        assert_eq!(jwt.agent, key.id());
        assert_eq!(jwt.issued_at, now + 10);
        assert_eq!(jwt.expires_at, now + 10 + crate::AGENT_JWT_LIFETIME);
        let decoded = claims::decode::<User>(&jwt.jwt).expect("a user JWT");
        assert_eq!(decoded.subject, key.id().as_str());
        assert_eq!(decoded.issued_at, now + 10);
    }

    #[test]
    fn forged_misaddressed_skewed_and_denied_requests_are_refused() {
        let (authority, acme, key) = setup();
        let globex = TenantId::new("globex").expect("tenant");
        let now = 1_900_000_000;
        let deny = DenyList::new();
        let request = key.renewal_request(&acme, now).expect("request");

        // Signed by another key, for this agent.
        let other = AgentKey::generate();
        let mut forged = other.renewal_request(&acme, now).expect("request");
        forged.agent = key.id().to_string();
        assert_eq!(
            authority.renew(&forged, &acme, &key.id(), "h", &deny, now),
            Err(RenewalError::BadSignature)
        );
        // Time edited after signing.
        let mut edited = request.clone();
        edited.at += 1;
        assert_eq!(
            authority.renew(&edited, &acme, &key.id(), "h", &deny, now),
            Err(RenewalError::BadSignature)
        );
        // On another agent's or tenant's subject.
        assert!(matches!(
            authority.renew(&request, &acme, &other.id(), "h", &deny, now),
            Err(RenewalError::Misaddressed { .. })
        ));
        assert!(matches!(
            authority.renew(&request, &globex, &key.id(), "h", &deny, now),
            Err(RenewalError::Misaddressed { .. })
        ));
        // Replayed later than the skew allows.
        assert!(matches!(
            authority.renew(
                &request,
                &acme,
                &key.id(),
                "h",
                &deny,
                now + RENEWAL_SKEW + 1
            ),
            Err(RenewalError::Skewed { .. })
        ));
        // A denied key.
        let mut denied = DenyList::new();
        denied.revoke(&acme, &key.id(), now - 5, "stolen");
        assert_eq!(
            authority.renew(&request, &acme, &key.id(), "h", &denied, now),
            Err(RenewalError::Revoked(key.id()))
        );
        // Another version.
        let mut newer = request.clone();
        newer.v = 2;
        assert_eq!(
            authority.renew(&newer, &acme, &key.id(), "h", &deny, now),
            Err(RenewalError::Version(2))
        );
    }
}
