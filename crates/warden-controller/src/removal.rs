//! Removal as a desired-state change (issue 16): `warden fleet remove <item> --target ...`
//! makes "no longer held" the desired state of a plugin or a runbook on the targets. The row
//! replaces the item's desired row (so a later publish replaces the removal in turn), and the
//! agent's document lists it under `remove`; the agent removes the item through its own paths
//! (audited) and reports `removed`. Its anti-rollback marks stay: a removed plugin comes back
//! at its highest version or above, never below. A site policy is never removed (a newer one
//! replaces it).
//!
//! A removal has no artifact; its `sha256` names the request (the item and the time), so the
//! agents' reports about it are told apart from their reports about the item's bundles.

use warden_access::{Caller, Role};
use warden_fleet_wire::{POLICY_ITEM, RUNBOOK_ITEM_PREFIX};

use crate::controller::{Controller, FleetError, need};
use crate::distribution::{Artifact, Published};
use crate::store::DesiredRecord;

/// The digest that names one removal request.
fn removal_digest(item: &str, at_ms: i64) -> String {
    warden_core::sha256_hex(format!("warden.removal.v1\0{item}\0{at_ms}").as_bytes())
}

/// A removable item's name: a plugin's, or `runbook:<name>`.
fn check_item(item: &str) -> Result<(), FleetError> {
    if item == POLICY_ITEM {
        return Err(FleetError::Invalid(
            "a site policy is never removed: publish a newer one".into(),
        ));
    }
    let name = item.strip_prefix(RUNBOOK_ITEM_PREFIX).unwrap_or(item);
    warden_core::names::validate_plugin_name(name)
        .map_err(|e| FleetError::Invalid(format!("`{item}`: {e}")))
}

impl Controller {
    /// Make the removal of `item` the desired state on every agent `target` selects.
    pub async fn unpublish(
        &self,
        caller: &Caller,
        item: &str,
        target: &str,
    ) -> Result<Published, FleetError> {
        need(caller, Role::Operator)?;
        check_item(item)?;
        let (selector, targets) = self.resolve_targets(caller, target)?;
        let now = self.now();
        let sha256 = removal_digest(item, now.as_millis());
        self.audit(
            "fleet.remove",
            serde_json::json!({
                "item": item, "removal": sha256, "target": selector.to_string(),
                "agents": targets.len(), "caller": caller.name,
            }),
        )?;
        let rows: Vec<DesiredRecord> = targets
            .iter()
            .map(|a| DesiredRecord {
                agent: a.id.clone(),
                tenant: a.tenant.clone(),
                name: item.to_string(),
                version: String::new(),
                sha256: sha256.clone(),
                size: 0,
                published_at: now,
                published_by: caller.name.clone(),
                removed: true,
                maintenance: false,
            })
            .collect();
        self.store.set_desired(&rows)?;
        self.write_desired_documents(&targets).await?;
        Ok(Published {
            artifact: Artifact {
                kind: "removal".into(),
                name: item.to_string(),
                version: String::new(),
                sha256,
                size: 0,
                maintenance: false,
            },
            agents: targets.into_iter().map(|a| a.id).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugins_and_runbooks_are_removable_a_policy_is_not_and_each_request_has_its_digest() {
        assert!(check_item("disk-usage").is_ok());
        assert!(check_item("runbook:restart-spooler").is_ok());
        assert!(check_item(POLICY_ITEM).is_err());
        assert!(check_item("runbook:../x").is_err());
        assert!(check_item("").is_err());
        assert_ne!(removal_digest("a", 1), removal_digest("a", 2));
        assert_ne!(removal_digest("a", 1), removal_digest("b", 1));
        assert!(warden_fleet_wire::desired::is_sha256(&removal_digest(
            "a", 1
        )));
    }
}
