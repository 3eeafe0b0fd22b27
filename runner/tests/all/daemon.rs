//! The agent daemon as the NOC meets it: the agent (`warden_agent::daemon::serve`) on a loopback
//! port, in this process on its own runtime, driven over gRPC from Rust (and from the Python
//! example client); the tests of signals and crashes run a real `warden serve` process instead. Covers the auth matrix over
//! every registered method, trigger + watch (live and late), history, cancel reaching a child
//! process, the concurrency cap, plugin install over the API, and SIGTERM in the middle of a run.
//! Uses the plugins built by `cargo xtask build-plugins` (run by `cargo xtask test`).

use prost::Message as _;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use warden_agent::grpc::auth::{METHOD_ROLES, Role, token_hash};
use warden_agent::grpc::pb;

use crate::common::reseal;
use warden_tmpfs as tmpfs;

pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

pub(crate) fn built(name: &str) -> PathBuf {
    let dir = repo().join("target/plugins").join(name);
    assert!(
        dir.join("plugin.wasm").exists(),
        "run `cargo xtask build-plugins` first ({name} missing)"
    );
    dir
}

const TOKENS: [(&str, Role, &str); 3] = [
    ("viewer-vic", Role::Viewer, "tok-viewer-0123456789"),
    ("operator-olga", Role::Operator, "tok-operator-0123456789"),
    ("admin-ada", Role::Admin, "tok-admin-0123456789"),
];

fn token(role: Role) -> &'static str {
    TOKENS
        .iter()
        .find(|(_, r, _)| *r == role)
        .map(|(_, _, t)| *t)
        .expect("token")
}

/// How an agent of the tests runs.
pub(crate) enum Serving {
    /// `warden_agent::daemon::serve` on a thread of this process with its own runtime.
    InProcess {
        stop: Option<tokio::sync::oneshot::Sender<String>>,
        thread: Option<std::thread::JoinHandle<Result<(), String>>>,
    },
    /// A `warden serve` process: for what only a process has (signals, a SIGKILL).
    Process(Child),
}

/// How an agent stopped: cleanly, or with what went wrong.
#[derive(Debug)]
pub(crate) struct Stopped(pub(crate) Result<(), String>);

impl Stopped {
    fn success(&self) -> bool {
        self.0.is_ok()
    }
}

/// An agent with its own data dir, policy, runbooks and scratch dir.
pub(crate) struct Agent {
    pub(crate) serving: Serving,
    addr: String,
    /// A tmpfs over the data dir, for the full-disk tests; unmounted before `tmp` goes.
    disk: Option<tmpfs::Tmpfs>,
    tmp: tempfile::TempDir,
}

impl Agent {
    fn start(api_extra: &str) -> Agent {
        Agent::start_with(api_extra, &[], "")
    }

    fn start_with(api_extra: &str, runbooks: &[(&str, &str)], automation: &str) -> Agent {
        Agent::start_full(api_extra, runbooks, automation, "")
    }

    /// With `runbooks` written first and `automation` (schedules, windows, monitors) appended to
    /// agent.toml; `{scratch}` in either is replaced by the scratch dir.
    pub(crate) fn start_full(
        api_extra: &str,
        runbooks: &[(&str, &str)],
        automation: &str,
        trust_extra: &str,
    ) -> Agent {
        Agent::start_inner(api_extra, runbooks, automation, trust_extra, false, false)
    }

    /// With the data dir on its own small tmpfs (see `tmpfs`), to fill it.
    fn start_on_tmpfs(automation: &str) -> Agent {
        Agent::start_inner("", &[], automation, "", true, false)
    }

    /// As a `warden serve` process, for the tests of signals and crashes.
    fn spawned(api_extra: &str, runbooks: &[(&str, &str)], automation: &str) -> Agent {
        Agent::start_inner(api_extra, runbooks, automation, "", false, true)
    }

    pub(crate) fn start_inner(
        api_extra: &str,
        runbooks: &[(&str, &str)],
        automation: &str,
        trust_extra: &str,
        on_tmpfs: bool,
        process: bool,
    ) -> Agent {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        let disk = on_tmpfs.then(|| tmpfs::Tmpfs::mount(&root.join("data")));
        let scratch = root.join("scratch");
        std::fs::create_dir_all(&scratch).expect("scratch");
        std::fs::create_dir_all(root.join("runbooks")).expect("runbooks");
        for (name, text) in runbooks {
            std::fs::write(root.join("runbooks").join(format!("{name}.toml")), text)
                .expect("runbook");
        }
        let automation = automation.replace("{scratch}", &scratch.display().to_string());
        let s = scratch.display().to_string();
        std::fs::write(
            root.join("warden.toml"),
            format!(
                "cache-dir = {:?}\n[allow]\nfs-read = [{s:?}, \"/var/lib/dpkg/status\"]\nfs-write = [{s:?}]\nkv = true\n\
                 sysinfo = [\"hostname\", \"os\", \"cpu\", \"memory\", \"disks\", \"network\", \"uptime\"]\n\
                 exec = [{{ program = \"/bin/sleep\", args = [\"*\"] }}]\nservices = [\"demo-svc\"]\n\
                 [services]\nbackend = \"command\"\n[services.command]\nstatus = [\"/bin/true\", \"{{name}}\"]\n\
                 start = [\"/bin/true\", \"{{name}}\"]\nstop = [\"/bin/true\", \"{{name}}\"]\nrestart = [\"/bin/true\", \"{{name}}\"]\n\
                 [trust]\nallow-unsigned = true\n{trust_extra}",
                repo().join("target/test-cache").display().to_string()
            ),
        )
        .expect("policy");
        let tokens: String = TOKENS
            .iter()
            .map(|(name, role, t)| {
                format!(
                    "[[api.token]]\nname = {name:?}\nrole = {:?}\nsha256 = {:?}\n",
                    serde_json::to_value(role)
                        .expect("role")
                        .as_str()
                        .expect("str"),
                    token_hash(t)
                )
            })
            .collect();
        std::fs::write(
            root.join("agent.toml"),
            format!(
                "[api]\nlisten = \"127.0.0.1:0\"\n{api_extra}\n{tokens}\n[runbooks]\ndir = \"runbooks\"\n{automation}\n"
            ),
        )
        .expect("agent config");
        let agent_cli = |args: &[&str]| {
            let out = Command::new(env!("CARGO_BIN_EXE_warden"))
                .arg("--data-dir")
                .arg(root.join("data"))
                .arg("--config")
                .arg(root.join("warden.toml"))
                .args(args)
                .output()
                .expect("warden runs");
            assert!(
                out.status.success(),
                "warden {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        // `hostile` runs /bin/sleep for the cancel tests, under a manifest that requests
        // what it imports, within this policy.
        for plugin in ["tracer", "calls", "inventory", "disk-usage"] {
            agent_cli(&["plugin", "install", &built(plugin).display().to_string()]);
        }
        let hostile = root.join("hostile-pkg");
        std::fs::create_dir_all(&hostile).expect("dir");
        std::fs::copy(
            built("hostile").join("plugin.wasm"),
            hostile.join("plugin.wasm"),
        )
        .expect("copy");
        std::fs::write(
            hostile.join("plugin.toml"),
            format!(
                "name = \"hostile\"\nversion = \"0.1.0\"\nrole = \"check-remediation\"\ncomponent = \"plugin.wasm\"\n\
                 [capabilities]\nsysinfo = [\"hostname\", \"os\"]\nservices = [\"demo-svc\"]\n\
                 exec = [{{ program = \"/bin/sleep\", args = [\"*\"] }}]\n\
                 [capabilities.fs]\nread = [{s:?}]\nwrite = [{s:?}]\n[capabilities.kv]\nquota-bytes = 4096\n"
            ),
        )
        .expect("manifest");
        agent_cli(&["plugin", "install", &hostile.display().to_string()]);

        let (serving, addr) = if process {
            let (child, addr) = spawn_serve(root);
            (Serving::Process(child), addr)
        } else {
            serve_in_process(root)
        };
        Agent {
            serving,
            addr,
            disk,
            tmp,
        }
    }

    pub(crate) fn root(&self) -> &Path {
        self.tmp.path()
    }

    /// Kill the agent (SIGKILL: a crash) and start it again on the same data.
    pub(crate) fn crash_and_restart(&mut self) {
        let Serving::Process(child) = &mut self.serving else {
            panic!("only a spawned agent can crash: start it with Agent::spawned");
        };
        let _ = child.kill();
        let _ = child.wait();
        let (child, addr) = spawn_serve(self.tmp.path());
        self.serving = Serving::Process(child);
        self.addr = addr;
    }

    fn scratch(&self) -> PathBuf {
        self.root().join("scratch")
    }

    fn runbook(&self, name: &str, text: &str) {
        std::fs::write(
            self.root().join("runbooks").join(format!("{name}.toml")),
            text,
        )
        .expect("runbook");
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect")
    }

    pub(crate) async fn runbooks(&self, role: Role) -> pb::runbooks_client::RunbooksClient<Authed> {
        pb::runbooks_client::RunbooksClient::with_interceptor(
            self.channel().await,
            bearer(token(role)),
        )
    }

    pub(crate) async fn plugins(&self, role: Role) -> pb::plugins_client::PluginsClient<Authed> {
        pb::plugins_client::PluginsClient::with_interceptor(
            self.channel().await,
            bearer(token(role)),
        )
    }

    pub(crate) fn audit_log(&self) -> String {
        std::fs::read_to_string(self.root().join("data/audit/audit.log")).unwrap_or_default()
    }

    pub(crate) fn warden(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_warden"))
            .arg("--data-dir")
            .arg(self.root().join("data"))
            .arg("--config")
            .arg(self.root().join("warden.toml"))
            .args(args)
            .output()
            .expect("warden runs")
    }

    /// Stop the agent as its service manager would: SIGTERM for a process, the shutdown
    /// future for an agent in this process; then wait for it to end.
    pub(crate) fn terminate(&mut self) -> Stopped {
        match &mut self.serving {
            Serving::Process(child) => {
                let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
                rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
                let status = child.wait().expect("wait");
                Stopped(if status.success() {
                    Ok(())
                } else {
                    Err(format!("{status:?}"))
                })
            }
            Serving::InProcess { stop, thread } => {
                if let Some(stop) = stop.take() {
                    let _ = stop.send("SIGTERM".into());
                }
                let ended = thread.take().map(|t| t.join());
                Stopped(match ended {
                    Some(Ok(result)) => result,
                    Some(Err(_)) => Err("the agent's thread panicked".into()),
                    None => Err("already stopped".into()),
                })
            }
        }
    }
}

/// `warden_agent::daemon::serve` on `root`'s files, on a thread of this process with a runtime
/// of its own (as `warden serve` builds one); returns how to stop it and the address it serves.
pub(crate) fn serve_in_process(root: &Path) -> (Serving, String) {
    let data_dir = root.join("data");
    let policy = warden_core::SitePolicy::load(&root.join("warden.toml")).expect("policy");
    let config = warden_agent::daemon::config::AgentConfig::load(&root.join("agent.toml"))
        .expect("agent config");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<String>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || -> Result<(), String> {
        let runtime = warden_agent::daemon::runtime::build(&config).map_err(|e| e.to_string())?;
        runtime.block_on(async move {
            let manager =
                warden_agent::PluginManager::new(&data_dir, policy).map_err(|e| e.to_string())?;
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| e.to_string())?;
            let shutdown = async move { stop_rx.await.unwrap_or_else(|_| "dropped".into()) };
            warden_agent::daemon::serve(manager, config, listener, shutdown, |addr| {
                let _ = addr_tx.send(addr.to_string());
            })
            .await
            .map_err(|e| e.to_string())
        })
    });
    match addr_rx.recv() {
        Ok(addr) => (
            Serving::InProcess {
                stop: Some(stop_tx),
                thread: Some(thread),
            },
            addr,
        ),
        Err(_) => {
            let why = thread.join();
            panic!("the agent ended before it served: {why:?}");
        }
    }
}

/// `warden serve` on `root`'s files; returns the process and the address it listens on.
fn spawn_serve(root: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("--data-dir")
        .arg(root.join("data"))
        .arg("--config")
        .arg(root.join("warden.toml"))
        .arg("serve")
        .arg("--agent-config")
        .arg(root.join("agent.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("warden serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("first line");
    if line.is_empty() {
        let status = child.wait().expect("wait");
        panic!("warden serve exited before listening: {status:?}");
    }
    let addr = line
        .trim()
        .strip_prefix("warden agent listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (child, addr)
}

impl Drop for Agent {
    fn drop(&mut self) {
        match &mut self.serving {
            Serving::Process(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Serving::InProcess { .. } => {
                let _ = self.terminate();
            }
        }
    }
}

pub(crate) type Authed = InterceptedService<Channel, Bearer>;

#[derive(Clone)]
pub(crate) struct Bearer(Option<String>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(t) = &self.0 {
            req.metadata_mut().insert(
                "authorization",
                format!("Bearer {t}").parse().expect("header"),
            );
        }
        Ok(req)
    }
}

pub(crate) fn bearer(token: &str) -> Bearer {
    Bearer(Some(token.to_string()))
}

/// Every method of every service the agent registers, as a path, from the descriptor sets.
fn registered_methods() -> Vec<String> {
    let mut methods = Vec::new();
    for bytes in [
        warden_agent::grpc::DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
    ] {
        let set = prost_types::FileDescriptorSet::decode(bytes).expect("descriptor set");
        for file in set.file {
            for service in &file.service {
                for method in &service.method {
                    methods.push(format!(
                        "/{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
    }
    methods
}

/// Call `path` with an empty request message (valid for every proto3 request type).
async fn raw_call(channel: Channel, path: &str, token: Option<&str>) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let mut req = tonic::Request::new(());
    if let Some(t) = token {
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {t}").parse().expect("header"),
        );
    }
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let path = http::uri::PathAndQuery::try_from(path).expect("path");
    match grpc.unary(req, path, codec).await {
        Ok(_) => tonic::Status::ok(""),
        Err(status) => status,
    }
}

pub(crate) async fn watch_all(
    client: &mut pb::runbooks_client::RunbooksClient<Authed>,
    run_id: &str,
) -> Vec<pb::RunEvent> {
    let mut stream = client
        .watch(pb::WatchRequest {
            run_id: run_id.into(),
        })
        .await
        .expect("watch")
        .into_inner();
    let mut events = Vec::new();
    while let Some(e) = stream.message().await.expect("event") {
        events.push(e);
    }
    events
}

/// Read events (of a run or of the agent) until one matches `pred`; returns it (the stream stays
/// open for more).
pub(crate) async fn wait_for<T>(stream: &mut tonic::Streaming<T>, pred: impl Fn(&T) -> bool) -> T {
    loop {
        let e = stream
            .message()
            .await
            .expect("event")
            .expect("the stream ended before the awaited event");
        if pred(&e) {
            return e;
        }
    }
}

fn kind(e: &pb::RunEvent) -> pb::EventKind {
    pb::EventKind::try_from(e.kind).expect("kind")
}

/// Trigger `sleepy` and wait until its step has started; the run and its event stream.
async fn start_sleepy(
    client: &mut pb::runbooks_client::RunbooksClient<Authed>,
) -> (pb::TriggerResponse, tonic::Streaming<pb::RunEvent>) {
    let started = trigger(client, "sleepy", &[], false)
        .await
        .expect("trigger");
    let mut stream = client
        .watch(pb::WatchRequest {
            run_id: started.run_id.clone(),
        })
        .await
        .expect("watch")
        .into_inner();
    wait_for(&mut stream, |e| kind(e) == pb::EventKind::StepStarted).await;
    (started, stream)
}

pub(crate) async fn trigger(
    client: &mut pb::runbooks_client::RunbooksClient<Authed>,
    name: &str,
    params: &[(&str, &str)],
    dry_run: bool,
) -> Result<pb::TriggerResponse, tonic::Status> {
    client
        .trigger(pb::TriggerRequest {
            source: Some(pb::trigger_request::Source::Name(name.into())),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            dry_run,
        })
        .await
        .map(|r| r.into_inner())
}

const TRACE_RUNBOOK: &str = r#"
name = "trace"
[params.path]
type = "string"

[[steps]]
id = "facts"
plugin = "inventory"
action = "discover"
config = { packages = false }

[[steps]]
id = "talk"
plugin = "calls"
action = "check"
config = { kind = "log", calls = 2 }

[[steps]]
id = "trace"
plugin = "tracer"
action = "apply"
config = { path = "${params.path}" }
"#;

pub(crate) fn sleepy_runbook(seconds: &str) -> String {
    format!(
        "name = \"sleepy\"\n[[steps]]\nid = \"nap\"\nplugin = \"hostile\"\naction = \"check\"\n\
         config = {{ attack = \"exec\", program = \"/bin/sleep\", args = [\"{seconds}\"] }}\n"
    )
}

/// Processes whose command line is exactly `sleep <arg>`.
fn sleeping(arg: &str) -> usize {
    let wanted = format!("/bin/sleep\0{arg}\0");
    let short = format!("sleep\0{arg}\0");
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
                .filter(|c| {
                    let c = String::from_utf8_lossy(c);
                    c == wanted || c == short
                })
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn every_registered_method_needs_a_token_and_its_role() {
    let agent = Agent::start("");
    let methods = registered_methods();
    assert!(methods.len() >= 15, "{methods:?}");
    for m in &methods {
        assert!(
            METHOD_ROLES.iter().any(|(p, _)| p == m),
            "{m} has no role in METHOD_ROLES: it would be denied to everyone"
        );
    }
    let channel = agent.channel().await;
    for m in &methods {
        let status = raw_call(channel.clone(), m, None).await;
        assert_eq!(status.code(), Code::Unauthenticated, "{m} without a token");
        let status = raw_call(channel.clone(), m, Some("not-a-token")).await;
        assert_eq!(status.code(), Code::Unauthenticated, "{m} with a bad token");
        let needed = METHOD_ROLES
            .iter()
            .find(|(p, _)| p == m)
            .map(|(_, r)| *r)
            .expect("role");
        for (_, role, t) in TOKENS {
            if role < needed {
                let status = raw_call(channel.clone(), m, Some(t)).await;
                assert_eq!(
                    status.code(),
                    Code::PermissionDenied,
                    "{m} as {role:?} (needs {needed:?})"
                );
            }
        }
    }
    let log = agent.audit_log();
    assert!(
        log.matches("\"decision\":\"unauthenticated\"").count() >= 2 * methods.len(),
        "each refused call is audited"
    );
    assert!(log.contains("\"decision\":\"denied\""));
}

#[tokio::test]
async fn trigger_watch_late_join_history_and_inventory() {
    let agent = Agent::start("");
    agent.runbook("trace", TRACE_RUNBOOK);
    let trace = agent.scratch().join("trace.txt");
    let mut client = agent.runbooks(Role::Operator).await;

    // A dry run plans and never applies.
    let dry = trigger(
        &mut client,
        "trace",
        &[("path", &trace.display().to_string())],
        true,
    )
    .await
    .expect("trigger dry run");
    let events = watch_all(&mut client, &dry.run_id).await;
    assert_eq!(events.last().map(|e| e.status.as_str()), Some("succeeded"));
    assert!(!trace.exists(), "a dry run applied");

    let started = trigger(
        &mut client,
        "trace",
        &[("path", &trace.display().to_string())],
        false,
    )
    .await
    .expect("trigger");
    let live = watch_all(&mut client, &started.run_id).await;
    let kinds: Vec<pb::EventKind> = live.iter().map(kind).collect();
    assert_eq!(kinds.first(), Some(&pb::EventKind::RunQueued), "{kinds:?}");
    assert_eq!(kinds.get(1), Some(&pb::EventKind::RunStarted), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&pb::EventKind::RunFinished), "{kinds:?}");
    assert_eq!(
        live.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (0..live.len() as u64).collect::<Vec<_>>(),
        "events are numbered in order"
    );
    let logs: Vec<&pb::RunEvent> = live
        .iter()
        .filter(|e| kind(e) == pb::EventKind::Log && e.step == "talk")
        .collect();
    assert_eq!(logs.len(), 2, "the plugin's two log lines are streamed");
    assert_eq!(
        live.iter()
            .filter(|e| kind(e) == pb::EventKind::StepFinished)
            .map(|e| (e.step.as_str(), e.status.as_str()))
            .collect::<Vec<_>>(),
        [
            ("facts", "succeeded"),
            ("talk", "succeeded"),
            ("trace", "succeeded")
        ]
    );
    assert_eq!(
        std::fs::read_to_string(&trace).expect("trace written"),
        "applied"
    );

    // A late joiner (here, after the end) gets the same events.
    let late = watch_all(&mut client, &started.run_id).await;
    assert_eq!(late, live);

    let mut viewer = agent.runbooks(Role::Viewer).await;
    let run = viewer
        .get_run(pb::GetRunRequest {
            run_id: started.run_id.clone(),
        })
        .await
        .expect("get run")
        .into_inner();
    assert_eq!(run.status, "succeeded");
    assert_eq!(run.steps.len(), 3);
    assert_eq!(run.steps[2].plugin, "tracer");
    assert_eq!(run.steps[2].plugin_sha256.len(), 64);
    let listed = viewer
        .list_runs(pb::ListRunsRequest {
            limit: 10,
            status: "succeeded".into(),
            runbook: "trace".into(),
            page_token: String::new(),
        })
        .await
        .expect("list")
        .into_inner();
    assert_eq!(listed.runs.len(), 2);
    assert_eq!(listed.runs[0].run_id, started.run_id, "newest first");
    let none = viewer
        .list_runs(pb::ListRunsRequest {
            limit: 10,
            status: "failed".into(),
            runbook: String::new(),
            page_token: String::new(),
        })
        .await
        .expect("list")
        .into_inner();
    assert!(none.runs.is_empty());
    // Pages of one run each walk the same runs, newest first, each once, then end.
    let list = |limit: u32, page_token: String| {
        let mut viewer = viewer.clone();
        async move {
            viewer
                .list_runs(pb::ListRunsRequest {
                    limit,
                    page_token,
                    ..Default::default()
                })
                .await
        }
    };
    let all: Vec<String> = list(100, String::new())
        .await
        .expect("list")
        .into_inner()
        .runs
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert!(all.len() >= 2, "{all:?}");
    let (mut paged, mut next) = (Vec::new(), String::new());
    loop {
        let page = list(1, next).await.expect("page").into_inner();
        paged.extend(page.runs.into_iter().map(|r| r.run_id));
        if page.next_page_token.is_empty() {
            break;
        }
        assert!(paged.len() <= all.len(), "pages never end: {paged:?}");
        next = page.next_page_token;
    }
    assert_eq!(paged, all);
    let bad = list(1, "not-a-token".into()).await.expect_err("refused");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{bad:?}");

    let mut inventory = pb::inventory_client::InventoryClient::with_interceptor(
        agent.channel().await,
        bearer(token(Role::Viewer)),
    );
    let snap = inventory
        .latest(pb::LatestInventoryRequest {})
        .await
        .expect("inventory")
        .into_inner();
    assert_eq!(snap.entries.len(), 1);
    assert_eq!(snap.entries[0].plugin, "inventory");
    assert!(snap.entries[0].collected_ms > 0);
    assert!(snap.entries[0].facts_json.contains("hostname"));

    // Bad requests get typed errors.
    let missing = trigger(&mut client, "no-such-runbook", &[], false)
        .await
        .expect_err("missing runbook");
    assert_eq!(missing.code(), Code::NotFound, "{missing:?}");
    let bad_param = trigger(&mut client, "trace", &[("nope", "1")], false)
        .await
        .expect_err("unknown param");
    assert_eq!(bad_param.code(), Code::InvalidArgument, "{bad_param:?}");
    let unsigned = client
        .trigger(pb::TriggerRequest {
            source: Some(pb::trigger_request::Source::SignedRunbook(
                TRACE_RUNBOOK.as_bytes().to_vec(),
            )),
            params: Default::default(),
            dry_run: true,
        })
        .await
        .expect_err("an inline runbook must be signed");
    assert_eq!(unsigned.code(), Code::PermissionDenied, "{unsigned:?}");
    let log = agent.audit_log();
    assert!(
        log.contains("\"requested_by\":\"operator-olga\""),
        "who triggered is audited"
    );
}

#[tokio::test]
async fn cancel_stops_the_plugin_and_kills_its_child() {
    let agent = Agent::start("");
    agent.runbook("sleepy", &sleepy_runbook("41.25"));
    let mut client = agent.runbooks(Role::Operator).await;
    let (started, mut stream) = start_sleepy(&mut client).await;
    // The step has started; its child appears as soon as exec spawns it.
    for _ in 0..500 {
        if sleeping("41.25") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(sleeping("41.25"), 1, "the plugin's child is running");
    let viewer_try = agent
        .runbooks(Role::Viewer)
        .await
        .cancel(pb::CancelRequest {
            run_id: started.run_id.clone(),
        })
        .await
        .expect_err("a viewer cannot cancel");
    assert_eq!(viewer_try.code(), Code::PermissionDenied);
    let cancelled = client
        .cancel(pb::CancelRequest {
            run_id: started.run_id.clone(),
        })
        .await
        .expect("cancel")
        .into_inner();
    assert!(cancelled.cancelled);
    let finished = wait_for(&mut stream, |e| kind(e) == pb::EventKind::RunFinished).await;
    assert_eq!(finished.status, "cancelled");
    assert_eq!(sleeping("41.25"), 0, "the child was killed");
    let again = client
        .cancel(pb::CancelRequest {
            run_id: started.run_id.clone(),
        })
        .await
        .expect("cancel again")
        .into_inner();
    assert!(!again.cancelled, "a finished run is not cancelled again");
    let unknown = client
        .cancel(pb::CancelRequest {
            run_id: "nope".into(),
        })
        .await
        .expect_err("unknown run");
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn the_concurrency_cap_queues_then_refuses() {
    let agent = Agent::start("max-concurrent-runs = 1\nmax-queued-runs = 1");
    agent.runbook("sleepy", &sleepy_runbook("42.5"));
    let mut client = agent.runbooks(Role::Operator).await;
    let first = trigger(&mut client, "sleepy", &[], false)
        .await
        .expect("first");
    assert!(!first.queued);
    let second = trigger(&mut client, "sleepy", &[], false)
        .await
        .expect("second");
    assert!(second.queued, "the second run waits for the slot");
    let third = trigger(&mut client, "sleepy", &[], false)
        .await
        .expect_err("the queue is full");
    assert_eq!(third.code(), Code::ResourceExhausted, "{third:?}");

    // Cancelling the queued run finishes it without it ever starting.
    client
        .cancel(pb::CancelRequest {
            run_id: second.run_id.clone(),
        })
        .await
        .expect("cancel queued");
    let events = watch_all(&mut client, &second.run_id).await;
    let kinds: Vec<pb::EventKind> = events.iter().map(kind).collect();
    assert_eq!(
        kinds,
        [pb::EventKind::RunQueued, pb::EventKind::RunFinished],
        "{events:?}"
    );
    assert_eq!(events[1].status, "cancelled");
    client
        .cancel(pb::CancelRequest {
            run_id: first.run_id.clone(),
        })
        .await
        .expect("cancel running");
    let events = watch_all(&mut client, &first.run_id).await;
    assert_eq!(events.last().map(|e| e.status.as_str()), Some("cancelled"));
}

#[tokio::test]
async fn runs_reading_a_fifo_are_cancelled_and_free_their_slots() {
    // Two runs that keep reading a FIFO in a granted directory. When `open` blocked on it, they
    // held both run slots for good and Cancel answered while they kept running.
    let agent = Agent::start("max-concurrent-runs = 2\nmax-queued-runs = 1");
    let fifo = agent.scratch().join("pipe");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    agent.runbook(
        "fifo",
        &format!(
            "name = \"fifo\"\n[[steps]]\nid = \"read\"\nplugin = \"hostile\"\naction = \"check\"\n\
             config = {{ attack = \"read-loop\", path = {:?} }}\n",
            fifo.display().to_string()
        ),
    );
    let mut client = agent.runbooks(Role::Operator).await;
    // Only a guard against hanging the suite: the runs end as soon as they are cancelled.
    let ended = tokio::time::timeout(Duration::from_secs(60), async {
        let mut runs = Vec::new();
        for _ in 0..2 {
            let run = trigger(&mut client, "fifo", &[], false)
                .await
                .expect("trigger");
            assert!(!run.queued, "a slot is free");
            let mut stream = client
                .watch(pb::WatchRequest {
                    run_id: run.run_id.clone(),
                })
                .await
                .expect("watch")
                .into_inner();
            wait_for(&mut stream, |e| kind(e) == pb::EventKind::StepStarted).await;
            runs.push((run, stream));
        }
        for (run, stream) in &mut runs {
            let cancelled = client
                .cancel(pb::CancelRequest {
                    run_id: run.run_id.clone(),
                })
                .await
                .expect("cancel")
                .into_inner();
            assert!(cancelled.cancelled);
            let finished = wait_for(stream, |e| kind(e) == pb::EventKind::RunFinished).await;
            assert_eq!(finished.status, "cancelled");
        }
        let third = trigger(&mut client, "fifo", &[], false)
            .await
            .expect("third");
        // It starts: the cancelled runs gave their slots back (it may wait the moment between
        // a run's last event and its slot's release).
        let mut stream = client
            .watch(pb::WatchRequest {
                run_id: third.run_id.clone(),
            })
            .await
            .expect("watch")
            .into_inner();
        wait_for(&mut stream, |e| kind(e) == pb::EventKind::StepStarted).await;
        client
            .cancel(pb::CancelRequest {
                run_id: third.run_id.clone(),
            })
            .await
            .expect("cancel third");
        let finished = wait_for(&mut stream, |e| kind(e) == pb::EventKind::RunFinished).await;
        assert_eq!(finished.status, "cancelled");
    })
    .await;
    if ended.is_err() {
        // Release whatever is blocked opening the FIFO (read-write opens never block), then fail.
        let _ = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo);
        panic!("runs reading a FIFO did not end when cancelled");
    }
}

#[tokio::test]
async fn plugins_install_list_and_remove_over_the_api() {
    // A publisher key this agent trusts, and a bundle it signed.
    let keys = tempfile::tempdir().expect("tempdir");
    let key = keys.path().join("publisher");
    let warden = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_warden"))
            .arg("--data-dir")
            .arg(keys.path().join("data"))
            .args(args)
            .output()
            .expect("warden runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    warden(&["key", "generate", "--out", &key.display().to_string()]);
    let public = std::fs::read_to_string(key.with_extension("pub")).expect("public key");
    let bundle = keys.path().join("disk-usage.wbundle");
    warden(&[
        "plugin",
        "pack",
        &built("disk-usage").display().to_string(),
        "--key",
        &key.with_extension("key").display().to_string(),
        "--out",
        &bundle.display().to_string(),
    ]);
    let agent = Agent::start_full(
        "",
        &[],
        "",
        &format!(
            "[[trust.keys]]\nname = \"publisher\"\npublic-key = {:?}\n",
            public.trim()
        ),
    );
    let bytes = std::fs::read(&bundle).expect("bundle");

    let mut operator = agent.plugins(Role::Operator).await;
    let denied = operator
        .install(pb::InstallPluginRequest {
            bundle: bytes.clone(),
        })
        .await
        .expect_err("operators do not install");
    assert_eq!(denied.code(), Code::PermissionDenied);

    let mut admin = agent.plugins(Role::Admin).await;
    let garbage = admin
        .install(pb::InstallPluginRequest {
            bundle: b"not a bundle".to_vec(),
        })
        .await
        .expect_err("garbage");
    assert_eq!(garbage.code(), Code::InvalidArgument, "{garbage:?}");
    let installed = admin
        .install(pb::InstallPluginRequest { bundle: bytes })
        .await
        .expect("install")
        .into_inner();
    assert_eq!(installed.plugin.expect("plugin").name, "disk-usage");
    assert_eq!(installed.signers, ["publisher"]);
    let list = agent
        .plugins(Role::Viewer)
        .await
        .list(pb::ListPluginsRequest {})
        .await
        .expect("list")
        .into_inner();
    assert!(list.plugins.iter().any(|p| p.name == "disk-usage"));
    let removed = admin
        .remove(pb::RemovePluginRequest {
            name: "disk-usage".into(),
        })
        .await
        .expect("remove")
        .into_inner();
    assert!(removed.removed);
    let missing = agent
        .plugins(Role::Viewer)
        .await
        .inspect(pb::InspectPluginRequest {
            name: "disk-usage".into(),
        })
        .await
        .expect_err("removed");
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn sigterm_mid_run_cancels_after_the_grace_period_and_closes_the_audit_log() {
    let mut agent = Agent::spawned("shutdown-grace-secs = 1", &[], "");
    agent.runbook("sleepy", &sleepy_runbook("43.75"));
    let mut client = agent.runbooks(Role::Operator).await;
    let (started, _stream) = start_sleepy(&mut client).await;
    let status = agent.terminate();
    assert!(status.success(), "the agent exits cleanly: {status:?}");
    assert_eq!(sleeping("43.75"), 0, "the running step's child was killed");
    let out = agent.warden(&["runs", "show", &started.run_id, "--json"]);
    let shown: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{out:?}"));
    assert_eq!(shown["status"], "cancelled", "{shown}");
    let out = agent.warden(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let log = agent.audit_log();
    assert!(log.contains("\"agent.stopped\""));
    assert!(log.contains("\"signal\":\"SIGTERM\""));
}

#[tokio::test]
async fn the_python_client_triggers_watches_and_lists() {
    let python = repo().join("target/polyglot/grpc-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: `cargo xtask test` creates it (pip install -r examples/noc-client/requirements.txt)",
        python.display()
    );
    let agent = Agent::start("");
    agent.runbook("trace", TRACE_RUNBOOK);
    let trace = agent.scratch().join("from-python.txt");
    let client = repo().join("examples/noc-client/warden_client.py");
    let run_at = |addr: &str, args: &[&str], role: Role| {
        Command::new(&python)
            .arg(&client)
            .args(args)
            .env("WARDEN_ADDR", addr)
            .env("WARDEN_TOKEN", token(role))
            .output()
            .expect("python runs")
    };
    let run = |args: &[&str], role: Role| run_at(&agent.addr, args, role);
    let path_param = format!("path={}", trace.display());
    let out = run(
        &["trigger", "trace", "--param", &path_param],
        Role::Operator,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"kind\": \"RUN_FINISHED\""), "{stdout}");
    assert_eq!(std::fs::read_to_string(&trace).expect("trace"), "applied");
    let out = run(&["list", "--status", "succeeded"], Role::Viewer);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    // The address as `warden ctl` takes it works too.
    let http = format!("http://{}", agent.addr);
    let out = run_at(&http, &["list", "--status", "succeeded"], Role::Viewer);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    let out = run(&["trigger", "trace", "--param", &path_param], Role::Viewer);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PERMISSION_DENIED"));
}

async fn agent_events(agent: &Agent) -> tonic::Streaming<pb::AgentEvent> {
    pb::agent_client::AgentClient::with_interceptor(
        agent.channel().await,
        bearer(token(Role::Viewer)),
    )
    .watch_events(pb::WatchEventsRequest {})
    .await
    .expect("watch events")
    .into_inner()
}

const TRACE_ONLY: &str = r#"
name = "trace-only"
[params.path]
type = "string"

[[steps]]
id = "trace"
plugin = "tracer"
action = "apply"
config = { path = "${params.path}" }
"#;

#[tokio::test]
async fn a_schedule_fires_a_real_run_and_a_maintenance_window_refuses_another() {
    let agent = Agent::start_with(
        "",
        &[("trace-only", TRACE_ONLY)],
        r#"
[[maintenance-window]]
name = "new-year"
cron = "0 0 1 1 *"
duration = "10m"

[[schedule]]
name = "every-second"
runbook = "runbooks/trace-only.toml"
cron = "* * * * * *"
params = { path = "{scratch}/scheduled.txt" }

[[schedule]]
name = "patching"
runbook = "runbooks/trace-only.toml"
cron = "* * * * * *"
maintenance = true
expected-duration = "5m"
params = { path = "{scratch}/patched.txt" }
"#,
    );
    let mut events = agent_events(&agent).await;
    let fired = wait_for(&mut events, |e| {
        e.kind == "schedule-fired" && e.subject == "every-second"
    })
    .await;
    assert!(fired.detail_json.contains("every-second"));
    let finished = wait_for(&mut events, |e| {
        e.kind == "run.finished" && e.detail_json.contains("schedule:every-second")
    })
    .await;
    assert!(finished.message.ends_with("succeeded"), "{finished:?}");
    assert_eq!(
        std::fs::read_to_string(agent.scratch().join("scheduled.txt")).expect("written"),
        "applied"
    );
    let skipped = wait_for(&mut events, |e| {
        e.kind == "schedule-skipped" && e.subject == "patching"
    })
    .await;
    assert!(skipped.detail_json.contains("window"), "{skipped:?}");
    assert!(!agent.scratch().join("patched.txt").exists());
    let log = agent.audit_log();
    assert!(log.contains("\"automation.schedule-fired\""));
    assert!(log.contains("\"automation.schedule-skipped\""));
}

#[tokio::test]
async fn a_failing_monitor_remediates_verifies_escalates_and_is_reported() {
    // Any mounted disk is more than 0% used: the check fails every time, so the remediation
    // (a real runbook run) cannot fix it, verification fails, and the incident escalates.
    let agent = Agent::start_with(
        "",
        &[("trace-only", TRACE_ONLY)],
        r#"
[[monitor]]
name = "disk-zero"
plugin = "disk-usage"
config = { warning_percent = 0, critical_percent = 100 }
interval = "1s"
failures-to-trigger = 2

[monitor.remediation]
runbook = "runbooks/trace-only.toml"
params = { path = "{scratch}/remediated.txt" }
verify-delay = "1s"

[monitor.escalation]
max-attempts = 1
"#,
    );
    let mut events = agent_events(&agent).await;
    let opened = wait_for(&mut events, |e| e.kind == "incident-opened").await;
    assert!(opened.detail_json.contains("disk-zero"), "{opened:?}");
    wait_for(&mut events, |e| e.kind == "remediation-started").await;
    let done = wait_for(&mut events, |e| e.kind == "remediation-finished").await;
    assert!(done.detail_json.contains("\"succeeded\":true"), "{done:?}");
    assert_eq!(
        std::fs::read_to_string(agent.scratch().join("remediated.txt")).expect("remediated"),
        "applied"
    );
    let escalated = wait_for(&mut events, |e| e.kind == "escalated").await;
    assert!(escalated.detail_json.contains("disk-zero"), "{escalated:?}");

    let report = pb::agent_client::AgentClient::with_interceptor(
        agent.channel().await,
        bearer(token(Role::Viewer)),
    )
    .report(pb::ReportRequest {
        from_ms: 0,
        to_ms: 0,
        monitor: "disk-zero".into(),
    })
    .await
    .expect("report")
    .into_inner();
    assert_eq!(report.monitors.len(), 1, "{report:?}");
    let m = &report.monitors[0];
    assert_eq!((m.incidents, m.escalated, m.resolved), (1, 1, 0), "{m:?}");
    assert!(
        m.mean_time_to_detect_ms >= 1000,
        "two checks 1 s apart: {m:?}"
    );
    let log = agent.audit_log();
    assert!(log.contains("\"automation.escalated\""));
    assert!(log.contains("\"requested_by\":\"monitor:disk-zero\""));
}

#[tokio::test]
async fn a_monitor_check_cannot_change_the_machine() {
    // A check that writes a granted file: the monitor's check is a `check`, so the write is
    // refused, audited as a denial, and the file never appears.
    let agent = Agent::start_with(
        "",
        &[],
        r#"
[[monitor]]
name = "acting-check"
plugin = "hostile"
config = { attack = "write", path = "{scratch}/acted", contents = "acted" }
interval = "1s"
"#,
    );
    let mut events = agent_events(&agent).await;
    // A check that succeeds (one that could act) emits nothing: the guard only keeps the suite
    // from hanging then, far beyond the 1 s interval.
    let failed = tokio::time::timeout(
        Duration::from_secs(60),
        wait_for(&mut events, |e| e.kind == "monitor-check-failed"),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "no check failed; the check wrote its file: {}",
            agent.scratch().join("acted").exists()
        )
    });
    assert!(
        failed.detail_json.contains("[denied]") && failed.detail_json.contains("during `check`"),
        "{failed:?}"
    );
    assert!(
        !agent.scratch().join("acted").exists(),
        "a monitor's check wrote a file"
    );
    // The check's records were queued when its run ended; the event is published after its own
    // record was appended durably, which writes everything queued before it.
    let log = agent.audit_log();
    let audited = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["data"]["use"]["capability"] == "fs-write")
        .unwrap_or_else(|| panic!("the use is not audited:\n{log}"));
    assert_eq!(audited["data"]["use"]["allowed"], false, "{audited}");
    assert!(
        audited["data"]["use"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("during `check`")),
        "{audited}"
    );
    assert_eq!(
        audited["data"]["context"]["monitor"], "acting-check",
        "{audited}"
    );
}

#[tokio::test]
async fn after_a_crash_the_run_in_flight_is_interrupted_and_schedules_do_not_refire() {
    let mut agent = Agent::spawned(
        "",
        &[("trace-only", TRACE_ONLY)],
        r#"
[[schedule]]
name = "hourly"
runbook = "runbooks/trace-only.toml"
cron = "0 * * * *"
params = { path = "{scratch}/hourly.txt" }
"#,
    );
    agent.runbook("sleepy", &sleepy_runbook("6.125"));
    let mut client = agent.runbooks(Role::Operator).await;
    let (started, _stream) = start_sleepy(&mut client).await;
    agent.crash_and_restart();
    let mut client = agent.runbooks(Role::Viewer).await;
    let run = client
        .get_run(pb::GetRunRequest {
            run_id: started.run_id.clone(),
        })
        .await
        .expect("the run survives the crash")
        .into_inner();
    assert_eq!(run.status, "interrupted", "{run:?}");
    // A watcher of the old run is told how it ended, from the history.
    let events = watch_all(&mut client, &started.run_id).await;
    assert_eq!(
        events.last().map(|e| e.status.as_str()),
        Some("interrupted")
    );
    // The hourly schedule is back and idle: it did not fire at start.
    assert!(!agent.scratch().join("hourly.txt").exists());
    let log = agent.audit_log();
    assert_eq!(log.matches("\"agent.started\"").count(), 2);
}

#[tokio::test]
async fn tls_serves_the_api_to_a_client_that_trusts_the_certificate() {
    let certs = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (
        certs.path().join("agent.crt"),
        certs.path().join("agent.key"),
    );
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        // A leaf, not a CA: the client trusts this very certificate.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (needed to make a test certificate) runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let agent = Agent::start(&format!(
        "[api.tls]\ncert = {:?}\nkey = {:?}\n",
        cert.display().to_string(),
        key.display().to_string()
    ));
    let port = agent.addr.rsplit(':').next().expect("port");
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(
            std::fs::read(&cert).expect("cert"),
        ))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://localhost:{port}"))
        .expect("uri")
        .tls_config(tls)
        .expect("tls config")
        .connect()
        .await
        .expect("TLS connect");
    let version =
        pb::agent_client::AgentClient::with_interceptor(channel, bearer(token(Role::Viewer)))
            .version(pb::VersionRequest {})
            .await
            .expect("version over TLS")
            .into_inner();
    assert_eq!(version.version, env!("CARGO_PKG_VERSION"));
    // Plain text to a TLS port does not get an answer.
    let plain = Channel::from_shared(format!("http://{}", agent.addr))
        .expect("uri")
        .connect()
        .await;
    if let Ok(plain) = plain {
        let err =
            pb::agent_client::AgentClient::with_interceptor(plain, bearer(token(Role::Viewer)))
                .version(pb::VersionRequest {})
                .await
                .expect_err("plain text is not served");
        assert_ne!(err.code(), Code::Ok);
    }
}

#[tokio::test]
async fn warden_ctl_triggers_watches_lists_and_reports_errors() {
    let agent = Agent::start("");
    agent.runbook("trace", TRACE_RUNBOOK);
    let trace = agent.scratch().join("from-ctl.txt");
    let ctl = |role: Role, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(["ctl", "--addr", &format!("http://{}", agent.addr)])
            .args(args)
            .env("WARDEN_TOKEN", token(role))
            .output()
            .expect("warden ctl runs")
    };
    let path_param = format!("path={}", trace.display());
    let out = ctl(
        Role::Operator,
        &["trigger", "trace", "--param", &path_param],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("[info] call"),
        "plugin logs are shown: {stdout}"
    );
    assert!(stdout.contains(": succeeded"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&trace).expect("trace"), "applied");

    let out = ctl(Role::Viewer, &["--json", "runs", "--status", "succeeded"]);
    assert!(out.status.success());
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(1), "{runs}");

    // One `--json` shape whether a run is read from the history beside the agent or from its
    // API: the same keys, JSON values (not JSON in strings), `null` for "none".
    let json = |out: std::process::Output| -> serde_json::Value {
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("json: {out:?}"))
    };
    let keys = |v: &serde_json::Value| -> Vec<String> {
        v.as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    let local = json(agent.warden(&["--json", "runs", "list"]));
    assert_eq!(keys(&local), keys(&runs));
    assert_eq!(
        keys(&local["runs"][0]),
        keys(&runs["runs"][0]),
        "{local} {runs}"
    );
    let id = runs["runs"][0]["id"]
        .as_str()
        .expect("a run id")
        .to_string();
    let remote = json(ctl(Role::Viewer, &["--json", "show", &id]));
    let local = json(agent.warden(&["--json", "runs", "show", &id]));
    assert_eq!(keys(&local), keys(&remote), "{local} {remote}");
    assert_eq!(keys(&local["steps"][0]), keys(&remote["steps"][0]));
    for field in [
        "id",
        "runbook",
        "status",
        "params",
        "started_ms",
        "ended_ms",
    ] {
        assert_eq!(local[field], remote[field], "{field}: {local} {remote}");
    }
    assert_eq!(remote["params"]["path"], trace.display().to_string());
    assert_eq!(remote["requested_by"], "operator-olga", "{remote}");

    // The address without a scheme, as the Python client takes it; a table for people.
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["ctl", "runs"])
        .env("WARDEN_ADDR", &agent.addr)
        .env("WARDEN_TOKEN", token(Role::Viewer))
        .output()
        .expect("warden ctl runs");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "RUN", "STATUS", "RUNBOOK", "ORIGIN", "DRY-RUN", "STARTED", "TOOK"
        ],
        "{table}"
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    // ORIGIN: the name of the token that triggered it.
    assert_eq!(
        row[1..5],
        ["succeeded", "trace", "operator-olga", "no"],
        "{table}"
    );
    assert!(
        row[5].ends_with('Z') && row[5].contains('T'),
        "STARTED is RFC 3339: {table}"
    );
    // Columns start where their header does.
    let column = |line: &str, word: &str| line.find(word).expect("column");
    assert_eq!(
        column(lines[0], "RUNBOOK"),
        column(lines[1], "trace"),
        "{table}"
    );

    // Plugins: a header, and columns that stay aligned past `check-remediation`.
    let out = ctl(Role::Viewer, &["plugins"]);
    let shown = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "VERSION", "ROLE", "SHA256", "INSTALLED"],
        "{shown}"
    );
    let hostile = lines
        .iter()
        .find(|l| l.contains("check-remediation"))
        .unwrap_or_else(|| panic!("{shown}"));
    let sha = lines[0].find("SHA256").expect("header");
    for line in [hostile, &lines[1]] {
        let after_role = line.split_whitespace().nth(3).expect("sha256");
        assert_eq!(line.find(after_role), Some(sha), "{shown}");
    }

    // An unknown status is a usage error naming the valid ones, not an empty list.
    let out = ctl(Role::Viewer, &["runs", "--status", "bogus"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("bogus") && err.contains("succeeded"), "{err}");

    let out = ctl(Role::Viewer, &["trigger", "trace", "--param", &path_param]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("PermissionDenied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args([
            "ctl",
            "--addr",
            &format!("http://{}", agent.addr),
            "version",
        ])
        .env_remove("WARDEN_TOKEN")
        .output()
        .expect("warden ctl runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no token"));
}

async fn agent_client(agent: &Agent) -> pb::agent_client::AgentClient<Authed> {
    pb::agent_client::AgentClient::with_interceptor(
        agent.channel().await,
        bearer(token(Role::Viewer)),
    )
}

/// How long a test waits for an awaited event before it calls it missing (not a timing
/// assertion: the events come within about a second; this only keeps a broken agent from
/// hanging the suite).
const EVENT_DEADLINE: Duration = Duration::from_secs(60);

async fn awaited_event(
    stream: &mut tonic::Streaming<pb::AgentEvent>,
    kind: &str,
) -> pb::AgentEvent {
    tokio::time::timeout(EVENT_DEADLINE, wait_for(stream, |e| e.kind == kind))
        .await
        .unwrap_or_else(|_| panic!("no `{kind}` event"))
}

/// Issue 13, item 4, in the agent: with its data dir on a real full filesystem, a record accepted
/// before the failure stays queued, the NOC is told (an `audit.failing` event; every call is
/// answered UNAVAILABLE), and once space returns the queued record is written, an
/// `audit.recovered` record says how many were refused, calls are served again and the chain
/// verifies.
#[tokio::test]
async fn on_a_full_disk_the_agent_reports_it_refuses_calls_and_recovers_with_an_intact_chain() {
    let mut agent = Agent::start_on_tmpfs("");
    let mut events = agent_events(&agent).await;
    let mut client = agent_client(&agent).await;
    // Writes every queued record (this call's own too): nothing is pending when the disk fills.
    client
        .audit_head(pb::AuditHeadRequest {})
        .await
        .expect("head");
    let versions = |log: &str| log.matches("/warden.v1.Agent/Version").count();
    let before = versions(&agent.audit_log());

    let disk = agent.disk.as_ref().expect("tmpfs");
    disk.fill();
    client
        .version(pb::VersionRequest {})
        .await
        .expect("accepted: its record is queued before the write fails");
    let failing = awaited_event(&mut events, "audit.failing").await;
    assert!(failing.message.contains("No space left"), "{failing:?}");
    let refused = client
        .version(pb::VersionRequest {})
        .await
        .expect_err("no call is served while nothing can be audited");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");

    disk.free();
    let recovered = awaited_event(&mut events, "audit.recovered").await;
    assert!(
        recovered.detail_json.contains("\"error\":null"),
        "{recovered:?}"
    );
    client
        .version(pb::VersionRequest {})
        .await
        .expect("served again");
    assert!(agent.terminate().success());
    let out = agent.warden(&["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = agent.audit_log();
    assert_eq!(
        versions(&log),
        before + 2,
        "the queued call and the one after recovery are recorded; the refused one is not"
    );
    let recovered: serde_json::Value = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("record"))
        .find(|r| r["event"] == "audit.recovered")
        .expect("an audit.recovered record");
    assert_eq!(recovered["data"]["refused"], 1, "{recovered}");
}

/// A `warden key generate` key pair in its own directory, outside any data dir.
fn checkpoint_key(keys: &Path, name: &str) -> (PathBuf, PathBuf) {
    let prefix = keys.join(name);
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["key", "generate", "--out"])
        .arg(&prefix)
        .output()
        .expect("warden key generate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (prefix.with_extension("key"), prefix.with_extension("pub"))
}

/// Issue 13, item 12: the head fetched over the API (`warden ctl audit-head`, a viewer) and the
/// signed checkpoints each catch a re-seal (the whole log and head.json rewritten consistently)
/// that a plain `audit verify` cannot.
#[tokio::test]
async fn a_saved_head_and_signed_checkpoints_catch_a_reseal_that_plain_verify_passes() {
    let keys = tempfile::tempdir().expect("keys");
    let (secret, public) = checkpoint_key(keys.path(), "checkpoint");
    let (forger_secret, forger_public) = checkpoint_key(keys.path(), "forger");
    let mut agent = Agent::start_with(
        "",
        &[],
        &format!(
            "[audit]\ncheckpoint-key = {:?}\n",
            secret.display().to_string()
        ),
    );
    let ctl = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args([
            "--json",
            "ctl",
            "--addr",
            &format!("http://{}", agent.addr),
            "audit-head",
        ])
        .env("WARDEN_TOKEN", token(Role::Viewer))
        .output()
        .expect("warden ctl audit-head");
    assert!(
        ctl.status.success(),
        "{}",
        String::from_utf8_lossy(&ctl.stderr)
    );
    let saved = agent.root().join("saved-head.json");
    std::fs::write(&saved, &ctl.stdout).expect("save the head off the machine");
    let head: serde_json::Value = serde_json::from_slice(&ctl.stdout).expect("json head");
    let saved_seq = head["seq"].as_u64().expect("seq");
    assert!(agent.terminate().success());

    let verify = |args: &[&str]| {
        let mut all = vec!["audit", "verify"];
        all.extend_from_slice(args);
        agent.warden(&all)
    };
    let (saved, public, forger_public) = (
        saved.display().to_string(),
        public.display().to_string(),
        forger_public.display().to_string(),
    );
    let out = verify(&["--against", &saved, "--checkpoint-pub", &public]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("signed checkpoint(s) verify"), "{stdout}");
    let out = verify(&["--checkpoint-pub", &forger_public]);
    assert!(
        !out.status.success(),
        "another key's public half does not vouch for them"
    );

    // The re-seal: the first plugin install is rewritten, everything after it re-linked, each
    // checkpoint re-signed for the new chain with the forger's key, and head.json re-made.
    let data = agent.root().join("data");
    let mut records = reseal::records(&data);
    let at = records
        .iter()
        .position(|r| r["event"] == "plugin.installed")
        .expect("an install");
    assert!((at as u64) < saved_seq);
    records[at]["data"]["unsigned"] = serde_json::json!(false);
    let forger = warden_audit::CheckpointSigner::new(
        warden_core::keys::load_secret(&forger_secret).expect("forger's key"),
        Duration::from_secs(60),
    );
    let mut resigned = 0;
    reseal::reseal(&data, records.clone(), |r| {
        if r["event"] == "audit.checkpoint" {
            let seq = r["seq"].as_u64().expect("seq");
            let prev = r["prev"].as_str().expect("prev").to_string();
            let at_ms = r["at_ms"].as_u64().expect("at_ms");
            r["data"] = serde_json::to_value(forger.sign(seq - 1, &prev, at_ms)).expect("data");
            resigned += 1;
        }
    });
    assert!(resigned >= 2, "checkpoints at start and at stop");
    assert!(
        verify(&[]).status.success(),
        "the documented limit: a consistent re-seal passes the chain and anchor checks"
    );
    assert!(
        verify(&["--checkpoint-pub", &forger_public])
            .status
            .success(),
        "the forged checkpoints are well-formed: they verify under the forger's own key"
    );
    let out = verify(&["--checkpoint-pub", &public]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("checkpoint signature does not verify"),
        "{err}"
    );
    let out = verify(&["--against", &saved]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("record {saved_seq} is not the one saved earlier")),
        "{err}"
    );

    // Re-sealed without any checkpoint: their absence shows.
    records.retain(|r| r["event"] != "audit.checkpoint");
    reseal::reseal(&data, records, |_| {});
    assert!(verify(&[]).status.success());
    let err = String::from_utf8_lossy(&verify(&["--checkpoint-pub", &public]).stderr).into_owned();
    assert!(err.contains("no signed checkpoint"), "{err}");
}

/// A Trigger of a runbook whose expressions are hostile is answered `INVALID_ARGUMENT` naming the
/// bound, and the agent that parsed them stays up: a 100 KB operator chain used to overflow the
/// stack of the thread answering the Trigger and abort the whole agent.
#[tokio::test]
async fn a_trigger_with_hostile_expressions_is_invalid_and_the_agent_stays_up() {
    let step = |field: &str| {
        format!(
            "name = \"hostile\"\n[[steps]]\nid = \"a\"\nplugin = \"calls\"\naction = \"check\"\n{field}\n"
        )
    };
    let small = |n: usize| {
        let items: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        format!("[{}]", items.join(","))
    };
    let runbooks = [
        (
            "chain",
            step(&format!(
                "config = {{ kind = \"log\" }}\nwhen = \"1{} > 0\"",
                "+1".repeat(50_000)
            )),
            "over the limit of 4096 bytes",
        ),
        (
            "deep-template",
            step(&format!(
                "config = {{ kind = \"log\", calls = \"${{{}1{}}}\" }}",
                "(".repeat(40),
                ")".repeat(40)
            )),
            "nests brackets 40 deep",
        ),
        (
            "huge-loop",
            step(&format!(
                "config = {{ kind = \"log\" }}\nwhen = \"{l}.all(a, {l}.all(b, {l}.all(c, a < b || c > a)))\"",
                l = small(200)
            )),
            "even with empty inputs",
        ),
    ];
    let files: Vec<(&str, &str)> = runbooks
        .iter()
        .map(|(name, text, _)| (*name, text.as_str()))
        .collect();
    let agent = Agent::start_with("", &files, "");
    let mut client = agent.runbooks(Role::Operator).await;
    for (name, _, bound) in &runbooks {
        let refused = trigger(&mut client, name, &[], false)
            .await
            .expect_err("a hostile runbook is refused");
        assert_eq!(refused.code(), Code::InvalidArgument, "{name}: {refused:?}");
        assert!(refused.message().contains(bound), "{name}: {refused:?}");
    }
    let version = pb::agent_client::AgentClient::with_interceptor(
        agent.channel().await,
        bearer(token(Role::Viewer)),
    )
    .version(pb::VersionRequest {})
    .await
    .expect("the agent still answers")
    .into_inner();
    assert_eq!(version.version, env!("CARGO_PKG_VERSION"));
}

/// A check returning tens of thousands of metrics (1.6 MB of output, over this agent's 1 MiB
/// message size) is stored cut down and flagged, and `GetRun` of its run still answers: the
/// whole output used to be stored, and every `GetRun` of the run failed for good.
#[tokio::test]
async fn a_huge_output_is_stored_capped_and_get_run_still_answers() {
    let many = "name = \"many\"\n[[steps]]\nid = \"many\"\nplugin = \"hostile\"\naction = \"check\"\n\
                config = { attack = \"metrics\", count = 40000 }\n";
    let agent = Agent::start_with("max-message-bytes = 1048576", &[("many", many)], "");
    let mut client = agent.runbooks(Role::Operator).await;
    let started = trigger(&mut client, "many", &[], false)
        .await
        .expect("trigger");
    let events = watch_all(&mut client, &started.run_id).await;
    assert_eq!(events.last().map(|e| e.status.as_str()), Some("succeeded"));

    let run = client
        .get_run(pb::GetRunRequest {
            run_id: started.run_id.clone(),
        })
        .await
        .expect("GetRun answers")
        .into_inner();
    let step = &run.steps[0];
    assert!(step.output_truncated, "the stored output says it is cut");
    assert!(
        step.output_json.len() <= warden_history::MAX_STEP_OUTPUT_BYTES,
        "{} bytes stored",
        step.output_json.len()
    );
    let output: serde_json::Value = serde_json::from_str(&step.output_json).expect("still JSON");
    assert_eq!(output["ok"], true);
    assert_eq!(output["output"]["value"]["summary"], "many metrics");
    assert!(
        output["output"]["value"]["metrics"]
            .as_array()
            .is_some_and(|m| !m.is_empty())
    );

    let shown = agent.warden(&["runs", "show", &started.run_id]);
    assert!(shown.status.success());
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains("output truncated"),
        "{}",
        String::from_utf8_lossy(&shown.stdout)
    );
}

/// A request larger than `max-message-bytes` is answered `RESOURCE_EXHAUSTED`, as docs/API.md
/// says (tonic's own answer is `OUT_OF_RANGE`), and the agent goes on serving.
#[tokio::test]
async fn an_oversized_request_is_resource_exhausted() {
    let agent = Agent::start("max-message-bytes = 1048576");
    let mut client = agent.runbooks(Role::Operator).await;
    let big = "x".repeat(2 << 20);
    let refused = trigger(&mut client, "anything", &[("p", &big)], false)
        .await
        .expect_err("too large");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("max-message-bytes"),
        "{refused:?}"
    );
    let missing = trigger(&mut client, "anything", &[], false)
        .await
        .expect_err("no such runbook");
    assert_eq!(
        missing.code(),
        Code::NotFound,
        "the agent still serves: {missing:?}"
    );
}

async fn open_events(
    agent: &Agent,
    role: Role,
) -> Result<tonic::Streaming<pb::AgentEvent>, tonic::Status> {
    pb::agent_client::AgentClient::with_interceptor(agent.channel().await, bearer(token(role)))
        .watch_events(pb::WatchEventsRequest {})
        .await
        .map(|r| r.into_inner())
}

/// Streams are capped per token and in all, a stream over either cap is refused
/// `RESOURCE_EXHAUSTED` naming it, and a slot comes back when its stream ends or its client
/// drops it. The agent used to accept any number of streams from one token.
#[tokio::test]
async fn streams_are_capped_per_token_and_in_all_and_a_closed_one_frees_its_slot() {
    let agent = Agent::start("max-streams-per-token = 2\nmax-streams = 3");
    agent.runbook("sleepy", &sleepy_runbook("44.5"));
    let mut operator = agent.runbooks(Role::Operator).await;
    // The operator's first stream watches a run, its second the agent's events.
    let (started, mut run_stream) = start_sleepy(&mut operator).await;
    let _events = open_events(&agent, Role::Operator)
        .await
        .expect("a second stream");
    let third = open_events(&agent, Role::Operator)
        .await
        .expect_err("a third stream of one token");
    assert_eq!(third.code(), Code::ResourceExhausted, "{third:?}");
    assert!(
        third.message().contains("max-streams-per-token"),
        "{third:?}"
    );

    // Another token has slots of its own, up to the agent's total.
    let viewer = open_events(&agent, Role::Viewer)
        .await
        .expect("another token's stream");
    let over = open_events(&agent, Role::Admin)
        .await
        .expect_err("a fourth stream in all");
    assert_eq!(over.code(), Code::ResourceExhausted, "{over:?}");
    assert!(over.message().contains("api.max-streams)"), "{over:?}");

    // A stream that ends gives its slot back before its end reaches the client.
    operator
        .cancel(pb::CancelRequest {
            run_id: started.run_id.clone(),
        })
        .await
        .expect("cancel");
    wait_for(&mut run_stream, |e| kind(e) == pb::EventKind::RunFinished).await;
    assert!(run_stream.message().await.expect("end").is_none());
    let _again = open_events(&agent, Role::Operator)
        .await
        .expect("the ended stream's slot is free again");

    // A stream its client drops gives its slot back once the agent sees the reset: no signal
    // reaches this client when that happens, so it asks again, a bounded number of times.
    drop(viewer);
    let mut reopened = None;
    for _ in 0..1000 {
        match open_events(&agent, Role::Admin).await {
            Ok(stream) => {
                reopened = Some(stream);
                break;
            }
            Err(s) if s.code() == Code::ResourceExhausted => tokio::task::yield_now().await,
            Err(s) => panic!("{s:?}"),
        }
    }
    assert!(
        reopened.is_some(),
        "the dropped stream's slot never came back"
    );
}

/// Threads of process `pid` now.
fn threads_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|dir| dir.count())
        .unwrap_or(0)
}

/// Threads of a `warden serve` besides its runtime's: the main thread, the audit log's flusher,
/// wasmtime's epoch ticker, and short-lived ones (a CEL parse runs on its own thread); a margin
/// that a pool growing by hundreds cannot hide in.
const OTHER_AGENT_THREADS: usize = 12;

const TINY_RUNBOOK: &str = r#"
name = "tiny"
[[steps]]
id = "talk"
plugin = "calls"
action = "check"
config = { kind = "log", calls = 1 }
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_triggers_stays_within_the_blocking_bound_and_every_run_finishes() {
    const BURST: usize = 1000;
    const CONNECTIONS: usize = 8;
    let api = format!("max-concurrent-runs = 4\nmax-queued-runs = {BURST}");
    let agent = Agent::spawned(&api, &[("tiny", TINY_RUNBOOK)], "");
    let Serving::Process(child) = &agent.serving else {
        panic!("spawned");
    };
    let pid = child.id();
    let config = warden_agent::daemon::config::AgentConfig::load(&agent.root().join("agent.toml"))
        .expect("config");
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let bound =
        workers + warden_agent::daemon::runtime::blocking_threads(&config) + OTHER_AGENT_THREADS;

    // The peak is measured, not waited for: sampling can only miss threads, never invent them.
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = std::thread::spawn({
        let sampling = sampling.clone();
        move || {
            let mut peak = 0;
            while sampling.load(std::sync::atomic::Ordering::SeqCst) {
                peak = peak.max(threads_of(pid));
                std::thread::sleep(Duration::from_millis(2));
            }
            peak
        }
    });
    let mut events = agent_events(&agent).await;
    let mut clients = Vec::new();
    for _ in 0..CONNECTIONS {
        clients.push(agent.runbooks(Role::Operator).await);
    }
    let mut burst = tokio::task::JoinSet::new();
    for i in 0..BURST {
        let mut client = clients[i % CONNECTIONS].clone();
        burst.spawn(async move { trigger(&mut client, "tiny", &[], false).await });
    }
    let mut accepted = std::collections::BTreeSet::new();
    while let Some(done) = burst.join_next().await {
        let run = done.expect("task").expect("every trigger is accepted");
        accepted.insert(run.run_id);
    }
    assert_eq!(accepted.len(), BURST);
    let mut finished = std::collections::BTreeSet::new();
    while finished.len() < BURST {
        let e = wait_for(&mut events, |e| e.kind == "run.finished").await;
        assert!(e.message.ends_with("succeeded"), "{e:?}");
        finished.insert(e.subject);
    }
    sampling.store(false, std::sync::atomic::Ordering::SeqCst);
    let peak = sampler.join().expect("sampler");
    assert_eq!(finished, accepted, "every accepted run finished");
    eprintln!("peak threads under the burst: {peak} (bound {bound})");
    assert!(
        peak <= bound,
        "the agent grew to {peak} threads under a burst of {BURST} triggers; the bound is {bound}"
    );
}

/// Send `signal` to a spawned agent.
fn signal_agent(agent: &Agent, signal: rustix::process::Signal) {
    let Serving::Process(child) = &agent.serving else {
        panic!("only a spawned agent gets signals: start it with Agent::spawned");
    };
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, signal).expect("signal");
}

#[tokio::test]
async fn sighup_reloads_the_tokens_and_the_agent_stays_up_until_sigterm() {
    let mut agent = Agent::spawned("", &[], "");
    let mut events = agent_events(&agent).await;
    let config_path = agent.root().join("agent.toml");
    let original = std::fs::read_to_string(&config_path).expect("config");
    let olga = token(Role::Operator);
    let (lou, lou_hash) = (
        "tok-late-lou-0123456789",
        token_hash("tok-late-lou-0123456789"),
    );
    std::fs::write(
        &config_path,
        original
            .replace("operator-olga", "late-lou")
            .replace(&token_hash(olga), &lou_hash),
    )
    .expect("rewrite");
    signal_agent(&agent, rustix::process::Signal::HUP);
    let reloaded = wait_for(&mut events, |e| e.kind.starts_with("agent.reload")).await;
    assert_eq!(reloaded.kind, "agent.reloaded", "{reloaded:?}");
    assert!(reloaded.message.contains("late-lou"), "{reloaded:?}");

    let list = |t: &'static str| {
        let channel = agent.channel();
        async move {
            pb::runbooks_client::RunbooksClient::with_interceptor(channel.await, bearer(t))
                .list_runs(pb::ListRunsRequest::default())
                .await
        }
    };
    list(lou).await.expect("the new token is accepted");
    let revoked = list(olga).await.expect_err("the removed token is refused");
    assert_eq!(revoked.code(), Code::Unauthenticated);

    // A file that does not load changes nothing.
    std::fs::write(&config_path, "[api]\nlisten = 7\n").expect("break");
    signal_agent(&agent, rustix::process::Signal::HUP);
    let failed = wait_for(&mut events, |e| e.kind.starts_with("agent.reload")).await;
    assert_eq!(failed.kind, "agent.reload-failed", "{failed:?}");
    list(lou).await.expect("the reloaded tokens stay");

    assert!(
        agent.terminate().success(),
        "SIGTERM still stops it cleanly"
    );
    let log = agent.audit_log();
    for kind in ["agent.reloaded", "agent.reload-failed", "agent.stopped"] {
        assert!(
            log.contains(&format!("\"{kind}\"")),
            "{kind} in the audit log"
        );
    }
}

#[tokio::test]
async fn the_agent_prunes_runs_older_than_the_retention_when_it_starts() {
    let mut agent = Agent::spawned(
        "",
        &[("tiny", TINY_RUNBOOK)],
        "[history]\nretention-days = 30\n",
    );
    let mut client = agent.runbooks(Role::Operator).await;
    let recent = trigger(&mut client, "tiny", &[], false)
        .await
        .expect("trigger");
    watch_all(&mut client, &recent.run_id).await;
    assert!(agent.terminate().success());

    // A run of 31 days ago, as the agent then left it.
    let day_ms = 24 * 60 * 60 * 1000;
    let old_ms = warden_history::now_ms() - 31 * day_ms;
    let db = rusqlite::Connection::open(agent.root().join("data/history.db")).expect("db");
    db.execute(
        "INSERT INTO runs (id, runbook, file, params, dry_run, status, pid, started_ms, ended_ms)
         VALUES ('ancient', 'tiny', 'tiny.toml', '{}', 0, 'succeeded', 1, ?1, ?1)",
        [old_ms],
    )
    .expect("old run");
    drop(db);

    agent.crash_and_restart();
    let mut client = agent.runbooks(Role::Viewer).await;
    let get = |id: &str| pb::GetRunRequest { run_id: id.into() };
    let gone = client.get_run(get("ancient")).await.expect_err("pruned");
    assert_eq!(gone.code(), Code::NotFound);
    client
        .get_run(get(&recent.run_id))
        .await
        .expect("a run within the retention stays");
    assert!(agent.audit_log().contains("\"history.pruned\""));
}

/// `[audit] retention-days`: at start the agent removes the sealed audit files whose last record
/// is older than the retention, after an `audit.pruned` record naming them; `warden audit
/// verify` accepts the shortened log and says what went.
#[tokio::test]
async fn the_agent_prunes_sealed_audit_files_older_than_the_retention_when_it_starts() {
    let mut agent = Agent::spawned(
        "",
        &[],
        "[audit]\nretention-days = 30\nrotate-bytes = 1048576\n",
    );
    assert!(agent.terminate().success());

    // The records as a rotation 40 days ago left them: sealed, the live file empty.
    let data = agent.root().join("data");
    let old_ms = warden_history::now_ms() - 40 * 24 * 60 * 60 * 1000;
    let records = reseal::records(&data);
    let last_seq = records.len();
    reseal::reseal(&data, records, |r| r["at_ms"] = serde_json::json!(old_ms));
    let audit = data.join("audit");
    std::fs::create_dir_all(audit.join("sealed")).expect("sealed dir");
    let sealed = audit.join(format!("sealed/audit-{last_seq:020}.log"));
    std::fs::rename(audit.join("audit.log"), &sealed).expect("seal");
    let anchor = std::fs::read_to_string(audit.join("head.json")).expect("anchor");
    let mut anchor: serde_json::Value = serde_json::from_str(&anchor).expect("json");
    anchor["len"] = serde_json::json!(0);
    std::fs::write(audit.join("head.json"), anchor.to_string()).expect("anchor");

    agent.crash_and_restart();
    assert!(
        !sealed.exists(),
        "older than the retention: removed at start"
    );
    let log = agent.audit_log();
    let first: serde_json::Value =
        serde_json::from_str(log.lines().next().expect("a record")).expect("record");
    assert_eq!(first["event"], "audit.rotated");
    assert!(log.contains("\"audit.pruned\""), "{log}");
    let out = agent.warden(&["audit", "verify"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("records 1-{last_seq} were removed by retention")),
        "{stdout}"
    );
    assert!(stdout.contains("in 1 file(s)"), "{stdout}");
}

#[tokio::test]
async fn a_drift_monitor_raises_an_incident_within_one_interval_of_an_unauthorized_change() {
    // The drift check runs the real inventory plugin each second. Its first inventory becomes
    // the baseline with one package more than the machine has (an authorized tool, say):
    // the next check finds it removed and opens an incident naming it.
    let agent = Agent::start_with(
        "",
        &[],
        r#"
[[monitor]]
name = "config-drift"
plugin = "builtin:drift"
config = { plugin = "inventory" }
interval = "1s"
failures-to-trigger = 1
fail-on = "critical"
"#,
    );
    let mut events = agent_events(&agent).await;
    let data = agent.root().join("data");
    let history = warden_history::History::open(&data).expect("history");
    crate::fleet::wait_until(|| history.inventory().is_ok_and(|i| !i.is_empty())).await;
    let mut facts = history.inventory().expect("inventory")[0].facts.clone();
    facts["value"]
        .as_array_mut()
        .expect("fact groups, as a discover step stores them")
        .push(serde_json::json!({"kind": "package", "facts": {"name": "approved-tool", "version": "1.0"}}));
    // Under a name of its own, so the monitor's next inventory cannot replace it first.
    history
        .record_inventory("golden", "0.1.0", &facts)
        .expect("record");
    let out = agent.warden(&[
        "baseline",
        "take",
        "--plugin",
        "golden",
        "--by",
        "ada",
        "--reason",
        "golden image",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let taken = std::time::Instant::now();

    let opened = tokio::time::timeout(
        Duration::from_secs(30),
        wait_for(&mut events, |e| e.kind == "incident-opened"),
    )
    .await
    .expect("an incident");
    let after = taken.elapsed();
    assert!(opened.detail_json.contains("config-drift"), "{opened:?}");
    assert!(
        opened
            .detail_json
            .contains("removed package approved-tool 1.0"),
        "the alert names the drift: {opened:?}"
    );
    // Within one interval of the check after the change (1 s), plus the check's own time.
    assert!(after < Duration::from_secs(10), "took {after:?}");
    eprintln!(
        "drift incident {after:?} after the baseline was taken: {}",
        opened.detail_json
    );

    // Accepting the change makes the next baseline version; the next check is healthy and
    // resolves the incident.
    let out = agent.warden(&[
        "baseline",
        "accept",
        "--by",
        "ada",
        "--reason",
        "tool retired CHG-7",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("baseline 2 recorded"));
    let resolved = tokio::time::timeout(
        Duration::from_secs(30),
        wait_for(&mut events, |e| e.kind == "incident-resolved"),
    )
    .await
    .expect("resolved once the change is accepted");
    assert!(
        resolved.detail_json.contains("config-drift"),
        "{resolved:?}"
    );

    let log = agent.audit_log();
    assert!(log.contains("\"automation.incident-opened\""), "{log}");
    assert_eq!(log.matches("\"baseline.recorded\"").count(), 2, "{log}");
    assert!(
        log.contains("\"check\":\"builtin:drift\""),
        "the sandboxed run is audited"
    );
}
