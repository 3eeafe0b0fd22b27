//! Table 2b: a Python plugin built with componentize-py (`examples/python-check`, built as
//! `target/plugins/dir-quota`, ~18 MB with its interpreter) against spawning `python3` with the
//! same script: list a directory, count its files and bytes, print a verdict.

use crate::measure::{Scenario, Stats, Table, interleaved, ratio};
use crate::setup::Sandbox;
use crate::{Options, Sizes};
use anyhow::{Context, bail};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use warden_agent::PluginManager;
use warden_core::report::CheckStatus;
use warden_core::{Invocation, Output, RunReport, RunRequest};
use warden_host::engine::CacheOutcome;

/// The built example, in `target/plugins`.
pub const GUEST: &str = "dir-quota";

/// Files in the listed directory, and the size of each.
const FILES: usize = 32;
const FILE_BYTES: usize = 512;

/// What the plugin does, in Python: the same config (JSON), the same listing (regular files
/// only, not following symlinks, not recursive), the same verdict and summary line.
const SCRIPT: &str = r#"import json, os, sys
cfg = json.loads(sys.argv[1])
files = total = 0
with os.scandir(cfg["dir"]) as entries:
    for e in entries:
        if e.is_file(follow_symlinks=False):
            files += 1
            total += e.stat(follow_symlinks=False).st_size
def judge(value, maximum, pct):
    if maximum is None: return 0
    if value >= maximum: return 2
    return 1 if value >= maximum * pct / 100 else 0
pct = cfg.get("warning_percent", 80)
worst = max(judge(files, cfg.get("max_files"), pct), judge(total, cfg.get("max_bytes"), pct))
print("ok warning critical".split()[worst] + f": {cfg['dir']}: {files} files, {total} bytes")
"#;

/// Medians the goals refer to.
pub struct PythonFigures {
    /// First run of a fresh runner, from the precompiled cache.
    pub first: Duration,
    /// The same plus `PluginManager::new`: what a new process pays before its first call.
    pub new_and_first: Duration,
    /// First run of a fresh runner after `PluginManager::warm_up`: the agent's first trigger.
    pub warmed_first: Duration,
    pub steady: Duration,
    pub python: Option<Duration>,
}

/// The plugin's manifest with its requested paths narrowed to the bench's granted directory,
/// so that the grant does not depend on where the temporary directory is.
fn manifest(sandbox: &Sandbox) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(sandbox.manifest(GUEST))
        .with_context(|| format!("reading the {GUEST} manifest"))?;
    let granted = format!("[{:?}]", sandbox.files().display().to_string());
    let mut out = String::new();
    for line in text.lines() {
        match line.split_once(" = [") {
            Some(("read", _)) => out.push_str(&format!("read = {granted}")),
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    Ok(out)
}

/// Check that a run judged the directory `ok` and counted every file.
fn expect_counted(report: &RunReport, expected: &str) -> anyhow::Result<()> {
    match &report.result {
        Ok(Output::Check(r)) if r.status == CheckStatus::Ok && r.summary == expected => Ok(()),
        Ok(other) => bail!("{GUEST}: unexpected output {other:?}, wanted `{expected}`"),
        Err(e) => bail!("{GUEST}: run failed: {e}"),
    }
}

fn spawn_script(python: &Path, config: &str, expected: &str) -> anyhow::Result<()> {
    let out = Command::new(python)
        .args(["-c", SCRIPT, config])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("spawning {}", python.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || stdout.trim_end() != format!("ok: {expected}") {
        bail!(
            "{} exited with {} and printed {stdout:?} {:?}",
            python.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The plugin's run request, its expected summary, and its package, over a directory of
/// [`FILES`] files written for it.
pub struct Prepared {
    pub req: RunRequest,
    pub expected: String,
    pub pkg: std::path::PathBuf,
    config: serde_json::Value,
}

/// Write the listed directory and the plugin's package (narrowed manifest) into the sandbox.
pub fn prepare(sandbox: &Sandbox) -> anyhow::Result<Prepared> {
    let dir = sandbox.files().join("quota");
    std::fs::create_dir_all(&dir).context("creating the listed directory")?;
    for i in 0..FILES {
        std::fs::write(dir.join(format!("f{i:02}.log")), [b'x'; FILE_BYTES])
            .context("writing a listed file")?;
    }
    let config = serde_json::json!({"dir": dir.display().to_string(), "max_files": 1000});
    let expected = format!(
        "{}: {FILES} files, {} bytes",
        dir.display(),
        FILES * FILE_BYTES
    );
    let req = RunRequest::new(GUEST, Invocation::Check).with_config(config.clone());
    let pkg = sandbox.package(GUEST, Some(&manifest(sandbox)?))?;
    Ok(Prepared {
        req,
        expected,
        pkg,
        config,
    })
}

/// Install the plugin into `runner` (a compile unless its cache holds it), and run it once.
pub fn install(runner: &PluginManager, prepared: &Prepared) -> anyhow::Result<()> {
    let report = runner
        .install_dir(&prepared.pkg)
        .map_err(|e| anyhow::anyhow!("installing {GUEST}: {e}"))?;
    if !report.refusals.is_empty() {
        bail!("{GUEST}: the bench policy refuses {:?}", report.refusals);
    }
    run_counted(runner, &prepared.req, &prepared.expected).map(drop)
}

/// One run, checked.
pub fn run_counted(
    runner: &PluginManager,
    req: &RunRequest,
    expected: &str,
) -> anyhow::Result<RunReport> {
    let report = runner.run(req);
    expect_counted(&report, expected)?;
    Ok(report)
}

/// Table 2b, or a note saying why it was skipped; `None` when skipped.
pub fn section(
    o: &Options,
    sizes: &Sizes,
    sandbox: &Sandbox,
    runner: &PluginManager,
    python: Option<&Path>,
) -> anyhow::Result<Option<PythonFigures>> {
    println!();
    println!("### Python plugin (componentize-py `{GUEST}`)");
    println!();
    let component = sandbox.component(GUEST);
    let Ok(meta) = std::fs::metadata(&component) else {
        println!(
            "not measured: {} is not built (`cargo xtask build-plugins` builds it from \
             examples/python-check)",
            component.display()
        );
        return Ok(None);
    };
    let Prepared {
        req,
        expected,
        pkg,
        config,
    } = prepare(sandbox)?;

    // Install into an empty cache: the compile of the whole interpreter. The first one goes into
    // the bench's data dir (its cache is what the fresh runners below load); the others into
    // empty data dirs of their own. --quick does only the one it needs.
    let mut install = Vec::new();
    let mut after_install = Vec::new();
    for i in 0..sizes.python_compiles {
        let (data, own_runner);
        let r = if i == 0 {
            runner
        } else {
            data = sandbox.dir.path().join(format!("cold-python-{i}"));
            own_runner = sandbox.runner(&data, Some(&data.join("cache")))?;
            &own_runner
        };
        let t = Instant::now();
        let report = r
            .install_dir(&pkg)
            .map_err(|e| anyhow::anyhow!("installing {GUEST}: {e}"))?;
        install.push(t.elapsed());
        if !report.refusals.is_empty() {
            bail!("{GUEST}: the bench policy refuses {:?}", report.refusals);
        }
        let t = Instant::now();
        run_counted(r, &req, &expected)?;
        after_install.push(t.elapsed());
    }

    // Side by side: a fresh runner's first call (as in a new `warden run` process), the
    // steady-state call of a runner that has run it before, and spawning python3.
    let mut new = Vec::new();
    let mut first = Vec::new();
    let config_arg = config.to_string();
    let fresh = Scenario::new("fresh PluginManager", || {
        let t = Instant::now();
        let fresh = sandbox.runner(&sandbox.data_dir(), None)?;
        new.push(t.elapsed());
        let t = Instant::now();
        let report = run_counted(&fresh, &req, &expected)?;
        first.push(t.elapsed());
        if report.cache != Some(CacheOutcome::Hit) {
            bail!("a fresh runner's first run did not load {GUEST} from the cache");
        }
        Ok(())
    });
    // The agent's path: a fresh runner that preloads what is installed when it starts, then runs.
    let mut warm_up = Vec::new();
    let mut warmed_first = Vec::new();
    let warmed = Scenario::new("warmed PluginManager", || {
        let fresh = sandbox.runner(&sandbox.data_dir(), None)?;
        let t = Instant::now();
        let warm = fresh
            .warm_up()
            .map_err(|e| anyhow::anyhow!("warm-up: {e}"))?;
        warm_up.push(t.elapsed());
        if let Some((plugin, e)) = warm.failed.first() {
            bail!("warm-up could not load {plugin}: {e}");
        }
        let t = Instant::now();
        let report = run_counted(&fresh, &req, &expected)?;
        warmed_first.push(t.elapsed());
        if report.cache.is_some() {
            bail!("the first run after warm_up loaded {GUEST} again");
        }
        Ok(())
    });
    let mut scenarios = vec![
        fresh,
        warmed,
        Scenario::new("steady", || run_counted(runner, &req, &expected).map(drop)),
    ];
    if let Some(py) = python {
        scenarios.push(Scenario::new("python3", || {
            spawn_script(py, &config_arg, &expected)
        }));
    }
    let stats = interleaved(&mut scenarios, 1, sizes.python_rounds)?;
    drop(scenarios);
    // The warm-up round's samples are dropped, as `interleaved` drops the others'.
    let measured = |samples: Vec<Duration>| Stats::new(samples.into_iter().skip(1).collect());
    let new_and_first = Stats::new(
        new.iter()
            .zip(&first)
            .skip(1)
            .map(|(a, b)| *a + *b)
            .collect(),
    );
    let first = measured(first);
    let steady = &stats[2];
    let py = stats.get(3);
    let warm_up = measured(warm_up);
    let warmed_first = measured(warmed_first);

    let base = first.median();
    let mut t = Table::new(&["dir-quota", "samples", "median", "p90", "p99", "× first"]);
    let mut row = |name: &str, s: &Stats| t.row(crate::stats_row(name, s, base));
    row(
        "install into an empty cache (compile + check + store)",
        &Stats::new(install),
    );
    row("first run after that install", &Stats::new(after_install));
    row(
        "first run of a fresh PluginManager (precompiled cache hit)",
        &first,
    );
    row("PluginManager::new + that first run", &new_and_first);
    row(
        "PluginManager::warm_up of a fresh PluginManager (the agent's start; this plugin and 2 others)",
        &warm_up,
    );
    row("first run after that warm-up", &warmed_first);
    row("steady-state run (same PluginManager, again)", steady);
    if let Some(py) = py {
        row("python3 -c <the same listing and verdict> (spawn)", py);
    }
    t.print(o.markdown);
    println!();
    println!(
        "component: {:.1} MB; listing {FILES} files of {FILE_BYTES} B; the rows from the fresh \
         PluginManager's first run on are measured side by side",
        meta.len() as f64 / 1e6
    );
    match (py, python) {
        (Some(py), Some(path)) => println!(
            "python: {}; python3 / first run = {}; python3 / (PluginManager::new + first run) = {}; \
             python3 / steady state = {}",
            path.display(),
            ratio(py.median(), first.median()),
            ratio(py.median(), new_and_first.median()),
            ratio(py.median(), steady.median()),
        ),
        _ => println!("python3: not measured (no python3 found; pass --python)"),
    }
    Ok(Some(PythonFigures {
        first: first.median(),
        new_and_first: new_and_first.median(),
        warmed_first: warmed_first.median(),
        steady: steady.median(),
        python: py.map(Stats::median),
    }))
}
