//! The fleet controller (issue 15), the MSP side of the fleet: it enrolls agents, keeps their
//! presence and inventory from heartbeats, dispatches runbooks to a target selection over NATS
//! and gathers the results from one shared JetStream stream, and serves the NOC a gRPC API with
//! tenant-scoped bearer-token roles, every call audited.
//!
//! It never links the sandbox or the agent (`cargo xtask layers`): the controller chooses among
//! signed automation, and only an agent's own trust policy decides what runs there.
//!
//! - [`controller`]: the core every adapter calls; scope checks and audit live there.
//! - [`store`]: the store seam and the embedded SQLite store.
//! - [`distribution`]: desired state (`publish`, `status`) and the agents' deploy reports.
//! - [`airgap`]: air-gapped sites: kits exported, agent-signed results files imported.
//! - [`rollout`]: staged rollouts, wave by wave, gated on health, halting themselves.
//! - [`presence`], [`runs`], [`target`]: pure, clock-injected rules.
//! - [`nats`]: connections, the results stream and its one consumer; [`serve`]: the loops.
//! - [`enrollment`], [`keys`]: enrollment state and the fleet's keys on disk; [`renewal`]: new
//!   agent JWTs at half-life, asked over NATS.
//! - [`approvals`]: four eyes: runs above a blast-radius threshold wait for a second operator.
//! - [`grpc`]: the API adapter (protobuf types stop there).
//! - [`noc`]: what the web console (`warden-console`, issue 18) reads: fleet pages the store
//!   filters, sorts and pages itself, and one agent's detail; [`agent_audit`]: the audit
//!   records about one agent, read from the log's end.

pub mod agent_audit;
pub mod airgap;
pub mod approvals;
pub mod audit_retention;
pub mod blobs;
pub mod cancel;
pub mod clock;
pub mod config;
pub mod controller;
pub mod distribution;
pub mod enrollment;
pub mod grpc;
pub mod keys;
pub mod metrics;
pub mod nats;
pub mod noc;
pub mod presence;
pub mod removal;
pub mod renewal;
pub mod report;
pub mod rollout;
pub mod runs;
pub mod serve;
pub mod store;
pub mod target;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::ControllerConfig;
pub use controller::{Controller, FleetError, Progress};
