//! The servers themselves: free loopback ports, config files, spawning, health polling through
//! the monitoring endpoint, kill and restart.

use std::collections::HashSet;
use std::fmt;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::{Error, NatsBinary, Result, spawn};

/// How often a wait asks again. Each failed `/healthz` is one warning line in the server's log.
const POLL: Duration = Duration::from_millis(25);
/// Starts retried with fresh ports when a port was taken between choosing it and the bind.
const START_ATTEMPTS: usize = 3;
/// How much of a server's log an error shows.
const LOG_TAIL_LINES: usize = 40;
/// The TLS handshake's timeout in the servers' config: nats-server's 0.5 s default is tight for
/// a loaded 2-core machine doing a handshake per agent.
const TLS_TIMEOUT_SECS: u32 = 5;
/// The cluster name every test cluster uses; clusters never meet, each has its own ports.
const CLUSTER_NAME: &str = "warden-test";

/// How healthy a node must be for [`Nats::wait_for`], from the monitoring endpoint `/healthz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Accepting connections with JetStream enabled (`/healthz?js-enabled-only=true`). A
    /// restarted cluster node gets here without a quorum, so [`Nats::restart`] waits for this.
    Running,
    /// Also, in a cluster, in contact with the JetStream meta leader and current with it, and
    /// every stream and consumer replica on this node current (`/healthz`). [`Nats::start`]
    /// waits for this on every node, when there are no streams yet: streams can be created then.
    /// (`js-enabled-only`, and on 2.12.8 also `js-server-only`, answer ok before a meta leader is
    /// elected; a stream create sent then times out.)
    Current,
}

impl Health {
    fn path(self) -> &'static str {
        match self {
            Health::Running => "/healthz?js-enabled-only=true",
            Health::Current => "/healthz",
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Health::Running => "running with JetStream",
            Health::Current => "current (with the meta leader and in every replica it holds)",
        })
    }
}

/// Limits and timeouts of the servers a [`Nats`] starts.
#[derive(Debug, Clone)]
pub struct Options {
    /// JetStream `max_memory_store` of each server, in bytes.
    pub max_memory_store: u64,
    /// JetStream `max_file_store` of each server, in bytes.
    pub max_file_store: u64,
    /// How long a start (every node [`Health::Current`]) or a restart ([`Health::Running`])
    /// may take.
    pub start_timeout: Duration,
    /// Config text appended to every node's config, at the top level (operator mode and its
    /// account resolver, say). Relative paths in it are relative to the node's directory.
    pub extra_config: String,
    /// TLS on the client port: every client must handshake (nats-server's `tls` block), the
    /// monitoring endpoint stays plain HTTP for the health polls. `None`: plain TCP.
    pub tls: Option<ServerTls>,
}

/// A server certificate and its key, PEM files (as [`crate::TestPki`] writes them).
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl Default for Options {
    /// Small stores, so that a test that leaks messages hits a limit rather than the disk, and a
    /// start timeout that a loaded 2-core machine meets (a cluster is ready in well under 1 s).
    fn default() -> Options {
        Options {
            max_memory_store: 64 << 20,
            max_file_store: 256 << 20,
            start_timeout: Duration::from_secs(30),
            extra_config: String::new(),
            tls: None,
        }
    }
}

/// One server of a [`Nats`].
#[derive(Debug)]
struct Node {
    name: String,
    client_port: u16,
    monitor_port: u16,
    /// The cluster port; `None` for a single server.
    route_port: Option<u16>,
    /// Holds the config, the log and the store.
    dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn config_path(&self) -> PathBuf {
        self.dir.join("nats.conf")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn store_dir(&self) -> PathBuf {
        self.dir.join("store")
    }

    fn config(&self, peer_routes: &[u16], options: &Options) -> Result<String> {
        let store = quoted(&self.store_dir())?;
        let mut text = format!(
            "# Written by warden-natstest for one test: loopback only, small JetStream limits.\n\
             server_name: {name}\n\
             listen: \"127.0.0.1:{client}\"\n\
             http: \"127.0.0.1:{monitor}\"\n\
             jetstream {{\n  \
               store_dir: {store}\n  \
               max_memory_store: {memory}\n  \
               max_file_store: {file}\n\
             }}\n",
            name = self.name,
            client = self.client_port,
            monitor = self.monitor_port,
            memory = options.max_memory_store,
            file = options.max_file_store,
        );
        if let Some(tls) = &options.tls {
            text.push_str(&format!(
                "tls {{\n  cert_file: {cert}\n  key_file: {key}\n  timeout: {TLS_TIMEOUT_SECS}\n}}\n",
                cert = quoted(&tls.cert_file)?,
                key = quoted(&tls.key_file)?,
            ));
        }
        if let Some(route_port) = self.route_port {
            let routes: String = peer_routes
                .iter()
                .filter(|&&p| p != route_port)
                .map(|p| format!("    \"nats-route://127.0.0.1:{p}\"\n"))
                .collect();
            text.push_str(&format!(
                "cluster {{\n  \
                   name: {CLUSTER_NAME}\n  \
                   listen: \"127.0.0.1:{route_port}\"\n  \
                   routes: [\n{routes}  ]\n\
                 }}\n"
            ));
        }
        if !options.extra_config.is_empty() {
            text.push_str(&options.extra_config);
            text.push('\n');
        }
        Ok(text)
    }

    fn spawn(&mut self, binary: &Path) -> Result<()> {
        let log_path = self.log_path();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(Error::io(format!("opening {}", log_path.display())))?;
        let err = log
            .try_clone()
            .map_err(Error::io(format!("opening {}", log_path.display())))?;
        let mut cmd = Command::new(binary);
        cmd.arg("-c")
            .arg(self.config_path())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        let child = spawn::spawn(cmd).map_err(Error::io(format!(
            "starting {} for {}",
            binary.display(),
            self.name
        )))?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL (what `Child::kill` sends on Unix) and reap.
    fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child
                .kill()
                .map_err(Error::io(format!("killing {}", self.name)))?;
            child
                .wait()
                .map_err(Error::io(format!("reaping {}", self.name)))?;
        }
        Ok(())
    }

    fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(_))) => {
                self.child = None;
                false
            }
            Some(Err(_)) | None => false,
        }
    }

    fn wait_for(&mut self, health: Health, deadline: Instant) -> Result<()> {
        let started = Instant::now();
        loop {
            let Some(child) = self.child.as_mut() else {
                return Err(Error::NotRunning(self.name.clone()));
            };
            let exited = child
                .try_wait()
                .map_err(Error::io(format!("waiting for {}", self.name)))?;
            if let Some(status) = exited {
                self.child = None;
                return Err(Error::Exited {
                    node: self.name.clone(),
                    status: status.to_string(),
                    log: self.log_tail(),
                });
            }
            let last = match healthz(self.monitor_port, health) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::NotReady {
                    node: self.name.clone(),
                    health,
                    waited: now - started,
                    last,
                    log: self.log_tail(),
                });
            }
            std::thread::sleep(POLL.min(deadline - now));
        }
    }

    fn log(&self) -> String {
        std::fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }
}

/// nats-server processes on loopback: one JetStream server or a JetStream cluster. Nodes are
/// numbered from 0 and named `n0`, `n1`, ... (their `server_name`, as stream info reports a
/// leader). Methods taking a node index panic when there is no such node.
#[derive(Debug)]
pub struct Nats {
    nodes: Vec<Node>,
    binary: NatsBinary,
    options: Options,
    dir: PathBuf,
    /// Removed after `drop` stopped the servers that write into it (fields drop after it).
    _dir: tempfile::TempDir,
}

impl Nats {
    /// One JetStream server with the default [`Options`].
    pub fn single() -> Result<Nats> {
        Nats::start(1, Options::default())
    }

    /// A JetStream cluster of `nodes` (at least 2; 3 for R3 streams) with the default
    /// [`Options`], every node ready.
    pub fn cluster(nodes: usize) -> Result<Nats> {
        if nodes < 2 {
            return Err(Error::NodeCount(nodes));
        }
        Nats::start(nodes, Options::default())
    }

    /// `nodes` servers (1: a single server, more: a cluster) of the binary [`NatsBinary::find`]
    /// finds, every one [`Health::Current`] when this returns.
    pub fn start(nodes: usize, options: Options) -> Result<Nats> {
        Nats::start_with(NatsBinary::find()?, nodes, options)
    }

    /// Like [`Nats::start`] with a given binary.
    pub fn start_with(binary: NatsBinary, nodes: usize, options: Options) -> Result<Nats> {
        if nodes == 0 {
            return Err(Error::NodeCount(nodes));
        }
        let mut attempt = 1;
        loop {
            match Nats::try_start(&binary, nodes, &options) {
                Err(e) if attempt < START_ATTEMPTS && is_port_clash(&e) => attempt += 1,
                result => return result,
            }
        }
    }

    fn try_start(binary: &NatsBinary, count: usize, options: &Options) -> Result<Nats> {
        let tmp = tempfile::Builder::new()
            .prefix("warden-nats-")
            .tempdir()
            .map_err(Error::io("creating a temporary directory"))?;
        let dir = tmp.path().to_path_buf();
        let clustered = count > 1;
        let ports = free_ports(count * if clustered { 3 } else { 2 })?;
        let nodes = (0..count)
            .map(|i| Node {
                name: format!("n{i}"),
                client_port: ports[i],
                monitor_port: ports[count + i],
                route_port: clustered.then(|| ports[2 * count + i]),
                dir: dir.join(format!("n{i}")),
                child: None,
            })
            .collect();
        let mut nats = Nats {
            nodes,
            binary: binary.clone(),
            options: options.clone(),
            dir,
            _dir: tmp,
        };
        let routes: Vec<u16> = nats.nodes.iter().filter_map(|n| n.route_port).collect();
        for node in &nats.nodes {
            std::fs::create_dir_all(node.store_dir()).map_err(Error::io(format!(
                "creating {}",
                node.store_dir().display()
            )))?;
            let config = node.config(&routes, options)?;
            std::fs::write(node.config_path(), config).map_err(Error::io(format!(
                "writing {}",
                node.config_path().display()
            )))?;
        }
        // All spawned before any is waited for: a cluster node is ready only with its peers.
        for node in &mut nats.nodes {
            node.spawn(&binary.path)?;
        }
        let deadline = Instant::now() + options.start_timeout;
        for node in &mut nats.nodes {
            node.wait_for(Health::Current, deadline)?;
        }
        Ok(nats)
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Never: a `Nats` has at least one node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The binary the servers run.
    pub fn binary(&self) -> &NatsBinary {
        &self.binary
    }

    /// The temporary directory holding every node's `n<i>/` (config, log, store).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The node's `server_name`.
    pub fn name(&self, node: usize) -> &str {
        &self.node(node).name
    }

    /// The index of the node called `name` (a stream leader's name, say).
    pub fn node_named(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// `nats://127.0.0.1:<port>` of one node.
    pub fn url(&self, node: usize) -> String {
        format!("nats://127.0.0.1:{}", self.node(node).client_port)
    }

    /// The client URLs of every node, in node order.
    pub fn urls(&self) -> Vec<String> {
        (0..self.nodes.len()).map(|i| self.url(i)).collect()
    }

    /// Every node's client URL, comma-separated, as clients take a server list.
    pub fn client_url(&self) -> String {
        self.urls().join(",")
    }

    /// `http://127.0.0.1:<port>` of the node's monitoring endpoint (`/varz`, `/jsz`, ...).
    pub fn monitor_url(&self, node: usize) -> String {
        format!("http://127.0.0.1:{}", self.node(node).monitor_port)
    }

    /// The body of `GET <path>` (`/varz`, `/connz?limit=100000`, ...) from the node's
    /// monitoring endpoint; an answer other than 200 is an error naming it.
    pub fn monitor(&self, node: usize, path: &str) -> Result<String, Error> {
        let port = self.node(node).monitor_port;
        let failed = |message: String| Error::Io {
            what: format!("GET {path} from nats-server {}", self.name(node)),
            source: std::io::Error::other(message),
        };
        let (status, body) = monitor_get(port, path, 256 << 20).map_err(failed)?;
        if status != "200" {
            return Err(failed(format!("answered {status}")));
        }
        Ok(body)
    }

    /// The node's JetStream store directory, kept across [`Nats::restart`].
    pub fn store_dir(&self, node: usize) -> PathBuf {
        self.node(node).store_dir()
    }

    /// Everything the node has logged (all its runs).
    pub fn log(&self, node: usize) -> String {
        self.node(node).log()
    }

    /// The node's process id while it runs.
    pub fn pid(&self, node: usize) -> Option<u32> {
        self.node(node).child.as_ref().map(Child::id)
    }

    /// Whether the node's process is alive (one that exited is reaped).
    pub fn is_running(&mut self, node: usize) -> bool {
        self.node_mut(node).is_running()
    }

    /// SIGKILL the node and reap it: no shutdown of any kind, as in a crash. Nothing happens to a
    /// node that is not running.
    pub fn kill(&mut self, node: usize) -> Result<()> {
        self.node_mut(node).kill()
    }

    /// Start the node again on the same ports, config and store (killing it first if it runs);
    /// returns once it is [`Health::Running`], with how long that took. Catching up with the
    /// cluster comes after: wait for [`Health::Current`] when the test needs it.
    pub fn restart(&mut self, node: usize) -> Result<Duration> {
        let started = Instant::now();
        let binary = self.binary.path.clone();
        let deadline = started + self.options.start_timeout;
        let node = self.node_mut(node);
        node.kill()?;
        let mut log = OpenOptions::new()
            .append(true)
            .open(node.log_path())
            .map_err(Error::io(format!("opening {}", node.log_path().display())))?;
        // Where one run's log ends and the next begins, for a reader of a failed test's log.
        writeln!(log, "--- warden-natstest: restarting {} ---", node.name)
            .map_err(Error::io(format!("writing {}", node.log_path().display())))?;
        node.spawn(&binary)?;
        node.wait_for(Health::Running, deadline)?;
        Ok(started.elapsed())
    }

    /// Wait up to `timeout` for the node to be as healthy as `health`; returns how long it took.
    pub fn wait_for(&mut self, node: usize, health: Health, timeout: Duration) -> Result<Duration> {
        let started = Instant::now();
        self.node_mut(node).wait_for(health, started + timeout)?;
        Ok(started.elapsed())
    }

    #[track_caller]
    fn node(&self, node: usize) -> &Node {
        let count = self.nodes.len();
        self.nodes
            .get(node)
            .unwrap_or_else(|| panic!("no node {node}: this Nats has {count} node(s)"))
    }

    #[track_caller]
    fn node_mut(&mut self, node: usize) -> &mut Node {
        let count = self.nodes.len();
        self.nodes
            .get_mut(node)
            .unwrap_or_else(|| panic!("no node {node}: this Nats has {count} node(s)"))
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            // Nothing more can be done about a failure here; the pdeathsig still applies.
            let _ = node.kill();
        }
    }
}

fn is_port_clash(e: &Error) -> bool {
    matches!(e, Error::Exited { log, .. } if log.contains("address already in use"))
}

/// A path as a double-quoted config string. The few paths written (under the temporary
/// directory) need no escapes; one that would is refused rather than escaped by guesswork.
fn quoted(path: &Path) -> Result<String> {
    match path.to_str() {
        Some(s) if !s.chars().any(|c| c == '"' || c == '\\' || c.is_control()) => {
            Ok(format!("\"{s}\""))
        }
        _ => Err(Error::UnquotablePath(path.to_path_buf())),
    }
}

/// Ports handed out in this process, never handed out again: a port freed by one test's listener
/// probe could otherwise go to a parallel test before the first test's server binds it.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// `count` distinct loopback ports that were free a moment ago. Another process can still take
/// one before the server binds it; [`Nats::start_with`] retries with fresh ports then.
fn free_ports(count: usize) -> Result<Vec<u16>> {
    let mut guard = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
    let handed = guard.get_or_insert_with(HashSet::new);
    // Held until all are chosen, so the OS gives each probe a different port.
    let mut listeners = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < count {
        if listeners.len() >= count + 100 {
            return Err(Error::Io {
                what: "choosing loopback ports".into(),
                source: std::io::Error::other("no unused port after 100 tries"),
            });
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(Error::io("binding a loopback port"))?;
        let port = listener
            .local_addr()
            .map_err(Error::io("reading a bound port"))?
            .port();
        if handed.insert(port) {
            ports.push(port);
        }
        listeners.push(listener);
    }
    Ok(ports)
}

/// `GET <health path>` on the monitoring port; `Err` says why it is not (yet) healthy.
/// `GET path` from the monitoring endpoint on `port`: (status, body), the answer read up to
/// `cap` bytes.
fn monitor_get(port: u16, path: &str, cap: u64) -> Result<(String, String), String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
        .map_err(|e| format!("monitoring port {port}: {e}"))?;
    let timeout = Some(Duration::from_secs(5));
    stream
        .set_read_timeout(timeout)
        .and_then(|()| stream.set_write_timeout(timeout))
        .map_err(|e| format!("monitoring port {port}: {e}"))?;
    // HTTP/1.0: the server closes the connection after the answer, which ends the read.
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .map_err(|e| format!("monitoring port {port}: {e}"))?;
    let mut answer = String::new();
    stream
        .take(cap)
        .read_to_string(&mut answer)
        .map_err(|e| format!("monitoring port {port}: {e}"))?;
    let status = answer.split_whitespace().nth(1).unwrap_or("").to_string();
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    Ok((status, body))
}

fn healthz(port: u16, health: Health) -> Result<(), String> {
    let (status, body) = monitor_get(port, health.path(), 64 << 10)?;
    if status == "200" {
        return Ok(());
    }
    Err(format!(
        "{} answered {status}: {}",
        health.path(),
        body.trim()
    ))
}

/// Live processes (zombies excluded) whose command line mentions `needle`, this one excluded:
/// the servers of a [`Nats`] mention its [`Nats::dir`] (their `-c` config path).
#[cfg(target_os = "linux")]
pub fn live_processes_mentioning(needle: &Path) -> Vec<u32> {
    let needle = needle.as_os_str().as_encoded_bytes();
    let own = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != own)
        .filter(|&pid| {
            // A zombie's cmdline is empty, so it never matches.
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                cmdline
                    .split(|&b| b == 0)
                    .any(|arg| arg.windows(needle.len()).any(|w| w == needle))
            })
        })
        .collect()
}

/// Whether `pid` is a process that has not exited (a zombie has).
#[cfg(target_os = "linux")]
pub fn process_is_live(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may hold anything.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_config_routes_to_the_peers_on_loopback() {
        let node = Node {
            name: "n1".into(),
            client_port: 4001,
            monitor_port: 8001,
            route_port: Some(6001),
            dir: PathBuf::from("/tmp/x/n1"),
            child: None,
        };
        let text = node
            .config(&[6000, 6001, 6002], &Options::default())
            .expect("config");
        assert!(text.contains("listen: \"127.0.0.1:4001\""), "{text}");
        assert!(text.contains("http: \"127.0.0.1:8001\""), "{text}");
        assert!(text.contains("store_dir: \"/tmp/x/n1/store\""), "{text}");
        assert!(text.contains("max_file_store: 268435456"), "{text}");
        assert!(text.contains("nats-route://127.0.0.1:6000"), "{text}");
        assert!(text.contains("nats-route://127.0.0.1:6002"), "{text}");
        assert!(!text.contains("nats-route://127.0.0.1:6001"), "{text}");
        assert!(!text.contains("0.0.0.0"), "{text}");
        let single = Node {
            route_port: None,
            ..node
        };
        let text = single.config(&[], &Options::default()).expect("config");
        assert!(!text.contains("cluster"), "{text}");
        let options = Options {
            extra_config: "system_account: SYS".into(),
            ..Options::default()
        };
        let text = single.config(&[], &options).expect("config");
        assert!(text.ends_with("system_account: SYS\n"), "{text}");
        assert!(!text.contains("tls {"), "{text}");
        let options = Options {
            tls: Some(ServerTls {
                cert_file: PathBuf::from("/tmp/x/server.pem"),
                key_file: PathBuf::from("/tmp/x/server.key"),
            }),
            ..Options::default()
        };
        let text = single.config(&[], &options).expect("config");
        assert!(
            text.contains(
                "tls {\n  cert_file: \"/tmp/x/server.pem\"\n  key_file: \"/tmp/x/server.key\""
            ),
            "{text}"
        );
    }

    #[test]
    fn paths_needing_escapes_are_refused() {
        assert_eq!(
            quoted(Path::new("/tmp/a b")).expect("plain"),
            "\"/tmp/a b\""
        );
        for bad in ["/tmp/a\"b", "/tmp/a\\b", "/tmp/a\nb"] {
            assert!(quoted(Path::new(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ports_are_never_handed_out_twice() {
        let a = free_ports(20).expect("ports");
        let b = free_ports(20).expect("ports");
        let all: HashSet<u16> = a.iter().chain(&b).copied().collect();
        assert_eq!(all.len(), 40);
    }
}
