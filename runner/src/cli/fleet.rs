//! `warden fleet`: the NOC side of the controller's gRPC API. Tables for people (aligned,
//! readable times), `--json` for scripts (one object per command: `{"agents": [...]}`,
//! `{"run": {...}}`, `{"runs": [...]}`, ...). Everything the controller relays from agents is
//! printed through [`inert`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, anyhow, bail};
use chrono::Utc;
use clap::{Args, Subcommand};
use tokio_stream::StreamExt;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use warden_proto::fleet as pb;
use warden_proto::fleet::fleet_client::FleetClient;

use super::Context;
use super::output::{self, inert, parse_params, print_json};
use super::{paint, times};

mod airgap;
mod report;
mod rollout;

#[derive(Debug, Args)]
pub struct FleetArgs {
    /// The controller's address.
    #[arg(
        long,
        env = "WARDEN_CONTROLLER",
        default_value = "http://127.0.0.1:7400"
    )]
    pub addr: String,
    /// The bearer token (prefer WARDEN_TOKEN or --token-file: arguments show in `ps`).
    #[arg(long, env = "WARDEN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: FleetCommand,
}

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// List agents with their presence and inventory.
    Agents {
        #[arg(long)]
        tenant: Option<String>,
        /// Only agents with this tag (`os=linux` matches the OS too); repeatable.
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
        /// Only agents that are not online.
        #[arg(long)]
        offline: bool,
        /// Only agents whose latest patch scan says a reboot is required.
        #[arg(long)]
        reboot: bool,
        /// Only agents whose latest patch scan found upgradable packages.
        #[arg(long)]
        patches: bool,
    },
    /// Run a runbook on a target and show the results live.
    Run {
        runbook: String,
        /// Which agents: `tenant=acme,role=db,os=linux`, or `*` for all you may see.
        #[arg(long)]
        target: String,
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        #[arg(long)]
        dry_run: bool,
        /// Seconds the command stays valid (an agent offline longer is reported expired).
        #[arg(long)]
        ttl: Option<i64>,
        /// A signed runbook bundle to send inline (the agents verify it themselves).
        #[arg(long, value_name = "FILE")]
        bundle: Option<PathBuf>,
        /// Print the run id and return at once.
        #[arg(long)]
        detach: bool,
    },
    /// List runs, newest first.
    Runs {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// One run, agent by agent.
    Show { run_id: String },
    /// Cancel a run on its agents that have not answered or are still running (operator).
    Cancel { run_id: String },
    /// A single-use enrollment token for one agent of a tenant.
    EnrollToken {
        #[arg(long)]
        tenant: String,
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
        /// Seconds it stays valid (default 1 hour, at most 24 hours).
        #[arg(long)]
        ttl: Option<i64>,
    },
    /// The agents' incidents, escalations and schedule firings (newest first; --follow: live).
    Events {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Keep printing new events as they arrive (Ctrl-C to stop).
        #[arg(long)]
        follow: bool,
    },
    /// Make a signed plugin bundle (or a signed site policy, `warden policy sign`) the desired
    /// version on a target; the agents fetch it, verify it against their own trust policy
    /// (a policy: their own policy keys), install or apply it and report.
    Publish {
        bundle: PathBuf,
        /// Which agents: `tenant=acme,role=db,os=linux`, or `*` for all you may see.
        #[arg(long)]
        target: String,
    },
    /// Make the removal of a plugin (or `runbook:<name>`) the desired state on a target; the
    /// agents remove it and report. Their anti-rollback marks stay.
    Remove {
        item: String,
        /// Which agents: `tenant=acme,role=db,os=linux`, or `*` for all you may see.
        #[arg(long)]
        target: String,
    },
    /// N of M targeted agents on a plugin's desired version (`@policy`: the site policy's);
    /// who refused and why, who has not reported. Exits 0 when all are on it, 1 otherwise.
    Status { plugin: String },
    /// Runs waiting for a second operator's approval (four eyes), newest first.
    Approvals {
        /// Decided and expired requests too.
        #[arg(long)]
        all: bool,
    },
    /// Approve another operator's request: a run's approval dispatches exactly the bound run.
    Approve { id: String },
    /// Deny a request (or withdraw your own).
    Deny {
        id: String,
        #[arg(long, default_value = "denied")]
        reason: String,
    },
    /// Staged rollouts: release a plugin wave by wave, halting by itself when a wave fails
    /// its health gate.
    Rollout {
        #[command(subcommand)]
        command: rollout::RolloutCommand,
    },
    /// A tenant's client report (uptime, incidents, MTTR against the SLA, by NIST CSF
    /// function) for a month, a quarter or a period, as HTML, CSV or PDF.
    Report(report::ReportArgs),
    /// Air-gapped sites: write a kit (the desired state of a tenant's agents and the signed
    /// bundles it names) to carry to agents that may not talk out (`warden kit apply`).
    Export {
        #[arg(long)]
        tenant: String,
        /// Only these agents of the tenant (repeatable); default: all that are not revoked.
        #[arg(long = "agent", value_name = "ID")]
        agents: Vec<String>,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Air-gapped sites: verify a results file an agent signed (`warden kit collect`) and
    /// merge it; importing a file twice changes nothing.
    Import {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Purge the stored bundles (blobs) nothing needs any more: no agent's desired state and
    /// no rollback names them (the controller also does it daily). Admin, all tenants.
    Gc {
        /// List what would go; purge nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Revoke an agent: its connections close and it cannot enroll again with its key.
    Revoke {
        agent: String,
        #[arg(long, default_value = "revoked by the NOC")]
        reason: String,
    },
}

#[derive(Debug, Clone)]
pub(super) struct Bearer(MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

pub(super) type Client = FleetClient<InterceptedService<Channel, Bearer>>;

async fn connect(args: &FleetArgs) -> Result<Client> {
    let token = match (&args.token, &args.token_file) {
        (_, Some(file)) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?
            .trim()
            .to_string(),
        (Some(t), None) => t.clone(),
        (None, None) => bail!("no token: set WARDEN_TOKEN or pass --token-file"),
    };
    let bearer = Bearer(
        format!("Bearer {token}")
            .parse()
            .map_err(|_| anyhow!("the token has characters a header cannot carry"))?,
    );
    let channel = Endpoint::from_shared(args.addr.clone())
        .with_context(|| format!("bad address {}", args.addr))?
        .connect()
        .await
        .with_context(|| format!("cannot reach the controller at {}", args.addr))?;
    Ok(FleetClient::with_interceptor(channel, bearer))
}

pub(super) fn status_error(s: tonic::Status) -> anyhow::Error {
    anyhow!("{:?}: {}", s.code(), inert(s.message()))
}

/// Unix ms as RFC 3339 (seconds), or `-` (the shared [`times::at_ms`]).
pub(super) fn when(ms: i64) -> String {
    times::at_ms(ms)
}

/// How long ago, humanised (`12s ago`, `5m ago`, `3h ago`, `2d ago`).
fn ago(ms: i64) -> String {
    if ms == 0 {
        return "never".into();
    }
    let secs = (Utc::now().timestamp_millis() - ms).max(0) / 1000;
    match secs {
        s if s < 120 => format!("{s}s ago"),
        s if s < 7200 => format!("{}m ago", s / 60),
        s if s < 172_800 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    }
}

/// Print rows under headers, aligned (see [`output::table`]).
pub(super) fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut t = output::headed(headers);
    for row in rows {
        t.add_row(row.clone());
    }
    output::print_table(&t);
}

/// Widest list of failing checks in the agents table (the rest is in `--json` and the console).
const FAILING_CELL_CHARS: usize = 40;

/// The open incidents and, when the agent names them, their monitors: `2 (disk-space,
/// backup)`, cut at [`FAILING_CELL_CHARS`] with an ellipsis.
fn incidents_cell(open: u32, failing: &[String]) -> String {
    if failing.is_empty() {
        return open.to_string();
    }
    let names = inert(&failing.join(", ")).into_owned();
    let names = if names.chars().count() > FAILING_CELL_CHARS {
        let cut: String = names.chars().take(FAILING_CELL_CHARS - 1).collect();
        format!("{cut}…")
    } else {
        names
    };
    format!("{open} ({names})")
}

/// The agent's latest patch scan as the console shows it: `12 (3 security)`, or `-` when it
/// never reported one (not 0).
fn patches_cell(p: Option<&pb::PatchesView>) -> String {
    p.map_or_else(|| "-".to_string(), |p| summary(p).pending_text())
}

/// `required` when the latest patch scan says so, blank otherwise.
fn reboot_cell(p: Option<&pb::PatchesView>) -> String {
    match p {
        Some(p) if p.reboot_required => paint::status("required"),
        _ => String::new(),
    }
}

fn summary(p: &pb::PatchesView) -> warden_fleet_wire::PatchSummary {
    warden_fleet_wire::PatchSummary {
        pending: p.pending,
        security: p.security,
        reboot_required: p.reboot_required,
        scanned_at: warden_fleet_wire::UnixMillis(p.scanned_at),
    }
}

pub(super) fn short(agent: &str) -> String {
    agent.chars().take(12).collect()
}

pub fn run(cx: &Context, args: FleetArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(run_async(cx, args))
}

async fn run_async(cx: &Context, args: FleetArgs) -> Result<ExitCode> {
    let mut client = connect(&args).await?;
    match args.command {
        FleetCommand::Agents {
            tenant,
            tags,
            offline,
            reboot,
            patches,
        } => {
            let agents = client
                .list_agents(pb::ListAgentsRequest {
                    tenant: tenant.unwrap_or_default(),
                    tags,
                    offline_only: offline,
                    reboot_required_only: reboot,
                    patches_pending_only: patches,
                })
                .await
                .map_err(status_error)?
                .into_inner()
                .agents;
            if cx.json {
                print_json(&serde_json::json!({ "agents": agents }))?;
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = agents
                .iter()
                .map(|a| {
                    let tags: Vec<String> =
                        a.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    vec![
                        short(&a.agent),
                        a.tenant.clone(),
                        inert(&a.hostname).into_owned(),
                        if a.revoked {
                            paint::status("revoked")
                        } else {
                            paint::status(&a.presence)
                        },
                        ago(a.last_seen),
                        inert(&a.os).into_owned(),
                        inert(&a.version).into_owned(),
                        a.plugins.len().to_string(),
                        incidents_cell(a.open_incidents, &a.failing_checks),
                        patches_cell(a.patches.as_ref()),
                        reboot_cell(a.patches.as_ref()),
                        inert(&tags.join(",")).into_owned(),
                    ]
                })
                .collect();
            table(
                &[
                    "AGENT",
                    "TENANT",
                    "HOST",
                    "PRESENCE",
                    "LAST SEEN",
                    "OS",
                    "VERSION",
                    "PLUGINS",
                    "INCIDENTS",
                    "PATCHES",
                    "REBOOT",
                    "TAGS",
                ],
                &rows,
            );
            Ok(ExitCode::SUCCESS)
        }
        FleetCommand::Run {
            runbook,
            target,
            params,
            dry_run,
            ttl,
            bundle,
            detach,
        } => {
            let bundle = match bundle {
                Some(p) => {
                    std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?
                }
                None => Vec::new(),
            };
            let params: BTreeMap<String, String> = parse_params(&params)?.into_iter().collect();
            let started = client
                .dispatch(pb::DispatchRequest {
                    runbook,
                    target,
                    params: params.into_iter().collect(),
                    dry_run,
                    ttl_seconds: ttl.unwrap_or(0),
                    bundle,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            if let Some(approval) = &started.approval {
                return super::fleet_approvals::print_pending(cx, approval);
            }
            if detach {
                if cx.json {
                    print_json(&serde_json::json!({ "dispatched": started }))?;
                } else {
                    println!(
                        "{} to {} agents, expires {}",
                        started.run_id,
                        started.agents.len(),
                        when(started.expires_at)
                    );
                }
                return Ok(ExitCode::SUCCESS);
            }
            if !cx.json {
                eprintln!(
                    "run {} to {} agents (expires {})",
                    started.run_id,
                    started.agents.len(),
                    when(started.expires_at)
                );
            }
            let mut stream = client
                .watch_run(pb::GetRunRequest {
                    run_id: started.run_id.clone(),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            let mut last = None;
            let mut shown = (0usize, 0usize);
            while let Some(view) = stream.next().await {
                let view = view.map_err(status_error)?;
                let settled = view
                    .agents
                    .iter()
                    .filter(|a| !matches!(a.state.as_str(), "missing" | "running"))
                    .count();
                if !cx.json && (settled, view.agents.len()) != shown {
                    eprintln!("  {settled}/{} settled", view.agents.len());
                    shown = (settled, view.agents.len());
                }
                let done = view.done;
                last = Some(view);
                if done {
                    break;
                }
            }
            let view =
                last.ok_or_else(|| anyhow!("the controller closed the watch without a view"))?;
            print_run(cx, &view)?;
            Ok(run_exit(&view))
        }
        FleetCommand::Approvals { all } => super::fleet_approvals::list(cx, &mut client, all).await,
        FleetCommand::Approve { id } => super::fleet_approvals::approve(cx, &mut client, id).await,
        FleetCommand::Deny { id, reason } => {
            super::fleet_approvals::deny(cx, &mut client, id, reason).await
        }
        FleetCommand::Rollout { command } => rollout::run(cx, &mut client, command).await,
        FleetCommand::Report(report) => report::run(cx, &mut client, report).await,
        FleetCommand::Export {
            tenant,
            agents,
            out,
        } => airgap::export(cx, &mut client, tenant, agents, out).await,
        FleetCommand::Import { file } => airgap::import(cx, &mut client, file).await,
        FleetCommand::Publish { bundle, target } => {
            let bytes = std::fs::read(&bundle)
                .with_context(|| format!("cannot read {}", bundle.display()))?;
            let published = client
                .publish(pb::PublishRequest {
                    bundle: bytes,
                    target,
                    remove: String::new(),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            if cx.json {
                print_json(&serde_json::json!({ "published": published }))?;
            } else {
                println!(
                    "{} {} (sha256 {}) desired on {} agents",
                    item_label(&published.plugin),
                    inert(&published.version),
                    short(&published.sha256),
                    published.agents.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        FleetCommand::Remove { item, target } => {
            let published = client
                .publish(pb::PublishRequest {
                    bundle: Vec::new(),
                    target,
                    remove: item,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            if cx.json {
                print_json(&serde_json::json!({ "removal": published }))?;
            } else {
                println!(
                    "{} removal desired on {} agents",
                    item_label(&published.plugin),
                    published.agents.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        FleetCommand::Status { plugin } => {
            let status = client
                .deploy_status(pb::DeployStatusRequest { plugin })
                .await
                .map_err(status_error)?
                .into_inner();
            let installed = status
                .agents
                .iter()
                .filter(|a| a.state == "installed" || a.state == "removed")
                .count();
            let all = installed == status.agents.len();
            if cx.json {
                print_json(&serde_json::json!({
                    "status": {
                        "plugin": status.plugin,
                        "installed": installed,
                        "targeted": status.agents.len(),
                        "agents": status.agents,
                    }
                }))?;
            } else {
                println!(
                    "{}: {installed} of {} agents on the desired version",
                    item_label(&status.plugin),
                    status.agents.len()
                );
                let rows: Vec<Vec<String>> = status
                    .agents
                    .iter()
                    .map(|a| {
                        let state = if a.reason.is_empty() {
                            paint::status(&a.state)
                        } else {
                            format!("{} ({})", paint::status(&a.state), inert(&a.reason))
                        };
                        vec![
                            short(&a.agent),
                            a.tenant.clone(),
                            inert(&a.version).into_owned(),
                            state,
                            if a.reported_at == 0 {
                                "-".into()
                            } else {
                                ago(a.reported_at)
                            },
                            if a.check_status.is_empty() {
                                "-".into()
                            } else {
                                format!(
                                    "{} {}",
                                    paint::status(&a.check_status),
                                    inert(&a.check_summary)
                                )
                            },
                            inert(&a.error).into_owned(),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "AGENT", "TENANT", "VERSION", "STATE", "REPORTED", "CHECK", "ERROR",
                    ],
                    &rows,
                );
            }
            Ok(if all {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        FleetCommand::Cancel { run_id } => {
            let sent = client
                .cancel_run(pb::GetRunRequest {
                    run_id: run_id.clone(),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            if cx.json {
                print_json(&serde_json::json!({ "cancel": {
                    "run_id": run_id, "agents": sent.agents, "settled": sent.settled,
                }}))?;
            } else {
                println!(
                    "run {}: cancel sent to {} agents ({} had answered)",
                    inert(&run_id),
                    sent.agents,
                    sent.settled
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        FleetCommand::Show { run_id } => {
            let view = client
                .get_run(pb::GetRunRequest { run_id })
                .await
                .map_err(status_error)?
                .into_inner();
            print_run(cx, &view)?;
            Ok(ExitCode::SUCCESS)
        }
        FleetCommand::Runs { tenant, limit } => {
            let runs = client
                .list_runs(pb::ListRunsRequest {
                    tenant: tenant.unwrap_or_default(),
                    limit,
                })
                .await
                .map_err(status_error)?
                .into_inner()
                .runs;
            if cx.json {
                print_json(&serde_json::json!({ "runs": runs }))?;
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = runs
                .iter()
                .map(|r| {
                    vec![
                        r.run_id.clone(),
                        when(r.created_at),
                        r.runbook.clone(),
                        r.target.clone(),
                        r.requested_by.clone(),
                        r.agents.to_string(),
                        r.succeeded.to_string(),
                        r.failed.to_string(),
                        r.pending.to_string(),
                        r.expired.to_string(),
                    ]
                })
                .collect();
            table(
                &[
                    "RUN", "CREATED", "RUNBOOK", "TARGET", "BY", "AGENTS", "OK", "FAILED",
                    "PENDING", "EXPIRED",
                ],
                &rows,
            );
            Ok(ExitCode::SUCCESS)
        }
        FleetCommand::EnrollToken { tenant, tags, ttl } => {
            let token = client
                .issue_enrollment_token(pb::IssueEnrollmentTokenRequest {
                    tenant,
                    tags,
                    ttl_seconds: ttl.unwrap_or(0),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            if cx.json {
                print_json(&serde_json::json!({ "token": token }))?;
            } else {
                eprintln!(
                    "single-use token for tenant {} (id {}), valid until {}:",
                    token.tenant,
                    token.id,
                    when(token.expires_at * 1000)
                );
                println!("{}", token.token);
            }
            Ok(ExitCode::SUCCESS)
        }
        FleetCommand::Events {
            tenant,
            limit,
            follow,
        } => {
            let tenant = tenant.unwrap_or_default();
            if follow {
                let mut stream = client
                    .watch_events(pb::WatchEventsRequest { tenant })
                    .await
                    .map_err(status_error)?
                    .into_inner();
                while let Some(event) = stream.next().await {
                    let event = event.map_err(status_error)?;
                    if cx.json {
                        print_json(&serde_json::json!({ "event": event }))?;
                    } else {
                        println!("{}", event_line(&event));
                    }
                }
                return Ok(ExitCode::SUCCESS);
            }
            let events = client
                .list_events(pb::ListEventsRequest { tenant, limit })
                .await
                .map_err(status_error)?
                .into_inner()
                .events;
            if cx.json {
                print_json(&serde_json::json!({ "events": events }))?;
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = events
                .iter()
                .map(|e| {
                    vec![
                        when(e.at),
                        e.tenant.clone(),
                        short(&e.agent),
                        e.kind.clone(),
                        inert(&e.subject).into_owned(),
                        tickets_cell(e),
                        inert(e.detail.lines().next().unwrap_or("")).into_owned(),
                    ]
                })
                .collect();
            table(
                &[
                    "AT", "TENANT", "AGENT", "KIND", "SUBJECT", "TICKETS", "DETAIL",
                ],
                &rows,
            );
            Ok(ExitCode::SUCCESS)
        }
        FleetCommand::Gc { dry_run } => {
            let r = client
                .collect_blobs(pb::CollectBlobsRequest { dry_run })
                .await
                .map_err(status_error)?
                .into_inner();
            if cx.json {
                print_json(&serde_json::json!({ "gc": r }))?;
                return Ok(ExitCode::SUCCESS);
            }
            let verb = if r.dry_run { "would purge" } else { "purged" };
            println!(
                "{verb} {} blob{} ({})",
                r.blobs.len(),
                if r.blobs.len() == 1 { "" } else { "s" },
                byte_size(r.bytes)
            );
            let rows: Vec<Vec<String>> = r
                .blobs
                .iter()
                .map(|b| {
                    vec![
                        b.tenant.clone(),
                        b.sha256.clone(),
                        byte_size(b.bytes),
                        when(b.stored_at),
                    ]
                })
                .collect();
            if !rows.is_empty() {
                table(&["TENANT", "SHA-256", "SIZE", "STORED"], &rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        FleetCommand::Revoke { agent, reason } => {
            let r = client
                .revoke(pb::RevokeRequest { agent, reason })
                .await
                .map_err(status_error)?
                .into_inner();
            if cx.json {
                print_json(&serde_json::json!({ "revoked": r }))?;
            } else {
                println!(
                    "revoked {} (tenant {}) at {}",
                    r.agent,
                    r.tenant,
                    when(r.revoked_at * 1000)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `18.2 MiB`, `512 B`; `-` for 0 (a size the controller never knew).
fn byte_size(bytes: u64) -> String {
    const UNITS: [&str; 3] = ["KiB", "MiB", "GiB"];
    if bytes == 0 {
        return "-".into();
    }
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn event_line(e: &pb::FleetEvent) -> String {
    let tickets = tickets_cell(e);
    format!(
        "{}  {}  {}  {}  {}  {}{}",
        when(e.at),
        e.tenant,
        short(&e.agent),
        e.kind,
        inert(&e.subject),
        if tickets.is_empty() {
            String::new()
        } else {
            format!("{tickets}  ")
        },
        inert(e.detail.lines().next().unwrap_or(""))
    )
}

/// An event's PSA tickets, `ticket-connectwise #4711 open`, comma-separated; what the PSA
/// answered is shown inert like the rest of an agent's text.
fn tickets_cell(e: &pb::FleetEvent) -> String {
    e.tickets
        .iter()
        .map(|t| inert(&format!("{} #{} {}", t.system, t.id, t.status)).into_owned())
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_run(cx: &Context, view: &pb::RunView) -> Result<()> {
    if cx.json {
        return print_json(&serde_json::json!({ "run": view }));
    }
    println!(
        "run {}  runbook {}{}  target {}  by {}  created {}  expires {}",
        view.run_id,
        view.runbook,
        if view.dry_run { " (dry run)" } else { "" },
        view.target,
        view.requested_by,
        when(view.created_at),
        when(view.expires_at)
    );
    let rows: Vec<Vec<String>> = view
        .agents
        .iter()
        .map(|a| {
            let state = if a.reason.is_empty() {
                paint::status(&inert(&a.state))
            } else {
                format!("{} ({})", paint::status(&inert(&a.state)), inert(&a.reason))
            };
            let took = if a.started_at > 0 && a.finished_at >= a.started_at {
                times::span_ms(a.finished_at - a.started_at)
            } else {
                "-".into()
            };
            vec![
                short(&a.agent),
                a.tenant.clone(),
                inert(&a.hostname).into_owned(),
                state,
                took,
                a.sends.to_string(),
                inert(&a.error).into_owned(),
            ]
        })
        .collect();
    table(
        &["AGENT", "TENANT", "HOST", "STATE", "TOOK", "SENDS", "ERROR"],
        &rows,
    );
    Ok(())
}

/// 0: every agent succeeded; 1: any failed, was refused, cancelled or expired.
fn run_exit(view: &pb::RunView) -> ExitCode {
    if view.agents.iter().all(|a| a.state == "succeeded") {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// A desired item for people: the plugin's name, `runbook <name>`, or `site policy`.
fn item_label(name: &str) -> String {
    if name == warden_fleet_wire::POLICY_ITEM {
        "site policy".into()
    } else if let Some(runbook) = name.strip_prefix(warden_fleet_wire::RUNBOOK_ITEM_PREFIX) {
        format!("runbook {}", inert(runbook))
    } else {
        inert(name).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_read_as_people_write_them() {
        assert_eq!(byte_size(0), "-", "unknown, not empty");
        assert_eq!(byte_size(512), "512 B");
        assert_eq!(byte_size(300 * 1024), "300.0 KiB");
        assert_eq!(byte_size(18 * 1024 * 1024 + 200 * 1024), "18.2 MiB");
        assert_eq!(byte_size(3 << 40), "3072.0 GiB");
    }

    #[test]
    fn the_incidents_cell_names_the_failing_checks_within_its_width() {
        assert_eq!(incidents_cell(0, &[]), "0");
        assert_eq!(incidents_cell(3, &[]), "3", "an agent that only counts");
        assert_eq!(
            incidents_cell(2, &["disk-space".into(), "backup".into()]),
            "2 (disk-space, backup)"
        );
        let many: Vec<String> = (0..20).map(|i| format!("check-{i}")).collect();
        let cell = incidents_cell(20, &many);
        assert!(cell.ends_with("…)"), "{cell}");
        assert_eq!(cell.chars().count(), "20 ()".len() + FAILING_CELL_CHARS);
    }
}
