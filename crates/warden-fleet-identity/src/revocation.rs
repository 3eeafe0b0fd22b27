//! Revoking agents: the controller's deny list, and what of it goes into the tenant account JWTs.
//!
//! A revocation is an entry in the agent's tenant account JWT (`revocations`: user public key ->
//! time), pushed to the running servers through the system account
//! ([`crate::CLAIMS_UPDATE_SUBJECT`]). The server then refuses that key's JWTs issued at or
//! before the time, and closes the connections using one (observed on 2.12.8, see the tests).
//! The full resolver stores the pushed JWT, so a restarted server keeps the revocation. But on
//! 2.12.8 a revoked agent connecting while a restarted server first loads its tenant account
//! was seen to get in (3 of about 35 runs, see `tests/live.rs`), and a connection once in is
//! re-checked only at the next account update: so the controller re-pushes every account JWT
//! ([`crate::FleetAuthority::account_jwts`]) whenever it sees a server (re)start.
//!
//! The [`DenyList`] is the controller's record, and what it persists: account JWTs are rebuilt
//! from it, so a restarted controller signs the same revocations again, and it refuses to mint a
//! JWT (enrollment or renewal) for a denied key, which the server alone would accept if issued
//! after the revocation time. An entry leaves the account JWT once every JWT it revokes has
//! expired anyway ([`crate::AGENT_JWT_LIFETIME`] after it), which keeps account JWTs small; it
//! never leaves the deny list.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::AGENT_JWT_LIFETIME;
use crate::ids::{AgentId, TenantId};

/// One revoked agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    pub tenant: TenantId,
    /// Unix seconds: JWTs of the agent issued at or before then are void.
    pub at: i64,
    /// Why, for the audit trail and the NOC.
    #[serde(default)]
    pub reason: String,
}

/// Every agent ever revoked. Serialize it to persist it; storage is the controller's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DenyList {
    agents: BTreeMap<AgentId, Revoked>,
}

impl DenyList {
    pub fn new() -> DenyList {
        DenyList::default()
    }

    /// Record the revocation (a second one of the same agent keeps the later time, which
    /// covers more of its JWTs).
    pub fn revoke(&mut self, tenant: &TenantId, agent: &AgentId, at: i64, reason: &str) {
        let entry = self.agents.entry(agent.clone()).or_insert_with(|| Revoked {
            tenant: tenant.clone(),
            at,
            reason: reason.to_string(),
        });
        if at > entry.at {
            entry.at = at;
            entry.reason = reason.to_string();
        }
    }

    pub fn get(&self, agent: &AgentId) -> Option<&Revoked> {
        self.agents.get(agent)
    }

    pub fn is_denied(&self, agent: &AgentId) -> bool {
        self.agents.contains_key(agent)
    }

    pub fn len(&self) -> usize {
        self.agents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&AgentId, &Revoked)> {
        self.agents.iter()
    }

    /// The `revocations` of `tenant`'s account JWT at `now`: the entries that may still void a
    /// live JWT.
    pub fn account_revocations(&self, tenant: &TenantId, now: i64) -> BTreeMap<String, i64> {
        self.agents
            .iter()
            .filter(|(_, r)| &r.tenant == tenant && r.at.saturating_add(AGENT_JWT_LIFETIME) >= now)
            .map(|(agent, r)| (agent.to_string(), r.at))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> AgentId {
        AgentId::new(nkeys::KeyPair::new_user().public_key()).expect("agent")
    }

    #[test]
    fn revocations_stay_in_the_account_while_a_jwt_could_outlive_them() {
        let acme = TenantId::new("acme").expect("tenant");
        let globex = TenantId::new("globex").expect("tenant");
        let (a, b) = (agent(), agent());
        let mut deny = DenyList::new();
        deny.revoke(&acme, &a, 1_000, "stolen laptop");
        deny.revoke(&globex, &b, 1_000, "decommissioned");
        assert_eq!(
            deny.account_revocations(&acme, 1_000),
            BTreeMap::from([(a.to_string(), 1_000)])
        );
        assert_eq!(
            deny.account_revocations(&acme, 1_000 + AGENT_JWT_LIFETIME)
                .len(),
            1
        );
        assert!(
            deny.account_revocations(&acme, 1_001 + AGENT_JWT_LIFETIME)
                .is_empty()
        );
        // Still denied: the controller never mints for it again.
        assert!(deny.is_denied(&a));
        // A later revocation widens it, an earlier one does not narrow it.
        deny.revoke(&acme, &a, 500, "again");
        assert_eq!(deny.get(&a).map(|r| r.at), Some(1_000));
        deny.revoke(&acme, &a, 2_000, "again");
        assert_eq!(deny.get(&a).map(|r| r.at), Some(2_000));
        let json = serde_json::to_string(&deny).expect("json");
        let back: DenyList = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, deny);
    }
}
