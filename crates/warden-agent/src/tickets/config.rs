//! `[tickets]` of the agent config: which ticketing plugin (PSA connector) escalations go to,
//! its config, the secrets file merged into that config, when a ticket opens and what resolving
//! does, and the outbox's retry schedule. Parsed strictly; the secrets file is read at start.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use warden_automation::duration::HumanDuration;

/// Largest secrets file read: a few API keys, not a document.
pub const MAX_SECRETS_BYTES: u64 = 64 * 1024;

/// When the ticket of an incident is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpenOn {
    /// When the incident escalates (the fix did not work, or there is none): the PSA hears only
    /// of what needs a person.
    #[default]
    Escalation,
    /// When the incident opens: every remediation attempt is noted on the ticket.
    Incident,
}

/// What resolving the incident does to its ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnResolve {
    /// Close it (with a note saying so).
    #[default]
    Close,
    /// Only note it, for a technician to close.
    Note,
}

/// `[tickets]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TicketsConfig {
    /// The installed ticketing plugin, e.g. `ticket-connectwise`.
    pub plugin: String,
    /// The plugin's config (JSON object; `secrets` is added from `secrets-file`).
    #[serde(default = "empty_object")]
    pub config: serde_json::Value,
    /// A JSON object file with the credentials, relative to the config file's directory; it
    /// must not be readable by group or others. Its content goes to the plugin as
    /// `config.secrets` and nowhere else (no log, no audit record, no history).
    #[serde(default)]
    pub secrets_file: Option<PathBuf>,
    /// The tenant (client) the tickets are for: the connector maps it to board, queue and
    /// priority. Default: `[fleet] tenant`, else `default`.
    #[serde(default)]
    pub tenant: Option<String>,
    #[serde(default)]
    pub open_on: OpenOn,
    #[serde(default)]
    pub on_resolve: OnResolve,
    /// Only these monitors open tickets; empty: all.
    #[serde(default)]
    pub monitors: Vec<String>,
    /// The first retry's delay; each next one doubles, up to `retry-max`, with jitter.
    #[serde(default = "default_retry_initial")]
    pub retry_initial: HumanDuration,
    #[serde(default = "default_retry_max")]
    pub retry_max: HumanDuration,
    /// A call still failing this long after it was queued is dropped (audited `ticket.gave-up`).
    #[serde(default = "default_give_up_after")]
    pub give_up_after: HumanDuration,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// Ten seconds: a PSA that blinked answers the first retry.
fn default_retry_initial() -> HumanDuration {
    HumanDuration::secs(10)
}

/// Fifteen minutes: a PSA down for hours is still tried four times an hour, and the outbox
/// never hammers one that is struggling.
fn default_retry_max() -> HumanDuration {
    HumanDuration::secs(15 * 60)
}

/// Three days: a weekend-long PSA outage still gets its tickets; past that an escalation is
/// stale and the audit log says it was dropped.
fn default_give_up_after() -> HumanDuration {
    HumanDuration::secs(3 * 86_400)
}

impl TicketsConfig {
    /// Check what can be checked without the plugin store; resolve `secrets-file` against `base`.
    pub fn validate(&mut self, base: &Path) -> Result<(), String> {
        warden_core::names::validate_plugin_name(&self.plugin)
            .map_err(|m| format!("[tickets] plugin `{}`: {m}", self.plugin))?;
        if !self.config.is_object() {
            return Err("[tickets] config must be a table".into());
        }
        if self.config.get("secrets").is_some() {
            return Err(
                "[tickets] config has a `secrets` key: put credentials in `secrets-file`, which \
                 is kept out of the config, the logs and the audit log"
                    .into(),
            );
        }
        if self.retry_initial.0.is_zero() || self.retry_max < self.retry_initial {
            return Err(format!(
                "[tickets] retry-initial = {} must be more than 0s and at most retry-max = {}",
                self.retry_initial, self.retry_max
            ));
        }
        if let Some(f) = &self.secrets_file
            && f.is_relative()
        {
            self.secrets_file = Some(base.join(f));
        }
        Ok(())
    }

    /// The retry schedule of `[tickets]`, its jitter drawn from `seed`.
    pub fn retry(&self, seed: u64) -> warden_core::retry::Retry {
        warden_core::retry::Retry::jittered(self.retry_initial.0, self.retry_max.0, seed)
    }

    pub fn give_up_after(&self) -> Duration {
        self.give_up_after.0
    }

    /// Whether `monitor` opens tickets.
    pub fn covers(&self, monitor: &str) -> bool {
        self.monitors.is_empty() || self.monitors.iter().any(|m| m == monitor)
    }
}

/// The secrets, as the plugin gets them; never printed.
#[derive(Clone, Default)]
pub struct Secrets(serde_json::Map<String, serde_json::Value>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} key(s), redacted)", self.0.len())
    }
}

impl Secrets {
    /// Read `path`: a JSON object, not readable by group or others (on Unix).
    pub fn load(path: &Path) -> Result<Secrets, String> {
        let shown = path.display();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(path)
                .map_err(|e| format!("secrets file {shown}: {e}"))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(format!(
                    "secrets file {shown} is readable by group or others (mode {:o}): chmod 600 it",
                    mode & 0o777
                ));
            }
        }
        let bytes = warden_core::fsutil::read_capped(path, MAX_SECRETS_BYTES)
            .map_err(|e| format!("secrets file {shown}: {e}"))?;
        // The parser's message may quote the text; say only where it failed.
        match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(serde_json::Value::Object(map)) => Ok(Secrets(map)),
            Ok(_) => Err(format!("secrets file {shown} must hold a JSON object")),
            Err(e) => Err(format!(
                "secrets file {shown} is not JSON (line {}, column {})",
                e.line(),
                e.column()
            )),
        }
    }

    /// `config` with these secrets under `secrets`.
    pub fn merged_into(&self, config: &serde_json::Value) -> serde_json::Value {
        let mut out = config.clone();
        if let Some(map) = out.as_object_mut()
            && !self.0.is_empty()
        {
            map.insert("secrets".into(), serde_json::Value::Object(self.0.clone()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TicketsConfig, String> {
        let mut c: TicketsConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.validate(Path::new("/etc/warden"))?;
        Ok(c)
    }

    #[test]
    fn defaults_and_a_relative_secrets_file() {
        let c = parse("plugin = \"ticket-webhook\"\nsecrets-file = \"psa.json\"\n").expect("ok");
        assert_eq!(c.open_on, OpenOn::Escalation);
        assert_eq!(c.on_resolve, OnResolve::Close);
        assert_eq!(
            c.secrets_file.as_deref(),
            Some(Path::new("/etc/warden/psa.json"))
        );
        assert!(c.covers("anything"));
    }

    #[test]
    fn credentials_in_the_config_and_a_backwards_retry_are_refused() {
        let err =
            parse("plugin = \"p\"\n[config]\nsecrets = { key = \"x\" }\n").expect_err("secrets");
        assert!(err.contains("secrets-file"), "{err}");
        let err = parse("plugin = \"p\"\nretry-initial = \"10m\"\nretry-max = \"1m\"\n")
            .expect_err("retry");
        assert!(err.contains("retry-max"), "{err}");
        assert!(parse("plugin = \"p\"\nunknown = 1\n").is_err());
    }

    #[test]
    fn a_secrets_file_readable_by_others_is_refused_and_its_text_never_quoted() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("s.json");
        std::fs::write(&path, "{\"private-key\": \"hunter2\" oops").expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            let err = Secrets::load(&path).expect_err("mode");
            assert!(err.contains("chmod 600"), "{err}");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        let err = Secrets::load(&path).expect_err("not json");
        assert!(!err.contains("hunter2"), "{err}");
        std::fs::write(&path, "{\"private-key\": \"hunter2\"}").expect("write");
        let s = Secrets::load(&path).expect("loads");
        assert!(!format!("{s:?}").contains("hunter2"));
        let merged = s.merged_into(&serde_json::json!({"url": "u"}));
        assert_eq!(merged["secrets"]["private-key"], "hunter2");
    }
}
