//! The agent's own configuration (`agent.toml`, beside the site policy): where the API listens,
//! who may call it, how many runs may go at once, and where named runbooks live. Validated at
//! load; anything unknown is an error.

use crate::fleet::FleetConfig;
use crate::grpc::auth::Role;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use warden_automation::monitor::config::MonitorConfig;
use warden_automation::schedule::config::{ScheduleConfig, WindowConfig};
use warden_automation::{Automation, AutomationConfig};

/// Largest agent config accepted.
pub const MAX_AGENT_CONFIG_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AgentConfig {
    pub api: ApiConfig,
    #[serde(default)]
    pub runbooks: RunbooksConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub history: HistoryConfig,
    /// `[[schedule]]`, `[[maintenance-window]]`, `[[monitor]]`: see docs/AUTOMATION.md.
    #[serde(default, rename = "schedule")]
    pub schedules: Vec<ScheduleConfig>,
    #[serde(default, rename = "maintenance-window")]
    pub windows: Vec<WindowConfig>,
    #[serde(default, rename = "monitor")]
    pub monitors: Vec<MonitorConfig>,
    /// `[fleet]`: the NATS link to the fleet's controller; absent, the agent has none.
    #[serde(default)]
    pub fleet: Option<FleetConfig>,
    /// `[tickets]`: escalations to a PSA through a ticketing plugin (docs/AUTOMATION.md).
    #[serde(default)]
    pub tickets: Option<crate::tickets::config::TicketsConfig>,
    /// `[metrics]`: the Prometheus endpoint (docs/METRICS.md); absent, none is served.
    #[serde(default)]
    pub metrics: Option<warden_metrics::MetricsConfig>,
    /// Validated automation (relative runbook paths resolved against the config's directory).
    #[serde(skip)]
    pub automation: Automation,
}

/// `[api]`: the gRPC server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ApiConfig {
    /// Address to listen on. Port 0 picks a free port (printed at start). Without `[api.tls]`
    /// only a loopback address is accepted: bearer tokens never cross a network in clear text.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// TLS (rustls): serve HTTPS with this certificate chain and key, both PEM files.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Who may call, each with a role. Only the sha256 of a token is stored here.
    #[serde(default, rename = "token")]
    pub tokens: Vec<TokenConfig>,
    /// Largest request or response message, in bytes (bundles travel in one message).
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Runbook runs at once; more wait in the queue.
    #[serde(default = "default_max_concurrent_runs")]
    pub max_concurrent_runs: usize,
    /// Runs that may wait for a slot; beyond that a trigger is refused (RESOURCE_EXHAUSTED).
    #[serde(default = "default_max_queued_runs")]
    pub max_queued_runs: usize,
    /// On SIGTERM/SIGINT, how long running steps may take to finish before they are cancelled.
    #[serde(default = "default_shutdown_grace_secs")]
    pub shutdown_grace_secs: u64,
    /// Streams (Watch, WatchEvents, Health.Watch) one token may hold open at once; one more is
    /// refused (RESOURCE_EXHAUSTED). A console watches its events and a few runs.
    #[serde(default = "default_max_streams_per_token")]
    pub max_streams_per_token: usize,
    /// Streams open at once in all; each holds a task and a 64-event buffer.
    #[serde(default = "default_max_streams")]
    pub max_streams: usize,
}

/// `[api.tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[[api.token]]`: one caller.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TokenConfig {
    /// Who holds it, for audit records, e.g. `noc-alice`.
    pub name: String,
    pub role: Role,
    /// Hex sha256 of the token (`warden token new` prints both).
    pub sha256: String,
}

impl TokenConfig {
    /// As the access rules take it: an agent's tokens cover the one machine, so no tenant.
    pub fn entry(&self) -> warden_access::TokenEntry {
        warden_access::TokenEntry {
            name: self.name.clone(),
            role: self.role,
            sha256: self.sha256.clone(),
            tenant: None,
        }
    }
}

/// `[runbooks]`: runbooks the API can trigger by name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RunbooksConfig {
    /// Directory of `<name>.toml` runbooks and `<name>.wbundle` signed runbooks (relative to
    /// the config file's directory).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Accept only signed runbooks, from the directory too (inline runbooks must always be signed).
    #[serde(default)]
    pub signed_only: bool,
}

/// `[audit]`: signed checkpoints, rotation and retention of the audit log (see
/// docs/SECURITY.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AuditConfig {
    /// A secret key (`warden key generate`) that signs `audit.checkpoint` records, relative to
    /// the config file's directory. Refused inside the data directory, or readable by others.
    #[serde(default)]
    pub checkpoint_key: Option<PathBuf>,
    /// How often a checkpoint is appended while records are (and one at start and at stop).
    #[serde(default = "default_checkpoint_interval_secs")]
    pub checkpoint_interval_secs: u64,
    /// The live file `audit/audit.log` is sealed into `audit/sealed/` once it is this long.
    #[serde(default = "default_rotate_bytes")]
    pub rotate_bytes: u64,
    /// Sealed files whose last record is older than this are removed, at start and daily, after
    /// an `audit.pruned` record names them. At least 1: a zero would read as either "keep
    /// nothing" or "keep forever", and neither should be one typo away; to keep the log
    /// forever, set a retention longer than the machine will live (e.g. 36500).
    #[serde(default = "default_audit_retention_days")]
    pub retention_days: u32,
}

impl Default for AuditConfig {
    fn default() -> AuditConfig {
        AuditConfig {
            checkpoint_key: None,
            checkpoint_interval_secs: default_checkpoint_interval_secs(),
            rotate_bytes: default_rotate_bytes(),
            retention_days: default_audit_retention_days(),
        }
    }
}

impl AuditConfig {
    pub fn checkpoint_interval(&self) -> Duration {
        Duration::from_secs(self.checkpoint_interval_secs)
    }

    pub fn retention(&self) -> Duration {
        Duration::from_secs(u64::from(self.retention_days) * 24 * 60 * 60)
    }
}

/// Smallest `[audit] rotate-bytes`: below a MiB the sealed files would number in the thousands
/// a year, each rotation a few fsyncs, for nothing a smaller file buys.
pub const MIN_AUDIT_ROTATE_BYTES: u64 = 1 << 20;

fn default_rotate_bytes() -> u64 {
    warden_audit::files::DEFAULT_ROTATE_BYTES
}

/// Six years: HIPAA (45 CFR 164.316(b)(2)) keeps security documentation that long, and an MSP's
/// clients in health care will ask for that; elsewhere it is a generous default.
fn default_audit_retention_days() -> u32 {
    6 * 365
}

/// `[history]`: how long the run history (`history.db`) keeps finished runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HistoryConfig {
    /// Finished runs that started longer ago than this are deleted with their steps, at start and
    /// hourly. The audit log is the durable record and is kept on its own terms.
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
}

impl Default for HistoryConfig {
    fn default() -> HistoryConfig {
        HistoryConfig {
            retention_days: default_retention_days(),
        }
    }
}

impl HistoryConfig {
    pub fn retention(&self) -> Duration {
        Duration::from_secs(u64::from(self.retention_days) * 24 * 60 * 60)
    }
}

/// A quarter and some: a month's and a quarter's client reports can still be drawn from the
/// history, and two monitors' worth of runs (about 25 MB a day) stay a few GB at most.
fn default_retention_days() -> u32 {
    100
}

/// A minute: the records after the last checkpoint are protected only by an external head, so
/// the window stays short; one fsync'd record a minute is nothing to the log.
fn default_checkpoint_interval_secs() -> u64 {
    60
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7355))
}
fn default_max_message_bytes() -> usize {
    16 << 20
}
fn default_max_concurrent_runs() -> usize {
    2
}
fn default_max_queued_runs() -> usize {
    32
}
fn default_shutdown_grace_secs() -> u64 {
    30
}
fn default_max_streams_per_token() -> usize {
    16
}
fn default_max_streams() -> usize {
    128
}

/// The sha256 of tokens whose plaintext is published, with where: anyone who read it would hold
/// the role of a config that kept the entry. Refused at load, whatever role they are given.
const PUBLISHED_TOKEN_HASHES: &[(&str, &str)] = &[(
    "33008ea374a93b18297c7ff15b324d599c30cbeac8a9073b82f7837fe0049e27",
    "examples/agent.toml",
)];

#[derive(Debug, thiserror::Error)]
pub enum AgentConfigError {
    #[error("cannot read agent config {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("agent config {origin}: {message}")]
    Invalid { origin: String, message: String },
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<AgentConfig, AgentConfigError> {
        let bytes =
            warden_core::fsutil::read_capped(path, MAX_AGENT_CONFIG_BYTES).map_err(|e| {
                AgentConfigError::Read {
                    path: path.into(),
                    message: e.to_string(),
                }
            })?;
        let text = String::from_utf8(bytes).map_err(|_| AgentConfigError::Invalid {
            origin: path.display().to_string(),
            message: "not UTF-8 text".into(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let config = AgentConfig::parse(&text, &path.display().to_string(), base)?;
        config
            .automation
            .check_runbook_files()
            .map_err(|e| AgentConfigError::Invalid {
                origin: path.display().to_string(),
                message: e.to_string(),
            })?;
        Ok(config)
    }

    /// Parse and validate; relative runbook paths of schedules and monitors resolve against
    /// `base`.
    pub fn parse(text: &str, origin: &str, base: &Path) -> Result<AgentConfig, AgentConfigError> {
        let invalid = |message: String| AgentConfigError::Invalid {
            origin: origin.to_string(),
            message,
        };
        let mut config: AgentConfig = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        config.validate().map_err(invalid)?;
        if let Some(dir) = &config.runbooks.dir
            && dir.is_relative()
        {
            config.runbooks.dir = Some(base.join(dir));
        }
        if let Some(key) = &config.audit.checkpoint_key
            && key.is_relative()
        {
            config.audit.checkpoint_key = Some(base.join(key));
        }
        if let Some(fleet) = &mut config.fleet {
            fleet.validate().map_err(invalid)?;
            fleet.resolve(base);
        }
        if let Some(tickets) = &mut config.tickets {
            tickets.validate(base).map_err(invalid)?;
        }
        if let Some(metrics) = &config.metrics {
            metrics.validate().map_err(|e| invalid(e.to_string()))?;
        }
        config.automation = AutomationConfig {
            schedules: config.schedules.clone(),
            windows: config.windows.clone(),
            monitors: config.monitors.clone(),
        }
        .compile(base)
        .map_err(|e| invalid(e.to_string()))?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let api = &self.api;
        if api.tls.is_none() && !api.listen.ip().is_loopback() {
            return Err(format!(
                "api.listen = {} is not a loopback address and [api.tls] is not set: tokens would \
                 cross the network in clear text; configure TLS or listen on 127.0.0.1",
                api.listen
            ));
        }
        if api.tokens.is_empty() {
            return Err(
                "no [[api.token]]: nobody could call the API (create one with `warden token new`)"
                    .into(),
            );
        }
        let mut names = std::collections::BTreeSet::new();
        let mut hashes = std::collections::BTreeSet::new();
        for t in &api.tokens {
            if t.name.trim().is_empty() {
                return Err("an [[api.token]] has an empty name".into());
            }
            if !names.insert(t.name.as_str()) {
                return Err(format!("[[api.token]] name `{}` appears twice", t.name));
            }
            let hash = t.sha256.to_ascii_lowercase();
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "[[api.token]] `{}`: sha256 must be 64 hex digits (the hash, never the token)",
                    t.name
                ));
            }
            if let Some((_, place)) = PUBLISHED_TOKEN_HASHES.iter().find(|(h, _)| *h == hash) {
                return Err(format!(
                    "[[api.token]] `{}` is the example token of {place}, whose plaintext is \
                     published: anyone could call with it. Make a token with `warden token new \
                     --name NAME --role ROLE` and replace this entry",
                    t.name
                ));
            }
            if !hashes.insert(hash) {
                return Err(format!(
                    "[[api.token]] `{}`: the same token hash is configured twice",
                    t.name
                ));
            }
        }
        if api.max_concurrent_runs == 0 {
            return Err("api.max-concurrent-runs must be at least 1".into());
        }
        if api.max_message_bytes < 1024 {
            return Err("api.max-message-bytes must be at least 1024".into());
        }
        if api.max_streams_per_token == 0 || api.max_streams == 0 {
            return Err("api.max-streams-per-token and api.max-streams must be at least 1".into());
        }
        if self.history.retention_days == 0 {
            return Err("history.retention-days must be at least 1".into());
        }
        if self.audit.retention_days == 0 {
            return Err(
                "audit.retention-days must be at least 1 (default 2190, six years; to keep the \
                 audit log forever, set a longer retention, e.g. 36500)"
                    .into(),
            );
        }
        if self.audit.rotate_bytes < MIN_AUDIT_ROTATE_BYTES {
            return Err(format!(
                "audit.rotate-bytes must be at least {MIN_AUDIT_ROTATE_BYTES} (1 MiB)"
            ));
        }
        Ok(())
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.api.shutdown_grace_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "[[api.token]]\nname = \"noc\"\nrole = \"operator\"\nsha256 = \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\n";

    #[test]
    fn defaults_and_a_token_parse() {
        let c = AgentConfig::parse(&format!("[api]\n{TOKEN}"), "t", Path::new(".")).expect("valid");
        assert_eq!(c.api.listen, default_listen());
        assert_eq!(c.api.max_concurrent_runs, 2);
        assert_eq!(c.api.tokens[0].role, Role::Operator);
        assert_eq!(c.history.retention_days, 100);
        assert_eq!(c.history.retention(), Duration::from_secs(100 * 86_400));
        let c = AgentConfig::parse(
            &format!("[api]\n{TOKEN}[history]\nretention-days = 7\n"),
            "t",
            Path::new("."),
        )
        .expect("valid");
        assert_eq!(c.history.retention_days, 7);
        let err = AgentConfig::parse(
            &format!("[api]\n{TOKEN}[history]\nretention-days = 0\n"),
            "t",
            Path::new("."),
        )
        .expect_err("zero");
        assert!(err.to_string().contains("at least 1"), "{err}");
    }

    #[test]
    fn the_checkpoint_key_resolves_against_the_config_dir() {
        let c = AgentConfig::parse(&format!("[api]\n{TOKEN}"), "t", Path::new("/etc/warden"))
            .expect("valid");
        assert_eq!(c.audit.checkpoint_key, None);
        assert_eq!(c.audit.checkpoint_interval(), Duration::from_secs(60));
        let c = AgentConfig::parse(
            &format!("[api]\n{TOKEN}[audit]\ncheckpoint-key = \"keys/cp.key\"\ncheckpoint-interval-secs = 5\n"),
            "t",
            Path::new("/etc/warden"),
        )
        .expect("valid");
        assert_eq!(
            c.audit.checkpoint_key.as_deref(),
            Some(Path::new("/etc/warden/keys/cp.key"))
        );
        assert_eq!(c.audit.checkpoint_interval(), Duration::from_secs(5));
        assert_eq!(c.audit.retention_days, 2190, "six years unless set");
        assert_eq!(c.audit.rotate_bytes, 64 << 20);
        let err = AgentConfig::parse(
            &format!("[api]\n{TOKEN}[audit]\nkey = \"x\"\n"),
            "t",
            Path::new("."),
        )
        .expect_err("unknown key");
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn refuses_plaintext_off_loopback_no_tokens_bad_hashes_and_unknown_keys() {
        let cases = [
            (
                format!("[api]\nlisten = \"0.0.0.0:7355\"\n{TOKEN}"),
                "not a loopback",
            ),
            ("[api]\n".to_string(), "no [[api.token]]"),
            (
                "[api]\n[[api.token]]\nname = \"x\"\nrole = \"admin\"\nsha256 = \"secret\"\n"
                    .to_string(),
                "64 hex digits",
            ),
            (format!("[api]\nlisten-on = 1\n{TOKEN}"), "unknown field"),
            (
                format!("[api]\nmax-concurrent-runs = 0\n{TOKEN}"),
                "at least 1",
            ),
            (
                "[api]\n[[api.token]]\nname = \"x\"\nrole = \"root\"\nsha256 = \"aa\"\n"
                    .to_string(),
                "unknown variant",
            ),
        ];
        for (text, expected) in cases {
            let err = AgentConfig::parse(&text, "t", Path::new("."))
                .expect_err(&text)
                .to_string();
            assert!(err.contains(expected), "{text}\n=> {err}");
        }
    }

    #[test]
    fn the_published_example_token_is_refused_in_any_role() {
        // The plaintext in examples/agent.toml's comment, hashed as the API hashes callers'.
        let example = crate::grpc::auth::token_hash("example-token-change-me");
        for role in ["viewer", "operator", "admin"] {
            let text = format!(
                "[api]\n[[api.token]]\nname = \"noc\"\nrole = \"{role}\"\nsha256 = \"{}\"\n",
                example.to_ascii_uppercase()
            );
            let err = AgentConfig::parse(&text, "t", Path::new("."))
                .expect_err("the example token")
                .to_string();
            assert!(
                err.contains("example token of examples/agent.toml")
                    && err.contains("warden token new"),
                "{err}"
            );
        }
    }
}

#[cfg(test)]
mod audit_tests {
    use super::*;

    const TOKEN: &str = "[[api.token]]\nname = \"noc\"\nrole = \"operator\"\nsha256 = \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"\n";

    fn audit(section: &str) -> Result<AuditConfig, String> {
        AgentConfig::parse(
            &format!("[api]\n{TOKEN}[audit]\n{section}"),
            "t",
            Path::new("."),
        )
        .map(|c| c.audit)
        .map_err(|e| e.to_string())
    }

    #[test]
    fn audit_rotation_and_retention_parse_and_zero_or_tiny_values_are_refused() {
        let c = audit("rotate-bytes = 1048576\nretention-days = 30\n").expect("valid");
        assert_eq!(c.rotate_bytes, 1 << 20);
        assert_eq!(c.retention(), Duration::from_secs(30 * 86_400));
        let err = audit("retention-days = 0\n").expect_err("zero");
        assert!(
            err.contains("audit.retention-days must be at least 1"),
            "{err}"
        );
        assert!(err.contains("36500"), "says how to keep it forever: {err}");
        let err = audit("rotate-bytes = 4096\n").expect_err("tiny");
        assert!(err.contains("audit.rotate-bytes must be at least"), "{err}");
    }
}

#[cfg(test)]
mod example_tests {
    use std::path::Path;
    use std::time::Duration;

    #[test]
    fn the_example_agent_config_is_valid_and_its_runbooks_exist() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/agent.toml");
        // As shipped, its token is refused: the example must be edited before it serves.
        let err = super::AgentConfig::load(&path).expect_err("the example token");
        assert!(err.to_string().contains("example token"), "{err}");
        // With a token of its own, everything else in it is valid.
        let text = std::fs::read_to_string(&path).expect("example");
        let (published, _) = super::PUBLISHED_TOKEN_HASHES[0];
        assert!(
            text.contains(published),
            "the example's hash is the refused one"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let own = dir.path();
        let copy = own.join("agent.toml");
        std::fs::write(&copy, text.replace(published, &"a".repeat(64))).expect("copy");
        for runbook in ["disk-pressure.toml", "service-down.toml"] {
            std::fs::copy(path.with_file_name(runbook), own.join(runbook)).expect("runbook");
        }
        let automation = super::AgentConfig::load(&copy)
            .expect("examples/agent.toml is valid")
            .automation;
        assert_eq!(automation.schedules.len(), 2);
        assert_eq!(automation.windows.len(), 1);
        assert_eq!(automation.monitors.len(), 1);
        automation.check_runbook_files().expect("runbooks exist");
        let patch = &automation.schedules[1];
        assert!(patch.maintenance);
        assert_eq!(patch.expected_duration, Duration::from_secs(45 * 60));

        let mut missing = automation.clone();
        missing.schedules[0].runbook = path.with_file_name("no-such-runbook.toml");
        let err = missing.check_runbook_files().expect_err("missing runbook");
        assert!(err.to_string().contains("nightly-temp-cleanup"), "{err}");
    }
}
