//! The two names every subject and credential is built from: a tenant and an agent.
//!
//! Both end up inside NATS subjects and permission templates, where a `.` adds a token and a `*`
//! or `>` is a wildcard: a name that could hold one would widen what its holder may read. So both
//! are checked once, here, and the rest of the crate takes only these types.

use std::fmt;

use nkeys::{KeyPair, KeyPairType};
use serde::{Deserialize, Serialize};

/// Longest tenant id. Tenant ids appear in every subject of the tenant and in account names;
/// 63 bytes holds any sensible client short name and keeps subjects short.
pub const MAX_TENANT_ID_LEN: usize = 63;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidId {
    #[error(
        "tenant id {0:?} is not 1 to {MAX_TENANT_ID_LEN} of a-z, 0-9, `-`, `_` starting with a \
         letter or digit"
    )]
    Tenant(String),
    #[error("agent id {0:?} is not a NATS user public key (`U...`, 56 characters)")]
    Agent(String),
}

/// A client tenant of the MSP: `acme`, `globex-eu`. Lower case only, because NATS subjects are
/// case-sensitive and `Acme` beside `acme` would be two tenants that a human reads as one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    pub fn new(id: impl Into<String>) -> Result<TenantId, InvalidId> {
        let id = id.into();
        let mut chars = id.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let rest_ok =
            chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if first_ok && rest_ok && id.len() <= MAX_TENANT_ID_LEN {
            Ok(TenantId(id))
        } else {
            Err(InvalidId::Tenant(id))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = InvalidId;
    fn try_from(id: String) -> Result<TenantId, InvalidId> {
        TenantId::new(id)
    }
}

impl From<TenantId> for String {
    fn from(id: TenantId) -> String {
        id.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An agent: the NATS user public key it generated for itself (`U` + 55 base32 characters).
///
/// The agent's id *is* its public key, as a wasmCloud host's id is its nkey: the server fills
/// the agent's subjects into its permissions from the key the connection proved it holds
/// (`{{subject()}}`), so a credential can only ever name the subjects of the key it was issued
/// to. A controller-chosen name would be filled in from the JWT's `name` instead, which the server
/// does not check for wildcards, and anyone holding a tenant's signing key could mint a JWT named
/// after another agent. A new key (re-enrollment) is a new agent; the controller links the two
/// records if it wants to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AgentId(String);

impl AgentId {
    /// Checked as an encoding: 56 base32 characters (none of them a `.`, `*` or `>`), the user
    /// prefix, a valid checksum. Not as a curve point: decompressing one costs tens of
    /// microseconds, and an id is parsed from every result, heartbeat and stored row (a
    /// thousand-agent run view parsed a thousand); a key that is no point cannot sign, so it
    /// never passes enrollment, whose signature check decompresses it.
    pub fn new(public_key: impl Into<String>) -> Result<AgentId, InvalidId> {
        let key = public_key.into();
        match nkeys::from_public_key(&key) {
            Ok((prefix, _)) if KeyPairType::from(prefix) == KeyPairType::User => Ok(AgentId(key)),
            _ => Err(InvalidId::Agent(key)),
        }
    }

    /// The id of a key known to be a user key (one this crate generated or checked).
    pub(crate) fn of_user_key(key: &KeyPair) -> AgentId {
        debug_assert_eq!(key.key_pair_type(), KeyPairType::User);
        AgentId(key.public_key())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AgentId {
    type Error = InvalidId;
    fn try_from(id: String) -> Result<AgentId, InvalidId> {
        AgentId::new(id)
    }
}

impl From<AgentId> for String {
    fn from(id: AgentId) -> String {
        id.0
    }
}

impl fmt::Display for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_that_could_widen_a_subject_are_refused() {
        for good in ["acme", "globex-eu", "a", "0day_corp"] {
            assert!(TenantId::new(good).is_ok(), "{good}");
        }
        let long = "a".repeat(MAX_TENANT_ID_LEN + 1);
        for bad in [
            "", "Acme", "ac.me", "*", ">", "acme.>", "ac me", "-acme", "_acme", "acmé", &long,
        ] {
            assert_eq!(
                TenantId::new(bad),
                Err(InvalidId::Tenant(bad.to_string())),
                "{bad}"
            );
        }
    }

    #[test]
    fn agent_ids_are_user_public_keys_only() {
        let user = KeyPair::new_user();
        assert!(AgentId::new(user.public_key()).is_ok());
        let account = KeyPair::new_account();
        assert!(AgentId::new(account.public_key()).is_err());
        for bad in ["", "*", "UABC", "U.>"] {
            assert!(AgentId::new(bad).is_err(), "{bad}");
        }
        // A seed is not an id (and must never travel as one).
        assert!(AgentId::new(user.seed().expect("seed")).is_err());
        // One character changed: the checksum no longer holds.
        let key = user.public_key();
        let last = if key.ends_with('A') { "B" } else { "A" };
        let altered = format!("{}{last}", &key[..key.len() - 1]);
        assert!(AgentId::new(altered).is_err());
        let parsed: Result<AgentId, _> = serde_json::from_str("\"fleet.>\"");
        assert!(parsed.is_err());
    }
}
