//! The controller's signing authority: every key of the fleet's NATS trust chain, and the JWTs
//! signed with them.
//!
//! ```text
//! operator (identity key kept for the operator JWT; a signing key signs the accounts)
//! ├── SYS      system account: the controller's user pushes account JWT updates
//! ├── fleet    the controller's account: JetStream (results stream, desired-state KV); exports
//! │            commands and announcements to the tenants, imports their results, heartbeats,
//! │            events and Direct-Gets as services
//! └── <tenant> one account per tenant, no JetStream; imports its own slice of the fleet's
//!              subjects; one *scoped* signing key whose template is the agent permissions
//!              (`subjects::agent_template`), so agent JWTs carry no permissions of their own
//! ```
//!
//! The operator JWT says `strict_signing_key_usage`: accounts must be signed by the operator's
//! signing key and users by an account signing key, never by an identity key, so identity keys
//! could be kept offline and signing keys rotated.
//!
//! [`FleetSecrets`] holds the seeds, for the controller to store (as secrets: anyone with them can
//! mint any credential of the fleet).

use std::collections::BTreeMap;
use std::fmt;

use nkeys::{KeyPair, KeyPairType};
use serde::{Deserialize, Serialize};

use crate::creds::Credentials;
use crate::ids::{AgentId, TenantId};
use crate::jwt::{
    self, Account, AccountLimits, Claims, Export, ExportType, Import, JwtError, Operator,
    SigningKey, User, UserPermissionLimits, UserScope,
};
use crate::revocation::DenyList;
use crate::subjects::{self, Flow};
use crate::{AGENT_JWT_LIFETIME, CONTROLLER_JWT_LIFETIME};

/// Name of the operator in its JWT.
const OPERATOR_NAME: &str = "warden";
/// Names of the two fixed accounts.
const SYSTEM_ACCOUNT_NAME: &str = "SYS";
const FLEET_ACCOUNT_NAME: &str = "fleet";
/// Role of the tenant accounts' scoped signing key.
const AGENT_ROLE: &str = "agent";
/// Longest display name of an agent in its JWT (informational only: permissions use its key).
pub const MAX_AGENT_NAME_LEN: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    #[error("tenant {0} is not known to this controller")]
    UnknownTenant(TenantId),
    #[error("tenant {0} exists already")]
    TenantExists(TenantId),
    #[error("agent {agent} was revoked (at {at}): no credentials are issued for it")]
    Revoked { agent: AgentId, at: i64 },
    #[error(
        "agent name {0:?} is empty, longer than {MAX_AGENT_NAME_LEN} bytes or holds control characters"
    )]
    InvalidName(String),
    #[error("the {which} seed is not a valid {expected:?} nkey seed")]
    Seed {
        which: String,
        expected: KeyPairType,
    },
    #[error("nkey operation failed: {0}")]
    Key(#[source] nkeys::error::Error),
    #[error(transparent)]
    Jwt(#[from] JwtError),
}

/// An nkey seed (`S...`). Secret: `Debug` does not show it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seed(String);

impl Seed {
    pub(crate) fn of(key: &KeyPair) -> Result<Seed, AuthorityError> {
        key.seed().map(Seed).map_err(AuthorityError::Key)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    fn key(&self, which: &str, expected: KeyPairType) -> Result<KeyPair, AuthorityError> {
        match KeyPair::from_seed(&self.0) {
            Ok(kp) if kp.key_pair_type() == expected => Ok(kp),
            _ => Err(AuthorityError::Seed {
                which: which.to_string(),
                expected,
            }),
        }
    }
}

impl fmt::Debug for Seed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Seed(<secret>)")
    }
}

/// The seeds of one account: its identity key and its (one) signing key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSecrets {
    pub account: Seed,
    pub signing: Seed,
}

/// Everything [`FleetAuthority`] needs to be rebuilt after a controller restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetSecrets {
    pub operator: Seed,
    pub operator_signing: Seed,
    pub system: AccountSecrets,
    pub fleet: AccountSecrets,
    /// Signs enrollment tokens. A service-type key (`V...`), which no NATS server accepts as a
    /// signer of anything: an enrollment token can never pass for a NATS credential.
    pub enrollment: Seed,
    pub tenants: BTreeMap<TenantId, AccountSecrets>,
}

struct AccountKeys {
    account: KeyPair,
    signing: KeyPair,
}

impl AccountKeys {
    fn generate() -> AccountKeys {
        AccountKeys {
            account: KeyPair::new_account(),
            signing: KeyPair::new_account(),
        }
    }

    fn from_secrets(which: &str, s: &AccountSecrets) -> Result<AccountKeys, AuthorityError> {
        Ok(AccountKeys {
            account: s
                .account
                .key(&format!("{which} account"), KeyPairType::Account)?,
            signing: s
                .signing
                .key(&format!("{which} signing"), KeyPairType::Account)?,
        })
    }

    fn secrets(&self) -> Result<AccountSecrets, AuthorityError> {
        Ok(AccountSecrets {
            account: Seed::of(&self.account)?,
            signing: Seed::of(&self.signing)?,
        })
    }
}

/// An account JWT, keyed by the account's public key (as a resolver stores it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountJwt {
    pub account: String,
    pub jwt: String,
}

/// A user JWT minted for an agent's own key. The agent joins it to its seed
/// ([`crate::AgentKey::credentials`]); the seed never leaves the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentJwt {
    pub tenant: TenantId,
    pub agent: AgentId,
    pub jwt: String,
    pub issued_at: i64,
    pub expires_at: i64,
}

impl AgentJwt {
    /// Whether the agent should ask for a new JWT: past half its lifetime, so that an agent
    /// online at least once in half a lifetime never lapses.
    pub fn needs_renewal(&self, now: i64) -> bool {
        now >= self.issued_at + (self.expires_at - self.issued_at) / 2
    }
}

/// All the fleet's keys; signs the operator, account and user JWTs and the enrollment tokens.
pub struct FleetAuthority {
    operator: KeyPair,
    operator_signing: KeyPair,
    system: AccountKeys,
    fleet: AccountKeys,
    pub(crate) enrollment: KeyPair,
    tenants: BTreeMap<TenantId, AccountKeys>,
}

impl fmt::Debug for FleetAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetAuthority")
            .field("operator", &self.operator.public_key())
            .field("tenants", &self.tenants.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl FleetAuthority {
    /// New keys for everything, and no tenant yet.
    pub fn generate() -> FleetAuthority {
        FleetAuthority {
            operator: KeyPair::new_operator(),
            operator_signing: KeyPair::new_operator(),
            system: AccountKeys::generate(),
            fleet: AccountKeys::generate(),
            enrollment: KeyPair::new_service(),
            tenants: BTreeMap::new(),
        }
    }

    pub fn from_secrets(s: &FleetSecrets) -> Result<FleetAuthority, AuthorityError> {
        let mut tenants = BTreeMap::new();
        for (tenant, secrets) in &s.tenants {
            tenants.insert(
                tenant.clone(),
                AccountKeys::from_secrets(&format!("tenant {tenant}"), secrets)?,
            );
        }
        Ok(FleetAuthority {
            operator: s.operator.key("operator", KeyPairType::Operator)?,
            operator_signing: s
                .operator_signing
                .key("operator signing", KeyPairType::Operator)?,
            system: AccountKeys::from_secrets("system", &s.system)?,
            fleet: AccountKeys::from_secrets("fleet", &s.fleet)?,
            enrollment: s.enrollment.key("enrollment", KeyPairType::Service)?,
            tenants,
        })
    }

    pub fn secrets(&self) -> Result<FleetSecrets, AuthorityError> {
        let mut tenants = BTreeMap::new();
        for (tenant, keys) in &self.tenants {
            tenants.insert(tenant.clone(), keys.secrets()?);
        }
        Ok(FleetSecrets {
            operator: Seed::of(&self.operator)?,
            operator_signing: Seed::of(&self.operator_signing)?,
            system: self.system.secrets()?,
            fleet: self.fleet.secrets()?,
            enrollment: Seed::of(&self.enrollment)?,
            tenants,
        })
    }

    /// New keys for a tenant. Its account JWT still has to reach the servers (push
    /// [`FleetAuthority::tenant_account_jwt`], or restart them with a new preload).
    pub fn add_tenant(&mut self, tenant: &TenantId) -> Result<(), AuthorityError> {
        if self.tenants.contains_key(tenant) {
            return Err(AuthorityError::TenantExists(tenant.clone()));
        }
        self.tenants.insert(tenant.clone(), AccountKeys::generate());
        Ok(())
    }

    pub fn tenants(&self) -> impl Iterator<Item = &TenantId> {
        self.tenants.keys()
    }

    pub fn has_tenant(&self, tenant: &TenantId) -> bool {
        self.tenants.contains_key(tenant)
    }

    pub fn operator_public_key(&self) -> String {
        self.operator.public_key()
    }

    pub fn system_account(&self) -> String {
        self.system.account.public_key()
    }

    pub fn fleet_account(&self) -> String {
        self.fleet.account.public_key()
    }

    pub fn tenant_account(&self, tenant: &TenantId) -> Result<String, AuthorityError> {
        Ok(self.tenant(tenant)?.account.public_key())
    }

    /// The public key enrollment tokens are signed with.
    pub fn enrollment_public_key(&self) -> String {
        self.enrollment.public_key()
    }

    fn tenant(&self, tenant: &TenantId) -> Result<&AccountKeys, AuthorityError> {
        self.tenants
            .get(tenant)
            .ok_or_else(|| AuthorityError::UnknownTenant(tenant.clone()))
    }

    /// The operator JWT the servers trust (self-signed, no expiry).
    pub fn operator_jwt(&self, now: i64) -> Result<String, AuthorityError> {
        let mut claims = Claims {
            expires: None,
            id: String::new(),
            issued_at: now,
            issuer: String::new(),
            name: OPERATOR_NAME.to_string(),
            subject: self.operator.public_key(),
            nats: Operator::new(
                vec![self.operator_signing.public_key()],
                self.system_account(),
            ),
        };
        Ok(jwt::encode(&mut claims, &self.operator)?)
    }

    fn account_claims(
        &self,
        name: &str,
        subject: String,
        nats: Account,
        now: i64,
    ) -> Claims<Account> {
        Claims {
            // Accounts do not expire: an expired account JWT disconnects all its users.
            expires: None,
            id: String::new(),
            issued_at: now,
            issuer: String::new(),
            name: name.to_string(),
            subject,
            nats,
        }
    }

    pub fn system_account_jwt(&self, now: i64) -> Result<AccountJwt, AuthorityError> {
        let mut nats = Account::new(AccountLimits::unlimited());
        nats.signing_keys = vec![SigningKey::Plain(self.system.signing.public_key())];
        let mut claims = self.account_claims(SYSTEM_ACCOUNT_NAME, self.system_account(), nats, now);
        Ok(AccountJwt {
            account: self.system_account(),
            jwt: jwt::encode(&mut claims, &self.operator_signing)?,
        })
    }

    pub fn fleet_account_jwt(&self, now: i64) -> Result<AccountJwt, AuthorityError> {
        let mut nats = Account::new(AccountLimits::unlimited().with_jetstream());
        nats.signing_keys = vec![SigningKey::Plain(self.fleet.signing.public_key())];
        // Public exports: only account JWTs this authority signs can import them, and it signs
        // each tenant an import of its own slice only.
        nats.exports = subjects::shared_subjects()
            .into_iter()
            .map(|(name, prefix, flow)| Export {
                name: name.to_string(),
                subject: format!("{prefix}.>"),
                kind: export_type(flow),
                response_type: (flow == Flow::ToFleet).then(|| "Singleton".to_string()),
            })
            .collect();
        let mut claims = self.account_claims(FLEET_ACCOUNT_NAME, self.fleet_account(), nats, now);
        Ok(AccountJwt {
            account: self.fleet_account(),
            jwt: jwt::encode(&mut claims, &self.operator_signing)?,
        })
    }

    /// The tenant's account JWT, with the revocations of `deny` that still matter at `now`.
    pub fn tenant_account_jwt(
        &self,
        tenant: &TenantId,
        deny: &DenyList,
        now: i64,
    ) -> Result<AccountJwt, AuthorityError> {
        let keys = self.tenant(tenant)?;
        let fleet = self.fleet_account();
        let mut limits = AccountLimits::unlimited();
        // A tenant account exports nothing: all its traffic goes to the fleet account.
        limits.exports = 0;
        limits.wildcards = false;
        let mut nats = Account::new(limits);
        nats.imports = subjects::shared_subjects()
            .into_iter()
            .map(|(name, prefix, flow)| Import {
                name: name.to_string(),
                subject: format!("{prefix}.{tenant}.>"),
                account: fleet.clone(),
                kind: export_type(flow),
            })
            .collect();
        nats.signing_keys = vec![SigningKey::Scoped(Box::new(UserScope {
            kind: "user_scope".to_string(),
            key: keys.signing.public_key(),
            role: AGENT_ROLE.to_string(),
            template: subjects::agent_template(tenant),
            description: format!("agents of tenant {tenant}: their own subjects only"),
        }))];
        nats.revocations = deny.account_revocations(tenant, now);
        nats.tags = vec![format!("tenant:{tenant}")];
        let mut claims = self.account_claims(tenant.as_str(), keys.account.public_key(), nats, now);
        Ok(AccountJwt {
            account: keys.account.public_key(),
            jwt: jwt::encode(&mut claims, &self.operator_signing)?,
        })
    }

    /// Every account JWT (system, fleet, each tenant), for a resolver preload.
    pub fn account_jwts(
        &self,
        deny: &DenyList,
        now: i64,
    ) -> Result<Vec<AccountJwt>, AuthorityError> {
        let mut all = vec![self.system_account_jwt(now)?, self.fleet_account_jwt(now)?];
        for tenant in self.tenants.keys() {
            all.push(self.tenant_account_jwt(tenant, deny, now)?);
        }
        Ok(all)
    }

    /// A user JWT for `agent` in `tenant`, valid [`AGENT_JWT_LIFETIME`]: at enrollment, and for
    /// each renewal. Refused for a denied agent.
    pub fn agent_jwt(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        name: &str,
        deny: &DenyList,
        now: i64,
    ) -> Result<AgentJwt, AuthorityError> {
        if let Some(revoked) = deny.get(agent) {
            return Err(AuthorityError::Revoked {
                agent: agent.clone(),
                at: revoked.at,
            });
        }
        if name.is_empty() || name.len() > MAX_AGENT_NAME_LEN || name.chars().any(char::is_control)
        {
            return Err(AuthorityError::InvalidName(name.to_string()));
        }
        let keys = self.tenant(tenant)?;
        let expires_at = now + AGENT_JWT_LIFETIME;
        // No permissions or limits: the scoped key's template supplies them (a scoped user
        // carrying any is refused by the server).
        let mut nats = User::new(UserPermissionLimits::default(), keys.account.public_key());
        nats.tags = vec![format!("tenant:{tenant}")];
        let mut claims = Claims {
            expires: Some(expires_at),
            id: String::new(),
            issued_at: now,
            issuer: String::new(),
            name: name.to_string(),
            subject: agent.to_string(),
            nats,
        };
        Ok(AgentJwt {
            tenant: tenant.clone(),
            agent: agent.clone(),
            jwt: jwt::encode(&mut claims, &keys.signing)?,
            issued_at: now,
            expires_at,
        })
    }

    /// Credentials for the controller itself: a new user key in the fleet account with every
    /// permission, valid [`CONTROLLER_JWT_LIFETIME`].
    pub fn controller_credentials(&self, now: i64) -> Result<Credentials, AuthorityError> {
        self.full_access_user(&self.fleet, "controller", now)
    }

    /// Credentials in the system account, for pushing account JWT updates
    /// ([`crate::CLAIMS_UPDATE_SUBJECT`]) and reading server events.
    pub fn system_credentials(&self, now: i64) -> Result<Credentials, AuthorityError> {
        self.full_access_user(&self.system, "controller-system", now)
    }

    fn full_access_user(
        &self,
        account: &AccountKeys,
        name: &str,
        now: i64,
    ) -> Result<Credentials, AuthorityError> {
        let user = KeyPair::new_user();
        let expires_at = now + CONTROLLER_JWT_LIFETIME;
        let mut claims = Claims {
            expires: Some(expires_at),
            id: String::new(),
            issued_at: now,
            issuer: String::new(),
            name: name.to_string(),
            subject: user.public_key(),
            nats: User::new(
                UserPermissionLimits::unlimited(),
                account.account.public_key(),
            ),
        };
        let jwt = jwt::encode(&mut claims, &account.signing)?;
        Ok(Credentials::new(jwt, Seed::of(&user)?, expires_at))
    }

    /// Revoke `agent`: record it in `deny` (persist it afterwards) and return its tenant's
    /// account JWT to push to the servers. The agent's connections close when it arrives.
    pub fn revoke(
        &self,
        deny: &mut DenyList,
        tenant: &TenantId,
        agent: &AgentId,
        reason: &str,
        now: i64,
    ) -> Result<AccountJwt, AuthorityError> {
        self.tenant(tenant)?;
        deny.revoke(tenant, agent, now, reason);
        self.tenant_account_jwt(tenant, deny, now)
    }
}

fn export_type(flow: Flow) -> ExportType {
    match flow {
        Flow::ToTenant => ExportType::Stream,
        Flow::ToFleet => ExportType::Service,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_rebuild_the_same_authority_and_wrong_key_types_are_refused() {
        let mut authority = FleetAuthority::generate();
        let acme = TenantId::new("acme").expect("tenant");
        authority.add_tenant(&acme).expect("add");
        assert!(matches!(
            authority.add_tenant(&acme),
            Err(AuthorityError::TenantExists(_))
        ));
        let secrets = authority.secrets().expect("secrets");
        assert!(!format!("{secrets:?}").contains(secrets.operator.expose()));
        let json = serde_json::to_string(&secrets).expect("json");
        let back: FleetSecrets = serde_json::from_str(&json).expect("parse");
        let rebuilt = FleetAuthority::from_secrets(&back).expect("rebuild");
        assert_eq!(
            rebuilt.operator_public_key(),
            authority.operator_public_key()
        );
        assert_eq!(
            rebuilt.tenant_account(&acme).expect("acme"),
            authority.tenant_account(&acme).expect("acme")
        );
        let mut swapped = secrets.clone();
        swapped.operator = secrets.fleet.account.clone();
        assert!(matches!(
            FleetAuthority::from_secrets(&swapped),
            Err(AuthorityError::Seed { .. })
        ));
    }

    #[test]
    fn agent_jwts_carry_no_permissions_and_are_refused_for_denied_agents() {
        let mut authority = FleetAuthority::generate();
        let acme = TenantId::new("acme").expect("tenant");
        authority.add_tenant(&acme).expect("add");
        let agent = AgentId::new(KeyPair::new_user().public_key()).expect("agent");
        let mut deny = DenyList::new();
        let minted = authority
            .agent_jwt(&acme, &agent, "host-1", &deny, 1_000)
            .expect("mint");
        let claims: Claims<User> = jwt::decode(&minted.jwt).expect("decode");
        assert_eq!(claims.nats.limits, UserPermissionLimits::default());
        assert_eq!(claims.subject, agent.as_str());
        assert_eq!(
            claims.nats.issuer_account,
            authority.tenant_account(&acme).expect("acme")
        );
        assert_eq!(claims.expires, Some(1_000 + AGENT_JWT_LIFETIME));
        assert!(!minted.needs_renewal(1_000 + AGENT_JWT_LIFETIME / 2 - 1));
        assert!(minted.needs_renewal(1_000 + AGENT_JWT_LIFETIME / 2));

        let update = authority
            .revoke(&mut deny, &acme, &agent, "test", 2_000)
            .expect("revoke");
        let account: Claims<Account> = jwt::decode(&update.jwt).expect("decode");
        assert_eq!(account.nats.revocations.get(agent.as_str()), Some(&2_000));
        assert!(matches!(
            authority.agent_jwt(&acme, &agent, "host-1", &deny, 3_000),
            Err(AuthorityError::Revoked { at: 2_000, .. })
        ));
        let globex = TenantId::new("globex").expect("tenant");
        assert!(matches!(
            authority.agent_jwt(&globex, &agent, "x", &DenyList::new(), 0),
            Err(AuthorityError::UnknownTenant(_))
        ));
        assert!(matches!(
            authority.agent_jwt(&acme, &agent, "bad\nname", &DenyList::new(), 0),
            Err(AuthorityError::InvalidName(_))
        ));
    }
}
