//! Enrollment and revocation on the controller: issuing tenant-scoped tokens, the two steps of
//! the signed-nonce enrollment ([`warden_fleet_identity::enroll`]), and the state they need.
//!
//! **Transport: the controller's gRPC API**, not NATS. An agent has no NATS credentials before
//! it enrolls, and giving every machine with a token a NATS login (even a narrow one) would put
//! unauthenticated clients on the bus the fleet depends on. gRPC over one outbound TCP
//! connection works from behind NAT like NATS does, and the token in each request is the
//! credential (the `Enrollment` service takes no bearer token).
//!
//! **State.** Pending challenges live in memory ([`MAX_PENDING`], each for
//! [`warden_fleet_identity::enroll::CHALLENGE_LIFETIME`]): a controller restart makes an agent
//! start again, which costs nothing. Spent tokens and the deny list are in the store, written
//! before the JWT is returned or the revocation pushed.

use std::collections::HashMap;

use warden_fleet_identity::{
    AgentId, Challenge, ChallengeResponse, DenyList, EnrollmentRequest, PendingEnrollment,
    SpentTokens,
};

/// Enrollments begun and not completed, at most: 10,000 (a fleet-wide re-enrollment of 10k
/// agents at once fits; beyond it, a flood of `Begin` calls cannot grow the controller's memory).
pub const MAX_PENDING: usize = 10_000;
/// The store keys of the enrollment state.
pub const SPENT_TOKENS_KEY: &str = "spent-tokens";
pub const DENY_LIST_KEY: &str = "deny-list";

/// Challenges awaiting an answer, by (token id, agent).
#[derive(Debug, Default)]
pub struct Pending {
    by_key: HashMap<(String, AgentId), PendingEnrollment>,
}

impl Pending {
    /// Keep `pending`; `false` if full even after dropping expired ones.
    pub fn insert(&mut self, pending: PendingEnrollment, now_secs: i64) -> bool {
        if self.by_key.len() >= MAX_PENDING {
            self.by_key
                .retain(|_, p| p.challenge.expires_at >= now_secs);
        }
        if self.by_key.len() >= MAX_PENDING {
            return false;
        }
        let key = (
            pending.challenge.token_id.clone(),
            pending.challenge.agent.clone(),
        );
        self.by_key.insert(key, pending);
        true
    }

    /// Take the challenge an answer is for.
    pub fn take(&mut self, response: &ChallengeResponse) -> Option<PendingEnrollment> {
        let agent = AgentId::new(response.agent.clone()).ok()?;
        self.by_key.remove(&(response.token_id.clone(), agent))
    }
}

/// The persisted enrollment state.
#[derive(Debug, Default)]
pub struct EnrollmentState {
    pub spent: SpentTokens,
    pub deny: DenyList,
    pub pending: Pending,
}

/// What `Begin` gives the agent.
pub type BeginAnswer = Challenge;
/// What `Begin` takes.
pub type BeginRequest = EnrollmentRequest;
