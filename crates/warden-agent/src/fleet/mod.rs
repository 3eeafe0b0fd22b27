//! The agent's side of the fleet (issue 15): a NATS link to the controller. The agent dials
//! out with its own credentials, takes commands on `fleet.cmd.<tenant>.<agent>`, runs them
//! through its one trigger path after its own trust check, and answers on the results stream;
//! it says it is alive (and what it has) in heartbeats and forwards its automation events.
//!
//! Delivery is at least once on every path and execution exactly once: a durable [`ledger`]
//! of run ids (a re-sent command never runs twice) and a durable [`outbox`] (results and events
//! survive restarts and days offline, published in order, retried until the server has them).
//! docs/FLEET.md, "Agent side", has the whole story.
//!
//! Desired state ([`converge`], issue 16): on connect and on each notice of its own key the
//! link reads its desired document, fetches missing bundles by digest, installs them through
//! the agent's one install path and reports each item through the outbox.
//!
//! Air-gapped sites ([`kit`]): the same convergence from a kit carried in by hand, and the
//! outbox carried out as a results file signed with the agent's own key.
//!
//! Wire-free of the gRPC adapter: enrollment (the controller's gRPC API) lives in
//! `grpc/enroll_client.rs`; this module speaks only NATS and `warden-fleet-wire`.

mod commands;
pub mod config;
mod converge;
mod core;
mod events;
pub mod heartbeat;
pub mod identity;
mod in_flight;
pub mod kit;
pub mod ledger;
pub mod link;
pub mod outbox;
mod publisher;
pub mod renewal;
pub mod seam;
pub mod store;
pub mod tls;

pub use commands::INTERRUPTED;
pub use config::FleetConfig;
pub use converge::Applied;
pub use events::fleet_kind;
pub use heartbeat::HeartbeatSettings;
pub use identity::{FleetIdentity, IdentityError, store_credentials};
pub use link::{FleetLink, LinkError, LinkProbe, LinkSettings, RunningLink};
pub use publisher::{ACK_TIMEOUT, DRAIN_AT_STOP, RETRY_MAX, RETRY_MIN};
pub use seam::{
    FleetAgent, FleetRun, InstallRefused, Installed, Inventory, RunEnd, RunOutcome, RunRefused,
};
pub use store::{FleetStore, StoreError};
