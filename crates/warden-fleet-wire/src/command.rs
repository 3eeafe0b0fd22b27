//! A command from the controller to one agent, on `fleet.cmd.<tenant>.<agent>` (core NATS, no
//! JetStream: the controller re-sends until the agent answers or the command expires).
//!
//! The agent checks every command with [`Command::validate`] before anything else, then its
//! ledger (a run id it has seen is never run again), then the runbook: a bundle's publisher
//! signature is verified against the **agent's own** trust policy, and a runbook named without a
//! bundle must already be installed on the agent (signed when it was installed). The controller
//! chooses among signed automation; nothing in a command can make the agent run code that no
//! publisher it trusts has signed.

use std::collections::BTreeMap;

use data_encoding::BASE64;
use serde::{Deserialize, Serialize};
use warden_fleet_identity::{AgentId, TenantId, subjects};

use crate::WIRE_VERSION;
use crate::codec::{Malformed, Message, check_name, check_text};
use crate::result::RefusalReason;
use crate::run_id::RunId;
use crate::time::{UnixMillis, minutes};

/// Largest encoded command: 512 KiB. Half of NATS' default `max_payload` (1 MiB), so headers and
/// a server with a lowered limit still fit, and room for [`MAX_BUNDLE_BYTES`] in base64 (4/3)
/// plus the params.
pub const MAX_COMMAND_BYTES: usize = 512 * 1024;
/// Largest signed runbook bundle carried inline: 256 KiB. A runbook bundle is a signed statement
/// plus the runbook's text (a few KiB); plugins are installed through their own channel, never
/// inside a command.
pub const MAX_BUNDLE_BYTES: usize = 256 * 1024;
/// Params of one run: the runbook's inputs, a handful in practice.
pub const MAX_PARAMS: usize = 64;
pub const MAX_PARAM_NAME_LEN: usize = 64;
/// One param value: a path, a service name, a short list; not a file.
pub const MAX_PARAM_VALUE_LEN: usize = 4096;
/// Longest runbook name (as installed on the agent).
pub const MAX_RUNBOOK_NAME_LEN: usize = 128;
/// How far the sender's clock may run ahead of the agent's: 5 minutes. NTP-synced hosts agree
/// within a second; a laptop just out of sleep, before its clock is corrected, can be off by
/// minutes. Beyond this a command "issued in the future" is refused: a controller with a wrong
/// clock must not issue commands whose expiry the agents cannot judge.
pub const MAX_CLOCK_SKEW_MS: i64 = minutes(5);
/// Longest lifetime of a command: 7 days. An offline agent gets a command when it reconnects
/// only until it expires; a week covers a long weekend and a holiday, and bounds how long the
/// agent's ledger must keep the run id ([`Command::keep_in_ledger_until`]).
pub const MAX_COMMAND_LIFETIME_MS: i64 = minutes(7 * 24 * 60);

/// A command, addressed to exactly one agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub v: u32,
    pub run: RunId,
    pub tenant: TenantId,
    /// The addressed agent; an agent refuses a command for anyone else.
    pub agent: AgentId,
    pub issued_at: UnixMillis,
    pub expires_at: UnixMillis,
    pub kind: CommandKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum CommandKind {
    RunRunbook(RunRunbook),
    /// Cancel the run `run` names (queued or running on this agent). Not a run of its own: it
    /// takes no place in the ledger, and a replay or a cancel of a finished or unknown run does
    /// nothing but its audit record.
    Cancel,
}

/// Run a runbook: one installed on the agent by name, or a signed bundle carried here (its
/// statement must name the same runbook if both are given), or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRunbook {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<Bundle>,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    #[serde(default)]
    pub dry_run: bool,
}

/// The bytes of a signed runbook bundle (`warden-bundle` format), base64 on the wire. The
/// controller relays it; only the agent's trust policy decides whether it runs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Bundle(Vec<u8>);

impl Bundle {
    pub fn new(bytes: Vec<u8>) -> Bundle {
        Bundle(bytes)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bundle({} bytes)", self.0.len())
    }
}

impl TryFrom<String> for Bundle {
    type Error = String;
    fn try_from(s: String) -> Result<Bundle, String> {
        // Checked before decoding, so a huge string is not decoded to be refused afterwards.
        if s.len() > MAX_BUNDLE_BYTES.div_ceil(3) * 4 {
            return Err(format!("bundle over {MAX_BUNDLE_BYTES} bytes"));
        }
        BASE64
            .decode(s.as_bytes())
            .map(Bundle)
            .map_err(|e| format!("bundle is not base64: {e}"))
    }
}

impl From<Bundle> for String {
    fn from(b: Bundle) -> String {
        BASE64.encode(&b.0)
    }
}

/// Why an agent refuses a command before running anything. Each maps to the
/// [`RefusalReason`] the agent reports in its result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandRefusal {
    #[error("the command expired at {expires_at:?} (now {now:?})")]
    Expired {
        expires_at: UnixMillis,
        now: UnixMillis,
    },
    #[error("the command is for agent {agent} of tenant {tenant}, not this agent")]
    Misaddressed { tenant: TenantId, agent: AgentId },
    #[error(
        "the command was issued at {issued_at:?}, more than {MAX_CLOCK_SKEW_MS} ms after now \
         ({now:?}): the clocks disagree"
    )]
    FromTheFuture {
        issued_at: UnixMillis,
        now: UnixMillis,
    },
    #[error("the command is malformed: {0}")]
    Malformed(Malformed),
}

impl CommandRefusal {
    pub fn reason(&self) -> RefusalReason {
        match self {
            CommandRefusal::Expired { .. } => RefusalReason::Expired,
            CommandRefusal::Misaddressed { .. } => RefusalReason::Misaddressed,
            CommandRefusal::FromTheFuture { .. } => RefusalReason::ClockSkew,
            CommandRefusal::Malformed(_) => RefusalReason::Invalid,
        }
    }
}

impl Command {
    /// A run-runbook command (the controller's constructor; [`crate::encode`] checks bounds).
    pub fn run_runbook(
        run: RunId,
        tenant: TenantId,
        agent: AgentId,
        issued_at: UnixMillis,
        expires_at: UnixMillis,
        run_runbook: RunRunbook,
    ) -> Command {
        let when = (issued_at, expires_at);
        Command::of(
            run,
            tenant,
            agent,
            when,
            CommandKind::RunRunbook(run_runbook),
        )
    }

    /// A cancel of run `run` on one agent.
    pub fn cancel(
        run: RunId,
        tenant: TenantId,
        agent: AgentId,
        issued_at: UnixMillis,
        expires_at: UnixMillis,
    ) -> Command {
        let when = (issued_at, expires_at);
        Command::of(run, tenant, agent, when, CommandKind::Cancel)
    }

    fn of(
        run: RunId,
        tenant: TenantId,
        agent: AgentId,
        (issued_at, expires_at): (UnixMillis, UnixMillis),
        kind: CommandKind,
    ) -> Command {
        Command {
            v: WIRE_VERSION,
            run,
            tenant,
            agent,
            issued_at,
            expires_at,
            kind,
        }
    }

    /// Where it is published: `fleet.cmd.<tenant>.<agent>`.
    pub fn nats_subject(&self) -> String {
        subjects::command(&self.tenant, &self.agent)
    }

    /// Check the command against the agent's own identity and clock. Order: addressing first
    /// (a command for someone else says nothing about our clock), then time, then shape.
    pub fn validate(
        &self,
        now: UnixMillis,
        me: &AgentId,
        my_tenant: &TenantId,
    ) -> Result<(), CommandRefusal> {
        if &self.agent != me || &self.tenant != my_tenant {
            return Err(CommandRefusal::Misaddressed {
                tenant: self.tenant.clone(),
                agent: self.agent.clone(),
            });
        }
        if self.issued_at.millis_since(now) > MAX_CLOCK_SKEW_MS {
            return Err(CommandRefusal::FromTheFuture {
                issued_at: self.issued_at,
                now,
            });
        }
        if now > self.expires_at {
            return Err(CommandRefusal::Expired {
                expires_at: self.expires_at,
                now,
            });
        }
        self.check().map_err(CommandRefusal::Malformed)
    }

    /// Until when the agent's ledger must keep this run id: after it, a re-send is refused as
    /// expired by [`Command::validate`] anyway (the skew allowance included), so the id can go.
    pub fn keep_in_ledger_until(&self) -> UnixMillis {
        self.expires_at.plus_millis(MAX_CLOCK_SKEW_MS)
    }
}

impl Message for Command {
    const KIND: &'static str = "command";
    const MAX_BYTES: usize = MAX_COMMAND_BYTES;

    fn version(&self) -> u32 {
        self.v
    }

    fn check(&self) -> Result<(), Malformed> {
        let lifetime = self.expires_at.millis_since(self.issued_at);
        if lifetime <= 0 {
            return Err(Malformed::new("expires_at", "not after issued_at"));
        }
        if lifetime > MAX_COMMAND_LIFETIME_MS {
            return Err(Malformed::new(
                "expires_at",
                format!("lifetime {lifetime} ms over {MAX_COMMAND_LIFETIME_MS} ms"),
            ));
        }
        match &self.kind {
            CommandKind::RunRunbook(r) => r.check(),
            CommandKind::Cancel => Ok(()),
        }
    }
}

impl RunRunbook {
    fn check(&self) -> Result<(), Malformed> {
        if self.runbook.is_none() && self.bundle.is_none() {
            return Err(Malformed::new(
                "kind",
                "neither a runbook name nor a bundle",
            ));
        }
        if let Some(name) = &self.runbook {
            check_name("runbook", name, MAX_RUNBOOK_NAME_LEN)?;
        }
        if let Some(bundle) = &self.bundle
            && (bundle.0.is_empty() || bundle.0.len() > MAX_BUNDLE_BYTES)
        {
            return Err(Malformed::new(
                "bundle",
                format!("{} bytes, 1 to {MAX_BUNDLE_BYTES}", bundle.0.len()),
            ));
        }
        if self.params.len() > MAX_PARAMS {
            return Err(Malformed::new(
                "params",
                format!("{} params, at most {MAX_PARAMS}", self.params.len()),
            ));
        }
        for (name, value) in &self.params {
            check_name("params", name, MAX_PARAM_NAME_LEN)?;
            check_text(&format!("params.{name}"), value, MAX_PARAM_VALUE_LEN)?;
        }
        Ok(())
    }
}

/// The run id of bytes that do not decode as a command, if they hold one: so the agent can
/// answer a malformed command with a `refused: invalid` result instead of silence.
pub fn peek_run(bytes: &[u8]) -> Option<RunId> {
    #[derive(Deserialize)]
    struct Peek {
        run: RunId,
    }
    if bytes.len() > MAX_COMMAND_BYTES {
        return None;
    }
    serde_json::from_slice::<Peek>(bytes).ok().map(|p| p.run)
}
