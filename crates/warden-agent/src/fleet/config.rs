//! `[fleet]` of the agent config: where the fleet's NATS servers are, which tenant the agent
//! belongs to, its credentials file, its tags and how often it says it is alive. Absent, the
//! agent has no fleet link at all.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use warden_fleet_identity::TenantId;
use warden_fleet_wire::heartbeat::{
    MAX_HEARTBEAT_INTERVAL_MS, MAX_TAG_KEY_LEN, MAX_TAG_VALUE_LEN, MAX_TAGS,
    MIN_HEARTBEAT_INTERVAL_MS,
};

/// Servers listed at most: a cluster has 3 or 5 nodes; the client tries each.
pub const MAX_FLEET_URLS: usize = 16;
/// Entries the outbox holds before it drops its oldest *events* (results are never dropped):
/// at one event a minute, a week offline is about 10,000; each entry is at most 64 KiB.
pub const DEFAULT_OUTBOX_CAP: usize = 10_000;

/// `[fleet]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FleetConfig {
    /// `nats://host:port` or `tls://host:port` (TLS required); the client tries each.
    pub urls: Vec<String>,
    /// The tenant this agent was enrolled into.
    pub tenant: TenantId,
    /// The `.creds` file `warden enroll` wrote (relative to the config file's directory). It
    /// holds the agent's seed: refused if group or others may read it.
    pub credentials: PathBuf,
    /// Inventory tags sent in every heartbeat (`role = "db"`), what targets select on.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default = "default_heartbeat_interval_secs")]
    pub heartbeat_interval_secs: u64,
    /// A PEM CA bundle to verify the servers with; setting it requires TLS on every URL.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// See [`DEFAULT_OUTBOX_CAP`].
    #[serde(default = "default_outbox_cap")]
    pub outbox_cap: usize,
    /// `[fleet.enroll]`: enroll at the first start, when the credentials file does not exist.
    #[serde(default)]
    pub enroll: Option<EnrollConfig>,
}

/// `[fleet.enroll]`: how `warden serve` enrolls by itself (what `warden enroll` does by hand).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EnrollConfig {
    /// The controller's gRPC address, `http://host:port` or `https://host:port`.
    pub controller: String,
    /// A file holding the single-use enrollment token (relative to the config's directory).
    pub token_file: PathBuf,
    /// A PEM CA to verify an `https://` controller with.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

/// 15 s: the controller calls an agent overdue after a few missed intervals, so an agent that
/// died shows within a minute; 10,000 agents at 15 s are about 670 small messages a second.
fn default_heartbeat_interval_secs() -> u64 {
    15
}

fn default_outbox_cap() -> usize {
    DEFAULT_OUTBOX_CAP
}

impl FleetConfig {
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_secs(self.heartbeat_interval_secs)
    }

    /// TLS is on when any URL says `tls://` or a CA file is given.
    pub fn tls(&self) -> bool {
        self.ca_file.is_some() || self.urls.iter().any(|u| u.starts_with("tls://"))
    }

    /// Resolve relative paths against the config file's directory.
    pub fn resolve(&mut self, base: &Path) {
        if self.credentials.is_relative() {
            self.credentials = base.join(&self.credentials);
        }
        if let Some(ca) = &self.ca_file
            && ca.is_relative()
        {
            self.ca_file = Some(base.join(ca));
        }
        if let Some(enroll) = &mut self.enroll {
            if enroll.token_file.is_relative() {
                enroll.token_file = base.join(&enroll.token_file);
            }
            if let Some(ca) = &enroll.ca_file
                && ca.is_relative()
            {
                enroll.ca_file = Some(base.join(ca));
            }
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.urls.is_empty() || self.urls.len() > MAX_FLEET_URLS {
            return Err(format!(
                "fleet.urls must list 1 to {MAX_FLEET_URLS} servers"
            ));
        }
        for url in &self.urls {
            let ok = ["nats://", "tls://"].iter().any(|scheme| {
                url.strip_prefix(scheme)
                    .is_some_and(|rest| !rest.is_empty())
            });
            if !ok {
                return Err(format!(
                    "fleet.urls: {url:?} is not nats://host:port or tls://host:port"
                ));
            }
        }
        let interval_ms = i64::try_from(self.heartbeat_interval_secs)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000);
        if !(MIN_HEARTBEAT_INTERVAL_MS..=MAX_HEARTBEAT_INTERVAL_MS).contains(&interval_ms) {
            return Err(format!(
                "fleet.heartbeat-interval-secs must be within {} ..= {}",
                MIN_HEARTBEAT_INTERVAL_MS / 1000,
                MAX_HEARTBEAT_INTERVAL_MS / 1000
            ));
        }
        if self.tags.len() > MAX_TAGS {
            return Err(format!("fleet.tags: at most {MAX_TAGS} tags"));
        }
        for (key, value) in &self.tags {
            let key_ok = !key.is_empty()
                && key.len() <= MAX_TAG_KEY_LEN
                && key.starts_with(|c: char| c.is_ascii_alphanumeric())
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !key_ok {
                return Err(format!(
                    "fleet.tags: {key:?} is not 1 to {MAX_TAG_KEY_LEN} of a-z A-Z 0-9 . _ -"
                ));
            }
            if value.len() > MAX_TAG_VALUE_LEN || value.chars().any(char::is_control) {
                return Err(format!(
                    "fleet.tags.{key}: at most {MAX_TAG_VALUE_LEN} bytes, one line"
                ));
            }
        }
        if let Some(enroll) = &self.enroll
            && !["http://", "https://"]
                .iter()
                .any(|scheme| enroll.controller.starts_with(scheme))
        {
            return Err(format!(
                "fleet.enroll.controller: {:?} is not http://host:port or https://host:port",
                enroll.controller
            ));
        }
        if self.outbox_cap == 0 {
            return Err("fleet.outbox-cap must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FleetConfig, String> {
        let config: FleetConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn a_minimal_fleet_section_parses_with_defaults() {
        let c = parse(
            "urls = [\"nats://127.0.0.1:4222\"]\ntenant = \"acme\"\ncredentials = \"fleet.creds\"\n",
        )
        .expect("valid");
        assert_eq!(c.heartbeat_interval(), Duration::from_secs(15));
        assert_eq!(c.outbox_cap, DEFAULT_OUTBOX_CAP);
        assert!(!c.tls());
        let mut c = c;
        c.resolve(Path::new("/etc/warden"));
        assert_eq!(c.credentials, Path::new("/etc/warden/fleet.creds"));
    }

    #[test]
    fn tls_urls_or_a_ca_file_turn_tls_on() {
        let c =
            parse("urls = [\"tls://nats.example:4222\"]\ntenant = \"acme\"\ncredentials = \"c\"\n")
                .expect("valid");
        assert!(c.tls());
        let c = parse(
            "urls = [\"nats://n:4222\"]\ntenant = \"acme\"\ncredentials = \"c\"\nca-file = \"ca.pem\"\n",
        )
        .expect("valid");
        assert!(c.tls());
    }

    #[test]
    fn bad_urls_tenants_intervals_and_tags_are_refused() {
        let base = "tenant = \"acme\"\ncredentials = \"c\"\n";
        for (text, expected) in [
            (format!("urls = []\n{base}"), "1 to"),
            (format!("urls = [\"http://x:4222\"]\n{base}"), "not nats://"),
            (
                "urls = [\"nats://x:1\"]\ntenant = \"Acme Corp\"\ncredentials = \"c\"\n"
                    .to_string(),
                "tenant",
            ),
            (
                format!("urls = [\"nats://x:1\"]\n{base}heartbeat-interval-secs = 0\n"),
                "heartbeat-interval-secs",
            ),
            (
                format!("urls = [\"nats://x:1\"]\n{base}heartbeat-interval-secs = 3600\n"),
                "heartbeat-interval-secs",
            ),
            (
                format!("urls = [\"nats://x:1\"]\n{base}[tags]\n\"a b\" = \"x\"\n"),
                "fleet.tags",
            ),
            (
                format!("urls = [\"nats://x:1\"]\n{base}token = \"x\"\n"),
                "unknown field",
            ),
            (
                format!(
                    "urls = [\"nats://x:1\"]\n{base}[enroll]\ncontroller = \"x:1\"\ntoken-file = \"t\"\n"
                ),
                "fleet.enroll.controller",
            ),
        ] {
            let err = parse(&text).expect_err(&text);
            assert!(err.contains(expected), "{text}\n=> {err}");
        }
    }
}
