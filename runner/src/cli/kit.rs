//! `warden kit apply` and `warden kit collect`: the agent's side of an air-gapped site, with no
//! network (docs/FLEET.md "Air-gapped sites"). Both work on the agent's data dir and the
//! `[fleet]` identity of its agent.toml, through the fleet link's own code
//! (`warden_agent::fleet::kit`): a kit's bundles are verified against this agent's own trust
//! policy and installed through its one install path; the results file is signed with the key
//! the agent enrolled with. Tables for people, `{"kit": {...}}` / `{"collect": {...}}` with
//! `--json`; `apply` exits 1 when an item was refused.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use warden_agent::daemon::config::AgentConfig;
use warden_agent::fleet::kit::Offline;
use warden_fleet_wire::airgap::MAX_KIT_BYTES;
use warden_fleet_wire::{DeployOutcome, ItemKind};

use super::Context;
use super::output::{self, inert, print_json};
use super::{paint, times};

#[derive(Debug, Subcommand)]
pub enum KitCommand {
    /// Verify and apply a kit from `warden fleet export`: install its signed plugins,
    /// runbooks and site policy (each checked against this agent's own trust policy), queue
    /// the reports, and forget the results the controller acknowledged.
    Apply {
        #[arg(value_name = "FILE")]
        kit: PathBuf,
        /// The agent config with `[fleet]`. Default: <data-dir>/agent.toml.
        #[arg(long, env = "WARDEN_AGENT_CONFIG", value_name = "FILE")]
        agent_config: Option<PathBuf>,
    },
    /// Write the agent's pending results, reports and events and its audit head, signed with
    /// its fleet key, for `warden fleet import`. Nothing is forgotten until a kit says the
    /// controller imported it.
    Collect {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// The agent config with `[fleet]`. Default: <data-dir>/agent.toml.
        #[arg(long, env = "WARDEN_AGENT_CONFIG", value_name = "FILE")]
        agent_config: Option<PathBuf>,
    },
}

fn kind_name(kind: ItemKind) -> &'static str {
    match kind {
        ItemKind::Plugin => "plugin",
        ItemKind::Runbook => "runbook",
        ItemKind::Policy => "policy",
    }
}

fn offline(cx: &Context, agent_config: Option<PathBuf>) -> Result<Offline> {
    let path = agent_config.unwrap_or_else(|| cx.data_dir.join("agent.toml"));
    let config = AgentConfig::load(&path)?;
    let runner = Arc::new(cx.runner()?);
    Ok(warden_agent::daemon::offline::offline(runner, &config)?)
}

pub fn run(cx: &Context, cmd: KitCommand) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match cmd {
        KitCommand::Apply { kit, agent_config } => {
            let offline = offline(cx, agent_config)?;
            let bytes = match warden_core::fsutil::read_capped(&kit, MAX_KIT_BYTES) {
                Ok(bytes) => bytes,
                Err(warden_core::fsutil::CappedReadError::TooLarge) => {
                    bail!(
                        "{} is over the {MAX_KIT_BYTES} bytes of a kit",
                        kit.display()
                    )
                }
                Err(e) => return Err(e).with_context(|| format!("cannot read {}", kit.display())),
            };
            let applied = runtime.block_on(offline.apply(&bytes))?;
            let refused = applied.refused();
            if cx.json {
                let items: Vec<_> = applied
                    .items
                    .iter()
                    .map(|a| {
                        let reason = match a.outcome {
                            DeployOutcome::Refused { reason } => Some(reason.name()),
                            _ => None,
                        };
                        serde_json::json!({
                            "kind": a.kind, "name": a.name, "version": a.version,
                            "sha256": a.sha256, "state": a.outcome.name(), "reason": reason,
                            "already": a.already, "error": a.error,
                        })
                    })
                    .collect();
                print_json(&serde_json::json!({ "kit": {
                    "sha256": applied.kit, "items": items, "unchanged": applied.unchanged,
                    "refused": refused, "acknowledged": applied.acknowledged,
                }}))?;
            } else {
                println!(
                    "kit {}: {} item(s) applied, {} refused, {} unchanged since an earlier kit; \
                     {} result(s) the controller imported forgotten",
                    &applied.kit[..12],
                    applied.items.len() - refused,
                    refused,
                    applied.unchanged,
                    applied.acknowledged
                );
                if !applied.items.is_empty() {
                    let mut table = output::table(["KIND", "NAME", "VERSION", "STATE", "ERROR"]);
                    for a in &applied.items {
                        let state = match a.outcome {
                            DeployOutcome::Refused { reason } => {
                                format!("{} ({})", paint::status("refused"), reason.name())
                            }
                            _ if a.already => format!("{} (already)", paint::status("installed")),
                            o => paint::status(o.name()),
                        };
                        table.add_row(vec![
                            kind_name(a.kind).to_string(),
                            inert(&a.name).into_owned(),
                            inert(&a.version).into_owned(),
                            state,
                            inert(a.error.as_deref().unwrap_or("")).into_owned(),
                        ]);
                    }
                    output::print_table(&table);
                }
            }
            Ok(if refused == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        KitCommand::Collect { out, agent_config } => {
            let offline = offline(cx, agent_config)?;
            let collected = runtime.block_on(offline.collect())?;
            warden_core::fsutil::write_atomic(&out, &collected.bytes)
                .with_context(|| format!("cannot write {}", out.display()))?;
            if cx.json {
                print_json(&serde_json::json!({ "collect": {
                    "file": out.display().to_string(), "bytes": collected.bytes.len(),
                    "sha256": collected.sha256, "results": collected.results,
                    "events": collected.events, "through": collected.through,
                    "left": collected.left, "audit_head": collected.audit_head,
                }}))?;
            } else {
                println!(
                    "results {}: {} result(s) and report(s), {} event(s) through entry {}, \
                     audit head #{} at {} (sha256 {})",
                    out.display(),
                    collected.results,
                    collected.events,
                    collected.through,
                    collected.audit_head.seq,
                    times::at_ms(collected.audit_head.at.as_millis()),
                    &collected.sha256[..12]
                );
                if collected.left > 0 {
                    println!(
                        "{} more entries wait for the next collect (the file is full)",
                        collected.left
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
