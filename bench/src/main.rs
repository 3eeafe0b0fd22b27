//! # warden-bench
//!
//! Benchmarks of the Warden runner against the baselines users compare it with, measured side by
//! side in one run (interleaved, in a random order each round) so that the ratios hold on a noisy
//! shared machine.
//! It prints tables of median, p90 and p99 and the ratios, for:
//!
//! 1. a trivial check plugin (`tests/guests/trivial`) run end to end through `PluginManager::run`, vs
//!    the same component in a bare wasmtime host (the floor), vs `sh -c` and `python3 -c`
//!    printing the same `ok`; with a profile of the runner's per-run work: bare hosts that add
//!    the runner's wasmtime work one piece at a time, and the runner's own steps timed alone;
//! 2. first runs: a fresh runner's, from the precompiled cache, and an install into an empty one,
//!    for the trivial plugin and for a Python one (componentize-py, `dir-quota`) against spawning
//!    `python3` with the same script;
//! 3. capability call overhead: `(time with N calls - time with 0) / N` (`tests/guests/calls`);
//! 4. throughput with 1, 2, 8 and 64 threads sharing one `&PluginManager`, memory per live instance, and
//!    the idle RSS of the agent daemon (`warden serve`);
//! 5. a 5-step runbook of trivial checks vs its five plugin runs alone;
//! 6. the agent's API: trigger→finished through a real gRPC client at concurrency 1, 8 and 64,
//!    with a cheap call's latency under that load, beside the same runbook run in-process;
//! 7. with `--fleet` only (it starts nats-server clusters; `cargo xtask nats` installs the
//!    binary): the fleet, dispatch to all results for 1,000 and 10,000 simulated agents, the
//!    stall when a node is killed, the controller's ingest and a link's idle cost (`fleet.rs`).
//!
//! ```text
//! cargo xtask build-plugins
//! cargo build --release --workspace && target/release/warden-bench [--iterations N] [--quick]
//! ```
//!
//! `--quick` runs every benchmark at a tiny size, so CI can keep the harness working without
//! timing anything. `--spin runner|floor|python|python-fresh|calls:<kind>:<n> SECONDS` only loops one scenario, for
//! a profiler (`perf record -g target/release/warden-bench --spin runner 10`).

mod api;
mod bare;
mod console;
mod daemon;
mod fleet;
mod fleet_publish;
mod measure;
mod python;
mod report;
mod setup;
mod system;

use anyhow::{Context, bail};
use bare::{ABLATION, BareHost, FLOOR};
use measure::{Scenario, Stats, Table, fmt_duration, interleaved, micros, per_unit_us, ratio};
use setup::Sandbox;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use system::{fmt_bytes, rss_bytes};
use warden_agent::PluginManager;
use warden_core::report::CheckStatus;
use warden_core::{Invocation, Output, RunReport, RunRequest};

const USAGE: &str = "\
usage: warden-bench [--iterations N] [--quick] [--markdown] [--plugins DIR] [--python PATH]
                    [--tmp DIR]
       warden-bench --spin runner|floor|calls:<kind>:<n> SECONDS
       warden-bench --fleet [--agents N,N...] [--idle SECS] [--markdown] [--tmp DIR]
       warden-bench --console [--iterations N] [--quick] [--markdown]
       warden-bench --report [--iterations N] [--quick] [--markdown]

  --iterations N   samples of each in-process scenario of table 1 (default 2000); the other
                   benchmarks scale from it (process spawns get fewer samples)
  --quick          tiny sizes, to check that every benchmark still works (CI)
  --markdown       print the tables as Markdown
  --plugins DIR    the built guests (default: <repo>/target/plugins, from `cargo xtask build-plugins`)
  --python PATH    the Python interpreter to spawn (default /usr/bin/python3, else python3 on PATH)
  --tmp DIR        where the temporary data dir goes (default: the system temp dir); the runner
                   fsyncs its audit log and KV state there, so the filesystem matters
  --fleet          run only the fleet benchmark (table 7): a 3-node nats-server cluster, the
                   controller and --agents simulated agents in this process
  --agents LIST    fleet sizes of --fleet (default 1000,10000)
  --console        run only the web console's benchmark: its fleet table at 10,000 agents
                   (first page, filters, a deep page), --iterations requests of each (100)
  --report         run only the client report's benchmark: a month of 1,000 agents' incidents,
                   --iterations reports of each format (10)
  --idle SECS      the idle window of --fleet's wakeup count (default 60)
  --spin S SECS    run only scenario S in a loop for SECS seconds (for perf, strace, callgrind):
                   runner, floor, python (the Python plugin, steady state), python-fresh (a new
                   PluginManager's first call from the cache), or calls:<kind>:<n> (the `calls` guest,
                   n calls of log, kv, kv-set, fs or fs-stat per run)";

#[derive(Debug)]
struct Options {
    iterations: usize,
    quick: bool,
    markdown: bool,
    plugins: Option<PathBuf>,
    python: Option<PathBuf>,
    tmp: Option<PathBuf>,
    spin: Option<(String, f64)>,
    fleet: Option<fleet::FleetBench>,
    console: Option<console::ConsoleBench>,
    report: Option<report::ReportBench>,
}

fn parse_args() -> anyhow::Result<Option<Options>> {
    let mut o = Options {
        iterations: 2000,
        quick: false,
        markdown: false,
        plugins: None,
        python: None,
        tmp: None,
        spin: None,
        fleet: None,
        console: None,
        report: None,
    };
    let mut iterations = None;
    let mut fleet_sizes = vec![1_000, 10_000];
    let mut idle = Duration::from_secs(60);
    let mut fleet = false;
    let mut console = false;
    let mut report = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |what: &str| args.next().with_context(|| format!("{arg} needs {what}"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--quick" => o.quick = true,
            "--markdown" => o.markdown = true,
            "--iterations" => {
                let n: usize = value("a number")?
                    .parse()
                    .context("--iterations needs a positive number")?;
                if n == 0 {
                    bail!("--iterations needs a positive number");
                }
                iterations = Some(n);
            }
            "--plugins" => o.plugins = Some(PathBuf::from(value("a directory")?)),
            "--python" => o.python = Some(PathBuf::from(value("a path")?)),
            "--tmp" => o.tmp = Some(PathBuf::from(value("a directory")?)),
            "--spin" => {
                let scenario =
                    value("a scenario (runner, floor, python, python-fresh or calls:<kind>:<n>)")?;
                let secs: f64 = value("a duration in seconds")?
                    .parse()
                    .context("--spin needs a duration in seconds")?;
                o.spin = Some((scenario, secs));
            }
            "--fleet" => fleet = true,
            "--console" => console = true,
            "--report" => report = true,
            "--agents" => {
                fleet_sizes = value("a list of fleet sizes")?
                    .split(',')
                    .map(|n| n.trim().parse::<usize>().ok().filter(|n| *n > 1))
                    .collect::<Option<Vec<_>>>()
                    .context("--agents needs sizes above 1, comma-separated")?;
            }
            "--idle" => {
                let secs: u64 = value("seconds")?
                    .parse()
                    .context("--idle needs a whole number of seconds")?;
                idle = Duration::from_secs(secs.max(1));
            }
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    if report {
        o.report = Some(report::ReportBench {
            agents: if o.quick { 100 } else { 1_000 },
            incidents: 6,
            iterations: iterations.unwrap_or(if o.quick { 3 } else { 10 }),
            markdown: o.markdown,
        });
    }
    if console {
        o.console = Some(console::ConsoleBench {
            agents: if o.quick { 200 } else { 10_000 },
            requests: iterations.unwrap_or(if o.quick { 5 } else { 100 }),
            audit_records: if o.quick {
                1_000
            } else {
                console::AUDIT_FILLER
            },
            markdown: o.markdown,
        });
    }
    if fleet {
        o.fleet = Some(fleet::FleetBench {
            agents: fleet_sizes,
            idle,
            tmp: o.tmp.clone(),
            markdown: o.markdown,
        });
    }
    o.iterations = iterations.unwrap_or(if o.quick { 30 } else { 2000 });
    Ok(Some(o))
}

/// Every size derived from `--iterations` and `--quick`.
struct Sizes {
    rounds: usize,
    warmup: usize,
    sh_samples: usize,
    python_samples: usize,
    calls: u32,
    kv_set_calls: u32,
    call_rounds: usize,
    kv_set_rounds: usize,
    threads: &'static [usize],
    throughput_for: Duration,
    live_instances: usize,
    live_for: Duration,
    cold_samples: usize,
    compile_samples: usize,
    /// Installs of the Python plugin into an empty cache (a compile of ~5 s each in release).
    python_compiles: usize,
    /// Rounds of its fresh-runner, steady-state and python3 scenarios.
    python_rounds: usize,
    runbook_rounds: usize,
    /// Runs per concurrency level of the API benchmark, and the levels.
    api_runs: usize,
    api_levels: &'static [usize],
}

impl Sizes {
    fn new(o: &Options) -> Sizes {
        let n = o.iterations;
        if o.quick {
            return Sizes {
                rounds: n,
                warmup: 3,
                sh_samples: 3,
                python_samples: 2,
                calls: 5,
                kv_set_calls: 2,
                call_rounds: 3,
                kv_set_rounds: 2,
                threads: &[1, 2],
                throughput_for: Duration::from_millis(100),
                live_instances: 2,
                live_for: Duration::from_millis(100),
                cold_samples: 2,
                compile_samples: 1,
                // The one compile the cache needs (tens of seconds in a debug build).
                python_compiles: 1,
                python_rounds: 2,
                runbook_rounds: 2,
                api_runs: 4,
                api_levels: &[1, 8],
            };
        }
        Sizes {
            rounds: n,
            warmup: (n / 10).max(10),
            sh_samples: (n / 4).clamp(3, 500),
            python_samples: (n / 40).clamp(3, 50),
            // Enough calls to stand out of a run's noise (the audit fsync jitters by
            // milliseconds), few enough that each run's uses are all recorded and audited
            // (MAX_RECORDED_CAPABILITY_USES) and the temporary audit log stays ~100 MB.
            calls: 2000,
            // Sets are kept in memory and committed once per run: as many as the other kinds.
            kv_set_calls: 2000,
            call_rounds: (n / 40).clamp(5, 50),
            kv_set_rounds: (n / 40).clamp(5, 50),
            threads: &[1, 2, 8, 64],
            throughput_for: Duration::from_secs(1),
            live_instances: 64,
            live_for: Duration::from_millis(500),
            cold_samples: (n / 100).clamp(3, 20),
            compile_samples: (n / 400).clamp(1, 5),
            python_compiles: (n / 600).clamp(1, 3),
            python_rounds: (n / 100).clamp(3, 20),
            runbook_rounds: (n / 20).clamp(3, 100),
            api_runs: (n / 10).clamp(50, 500),
            api_levels: &[1, 8, 64],
        }
    }
}

fn main() -> ExitCode {
    // A host of simulated fleet agents, started by `--fleet` itself (see fleet.rs).
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--fleet-host") {
        let Some(spec) = args.get(2) else {
            eprintln!("warden-bench: error: --fleet-host needs a spec file");
            return ExitCode::FAILURE;
        };
        return match warden_fleetsim::host_main(Path::new(spec)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("warden-bench --fleet-host: error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match parse_args().and_then(|o| match o {
        Some(o) => run(&o),
        None => {
            println!("{USAGE}");
            Ok(())
        }
    }) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warden-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Fail unless the trivial plugin answered `ok`: a failing run must not pass for a fast one.
fn expect_ok(report: &RunReport) -> anyhow::Result<()> {
    match &report.result {
        Ok(Output::Check(r)) if r.status == CheckStatus::Ok => Ok(()),
        Ok(other) => bail!("unexpected output: {other:?}"),
        Err(e) => bail!("run failed: {e}"),
    }
}

fn run_ok(runner: &PluginManager, req: &RunRequest) -> anyhow::Result<()> {
    expect_ok(&runner.run(req))
}

/// Spawn `argv` with stdout captured, like an agent running a script, and check it printed `ok`.
fn spawn_ok(argv: &[&std::ffi::OsStr]) -> anyhow::Result<()> {
    let (program, args) = argv.split_first().context("empty argv")?;
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .with_context(|| format!("spawning {}", Path::new(program).display()))?;
    if !out.status.success() || out.stdout != b"ok\n" {
        bail!(
            "{} exited with {} and printed {:?}",
            Path::new(program).display(),
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(())
}

/// The Python to spawn: `--python`, else the system one, else whatever `python3` on PATH runs
/// (resolved once, so a version-manager shim script is not timed with it).
fn find_python(given: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = given {
        return Some(p.to_path_buf());
    }
    let system = Path::new("/usr/bin/python3");
    if system.is_file() {
        return Some(system.to_path_buf());
    }
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    let path = String::from_utf8(out.stdout).ok()?;
    let path = PathBuf::from(path.trim());
    path.is_file().then_some(path)
}

/// The title of a single benchmark's run and the machine it runs on.
fn print_header(benchmark: &str) {
    println!("# warden-bench --{benchmark}");
    println!();
    println!("machine:  {}", system::machine());
    println!("build:    {}", system::profile());
    println!(
        "load:     {} (1, 5, 15 min) at the start",
        system::load_average()
    );
}

fn run(o: &Options) -> anyhow::Result<()> {
    if let Some(bench) = &o.report {
        print_header("report");
        return report::run(bench);
    }
    if let Some(bench) = &o.console {
        print_header("console");
        return console::run(bench);
    }
    let plugins = setup::plugins_dir(o.plugins.as_deref())?;
    if let Some(bench) = &o.fleet {
        print_header("fleet");
        fleet::run(bench, &plugins)?;
        println!();
        println!("load at the end: {} (1, 5, 15 min)", system::load_average());
        return Ok(());
    }
    let sandbox = Sandbox::new(plugins.clone(), o.tmp.as_deref())?;
    let runner = sandbox.runner(&sandbox.data_dir(), None)?;
    sandbox.install_guests(&runner)?;
    let trivial = RunRequest::new("trivial", Invocation::Check);
    // Fill the runner's in-memory cache: every later run is a steady-state run.
    run_ok(&runner, &trivial).context("first run of the trivial plugin")?;
    let floor = BareHost::new(FLOOR, &sandbox.component("trivial"))?;

    if let Some((scenario, secs)) = &o.spin {
        return spin(&sandbox, &runner, &trivial, &floor, scenario, *secs);
    }

    let sizes = Sizes::new(o);
    // One fact a line; a Markdown list keeps them on separate lines when rendered.
    let fact = |text: String| {
        if o.markdown {
            println!("- {text}");
        } else {
            println!("{text}");
        }
    };
    println!("# warden-bench");
    println!();
    fact(format!("machine:  {}", system::machine()));
    fact(format!("build:    {}", system::profile()));
    fact(format!(
        "load:     {} (1, 5, 15 min) at the start",
        system::load_average()
    ));
    fact(format!("plugins:  {}", plugins.display()));
    fact(format!(
        "runner:   {} instance allocator",
        if runner.instance_pool() {
            "pooling"
        } else {
            "on-demand (the pool could not be reserved)"
        }
    ));
    fact(format!(
        "data dir: {} ({})",
        sandbox.data_dir().display(),
        system::filesystem_of(sandbox.dir.path())
    ));
    fact(format!(
        "sizes:    {} rounds after {} warm-up{}",
        sizes.rounds,
        sizes.warmup,
        if o.quick {
            " (--quick: not a measurement)"
        } else {
            ""
        }
    ));

    let t1 = section_trivial(o, &sizes, &sandbox, &runner, &trivial)?;
    let py = section_cold(o, &sizes, &sandbox, &runner)?;
    let per_call = section_calls(o, &sizes, &sandbox, &runner)?;
    let best_rate = section_throughput(o, &sizes, &sandbox, &runner, &trivial, &floor)?;
    let daemon_rss = section_memory(o, &sizes, &sandbox, &runner, &trivial)?;

    section_runbook(o, &sizes, &sandbox, &runner, &trivial)?;
    section_api(o, &sizes, &sandbox, &runner)?;
    println!();
    println!("load at the end: {} (1, 5, 15 min)", system::load_average());

    println!();
    println!("## Goals (issue 6)");
    println!();
    if o.quick {
        println!("no verdicts: --quick sizes measure nothing");
        return Ok(());
    }
    let goal = |ok: bool| if ok { "met" } else { "MISSED" };
    let us = |d: Duration| micros(d);
    println!(
        "- trivial p50 ≤ 150 µs: {} ({})",
        goal(us(t1.runner) <= 150.0),
        fmt_duration(t1.runner)
    );
    println!(
        "- trivial p50 ≤ 2× bare wasmtime: {} ({})",
        goal(t1.runner.as_secs_f64() <= 2.0 * t1.floor.as_secs_f64()),
        ratio(t1.runner, t1.floor)
    );
    match t1.sh {
        Some(sh) => println!(
            "- ≥ 5× faster than sh -c: {} ({})",
            goal(sh.as_secs_f64() >= 5.0 * t1.runner.as_secs_f64()),
            ratio(sh, t1.runner)
        ),
        None => println!("- ≥ 5× faster than sh -c: not measured (no /bin/sh)"),
    }
    println!(
        "- ≥ 10,000 runs/s on this machine: {} (best {:.0}/s)",
        goal(best_rate >= 10_000.0),
        best_rate
    );
    for CallCost {
        kind,
        per_call: us,
        native,
    } in per_call
    {
        match native {
            Some(native) => println!(
                "- per-call overhead ≤ 5 µs, `{kind}`: {} ({:.2} µs added to the {native:.2} µs \
                 the same syscalls take natively; {us:.2} µs per call in all)",
                goal(us - native <= 5.0),
                us - native
            ),
            None => println!(
                "- per-call overhead ≤ 5 µs, `{kind}`: {} ({us:.2} µs)",
                goal(us <= 5.0)
            ),
        }
    }
    match &py {
        Some(p) => {
            println!(
                "- Python plugin, first call from the precompiled cache ≤ 5 ms: {} in a new \
                 process ({}; with PluginManager::new {}); {} in the agent, which preloads at start \
                 ({})",
                goal(us(p.first) <= 5000.0),
                fmt_duration(p.first),
                fmt_duration(p.new_and_first),
                goal(us(p.warmed_first) <= 5000.0),
                fmt_duration(p.warmed_first),
            );
            match p.python {
                Some(spawn) => println!(
                    "- Python plugin from the precompiled cache ≥ 30× faster than spawning \
                     python3: {} ({} for a new process's first call; {} with PluginManager::new; {} \
                     preloaded; {} steady state)",
                    goal(spawn.as_secs_f64() >= 30.0 * p.first.as_secs_f64()),
                    ratio(spawn, p.first),
                    ratio(spawn, p.new_and_first),
                    ratio(spawn, p.warmed_first),
                    ratio(spawn, p.steady)
                ),
                None => {
                    println!("- Python plugin ≥ 30× faster than python3: not measured (no python3)")
                }
            }
        }
        None => println!(
            "- Python plugin goals: not measured ({} not built)",
            python::GUEST
        ),
    }
    match daemon_rss {
        Some(rss) => println!(
            "- daemon idle RSS ≤ 40 MB: {} ({:.1} MB)",
            goal(rss as f64 <= 40e6),
            rss as f64 / 1e6
        ),
        None => println!("- daemon idle RSS ≤ 40 MB: not measured (see table 4)"),
    }
    Ok(())
}

/// `--spin`: one scenario in a loop, nothing else, for a profiler.
fn spin(
    sandbox: &Sandbox,
    runner: &PluginManager,
    trivial: &RunRequest,
    floor: &BareHost,
    scenario: &str,
    secs: f64,
) -> anyhow::Result<()> {
    let for_ = Duration::try_from_secs_f64(secs).context("--spin needs a duration")?;
    // `calls:<kind>:<n>`: the `calls` guest making n calls of one kind per run.
    let calls = match scenario.split(':').collect::<Vec<_>>()[..] {
        ["calls", kind, n] => {
            let n: u32 = n
                .parse()
                .context("--spin calls:<kind>:<n> needs a number")?;
            Some(
                RunRequest::new("calls", Invocation::Check).with_config(serde_json::json!({
                    "kind": kind, "calls": n, "path": sandbox.data_file().display().to_string()
                })),
            )
        }
        _ => None,
    };
    // `python` (steady state) and `python-fresh` (a new PluginManager's first call from the cache).
    let py = match scenario {
        "python" | "python-fresh" => {
            let prepared = python::prepare(sandbox)?;
            python::install(runner, &prepared)?;
            Some(prepared)
        }
        _ => None,
    };
    let start = Instant::now();
    let mut runs = 0u64;
    let mut new_time = Duration::ZERO;
    while start.elapsed() < for_ {
        match (scenario, &calls, &py) {
            (_, Some(req), _) => run_ok(runner, req)?,
            ("python", _, Some(p)) => python::run_counted(runner, &p.req, &p.expected).map(drop)?,
            ("python-fresh", _, Some(p)) => {
                let t = Instant::now();
                let fresh = sandbox.runner(&sandbox.data_dir(), None)?;
                new_time += t.elapsed();
                python::run_counted(&fresh, &p.req, &p.expected).map(drop)?
            }
            ("runner", None, _) => run_ok(runner, trivial)?,
            ("floor", None, _) => floor.run_once()?,
            (other, _, _) => bail!(
                "--spin: unknown scenario `{other}` (runner, floor, python, python-fresh or \
                 calls:<kind>:<n>)"
            ),
        }
        runs += 1;
    }
    let elapsed = start.elapsed();
    println!(
        "{scenario}: {runs} runs in {:.2} s, {} per run",
        elapsed.as_secs_f64(),
        fmt_duration(elapsed / runs.max(1) as u32)
    );
    if !new_time.is_zero() {
        println!(
            "of which PluginManager::new: {} per run",
            fmt_duration(new_time / runs.max(1) as u32)
        );
    }
    Ok(())
}

/// Medians of table 1 that the goals refer to.
struct Trivial {
    runner: Duration,
    floor: Duration,
    sh: Option<Duration>,
}

fn stats_row(name: &str, s: &Stats, base: Duration) -> Vec<String> {
    vec![
        name.to_string(),
        s.len().to_string(),
        fmt_duration(s.median()),
        fmt_duration(s.p90()),
        fmt_duration(s.p99()),
        ratio(s.median(), base),
    ]
}

fn section_trivial(
    o: &Options,
    sizes: &Sizes,
    sandbox: &Sandbox,
    runner: &PluginManager,
    trivial: &RunRequest,
) -> anyhow::Result<Trivial> {
    let component = sandbox.component("trivial");
    let hosts: Vec<BareHost> = ABLATION
        .iter()
        .map(|v| BareHost::new(*v, &component))
        .collect::<anyhow::Result<_>>()?;
    let sh = Path::new("/bin/sh");
    let sh = sh.is_file().then_some(sh);
    let python = find_python(o.python.as_deref());

    // The runner's own steps, timed alone with its public API.
    let installed = runner
        .store()
        .get("trivial")
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .context("trivial is not installed")?;
    let config = serde_json::json!({});
    // A real plugin's schema (first-party `clean-temp`), which `validate` compiles on every run;
    // the trivial plugin has none. Skipped when that plugin is not built.
    let schema = warden_core::Manifest::load(&sandbox.manifest("clean-temp"))
        .ok()
        .and_then(|m| m.config_schema);
    let schema_config = serde_json::json!({"dir": "/tmp/x", "older_than_days": 7});
    let records = warden_agent::record_cache::RecordCache::default();
    let probe = serde_json::json!({
        "plugin": {"name": "trivial", "version": "0.1.0", "sha256": installed.sha256},
        "invocation": "check", "context": null, "result": "ok",
        "capability_uses": 0, "capability_uses_dropped": 0,
    });

    let mut scenarios = vec![Scenario::new("warden PluginManager::run", || {
        run_ok(runner, trivial)
    })];
    for host in &hosts {
        scenarios.push(Scenario::new(host.name(), || host.run_once()));
    }
    scenarios.push(Scenario::new(
        "RecordCache::get (statx of plugins/<name>.json, hit)",
        || {
            let p = records
                .get(runner.store(), "trivial")
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            black_box(p);
            Ok(())
        },
    ));
    scenarios.push(Scenario::new("Grant::resolve", || {
        black_box(warden_core::grant::Grant::resolve(
            &installed.manifest,
            &runner.policy(),
        ));
        Ok(())
    }));
    scenarios.push(Scenario::new(
        "AuditLog::append_lazy (1 plugin.run-like record, queued)",
        || {
            let record = warden_audit::Pending::new("bench.audit-probe", &probe)?;
            runner
                .audit()
                .append_lazy(vec![record])
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(())
        },
    ));
    scenarios.push(Scenario::new(
        "config_schema::validate + serde_json::to_string",
        || {
            warden_core::config_schema::validate(
                installed.manifest.config_schema.as_ref(),
                &config,
            )
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            black_box(serde_json::to_string(&config)?);
            Ok(())
        },
    ));
    let pieces_end = scenarios.len();
    scenarios.push(Scenario::new(
        "PluginStore::get (read + parse plugins/<name>.json, uncached)",
        || {
            let p = runner
                .store()
                .get("trivial")
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            black_box(p);
            Ok(())
        },
    ));
    if let Some(schema) = &schema {
        scenarios.push(Scenario::new(
            "config_schema::validate, clean-temp's schema (compiled each run)",
            || {
                warden_core::config_schema::validate(Some(schema), &schema_config)
                    .map_err(|e| anyhow::anyhow!("{e:?}"))
            },
        ));
    }
    let n_fixed = scenarios.len();
    if let Some(sh) = sh {
        scenarios.push(
            Scenario::new("sh -c 'echo ok'", move || {
                spawn_ok(&[sh.as_os_str(), "-c".as_ref(), "echo ok".as_ref()])
            })
            .sampled(sizes.sh_samples, sizes.rounds),
        );
    }
    if let Some(py) = &python {
        scenarios.push(
            Scenario::new("python3 -c 'print(\"ok\")'", move || {
                spawn_ok(&[py.as_os_str(), "-c".as_ref(), "print('ok')".as_ref()])
            })
            .sampled(sizes.python_samples, sizes.rounds),
        );
    }
    let names: Vec<String> = scenarios.iter().map(|s| s.name.clone()).collect();
    let stats = interleaved(&mut scenarios, sizes.warmup, sizes.rounds)?;
    drop(scenarios);

    let runner_s = &stats[0];
    let floor_s = &stats[1];
    let (rm, fm) = (runner_s.median(), floor_s.median());
    let sh_i = sh.map(|_| n_fixed);
    let py_i = python.as_ref().map(|_| n_fixed + usize::from(sh.is_some()));

    println!();
    println!("## 1. Trivial check plugin, end to end");
    println!();
    let mut t = Table::new(&["scenario", "samples", "median", "p90", "p99", "× runner"]);
    t.row(stats_row(&names[0], runner_s, rm));
    t.row(stats_row(&names[1], floor_s, rm));
    for i in sh_i.into_iter().chain(py_i) {
        t.row(stats_row(&names[i], &stats[i], rm));
    }
    t.print(o.markdown);
    if sh.is_none() {
        println!("sh -c: not measured (no /bin/sh)");
    }
    match &python {
        Some(p) => println!("python: {}", p.display()),
        None => println!("python3 -c: not measured (no python3 found; pass --python)"),
    }
    println!();
    println!(
        "runner / floor = {}; sh / runner = {}; python / runner = {}",
        ratio(rm, fm),
        sh_i.map_or("-".into(), |i| ratio(stats[i].median(), rm)),
        py_i.map_or("-".into(), |i| ratio(stats[i].median(), rm)),
    );

    println!();
    println!("### Where a trivial run's time goes (same run, interleaved)");
    println!();
    let mut t = Table::new(&["step", "samples", "median", "p90", "p99", "Δ median"]);
    // Scenario i + 1 is bare host i; each adds one piece to the one before it.
    for (i, host) in hosts.iter().enumerate() {
        let s = &stats[i + 1];
        let mut row = stats_row(host.name(), s, rm);
        row[5] = match i {
            0 => String::new(),
            _ => signed_us(s.median(), stats[i].median()),
        };
        t.row(row);
    }
    let wasm_work = stats[1 + bare::RUNNER_WORK].median();
    let mut own = Duration::ZERO;
    for (i, name) in names
        .iter()
        .enumerate()
        .take(pieces_end)
        .skip(1 + hosts.len())
    {
        own += stats[i].median();
        let mut row = stats_row(name, &stats[i], rm);
        row[5] = String::new();
        t.row(row);
    }
    let mut row = stats_row("warden PluginManager::run", runner_s, rm);
    row[5] = String::new();
    t.row(row);
    for (i, name) in names.iter().enumerate().take(n_fixed).skip(pieces_end) {
        let mut row = stats_row(name, &stats[i], rm);
        row[5] = "not in a trivial run".into();
        t.row(row);
    }
    t.print(o.markdown);
    println!();
    println!(
        "PluginManager::run - (bare with the runner's wasmtime work + the steps above) = {} \
         (the rest of PluginManager::run: RunContext, instance slot, report, drops)",
        signed_us(rm, wasm_work + own)
    );

    // The same, each measured alone and back to back: what it costs without another scenario's
    // aftermath (see `measure::interleaved`), e.g. the floor when no fsync ran just before it.
    let runs = (sizes.rounds / 4).max(3);
    let mut alone = vec![(
        "warden PluginManager::run",
        back_to_back(runs, || run_ok(runner, trivial))?,
    )];
    for host in &hosts {
        alone.push((host.name(), back_to_back(runs, || host.run_once())?));
    }
    // Alone, not interleaved: its flushes would otherwise land on the other scenarios.
    alone.push((
        "AuditLog::append (durable: what an apply waits for)",
        back_to_back(runs, || {
            runner
                .audit()
                .append("bench.audit-probe", probe.clone())
                .map(drop)
                .map_err(|e| anyhow::anyhow!("{e}"))
        })?,
    ));
    let floor_alone = alone[1].1.median();
    println!();
    println!("### Measured alone, back to back (not side by side)");
    println!();
    let mut t = Table::new(&["scenario", "samples", "median", "p90", "p99", "× floor"]);
    for (name, s) in &alone {
        t.row(stats_row(name, s, floor_alone));
    }
    t.print(o.markdown);
    Ok(Trivial {
        runner: rm,
        floor: fm,
        sh: sh_i.map(|i| stats[i].median()),
    })
}

/// `runs` runs of `f` one after the other, after a tenth as many unrecorded.
fn back_to_back(runs: usize, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Stats> {
    for _ in 0..runs / 10 {
        f()?;
    }
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        f()?;
        samples.push(t.elapsed());
    }
    Ok(Stats::new(samples))
}

fn signed_us(a: Duration, b: Duration) -> String {
    let d = micros(a) - micros(b);
    format!("{}{d:.1} µs", if d >= 0.0 { "+" } else { "" })
}

fn section_cold(
    o: &Options,
    sizes: &Sizes,
    sandbox: &Sandbox,
    runner: &PluginManager,
) -> anyhow::Result<Option<python::PythonFigures>> {
    println!();
    println!("## 2. First runs");
    println!();
    // A fresh runner over the data dir whose cache holds the precompiled trivial component: what
    // every `warden run` (one process per run) pays.
    let mut new = Vec::new();
    let mut first = Vec::new();
    let mut second = Vec::new();
    let trivial = RunRequest::new("trivial", Invocation::Check);
    for _ in 0..sizes.cold_samples {
        let t = Instant::now();
        let runner = sandbox.runner(&sandbox.data_dir(), None)?;
        new.push(t.elapsed());
        let t = Instant::now();
        let report = runner.run(&trivial);
        first.push(t.elapsed());
        expect_ok(&report)?;
        if report.cache.is_none() {
            bail!("a fresh runner's first run did not load the component from the cache");
        }
        let t = Instant::now();
        run_ok(&runner, &trivial)?;
        second.push(t.elapsed());
    }
    // Install into an empty data dir and cache: compile, check, store.
    let mut install = Vec::new();
    let mut after_install = Vec::new();
    for i in 0..sizes.compile_samples {
        let dir = sandbox.dir.path().join(format!("cold-{i}"));
        let runner = sandbox.runner(&dir, Some(&dir.join("cache")))?;
        let t = Instant::now();
        sandbox.install(&runner, "trivial", None)?;
        install.push(t.elapsed());
        let t = Instant::now();
        run_ok(&runner, &trivial)?;
        after_install.push(t.elapsed());
    }
    let mut t = Table::new(&["trivial plugin", "samples", "median", "p90", "p99"]);
    for (name, samples) in [
        ("PluginManager::new (engine, linker, store, ticker)", new),
        (
            "first run of a fresh PluginManager (precompiled cache hit)",
            first,
        ),
        ("second run of that PluginManager", second),
        (
            "install into an empty cache (compile + check + store)",
            install,
        ),
        ("first run after that install", after_install),
    ] {
        let s = Stats::new(samples);
        t.row(vec![
            name.into(),
            s.len().to_string(),
            fmt_duration(s.median()),
            fmt_duration(s.p90()),
            fmt_duration(s.p99()),
        ]);
    }
    t.print(o.markdown);
    python::section(
        o,
        sizes,
        sandbox,
        runner,
        find_python(o.python.as_deref()).as_deref(),
    )
}

/// One per-call measurement: the same work with 0 and with `n` units.
struct PerCall<'a> {
    kind: &'static str,
    what: &'static str,
    n: u32,
    zero: Scenario<'a>,
    many: Scenario<'a>,
}

/// What one capability call costs, in µs.
struct CallCost {
    kind: &'static str,
    per_call: f64,
    /// The same syscalls made natively (the `fs` calls).
    native: Option<f64>,
}

/// Per-call cost of each capability kind, with the native floor of the `fs` ones.
fn section_calls(
    o: &Options,
    sizes: &Sizes,
    sandbox: &Sandbox,
    runner: &PluginManager,
) -> anyhow::Result<Vec<CallCost>> {
    let path = sandbox.data_file().display().to_string();
    let request = |kind: &str, calls: u32| {
        RunRequest::new("calls", Invocation::Check)
            .with_config(serde_json::json!({"kind": kind, "calls": calls, "path": path}))
    };
    let plugin = |kind: &'static str, what: &'static str, n: u32| {
        let (zero, many) = (request(kind, 0), request(kind, n));
        PerCall {
            kind,
            what,
            n,
            zero: Scenario::new(format!("{kind} ×0"), move || run_ok(runner, &zero)),
            many: Scenario::new(format!("{kind} ×{n}"), move || run_ok(runner, &many)),
        }
    };
    // What the runner adds per capability use at the end of a run: one `capability.use` audit
    // record serialized and queued for the group commit (the flusher thread hashes and writes
    // it), timed on its own as 1 + N records against 1.
    let audit = |n: u32| {
        move || {
            let record = |i: u32| {
                warden_audit::Pending::new(
                    "bench.audit-probe",
                    &serde_json::json!({"plugin": "calls", "context": null, "use": {
                        "capability": "kv", "function": "get", "target": "bench",
                        "allowed": true, "at_ms": i}}),
                )
            };
            let records = (0..=n).map(record).collect::<Result<Vec<_>, _>>()?;
            runner
                .audit()
                .append_lazy(records)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(())
        }
    };
    // The floor of an `fs` call: the same syscalls made natively, with no sandbox, grant or
    // record (`n` of them against none).
    let data_file = sandbox.data_file();
    let native = |n: u32, read: bool| {
        let file = data_file.clone();
        move || {
            for _ in 0..n {
                if read {
                    std::hint::black_box(std::fs::read(&file)?);
                } else {
                    std::hint::black_box(std::fs::metadata(&file)?);
                }
            }
            Ok(())
        }
    };
    let n = sizes.calls;
    let groups = [
        vec![
            plugin("log", "log::info(\"call\")", n),
            plugin("kv", "kv::get (in memory after the first)", n),
            plugin("fs-stat", "fs::stat of a granted file", n),
            PerCall {
                kind: "native",
                what: "floor: std::fs::metadata of the same file, natively",
                n,
                zero: Scenario::new("native stat ×0", native(0, false)),
                many: Scenario::new(format!("native stat ×{n}"), native(n, false)),
            },
            plugin("fs", "fs::read of a 100-byte granted file", n),
            PerCall {
                kind: "native",
                what: "floor: std::fs::read of the same file, natively",
                n,
                zero: Scenario::new("native read ×0", native(0, true)),
                many: Scenario::new(format!("native read ×{n}"), native(n, true)),
            },
            PerCall {
                kind: "audit",
                what: "of which: 1 capability.use audit record (AuditLog::append_lazy)",
                n,
                zero: Scenario::new("audit ×0", audit(0)),
                many: Scenario::new(format!("audit ×{n}"), audit(n)),
            },
        ],
        // kv-set: each run's sets are committed once when it ends (one replace + fsync).
        vec![plugin(
            "kv-set",
            "kv::set (state file replaced once per run, amortized)",
            sizes.kv_set_calls,
        )],
    ];
    let mut rows = Vec::new();
    for (g, group) in groups.into_iter().enumerate() {
        let rounds = if g == 0 {
            sizes.call_rounds
        } else {
            sizes.kv_set_rounds
        };
        let mut labels = Vec::new();
        let mut scenarios = Vec::new();
        for p in group {
            labels.push((p.kind, p.what, p.n));
            scenarios.push(p.zero);
            scenarios.push(p.many);
        }
        let stats = interleaved(&mut scenarios, 1, rounds)?;
        drop(scenarios);
        for (label, pair) in labels.into_iter().zip(stats.chunks(2)) {
            if let [zero, many] = pair {
                rows.push((label, zero.clone(), many.clone()));
            }
        }
    }

    println!();
    println!("## 3. Capability call overhead");
    println!();
    let mut t = Table::new(&[
        "capability call",
        "N",
        "samples",
        "0 calls",
        "N calls",
        "per call (median of paired differences)",
    ]);
    let mut out: Vec<CallCost> = Vec::new();
    for ((kind, what, n), zero, many) in rows {
        let per_call = per_unit_us(&zero, &many, n);
        match kind {
            "audit" => {}
            // A native floor follows the capability it is the floor of.
            "native" => {
                if let Some(last) = out.last_mut() {
                    last.native = Some(per_call);
                }
            }
            _ => out.push(CallCost {
                kind,
                per_call,
                native: None,
            }),
        }
        t.row(vec![
            what.into(),
            n.to_string(),
            many.len().to_string(),
            fmt_duration(zero.median()),
            fmt_duration(many.median()),
            format!("{per_call:.2} µs"),
        ]);
    }
    t.print(o.markdown);
    Ok(out)
}

/// Runs per second of `f` on `threads` threads for about `for_`; errors stop everything.
fn throughput(
    threads: usize,
    for_: Duration,
    f: &(dyn Fn() -> anyhow::Result<()> + Sync),
) -> anyhow::Result<f64> {
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<u64> {
                    barrier.wait();
                    let mut runs = 0;
                    while !stop.load(Ordering::Relaxed) {
                        if let Err(e) = f() {
                            stop.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                        runs += 1;
                    }
                    Ok(runs)
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        std::thread::sleep(for_);
        stop.store(true, Ordering::Relaxed);
        let mut total = 0;
        for h in handles {
            total += h
                .join()
                .map_err(|_| anyhow::anyhow!("a benchmark thread panicked"))??;
        }
        Ok(total as f64 / start.elapsed().as_secs_f64())
    })
}

fn section_throughput(
    o: &Options,
    sizes: &Sizes,
    sandbox: &Sandbox,
    runner: &PluginManager,
    trivial: &RunRequest,
    floor: &BareHost,
) -> anyhow::Result<f64> {
    let pooled = BareHost::new(ABLATION[4], &sandbox.component("trivial"))?;
    println!();
    println!("## 4. Throughput and memory");
    println!();
    println!(
        "trivial runs per second, N threads sharing one &PluginManager (each point {} ms)",
        sizes.throughput_for.as_millis()
    );
    println!();
    let mut t = Table::new(&[
        "threads",
        "PluginManager::run",
        "bare floor",
        "bare, runner's work, pooling",
    ]);
    let mut best = 0.0f64;
    for &n in sizes.threads {
        let r = throughput(n, sizes.throughput_for, &|| run_ok(runner, trivial))?;
        let f = throughput(n, sizes.throughput_for, &|| floor.run_once())?;
        let p = throughput(n, sizes.throughput_for, &|| pooled.run_once())?;
        best = best.max(r);
        t.row(vec![
            n.to_string(),
            format!("{r:.0}/s"),
            format!("{f:.0}/s"),
            format!("{p:.0}/s"),
        ]);
    }
    t.print(o.markdown);
    Ok(best)
}

/// Memory per run and per live instance, and the daemon's idle RSS (returned, when measured).
fn section_memory(
    o: &Options,
    sizes: &Sizes,
    sandbox: &Sandbox,
    runner: &PluginManager,
    trivial: &RunRequest,
) -> anyhow::Result<Option<u64>> {
    println!();
    let Some(before) = rss_bytes() else {
        println!("memory: not measured (needs Linux /proc/self/status)");
        return Ok(None);
    };
    // Retained per run: RSS before and after a batch of sequential runs (a leak shows here).
    let batch = sizes.rounds;
    for _ in 0..batch {
        run_ok(runner, trivial)?;
    }
    let after = rss_bytes().unwrap_or(before);
    // Live instances: K threads each inside a plugin call that sleeps, against K threads that
    // sleep without a plugin (their stacks cancel out); the peak RSS of each is sampled.
    let k = sizes.live_instances;
    let sleep_ms = sizes.live_for.as_millis() as u64;
    let sleeper = RunRequest::new("calls", Invocation::Check)
        .with_config(serde_json::json!({"kind": "sleep", "sleep_ms": sleep_ms}));
    let baseline = peak_rss_during(k, sizes.live_for, &|| {
        std::thread::sleep(sizes.live_for);
        Ok(())
    })?;
    let live = peak_rss_during(k, sizes.live_for, &|| run_ok(runner, &sleeper))?;
    let mut t = Table::new(&["memory", "value"]);
    t.row(vec![
        "process RSS before the batch".into(),
        fmt_bytes(before as f64),
    ]);
    t.row(vec![
        format!("RSS retained per run over {batch} sequential runs"),
        format!("{:.0} B", (after as f64 - before as f64) / batch as f64),
    ]);
    t.row(vec![
        format!("RSS per live instance ({k} instances of `calls` asleep in a plugin call)"),
        fmt_bytes((live as f64 - baseline as f64) / k as f64),
    ]);
    let daemon = match daemon::warden_binary() {
        Some(warden) => {
            let root = sandbox.dir.path().join("daemon");
            let m = daemon::idle_memory(&warden, &root, &sandbox.policy_text(None))
                .context("measuring the daemon's idle RSS")?;
            t.row(vec![
                format!(
                    "daemon idle RSS (`warden serve`, no plugins, {} ms after its health check \
                     answered)",
                    daemon::IDLE.as_millis()
                ),
                fmt_bytes(m.rss as f64),
            ]);
            t.row(vec![
                "daemon peak RSS until then (VmHWM)".into(),
                fmt_bytes(m.hwm as f64),
            ]);
            // The same with the bench's plugins installed (sharing the bench's compile cache, so
            // nothing is compiled again) and preloaded.
            let root = sandbox.dir.path().join("daemon-loaded");
            let cache = sandbox.data_dir().join("cache");
            let installer = sandbox.runner(&daemon::data_dir(&root), Some(&cache))?;
            sandbox.install_guests(&installer)?;
            let python = std::fs::metadata(sandbox.component(python::GUEST)).is_ok();
            if python {
                python::install(&installer, &python::prepare(sandbox)?)?;
            }
            drop(installer);
            let loaded = daemon::idle_memory(&warden, &root, &sandbox.policy_text(Some(&cache)))
                .context("measuring the idle RSS of a daemon with plugins")?;
            t.row(vec![
                format!(
                    "daemon idle RSS with `trivial`, `calls`{} installed and preloaded",
                    if python {
                        " and `dir-quota` (Python)"
                    } else {
                        ""
                    }
                ),
                fmt_bytes(loaded.rss as f64),
            ]);
            Some((warden, m.rss))
        }
        None => None,
    };
    t.print(o.markdown);
    match &daemon {
        Some((warden, _)) => {
            println!();
            println!("daemon: {}", warden.display());
        }
        None => {
            println!();
            println!(
                "daemon idle RSS: not measured (no `warden` binary next to this one: \
                 `cargo build --release --workspace` builds both)"
            );
        }
    }
    Ok(daemon.map(|(_, rss)| rss))
}

/// Peak RSS while `k` threads run `f` once each, sampled every millisecond.
fn peak_rss_during(
    k: usize,
    expected: Duration,
    f: &(dyn Fn() -> anyhow::Result<()> + Sync),
) -> anyhow::Result<u64> {
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..k).map(|_| scope.spawn(f)).collect();
        let sampler = scope.spawn(|| {
            let mut peak = 0;
            let give_up = Instant::now() + expected * 4;
            while !done.load(Ordering::Relaxed) && Instant::now() < give_up {
                peak = peak.max(rss_bytes().unwrap_or(0));
                std::thread::sleep(Duration::from_millis(1));
            }
            peak
        });
        let mut result = Ok(());
        for h in handles {
            let r = h
                .join()
                .map_err(|_| anyhow::anyhow!("a benchmark thread panicked"))
                .and_then(|r| r);
            if result.is_ok() {
                result = r;
            }
        }
        done.store(true, Ordering::Relaxed);
        let peak = sampler
            .join()
            .map_err(|_| anyhow::anyhow!("the RSS sampler panicked"))?;
        result.map(|()| peak)
    })
}

/// Five trivial checks, each after a CEL condition on the one before, as a scheduler would run
/// them (parsed and validated once).
const RUNBOOK: &str = r#"name = "bench-five"
[params.force]
type = "boolean"
default = false
[[steps]]
id = "s1"
plugin = "trivial"
action = "check"
[[steps]]
id = "s2"
plugin = "trivial"
action = "check"
when = "steps.s1.status == 'ok' || params.force"
[[steps]]
id = "s3"
plugin = "trivial"
action = "check"
when = "steps.s2.status == 'ok' || params.force"
[[steps]]
id = "s4"
plugin = "trivial"
action = "check"
when = "steps.s3.status == 'ok' || params.force"
[[steps]]
id = "s5"
plugin = "trivial"
action = "check"
when = "steps.s4.status == 'ok' || params.force"
"#;

fn section_runbook(
    o: &Options,
    sizes: &Sizes,
    sandbox: &Sandbox,
    runner: &PluginManager,
    trivial: &RunRequest,
) -> anyhow::Result<()> {
    use warden_runbook::Runbook;
    use warden_runbook::engine::{Engine, StepStatus};
    let errors = |e: Vec<warden_runbook::RunbookError>| {
        let text: Vec<String> = e.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("bench runbook: {}", text.join("; "))
    };
    let runbook = Runbook::parse(RUNBOOK, "bench-five.toml").map_err(errors)?;
    let problems = runbook.check_plugins(runner);
    if !problems.is_empty() {
        return Err(errors(problems));
    }
    let params = runbook
        .resolve_params(&[])
        .map_err(|e| anyhow::anyhow!("bench runbook params: {e}"))?;
    let history =
        warden_history::History::open(&sandbox.data_dir()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let engine = Engine {
        runner,
        history: &history,
        audit: runner.audit(),
    };
    let steps = runbook.steps.len();
    let mut scenarios = vec![
        Scenario::new("5-step runbook of trivial checks (Engine::run)", || {
            let summary = engine
                .run(&runbook, &params, false, &mut |_| {})
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let ran = summary
                .steps
                .iter()
                .filter(|s| s.status == StepStatus::Succeeded)
                .count();
            if ran != steps {
                bail!(
                    "runbook {}: {ran} of {steps} steps succeeded",
                    summary.status
                );
            }
            Ok(())
        }),
        Scenario::new(
            "the same 5 plugin runs alone (5 × PluginManager::run)",
            || (0..steps).try_for_each(|_| run_ok(runner, trivial)),
        ),
        Scenario::new(
            "Runbook::parse + check_plugins (once per runbook file)",
            || {
                let parsed = Runbook::parse(RUNBOOK, "bench-five.toml").map_err(errors)?;
                let problems = parsed.check_plugins(runner);
                if !problems.is_empty() {
                    return Err(errors(problems));
                }
                Ok(())
            },
        ),
    ];
    let names: Vec<String> = scenarios.iter().map(|s| s.name.clone()).collect();
    let stats = interleaved(&mut scenarios, 2, sizes.runbook_rounds)?;
    drop(scenarios);
    println!();
    println!("## 5. Runbooks");
    println!();
    let mut t = Table::new(&["scenario", "samples", "median", "p90", "p99", "× 5 runs"]);
    let alone = stats[1].median();
    for (name, s) in names.iter().zip(&stats) {
        t.row(stats_row(name, s, alone));
    }
    t.print(o.markdown);
    println!();
    let overhead = stats[0].median().saturating_sub(alone);
    println!(
        "runbook overhead beyond its plugins' runs: {} per run, {} per step \
         (history rows in SQLite, run.started/run.finished audit records, CEL conditions)",
        fmt_duration(overhead),
        fmt_duration(overhead / steps.max(1) as u32)
    );
    Ok(())
}

fn section_api(
    o: &Options,
    sizes: &Sizes,
    sandbox: &Sandbox,
    runner: &PluginManager,
) -> anyhow::Result<()> {
    use warden_runbook::Runbook;
    use warden_runbook::engine::Engine;
    let runbook = Runbook::parse(api::RUNBOOK, "bench-one.toml").map_err(|e| {
        let text: Vec<String> = e.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("bench runbook: {}", text.join("; "))
    })?;
    let params = runbook
        .resolve_params(&[])
        .map_err(|e| anyhow::anyhow!("bench runbook params: {e}"))?;
    let history =
        warden_history::History::open(&sandbox.data_dir()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let engine = Engine {
        runner,
        history: &history,
        audit: runner.audit(),
    };
    let in_process = back_to_back(sizes.api_runs, || {
        let summary = engine
            .run(&runbook, &params, false, &mut |_| {})
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if !summary.status.succeeded() {
            bail!("the in-process run {}", summary.status);
        }
        Ok(())
    })?;

    let root = sandbox.dir.path().join("api");
    let data = root.join("data");
    let agent_runner = sandbox.runner(&data, None)?;
    sandbox.install(&agent_runner, "trivial", None)?;
    let levels = api::measure(agent_runner, &root, sizes.api_levels, sizes.api_runs)?;
    println!();
    println!("## 6. The agent's API under load");
    println!();
    api::print(&levels, &in_process, o.markdown);
    println!();
    println!(
        "one HTTP/2 connection (a NOC console), `max-concurrent-runs = 8`; a run is a one-step \
         runbook of the trivial check, timed from Trigger to its RUN_FINISHED on Watch"
    );
    Ok(())
}
