//! The site policy: the runner's own configuration file (TOML). It is the upper bound of what any
//! plugin may be granted on this machine, the limits in force, and where data lives. Anything it
//! does not allow is denied.

use crate::capability::Capability;
use crate::limits;
use crate::manifest::{ExecRule, SysinfoCategory};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The embedded default: read-only inventory facts and nothing that changes the machine.
pub const DEFAULT_POLICY: &str = include_str!("default-policy.toml");

/// Largest policy file accepted.
pub const MAX_POLICY_BYTES: u64 = 1 << 20;

/// `warden.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SitePolicy {
    /// Where the plugin store, caches and state live. Overridden by `--data-dir`/`WARDEN_DATA_DIR`.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// Where precompiled components are cached. Default: `<data-dir>/cache`.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    #[serde(default)]
    pub limits: PolicyLimits,
    /// The most any plugin may be granted.
    #[serde(default)]
    pub allow: Allow,
    #[serde(default)]
    pub services: ServiceBackendConfig,
    /// Which publisher keys this agent trusts.
    #[serde(default)]
    pub trust: TrustPolicy,
}

/// Trusted publishers. Bundles must carry signatures from `min-signatures` distinct trusted keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct TrustPolicy {
    /// Development mode: accept unsigned plugins (directories and unsigned bundles). Logged loudly
    /// and recorded in the audit log; never enable it on a production agent.
    pub allow_unsigned: bool,
    pub min_signatures: u32,
    pub keys: Vec<TrustedKey>,
    /// Keys that may sign a site policy distributed to this agent (`warden policy sign`,
    /// `warden fleet publish`). Only this file's list counts: a distributed policy cannot add,
    /// remove or change them. Empty: the agent accepts no distributed policy.
    pub policy_keys: Vec<PolicyKey>,
    /// Signatures from distinct policy keys a distributed policy needs (at least 1).
    pub policy_min_signatures: u32,
}

impl Default for TrustPolicy {
    fn default() -> Self {
        TrustPolicy {
            allow_unsigned: false,
            min_signatures: 1,
            keys: vec![],
            policy_keys: vec![],
            policy_min_signatures: 1,
        }
    }
}

/// A key trusted to sign this agent's site policy: the root of its trust, kept offline by the
/// MSP's security officers (not the controller's, which must not be able to widen a grant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PolicyKey {
    /// A name for people and audit records, e.g. `acme-msp-policy`.
    pub name: String,
    /// Hex ed25519 public key.
    pub public_key: String,
}

/// One trusted publisher key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TrustedKey {
    /// A name for people and audit records, e.g. `acme-msp-release`.
    pub name: String,
    /// Hex ed25519 public key (as in a `.pub` file, with or without its prefix).
    pub public_key: String,
    /// Glob patterns of plugin names this key may sign. Default: any.
    #[serde(default = "any_plugin")]
    pub plugins: Vec<String>,
    /// The capabilities this key's plugins may ever request. Default: no ceiling.
    #[serde(default)]
    pub capabilities: Option<Vec<Capability>>,
}

fn any_plugin() -> Vec<String> {
    vec!["*".into()]
}

/// Limits: defaults for plugins that do not ask, and maxima for those that do. Each key left
/// out keeps its named default from [`crate::limits`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct PolicyLimits {
    pub default_memory_mb: u64,
    pub max_memory_mb: u64,
    pub default_timeout_ms: u64,
    pub max_timeout_ms: u64,
    pub log_bytes: usize,
    pub exec_output_bytes: usize,
    pub exec_timeout_ms: u64,
    pub fs_file_bytes: u64,
    pub fs_list_entries: usize,
    pub max_instances: u32,
    pub max_kv_quota_bytes: u64,
    /// Largest HTTP response body an `http` call returns; a longer one is cut off with an error.
    pub http_response_bytes: u64,
    /// Default and largest time of one `http` call (also bounded by the run's deadline).
    pub http_timeout_ms: u64,
    /// Largest bundle file accepted; checked before reading it.
    pub max_bundle_bytes: u64,
}

impl Default for PolicyLimits {
    fn default() -> Self {
        PolicyLimits {
            default_memory_mb: limits::DEFAULT_MEMORY_BYTES >> 20,
            max_memory_mb: limits::DEFAULT_MAX_MEMORY_BYTES >> 20,
            default_timeout_ms: limits::DEFAULT_TIMEOUT.as_millis() as u64,
            max_timeout_ms: limits::DEFAULT_MAX_TIMEOUT.as_millis() as u64,
            log_bytes: limits::DEFAULT_LOG_BYTES,
            exec_output_bytes: limits::DEFAULT_EXEC_OUTPUT_BYTES,
            exec_timeout_ms: limits::DEFAULT_EXEC_TIMEOUT.as_millis() as u64,
            fs_file_bytes: limits::DEFAULT_FS_FILE_BYTES,
            fs_list_entries: limits::DEFAULT_FS_LIST_ENTRIES,
            max_instances: limits::DEFAULT_MAX_INSTANCES,
            max_kv_quota_bytes: limits::DEFAULT_MAX_KV_QUOTA_BYTES,
            http_response_bytes: limits::DEFAULT_HTTP_RESPONSE_BYTES,
            http_timeout_ms: limits::DEFAULT_HTTP_TIMEOUT.as_millis() as u64,
            max_bundle_bytes: limits::DEFAULT_MAX_BUNDLE_BYTES,
        }
    }
}

/// The upper bound of every grant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Allow {
    #[serde(default)]
    pub exec: Vec<ExecRule>,
    #[serde(default)]
    pub fs_read: Vec<PathBuf>,
    #[serde(default)]
    pub fs_write: Vec<PathBuf>,
    #[serde(default)]
    pub sysinfo: BTreeSet<SysinfoCategory>,
    #[serde(default)]
    pub kv: bool,
    /// Origins (scheme, host, port) plugins may send HTTP requests to.
    #[serde(default)]
    pub http: Vec<crate::egress::HttpOrigin>,
    /// Non-public address ranges (loopback, link-local, RFC 1918, ULA) that an allowed origin's
    /// name may resolve to; public addresses need no entry, and the always-denied ranges (cloud
    /// metadata, documentation, multicast, unspecified) cannot be opened.
    #[serde(default)]
    pub http_networks: Vec<crate::egress::Cidr>,
    #[serde(default)]
    pub services: Vec<String>,
    /// Whether remediation plugins may start/stop/restart the services above.
    #[serde(default)]
    pub service_control: bool,
}

/// Which service manager backs the `service` capabilities.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServiceBackendConfig {
    #[serde(default)]
    pub backend: ServiceBackendKind,
    /// For `backend = "command"`: argv templates; the element `{name}` becomes the service name.
    #[serde(default)]
    pub command: Option<ServiceCommands>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceBackendKind {
    /// systemd if it is running, else SysV `service`, on Windows the Service Control Manager.
    #[default]
    Auto,
    Systemd,
    Sysv,
    Windows,
    /// Site-defined programs (see `command`).
    Command,
}

/// argv templates of a command service backend. Exit status 0 of `status` means running,
/// 3 means stopped (LSB), anything else failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceCommands {
    pub status: Vec<String>,
    pub start: Vec<String>,
    pub stop: Vec<String>,
    pub restart: Vec<String>,
}

/// Why a policy was rejected.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read site policy {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("site policy {origin}: {message}")]
    Invalid { origin: String, message: String },
}

impl SitePolicy {
    /// The embedded default policy.
    pub fn embedded_default() -> SitePolicy {
        // The embedded text is part of the binary and covered by a unit test, so it parses.
        SitePolicy::parse(DEFAULT_POLICY, "<embedded default>")
            .unwrap_or_else(|_| SitePolicy::deny_all())
    }

    /// A policy that grants nothing.
    pub fn deny_all() -> SitePolicy {
        SitePolicy {
            data_dir: None,
            cache_dir: None,
            limits: PolicyLimits::default(),
            allow: Allow::default(),
            services: ServiceBackendConfig::default(),
            trust: TrustPolicy::default(),
        }
    }

    pub fn load(path: &Path) -> Result<SitePolicy, PolicyError> {
        let bytes = crate::fsutil::read_capped(path, MAX_POLICY_BYTES).map_err(|e| match e {
            crate::fsutil::CappedReadError::TooLarge => PolicyError::Invalid {
                origin: path.display().to_string(),
                message: format!("larger than {MAX_POLICY_BYTES} bytes"),
            },
            crate::fsutil::CappedReadError::Io(source) => PolicyError::Read {
                path: path.into(),
                source,
            },
        })?;
        let text = String::from_utf8(bytes).map_err(|_| PolicyError::Invalid {
            origin: path.display().to_string(),
            message: "not UTF-8 text".into(),
        })?;
        SitePolicy::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<SitePolicy, PolicyError> {
        let invalid = |message: String| PolicyError::Invalid {
            origin: origin.to_string(),
            message,
        };
        let policy: SitePolicy = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        policy.validate().map_err(invalid)?;
        Ok(policy)
    }

    fn validate(&self) -> Result<(), String> {
        let l = &self.limits;
        if l.default_memory_mb == 0 || l.default_memory_mb > l.max_memory_mb {
            return Err("limits: default-memory-mb must be between 1 and max-memory-mb".into());
        }
        if l.default_timeout_ms == 0 || l.default_timeout_ms > l.max_timeout_ms {
            return Err("limits: default-timeout-ms must be between 1 and max-timeout-ms".into());
        }
        if l.max_instances == 0 {
            return Err("limits: max-instances must be at least 1".into());
        }
        for rule in &self.allow.exec {
            rule.validate().map_err(|e| format!("allow.exec: {e}"))?;
            if rule.optional {
                return Err(format!(
                    "allow.exec: `optional` of `{}` belongs in a plugin manifest (the plugin runs \
                     without the program), not in the site policy",
                    rule.program
                ));
            }
        }
        for path in self.allow.fs_read.iter().chain(&self.allow.fs_write) {
            if !path.is_absolute() {
                return Err(format!(
                    "allow: `{}` must be an absolute path",
                    path.display()
                ));
            }
        }
        for s in &self.allow.services {
            crate::names::validate_service_name(s).map_err(|e| format!("allow.services: {e}"))?;
        }
        for key in &self.trust.keys {
            crate::keys::parse_public(&key.public_key)
                .map_err(|e| format!("trust.keys `{}`: {e}", key.name))?;
            for p in &key.plugins {
                glob::Pattern::new(p)
                    .map_err(|e| format!("trust.keys `{}`: plugin pattern `{p}`: {e}", key.name))?;
            }
        }
        for key in &self.trust.policy_keys {
            crate::keys::parse_public(&key.public_key)
                .map_err(|e| format!("trust.policy-keys `{}`: {e}", key.name))?;
        }
        match (&self.services.backend, &self.services.command) {
            (ServiceBackendKind::Command, None) => {
                return Err("services: backend `command` needs a [services.command] table".into());
            }
            (ServiceBackendKind::Command, Some(cmds)) => {
                for argv in [&cmds.status, &cmds.start, &cmds.stop, &cmds.restart] {
                    match argv.first() {
                        Some(p) if Path::new(p).is_absolute() => {}
                        _ => return Err(
                            "services.command: each argv must start with an absolute program path"
                                .into(),
                        ),
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The effective default timeout.
    pub fn default_timeout(&self) -> Duration {
        Duration::from_millis(self.limits.default_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses_and_denies_changes() {
        let p =
            SitePolicy::parse(DEFAULT_POLICY, "embedded").expect("embedded default policy parses");
        assert!(p.allow.fs_write.is_empty());
        assert!(!p.allow.service_control);
        assert!(p.allow.exec.is_empty());
    }

    #[test]
    fn the_annotated_example_policy_is_valid() {
        let text = include_str!("../../../examples/site-policy.toml");
        let p = SitePolicy::parse(text, "examples/site-policy.toml").expect("example parses");
        assert_eq!(
            p.limits,
            PolicyLimits::default(),
            "the example documents the defaults"
        );
    }

    #[test]
    fn unknown_keys_and_relative_paths_are_rejected() {
        assert!(SitePolicy::parse("bogus = 1", "t").is_err());
        assert!(SitePolicy::parse("[allow]\nfs-read = [\"tmp\"]", "t").is_err());
        assert!(SitePolicy::parse("[services]\nbackend = \"command\"", "t").is_err());
    }
}
