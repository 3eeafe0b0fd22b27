//! Desired state and its reports (issue 16): what the controller wants installed on one agent,
//! and what the agent says it did about each item.
//!
//! - [`DesiredState`]: the value of the agent's own key `<tenant>.<agent>` in the KV bucket
//!   `desired`, the whole document for that agent (RePublished to `fleet.desired.<t>.<a>`; the
//!   agent Direct-Gets it on connect and on each notice). The controller writes it; the agent
//!   trusts none of it beyond "which signed artifact to fetch": every item is installed only
//!   after the bundle's publisher signature passes the agent's own trust policy.
//! - Blobs: a bundle is stored in chunks of [`BLOB_CHUNK_BYTES`] on
//!   `fleet.blob.<tenant>.<sha256>.<n>` and read by Direct-Get, no consumer per agent.
//! - [`DeployReport`]: per item and bundle digest, into the results stream on
//!   `fleet.res.<t>.<a>.deploy`, `Nats-Msg-Id` = [`DeployReport::msg_id`].

use serde::{Deserialize, Serialize};
use warden_fleet_identity::{AgentId, TenantId, subjects};

use crate::WIRE_VERSION;
use crate::codec::{Malformed, Message, check_name, check_text};
use crate::heartbeat::{MAX_PLUGIN_NAME_LEN, MAX_VERSION_LEN};
use crate::result::MAX_ERROR_LEN;
use crate::time::UnixMillis;

/// Largest encoded desired document: 64 KiB. [`MAX_DESIRED_ITEMS`] items at their bounds are
/// about 40 KiB; the document is rewritten whole for each change, so it stays small.
pub const MAX_DESIRED_BYTES: usize = 64 * 1024;
/// Items desired on one agent at most (the heartbeat lists as many installed plugins).
pub const MAX_DESIRED_ITEMS: usize = crate::heartbeat::MAX_PLUGINS;
/// One blob chunk: 256 KiB, a quarter of NATS' default `max_payload` (1 MiB), so a chunk and
/// the Direct-Get reply's headers always fit whatever the server's payload setting above 512 KiB;
/// an 18 MB plugin is 72 round trips.
pub const BLOB_CHUNK_BYTES: usize = 256 * 1024;
/// Largest bundle distributed: 64 MiB (an 18 MB Python plugin with room; the agent's own
/// `max-bundle-bytes` may be lower and is checked by its install path).
pub const MAX_BLOB_BYTES: u64 = 64 * 1024 * 1024;
/// Largest signed policy distributed: 2 MiB (a policy file is at most 1 MiB; its signed header
/// is small).
pub const MAX_POLICY_BLOB_BYTES: u64 = 2 * 1024 * 1024;
/// Largest signed runbook distributed: the size a command may carry inline.
pub const MAX_RUNBOOK_BLOB_BYTES: u64 = crate::command::MAX_BUNDLE_BYTES as u64;
/// Largest encoded report.
pub const MAX_REPORT_BYTES: usize = 4 * 1024;
/// The suffix of the results subject deploy reports use (`fleet.res.<t>.<a>.deploy`).
pub const DEPLOY_SUBJECT_SUFFIX: &str = "deploy";

/// The whole desired document of one agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredState {
    pub v: u32,
    pub tenant: TenantId,
    pub agent: AgentId,
    pub updated_at: UnixMillis,
    #[serde(default)]
    pub plugins: Vec<DesiredPlugin>,
    /// A signed site policy for the agent (applied only when signed by a policy key of the
    /// agent's own file); `None`: the agent keeps the policy it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<DesiredPolicy>,
    /// Signed runbooks the agent should hold (in its runbooks directory, where the fleet's
    /// commands run them by name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runbooks: Vec<DesiredRunbook>,
    /// Plugins and runbooks the agent should no longer hold. Removal keeps the agent's
    /// anti-rollback marks: a removed plugin comes back only at its highest version or above.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<DesiredRemoval>,
}

/// An item to remove; `sha256` names this removal (not an artifact: a digest the controller
/// derives from the item and the time of the request), so its report is told apart from the
/// reports about the bundles the item had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredRemoval {
    #[serde(default)]
    pub kind: ItemKind,
    pub name: String,
    pub sha256: String,
}

/// A signed runbook the agent should hold, named by its bundle's digest. Runbooks carry no
/// semver: `signed` (the statement's signing time, RFC 3339) orders them, and an agent refuses
/// one signed before the copy it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredRunbook {
    pub name: String,
    pub signed: String,
    /// Hex SHA-256 of the whole bundle file (the blob), lowercase.
    pub sha256: String,
    pub size: u64,
}

/// The prefix under which the controller keeps a desired runbook beside the plugins (its
/// store's rows, `warden fleet status runbook:<name>`): no plugin name holds a `:`.
pub const RUNBOOK_ITEM_PREFIX: &str = "runbook:";

/// The signed site policy the agent should have, named by its bundle's digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredPolicy {
    pub version: String,
    /// Hex SHA-256 of the whole bundle file (the blob), lowercase.
    pub sha256: String,
    pub size: u64,
}

/// The name under which the controller keeps an agent's desired policy beside its plugins
/// (its store's rows, `warden fleet status @policy`): no plugin name starts with `@`.
pub const POLICY_ITEM: &str = "@policy";
/// The name of a policy in a deploy report (the signed statement's name).
pub const POLICY_REPORT_NAME: &str = "site-policy";

/// What a desired item is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ItemKind {
    #[default]
    Plugin,
    Policy,
    Runbook,
}

impl ItemKind {
    fn is_plugin(&self) -> bool {
        *self == ItemKind::Plugin
    }
}

/// One plugin the agent should have: a signed bundle, named by its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredPlugin {
    pub name: String,
    pub version: String,
    /// Hex SHA-256 of the whole bundle file (the blob), lowercase.
    pub sha256: String,
    pub size: u64,
}

impl DesiredPlugin {
    /// Chunks the blob is stored in.
    pub fn chunks(&self) -> u32 {
        chunk_count(self.size)
    }
}

/// Chunks of [`BLOB_CHUNK_BYTES`] a blob of `size` bytes takes (at least one: an empty blob is
/// one empty chunk).
pub fn chunk_count(size: u64) -> u32 {
    let chunk = BLOB_CHUNK_BYTES as u64;
    u32::try_from(size.div_ceil(chunk).max(1)).unwrap_or(u32::MAX)
}

/// Whether `s` is a lowercase hex SHA-256.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl DesiredState {
    pub fn new(tenant: TenantId, agent: AgentId, updated_at: UnixMillis) -> DesiredState {
        DesiredState {
            v: WIRE_VERSION,
            tenant,
            agent,
            updated_at,
            plugins: Vec::new(),
            policy: None,
            runbooks: Vec::new(),
            remove: Vec::new(),
        }
    }

    /// The KV key: `<tenant>.<agent>`.
    pub fn key(&self) -> String {
        desired_key(&self.tenant, &self.agent)
    }
}

/// The KV key of an agent's desired document.
pub fn desired_key(tenant: &TenantId, agent: &AgentId) -> String {
    format!("{tenant}.{agent}")
}

impl Message for DesiredState {
    const KIND: &'static str = "desired state";
    const MAX_BYTES: usize = MAX_DESIRED_BYTES;

    fn version(&self) -> u32 {
        self.v
    }

    fn check(&self) -> Result<(), Malformed> {
        if self.plugins.len() > MAX_DESIRED_ITEMS {
            return Err(Malformed::new(
                "plugins",
                format!("{} items, at most {MAX_DESIRED_ITEMS}", self.plugins.len()),
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for p in &self.plugins {
            check_name("plugins.name", &p.name, MAX_PLUGIN_NAME_LEN)?;
            check_text("plugins.version", &p.version, MAX_VERSION_LEN)?;
            if !is_sha256(&p.sha256) {
                return Err(Malformed::new(
                    "plugins.sha256",
                    "not a lowercase hex SHA-256",
                ));
            }
            if p.size > MAX_BLOB_BYTES {
                return Err(Malformed::new(
                    "plugins.size",
                    format!("{} bytes, at most {MAX_BLOB_BYTES}", p.size),
                ));
            }
            if !names.insert(p.name.as_str()) {
                return Err(Malformed::new(
                    "plugins.name",
                    format!("{} is desired twice", p.name),
                ));
            }
        }
        if self.runbooks.len() > MAX_DESIRED_ITEMS {
            return Err(Malformed::new(
                "runbooks",
                format!("{} items, at most {MAX_DESIRED_ITEMS}", self.runbooks.len()),
            ));
        }
        let mut runbooks = std::collections::BTreeSet::new();
        for r in &self.runbooks {
            check_name("runbooks.name", &r.name, MAX_PLUGIN_NAME_LEN)?;
            check_text("runbooks.signed", &r.signed, MAX_VERSION_LEN)?;
            if !is_sha256(&r.sha256) {
                return Err(Malformed::new(
                    "runbooks.sha256",
                    "not a lowercase hex SHA-256",
                ));
            }
            if r.size > MAX_RUNBOOK_BLOB_BYTES {
                return Err(Malformed::new(
                    "runbooks.size",
                    format!("{} bytes, at most {MAX_RUNBOOK_BLOB_BYTES}", r.size),
                ));
            }
            if !runbooks.insert(r.name.as_str()) {
                return Err(Malformed::new(
                    "runbooks.name",
                    format!("{} is desired twice", r.name),
                ));
            }
        }
        if self.remove.len() > MAX_DESIRED_ITEMS {
            return Err(Malformed::new(
                "remove",
                format!("{} items, at most {MAX_DESIRED_ITEMS}", self.remove.len()),
            ));
        }
        for r in &self.remove {
            check_name("remove.name", &r.name, MAX_PLUGIN_NAME_LEN)?;
            if r.kind == ItemKind::Policy {
                return Err(Malformed::new(
                    "remove.kind",
                    "a site policy is replaced by a newer one, never removed",
                ));
            }
            if !is_sha256(&r.sha256) {
                return Err(Malformed::new(
                    "remove.sha256",
                    "not a lowercase hex SHA-256",
                ));
            }
            let desired = match r.kind {
                ItemKind::Runbook => self.runbooks.iter().any(|d| d.name == r.name),
                _ => self.plugins.iter().any(|d| d.name == r.name),
            };
            if desired {
                return Err(Malformed::new(
                    "remove.name",
                    format!("{} is both desired and removed", r.name),
                ));
            }
        }
        if let Some(p) = &self.policy {
            check_text("policy.version", &p.version, MAX_VERSION_LEN)?;
            if !is_sha256(&p.sha256) {
                return Err(Malformed::new(
                    "policy.sha256",
                    "not a lowercase hex SHA-256",
                ));
            }
            if p.size > MAX_POLICY_BLOB_BYTES {
                return Err(Malformed::new(
                    "policy.size",
                    format!("{} bytes, at most {MAX_POLICY_BLOB_BYTES}", p.size),
                ));
            }
        }
        Ok(())
    }
}

/// Longest summary of an [`OwnCheck`] on the wire.
pub const MAX_OWN_CHECK_SUMMARY_LEN: usize = 256;

/// What a check plugin said in the one run its agent gives it right after installing it (with
/// the config of the agent's monitor of that plugin, if it has one): the rolled-out plugin's
/// own result, which a rollout's health gate reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnCheck {
    pub status: OwnCheckStatus,
    /// One line.
    pub summary: String,
}

/// The check's verdict, or `error`: the run itself failed (a trap, a timeout, a capability
/// denied that it needed, output that is no check result).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OwnCheckStatus {
    Ok,
    Warning,
    Critical,
    Unknown,
    Error,
}

impl OwnCheckStatus {
    pub fn name(self) -> &'static str {
        match self {
            OwnCheckStatus::Ok => "ok",
            OwnCheckStatus::Warning => "warning",
            OwnCheckStatus::Critical => "critical",
            OwnCheckStatus::Unknown => "unknown",
            OwnCheckStatus::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<OwnCheckStatus> {
        [
            OwnCheckStatus::Ok,
            OwnCheckStatus::Warning,
            OwnCheckStatus::Critical,
            OwnCheckStatus::Unknown,
            OwnCheckStatus::Error,
        ]
        .into_iter()
        .find(|s| s.name() == text)
    }
}

/// What the agent did about one desired item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployReport {
    pub v: u32,
    pub tenant: TenantId,
    pub agent: AgentId,
    /// A plugin's report, a runbook's, or the site policy's (named [`POLICY_REPORT_NAME`]).
    #[serde(default, skip_serializing_if = "ItemKind::is_plugin")]
    pub kind: ItemKind,
    pub name: String,
    /// The version the desired document named.
    pub version: String,
    /// The desired bundle digest this report is about.
    pub sha256: String,
    pub outcome: DeployOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// An installed check plugin's first run ([`OwnCheck`]); absent for anything else (and
    /// from agents that predate it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<OwnCheck>,
    pub at: UnixMillis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum DeployOutcome {
    /// Installed (or was installed already, at this version).
    Installed,
    /// Removed (or was not there).
    Removed,
    /// Not installed; the agent keeps what it had.
    Refused { reason: DeployRefusal },
}

impl DeployOutcome {
    pub fn name(self) -> &'static str {
        match self {
            DeployOutcome::Installed => "installed",
            DeployOutcome::Removed => "removed",
            DeployOutcome::Refused { .. } => "refused",
        }
    }
}

/// Why an agent did not install a desired item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeployRefusal {
    /// Not signed by a publisher the agent trusts, signature invalid (a manifest changed
    /// after signing), or beyond the key's scope.
    Untrusted,
    /// A version below the agent's anti-rollback high-water mark.
    Rollback,
    /// The fetched bytes do not have the desired digest or size, or are not a bundle of the
    /// desired name and version.
    Mismatch,
    /// The blob could not be fetched (missing, the server away); retried at the next notice.
    Unavailable,
    /// The bundle is valid but does not load on this agent (its component or manifest is
    /// refused by the sandbox, or the agent's limits).
    Invalid,
    /// The agent could not install it (its store or audit log failed); retried at the next
    /// notice.
    AgentError,
}

impl DeployRefusal {
    /// Whether the agent tries the same digest again (at its next notice or connect): a fault
    /// of the transport or of the agent itself, not a verdict on the artifact.
    pub fn is_transient(self) -> bool {
        matches!(self, DeployRefusal::Unavailable | DeployRefusal::AgentError)
    }
}

impl DeployRefusal {
    pub fn name(self) -> &'static str {
        match self {
            DeployRefusal::Untrusted => "untrusted",
            DeployRefusal::Rollback => "rollback",
            DeployRefusal::Mismatch => "mismatch",
            DeployRefusal::Unavailable => "unavailable",
            DeployRefusal::Invalid => "invalid",
            DeployRefusal::AgentError => "agent-error",
        }
    }
}

impl DeployReport {
    /// The name the controller keeps this item under: the plugin's, [`POLICY_ITEM`], or
    /// [`RUNBOOK_ITEM_PREFIX`] and the runbook's.
    pub fn item(&self) -> std::borrow::Cow<'_, str> {
        match self.kind {
            ItemKind::Plugin => self.name.as_str().into(),
            ItemKind::Policy => POLICY_ITEM.into(),
            ItemKind::Runbook => format!("{RUNBOOK_ITEM_PREFIX}{}", self.name).into(),
        }
    }

    /// Where it is published: `fleet.res.<tenant>.<agent>.deploy` (the results stream).
    pub fn nats_subject(&self) -> String {
        format!(
            "{}.{DEPLOY_SUBJECT_SUFFIX}",
            subjects::result(&self.tenant, &self.agent)
        )
    }

    /// `Nats-Msg-Id`: `<agent>.deploy.<sha256>.<outcome>`: one report per digest and outcome,
    /// so a retry after `unavailable` that installs is not deduplicated away.
    pub fn msg_id(&self) -> String {
        let outcome = match self.outcome {
            DeployOutcome::Installed => "installed",
            DeployOutcome::Removed => "removed",
            DeployOutcome::Refused { reason } => reason.name(),
        };
        format!("{}.deploy.{}.{outcome}", self.agent, self.sha256)
    }
}

impl Message for DeployReport {
    const KIND: &'static str = "deploy report";
    const MAX_BYTES: usize = MAX_REPORT_BYTES;

    fn version(&self) -> u32 {
        self.v
    }

    fn check(&self) -> Result<(), Malformed> {
        check_name("name", &self.name, MAX_PLUGIN_NAME_LEN)?;
        check_text("version", &self.version, MAX_VERSION_LEN)?;
        if !is_sha256(&self.sha256) {
            return Err(Malformed::new("sha256", "not a lowercase hex SHA-256"));
        }
        if let Some(error) = &self.error {
            check_text("error", error, MAX_ERROR_LEN)?;
        }
        if let Some(check) = &self.check {
            if self.outcome != DeployOutcome::Installed || self.kind != ItemKind::Plugin {
                return Err(Malformed::new(
                    "check",
                    "only an installed plugin's report carries its check",
                ));
            }
            check_text("check.summary", &check.summary, MAX_OWN_CHECK_SUMMARY_LEN)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, encode};

    fn ids() -> (TenantId, AgentId) {
        (
            TenantId::new("acme").expect("tenant"),
            AgentId::new(nkeys::KeyPair::new_user().public_key()).expect("agent"),
        )
    }

    #[test]
    fn a_desired_document_round_trips_and_refuses_bad_items() {
        let (t, a) = ids();
        let mut doc = DesiredState::new(t.clone(), a.clone(), UnixMillis(1));
        doc.plugins.push(DesiredPlugin {
            name: "disk-usage".into(),
            version: "0.2.0".into(),
            sha256: "ab".repeat(32),
            size: 3 * BLOB_CHUNK_BYTES as u64 + 1,
        });
        let back: DesiredState = decode(&encode(&doc).expect("encode")).expect("decode");
        assert_eq!(back, doc);
        assert_eq!(back.key(), format!("acme.{a}"));
        assert_eq!(back.plugins[0].chunks(), 4);
        assert_eq!(chunk_count(0), 1);
        assert_eq!(chunk_count(BLOB_CHUNK_BYTES as u64), 1);

        let mut twice = doc.clone();
        twice.plugins.push(doc.plugins[0].clone());
        assert!(encode(&twice).is_err());
        let mut bad_digest = doc.clone();
        bad_digest.plugins[0].sha256 = "AB".repeat(32);
        assert!(encode(&bad_digest).is_err());
        let mut huge = doc.clone();
        huge.plugins[0].size = MAX_BLOB_BYTES + 1;
        assert!(encode(&huge).is_err());
        let mut path = doc;
        path.plugins[0].name = "../x".into();
        assert!(encode(&path).is_err());
    }

    #[test]
    fn a_removal_is_of_a_plugin_or_runbook_not_desired_at_once_and_never_of_the_policy() {
        let (t, a) = ids();
        let mut doc = DesiredState::new(t, a, UnixMillis(1));
        doc.remove.push(DesiredRemoval {
            kind: ItemKind::Runbook,
            name: "restart-spooler".into(),
            sha256: "ab".repeat(32),
        });
        let back: DesiredState = decode(&encode(&doc).expect("encode")).expect("decode");
        assert_eq!(back, doc);
        let mut both = doc.clone();
        both.runbooks.push(DesiredRunbook {
            name: "restart-spooler".into(),
            signed: "2026-12-03T00:00:00Z".into(),
            sha256: "cd".repeat(32),
            size: 10,
        });
        assert!(encode(&both).is_err());
        // The same name as a plugin is another item.
        let mut plugin = doc.clone();
        plugin.plugins.push(DesiredPlugin {
            name: "restart-spooler".into(),
            version: "1.0.0".into(),
            sha256: "cd".repeat(32),
            size: 10,
        });
        assert!(encode(&plugin).is_ok());
        let mut policy = doc.clone();
        policy.remove[0].kind = ItemKind::Policy;
        assert!(encode(&policy).is_err());
        let mut bad = doc;
        bad.remove[0].sha256 = "x".into();
        assert!(encode(&bad).is_err());
    }

    #[test]
    fn report_ids_differ_by_outcome_and_subjects_are_the_agents_own() {
        let (t, a) = ids();
        let mut report = DeployReport {
            v: WIRE_VERSION,
            tenant: t,
            agent: a.clone(),
            kind: ItemKind::Plugin,
            name: "disk-usage".into(),
            version: "0.2.0".into(),
            sha256: "cd".repeat(32),
            outcome: DeployOutcome::Refused {
                reason: DeployRefusal::Unavailable,
            },
            error: Some("no blob".into()),
            check: None,
            at: UnixMillis(5),
        };
        let refused = report.msg_id();
        report.outcome = DeployOutcome::Installed;
        assert_ne!(report.msg_id(), refused);
        assert_eq!(report.nats_subject(), format!("fleet.res.acme.{a}.deploy"));
        let back: DeployReport = decode(&encode(&report).expect("encode")).expect("decode");
        assert_eq!(back, report);
    }

    #[test]
    fn an_own_check_travels_with_an_installed_plugin_only_and_is_left_out_when_absent() {
        let (t, a) = ids();
        let mut report = DeployReport {
            v: WIRE_VERSION,
            tenant: t,
            agent: a,
            kind: ItemKind::Plugin,
            name: "disk-usage".into(),
            version: "0.3.0".into(),
            sha256: "cd".repeat(32),
            outcome: DeployOutcome::Installed,
            error: None,
            check: None,
            at: UnixMillis(5),
        };
        let bare = String::from_utf8(encode(&report).expect("encode")).expect("utf-8");
        assert!(!bare.contains("check"), "{bare}");
        report.check = Some(OwnCheck {
            status: OwnCheckStatus::Error,
            summary: "wasm trap: unreachable".into(),
        });
        let back: DeployReport = decode(&encode(&report).expect("encode")).expect("decode");
        assert_eq!(back, report);
        report.outcome = DeployOutcome::Refused {
            reason: DeployRefusal::Untrusted,
        };
        assert!(encode(&report).is_err(), "a refused install ran no check");
        report.outcome = DeployOutcome::Installed;
        report.check = Some(OwnCheck {
            status: OwnCheckStatus::Ok,
            summary: "x".repeat(MAX_OWN_CHECK_SUMMARY_LEN + 1),
        });
        assert!(encode(&report).is_err(), "a summary past its cap");
        assert_eq!(
            OwnCheckStatus::parse("critical"),
            Some(OwnCheckStatus::Critical)
        );
        assert_eq!(OwnCheckStatus::parse("fine"), None);
    }
}
