//! Who may call a warden API: bearer tokens stored only as SHA-256 hashes, each with a role
//! (viewer < approver < operator < admin) and a scope (every tenant, or one). Pure: the gRPC adapters
//! (the agent's, the controller's) read the `authorization` header, call [`Tokens::identify`],
//! compare the method's role, and audit the decision.
//!
//! Both the agent's API and the controller's use it, so neither depends on the other. The
//! [`Scope`] matters to the controller only (an agent serves one machine), because in a co-managed client the client's own IT staff must see and act on
//! their tenant only, while the MSP's NOC sees all.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a caller may do. For reading and acting, each role may do everything the roles below
/// it may (`role >= Role::Operator` acts). Approving a four-eyes request is the one exception:
/// it is [`Role::may_approve`], which the controller's `[approvals] approvers` setting can
/// narrow to the approver role alone, so it is not implied by the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Read.
    Viewer,
    /// Read, and approve or deny another's four-eyes request; never act by itself (no
    /// dispatch, publish or rollout), so an MSP can name who approves apart from who acts.
    Approver,
    /// Also act (trigger runs, dispatch to agents).
    Operator,
    /// Also change who and what is trusted (plugins, enrollment, revocation).
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Approver => "approver",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may approve (or deny) a four-eyes request under `approvers`.
    pub fn may_approve(self, approvers: Approvers) -> bool {
        match approvers {
            Approvers::Operators => self >= Role::Approver,
            Approvers::ApproversOnly => self == Role::Approver,
        }
    }
}

/// Who approves four-eyes requests (the controller's `[approvals] approvers`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Approvers {
    /// Approvers, operators and admins: what approvals did before the approver role existed.
    #[default]
    Operators,
    /// The approver role only: those who act (operators, admins) cannot also approve, so the
    /// second pair of eyes is always someone named for it.
    ApproversOnly,
}

impl Approvers {
    pub fn name(self) -> &'static str {
        match self {
            Approvers::Operators => "operators",
            Approvers::ApproversOnly => "approvers-only",
        }
    }
}

/// Which tenants a caller's role applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// The MSP's own staff: every tenant.
    AllTenants,
    /// A client's staff: this tenant only.
    Tenant(String),
}

impl Scope {
    /// Whether the scope covers `tenant`.
    pub fn covers(&self, tenant: &str) -> bool {
        match self {
            Scope::AllTenants => true,
            Scope::Tenant(own) => own == tenant,
        }
    }

    /// The one tenant a scoped caller is confined to; `None` for every tenant.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Scope::AllTenants => None,
            Scope::Tenant(t) => Some(t),
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    pub scope: Scope,
}

/// One configured token: its hash, never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    pub name: String,
    pub role: Role,
    /// Hex SHA-256 of the token ([`token_hash`]).
    pub sha256: String,
    /// Confine the token to one tenant; absent: every tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token {name:?}: sha256 is not 64 hex digits")]
    BadHash { name: String },
    #[error("token name {0:?} is empty or holds control characters")]
    BadName(String),
    #[error("two tokens are named {0:?}: audit records name the caller, so names must be unique")]
    DuplicateName(String),
    #[error("token {0:?} has the hash of another token: one token would act under two names")]
    DuplicateHash(String),
}

/// Hex SHA-256 of a token, as configured.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token (256 bits), printable.
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("wdn_{}", hex::encode(bytes)))
}

/// The configured tokens, checked once.
#[derive(Clone)]
pub struct Tokens {
    entries: Vec<([u8; 32], Caller)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("tokens", &self.entries.len())
            .finish()
    }
}

fn eq_constant_time(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Tokens {
    pub fn new(entries: &[TokenEntry]) -> Result<Tokens, TokenError> {
        let mut out: Vec<([u8; 32], Caller)> = Vec::with_capacity(entries.len());
        for e in entries {
            if e.name.is_empty() || e.name.chars().any(char::is_control) {
                return Err(TokenError::BadName(e.name.clone()));
            }
            if out.iter().any(|(_, c)| c.name == e.name) {
                return Err(TokenError::DuplicateName(e.name.clone()));
            }
            let mut hash = [0u8; 32];
            hex::decode_to_slice(e.sha256.to_ascii_lowercase(), &mut hash).map_err(|_| {
                TokenError::BadHash {
                    name: e.name.clone(),
                }
            })?;
            if out.iter().any(|(h, _)| *h == hash) {
                return Err(TokenError::DuplicateHash(e.name.clone()));
            }
            out.push((
                hash,
                Caller {
                    name: e.name.clone(),
                    role: e.role,
                    scope: e.tenant.clone().map_or(Scope::AllTenants, Scope::Tenant),
                },
            ));
        }
        Ok(Tokens { entries: out })
    }

    /// No token: every call is refused.
    pub fn none() -> Tokens {
        Tokens {
            entries: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The caller an `authorization` header value (`Bearer <token>`) names, if any.
    pub fn identify(&self, authorization: Option<&str>) -> Option<Caller> {
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Every configured hash is compared, so timing does not tell which one was close.
        self.entries.iter().fold(None, |found, (hash, caller)| {
            if eq_constant_time(hash, &digest) {
                Some(caller.clone())
            } else {
                found
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, role: Role, token: &str, tenant: Option<&str>) -> TokenEntry {
        TokenEntry {
            name: name.into(),
            role,
            sha256: token_hash(token),
            tenant: tenant.map(str::to_string),
        }
    }

    #[test]
    fn a_token_is_known_by_its_hash_with_its_role_and_scope() {
        let tokens = Tokens::new(&[
            entry("noc", Role::Operator, "tok-noc", None),
            entry("acme-it", Role::Viewer, "tok-acme", Some("acme")),
        ])
        .expect("tokens");
        let noc = tokens.identify(Some("Bearer tok-noc")).expect("noc");
        assert_eq!((noc.role, &noc.scope), (Role::Operator, &Scope::AllTenants));
        let acme = tokens.identify(Some("Bearer tok-acme")).expect("acme");
        assert!(acme.scope.covers("acme") && !acme.scope.covers("globex"));
        assert_eq!(acme.scope.tenant(), Some("acme"));
        for bad in [
            None,
            Some("tok-noc"),
            Some("Bearer "),
            Some("Bearer tok-nope"),
        ] {
            assert_eq!(tokens.identify(bad), None, "{bad:?}");
        }
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
    }

    #[test]
    fn an_approver_reads_and_approves_but_does_not_act() {
        assert!(Role::Approver >= Role::Viewer && Role::Approver < Role::Operator);
        let json = r#"{"name":"cab","role":"approver","sha256":"00"}"#;
        let e: TokenEntry = serde_json::from_str(json).expect("an approver entry");
        assert_eq!((e.role, e.role.name()), (Role::Approver, "approver"));
        let who = |approvers| {
            [Role::Viewer, Role::Approver, Role::Operator, Role::Admin]
                .into_iter()
                .filter(|r| r.may_approve(approvers))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            who(Approvers::Operators),
            [Role::Approver, Role::Operator, Role::Admin]
        );
        assert_eq!(who(Approvers::ApproversOnly), [Role::Approver]);
        assert_eq!(Approvers::default(), Approvers::Operators);
    }

    #[test]
    fn bad_entries_are_refused() {
        let mut e = entry("x", Role::Admin, "t", None);
        e.sha256 = "abc".into();
        assert!(matches!(Tokens::new(&[e]), Err(TokenError::BadHash { .. })));
        let dup = [
            entry("x", Role::Admin, "t", None),
            entry("x", Role::Viewer, "u", None),
        ];
        assert!(matches!(
            Tokens::new(&dup),
            Err(TokenError::DuplicateName(_))
        ));
        let same = [
            entry("x", Role::Admin, "t", None),
            entry("y", Role::Viewer, "t", None),
        ];
        assert!(matches!(
            Tokens::new(&same),
            Err(TokenError::DuplicateHash(_))
        ));
        let json = r#"{"name":"a","role":"viewer","sha256":"00","extra":1}"#;
        assert!(serde_json::from_str::<TokenEntry>(json).is_err());
        let token = new_token().expect("random");
        assert!(token.starts_with("wdn_") && token.len() == 68);
    }
}
