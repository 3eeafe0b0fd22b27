//! `cargo xtask demo fleet`: the fleet on this machine, nothing installed by hand. Installs the
//! pinned nats-server (`cargo xtask nats`), writes a controller config and the server's
//! operator-mode config from it, starts nats-server, `warden controller serve` and two agents
//! (`warden serve`) in two tenants, enrolls them with single-use tokens, runs a signed runbook
//! on a target and on every agent, prints what the NOC sees, rolls a new version of a plugin out
//! with a canary wave and shows a bad one halt itself ([`crate::demo_rollout`]), and stops
//! everything.
//!
//! Every process it starts is stopped before it returns, on success or error (SIGTERM, then
//! SIGKILL after [`STOP_GRACE`]); every wait is bounded.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::{build_plugins, demo_rollout, nats, util};

/// Bound on each start (a server ready, an API listening, agents seen online). Generous: on a
/// loaded 2-core machine the agents' first run compiles a plugin.
const READY: Duration = Duration::from_secs(60);
/// How long a process may take to stop after SIGTERM before it is killed: an agent finishes
/// its runs and flushes its outbox (3 s at most) first.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Between two looks while waiting for the agents.
const POLL: Duration = Duration::from_millis(200);
/// What `warden controller serve` prints once its API listens.
const CONTROLLER_READY: &str = "warden controller: API on ";
/// What nats-server logs once it takes clients.
const NATS_READY: &str = "Server is ready";
/// What `warden serve` prints first once it listens.
const AGENT_READY: &str = "warden agent listening on ";

/// The two agents: tenant, name, tags.
const AGENTS: [(&str, &str, &str); 2] = [
    ("acme", "acme-db-1", "role = \"db\"\nsite = \"paris\""),
    ("globex", "globex-web-1", "role = \"web\"\nsite = \"lyon\""),
];

/// The runbook the fleet runs, signed by the demo's publisher key.
const RUNBOOK: &str = "\
name = \"health-check\"
description = \"Inventory of the machine (the fleet demo)\"

[[steps]]
id = \"inventory\"
plugin = \"inventory\"
action = \"discover\"
config = { packages = false }
";

pub fn run(root: &Path) -> anyhow::Result<()> {
    build_plugins::run(root, &[])?;
    println!("building warden ...");
    util::run(util::cargo(root).args(["build", "--workspace", "--quiet"]))?;
    let nats_server = nats::ensure(root)?;
    let demo = root.join("target").join("demo-fleet");
    if demo.exists() {
        std::fs::remove_dir_all(&demo).with_context(|| format!("cleaning {}", demo.display()))?;
    }
    std::fs::create_dir_all(&demo)?;
    let w = Warden {
        bin: root.join("target").join("debug").join("warden"),
        demo: demo.clone(),
        controller: String::new(),
        token: String::new(),
    };
    println!(
        "starting the fleet: nats-server, a controller, two agents; runs, then two rollouts \
         (about 10 s once built)"
    );
    let mut procs = Processes::default();
    let started = Instant::now();
    let result = drive(root, &nats_server, w, &mut procs);
    // Whatever happened: stop what runs, agents first, NATS last.
    let stopped = procs.stop_all();
    result?;
    stopped?;
    println!(
        "\nfleet demo finished in {} s (after the build); everything it started is stopped. \
         Files and logs: {}",
        started.elapsed().as_secs(),
        demo.display()
    );
    Ok(())
}

fn drive(
    root: &Path,
    nats_server: &Path,
    mut w: Warden,
    procs: &mut Processes,
) -> anyhow::Result<()> {
    let demo = w.demo.clone();
    // A NOC token (admin) for the controller and, for the demo, the agents' own APIs.
    let token: serde_json::Value = serde_json::from_str(
        &w.output(&["--json", "token", "new", "--name", "noc", "--role", "admin"])?,
    )
    .context("`warden token new` printed no JSON")?;
    let (Some(secret), Some(sha256)) = (token["token"].as_str(), token["sha256"].as_str()) else {
        bail!("`warden token new` printed no token");
    };
    w.token = secret.to_string();
    let key = demo.join("publisher");
    w.show(&["key", "generate", "--out", &key.display().to_string()])?;
    let public = std::fs::read_to_string(key.with_extension("pub"))?;

    let nats_port = free_port()?;
    let config = demo.join("controller.toml");
    std::fs::write(
        &config,
        format!(
            "# Written by `cargo xtask demo fleet`.\ndata-dir = \"controller-data\"\n\
             listen = \"127.0.0.1:0\"\nnats-url = \"nats://127.0.0.1:{nats_port}\"\n\
             tenants = [\"acme\", \"globex\"]\n\n\
             [[tokens]]\nname = \"noc\"\nrole = \"admin\"\nsha256 = {sha256:?}\n\n\
             [console]\nlisten = \"127.0.0.1:0\"\n"
        ),
    )?;
    println!("\ncontroller config: {}", config.display());
    let nats_conf = w.output(&[
        "controller",
        "nats-config",
        "--config",
        &config.display().to_string(),
    ])?;
    let nats_conf = PathBuf::from(nats_conf.trim());
    println!(
        "nats-server config (operator mode, the controller's keys): {}",
        nats_conf.display()
    );

    println!("\n$ nats-server -c {}", nats_conf.display());
    let mut nats = Command::new(nats_server);
    nats.arg("-c")
        .arg(&nats_conf)
        // The resolver's directory in the config is relative: the controller's data dir.
        .current_dir(demo.join("controller-data"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    procs.start_waiting(
        "nats-server",
        nats,
        Output::Stderr,
        Stop::Term,
        NATS_READY,
        &demo.join("nats.log"),
    )?;

    println!("\n$ warden controller serve --config {}", config.display());
    let mut controller = w.command(&[
        "controller",
        "serve",
        "--config",
        &config.display().to_string(),
    ]);
    controller.stdout(Stdio::null()).stderr(Stdio::piped());
    let line = procs.start_waiting(
        "controller",
        controller,
        Output::Stderr,
        Stop::Int,
        CONTROLLER_READY,
        &demo.join("controller.log"),
    )?;
    let addr = line
        .split(CONTROLLER_READY)
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .context("the controller printed no API address")?;
    w.controller = format!("http://{addr}");
    println!("controller API: {}", w.controller);
    if let Some(console) = line.split("console on ").nth(1) {
        println!(
            "web console: {} (sign in with the NOC token: {})",
            console.trim(),
            w.token
        );
    }

    let mut ids = Vec::new();
    for (tenant, name, tags) in AGENTS {
        ids.push(start_agent(
            root,
            &w,
            procs,
            tenant,
            name,
            tags,
            public.trim(),
            sha256,
        )?);
    }
    wait_online(&w, &ids)?;

    w.fleet(&["agents"])?;
    w.fleet(&["agents", "--tenant", "acme", "--tag", "role=db"])?;
    w.fleet(&["run", "health-check", "--target", "tenant=acme,role=db"])?;
    w.fleet(&["run", "health-check", "--target", "*"])?;
    w.fleet(&["runs"])?;
    demo_rollout::show(root, &w)
}

/// One agent: its policy trusting the demo's publisher, the inventory plugin and the runbook
/// signed by that publisher, enrollment with a fresh token, then `warden serve`. Its id.
#[allow(clippy::too_many_arguments)]
fn start_agent(
    root: &Path,
    w: &Warden,
    procs: &mut Processes,
    tenant: &str,
    name: &str,
    tags: &str,
    publisher: &str,
    api_sha256: &str,
) -> anyhow::Result<String> {
    println!("\n--- agent {name} (tenant {tenant}) ---");
    let dir = w.demo.join(name);
    std::fs::create_dir_all(dir.join("runbooks"))?;
    let policy = dir.join("warden.toml");
    std::fs::write(
        &policy,
        format!(
            "# Written by `cargo xtask demo fleet`.\n\
             [allow]\nsysinfo = [\"hostname\", \"os\", \"cpu\", \"memory\", \"disks\", \"network\", \"uptime\"]\n\
             fs-read = [\"/var/lib/dpkg/status\", \"/etc/passwd\", \"/proc/net/tcp\", \"/proc/net/tcp6\", \"/proc/net/udp\", \"/proc/net/udp6\", \"/etc/systemd/system/multi-user.target.wants\"]\n\n\
             [trust]\nallow-unsigned = false\n\
             [[trust.keys]]\nname = \"demo-publisher\"\npublic-key = {publisher:?}\n"
        ),
    )?;
    let agent = |args: &[&str]| -> anyhow::Result<String> {
        let mut cmd = Command::new(&w.bin);
        cmd.arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--config")
            .arg(&policy)
            .args(args);
        output(&mut cmd)
    };
    let secret = w.demo.join("publisher.key").display().to_string();
    let plugin = root.join("target/plugins/inventory").display().to_string();
    let bundle = dir.join("inventory.wbundle").display().to_string();
    agent(&[
        "plugin", "pack", &plugin, "--key", &secret, "--out", &bundle,
    ])?;
    agent(&["plugin", "install", &bundle])?;
    let runbook = dir.join("health-check.toml");
    std::fs::write(&runbook, RUNBOOK)?;
    let signed = dir
        .join("runbooks/health-check.wbundle")
        .display()
        .to_string();
    agent(&[
        "runbook",
        "pack",
        &runbook.display().to_string(),
        "--key",
        &secret,
        "--out",
        &signed,
    ])?;
    println!("installed the inventory plugin and health-check, both signed by the demo publisher");

    let token = w.output_fleet(false, &["enroll-token", "--tenant", tenant])?;
    let creds = dir.join("fleet.creds").display().to_string();
    let enrolled = agent(&[
        "--json",
        "enroll",
        "--controller",
        &w.controller,
        "--token",
        token.trim(),
        "--tenant",
        tenant,
        "--name",
        name,
        "--credentials",
        &creds,
    ])?;
    let enrolled: serde_json::Value =
        serde_json::from_str(&enrolled).context("`warden enroll` printed no JSON")?;
    let (Some(id), Some(url)) = (
        enrolled["agent"].as_str(),
        enrolled["nats_urls"][0].as_str(),
    ) else {
        bail!("`warden enroll` printed no agent id or NATS URL");
    };
    println!(
        "$ warden enroll --controller {} --tenant {tenant} --token <single-use> ...",
        w.controller
    );
    println!("enrolled {name} as {id}");

    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "# Written by `cargo xtask demo fleet`.\n[api]\nlisten = \"127.0.0.1:0\"\n\
             [[api.token]]\nname = \"noc\"\nrole = \"admin\"\nsha256 = {api_sha256:?}\n\n\
             [runbooks]\ndir = \"runbooks\"\n\n\
             [fleet]\nurls = [{url:?}]\ntenant = {tenant:?}\ncredentials = \"fleet.creds\"\n\
             heartbeat-interval-secs = 2\n[fleet.tags]\n{tags}\n"
        ),
    )?;
    println!("$ warden serve --agent-config {}", config.display());
    let mut serve = Command::new(&w.bin);
    serve
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&policy)
        .arg("serve")
        .arg("--agent-config")
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    procs.start_waiting(
        name,
        serve,
        Output::Stdout,
        Stop::Term,
        AGENT_READY,
        &dir.join("agent.log"),
    )?;
    Ok(id.to_string())
}

/// Until the controller has seen every agent's heartbeat.
fn wait_online(w: &Warden, ids: &[String]) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY;
    loop {
        let listed = w.output_fleet(true, &["agents"]).ok();
        let online = listed
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|v| v["agents"].as_array().cloned())
            .map(|agents| {
                ids.iter()
                    .filter(|id| {
                        agents
                            .iter()
                            .any(|a| a["agent"] == id.as_str() && a["presence"] == "online")
                    })
                    .count()
            })
            .unwrap_or(0);
        if online == ids.len() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{online} of {} agents online after {READY:?}", ids.len());
        }
        std::thread::sleep(POLL);
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("no free port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

fn output(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("starting {}", util::describe(cmd)))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}",
            util::describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `warden` binary, the demo's dir, the controller's address and the NOC token.
pub(crate) struct Warden {
    bin: PathBuf,
    pub(crate) demo: PathBuf,
    controller: String,
    token: String,
}

impl Warden {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--data-dir")
            .arg(self.demo.join("noc-data"))
            .args(args);
        cmd
    }

    pub(crate) fn output(&self, args: &[&str]) -> anyhow::Result<String> {
        output(&mut self.command(args))
    }

    /// Show the command, run it with its output on the terminal.
    pub(crate) fn show(&self, args: &[&str]) -> anyhow::Result<()> {
        println!("\n$ warden {}", util::shell_line(args));
        util::run(&mut self.command(args))
    }

    pub(crate) fn fleet_command(&self, json: bool, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--data-dir").arg(self.demo.join("noc-data"));
        if json {
            cmd.arg("--json");
        }
        cmd.args(["fleet", "--addr", &self.controller])
            .args(args)
            .env("WARDEN_TOKEN", &self.token);
        cmd
    }

    /// `warden fleet <args>`'s standard output, not shown.
    pub(crate) fn output_fleet(&self, json: bool, args: &[&str]) -> anyhow::Result<String> {
        output(&mut self.fleet_command(json, args))
    }

    /// `warden fleet <args>` as the NOC runs it (WARDEN_TOKEN set), its output shown.
    pub(crate) fn fleet(&self, args: &[&str]) -> anyhow::Result<()> {
        println!("\n$ warden fleet {}", util::shell_line(args));
        util::run(&mut self.fleet_command(false, args))
    }
}

/// Which output of a process says it is ready.
#[derive(Clone, Copy)]
enum Output {
    Stdout,
    Stderr,
}

/// The processes the demo started, stopped in reverse order.
#[derive(Default)]
struct Processes {
    running: Vec<(String, Child, Stop)>,
}

/// How a process is asked to stop: the controller on SIGINT (its Ctrl-C), the others on
/// SIGTERM (what a service manager sends; the agents finish their runs and flush first).
#[derive(Clone, Copy)]
enum Stop {
    Int,
    Term,
}

impl Processes {
    /// Start `cmd`, copy the chosen output (piped by the caller) into `log`, and wait until a
    /// line of it contains `ready`; that line.
    fn start_waiting(
        &mut self,
        name: &str,
        mut cmd: Command,
        which: Output,
        stop: Stop,
        ready: &str,
        log: &Path,
    ) -> anyhow::Result<String> {
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", util::describe(&cmd)))?;
        let stream: Option<Box<dyn std::io::Read + Send>> = match which {
            Output::Stdout => child.stdout.take().map(|s| Box::new(s) as _),
            Output::Stderr => child.stderr.take().map(|s| Box::new(s) as _),
        };
        // The other stream, when piped, goes to the same log.
        let other: Option<Box<dyn std::io::Read + Send>> = match which {
            Output::Stdout => child.stderr.take().map(|s| Box::new(s) as _),
            Output::Stderr => child.stdout.take().map(|s| Box::new(s) as _),
        };
        self.running.push((name.to_string(), child, stop));
        let stream = stream.with_context(|| format!("{name}: its output is not piped"))?;
        let file = std::fs::File::create(log)?;
        let (tx, rx) = mpsc::channel();
        let ready = ready.to_string();
        let mut copy = file.try_clone()?;
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = writeln!(copy, "{line}");
                if line.contains(&ready)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(line);
                }
            }
        });
        if let Some(other) = other {
            let mut copy = file;
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut BufReader::new(other), &mut copy);
            });
        }
        rx.recv_timeout(READY).map_err(|_| {
            anyhow::anyhow!(
                "{name} was not ready within {READY:?} (its log: {})",
                log.display()
            )
        })
    }

    /// SIGTERM each, newest first; SIGKILL what has not ended after [`STOP_GRACE`].
    fn stop_all(&mut self) -> anyhow::Result<()> {
        let mut forced = Vec::new();
        while let Some((name, mut child, stop)) = self.running.pop() {
            if let Ok(Some(_)) = child.try_wait() {
                continue;
            }
            signal(&child, stop);
            let deadline = Instant::now() + STOP_GRACE;
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL),
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        forced.push(name.clone());
                        break;
                    }
                }
            }
            println!("stopped {name}");
        }
        if forced.is_empty() {
            Ok(())
        } else {
            bail!(
                "killed after {STOP_GRACE:?} without stopping: {}",
                forced.join(", ")
            )
        }
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child, _) in &mut self.running {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(child: &Child, stop: Stop) {
    let pid = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    let signal = match stop {
        Stop::Int => rustix::process::Signal::INT,
        Stop::Term => rustix::process::Signal::TERM,
    };
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, signal);
    }
}
