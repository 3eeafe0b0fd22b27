//! `warden fleet rollout start|status|pause|resume|rollback`: staged rollouts through the
//! controller's API. `status` prints the plan's waves as an aligned table, then every agent;
//! `--json` prints `{"rollout": {...}}`. Every command exits 1 when the rollout is halted (a
//! script waiting on a rollout learns it stopped by itself), 0 otherwise.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Subcommand;
use warden_proto::fleet as pb;

use super::super::Context;
use super::super::output::{inert, print_json};
use super::{Client, short, status_error, table, when};

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Start releasing a signed plugin bundle to a target, wave by wave; each wave must pass
    /// its health gate (deploy reports, incidents) before the next one gets it.
    Start {
        /// The signed plugin bundle (.wbundle).
        bundle: PathBuf,
        /// Which agents: `tenant=acme,role=db,os=linux`, or `*` for all you may see.
        #[arg(long)]
        target: String,
        /// Agents in the first, canary wave (0: none).
        #[arg(long, default_value_t = 1)]
        canary: u32,
        /// Cumulative waves, percentages of the targets or counts (the canary counts towards
        /// them); the last must reach every target.
        #[arg(long, default_value = "100%")]
        waves: String,
        /// At most this many agents of a wave awaiting their report (0: the whole wave at once).
        #[arg(long, default_value_t = 0)]
        max_in_flight: u32,
        /// A wave fails its gate when more than this share of its agents failed.
        #[arg(long, default_value = "0%")]
        max_failures: String,
        /// Seconds a healthy wave's incidents still count before the next wave starts.
        #[arg(long, default_value_t = 0)]
        soak: i64,
        /// Seconds a wave's agents have to report (0: the controller's 600 s); the
        /// unreported then count as failed.
        #[arg(long, default_value_t = 0)]
        wave_timeout: i64,
        /// The approved request of this exact start, when `[approvals]` asked for one (the
        /// refusal of the first start names it).
        #[arg(long, value_name = "ID")]
        approval: Option<String>,
    },
    /// The plan, each wave's counts and state, and every agent.
    Status { id: String },
    /// Release nothing more until resumed (reports keep counting).
    Pause { id: String },
    /// Continue a paused rollout (its wave's timeout starts again).
    Resume { id: String },
    /// Return the released agents to their previous desired version, or to `--to`.
    Rollback {
        id: String,
        /// A newer signed bundle of the plugin to publish instead: needed when agents
        /// installed the new version, since their anti-rollback refuses an older one.
        #[arg(long, value_name = "BUNDLE")]
        to: Option<PathBuf>,
    },
}

fn read(path: &PathBuf) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

pub(super) async fn run(
    cx: &Context,
    client: &mut Client,
    cmd: RolloutCommand,
) -> Result<ExitCode> {
    let view = match cmd {
        RolloutCommand::Start {
            bundle,
            target,
            canary,
            waves,
            max_in_flight,
            max_failures,
            soak,
            wave_timeout,
            approval,
        } => {
            client
                .start_rollout(pb::StartRolloutRequest {
                    bundle: read(&bundle)?,
                    target,
                    canary,
                    waves,
                    max_in_flight,
                    max_failures,
                    soak_secs: soak,
                    wave_timeout_secs: wave_timeout,
                    approval: approval.unwrap_or_default(),
                })
                .await
        }
        RolloutCommand::Status { id } => client.get_rollout(pb::RolloutRequest { id }).await,
        RolloutCommand::Pause { id } => client.pause_rollout(pb::RolloutRequest { id }).await,
        RolloutCommand::Resume { id } => client.resume_rollout(pb::RolloutRequest { id }).await,
        RolloutCommand::Rollback { id, to } => {
            client
                .rollback_rollout(pb::RollbackRolloutRequest {
                    id,
                    to_bundle: match to {
                        Some(path) => read(&path)?,
                        None => Vec::new(),
                    },
                })
                .await
        }
    }
    .map_err(status_error)?
    .into_inner();
    if cx.json {
        print_json(&serde_json::json!({ "rollout": view }))?;
    } else {
        print_rollout(&view);
    }
    Ok(if view.state == "halted" {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_rollout(v: &pb::RolloutView) {
    println!(
        "rollout {}: {} {} (sha256 {}) on {}",
        inert(&v.id),
        inert(&v.plugin),
        inert(&v.version),
        short(&v.sha256),
        inert(&v.target)
    );
    let state = if v.reason.is_empty() {
        v.state.clone()
    } else {
        format!("{}: {}", v.state, inert(&v.reason))
    };
    println!(
        "state: {state} (since {}; started {} by {})",
        when(v.updated_at),
        when(v.created_at),
        inert(&v.created_by)
    );
    let in_flight = match v.max_in_flight {
        0 => "the whole wave".to_string(),
        n => n.to_string(),
    };
    println!(
        "plan: canary {}, waves {}, max in flight {in_flight}, max failures {}%, soak {}s",
        v.canary,
        inert(&v.waves_plan),
        v.max_failure_percent,
        v.soak_secs
    );
    println!();
    let rows: Vec<Vec<String>> = v
        .waves
        .iter()
        .map(|w| {
            vec![
                w.name.clone(),
                w.size.to_string(),
                w.released.to_string(),
                w.healthy.to_string(),
                w.failed.to_string(),
                w.in_flight.to_string(),
                w.state.clone(),
            ]
        })
        .collect();
    table(
        &[
            "WAVE",
            "AGENTS",
            "RELEASED",
            "HEALTHY",
            "FAILED",
            "IN FLIGHT",
            "STATE",
        ],
        &rows,
    );
    println!();
    let rows: Vec<Vec<String>> = v
        .agents
        .iter()
        .map(|a| {
            vec![
                short(&a.agent),
                inert(&a.tenant).into_owned(),
                a.wave.clone(),
                a.state.clone(),
                when(a.released_at),
                if a.previous_version.is_empty() {
                    "-".into()
                } else {
                    inert(&a.previous_version).into_owned()
                },
                if a.detail.is_empty() {
                    "-".into()
                } else {
                    inert(&a.detail).into_owned()
                },
            ]
        })
        .collect();
    table(
        &[
            "AGENT", "TENANT", "WAVE", "STATE", "RELEASED", "PREVIOUS", "DETAIL",
        ],
        &rows,
    );
}
