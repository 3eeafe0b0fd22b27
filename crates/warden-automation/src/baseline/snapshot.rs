//! The stable part of an inventory: what a baseline records and drift is measured on.
//!
//! Kept, by category (each item a key with one value):
//! - `os`: `hostname`, `family`, `name`, `version`, `arch` (the `host` and `os` fact groups):
//!   what the machine is; changes with a rename or a release upgrade.
//! - `kernel`: `kernel`, the running kernel's release: changes with a kernel update + reboot.
//! - `package`: `name` (or `name:arch` when the plugin reports the architecture) → version:
//!   installed software is the core of CM-8.
//! - `service`: `name` → its `state` fact (or `present`): an added or disabled service.
//! - `listening-port`: `protocol/address:port` (`tcp6/[::]:22`) → its `process` fact (or empty): a new listener is
//!   the classic unauthorized component.
//! - `user`: `name` → `uid=<uid> shell=<shell>` (the facts that are there): local accounts.
//!
//! Left out, because they change on their own and would raise drift nobody can act on: uptime,
//! memory and swap free, disk free, CPU load, process lists, connections, collection
//! timestamps; and the hardware figures (CPU model and cores, memory and disk totals, interface
//! addresses) that are not configuration under change control and move with DHCP or a VM
//! resize. Fact groups of other kinds are ignored, so a discovery plugin may report more.
//!
//! The canonical form is the compact JSON of the categories and items in sorted order (maps
//! keyed by category then item), prefixed by a format line; the sha256 over it names a version.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use warden_core::report::FactGroup;

/// What the hash is over, before the JSON: a new canonical form gets a new line.
const FORMAT: &str = "warden-baseline-v1\n";

/// A kind of baseline item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    Os,
    Kernel,
    Package,
    Service,
    ListeningPort,
    User,
}

impl Category {
    pub const ALL: [Category; 6] = [
        Category::Os,
        Category::Kernel,
        Category::Package,
        Category::Service,
        Category::ListeningPort,
        Category::User,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Os => "os",
            Category::Kernel => "kernel",
            Category::Package => "package",
            Category::Service => "service",
            Category::ListeningPort => "listening-port",
            Category::User => "user",
        }
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Category {
    type Err = String;

    fn from_str(text: &str) -> Result<Category, String> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == text)
            .ok_or_else(|| {
                let known: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
                format!(
                    "`{text}` is not a baseline category (one of {})",
                    known.join(", ")
                )
            })
    }
}

/// Items of one category: key → value.
pub type Items = BTreeMap<String, String>;

/// The stable inventory fields, by category. A category without items is not stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Snapshot(pub BTreeMap<Category, Items>);

/// A stored baseline's text that is not a snapshot (edited by hand, or a newer format).
#[derive(Debug, thiserror::Error)]
#[error("the stored baseline is not readable: {0}")]
pub struct UnreadableBaseline(String);

/// A fact as text: strings as they are, anything else as its JSON.
fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn fact(group: &FactGroup, name: &str) -> Option<String> {
    group.facts.get(name).map(text).filter(|t| !t.is_empty())
}

impl Snapshot {
    /// The stable fields of `groups` (a discovery plugin's facts).
    pub fn from_facts(groups: &[FactGroup]) -> Snapshot {
        let mut snap = Snapshot::default();
        for g in groups {
            match g.kind.as_str() {
                "host" => snap.put_fact(Category::Os, g, "hostname"),
                "os" => {
                    for name in ["family", "name", "version", "arch"] {
                        snap.put_fact(Category::Os, g, name);
                    }
                    snap.put_fact(Category::Kernel, g, "kernel");
                }
                "package" => {
                    if let Some(name) = fact(g, "name") {
                        let key = match fact(g, "architecture") {
                            Some(arch) => format!("{name}:{arch}"),
                            None => name,
                        };
                        snap.put(
                            Category::Package,
                            key,
                            fact(g, "version").unwrap_or_default(),
                        );
                    }
                }
                "service" => {
                    if let Some(name) = fact(g, "name") {
                        let state = fact(g, "state").unwrap_or_else(|| "present".into());
                        snap.put(Category::Service, name, state);
                    }
                }
                "listening-port" => {
                    if let Some(port) = fact(g, "port") {
                        let proto = fact(g, "protocol").unwrap_or_else(|| "tcp".into());
                        let address = fact(g, "address").unwrap_or_else(|| "*".into());
                        // An IPv6 address in brackets, as in a URL: `tcp6/[::]:22`.
                        let host = if address.contains(':') {
                            format!("[{address}]")
                        } else {
                            address
                        };
                        let key = format!("{proto}/{host}:{port}");
                        let process = fact(g, "process").unwrap_or_default();
                        snap.put(Category::ListeningPort, key, process);
                    }
                }
                "user" => {
                    if let Some(name) = fact(g, "name") {
                        let value = ["uid", "shell"]
                            .iter()
                            .filter_map(|f| fact(g, f).map(|v| format!("{f}={v}")))
                            .collect::<Vec<_>>()
                            .join(" ");
                        snap.put(Category::User, name, value);
                    }
                }
                _ => {}
            }
        }
        snap
    }

    fn put(&mut self, category: Category, key: String, value: String) {
        self.0.entry(category).or_default().insert(key, value);
    }

    fn put_fact(&mut self, category: Category, group: &FactGroup, name: &str) {
        if let Some(value) = fact(group, name) {
            self.put(category, name.to_string(), value);
        }
    }

    /// The items of `category` (empty when it has none).
    pub fn items(&self, category: Category) -> impl Iterator<Item = (&String, &String)> {
        self.0.get(&category).into_iter().flatten()
    }

    pub fn count(&self) -> usize {
        self.0.values().map(BTreeMap::len).sum()
    }

    /// The canonical JSON text (what is stored).
    pub fn canonical(&self) -> String {
        // Maps of strings always serialize.
        serde_json::to_string(&self.0).unwrap_or_default()
    }

    /// Hex sha256 over the format line and the canonical text.
    pub fn sha256(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(FORMAT.as_bytes());
        hash.update(self.canonical().as_bytes());
        format!("{:x}", hash.finalize())
    }

    /// A stored canonical text back, checked against its recorded hash: a baseline edited in
    /// the database is refused rather than compared against.
    pub fn parse(canonical: &str, sha256: &str) -> Result<Snapshot, UnreadableBaseline> {
        let snap: Snapshot =
            serde_json::from_str(canonical).map_err(|e| UnreadableBaseline(e.to_string()))?;
        if snap.sha256() != sha256 {
            return Err(UnreadableBaseline(format!(
                "its items do not hash to its recorded sha256 {sha256}"
            )));
        }
        Ok(snap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn group(kind: &str, facts: serde_json::Value) -> FactGroup {
        serde_json::from_value(json!({ "kind": kind, "facts": facts })).expect("group")
    }

    #[test]
    fn volatile_facts_are_left_out_and_stable_ones_kept() {
        let facts = [
            group("host", json!({"hostname": "web1", "uptime_secs": 100})),
            group(
                "os",
                json!({"family": "linux", "name": "Debian", "version": "12",
                               "kernel": "6.1.0-18", "arch": "x86_64"}),
            ),
            group("memory", json!({"total_bytes": 1, "available_bytes": 2})),
            group(
                "package",
                json!({"name": "bash", "version": "5.2", "architecture": "amd64"}),
            ),
            group(
                "listening-port",
                json!({"protocol": "tcp", "address": "0.0.0.0",
                                           "port": 22, "process": "sshd"}),
            ),
            group(
                "user",
                json!({"name": "ada", "uid": 1000, "shell": "/bin/bash"}),
            ),
            group(
                "service",
                json!({"name": "ssh.service", "state": "enabled"}),
            ),
        ];
        let snap = Snapshot::from_facts(&facts);
        let text = snap.canonical();
        assert!(
            !text.contains("uptime") && !text.contains("available"),
            "{text}"
        );
        assert_eq!(
            snap.items(Category::Package).collect::<Vec<_>>(),
            [(&"bash:amd64".to_string(), &"5.2".to_string())]
        );
        assert_eq!(snap.0[&Category::Kernel]["kernel"], "6.1.0-18");
        assert_eq!(snap.0[&Category::Os]["hostname"], "web1");
        assert_eq!(snap.0[&Category::ListeningPort]["tcp/0.0.0.0:22"], "sshd");
        assert_eq!(snap.0[&Category::User]["ada"], "uid=1000 shell=/bin/bash");
        assert_eq!(snap.0[&Category::Service]["ssh.service"], "enabled");
        assert_eq!(snap.count(), 10);
    }

    #[test]
    fn the_hash_does_not_depend_on_fact_order_and_changes_with_any_item() {
        let a = group("package", json!({"name": "a", "version": "1"}));
        let b = group("package", json!({"name": "b", "version": "1"}));
        let one = Snapshot::from_facts(&[a.clone(), b.clone()]);
        let other = Snapshot::from_facts(&[b, a]);
        assert_eq!(one.sha256(), other.sha256());
        let changed =
            Snapshot::from_facts(&[group("package", json!({"name": "a", "version": "2"}))]);
        assert_ne!(one.sha256(), changed.sha256());
        assert_eq!(one.sha256().len(), 64);
    }

    #[test]
    fn a_stored_baseline_is_read_back_only_when_it_matches_its_hash() {
        let snap = Snapshot::from_facts(&[group("package", json!({"name": "a", "version": "1"}))]);
        let back = Snapshot::parse(&snap.canonical(), &snap.sha256()).expect("parses");
        assert_eq!(back, snap);
        let edited = snap.canonical().replace("\"1\"", "\"2\"");
        let err = Snapshot::parse(&edited, &snap.sha256()).expect_err("edited");
        assert!(err.to_string().contains("do not hash"), "{err}");
        assert!(Snapshot::parse("{\"nope\":{}}", "x").is_err());
    }

    #[test]
    fn categories_parse_from_their_names_only() {
        assert_eq!(
            "listening-port".parse::<Category>(),
            Ok(Category::ListeningPort)
        );
        let err = "packages".parse::<Category>().expect_err("unknown");
        assert!(err.contains("one of os, kernel"), "{err}");
    }
}
