//! A simulated fleet for the scale test (`runner/tests/all/fleet_scale.rs`) and the fleet
//! benchmark (`bench/src/fleet.rs`): real nats-server processes, a real controller in this
//! process, and N agents. The agents share one sandbox ([`sandbox`]: one `PluginManager`, one
//! `FleetAgent` implementation running the real `trivial` check guest) but nothing that makes an
//! agent itself: each has its own key, enrolled through the controller's gRPC `Enrollment` with
//! its own single-use token, its own credentials and NATS connection (the agent's real
//! `FleetLink`), its own ledger and outbox and its own audit log ([`fleet`]). They run in this
//! process, or in child processes when there are more than one process can hold ([`host`]).
//!
//! Test support: like the tests and the benchmark, it may use every crate (`cargo xtask
//! layers`); only they depend on it.

pub mod fleet;
pub mod host;
pub mod sandbox;

pub use fleet::{
    FleetOptions, SHARDS, SetupTimes, SimAgentHandle, SimError, SimFleet, Stopped, ledger,
    progress_until,
};
pub use host::host_main;
pub use sandbox::{RUNBOOK, Sandbox, SimAgent};
