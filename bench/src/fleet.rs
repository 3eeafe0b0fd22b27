//! The fleet (issue 15), `warden-bench --fleet`: a simulated fleet (`warden-fleetsim`: a 3-node
//! nats-server cluster, the results stream R3, a real controller in this process, N agents in
//! this process sharing one sandbox, each with its own key, token, credentials, NATS
//! connection, ledger and outbox) for each N of `--agents`. For each N it measures:
//!
//! - **dispatch to all results**: one dispatch to every agent; per agent, the time from the
//!   dispatch to the controller storing its final result (the store's receive time); p50 and
//!   p99 over every agent of every round, and the time to the last result (median of rounds);
//! - **controller ingest**: result messages (`running` and final) stored per second, over the
//!   whole of each round and in its busiest second;
//! - **the stall when a node is killed**: half the agents' runs are held at the sandbox's gate,
//!   the results stream's leader is SIGKILLed once the other half's results are stored, the gate
//!   opens at once; the time from the kill to the first final result stored after it. The node
//!   is restarted then, and the round checks that nothing was lost or run twice;
//! - **the idle cost of a link**: resident memory per agent (the process's RSS before and after
//!   the links started) and wakeups per agent per second (context switches of every thread of
//!   this process over an idle window with the links, less the same window before them).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use warden_controller::controller::{DispatchRequest, internal_caller};
use warden_fleet_wire::{RunId, UnixMillis};
use warden_fleetsim::{FleetOptions, RUNBOOK, SimFleet, progress_until};

use crate::measure::{Stats, Table, fmt_duration};
use crate::system::{fmt_bytes, rss_bytes};

/// Rounds of dispatch-to-all per fleet size (the first of them is not a warm-up: a fleet is
/// dispatched to cold too).
const ROUNDS: usize = 5;
/// The heartbeat interval of the simulated agents: the agent's default.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// Bound on one fleet size's whole measurement.
const DEADLINE: Duration = Duration::from_secs(900);

/// What `--fleet` measures.
#[derive(Debug, Clone)]
pub struct FleetBench {
    pub agents: Vec<usize>,
    /// The idle window of the wakeup count.
    pub idle: Duration,
    pub tmp: Option<PathBuf>,
    pub markdown: bool,
}

/// Agents one process hosts at most: about 5 file descriptors each, under this machine's
/// limit of 20,000 with room for the controller and the servers' clients.
const AGENTS_PER_PROCESS: usize = 2_500;

/// Child processes for `n` agents: none up to [`AGENTS_PER_PROCESS`] (all in this process).
fn hosts_for(n: usize) -> usize {
    if n <= AGENTS_PER_PROCESS {
        0
    } else {
        n.div_ceil(AGENTS_PER_PROCESS)
    }
}

/// This benchmark again, as a host of simulated agents (`--fleet-host <spec>`).
fn host_command() -> anyhow::Result<Vec<std::ffi::OsString>> {
    let exe = std::env::current_exe().context("this benchmark's own path")?;
    Ok(vec![exe.into_os_string(), "--fleet-host".into()])
}

fn every_second(i: usize) -> bool {
    i % 2 == 1
}

/// Context switches of every thread of this process so far (voluntary and not), Linux.
fn context_switches() -> Option<u64> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let status = std::fs::read_to_string(task.ok()?.path().join("status")).ok()?;
        for line in status.lines() {
            if line.starts_with("voluntary_ctxt_switches:")
                || line.starts_with("nonvoluntary_ctxt_switches:")
            {
                total += line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    Some(total)
}

/// Context switches per second over `window`.
async fn wakeups_per_second(window: Duration) -> Option<f64> {
    let before = context_switches()?;
    tokio::time::sleep(window).await;
    let after = context_switches()?;
    Some(after.saturating_sub(before) as f64 / window.as_secs_f64())
}

struct Round {
    /// Per agent: dispatch to its final result stored.
    latencies: Vec<Duration>,
    /// Per agent, the same time in its three stages (what bounds the total).
    stages: Vec<Stages>,
    /// The controller's `dispatch` call: targets resolved, the run stored and audited, every
    /// command published.
    dispatch: Duration,
    /// CPU used from the dispatch to the last result: this process (controller and agents),
    /// and the nats-server nodes together.
    cpu_here: Duration,
    cpu_nats: Duration,
    last: Duration,
    /// Result messages stored per second, over the round and in its busiest second.
    ingest: f64,
    peak: usize,
}

fn dispatch_request() -> DispatchRequest {
    DispatchRequest {
        runbook: RUNBOOK.into(),
        target: "*".into(),
        params: Default::default(),
        dry_run: false,
        ttl_secs: None,
        bundle: None,
    }
}

/// One agent's dispatch-to-result time, split at the times its result carries (the agents
/// share this process's clock): the command reaching the agent and the run accepted
/// (`started_at`), the run (`finished_at`), the result's way back to the controller's store
/// (`received_at`).
#[derive(Debug, Clone, Copy)]
struct Stages {
    accept: Duration,
    run: Duration,
    deliver: Duration,
}

fn between(from: UnixMillis, to: UnixMillis) -> Duration {
    Duration::from_millis(u64::try_from(to.as_millis() - from.as_millis()).unwrap_or(0))
}

/// The stages of every final result of `run` dispatched at `at`.
fn stages(fleet: &SimFleet, run: &RunId, at: UnixMillis) -> anyhow::Result<Vec<Stages>> {
    Ok(fleet
        .controller
        .controller
        .run_results(&internal_caller(), run)?
        .into_iter()
        .filter(|r| r.status.is_final())
        .filter_map(|r| {
            let (started, finished) = (r.started_at?, r.finished_at?);
            Some(Stages {
                accept: between(at, started),
                run: between(started, finished),
                deliver: between(finished, r.received_at),
            })
        })
        .collect())
}

/// Finals stored for `run`, with their receive times.
fn finals(fleet: &SimFleet, run: &RunId) -> anyhow::Result<Vec<UnixMillis>> {
    Ok(fleet
        .controller
        .controller
        .run_results(&internal_caller(), run)?
        .into_iter()
        .filter(|r| r.status.is_final())
        .map(|r| r.received_at)
        .collect())
}

async fn until_all(
    fleet: &SimFleet,
    run: &RunId,
    want: usize,
    deadline: tokio::time::Instant,
) -> anyhow::Result<()> {
    let found = progress_until(&fleet.controller, deadline, |_| {
        finals(fleet, run).map(|f| f.len() >= want).unwrap_or(false)
    })
    .await;
    if let Err(p) = found {
        bail!(
            "{} of {want} final results before the deadline ({p:?})",
            finals(fleet, run)?.len()
        );
    }
    Ok(())
}

async fn round(fleet: &SimFleet, deadline: tokio::time::Instant) -> anyhow::Result<Round> {
    let n = fleet.agents.len();
    let messages_before = fleet.controller.controller.progress().borrow().results;
    let cpu_nats = || -> Duration {
        (0..fleet.nats.len())
            .filter_map(|node| crate::system::cpu_time(Some(fleet.nats.pid(node)?)))
            .sum()
    };
    let (here_before, nats_before) = (crate::system::cpu_time(None), cpu_nats());
    let at = UnixMillis::now();
    let call = Instant::now();
    let dispatched = fleet
        .controller
        .controller
        .dispatch(&internal_caller(), dispatch_request())
        .await?;
    let dispatch = call.elapsed();
    until_all(fleet, &dispatched.run, n, deadline).await?;
    let cpu_here = match (here_before, crate::system::cpu_time(None)) {
        (Some(before), Some(after)) => after.saturating_sub(before),
        _ => Duration::ZERO,
    };
    let cpu_nats = cpu_nats().saturating_sub(nats_before);
    let messages = fleet.controller.controller.progress().borrow().results - messages_before;
    let times = finals(fleet, &dispatched.run)?;
    let latencies: Vec<Duration> = times
        .iter()
        .map(|t| Duration::from_millis(u64::try_from(t.as_millis() - at.as_millis()).unwrap_or(0)))
        .collect();
    let last = latencies.iter().copied().max().unwrap_or_default();
    let stages = stages(fleet, &dispatched.run, at)?;
    let mut per_second: HashMap<i64, usize> = HashMap::new();
    for t in &times {
        *per_second.entry(t.as_millis() / 1000).or_default() += 1;
    }
    Ok(Round {
        latencies,
        stages,
        dispatch,
        cpu_here,
        cpu_nats,
        last,
        ingest: messages as f64 / last.as_secs_f64().max(0.001),
        peak: per_second.values().copied().max().unwrap_or(0),
    })
}

struct Kill {
    run: RunId,
    stall: Duration,
    total: Duration,
    lost: usize,
    twice: usize,
}

async fn kill_round(fleet: &mut SimFleet, deadline: tokio::time::Instant) -> anyhow::Result<Kill> {
    let n = fleet.agents.len();
    let held = (0..n).filter(|i| every_second(*i)).count();
    fleet.close_gate().await?;
    let started = Instant::now();
    let dispatched = fleet
        .controller
        .controller
        .dispatch(&internal_caller(), dispatch_request())
        .await?;
    let run = dispatched.run.clone();
    until_all(fleet, &run, n - held, deadline).await?;
    let leader = fleet.results_leader().await?;
    let killed_ms = UnixMillis::now();
    tokio::task::block_in_place(|| fleet.nats.kill(leader)).context("SIGKILL of the leader")?;
    fleet.open_gate().await?;
    let before = finals(fleet, &run)?.len();
    let found = progress_until(&fleet.controller, deadline, |_| {
        finals(fleet, &run)
            .map(|f| f.len() > before)
            .unwrap_or(false)
    })
    .await;
    if found.is_err() {
        bail!("no result stored after node {leader} was killed");
    }
    tokio::task::block_in_place(|| fleet.nats.restart(leader)).context("restarting the node")?;
    until_all(fleet, &run, n, deadline).await?;
    let total = started.elapsed();
    let times = finals(fleet, &run)?;
    let first_after = times
        .iter()
        .filter(|t| t.as_millis() >= killed_ms.as_millis())
        .map(|t| t.as_millis())
        .min()
        .unwrap_or(killed_ms.as_millis());
    Ok(Kill {
        run,
        stall: Duration::from_millis(
            u64::try_from(first_after - killed_ms.as_millis()).unwrap_or(0),
        ),
        total,
        lost: n.saturating_sub(times.len()),
        twice: 0,
    })
}

struct Measured {
    agents: usize,
    setup: warden_fleetsim::SetupTimes,
    rss_per_agent: Option<f64>,
    wakeups_per_agent: Option<f64>,
    rounds: Vec<Round>,
    kill: Kill,
    published: Vec<crate::fleet_publish::Published>,
}

/// The Python plugin of the distribution round (`examples/python/dir-quota`, 18 MB built).
const PYTHON_PLUGIN: &str = "dir-quota";

async fn measure(n: usize, bench: &FleetBench, plugins: &Path) -> anyhow::Result<Measured> {
    let guest = &plugins.join("trivial");
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let keys = tempfile::tempdir().context("a directory for the publisher key")?;
    let (secret, _, public) = warden_core::keys::generate(&keys.path().join("publisher"))?;
    let secret = warden_core::keys::load_secret(&secret)?;
    // The process with one link: the baseline of memory and wakeups (the controller, the
    // sandbox and the runtime come with any fleet), subtracted from the same with N links.
    // Only when the agents are in this process: in child hosts they are not this process's.
    let in_process = hosts_for(n) == 0;
    let (base_rss, base_wakeups) = if in_process {
        let mut base = SimFleet::start(
            FleetOptions {
                nodes: 3,
                agents: 1,
                gated: every_second,
                heartbeat: HEARTBEAT,
                tmp: bench.tmp.clone(),
                guest: guest.to_path_buf(),
                hosts: 0,
                host_command: Vec::new(),
                trusted: Vec::new(),
            },
            deadline,
        )
        .await?;
        let rss = rss_bytes();
        let wakeups = wakeups_per_second(bench.idle).await;
        base.stop().await?;
        drop(base);
        (rss, wakeups)
    } else {
        (None, None)
    };

    // Progress on stderr: a 10,000-agent run takes many minutes, the tables come at the end.
    let started = Instant::now();
    let say = |what: &str| eprintln!("fleet {n}: {what} ({})", fmt_duration(started.elapsed()));
    say("starting nats, the controller, enrolling and connecting the agents");
    let mut fleet = SimFleet::start(
        FleetOptions {
            nodes: 3,
            agents: n,
            gated: every_second,
            heartbeat: HEARTBEAT,
            tmp: bench.tmp.clone(),
            guest: guest.to_path_buf(),
            hosts: hosts_for(n),
            host_command: host_command()?,
            trusted: vec![warden_core::keys::public_text(&public)],
        },
        deadline,
    )
    .await?;
    let (rss, wakeups) = if in_process {
        (rss_bytes(), wakeups_per_second(bench.idle).await)
    } else {
        (None, None)
    };
    let per_agent = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if n > 1 => Some((a - b) / (n - 1) as f64),
        _ => None,
    };
    let rss_per_agent = per_agent(rss.map(|r| r as f64), base_rss.map(|r| r as f64));
    let wakeups_per_agent = per_agent(wakeups, base_wakeups);
    let mut rounds = Vec::with_capacity(ROUNDS);
    for i in 0..ROUNDS {
        say(&format!("round {} of {ROUNDS}", i + 1));
        rounds.push(round(&fleet, deadline).await?);
    }
    say("the node-kill round");
    let mut kill = kill_round(&mut fleet, deadline).await?;
    let mut published = Vec::new();
    let sample = (0..n).filter(|i| i % warden_fleetsim::SHARDS == 0).count();
    for (plugin, target, count) in [("disk-usage", "*", n), (PYTHON_PLUGIN, "shard=0", sample)] {
        say(&format!(
            "publishing {plugin} 0.2.0 to {count} agents ({target})"
        ));
        let bundle =
            crate::fleet_publish::signed_bundle(plugins, plugin, "0.2.0", keys.path(), &secret)?;
        published.push(
            crate::fleet_publish::round(&fleet, plugin, &bundle, target, count, deadline).await?,
        );
    }
    say("done; stopping");
    // Run twice, in any process's sandbox: counted once every link stopped.
    let stopped = fleet.stop().await?;
    kill.twice = stopped
        .executions
        .iter()
        .filter(|((_, r), count)| r == &kill.run && **count > 1)
        .count();
    Ok(Measured {
        agents: n,
        setup: fleet.times.clone(),
        rss_per_agent,
        wakeups_per_agent,
        rounds,
        kill,
        published,
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn median_f(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Run the fleet benchmark: every size of `bench.agents`, one after the other.
pub fn run(bench: &FleetBench, plugins: &Path) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("a tokio runtime")?;
    println!();
    println!("## 7. The fleet (issue 15)");
    println!();
    println!(
        "3-node nats-server cluster, results stream R3, controller and N simulated agents in this \
         process (one sandbox, the trivial guest; own key, token, credentials, connection, ledger \
         and outbox each); {ROUNDS} rounds of one dispatch to all, then one round with the \
         results stream's leader SIGKILLed in the middle; heartbeats every {}",
        fmt_duration(HEARTBEAT)
    );
    println!();
    let mut measured = Vec::new();
    for &n in &bench.agents {
        match runtime.block_on(measure(n, bench, plugins)) {
            Ok(m) => measured.push(m),
            Err(e) => println!("{n} agents: not measured: {e:#}"),
        }
    }

    let mut setup = Table::new(&[
        "agents",
        "tokens",
        "enroll (gRPC)",
        "links started",
        "all seen",
        "RSS / agent",
        "wakeups / agent / s",
    ]);
    for m in &measured {
        setup.row(vec![
            m.agents.to_string(),
            fmt_duration(m.setup.tokens),
            fmt_duration(m.setup.enroll),
            fmt_duration(m.setup.links),
            fmt_duration(m.setup.connected),
            m.rss_per_agent.map_or("- (in hosts)".into(), fmt_bytes),
            m.wakeups_per_agent
                .map_or("- (in hosts)".into(), |w| format!("{w:.3}")),
        ]);
    }
    setup.print(bench.markdown);
    println!();

    let mut table = Table::new(&[
        "agents",
        "p50",
        "p99",
        "last result",
        "ingest msg/s",
        "finals, busiest second",
        "kill: stall",
        "kill: all in",
        "lost",
        "run twice",
    ]);
    for m in &measured {
        let all: Vec<Duration> = m.rounds.iter().flat_map(|r| r.latencies.clone()).collect();
        let stats = Stats::new(all);
        table.row(vec![
            m.agents.to_string(),
            fmt_duration(stats.median()),
            fmt_duration(stats.p99()),
            fmt_duration(median(m.rounds.iter().map(|r| r.last).collect())),
            format!(
                "{:.0}",
                median_f(m.rounds.iter().map(|r| r.ingest).collect())
            ),
            format!("{}", m.rounds.iter().map(|r| r.peak).max().unwrap_or(0)),
            fmt_duration(m.kill.stall),
            fmt_duration(m.kill.total),
            m.kill.lost.to_string(),
            m.kill.twice.to_string(),
        ]);
    }
    table.print(bench.markdown);
    println!();
    let mut split = Table::new(&[
        "agents",
        "dispatch call",
        "accept p50",
        "accept p99",
        "run p50",
        "run p99",
        "deliver p50",
        "deliver p99",
        "CPU: here",
        "CPU: nats",
    ]);
    for m in &measured {
        let all: Vec<Stages> = m.rounds.iter().flat_map(|r| r.stages.clone()).collect();
        let stat = |f: fn(&Stages) -> Duration| Stats::new(all.iter().map(f).collect());
        let (accept, run, deliver) = (stat(|s| s.accept), stat(|s| s.run), stat(|s| s.deliver));
        split.row(vec![
            m.agents.to_string(),
            fmt_duration(median(m.rounds.iter().map(|r| r.dispatch).collect())),
            fmt_duration(accept.median()),
            fmt_duration(accept.p99()),
            fmt_duration(run.median()),
            fmt_duration(run.p99()),
            fmt_duration(deliver.median()),
            fmt_duration(deliver.p99()),
            fmt_duration(median(m.rounds.iter().map(|r| r.cpu_here).collect())),
            fmt_duration(median(m.rounds.iter().map(|r| r.cpu_nats).collect())),
        ]);
    }
    split.print(bench.markdown);
    println!();
    println!(
        "Where the time goes, per agent (the agents share this process's clock): dispatch \
         call, the controller's `dispatch` (median of rounds: targets, the run stored and \
         audited, every command published); accept, the \
         dispatch to the run's start on the agent (the command's way, its checks, the ledger's \
         claim, a sandbox slot); run, the run itself; deliver, the end of the run to the result \
         stored by the controller (the agent's outbox, the PubAck from the R3 stream, the \
         controller's consumer and commit); CPU: user and system time used from the dispatch \
         to the last result (median of rounds), by this process (controller and agents) and by \
         the three nats-server nodes together; against the last result's time, on two cores, \
         it says whether a round is bound by CPU."
    );
    println!();
    println!(
        "p50 / p99: per agent, dispatch to its final result stored by the controller, over every \
         agent of every round; last result and ingest (result messages, `running` and final, \
         per second of the round): median of rounds; busiest second: final results stored in \
         it (a run that ends within 500 ms sends no `running`); \
         RSS / agent: the process's RSS with N links less with 1, over N - 1; wakeups: context \
         switches of every thread over {} idle, with N links less with 1, over N - 1 (measured only when every agent is in this process: above \
         {AGENTS_PER_PROCESS} they run in child processes of {AGENTS_PER_PROCESS}, for want of file \
         descriptors)",
        fmt_duration(bench.idle)
    );
    println!();
    let mut dist = Table::new(&[
        "fleet",
        "published to",
        "plugin",
        "bundle",
        "check (once)",
        "p50",
        "p99",
        "all converged",
        "sent / agent",
        "sent / bundle",
    ]);
    for m in &measured {
        for p in &m.published {
            let stats = Stats::new(p.latencies.clone());
            dist.row(vec![
                m.agents.to_string(),
                p.agents.to_string(),
                p.plugin.clone(),
                fmt_bytes(p.bundle_bytes as f64),
                fmt_duration(p.check),
                fmt_duration(stats.median()),
                fmt_duration(stats.p99()),
                fmt_duration(p.last),
                p.sent_per_agent.map_or("-".into(), fmt_bytes),
                p.sent_per_agent.map_or("-".into(), |s| {
                    format!("{:.2}x", s / p.bundle_bytes.max(1) as f64)
                }),
            ]);
        }
    }
    dist.print(bench.markdown);
    println!();
    println!(
        "Distribution (issue 16): one `publish` of a signed bundle; p50 / p99 / all: per agent, \
         the publish to its `installed` report (its clock); check: the component compiled \
         against its manifest once in the shared sandbox before the publish (real agents compile \
         once each, in parallel); sent: bytes the nats-server nodes sent to all clients during \
         the round (`/connz` out_bytes), over the agents published to. The {PYTHON_PLUGIN} round \
         goes to 1 % of the fleet (`shard=0`): a thousand 18 MB downloads at once in one process \
         would hold tens of gigabytes, which real agents, one per machine, never do together."
    );
    println!();
    println!("### Goals (issue 15)");
    println!();
    let goal = |ok: bool| if ok { "met" } else { "MISSED" };
    for m in &measured {
        let all: Vec<Duration> = m.rounds.iter().flat_map(|r| r.latencies.clone()).collect();
        let p99 = Stats::new(all).p99();
        let bound = match m.agents {
            n if n <= 1_000 => Some(Duration::from_millis(250)),
            n if n <= 10_000 => Some(Duration::from_secs(3)),
            _ => None,
        };
        if let Some(bound) = bound {
            println!(
                "- {} agents p99 ≤ {}: {} ({})",
                m.agents,
                fmt_duration(bound),
                goal(p99 <= bound),
                fmt_duration(p99)
            );
        }
        println!(
            "- {} agents, node-kill stall ≤ 12 s with nothing lost: {} ({}, {} lost, {} run twice)",
            m.agents,
            goal(m.kill.stall <= Duration::from_secs(12) && m.kill.lost == 0 && m.kill.twice == 0),
            fmt_duration(m.kill.stall),
            m.kill.lost,
            m.kill.twice
        );
        if m.agents >= 10_000
            && let Some(p) = m.published.first().filter(|p| p.agents == m.agents)
        {
            println!(
                "- {} agents converged on a published plugin ≤ 60 s (issue 16): {} ({})",
                m.agents,
                goal(p.last <= Duration::from_secs(60)),
                fmt_duration(p.last)
            );
        }
    }
    Ok(())
}
