//! The `warden` binary's tests, in one test binary: the author kit (`author`), the command line
//! (`cli`, `cli_output`), the agent's fleet link (`fleet`: real nats-server in operator mode; `fleet_dist`: its desired
//! state against a compromised controller), the
//! whole fleet (`fleet_e2e`: nats-server, controller and agents as processes; `fleet_publish`:
//! publish and status as the NOC reads them; `fleet_scale`: 1,000
//! simulated agents on a 3-node cluster; `fleet_tickets`: a PSA ticket from an agent to the
//! client report) and the agent (`daemon`: in-process on port 0, and a
//! spawned binary for signals and crashes; `agent_lifecycle`: compliance and patching plugins
//! through it). `common` holds what several of them use.

mod agent_lifecycle;
mod author;
mod cli;
mod cli_baseline;
mod cli_compliance;
mod cli_output;
mod cli_patching;
mod cli_report;
mod common;
mod daemon;
mod fleet;
mod fleet_airgap;
mod fleet_approvals;
mod fleet_dist;
mod fleet_e2e;
mod fleet_metrics;
mod fleet_patches;
mod fleet_policy;
mod fleet_publish;
mod fleet_renewal;
mod fleet_report;
mod fleet_rollout;
mod fleet_scale;
mod fleet_tickets;
mod fleet_tls;
mod metrics;
