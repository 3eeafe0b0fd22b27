//! The plugin manifest (`plugin.toml`): who the plugin is, its role, the capabilities it
//! requests and the limits it needs. Parsed strictly (unknown keys are errors) and validated
//! into a [`Manifest`] before anything else looks at it.

use crate::capability::Capability;
use crate::compliance::ComplianceTags;
use crate::names::{validate_plugin_name, validate_service_name};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Largest manifest file accepted.
pub const MAX_MANIFEST_BYTES: u64 = 256 << 10;

/// What a plugin exports, which fixes the WIT world it targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Exports `discovery`: facts about the machine.
    Discovery,
    /// Exports `check`: a status with metrics.
    Check,
    /// Exports `remediation`: `plan` and `apply`.
    Remediation,
    /// Exports both `check` and `remediation`.
    CheckRemediation,
    /// Exports `ticketing`: a PSA connector the agent's ticket outbox calls.
    Ticketing,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Discovery => "discovery",
            Role::Check => "check",
            Role::Remediation => "remediation",
            Role::CheckRemediation => "check-remediation",
            Role::Ticketing => "ticketing",
        }
    }

    /// Whether plugins of this role may change the machine (write files, control services).
    pub fn may_change_machine(self) -> bool {
        match self {
            Role::Remediation | Role::CheckRemediation => true,
            Role::Discovery | Role::Check | Role::Ticketing => false,
        }
    }

    pub fn exports_check(self) -> bool {
        matches!(self, Role::Check | Role::CheckRemediation)
    }

    /// Whether a plugin of this role exports what `invocation` calls; `RoleMismatch` if not.
    pub fn check_invocation(
        self,
        plugin: &str,
        invocation: &crate::report::Invocation,
    ) -> Result<(), crate::error::RunError> {
        use crate::report::Invocation;
        let exported = match invocation {
            Invocation::Discover => self == Role::Discovery,
            Invocation::Check => self.exports_check(),
            Invocation::Plan | Invocation::Apply(_) => self.may_change_machine(),
            Invocation::Ticket(_) => self == Role::Ticketing,
        };
        if exported {
            return Ok(());
        }
        Err(crate::error::RunError::RoleMismatch {
            plugin: plugin.to_string(),
            role: self.to_string(),
            operation: invocation.name().to_string(),
        })
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A category of `sysinfo` facts; each is granted on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SysinfoCategory {
    Hostname,
    Os,
    Cpu,
    Memory,
    Disks,
    Network,
    Uptime,
    Processes,
}

impl SysinfoCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            SysinfoCategory::Hostname => "hostname",
            SysinfoCategory::Os => "os",
            SysinfoCategory::Cpu => "cpu",
            SysinfoCategory::Memory => "memory",
            SysinfoCategory::Disks => "disks",
            SysinfoCategory::Network => "network",
            SysinfoCategory::Uptime => "uptime",
            SysinfoCategory::Processes => "processes",
        }
    }
}

/// One program a plugin may run, with the patterns its arguments must match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecRule {
    /// Absolute path of the program; matched exactly, never looked up in `PATH`.
    pub program: String,
    /// Glob patterns (`*`, `?`, `[...]`); every argument must match at least one. Empty: no arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Manifest only: the plugin works without this program (it enriches what the plugin
    /// reports), so a site policy that does not allow it narrows the grant instead of refusing
    /// the run; calls to it are then denied and audited like any other. Still deny by default:
    /// the program runs only where the policy allows it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

impl ExecRule {
    /// The program must be absolute and every pattern a valid glob.
    pub fn validate(&self) -> Result<(), String> {
        if !Path::new(&self.program).is_absolute() {
            return Err(format!(
                "program `{}` must be an absolute path (programs are never looked up in PATH)",
                self.program
            ));
        }
        for pattern in &self.args {
            glob::Pattern::new(pattern)
                .map_err(|e| format!("argument pattern `{pattern}`: {e}"))?;
        }
        Ok(())
    }
}

/// Paths a plugin may read, and (remediation roles only) write.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FsRequest {
    #[serde(default)]
    pub read: Vec<PathBuf>,
    #[serde(default)]
    pub write: Vec<PathBuf>,
}

/// Persistent key-value state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KvRequest {
    /// Bytes of keys plus values the plugin may keep.
    #[serde(default = "default_kv_quota")]
    pub quota_bytes: u64,
}

fn default_kv_quota() -> u64 {
    crate::limits::DEFAULT_KV_QUOTA_BYTES
}

/// Capabilities a plugin requests. Absent means not requested.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilityRequest {
    #[serde(default)]
    pub exec: Vec<ExecRule>,
    #[serde(default)]
    pub fs: FsRequest,
    #[serde(default)]
    pub sysinfo: BTreeSet<SysinfoCategory>,
    #[serde(default)]
    pub kv: Option<KvRequest>,
    /// Origins (scheme, host, port) for outbound HTTP: `https://psa.example.com`.
    #[serde(default)]
    pub http: Vec<crate::egress::HttpOrigin>,
    /// Service names (status; start/stop/restart too for remediation roles).
    #[serde(default)]
    pub services: Vec<String>,
}

/// Limits the plugin needs; the policy may refuse them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LimitRequest {
    pub memory_mb: Option<u64>,
    pub timeout_ms: Option<u64>,
}

/// `plugin.toml`, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Manifest {
    /// Lower-case letters, digits and `-`, 1 to 64 characters.
    pub name: String,
    pub version: semver::Version,
    pub role: Role,
    #[serde(default)]
    pub description: String,
    /// The component file, relative to the manifest. Default `plugin.wasm`.
    #[serde(default = "default_component")]
    pub component: String,
    #[serde(default)]
    pub capabilities: CapabilityRequest,
    #[serde(default)]
    pub limits: LimitRequest,
    /// JSON Schema of the plugin's configuration, written as TOML.
    #[serde(default)]
    pub config_schema: Option<serde_json::Value>,
    /// The HIPAA safeguards and CMMC practices the plugin gives evidence for.
    #[serde(default, skip_serializing_if = "ComplianceTags::is_empty")]
    pub compliance: ComplianceTags,
}

fn default_component() -> String {
    "plugin.wasm".to_string()
}

/// Why a manifest was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is larger than {MAX_MANIFEST_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Manifest {
    /// Whether the manifest requests `capability`: a non-empty entry in `[capabilities]`, and
    /// for service control, services requested by a remediation role.
    pub fn requests(&self, capability: Capability) -> bool {
        let c = &self.capabilities;
        match capability {
            Capability::Exec => !c.exec.is_empty(),
            Capability::FsRead => !c.fs.read.is_empty(),
            Capability::FsWrite => !c.fs.write.is_empty(),
            Capability::Sysinfo => !c.sysinfo.is_empty(),
            Capability::Kv => c.kv.is_some(),
            Capability::Http => !c.http.is_empty(),
            Capability::Service => !c.services.is_empty(),
            Capability::ServiceControl => !c.services.is_empty() && self.role.may_change_machine(),
        }
    }

    /// Whether a component under this manifest may import `capability`'s interface. The `fs`
    /// interface serves a plugin that requests writes only, too (it reads what it changes);
    /// what changes the machine is for remediation roles alone.
    pub fn may_import(&self, capability: Capability) -> bool {
        match capability {
            Capability::FsRead => {
                self.requests(Capability::FsRead) || self.requests(Capability::FsWrite)
            }
            Capability::FsWrite | Capability::ServiceControl => {
                self.requests(capability) && self.role.may_change_machine()
            }
            Capability::Exec
            | Capability::Sysinfo
            | Capability::Kv
            | Capability::Http
            | Capability::Service => self.requests(capability),
        }
    }

    /// Every capability the manifest requests.
    pub fn requested(&self) -> std::collections::BTreeSet<Capability> {
        Capability::ALL
            .into_iter()
            .filter(|c| self.requests(*c))
            .collect()
    }

    /// Read and validate `plugin.toml` at `path`.
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = crate::fsutil::read_capped(path, MAX_MANIFEST_BYTES).map_err(|e| match e {
            crate::fsutil::CappedReadError::TooLarge => {
                ManifestError::TooLarge { path: path.into() }
            }
            crate::fsutil::CappedReadError::Io(source) => ManifestError::Read {
                path: path.into(),
                source,
            },
        })?;
        let text = String::from_utf8(text).map_err(|_| ManifestError::Parse {
            path: path.into(),
            message: "not UTF-8 text".into(),
        })?;
        Manifest::parse(&text).map_err(|message| match message {
            ParseFailure::Syntax(message) => ManifestError::Parse {
                path: path.into(),
                message,
            },
            ParseFailure::Invalid(message) => ManifestError::Invalid {
                path: path.into(),
                message,
            },
        })
    }

    /// Parse and validate manifest text.
    pub fn parse(text: &str) -> Result<Manifest, ParseFailure> {
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| ParseFailure::Syntax(e.to_string()))?;
        manifest.validate().map_err(ParseFailure::Invalid)?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<(), String> {
        validate_plugin_name(&self.name).map_err(|e| format!("name: {e}"))?;
        if self.description.len() > 4096 {
            return Err("description: longer than 4096 characters".into());
        }
        let component = Path::new(&self.component);
        if self.component.is_empty()
            || component.is_absolute()
            || component
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(format!(
                "component: `{}` must be a plain file name or relative path inside the plugin directory",
                self.component
            ));
        }
        let caps = &self.capabilities;
        for rule in &caps.exec {
            rule.validate()
                .map_err(|e| format!("capabilities.exec: {e}"))?;
        }
        for path in caps.fs.read.iter().chain(&caps.fs.write) {
            if !path.is_absolute() {
                return Err(format!(
                    "capabilities.fs: `{}` must be an absolute path",
                    path.display()
                ));
            }
        }
        if !caps.fs.write.is_empty() && !self.role.may_change_machine() {
            return Err(format!(
                "capabilities.fs.write: a {} plugin may not write files; only remediation roles may",
                self.role
            ));
        }
        for service in &caps.services {
            validate_service_name(service).map_err(|e| format!("capabilities.services: {e}"))?;
        }
        if let Some(schema) = &self.config_schema {
            crate::config_schema::compile(schema).map_err(|e| format!("config-schema: {e}"))?;
        }
        if self.limits.memory_mb == Some(0) || self.limits.timeout_ms == Some(0) {
            return Err("limits: memory-mb and timeout-ms must be greater than zero".into());
        }
        self.compliance.validate()?;
        Ok(())
    }
}

/// A manifest text that did not parse or did not validate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseFailure {
    Syntax(String),
    Invalid(String),
}

impl std::fmt::Display for ParseFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseFailure::Syntax(m) | ParseFailure::Invalid(m) => f.write_str(m.trim_end()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        name = "disk-usage"
        version = "0.1.0"
        role = "check"
        [capabilities]
        sysinfo = ["disks"]
    "#;

    #[test]
    fn parses_a_minimal_manifest() {
        let m = Manifest::parse(GOOD).expect("valid");
        assert_eq!(m.name, "disk-usage");
        assert_eq!(m.component, "plugin.wasm");
        assert!(m.capabilities.sysinfo.contains(&SysinfoCategory::Disks));
    }

    #[test]
    fn unknown_keys_are_errors() {
        let text = format!("{GOOD}\nsurprise = 1\n");
        assert!(
            matches!(Manifest::parse(&text), Err(ParseFailure::Syntax(m)) if m.contains("surprise"))
        );
    }

    #[test]
    fn check_plugins_may_not_write() {
        let text = format!("{GOOD}\n[capabilities.fs]\nwrite = [\"/tmp\"]\n");
        assert!(
            matches!(Manifest::parse(&text), Err(ParseFailure::Invalid(m)) if m.contains("may not write"))
        );
    }

    #[test]
    fn relative_programs_and_escaping_components_are_rejected() {
        let text = GOOD.replace("sysinfo = [\"disks\"]", "exec = [{ program = \"sh\" }]");
        assert!(
            matches!(Manifest::parse(&text), Err(ParseFailure::Invalid(m)) if m.contains("absolute"))
        );
        let text = format!("component = \"../evil.wasm\"\n{GOOD}");
        assert!(
            matches!(Manifest::parse(&text), Err(ParseFailure::Invalid(m)) if m.contains("component"))
        );
    }

    #[test]
    fn compliance_tags_are_parsed_and_validated() {
        let text =
            format!("{GOOD}\n[compliance]\nhipaa = [\"164.312(b)\"]\ncmmc = [\"AU.L2-3.3.1\"]\n");
        let m = Manifest::parse(&text).expect("valid");
        assert_eq!(m.compliance.summary(), "HIPAA 164.312(b); CMMC AU.L2-3.3.1");
        assert!(Manifest::parse(GOOD).expect("valid").compliance.is_empty());
        let bad = text.replace("AU.L2-3.3.1", "AU-3.3.1");
        assert!(
            matches!(Manifest::parse(&bad), Err(ParseFailure::Invalid(m)) if m.contains("compliance.cmmc"))
        );
        let unknown = format!("{GOOD}\n[compliance]\nsoc2 = [\"CC6.1\"]\n");
        assert!(
            matches!(Manifest::parse(&unknown), Err(ParseFailure::Syntax(m)) if m.contains("soc2"))
        );
    }
}
