//! The controller's config file (TOML), parsed strictly into a validated [`ControllerConfig`].
//!
//! ```toml
//! data-dir = "/var/lib/warden-controller"   # store, keys, audit log, nats-operator.conf
//! listen = "127.0.0.1:7400"                  # the gRPC API (Enrollment + Fleet)
//! nats-url = "nats://127.0.0.1:4222"         # where the controller connects
//! agent-nats-urls = ["nats://nats.msp.example:4222"]  # told to agents at enrollment
//! tenants = ["acme", "globex"]
//! results-replicas = 1                       # 3 on a 3-node cluster
//! command-ttl-secs = 3600
//!
//! [[tokens]]
//! name = "noc"
//! role = "admin"                             # viewer | approver | operator | admin
//! sha256 = "<hex sha256 of the token>"
//! # tenant = "acme"                         # confine to one tenant (co-managed client IT)
//!
//! [approvals]                                # four eyes: see crate::approvals::policy
//! max-agents = 50
//!
//! [reports.acme.targets]                   # client reports: SLA minutes per priority
//! P1 = 60
//! [[reports.acme.service]]                   # first match: priority and CSF category
//! monitor = "backup*"
//! priority = "P1"
//! csf = "RC.RP"
//!
//! [report-delivery]                         # every tenant's last month, written on day 1
//! dir = "reports"                            # relative to the data dir
//! formats = ["pdf", "csv"]
//! day = 1
//!
//! [audit]
//! rotate-bytes = 67108864                    # seal the live file at 64 MiB
//! retention-days = 2190                      # remove sealed files older than six years
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use warden_access::TokenEntry;
use warden_fleet_identity::TenantId;

/// Default lifetime of a dispatched command: 1 hour (an agent offline longer is reported
/// expired; `--ttl` up to the wire's 7-day bound for longer).
pub const DEFAULT_COMMAND_TTL_SECS: i64 = 3600;
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7400";
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawConfig {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    nats_url: Option<String>,
    #[serde(default)]
    agent_nats_urls: Vec<String>,
    #[serde(default)]
    tenants: Vec<String>,
    results_replicas: Option<usize>,
    command_ttl_secs: Option<i64>,
    #[serde(default)]
    tokens: Vec<TokenEntry>,
    audit: Option<RawAudit>,
    approvals: Option<crate::approvals::policy::RawApprovals>,
    metrics: Option<warden_metrics::MetricsConfig>,
    console: Option<RawConsole>,
    #[serde(default)]
    reports: std::collections::BTreeMap<String, warden_report::settings::SlaConfig>,
    report_delivery: Option<RawReportDelivery>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawReportDelivery {
    dir: Option<PathBuf>,
    #[serde(default)]
    formats: Vec<String>,
    day: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawConsole {
    listen: String,
    idle_timeout_secs: Option<u64>,
    absolute_timeout_secs: Option<u64>,
    #[serde(default)]
    secure_cookies: bool,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

/// The web console (`[console]`, issue 18): served beside the gRPC API when configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSettings {
    pub listen: SocketAddr,
    /// A session unused this long is signed out.
    pub idle_timeout_secs: u64,
    /// A session is signed out this long after sign-in, used or not.
    pub absolute_timeout_secs: u64,
    /// Mark the session cookie `Secure`: set it when the console is reached over TLS (its
    /// own, [`ConsoleSettings::tls`], which sets it, or a terminating proxy's), so the browser
    /// never sends it in the clear.
    pub secure_cookies: bool,
    /// Serve TLS with this certificate chain and key (PEM files; relative paths are relative
    /// to the config file); `None`: plain HTTP.
    pub tls: Option<ConsoleTls>,
}

/// The console's own certificate (`[console] tls-cert`, `tls-key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleTls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[console] idle-timeout-secs` default: 30 minutes.
pub const DEFAULT_CONSOLE_IDLE_SECS: u64 = 30 * 60;
/// `[console] absolute-timeout-secs` default: 12 hours (a NOC shift).
pub const DEFAULT_CONSOLE_ABSOLUTE_SECS: u64 = 12 * 3600;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawAudit {
    rotate_bytes: Option<u64>,
    retention_days: Option<u32>,
}

/// Smallest `[audit] rotate-bytes`, as on the agent: below a MiB the sealed files would number
/// in the thousands a year, each rotation a few fsyncs, for nothing a smaller file buys.
pub const MIN_AUDIT_ROTATE_BYTES: u64 = 1 << 20;

/// A checked config.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub nats_url: String,
    pub agent_nats_urls: Vec<String>,
    pub tenants: Vec<TenantId>,
    /// Replicas of the results stream: 1 on one server, 3 on a cluster.
    pub results_replicas: usize,
    pub command_ttl_secs: i64,
    pub tokens: Vec<TokenEntry>,
    /// The live audit file is sealed once it is this long.
    pub audit_rotate_bytes: u64,
    /// Sealed audit files whose last record is older than this many days are removed. At
    /// least 1: a zero would read as "keep nothing" or "keep forever".
    pub audit_retention_days: u32,
    /// Four eyes (`[approvals]`, [`crate::approvals::policy`]); `None`: no run waits.
    pub approvals: Option<crate::approvals::ApprovalPolicy>,
    /// `[metrics]`: the Prometheus endpoint (docs/METRICS.md); `None`: none is served.
    pub metrics: Option<warden_metrics::MetricsConfig>,
    /// The web console (`[console]`); `None`: not served.
    pub console: Option<ConsoleSettings>,
    /// Client report settings per tenant (`[reports.<tenant>]`); a tenant without one has
    /// every monitor P3 in DE.CM and no SLA targets.
    pub reports: std::collections::BTreeMap<TenantId, warden_report::TenantSettings>,
    /// `[report-delivery]`: every tenant's reports written each month; `None`: not.
    pub report_delivery: Option<crate::report::delivery::ReportDelivery>,
}

impl ControllerConfig {
    /// A config for `data_dir` with every default (tests, `serve` without a file).
    pub fn new(data_dir: PathBuf) -> ControllerConfig {
        ControllerConfig {
            data_dir,
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 7400))),
            nats_url: DEFAULT_NATS_URL.to_string(),
            agent_nats_urls: Vec::new(),
            tenants: Vec::new(),
            results_replicas: 1,
            command_ttl_secs: DEFAULT_COMMAND_TTL_SECS,
            tokens: Vec::new(),
            audit_rotate_bytes: warden_audit::files::DEFAULT_ROTATE_BYTES,
            audit_retention_days: crate::audit_retention::DEFAULT_RETENTION_DAYS,
            approvals: None,
            metrics: None,
            console: None,
            reports: std::collections::BTreeMap::new(),
            report_delivery: None,
        }
    }

    pub fn load(path: &Path) -> Result<ControllerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        ControllerConfig::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<ControllerConfig, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })?;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        // A relative data dir is relative to the config file, not to wherever serve started.
        let base = path.parent().unwrap_or(Path::new("."));
        let data_dir = match raw.data_dir {
            Some(d) if d.is_relative() => base.join(d),
            Some(d) => d,
            None => base.join("controller-data"),
        };
        let mut config = ControllerConfig::new(data_dir);
        if let Some(listen) = raw.listen {
            config.listen = listen
                .parse()
                .map_err(|e| invalid(format!("listen {listen:?}: {e}")))?;
        }
        if let Some(url) = raw.nats_url {
            config.nats_url = url;
        }
        config.agent_nats_urls = raw.agent_nats_urls;
        for t in raw.tenants {
            config
                .tenants
                .push(TenantId::new(t).map_err(|e| invalid(e.to_string()))?);
        }
        if let Some(r) = raw.results_replicas {
            if !matches!(r, 1 | 3 | 5) {
                return Err(invalid(format!(
                    "results-replicas {r}: use 1 (one server), 3 or 5 (a cluster)"
                )));
            }
            config.results_replicas = r;
        }
        if let Some(ttl) = raw.command_ttl_secs {
            let max = warden_fleet_wire::command::MAX_COMMAND_LIFETIME_MS / 1000;
            if !(1..=max).contains(&ttl) {
                return Err(invalid(format!("command-ttl-secs {ttl}: 1 ..= {max}")));
            }
            config.command_ttl_secs = ttl;
        }
        warden_access::Tokens::new(&raw.tokens).map_err(|e| invalid(e.to_string()))?;
        for t in &raw.tokens {
            if let Some(tenant) = &t.tenant {
                TenantId::new(tenant.clone())
                    .map_err(|e| invalid(format!("token {:?}: {e}", t.name)))?;
            }
        }
        config.tokens = raw.tokens;
        if let Some(metrics) = raw.metrics {
            metrics.validate().map_err(|e| invalid(e.to_string()))?;
            config.metrics = Some(metrics);
        }
        if let Some(audit) = raw.audit {
            if let Some(bytes) = audit.rotate_bytes {
                if bytes < MIN_AUDIT_ROTATE_BYTES {
                    return Err(invalid(format!(
                        "[audit] rotate-bytes {bytes}: at least {MIN_AUDIT_ROTATE_BYTES}"
                    )));
                }
                config.audit_rotate_bytes = bytes;
            }
            if let Some(days) = audit.retention_days {
                if days == 0 {
                    return Err(invalid(
                        "[audit] retention-days 0: at least 1 (to keep the log forever, set more days than the machine will live)".into(),
                    ));
                }
                config.audit_retention_days = days;
            }
        }
        for (tenant, sla) in &raw.reports {
            let id = TenantId::new(tenant.clone())
                .map_err(|e| invalid(format!("[reports.{tenant}]: {e}")))?;
            if !config.tenants.contains(&id) {
                return Err(invalid(format!(
                    "[reports.{tenant}]: {tenant} is not one of the tenants"
                )));
            }
            let settings = sla
                .check()
                .map_err(|e| invalid(format!("[reports.{tenant}]: {e}")))?;
            config.reports.insert(id, settings);
        }
        if let Some(raw) = raw.report_delivery {
            let dir = match raw.dir {
                Some(d) if d.is_relative() => config.data_dir.join(d),
                Some(d) => d,
                None => config.data_dir.join("reports"),
            };
            let mut formats = Vec::new();
            for f in if raw.formats.is_empty() {
                vec!["pdf".to_string()]
            } else {
                raw.formats
            } {
                let format = crate::report::ReportFormat::parse(&f).ok_or_else(|| {
                    invalid(format!(
                        "[report-delivery] format {f:?}: one of pdf, html, csv"
                    ))
                })?;
                if !formats.contains(&format) {
                    formats.push(format);
                }
            }
            let day = raw.day.unwrap_or(1);
            if !(1..=28).contains(&day) {
                return Err(invalid(format!(
                    "[report-delivery] day {day}: 1 ..= 28 (a day every month has)"
                )));
            }
            config.report_delivery = Some(crate::report::delivery::ReportDelivery {
                dir,
                formats,
                day,
                tenants: config.tenants.clone(),
            });
        }
        if let Some(raw) = raw.approvals {
            config.approvals =
                Some(crate::approvals::ApprovalPolicy::from_raw(raw).map_err(invalid)?);
        }
        if let Some(raw) = raw.console {
            let listen = raw
                .listen
                .parse()
                .map_err(|e| invalid(format!("[console] listen {:?}: {e}", raw.listen)))?;
            let idle = raw.idle_timeout_secs.unwrap_or(DEFAULT_CONSOLE_IDLE_SECS);
            let absolute = raw
                .absolute_timeout_secs
                .unwrap_or(DEFAULT_CONSOLE_ABSOLUTE_SECS);
            if idle == 0 || absolute < idle {
                return Err(invalid(format!(
                    "[console] idle-timeout-secs {idle} must be at least 1 and at most absolute-timeout-secs {absolute}"
                )));
            }
            let tls = match (raw.tls_cert, raw.tls_key) {
                (Some(cert), Some(key)) => {
                    let at = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };
                    Some(ConsoleTls {
                        cert: at(cert),
                        key: at(key),
                    })
                }
                (None, None) => None,
                _ => {
                    return Err(invalid(
                        "[console] tls-cert and tls-key go together: set both, or neither".into(),
                    ));
                }
            };
            config.console = Some(ConsoleSettings {
                listen,
                idle_timeout_secs: idle,
                absolute_timeout_secs: absolute,
                // Over its own TLS the cookie is always Secure.
                secure_cookies: raw.secure_cookies || tls.is_some(),
                tls,
            });
        }
        Ok(config)
    }

    /// Where agents are told to connect.
    pub fn agent_urls(&self) -> Vec<String> {
        if self.agent_nats_urls.is_empty() {
            vec![self.nats_url.clone()]
        } else {
            self.agent_nats_urls.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_parses_and_unknown_keys_are_refused() {
        let path = Path::new("/etc/warden/controller.toml");
        let text = r#"
            data-dir = "data"
            listen = "127.0.0.1:0"
            tenants = ["acme"]
            results-replicas = 3
            [[tokens]]
            name = "acme-it"
            role = "viewer"
            sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
            tenant = "acme"
        "#;
        let c = ControllerConfig::parse(text, path).expect("config");
        assert_eq!(c.data_dir, Path::new("/etc/warden/data"));
        assert_eq!(c.results_replicas, 3);
        assert_eq!(c.agent_urls(), vec![DEFAULT_NATS_URL.to_string()]);
        let err = ControllerConfig::parse("tenant = [\"x\"]", path).expect_err("unknown key");
        assert!(err.to_string().contains("unknown field"), "{err}");
        assert!(ControllerConfig::parse("results-replicas = 2", path).is_err());
        assert!(ControllerConfig::parse("tenants = [\"Acme\"]", path).is_err());
    }

    #[test]
    fn the_console_section_sets_its_listen_address_and_timeouts() {
        let path = Path::new("/etc/warden/controller.toml");
        assert_eq!(
            ControllerConfig::parse("", path).expect("defaults").console,
            None
        );
        let c = ControllerConfig::parse("[console]\nlisten = \"127.0.0.1:7480\"", path)
            .expect("config");
        let console = c.console.expect("a console");
        assert_eq!(console.listen.port(), 7480);
        assert_eq!(console.idle_timeout_secs, DEFAULT_CONSOLE_IDLE_SECS);
        assert_eq!((console.tls, console.secure_cookies), (None, false));
        // Its own TLS: paths beside the config file, and the cookie always Secure.
        let c = ControllerConfig::parse(
            "[console]\nlisten = \"0.0.0.0:7443\"\ntls-cert = \"console.pem\"\n\
             tls-key = \"/etc/ssl/private/console.key\"",
            path,
        )
        .expect("config");
        let console = c.console.expect("a console");
        assert_eq!(
            console.tls,
            Some(ConsoleTls {
                cert: "/etc/warden/console.pem".into(),
                key: "/etc/ssl/private/console.key".into(),
            })
        );
        assert!(console.secure_cookies);
        for bad in [
            "[console]\nlisten = \"127.0.0.1:1\"\ntls-cert = \"console.pem\"",
            "[console]\nlisten = \"127.0.0.1:1\"\ntls-key = \"console.key\"",
            "[console]",
            "[console]\nlisten = \"nowhere\"",
            "[console]\nlisten = \"127.0.0.1:1\"\nidle-timeout-secs = 0",
            "[console]\nlisten = \"127.0.0.1:1\"\nidle-timeout-secs = 10\nabsolute-timeout-secs = 5",
        ] {
            assert!(ControllerConfig::parse(bad, path).is_err(), "{bad}");
        }
    }

    #[test]
    fn report_settings_are_per_known_tenant_and_checked() {
        let path = Path::new("/etc/warden/controller.toml");
        let c = ControllerConfig::parse(
            "tenants = [\"acme\"]\n[reports.acme.targets]\nP1 = 60\n\
             [[reports.acme.service]]\nmonitor = \"backup*\"\npriority = \"P1\"\ncsf = \"RC.RP\"\n",
            path,
        )
        .expect("config");
        let acme = TenantId::new("acme").expect("tenant");
        let settings = c.reports.get(&acme).expect("acme's settings");
        assert_eq!(
            settings.targets.get(&warden_report::Priority::P1),
            Some(&3_600_000)
        );
        assert_eq!(settings.rules.len(), 1);
        for (bad, says) in [
            (
                "tenants = [\"acme\"]\n[reports.globex.targets]\nP1 = 1",
                "not one of the tenants",
            ),
            (
                "tenants = [\"acme\"]\n[reports.acme.targets]\nP7 = 1",
                "[reports.acme]: priority `P7`",
            ),
            (
                "tenants = [\"acme\"]\n[reports.acme]\nsla = 1",
                "unknown field",
            ),
        ] {
            let err = ControllerConfig::parse(bad, path).expect_err(bad);
            assert!(err.to_string().contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn report_delivery_defaults_to_pdf_on_day_one_in_the_data_dir() {
        let path = Path::new("/etc/warden/controller.toml");
        let c = ControllerConfig::parse(
            "data-dir = \"/var/lib/wc\"\ntenants = [\"acme\"]\n[report-delivery]\n",
            path,
        )
        .expect("config");
        let d = c.report_delivery.expect("delivery");
        assert_eq!(d.dir, Path::new("/var/lib/wc/reports"));
        assert_eq!(d.formats, [crate::report::ReportFormat::Pdf]);
        assert_eq!((d.day, d.tenants.len()), (1, 1));
        for (bad, says) in [
            ("[report-delivery]\nday = 29", "1 ..= 28"),
            (
                "[report-delivery]\nformats = [\"docx\"]",
                "one of pdf, html, csv",
            ),
            ("[report-delivery]\nevery = 1", "unknown field"),
        ] {
            let err = ControllerConfig::parse(bad, path).expect_err(bad);
            assert!(err.to_string().contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn the_approvals_section_is_optional_and_checked() {
        let path = Path::new("/etc/warden/controller.toml");
        let c = ControllerConfig::parse("", path).expect("defaults");
        assert_eq!(c.approvals, None, "no section: nothing waits");
        let c = ControllerConfig::parse("[approvals]\nmax-agents = 5\nmulti-tenant = true", path)
            .expect("config");
        let p = c.approvals.expect("a policy");
        assert_eq!((p.max_agents, p.multi_tenant), (Some(5), true));
        for bad in [
            "[approvals]",
            "[approvals]\nmax-percent = 0",
            "[approvals]\nmax = 1",
        ] {
            let err = ControllerConfig::parse(bad, path).expect_err(bad);
            assert!(
                err.to_string().contains("approvals") || err.to_string().contains("unknown"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn the_audit_section_sets_rotation_and_retention_within_bounds() {
        let path = Path::new("/etc/warden/controller.toml");
        let c = ControllerConfig::parse("", path).expect("defaults");
        assert_eq!(c.audit_retention_days, 2190);
        assert_eq!(
            c.audit_rotate_bytes,
            warden_audit::files::DEFAULT_ROTATE_BYTES
        );
        let c =
            ControllerConfig::parse("[audit]\nrotate-bytes = 2097152\nretention-days = 30", path)
                .expect("config");
        assert_eq!(
            (c.audit_rotate_bytes, c.audit_retention_days),
            (2 << 20, 30)
        );
        for bad in [
            "[audit]\nretention-days = 0",
            "[audit]\nrotate-bytes = 1",
            "[audit]\nkeep = 1",
        ] {
            let err = ControllerConfig::parse(bad, path).expect_err(bad);
            assert!(
                err.to_string().contains("audit") || err.to_string().contains("unknown"),
                "{bad}: {err}"
            );
        }
    }
}
