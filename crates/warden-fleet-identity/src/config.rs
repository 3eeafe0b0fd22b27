//! The nats-server configuration that makes a server trust this fleet's operator: operator mode
//! with the *full* account resolver, preloaded with every account JWT.
//!
//! Why the full resolver and not the MEMORY one: a MEMORY resolver knows only the preload in its
//! config file, so a revocation would need a rewritten config and a reload on every server
//! (Tactical RMM's approach). The full resolver takes signed account JWTs pushed at runtime on
//! `$SYS.REQ.CLAIMS.UPDATE` by a system-account user, applies them at once (closing revoked
//! users' connections), stores them in its directory so a restarted server keeps them, and in
//! a cluster the nodes exchange them (a node down during a push catches up within
//! [`RESOLVER_SYNC_INTERVAL`]). A preloaded JWT replaces a stored one only if it was issued
//! later, so a restart on an old config file does not undo a pushed revocation.
//!
//! The text is a fragment for the top level of a server config: the rest (listen ports,
//! JetStream, cluster) is the deployment's, or `warden-natstest`'s in tests.

use crate::authority::{AuthorityError, FleetAuthority};
use crate::revocation::DenyList;

/// How often cluster nodes compare their account JWT stores and fetch what they lack. Pushes
/// reach every node at once; this only bounds how long a node that missed one stays behind.
pub const RESOLVER_SYNC_INTERVAL: &str = "2m";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "resolver directory {0:?} cannot be written into a nats-server config (a quote, a \
         backslash or a control character)"
    )]
    UnquotableDir(String),
    #[error(transparent)]
    Authority(#[from] AuthorityError),
}

impl FleetAuthority {
    /// The operator-mode config fragment, preloaded with every account JWT as of `now`
    /// (revocations from `deny`). `resolver_dir` is where the server stores account JWTs; a
    /// relative path is relative to the server's working directory.
    pub fn server_config(
        &self,
        deny: &DenyList,
        resolver_dir: &str,
        now: i64,
    ) -> Result<String, ConfigError> {
        if resolver_dir.is_empty()
            || resolver_dir
                .chars()
                .any(|c| c == '"' || c == '\\' || c.is_control())
        {
            return Err(ConfigError::UnquotableDir(resolver_dir.to_string()));
        }
        let operator = self.operator_jwt(now)?;
        let preload: String = self
            .account_jwts(deny, now)?
            .iter()
            .map(|a| format!("  {}: \"{}\"\n", a.account, a.jwt))
            .collect();
        // JWTs and public keys are base64url / base32: nothing in them needs quoting.
        Ok(format!(
            "# Operator mode for the warden fleet (written by warden-fleet-identity).\n\
             operator: \"{operator}\"\n\
             system_account: \"{system}\"\n\
             resolver: {{\n  \
               type: full\n  \
               dir: \"{resolver_dir}\"\n  \
               allow_delete: false\n  \
               interval: \"{RESOLVER_SYNC_INTERVAL}\"\n\
             }}\n\
             resolver_preload: {{\n{preload}}}\n",
            system = self.system_account(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TenantId;

    #[test]
    fn the_config_preloads_every_account() {
        let mut authority = FleetAuthority::generate();
        let acme = TenantId::new("acme").expect("tenant");
        authority.add_tenant(&acme).expect("add");
        let text = authority
            .server_config(&DenyList::new(), "jwt", 1_000)
            .expect("config");
        for account in [
            authority.system_account(),
            authority.fleet_account(),
            authority.tenant_account(&acme).expect("acme"),
        ] {
            assert!(text.contains(&format!("  {account}: \"eyJ")), "{text}");
        }
        assert!(text.contains("type: full"), "{text}");
        assert!(matches!(
            authority.server_config(&DenyList::new(), "a\"b", 0),
            Err(ConfigError::UnquotableDir(_))
        ));
    }
}
