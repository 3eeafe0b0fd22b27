//! An agent's heartbeat, on `fleet.hb.<tenant>.<agent>` (core NATS, fire and forget: a lost
//! heartbeat is replaced by the next). It is the agent's presence and its whole inventory, so
//! the controller needs no other message to list the fleet, and a controller that restarts
//! knows every online agent again within one interval.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use warden_fleet_identity::{AgentId, TenantId, subjects};

use crate::WIRE_VERSION;
use crate::codec::{Malformed, Message, check_name, check_text};
use crate::time::UnixMillis;

/// Largest encoded heartbeat: 80 KiB. Every field at its bound at once is about 65 KiB
/// ([`MAX_TAGS`] tags and [`MAX_PLUGINS`] plugins about 50 KiB, the compliance references,
/// windows and failing checks the rest; `heartbeat_bounds_hold` builds it), so an agent within
/// every bound always fits; at 10,000 agents every 30 s the typical few-KiB heartbeat is about
/// 1 MiB/s at the controller, the cap bounds a misbehaving one.
pub const MAX_HEARTBEAT_BYTES: usize = 80 * 1024;
/// Tags (from the agent's config and its discovery facts): what targets select on.
pub const MAX_TAGS: usize = 64;
pub const MAX_TAG_KEY_LEN: usize = 64;
pub const MAX_TAG_VALUE_LEN: usize = 256;
/// Installed plugins listed.
pub const MAX_PLUGINS: usize = 128;
pub const MAX_PLUGIN_NAME_LEN: usize = 64;
pub const MAX_VERSION_LEN: usize = 64;
pub const MAX_HOSTNAME_LEN: usize = 255;
pub const MAX_OS_LEN: usize = 64;
/// Longest interval an agent may announce: 10 minutes. The controller computes "overdue" from
/// it; an agent announcing an hour would look online an hour after it died.
pub const MAX_HEARTBEAT_INTERVAL_MS: i64 = 10 * 60 * 1000;
/// Shortest: 1 s (a shorter one is a load on the controller, not more presence).
pub const MIN_HEARTBEAT_INTERVAL_MS: i64 = 1000;
/// Compliance references (HIPAA and CMMC, all plugins together) one heartbeat may carry: the
/// five first-party checks claim ten; 64 at [`MAX_COMPLIANCE_REF_LEN`] is 2 KiB, which keeps
/// a heartbeat with every other field at its bound under [`MAX_HEARTBEAT_BYTES`].
pub const MAX_COMPLIANCE_REFS: usize = 64;
/// `164.312(a)(2)(iv)`, `SC.L2-3.13.16`: short; a long one is not a reference.
pub const MAX_COMPLIANCE_REF_LEN: usize = 32;
/// Maintenance windows one heartbeat may report (issue 16, approvals): an agent has a few;
/// 16 at their bounds are about 5 KiB, within [`MAX_HEARTBEAT_BYTES`] with every other field
/// at its bound.
pub const MAX_WINDOWS: usize = 16;
pub const MAX_WINDOW_NAME_LEN: usize = 64;
/// A cron expression of 5 or 6 fields: long lists fit, a paragraph does not.
pub const MAX_WINDOW_CRON_LEN: usize = 128;
/// An IANA zone name (`America/Argentina/ComodRivadavia` is 32).
pub const MAX_WINDOW_TIMEZONE_LEN: usize = 64;
/// Longest window: 7 days, the agent's own bound on `[[maintenance-window]] duration`.
pub const MAX_WINDOW_SECS: u64 = 7 * 86_400;

/// Most failing checks a heartbeat names ([`Heartbeat::failing`]); `open_incidents` still
/// counts them all.
pub const MAX_FAILING: usize = 64;
/// Longest failing check's name: monitor names are short; 64 of these are 8 KiB, within
/// [`MAX_HEARTBEAT_BYTES`] with every other field at its bound.
pub const MAX_FAILING_NAME_LEN: usize = 128;

/// Most pending patches a heartbeat may report: far above any real machine's (a Debian
/// archive has about 60,000 packages), so a larger count is a broken or lying agent.
pub const MAX_PATCHES_PENDING: u32 = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub v: u32,
    pub agent: AgentId,
    pub tenant: TenantId,
    pub agent_version: String,
    pub hostname: String,
    /// `linux`, `windows`, `macos` (Rust's `std::env::consts::OS`).
    pub os: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub plugins: Vec<PluginInfo>,
    #[serde(default)]
    pub open_incidents: u32,
    /// The monitors with an open incident, by name (at most [`MAX_FAILING`], each at most
    /// [`MAX_FAILING_NAME_LEN`] bytes, as their incident events name them): what
    /// the NOC's fleet table shows as failing checks. Left out when empty, so an older
    /// controller reads the heartbeat as before, and an older agent's reads as none named.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failing: Vec<String>,
    /// The agent's latest patch scan; `None`: it never ran one (or is older than issue 18),
    /// which is not "nothing pending". Left out of the JSON when `None`, so an older
    /// controller reads the heartbeat as before and a newer one reads an older agent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patches: Option<PatchSummary>,
    /// The agent's `[[maintenance-window]]`s, as written in its automation config (issue 16:
    /// the controller's approvals gate a maintenance runbook outside them). `None`: an agent
    /// older than this field, which is not "no windows"; `Some(empty)`: it has none. Left out
    /// of the JSON when `None`, as `patches` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub windows: Option<Vec<WindowInfo>>,
    pub sent_at: UnixMillis,
    /// Per agent process, from 1; a restart starts again at 1 (with a later `sent_at`).
    pub seq: u64,
    /// When the next heartbeat is due, in ms after this one.
    pub interval_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    /// Hex SHA-256 of the installed component.
    pub sha256: String,
    /// The HIPAA 164.312 safeguards its manifest's `[compliance]` claims (issue 18, the
    /// client report's compliance section); left out of the JSON when empty, so an older
    /// controller reads the heartbeat as before and a newer one reads an older agent's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hipaa: Vec<String>,
    /// The CMMC practices it claims.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cmmc: Vec<String>,
}

impl PluginInfo {
    /// A plugin that claims no control.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        sha256: impl Into<String>,
    ) -> PluginInfo {
        PluginInfo {
            name: name.into(),
            version: version.into(),
            sha256: sha256.into(),
            hipaa: Vec::new(),
            cmmc: Vec::new(),
        }
    }
}

/// One maintenance window as the agent's config declares it: it opens at each `cron` firing
/// in `timezone` and stays open `duration_secs`. The controller evaluates it with the agent's
/// own window logic (`warden-automation`), so both sides read a window the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowInfo {
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub duration_secs: u64,
}

impl WindowInfo {
    /// The wire's bounds (see [`Message::check`] of [`Heartbeat`]). The cron expression and the
    /// zone are only checked as text here: the wire does not parse cron; a receiver that cannot
    /// read one treats that window as never open.
    pub fn check(&self) -> Result<(), Malformed> {
        check_name("windows.name", &self.name, MAX_WINDOW_NAME_LEN)?;
        check_text("windows.cron", &self.cron, MAX_WINDOW_CRON_LEN)?;
        check_text("windows.timezone", &self.timezone, MAX_WINDOW_TIMEZONE_LEN)?;
        if !(1..=MAX_WINDOW_SECS).contains(&self.duration_secs) {
            return Err(Malformed::new(
                "windows.duration_secs",
                format!("{} not within 1 ..= {MAX_WINDOW_SECS}", self.duration_secs),
            ));
        }
        Ok(())
    }
}

/// What the agent's latest patch discovery found (issue 18): the `patch-status` facts of
/// `apt-updates` (docs/PATCHING.md), as the NOC's fleet table shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchSummary {
    /// Upgradable packages.
    pub pending: u32,
    /// Of them, security updates (at most `pending`).
    pub security: u32,
    /// The machine must reboot to finish an upgrade (`/run/reboot-required`).
    pub reboot_required: bool,
    /// When the scan ran, by the agent's clock.
    pub scanned_at: UnixMillis,
}

impl PatchSummary {
    /// The counts as the NOC's tables show them: `12 (3 security)`, `4`, `0`.
    pub fn pending_text(&self) -> String {
        if self.security == 0 {
            self.pending.to_string()
        } else {
            format!("{} ({} security)", self.pending, self.security)
        }
    }

    /// The wire's bounds (see [`Message::check`] of [`Heartbeat`]).
    pub fn check(&self) -> Result<(), Malformed> {
        if self.pending > MAX_PATCHES_PENDING {
            return Err(Malformed::new(
                "patches.pending",
                format!("{} pending, at most {MAX_PATCHES_PENDING}", self.pending),
            ));
        }
        if self.security > self.pending {
            return Err(Malformed::new(
                "patches.security",
                format!(
                    "{} security updates of {} pending",
                    self.security, self.pending
                ),
            ));
        }
        if self.scanned_at.as_millis() <= 0 {
            return Err(Malformed::new(
                "patches.scanned_at",
                format!("{} is not a time", self.scanned_at.as_millis()),
            ));
        }
        Ok(())
    }
}

/// Whether `r` has a compliance reference's shape on the wire: 1 to [`MAX_COMPLIANCE_REF_LEN`]
/// bytes of `a-z A-Z 0-9 . - ( )` (the agent checked each against its framework at install).
pub fn is_compliance_reference(r: &str) -> bool {
    (1..=MAX_COMPLIANCE_REF_LEN).contains(&r.len())
        && r.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '(' | ')'))
}

fn check_reference(r: &str) -> Result<(), Malformed> {
    if is_compliance_reference(r) {
        Ok(())
    } else {
        Err(Malformed::new(
            "plugins.compliance",
            format!("{r:?} is not 1 to {MAX_COMPLIANCE_REF_LEN} of a-z A-Z 0-9 . - ( )"),
        ))
    }
}

impl Heartbeat {
    pub fn nats_subject(&self) -> String {
        subjects::heartbeat(&self.tenant, &self.agent)
    }

    /// Heartbeats are core NATS; this id only tells copies apart in logs.
    pub fn msg_id(&self) -> String {
        format!(
            "{}.hb.{}.{}",
            self.agent,
            self.sent_at.as_millis(),
            self.seq
        )
    }

    /// A heartbeat with no tags, plugins, incidents or patch scan.
    pub fn new(
        tenant: TenantId,
        agent: AgentId,
        sent_at: UnixMillis,
        seq: u64,
        interval_ms: i64,
    ) -> Heartbeat {
        Heartbeat {
            v: WIRE_VERSION,
            agent,
            tenant,
            agent_version: String::new(),
            hostname: String::new(),
            os: String::new(),
            tags: BTreeMap::new(),
            plugins: Vec::new(),
            open_incidents: 0,
            failing: Vec::new(),
            patches: None,
            windows: None,
            sent_at,
            seq,
            interval_ms,
        }
    }
}

impl Message for Heartbeat {
    const KIND: &'static str = "heartbeat";
    const MAX_BYTES: usize = MAX_HEARTBEAT_BYTES;

    fn version(&self) -> u32 {
        self.v
    }

    fn check(&self) -> Result<(), Malformed> {
        check_text("agent_version", &self.agent_version, MAX_VERSION_LEN)?;
        check_text("hostname", &self.hostname, MAX_HOSTNAME_LEN)?;
        check_text("os", &self.os, MAX_OS_LEN)?;
        if !(MIN_HEARTBEAT_INTERVAL_MS..=MAX_HEARTBEAT_INTERVAL_MS).contains(&self.interval_ms) {
            return Err(Malformed::new(
                "interval_ms",
                format!(
                    "{} not within {MIN_HEARTBEAT_INTERVAL_MS} ..= {MAX_HEARTBEAT_INTERVAL_MS}",
                    self.interval_ms
                ),
            ));
        }
        if self.tags.len() > MAX_TAGS {
            return Err(Malformed::new(
                "tags",
                format!("{} tags, at most {MAX_TAGS}", self.tags.len()),
            ));
        }
        for (key, value) in &self.tags {
            check_name("tags", key, MAX_TAG_KEY_LEN)?;
            check_text(&format!("tags.{key}"), value, MAX_TAG_VALUE_LEN)?;
        }
        if self.plugins.len() > MAX_PLUGINS {
            return Err(Malformed::new(
                "plugins",
                format!("{} plugins, at most {MAX_PLUGINS}", self.plugins.len()),
            ));
        }
        for p in &self.plugins {
            check_name("plugins.name", &p.name, MAX_PLUGIN_NAME_LEN)?;
            check_text("plugins.version", &p.version, MAX_VERSION_LEN)?;
            if p.sha256.len() != 64 || !p.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Malformed::new("plugins.sha256", "not 64 hex digits"));
            }
            for r in p.hipaa.iter().chain(&p.cmmc) {
                check_reference(r)?;
            }
        }
        let refs: usize = self
            .plugins
            .iter()
            .map(|p| p.hipaa.len() + p.cmmc.len())
            .sum();
        if refs > MAX_COMPLIANCE_REFS {
            return Err(Malformed::new(
                "plugins.compliance",
                format!("{refs} references, at most {MAX_COMPLIANCE_REFS}"),
            ));
        }
        if self.failing.len() > MAX_FAILING {
            return Err(Malformed::new(
                "failing",
                format!("{} checks, at most {MAX_FAILING}", self.failing.len()),
            ));
        }
        for name in &self.failing {
            if name.is_empty() {
                return Err(Malformed::new("failing", "an empty name"));
            }
            check_text("failing", name, MAX_FAILING_NAME_LEN)?;
        }
        if let Some(patches) = &self.patches {
            patches.check()?;
        }
        if let Some(windows) = &self.windows {
            if windows.len() > MAX_WINDOWS {
                return Err(Malformed::new(
                    "windows",
                    format!("{} windows, at most {MAX_WINDOWS}", windows.len()),
                ));
            }
            for w in windows {
                w.check()?;
            }
        }
        Ok(())
    }
}
