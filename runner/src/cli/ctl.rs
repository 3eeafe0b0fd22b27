//! `warden ctl`: the NOC side of the agent's gRPC API, for humans (and scripts, with `--json`).
//! Triggering a runbook watches it live by default and exits non-zero unless it succeeded.
//! Every string the agent sends is printed through [`inert`]: the agent relays what runbooks and
//! plugins wrote, and the connection itself may not be the agent's.

use super::Context;
use super::output::{
    align_right, inert, inert_lines, parse_params, print_facts, print_json, print_table, table,
};
use super::run_json::{RunJson, RunList};
use super::{paint, times};
use anyhow::{Context as _, Result, anyhow, bail};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use warden_agent::grpc::pb;

#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The agent's address: `host:port`, or `http://host:port` / `https://host:port` (a bare
    /// address is https with --ca-cert, else http).
    #[arg(long, env = "WARDEN_ADDR", default_value = "http://127.0.0.1:7355")]
    pub addr: String,
    /// The bearer token (prefer WARDEN_TOKEN or --token-file: arguments show in `ps`).
    #[arg(long, env = "WARDEN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Read the token from this file.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// The CA certificate (PEM) to trust for an https:// address.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// Trigger a runbook by name (or a signed runbook bundle with --bundle) and watch it.
    Trigger {
        /// A runbook in the agent's runbook directory.
        name: Option<String>,
        /// A signed runbook bundle to send inline.
        #[arg(long, value_name = "FILE", conflicts_with = "name")]
        bundle: Option<PathBuf>,
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        #[arg(long)]
        dry_run: bool,
        /// Print the run id and return at once.
        #[arg(long)]
        detach: bool,
    },
    /// Follow a run's events (from the start, even if it already finished).
    Watch { run_id: String },
    /// List runs, newest first.
    Runs {
        /// Only runs with this status.
        #[arg(long, value_parser = run_status())]
        status: Option<String>,
        #[arg(long)]
        runbook: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// The next page: the token the previous page printed.
        #[arg(long, value_name = "TOKEN")]
        page: Option<String>,
    },
    /// Show one run with its steps.
    Show { run_id: String },
    /// Cancel a queued or running run.
    Cancel { run_id: String },
    /// List installed plugins.
    Plugins,
    /// Install a signed plugin bundle.
    Install { bundle: PathBuf },
    /// Remove a plugin.
    Remove { name: String },
    /// The latest discovery facts.
    Inventory,
    /// Automation events as they happen (Ctrl-C to stop).
    Events,
    /// SLA figures per monitor.
    Report {
        /// The last N days.
        #[arg(long, default_value_t = 30)]
        days: i64,
        #[arg(long)]
        monitor: Option<String>,
    },
    /// The agent's version.
    Version,
    /// The agent's audit head (`SEQ:HASH`; `--json` adds when): save it off the machine, and
    /// check the log against it later with `warden audit verify --against FILE`.
    AuditHead,
}

/// Who asked for a run, for the ORIGIN column: the agent leaves it empty for a run started
/// from the command line beside it.
fn origin(requested_by: &str) -> String {
    if requested_by.is_empty() {
        "cli".into()
    } else {
        inert(requested_by).into_owned()
    }
}

/// `--status` takes a run status the agent knows; anything else is a usage error (exit 2, the
/// valid ones listed) rather than a filter that silently matches nothing.
fn run_status() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(warden_core::RunStatus::ALL.map(|s| s.as_str()))
}

type Authed = InterceptedService<Channel, Bearer>;

#[derive(Clone)]
pub struct Bearer(MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

/// The URI to dial for `--addr`: as given when it has a scheme; a bare `host:port` (what the
/// Python client and most gRPC tools take) gets `https://` with a CA certificate, else `http://`.
fn endpoint_uri(addr: &str, tls: bool) -> String {
    if addr.contains("://") {
        addr.to_string()
    } else if tls {
        format!("https://{addr}")
    } else {
        format!("http://{addr}")
    }
}

async fn connect(args: &CtlArgs) -> Result<(Channel, Bearer)> {
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
    let uri = endpoint_uri(&args.addr, args.ca_cert.is_some());
    let mut endpoint =
        Endpoint::from_shared(uri).with_context(|| format!("bad address {}", args.addr))?;
    if let Some(ca) = &args.ca_cert {
        let pem = std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
        endpoint = endpoint
            .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))?;
    }
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("cannot reach the agent at {}", args.addr))?;
    Ok((channel, bearer))
}

fn status_error(s: tonic::Status) -> anyhow::Error {
    anyhow!("{:?}: {}", s.code(), inert_lines(s.message()))
}

/// One unary call's reply, or the agent's status as an error.
async fn ask<T>(
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T> {
    call.await
        .map(tonic::Response::into_inner)
        .map_err(status_error)
}

fn kind_name(kind: i32) -> &'static str {
    pb::EventKind::try_from(kind)
        .map(|k| k.as_str_name())
        .unwrap_or("UNKNOWN")
}

/// An inventory entry's facts for a person: as fact groups when they are (what discovery
/// plugins return), else as indented JSON, never as one multi-kilobyte line.
fn print_inventory_facts(facts_json: &str) {
    if let Ok(groups) = serde_json::from_str::<Vec<warden_core::report::FactGroup>>(facts_json) {
        print_facts(&groups, "  ");
        return;
    }
    let text = serde_json::from_str::<serde_json::Value>(facts_json)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|_| facts_json.to_string());
    for line in text.lines() {
        println!("  {}", inert(line));
    }
}

/// Print a run's events until it finishes; returns its final status.
async fn follow(
    client: &mut pb::runbooks_client::RunbooksClient<Authed>,
    run_id: &str,
    json: bool,
) -> Result<String> {
    let mut stream = ask(client.watch(pb::WatchRequest {
        run_id: run_id.into(),
    }))
    .await?;
    let mut status = String::from("unknown");
    while let Some(event) = stream.message().await.map_err(status_error)? {
        if json {
            println!("{}", serde_json::to_string(&event)?);
        } else {
            let line = match pb::EventKind::try_from(event.kind) {
                Ok(pb::EventKind::Log) => format!(
                    "    {} [{}] {}",
                    inert(&event.step),
                    inert(&event.level),
                    inert_lines(&event.message)
                ),
                Ok(pb::EventKind::StepStarted) => {
                    format!("  {} ({}) ...", inert(&event.step), inert(&event.message))
                }
                Ok(pb::EventKind::StepFinished) => format!(
                    "  {} {} {}",
                    paint::status_padded(&inert(&event.status), 10),
                    inert(&event.step),
                    inert(&event.message)
                ),
                Ok(pb::EventKind::RunFinished) => format!(
                    "run {}: {} {}",
                    inert(&event.run_id),
                    paint::status(&inert(&event.status)),
                    inert(&event.message)
                ),
                _ => format!("{} {}", kind_name(event.kind), inert(&event.message)),
            };
            println!("{}", line.trim_end());
        }
        if event.kind == pb::EventKind::RunFinished as i32 {
            status = event.status;
        }
    }
    Ok(status)
}

pub fn run(cx: &Context, args: CtlArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_async(cx, args))
}

async fn run_async(cx: &Context, args: CtlArgs) -> Result<ExitCode> {
    let (channel, bearer) = connect(&args).await?;
    let mut runbooks =
        pb::runbooks_client::RunbooksClient::with_interceptor(channel.clone(), bearer.clone());
    let mut plugins =
        pb::plugins_client::PluginsClient::with_interceptor(channel.clone(), bearer.clone());
    let mut agent =
        pb::agent_client::AgentClient::with_interceptor(channel.clone(), bearer.clone());
    let mut inventory = pb::inventory_client::InventoryClient::with_interceptor(channel, bearer);
    match args.command {
        CtlCommand::Trigger {
            name,
            bundle,
            params,
            dry_run,
            detach,
        } => {
            let source = match (name, bundle) {
                (Some(n), None) => pb::trigger_request::Source::Name(n),
                (None, Some(f)) => pb::trigger_request::Source::SignedRunbook(
                    std::fs::read(&f).with_context(|| format!("cannot read {}", f.display()))?,
                ),
                _ => bail!("give a runbook name or --bundle FILE"),
            };
            let params = parse_params(&params)?.into_iter().collect();
            let started = ask(runbooks.trigger(pb::TriggerRequest {
                source: Some(source),
                params,
                dry_run,
            }))
            .await?;
            if detach {
                if cx.json {
                    print_json(&started)?;
                } else {
                    println!("{}", inert(&started.run_id));
                }
                return Ok(ExitCode::SUCCESS);
            }
            if !cx.json {
                println!(
                    "run {}{}",
                    inert(&started.run_id),
                    if started.queued { " (queued)" } else { "" }
                );
            }
            let status = follow(&mut runbooks, &started.run_id, cx.json).await?;
            Ok(if status == "succeeded" {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        CtlCommand::Watch { run_id } => {
            let status = follow(&mut runbooks, &run_id, cx.json).await?;
            Ok(if status == "succeeded" {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        CtlCommand::Runs {
            status,
            runbook,
            limit,
            page,
        } => {
            let runs = ask(runbooks.list_runs(pb::ListRunsRequest {
                limit,
                status: status.unwrap_or_default(),
                runbook: runbook.unwrap_or_default(),
                page_token: page.unwrap_or_default(),
            }))
            .await?;
            if cx.json {
                print_json(&RunList {
                    next_page: (!runs.next_page_token.is_empty()).then_some(runs.next_page_token),
                    runs: runs
                        .runs
                        .into_iter()
                        .map(|r| RunJson::from_api(r, false))
                        .collect(),
                })?;
            } else {
                if runs.runs.is_empty() {
                    println!("no runs");
                } else {
                    let mut rows = table([
                        "RUN", "STATUS", "RUNBOOK", "ORIGIN", "DRY-RUN", "STARTED", "TOOK",
                    ]);
                    for r in runs.runs {
                        rows.add_row([
                            inert(&r.run_id).into_owned(),
                            paint::status(&inert(&r.status)),
                            inert(&r.runbook).into_owned(),
                            origin(&r.requested_by),
                            if r.dry_run { "yes" } else { "no" }.into(),
                            times::at_ms(r.started_ms),
                            times::took(r.started_ms, Some(r.finished_ms)),
                        ]);
                    }
                    align_right(&mut rows, &[6]);
                    print_table(&rows);
                }
                if !runs.next_page_token.is_empty() {
                    println!(
                        "(older runs: the same command with --page {})",
                        inert(&runs.next_page_token)
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CtlCommand::Show { run_id } => {
            let run = ask(runbooks.get_run(pb::GetRunRequest { run_id })).await?;
            if cx.json {
                print_json(&RunJson::from_api(run, true))?;
            } else {
                println!(
                    "run {} of `{}`: {}",
                    inert(&run.run_id),
                    inert(&run.runbook),
                    paint::status(&inert(&run.status))
                );
                println!(
                    "  asked by {}, started {}, took {}",
                    origin(&run.requested_by),
                    times::at_ms(run.started_ms),
                    times::took(run.started_ms, Some(run.finished_ms))
                );
                for s in run.steps {
                    println!(
                        "  {} {:<16} {} {}{}",
                        paint::status_padded(&inert(&s.status), 10),
                        inert(&s.step),
                        inert(&s.plugin),
                        inert(&s.plugin_version),
                        if s.error.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", inert_lines(&s.error))
                        }
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CtlCommand::Cancel { run_id } => {
            let r = ask(runbooks.cancel(pb::CancelRequest {
                run_id: run_id.clone(),
            }))
            .await?;
            if cx.json {
                print_json(&r)?;
            } else if r.cancelled {
                println!("cancelling {}", inert(&run_id));
            } else {
                println!("{} had already finished", inert(&run_id));
            }
            Ok(ExitCode::SUCCESS)
        }
        CtlCommand::Plugins => {
            let list = ask(plugins.list(pb::ListPluginsRequest {})).await?;
            if cx.json {
                print_json(&list)?;
            } else {
                if list.plugins.is_empty() {
                    println!("no plugins installed");
                } else {
                    let mut rows = table(["NAME", "VERSION", "ROLE", "SHA256", "INSTALLED"]);
                    for p in list.plugins {
                        rows.add_row([
                            inert(&p.name).into_owned(),
                            inert(&p.version).into_owned(),
                            inert(&p.role).into_owned(),
                            inert(p.sha256.get(..16).unwrap_or(&p.sha256)).into_owned(),
                            times::at_secs(p.installed_at),
                        ]);
                    }
                    print_table(&rows);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CtlCommand::Install { bundle } => {
            let bytes = std::fs::read(&bundle)
                .with_context(|| format!("cannot read {}", bundle.display()))?;
            let r = ask(plugins.install(pb::InstallPluginRequest { bundle: bytes })).await?;
            if cx.json {
                print_json(&r)?;
            } else {
                let p = r.plugin.unwrap_or_default();
                println!(
                    "installed {} {} (signed by {})",
                    inert(&p.name),
                    inert(&p.version),
                    inert(&r.signers.join(", "))
                );
                for w in r.warnings {
                    println!("  warning: {}", inert_lines(&w));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CtlCommand::Remove { name } => {
            let r = ask(plugins.remove(pb::RemovePluginRequest { name: name.clone() })).await?;
            if cx.json {
                print_json(&r)?;
            } else if r.removed {
                println!("removed {}", inert(&name));
            } else {
                println!("{} was not installed", inert(&name));
            }
            Ok(ExitCode::SUCCESS)
        }
        CtlCommand::Inventory => {
            let snap = ask(inventory.latest(pb::LatestInventoryRequest {})).await?;
            if cx.json {
                print_json(&snap)?;
            } else {
                if snap.entries.is_empty() {
                    println!("no inventory yet: no discovery has run on this agent");
                }
                for e in snap.entries {
                    println!(
                        "{} {} (collected at {})",
                        inert(&e.plugin),
                        inert(&e.plugin_version),
                        times::at_ms(e.collected_ms)
                    );
                    print_inventory_facts(&e.facts_json);
                    if e.facts_truncated {
                        println!("  (cut down to fit the answer: use --json, or ask for less)");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CtlCommand::Events => {
            let mut stream = ask(agent.watch_events(pb::WatchEventsRequest {})).await?;
            while let Some(e) = stream.message().await.map_err(status_error)? {
                if cx.json {
                    println!("{}", serde_json::to_string(&e)?);
                } else {
                    println!(
                        "{} {} {}: {}",
                        times::at_ms(e.at_ms),
                        inert(&e.kind),
                        inert(&e.subject),
                        inert(&e.message)
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CtlCommand::Report { days, monitor } => {
            let to_ms = warden_history::now_ms();
            let r = ask(agent.report(pb::ReportRequest {
                from_ms: to_ms - days.max(1) * 86_400_000,
                to_ms,
                monitor: monitor.unwrap_or_default(),
            }))
            .await?;
            if cx.json {
                print_json(&r)?;
            } else {
                let mut rows = table([
                    "MONITOR",
                    "INCIDENTS",
                    "RESOLVED",
                    "ESCALATED",
                    "MTTD",
                    "MTT-REM",
                    "MTTR",
                ]);
                for m in r.monitors {
                    rows.add_row([
                        inert(&m.monitor).into_owned(),
                        m.incidents.to_string(),
                        m.resolved.to_string(),
                        m.escalated.to_string(),
                        times::span_ms(m.mean_time_to_detect_ms),
                        times::span_ms(m.mean_time_to_remediate_ms),
                        times::span_ms(m.mttr_ms),
                    ]);
                }
                align_right(&mut rows, &[1, 2, 3, 4, 5, 6]);
                print_table(&rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        CtlCommand::AuditHead => {
            let head = ask(agent.audit_head(pb::AuditHeadRequest {})).await?;
            if cx.json {
                print_json(&head)?;
            } else {
                println!("{}:{}", head.seq, head.hash);
            }
            Ok(ExitCode::SUCCESS)
        }
        CtlCommand::Version => {
            let v = ask(agent.version(pb::VersionRequest {})).await?;
            if cx.json {
                print_json(&v)?;
            } else {
                println!(
                    "warden agent {} (plugins: {}), up {}",
                    inert(&v.version),
                    inert(&v.wit_package),
                    times::span_secs(v.uptime_secs)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_with_or_without_a_scheme_is_dialled() {
        assert_eq!(
            endpoint_uri("127.0.0.1:7355", false),
            "http://127.0.0.1:7355"
        );
        assert_eq!(endpoint_uri("agent:7355", true), "https://agent:7355");
        assert_eq!(
            endpoint_uri("http://127.0.0.1:7355", true),
            "http://127.0.0.1:7355"
        );
        assert_eq!(
            endpoint_uri("https://agent:7355", false),
            "https://agent:7355"
        );
    }
}
