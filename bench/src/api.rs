//! The agent's API under load: `warden_agent::daemon::serve` on a loopback port of this process
//! (its own runtime, built as `warden serve` builds it), driven by a real tonic client over one
//! HTTP/2 connection, like a NOC console. For concurrency 1, 8 and 64 it times trigger→finished
//! (a Trigger of a one-step runbook, then its Watch until `RUN_FINISHED`) and, meanwhile, a cheap
//! call (`Agent/Version`) issued back to back; beside them, the same runbook run in-process
//! (`Engine::run`), the floor any API run stands on.

use crate::measure::{Stats, Table, fmt_duration};
use anyhow::{Context, bail};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use warden_agent::PluginManager;
use warden_agent::grpc::pb;

/// A throwaway operator token: the agent listens on loopback and lives for the measurement.
const TOKEN: &str = "warden-bench-api-operator";

/// The runbook every API run triggers: one trivial check.
pub const RUNBOOK: &str =
    "name = \"bench-one\"\n[[steps]]\nid = \"one\"\nplugin = \"trivial\"\naction = \"check\"\n";

/// What one concurrency level measured.
pub struct Level {
    pub concurrency: usize,
    pub runs: Stats,
    pub per_second: f64,
    pub cheap: Stats,
}

type Interceptor = fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>;
type Authed = InterceptedService<Channel, Interceptor>;

fn bearer(mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {TOKEN}")
            .parse()
            .map_err(|_| tonic::Status::internal("bearer header"))?,
    );
    Ok(req)
}

/// The agent config: enough run slots, queue and streams that 64 clients are measured, not
/// refused.
fn agent_config(root: &Path) -> anyhow::Result<warden_agent::daemon::config::AgentConfig> {
    let text = format!(
        "[api]\nlisten = \"127.0.0.1:0\"\nmax-concurrent-runs = 8\nmax-queued-runs = 256\n\
         max-streams-per-token = 256\nmax-streams = 256\n[[api.token]]\nname = \"bench\"\n\
         role = \"operator\"\nsha256 = {:?}\n[runbooks]\ndir = \"runbooks\"\n",
        warden_agent::grpc::auth::token_hash(TOKEN)
    );
    warden_agent::daemon::config::AgentConfig::parse(&text, "bench agent.toml", root)
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// An agent serving `runner`'s data on a thread of its own; stopped when dropped.
struct Served {
    addr: String,
    stop: Option<tokio::sync::oneshot::Sender<String>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send("bench done".into());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(runner: PluginManager, root: &Path) -> anyhow::Result<Served> {
    std::fs::create_dir_all(root.join("runbooks")).context("creating the runbook dir")?;
    std::fs::write(root.join("runbooks/bench-one.toml"), RUNBOOK).context("writing the runbook")?;
    let config = agent_config(root)?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<String>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || -> anyhow::Result<()> {
        let runtime = warden_agent::daemon::runtime::build(&config)?;
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let shutdown = async move { stop_rx.await.unwrap_or_else(|_| "dropped".into()) };
            warden_agent::daemon::serve(runner, config, listener, shutdown, |addr| {
                let _ = addr_tx.send(addr.to_string());
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
        })
    });
    match addr_rx.recv() {
        Ok(addr) => Ok(Served {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        }),
        Err(_) => match thread.join() {
            Ok(Err(e)) => Err(e.context("the agent ended before it served")),
            _ => bail!("the agent ended before it served"),
        },
    }
}

/// Trigger `bench-one` and watch it to its end; fails unless it succeeded.
async fn trigger_to_finished(
    client: &mut pb::runbooks_client::RunbooksClient<Authed>,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let run = client
        .trigger(pb::TriggerRequest {
            source: Some(pb::trigger_request::Source::Name("bench-one".into())),
            ..Default::default()
        })
        .await
        .context("Trigger")?
        .into_inner();
    let mut events = client
        .watch(pb::WatchRequest {
            run_id: run.run_id.clone(),
        })
        .await
        .context("Watch")?
        .into_inner();
    while let Some(e) = events.message().await.context("a Watch event")? {
        if e.kind == pb::EventKind::RunFinished as i32 {
            if e.status != "succeeded" {
                bail!("run {} {}: {}", run.run_id, e.status, e.message);
            }
            return Ok(start.elapsed());
        }
    }
    bail!("the Watch of {} ended before RUN_FINISHED", run.run_id)
}

/// `runs` trigger→finished by `concurrency` clients at once, and the cheap call meanwhile.
async fn level(channel: &Channel, concurrency: usize, runs: usize) -> anyhow::Result<Level> {
    let runbooks = pb::runbooks_client::RunbooksClient::with_interceptor(
        channel.clone(),
        bearer as Interceptor,
    );
    let agent =
        pb::agent_client::AgentClient::with_interceptor(channel.clone(), bearer as Interceptor);
    let loading = Arc::new(AtomicBool::new(true));
    let probe = tokio::spawn({
        let loading = loading.clone();
        let mut agent = agent.clone();
        async move {
            let mut samples = Vec::new();
            while loading.load(Ordering::SeqCst) {
                let start = Instant::now();
                agent
                    .version(pb::VersionRequest {})
                    .await
                    .context("Agent/Version")?;
                samples.push(start.elapsed());
            }
            anyhow::Ok(samples)
        }
    });
    let started = Instant::now();
    let per_client = runs.div_ceil(concurrency);
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let mut client = runbooks.clone();
        clients.spawn(async move {
            let mut samples = Vec::with_capacity(per_client);
            for _ in 0..per_client {
                samples.push(trigger_to_finished(&mut client).await?);
            }
            anyhow::Ok(samples)
        });
    }
    let mut samples = Vec::new();
    while let Some(done) = clients.join_next().await {
        samples.extend(done.context("a client task")??);
    }
    let elapsed = started.elapsed();
    loading.store(false, Ordering::SeqCst);
    let cheap = probe.await.context("the probe task")??;
    Ok(Level {
        concurrency,
        per_second: samples.len() as f64 / elapsed.as_secs_f64(),
        runs: Stats::new(samples),
        cheap: Stats::new(cheap),
    })
}

/// Measure every level against an agent on `runner`'s data dir (`root`).
pub fn measure(
    runner: PluginManager,
    root: &Path,
    levels: &[usize],
    runs: usize,
) -> anyhow::Result<Vec<Level>> {
    let served = serve(runner, root)?;
    let client_runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the client's runtime")?;
    client_runtime.block_on(async {
        let channel = Channel::from_shared(format!("http://{}", served.addr))
            .context("the agent's address")?
            .connect()
            .await
            .context("connecting to the agent")?;
        // The first run pays for linking the plugin: not part of any level.
        let mut warm = pb::runbooks_client::RunbooksClient::with_interceptor(
            channel.clone(),
            bearer as Interceptor,
        );
        trigger_to_finished(&mut warm)
            .await
            .context("the warm-up run")?;
        let mut out = Vec::new();
        for &concurrency in levels {
            out.push(level(&channel, concurrency, runs.max(concurrency)).await?);
        }
        anyhow::Ok(out)
    })
}

/// Print the levels beside the in-process run of the same runbook.
pub fn print(levels: &[Level], in_process: &Stats, markdown: bool) {
    let mut t = Table::new(&[
        "scenario",
        "samples",
        "median",
        "p90",
        "p99",
        "runs/s",
        "Agent/Version meanwhile (median, p99)",
    ]);
    t.row(vec![
        "in-process Engine::run (the same runbook, no API)".into(),
        in_process.len().to_string(),
        fmt_duration(in_process.median()),
        fmt_duration(in_process.p90()),
        fmt_duration(in_process.p99()),
        format!("{:.0}", 1.0 / in_process.median().as_secs_f64().max(1e-9)),
        "-".into(),
    ]);
    for l in levels {
        t.row(vec![
            format!("API trigger→finished, {} at once", l.concurrency),
            l.runs.len().to_string(),
            fmt_duration(l.runs.median()),
            fmt_duration(l.runs.p90()),
            fmt_duration(l.runs.p99()),
            format!("{:.0}", l.per_second),
            format!(
                "{}, {} ({} calls)",
                fmt_duration(l.cheap.median()),
                fmt_duration(l.cheap.p99()),
                l.cheap.len()
            ),
        ]);
    }
    t.print(markdown);
}
