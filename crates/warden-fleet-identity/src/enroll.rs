//! Enrollment: how an agent with nothing but a short-lived token becomes a fleet member with its
//! own NATS credentials. Pure functions and wire types; the transport is the controller's.
//!
//! ```text
//! NOC/controller  issue_enrollment_token(tenant, tags) -> token (signed, expires, single use)
//! agent           AgentKey::generate(); request(token, tenant, name)        -> EnrollmentRequest
//! controller      begin_enrollment(request)  checks the token, keeps a PendingEnrollment,
//!                                            sends its Challenge (a fresh nonce)
//! agent           answer(challenge)          signs the nonce with its new key -> ChallengeResponse
//! controller      complete_enrollment(pending, response)  checks the signature, spends the
//!                                            token, mints the user JWT for the agent's key
//! agent           credentials(jwt)           joins the JWT to its seed; connects
//! ```
//!
//! As in Choria's provisioner, the nonce is what ties the credential to a key the agent holds:
//! without it, a holder of a token could ask for credentials for any public key (someone
//! else's, to lock them out or to frame them). The agent signs the nonce together with a context
//! string, the token id, the tenant and its key, never the bare nonce: a bare-nonce signature is
//! what a NATS server asks for at connect, so a hostile controller could otherwise relay a
//! server's connect nonce and log in as the agent.
//!
//! The agent's seed never leaves it: the controller only ever sees its public key.

use std::collections::BTreeMap;

use data_encoding::{BASE32_NOPAD, BASE64URL_NOPAD};
use nkeys::KeyPair;
use serde::{Deserialize, Serialize};

use crate::authority::{AgentJwt, AuthorityError, FleetAuthority, Seed};
use crate::creds::Credentials;
use crate::ids::{AgentId, InvalidId, TenantId};
use crate::jwt::{self, ClaimKind, Claims, JwtError};
use crate::revocation::DenyList;

/// How long an enrollment token is valid by default: long enough for a technician's install
/// session or a deployment job, short enough that a token pasted into a ticket or chat is
/// useless by the next day.
pub const ENROLLMENT_TOKEN_LIFETIME: i64 = 60 * 60;
/// The longest lifetime a token may be issued with (a deployment spread over a working day).
pub const MAX_ENROLLMENT_TOKEN_LIFETIME: i64 = 24 * 60 * 60;
/// How long the agent has to answer a challenge: one round trip plus a signature, on a slow
/// link; a nonce is worthless once answered or expired.
pub const CHALLENGE_LIFETIME: i64 = 2 * 60;
/// Tags a token may carry (`role=db`, `site=paris`), and their length: they become the
/// agent's first inventory tags, not permissions.
pub const MAX_TOKEN_TAGS: usize = 32;
pub const MAX_TAG_LEN: usize = 128;
/// Random bytes of a token id (single-use id) and of a nonce: 128 bits are unguessable, 256
/// bits of nonce never repeat.
const TOKEN_ID_BYTES: usize = 16;
const NONCE_BYTES: usize = 32;
/// Domain separation of the signed challenge (see the module doc).
const CHALLENGE_CONTEXT: &str = "warden-fleet-enrollment-challenge-v1";

/// Why an enrollment was refused, or a token not issued.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("the enrollment token is not a warden enrollment token: {0}")]
    TokenMalformed(#[source] JwtError),
    #[error("the enrollment token's signature is not this controller's")]
    TokenSignature,
    #[error("the enrollment token expired at {expired_at} (now {now})")]
    TokenExpired { expired_at: i64, now: i64 },
    #[error("the enrollment token {id} was used already")]
    TokenReused { id: String },
    #[error("the enrollment token is for tenant {token}, the agent asked to join {requested:?}")]
    WrongTenant { token: TenantId, requested: String },
    #[error("tenant {0} is not known to this controller")]
    UnknownTenant(TenantId),
    #[error("the agent's public key is not usable: {0}")]
    BadAgentKey(#[source] InvalidId),
    #[error("agent {0} was revoked and cannot enroll again with the same key")]
    AgentRevoked(AgentId),
    #[error("the challenge expired at {expired_at} (now {now})")]
    ChallengeExpired { expired_at: i64, now: i64 },
    #[error("the answer is not for this challenge (other token, key or nonce)")]
    ChallengeMismatch,
    #[error("the nonce signature does not verify against the agent's public key")]
    BadNonceSignature,
    #[error("token lifetime {requested} s is not within 1 ..= {MAX_ENROLLMENT_TOKEN_LIFETIME} s")]
    LifetimeOutOfRange { requested: i64 },
    #[error(
        "token tag {0:?} is empty, too long or holds control characters, or there are more than {MAX_TOKEN_TAGS}"
    )]
    InvalidTag(String),
    #[error("no randomness from the OS: {0}")]
    Random(String),
    #[error(transparent)]
    Authority(#[from] AuthorityError),
}

/// `nats` of an enrollment token (this crate's own JWT kind, never sent to a NATS server).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Enrollment {
    tenant: TenantId,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    #[serde(rename = "type")]
    kind: String,
    version: u32,
}

impl ClaimKind for Enrollment {
    const TYPE: &'static str = "warden_enrollment";
}

/// An issued token, and what the controller records about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentToken {
    /// What the agent is given (a JWT signed by the enrollment key).
    pub token: String,
    /// Its single-use id.
    pub id: String,
    pub tenant: TenantId,
    pub tags: Vec<String>,
    pub expires_at: i64,
}

/// The agent's first message. Untrusted: every field is checked by
/// [`FleetAuthority::begin_enrollment`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentRequest {
    pub token: String,
    /// The tenant the agent was configured for (a token for another tenant is refused, so a
    /// token pasted into the wrong client's machine cannot file it under the wrong client).
    pub tenant: String,
    /// The agent's public key.
    pub agent: String,
    /// Display name (host name).
    pub name: String,
}

/// What the controller sends back: sign this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    pub token_id: String,
    pub tenant: TenantId,
    pub agent: AgentId,
    /// base64url of [`NONCE_BYTES`] random bytes.
    pub nonce: String,
    pub expires_at: i64,
}

impl Challenge {
    fn signed_bytes(&self) -> Vec<u8> {
        format!(
            "{CHALLENGE_CONTEXT}\n{}\n{}\n{}\n{}",
            self.token_id, self.tenant, self.agent, self.nonce
        )
        .into_bytes()
    }
}

/// What the controller keeps between the request and the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingEnrollment {
    pub challenge: Challenge,
    pub name: String,
    pub tags: Vec<String>,
    pub token_expires_at: i64,
}

/// The agent's answer. Untrusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeResponse {
    pub token_id: String,
    pub agent: String,
    pub nonce: String,
    /// base64url ed25519 signature.
    pub signature: String,
}

/// A completed enrollment: the agent's JWT, and its inventory seed (name, tags from the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    pub jwt: AgentJwt,
    pub name: String,
    pub tags: Vec<String>,
    pub token_id: String,
}

/// Token ids already used, until the token would have expired anyway (then the expiry alone
/// refuses it, and [`SpentTokens::prune`] forgets it). Persist it with the controller's store,
/// before the JWT is sent: a controller restart must not make a used token usable again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpentTokens {
    ids: BTreeMap<String, i64>,
}

impl SpentTokens {
    pub fn new() -> SpentTokens {
        SpentTokens::default()
    }

    pub fn is_spent(&self, id: &str) -> bool {
        self.ids.contains_key(id)
    }

    /// Mark a token id spent until its token's expiry (an enrollment does; a controller also
    /// when it loads what it persisted).
    pub fn spend(&mut self, id: &str, token_expires_at: i64) {
        self.ids.insert(id.to_string(), token_expires_at);
    }

    /// Forget ids whose tokens have expired.
    pub fn prune(&mut self, now: i64) {
        self.ids.retain(|_, expires_at| *expires_at >= now);
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

fn random<const N: usize>() -> Result<[u8; N], EnrollError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| EnrollError::Random(e.to_string()))?;
    Ok(bytes)
}

fn check_tags(tags: &[String]) -> Result<(), EnrollError> {
    if tags.len() > MAX_TOKEN_TAGS {
        return Err(EnrollError::InvalidTag(format!("{} tags", tags.len())));
    }
    for tag in tags {
        if tag.is_empty() || tag.len() > MAX_TAG_LEN || tag.chars().any(char::is_control) {
            return Err(EnrollError::InvalidTag(tag.clone()));
        }
    }
    Ok(())
}

impl FleetAuthority {
    /// A single-use token enrolling one agent into `tenant`, valid `lifetime` seconds
    /// ([`ENROLLMENT_TOKEN_LIFETIME`] is the default to use).
    pub fn issue_enrollment_token(
        &self,
        tenant: &TenantId,
        tags: &[String],
        lifetime: i64,
        now: i64,
    ) -> Result<EnrollmentToken, EnrollError> {
        if !self.has_tenant(tenant) {
            return Err(EnrollError::UnknownTenant(tenant.clone()));
        }
        if !(1..=MAX_ENROLLMENT_TOKEN_LIFETIME).contains(&lifetime) {
            return Err(EnrollError::LifetimeOutOfRange {
                requested: lifetime,
            });
        }
        check_tags(tags)?;
        let id = BASE32_NOPAD.encode(&random::<TOKEN_ID_BYTES>()?);
        let expires_at = now + lifetime;
        let mut claims = Claims {
            expires: Some(expires_at),
            id: String::new(),
            issued_at: now,
            issuer: String::new(),
            name: String::new(),
            subject: id.clone(),
            nats: Enrollment {
                tenant: tenant.clone(),
                tags: tags.to_vec(),
                kind: Enrollment::TYPE.to_string(),
                version: 1,
            },
        };
        let token =
            jwt::encode(&mut claims, &self.enrollment).map_err(EnrollError::TokenMalformed)?;
        Ok(EnrollmentToken {
            token,
            id,
            tenant: tenant.clone(),
            tags: tags.to_vec(),
            expires_at,
        })
    }

    /// Verify a token: this controller's signature, not expired, not spent.
    fn verify_token(
        &self,
        token: &str,
        spent: &SpentTokens,
        now: i64,
    ) -> Result<Claims<Enrollment>, EnrollError> {
        let claims: Claims<Enrollment> = match jwt::decode(token) {
            Ok(claims) => claims,
            Err(JwtError::Signature) => return Err(EnrollError::TokenSignature),
            Err(e) => return Err(EnrollError::TokenMalformed(e)),
        };
        // Signed, but by whom: only this controller's enrollment key issues tokens.
        if claims.issuer != self.enrollment.public_key() {
            return Err(EnrollError::TokenSignature);
        }
        let expired_at = claims.expires.unwrap_or(i64::MIN);
        if now > expired_at {
            return Err(EnrollError::TokenExpired { expired_at, now });
        }
        if spent.is_spent(&claims.subject) {
            return Err(EnrollError::TokenReused {
                id: claims.subject.clone(),
            });
        }
        Ok(claims)
    }

    /// Check an agent's request and answer it with a challenge. Nothing is spent yet: the
    /// token is spent only by a correctly signed answer.
    pub fn begin_enrollment(
        &self,
        request: &EnrollmentRequest,
        spent: &SpentTokens,
        deny: &DenyList,
        now: i64,
    ) -> Result<PendingEnrollment, EnrollError> {
        let claims = self.verify_token(&request.token, spent, now)?;
        let tenant = claims.nats.tenant;
        if request.tenant != tenant.as_str() {
            return Err(EnrollError::WrongTenant {
                token: tenant,
                requested: request.tenant.clone(),
            });
        }
        if !self.has_tenant(&tenant) {
            return Err(EnrollError::UnknownTenant(tenant));
        }
        let agent = AgentId::new(request.agent.clone()).map_err(EnrollError::BadAgentKey)?;
        if deny.is_denied(&agent) {
            return Err(EnrollError::AgentRevoked(agent));
        }
        // Checked now so that a bad name is refused before the agent signs anything.
        if request.name.is_empty()
            || request.name.len() > crate::authority::MAX_AGENT_NAME_LEN
            || request.name.chars().any(char::is_control)
        {
            return Err(AuthorityError::InvalidName(request.name.clone()).into());
        }
        Ok(PendingEnrollment {
            challenge: Challenge {
                token_id: claims.subject,
                tenant,
                agent,
                nonce: BASE64URL_NOPAD.encode(&random::<NONCE_BYTES>()?),
                expires_at: now + CHALLENGE_LIFETIME,
            },
            name: request.name.clone(),
            tags: claims.nats.tags,
            token_expires_at: expired_at_or(claims.expires),
        })
    }

    /// Check the agent's answer to `pending`'s challenge; on success spend the token (record
    /// `spent` before sending the JWT) and return the agent's user JWT.
    pub fn complete_enrollment(
        &self,
        pending: &PendingEnrollment,
        response: &ChallengeResponse,
        spent: &mut SpentTokens,
        deny: &DenyList,
        now: i64,
    ) -> Result<Enrolled, EnrollError> {
        let challenge = &pending.challenge;
        if now > challenge.expires_at {
            return Err(EnrollError::ChallengeExpired {
                expired_at: challenge.expires_at,
                now,
            });
        }
        if response.token_id != challenge.token_id
            || response.agent != challenge.agent.as_str()
            || response.nonce != challenge.nonce
        {
            return Err(EnrollError::ChallengeMismatch);
        }
        let signature = BASE64URL_NOPAD
            .decode(response.signature.as_bytes())
            .map_err(|_| EnrollError::BadNonceSignature)?;
        let key = KeyPair::from_public_key(challenge.agent.as_str())
            .map_err(|_| EnrollError::BadNonceSignature)?;
        key.verify(&challenge.signed_bytes(), &signature)
            .map_err(|_| EnrollError::BadNonceSignature)?;
        // Two enrollments may have begun with the same token; only the first answer wins.
        if spent.is_spent(&challenge.token_id) {
            return Err(EnrollError::TokenReused {
                id: challenge.token_id.clone(),
            });
        }
        if now > pending.token_expires_at {
            return Err(EnrollError::TokenExpired {
                expired_at: pending.token_expires_at,
                now,
            });
        }
        if deny.is_denied(&challenge.agent) {
            return Err(EnrollError::AgentRevoked(challenge.agent.clone()));
        }
        let jwt = self.agent_jwt(
            &challenge.tenant,
            &challenge.agent,
            &pending.name,
            deny,
            now,
        )?;
        spent.spend(&challenge.token_id, pending.token_expires_at);
        Ok(Enrolled {
            jwt,
            name: pending.name.clone(),
            tags: pending.tags.clone(),
            token_id: challenge.token_id.clone(),
        })
    }
}

fn expired_at_or(expires: Option<i64>) -> i64 {
    // verify_token refused a token without expiry (i64::MIN is always past).
    expires.unwrap_or(i64::MIN)
}

/// The agent's own key: generated on the agent, its seed stored only there.
pub struct AgentKey(KeyPair);

impl std::fmt::Debug for AgentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AgentKey")
            .field(&self.0.public_key())
            .finish()
    }
}

impl AgentKey {
    pub fn generate() -> AgentKey {
        AgentKey(KeyPair::new_user())
    }

    /// The key from its stored seed; `None` if it is not a user seed.
    pub fn from_seed(seed: &str) -> Option<AgentKey> {
        KeyPair::from_seed(seed)
            .ok()
            .filter(|kp| kp.key_pair_type() == nkeys::KeyPairType::User)
            .map(AgentKey)
    }

    pub fn seed(&self) -> Result<Seed, AuthorityError> {
        Seed::of(&self.0)
    }

    pub fn id(&self) -> AgentId {
        // Both constructors make or check a user key.
        AgentId::of_user_key(&self.0)
    }

    pub fn request(&self, token: &str, tenant: &TenantId, name: &str) -> EnrollmentRequest {
        EnrollmentRequest {
            token: token.to_string(),
            tenant: tenant.to_string(),
            agent: self.0.public_key(),
            name: name.to_string(),
        }
    }

    /// Sign the challenge, if it is addressed to this key.
    pub fn answer(&self, challenge: &Challenge) -> Result<ChallengeResponse, EnrollError> {
        if challenge.agent.as_str() != self.0.public_key() {
            return Err(EnrollError::ChallengeMismatch);
        }
        let signature = self
            .0
            .sign(&challenge.signed_bytes())
            .map_err(|e| EnrollError::Authority(AuthorityError::Key(e)))?;
        Ok(ChallengeResponse {
            token_id: challenge.token_id.clone(),
            agent: self.0.public_key(),
            nonce: challenge.nonce.clone(),
            signature: BASE64URL_NOPAD.encode(&signature),
        })
    }

    /// Sign `bytes` with the agent's key (callers add a context string: see the renewal).
    pub(crate) fn sign(&self, bytes: &[u8]) -> Result<Vec<u8>, AuthorityError> {
        self.0.sign(bytes).map_err(AuthorityError::Key)
    }

    /// The agent's NATS credentials: the JWT it was issued and its own seed.
    pub fn credentials(&self, jwt: &AgentJwt) -> Result<Credentials, AuthorityError> {
        Ok(Credentials::new(
            jwt.jwt.clone(),
            self.seed()?,
            jwt.expires_at,
        ))
    }
}
