//! The per-tenant mapping of a connector's config: `tenants` maps a tenant (client) name to
//! where its tickets go (board, queue, priority, ...), with an optional `default` entry for
//! tenants not named. A tenant with neither is a `bad-config` error naming it.

use std::collections::BTreeMap;
use warden_sdk::PluginError;

/// The entry of `tenant`, else the `default` entry.
pub fn select<'a, T>(tenants: &'a BTreeMap<String, T>, tenant: &str) -> Result<&'a T, PluginError> {
    tenants
        .get(tenant)
        .or_else(|| tenants.get("default"))
        .ok_or_else(|| {
            PluginError::bad_config(format!(
                "no `tenants.{tenant}` and no `tenants.default` entry: say where this tenant's tickets go"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::select;
    use std::collections::BTreeMap;

    #[test]
    fn a_named_tenant_wins_over_the_default_and_neither_is_an_error() {
        let mut t = BTreeMap::new();
        t.insert("default".to_string(), 1);
        t.insert("acme".to_string(), 2);
        assert_eq!(select(&t, "acme").ok(), Some(&2));
        assert_eq!(select(&t, "other").ok(), Some(&1));
        t.remove("default");
        let err = select(&t, "other").expect_err("no entry");
        assert_eq!(err.code, "bad-config");
        assert!(err.message.contains("tenants.other"), "{}", err.message);
    }
}
