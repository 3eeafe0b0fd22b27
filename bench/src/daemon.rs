//! The agent daemon's idle memory: `warden serve` (the binary built next to this one) on a
//! loopback port with a temporary data dir, its `VmRSS` read once it answers the gRPC health
//! check, has preloaded the installed plugins, and has been idle for a moment.

use anyhow::{Context, bail};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long the daemon sits idle after answering, before its memory is read.
pub const IDLE: Duration = Duration::from_secs(1);

/// A throwaway bearer token: the daemon listens on loopback only and lives for the measurement.
const TOKEN: &str = "warden-bench-health-probe";

/// The idle daemon's memory, from `/proc/<pid>/status`.
pub struct IdleMemory {
    pub rss: u64,
    pub hwm: u64,
}

/// `warden` in the target directory this bench was built into, if it was built there.
pub fn warden_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    // A test binary runs from target/<profile>/deps; the bench itself from target/<profile>.
    [dir, dir.parent()?]
        .iter()
        .map(|d| d.join(format!("warden{}", std::env::consts::EXE_SUFFIX)))
        .find(|p| p.is_file())
}

/// Kills and reaps the daemon however the measurement ends.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn status_kb(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
        .with_context(|| format!("no {field} in {path}"))
}

/// The data dir of the daemon started under `root`: install into it before [`idle_memory`] to
/// measure a daemon with plugins.
pub fn data_dir(root: &Path) -> PathBuf {
    root.join("data")
}

/// How long to wait for the daemon to say it has preloaded its plugins.
const PRELOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Start `warden serve` under `root` with the bench's `policy`, wait for its health check and
/// for it to preload the installed plugins, idle, and read its memory.
pub fn idle_memory(warden: &Path, root: &Path, policy: &str) -> anyhow::Result<IdleMemory> {
    std::fs::create_dir_all(root.join("runbooks")).context("creating the runbook dir")?;
    std::fs::write(root.join("warden.toml"), policy).context("writing the daemon's policy")?;
    std::fs::write(
        root.join("agent.toml"),
        format!(
            "[api]\nlisten = \"127.0.0.1:0\"\n[[api.token]]\nname = \"bench\"\nrole = \"viewer\"\n\
             sha256 = {:?}\n[runbooks]\ndir = \"runbooks\"\n",
            warden_agent::grpc::auth::token_hash(TOKEN)
        ),
    )
    .context("writing agent.toml")?;
    let mut child = Command::new(warden)
        .env("WARDEN_LOG", "info")
        .arg("--data-dir")
        .arg(data_dir(root))
        .arg("--config")
        .arg(root.join("warden.toml"))
        .arg("serve")
        .arg("--agent-config")
        .arg(root.join("agent.toml"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {} serve", warden.display()))?;
    let stdout = child.stdout.take();
    // The log, drained for the daemon's whole life; the preload's line is passed on.
    let (preloaded_tx, preloaded) = std::sync::mpsc::channel();
    if let Some(err) = child.stderr.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if line.contains("preloaded") {
                    let _ = preloaded_tx.send(line);
                }
            }
        });
    }
    let mut daemon = Daemon(child);
    // Port 0: the first line on stdout says where it listens.
    let mut line = String::new();
    if let Some(out) = stdout {
        BufReader::new(out)
            .read_line(&mut line)
            .context("reading the daemon's first line")?;
    }
    let Some(addr) = line.trim().strip_prefix("warden agent listening on ") else {
        let status = daemon.0.try_wait().ok().flatten();
        bail!("warden serve did not start (first line {line:?}, exit {status:?})");
    };
    health_check(addr)?;
    let preload = preloaded
        .recv_timeout(PRELOAD_TIMEOUT)
        .context("the daemon did not say it preloaded its plugins")?;
    if !preload.contains("INFO") {
        bail!("the daemon could not preload its plugins: {preload}");
    }
    std::thread::sleep(IDLE);
    if let Some(status) = daemon.0.try_wait().context("checking the daemon")? {
        bail!("warden serve exited while idle: {status}");
    }
    let pid = daemon.0.id();
    Ok(IdleMemory {
        rss: status_kb(pid, "VmRSS:")? * 1024,
        hwm: status_kb(pid, "VmHWM:")? * 1024,
    })
}

/// One authenticated `grpc.health.v1.Health/Check` of the whole server: `SERVING` or an error.
fn health_check(addr: &str) -> anyhow::Result<()> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting an async runtime for the health check")?;
    let uri = format!("http://{addr}");
    runtime.block_on(async {
        let channel = tonic::transport::Channel::from_shared(uri.clone())
            .with_context(|| format!("the address {uri}"))?
            .connect()
            .await
            .with_context(|| format!("connecting to {uri}"))?;
        let mut client = HealthClient::new(channel);
        let mut req = tonic::Request::new(HealthCheckRequest {
            service: String::new(),
        });
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {TOKEN}")
                .parse()
                .context("the bearer header")?,
        );
        let status = client
            .check(req)
            .await
            .context("the health check")?
            .into_inner()
            .status();
        if status != ServingStatus::Serving {
            bail!("the daemon's health check answered {status:?}");
        }
        Ok(())
    })
}
