//! `cargo xtask demo`: the quick start's main job. Builds the plugins and `warden`, generates a
//! publisher key, packs and signs each first-party plugin into a bundle, installs the bundles into
//! a fresh data dir whose site policy trusts only that key, and runs inventory, a disk check, a
//! service check, and a clean-temp plan then apply on a scratch directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};

use crate::{build_plugins, util};

/// Lives under /tmp because the clean-temp manifest requests /tmp, which the policy narrows.
const SCRATCH: &str = "/tmp/warden-demo-scratch";

pub fn run(root: &Path) -> anyhow::Result<()> {
    build_plugins::run(root, &[])?;
    println!("building warden ...");
    util::run(util::cargo(root).args(["build", "--workspace", "--quiet"]))?;
    let warden = root.join("target").join("debug").join("warden");

    let demo = root.join("target").join("demo");
    let scratch = PathBuf::from(SCRATCH);
    for dir in [&demo, &scratch] {
        if dir.exists() {
            std::fs::remove_dir_all(dir).with_context(|| format!("cleaning {}", dir.display()))?;
        }
        std::fs::create_dir_all(dir)?;
    }
    let data = demo.join("data");
    let policy = demo.join("warden.toml");
    std::fs::write(&policy, demo_policy(&scratch, None))?;
    println!(
        "\ndemo data dir: {}\ndemo site policy: {}",
        data.display(),
        policy.display()
    );

    let w = Warden {
        bin: warden,
        data,
        policy,
    };
    let key = demo.join("publisher");
    w.run(&["key", "generate", "--out", &key.display().to_string()])?;
    let public = std::fs::read_to_string(key.with_extension("pub"))?;
    std::fs::write(&w.policy, demo_policy(&scratch, Some(public.trim())))?;
    println!("\nthe demo site policy now trusts this publisher key, and nothing else");
    let secret = key.with_extension("key").display().to_string();
    let plugins = ["inventory", "disk-usage", "service-health", "clean-temp"];
    let bundle = |plugin: &str| demo.join(format!("{plugin}.wbundle")).display().to_string();
    for plugin in plugins {
        let dir = root
            .join("target/plugins")
            .join(plugin)
            .display()
            .to_string();
        w.run(&[
            "plugin",
            "pack",
            &dir,
            "--key",
            &secret,
            "--out",
            &bundle(plugin),
        ])?;
    }
    w.run(&["plugin", "verify", &bundle("clean-temp")])?;
    for plugin in plugins {
        w.run(&["plugin", "install", &bundle(plugin)])?;
    }
    w.run(&["plugin", "list"])?;
    w.run(&["plugin", "inspect", "clean-temp"])?;
    w.run(&["run", "inventory"])?;
    w.run_check(&[
        "run",
        "disk-usage",
        "--config",
        r#"{"warning_percent": 80, "critical_percent": 90}"#,
    ])?;
    // dbus may well be stopped on this machine: the check says so and the plan proposes a
    // restart; the demo does not apply it, so nothing outside the scratch dir changes.
    w.run_informational(&[
        "run",
        "service-health",
        "--config",
        r#"{"service": "dbus"}"#,
    ])?;
    w.run_informational(&[
        "run",
        "service-health",
        "--plan",
        "--config",
        r#"{"service": "dbus"}"#,
    ])?;

    make_scratch_files(&scratch)?;
    let config = format!(r#"{{"dir": "{SCRATCH}", "older_than_days": 7}}"#);
    w.run(&["run", "clean-temp", "--plan", "--config", &config])?;
    w.run(&["run", "clean-temp", "--apply", "--config", &config])?;
    w.run(&["run", "clean-temp", "--plan", "--config", &config])?;
    let left: Vec<String> = std::fs::read_dir(&scratch)?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    println!("\nscratch dir now holds: {}", left.join(", "));

    // The same remediation as a runbook: check, clean when needed (forced here), verify.
    make_scratch_files(&scratch)?;
    let runbook = root
        .join("examples/disk-pressure.toml")
        .display()
        .to_string();
    w.run(&["runbook", "validate", &runbook])?;
    w.run(&[
        "runbook",
        "run",
        &runbook,
        "--dry-run",
        "--param",
        "force=true",
    ])?;
    w.run(&["runbook", "run", &runbook, "--param", "force=true"])?;
    w.run(&["runs", "list"])?;
    w.run(&["audit", "verify"])?;
    println!(
        "\ndemo finished: plugins ran sandboxed under {}",
        w.policy.display()
    );
    Ok(())
}

fn demo_policy(scratch: &Path, publisher: Option<&str>) -> String {
    let trust = match publisher {
        Some(key) => {
            format!("\n[[trust.keys]]\nname = \"demo-publisher\"\npublic-key = \"{key}\"\n")
        }
        None => String::new(),
    };
    let allow = format!(
        "# Demo site policy written by `cargo xtask demo`.\n\
         [allow]\n\
         sysinfo = [\"hostname\", \"os\", \"cpu\", \"memory\", \"disks\", \"network\", \"uptime\"]\n\
         fs-read = [\"/var/lib/dpkg/status\", \"/etc/passwd\", \"/proc/net/tcp\", \"/proc/net/tcp6\", \"/proc/net/udp\", \"/proc/net/udp6\", \"/etc/systemd/system/multi-user.target.wants\", {s:?}]\n\
         fs-write = [{s:?}]\n\
         services = [\"dbus\"]\n\
         service-control = true\n\
         kv = true\n\
         # The inventory's owner of each listening port (optional: without it, no owners).\n\
         exec = [{{ program = \"/usr/bin/ss\", args = [\"-Hltunpe\"] }}]\n",
        s = scratch.display().to_string()
    );
    format!("{allow}\n[trust]\nallow-unsigned = false\n{trust}")
}

/// Two stale files, one fresh file and a stale directory; only the stale files should go.
fn make_scratch_files(scratch: &Path) -> anyhow::Result<()> {
    let stale = SystemTime::now() - Duration::from_secs(30 * 86_400);
    for (name, old) in [
        ("old-report.log", true),
        ("old-cache.tmp", true),
        ("fresh.tmp", false),
    ] {
        let path = scratch.join(name);
        std::fs::write(&path, format!("{name}\n"))?;
        if old {
            std::fs::File::options()
                .write(true)
                .open(&path)?
                .set_modified(stale)?;
        }
    }
    std::fs::create_dir_all(scratch.join("old-dir"))?;
    println!(
        "\ncreated in {}: old-report.log, old-cache.tmp (30 days old), fresh.tmp, old-dir/",
        scratch.display()
    );
    Ok(())
}

struct Warden {
    bin: PathBuf,
    data: PathBuf,
    policy: PathBuf,
}

impl Warden {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--data-dir")
            .arg(&self.data)
            .arg("--config")
            .arg(&self.policy)
            .args(args);
        println!("\n$ warden {}", util::shell_line(args));
        cmd
    }

    fn run(&self, args: &[&str]) -> anyhow::Result<()> {
        let status = self.command(args).status().context("starting warden")?;
        if !status.success() {
            bail!("`warden {}` failed ({status})", util::shell_line(args));
        }
        Ok(())
    }

    /// A check: its exit code is its status (the Nagios convention, 0 ok, 1 warning, 2 critical),
    /// which is the machine's business; only 3 (could not run or report) stops the demo.
    fn run_check(&self, args: &[&str]) -> anyhow::Result<()> {
        let status = self.command(args).status().context("starting warden")?;
        match status.code() {
            Some(0) => Ok(()),
            Some(1 | 2) => {
                println!("(the check's status is its exit code, as Nagios expects; continuing)");
                Ok(())
            }
            _ => bail!("`warden {}` failed ({status})", util::shell_line(args)),
        }
    }

    /// A step whose failure depends on the machine (e.g. no service manager) and is shown, not fatal.
    fn run_informational(&self, args: &[&str]) -> anyhow::Result<()> {
        let status = self.command(args).status().context("starting warden")?;
        if !status.success() {
            println!("(this step depends on the machine's service manager; continuing)");
        }
        Ok(())
    }
}
