//! The fleet's wire (issue 15): the versioned JSON messages the controller and the agents
//! exchange on the NATS subjects of [`warden_fleet_identity::subjects`], their size caps, and
//! their validation. Pure encode / decode; no transport, no clock (every check takes `now`).
//!
//! | message | subject | transport | `Nats-Msg-Id` |
//! | --- | --- | --- | --- |
//! | [`Command`] | `fleet.cmd.<t>.<a>` | core NATS, re-sent by the controller until answered or expired | - |
//! | [`RunResult`] | `fleet.res.<t>.<a>` | JetStream publish into the results stream, retried until PubAck | `<run>.<agent>` (final), `<run>.<agent>.running` |
//! | [`Heartbeat`] | `fleet.hb.<t>.<a>` | core NATS, every `interval_ms` | - |
//! | [`AgentEvent`] | `fleet.evt.<t>.<a>` | core NATS from the agent's outbox, re-sent until the controller has it | `<agent>.evt.<seq>` |
//! | [`DesiredState`] | KV `desired`, key `<t>.<a>`, RePublished to `fleet.desired.<t>.<a>` | Direct-Get by the agent | - |
//! | [`DeployReport`] | `fleet.res.<t>.<a>.deploy` | JetStream publish from the agent's outbox | `<agent>.deploy.<sha256>.<outcome>` |
//!
//! Delivery is at least once on every path; execution is exactly once because the agent keeps a
//! ledger of run ids (until [`Command::keep_in_ledger_until`]) and the controller stores one
//! result per run and agent. Every message carries `"v": 1` ([`WIRE_VERSION`]); see [`codec`]
//! for how versions and unknown fields are treated.
//!
//! Air-gapped sites carry the same messages by hand in two files ([`airgap`]): a kit of desired
//! state and signed bundles in, a results file signed by the agent out.
//!
//! Enrollment does not cross this wire: it goes through the controller's gRPC API (the agent has
//! no NATS credentials before it), with the identity layer's messages.

pub mod airgap;
pub mod codec;
pub mod command;
pub mod desired;
pub mod event;
pub mod heartbeat;
pub mod result;
pub mod run_id;
pub mod time;

pub use codec::{Malformed, Message, WireError, decode, encode, one_line};
pub use command::{Bundle, Command, CommandKind, CommandRefusal, RunRunbook, peek_run};
pub use desired::{
    DeployOutcome, DeployRefusal, DeployReport, DesiredPlugin, DesiredPolicy, DesiredRemoval,
    DesiredRunbook, DesiredState, ItemKind, OwnCheck, OwnCheckStatus, POLICY_ITEM,
    RUNBOOK_ITEM_PREFIX, desired_key,
};
pub use event::{AgentEvent, EventKind, EventTicket};
pub use heartbeat::{Heartbeat, PatchSummary, PluginInfo, WindowInfo};
pub use result::{RefusalReason, RunResult, RunStatus, StepStatus, StepSummary, result_msg_id};
pub use run_id::{InvalidRunId, RunId};
pub use time::UnixMillis;

/// The version every message of this build carries and accepts.
pub const WIRE_VERSION: u32 = 1;

/// The `Nats-Msg-Id` header name (JetStream deduplicates on it within the stream's window).
pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";

#[cfg(test)]
mod tests;
