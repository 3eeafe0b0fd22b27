//! The fleet demo's staged rollouts (issue 16), run once its agents are online: a new version of
//! the first-party `disk-usage` plugin, signed by the demo's publisher (whom the agents trust),
//! goes out with a canary wave and then to every agent; then a version signed by a key the
//! agents do not trust halts at the canary by itself, and is rolled back.
//!
//! Every wait polls `warden fleet ... --json` with a deadline ([`DEADLINE`]) and prints progress
//! when something changes; nothing sleeps to synchronise.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::demo_fleet::Warden;
use crate::util;

/// The plugin rolled out: not installed on the demo's agents before, and its one capability
/// (`sysinfo` disks) is granted by their policy.
const PLUGIN: &str = "disk-usage";
/// The version `target/plugins` holds; the demo signs copies with bumped versions.
const BUILT_VERSION: &str = "version = \"0.1.0\"";
/// Bound on each wait: a rollout completing, halting, the agents reporting after a rollback.
/// The agents fetch, verify and install in about a second; a loaded machine takes longer.
const DEADLINE: Duration = Duration::from_secs(120);
/// Between two looks.
const POLL: Duration = Duration::from_millis(500);

pub(crate) fn show(root: &Path, w: &Warden) -> anyhow::Result<()> {
    println!("\n--- staged rollout: {PLUGIN} 0.2.0, one canary agent first, then all ---");
    let good = pack(root, w, "0.2.0", "publisher")?;
    let plan = ["--target", "*", "--canary", "1", "--waves", "100%"];
    let id = start(w, &good, &plan)?;
    wait(w, &id, "completed")?;
    w.fleet(&["rollout", "status", &id])?;
    w.fleet(&["status", PLUGIN])?;

    println!(
        "\n--- a rollout that halts itself: {PLUGIN} 0.3.0 signed by a key the agents do not trust ---"
    );
    let rogue = w.demo.join("rogue");
    w.show(&["key", "generate", "--out", &rogue.display().to_string()])?;
    let bad = pack(root, w, "0.3.0", "rogue")?;
    let id = start(w, &bad, &plan)?;
    wait(w, &id, "halted")?;
    show_exit(w, &["rollout", "status", &id], 1, "halted")?;
    w.fleet(&["rollout", "rollback", &id])?;
    wait_settled(w)?;
    w.fleet(&["status", PLUGIN])
}

/// `disk-usage` at `version`, signed with `<demo>/<key>.key`; the bundle's path.
fn pack(root: &Path, w: &Warden, version: &str, key: &str) -> anyhow::Result<String> {
    let built = root.join("target/plugins").join(PLUGIN);
    let dir = w.demo.join(format!("{PLUGIN}-{version}"));
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(built.join("plugin.wasm"), dir.join("plugin.wasm"))
        .with_context(|| format!("copying {}/plugin.wasm", built.display()))?;
    let manifest = std::fs::read_to_string(built.join("plugin.toml"))
        .with_context(|| format!("reading {}/plugin.toml", built.display()))?;
    if !manifest.contains(BUILT_VERSION) {
        bail!(
            "{}/plugin.toml has no `{BUILT_VERSION}` to bump",
            built.display()
        );
    }
    let bumped = manifest.replacen(BUILT_VERSION, &format!("version = \"{version}\""), 1);
    std::fs::write(dir.join("plugin.toml"), bumped)?;
    let bundle = w.demo.join(format!("{PLUGIN}-{version}.wbundle"));
    let key = w.demo.join(format!("{key}.key"));
    w.show(&[
        "plugin",
        "pack",
        &dir.display().to_string(),
        "--key",
        &key.display().to_string(),
        "--out",
        &bundle.display().to_string(),
    ])?;
    Ok(bundle.display().to_string())
}

/// `warden --json fleet rollout start <bundle> <plan>`, shown; the rollout's id.
fn start(w: &Warden, bundle: &str, plan: &[&str]) -> anyhow::Result<String> {
    let mut args = vec!["rollout", "start", bundle];
    args.extend_from_slice(plan);
    println!("\n$ warden --json fleet {}", util::shell_line(&args));
    let (code, v) = fleet_json(w, &args)?;
    let rollout = &v["rollout"];
    let Some(id) = rollout["id"].as_str() else {
        bail!("`warden fleet rollout start` exited {code} without a rollout: {v}");
    };
    println!(
        "rollout {id}: {} {} on {}, {}",
        rollout["plugin"].as_str().unwrap_or("?"),
        rollout["version"].as_str().unwrap_or("?"),
        rollout["target"].as_str().unwrap_or("?"),
        rollout["state"].as_str().unwrap_or("?"),
    );
    Ok(id.to_string())
}

/// Poll `rollout status <id> --json` until its state is `want`, printing each change of the
/// waves' counts; any other final state is an error.
fn wait(w: &Warden, id: &str, want: &str) -> anyhow::Result<()> {
    println!("waiting until rollout {id} is {want} (at most {DEADLINE:?}) ...");
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let (_, v) = fleet_json(w, &["rollout", "status", id])?;
        let state = v["rollout"]["state"].as_str().unwrap_or("?").to_string();
        let line = progress(&v["rollout"]);
        if line != last {
            println!("  {:>5.1}s  {line}", started.elapsed().as_secs_f64());
            last = line;
        }
        if state == want {
            return Ok(());
        }
        if ["completed", "halted", "rolled-back"].contains(&state.as_str()) {
            bail!(
                "rollout {id} is {state}, not {want}: {}",
                v["rollout"]["reason"]
            );
        }
        if started.elapsed() >= DEADLINE {
            bail!("rollout {id} still {state} after {DEADLINE:?}: {last}");
        }
        std::thread::sleep(POLL);
    }
}

/// One line: the rollout's state and, per wave, healthy and failed of its agents.
fn progress(rollout: &Value) -> String {
    let waves: Vec<String> = rollout["waves"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|wave| {
            format!(
                "{} {}/{} healthy, {} failed ({})",
                wave["name"].as_str().unwrap_or("?"),
                wave["healthy"].as_u64().unwrap_or(0),
                wave["size"].as_u64().unwrap_or(0),
                wave["failed"].as_u64().unwrap_or(0),
                wave["state"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    format!(
        "{}: {}",
        rollout["state"].as_str().unwrap_or("?"),
        waves.join("; ")
    )
}

/// Until `warden fleet status <plugin>` exits 0: every targeted agent reports the desired
/// version installed.
fn wait_settled(w: &Warden) -> anyhow::Result<()> {
    println!("waiting until every agent reports its desired {PLUGIN} installed ...");
    let started = Instant::now();
    loop {
        let (code, v) = fleet_json(w, &["status", PLUGIN])?;
        if code == 0 {
            return Ok(());
        }
        if started.elapsed() >= DEADLINE {
            bail!("{PLUGIN} not settled after {DEADLINE:?}: {}", v["status"]);
        }
        std::thread::sleep(POLL);
    }
}

/// Show `warden fleet <args>` and its output, which must exit `code` (`meaning` says why).
fn show_exit(w: &Warden, args: &[&str], code: i32, meaning: &str) -> anyhow::Result<()> {
    println!("\n$ warden fleet {}", util::shell_line(args));
    let status = w
        .fleet_command(false, args)
        .status()
        .context("starting warden")?;
    match status.code() {
        Some(c) if c == code => {
            println!("(exit {code}: {meaning})");
            Ok(())
        }
        other => bail!(
            "`warden fleet {}` exited {other:?}, not {code}",
            util::shell_line(args)
        ),
    }
}

/// `warden --json fleet <args>`: its exit code and the JSON it printed (commands about a
/// halted rollout, or a plugin not yet everywhere, exit 1 and still print it).
fn fleet_json(w: &Warden, args: &[&str]) -> anyhow::Result<(i32, Value)> {
    let out = w
        .fleet_command(true, args)
        .output()
        .context("starting warden")?;
    let code = out.status.code().unwrap_or(-1);
    let v = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "`warden --json fleet {}` exited {code} without JSON: {}",
            util::shell_line(args),
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    Ok((code, v))
}
