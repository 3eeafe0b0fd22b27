//! The fleet end to end, every part real: a nats-server 2.12.8 in operator mode (its config
//! written by `warden controller nats-config`), the controller as a `warden controller serve`
//! process, and agents as `warden serve` processes enrolled with `warden fleet enroll-token` +
//! `warden enroll`, in two tenants. Runbooks are installed signed by a publisher the agents
//! trust; runs are started and read through the NOC's command line (`warden fleet run`, `show`,
//! `runs`, `agents`), which is the controller's gRPC API.
//!
//! Every outcome is checked from both sides: the controller's API and its store (`fleet.db`:
//! one result per run and agent), and the agent's audit log (`run.queued` records naming
//! `requested_by: fleet:<run>`: how often it ran), its run history and its ledger. Waits poll
//! the API or the files with a bounded deadline ([`WAIT`]); nothing sleeps to synchronise.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use warden_agent::grpc::auth::token_hash;
use warden_natstest::{Nats, Options};

use crate::daemon::{Agent, sleepy_runbook};
use crate::fleet::{RUNBOOK, runs_of};

/// Bound on every wait for something that should happen (a loaded 2-core machine runs
/// several of these tests and the sandbox's first compile of a plugin at once).
pub(crate) const WAIT: Duration = Duration::from_secs(90);
/// Between two looks at the API or a file while waiting.
const POLL: Duration = Duration::from_millis(100);
/// The NOC's admin token in the controller's config.
const NOC_TOKEN: &str = "tok-e2e-noc-admin-0123456789";
/// What the controller's serve prints once its API listens.
const API_LINE: &str = "warden controller: API on ";

pub(crate) fn warden() -> Process {
    Process::new(env!("CARGO_BIN_EXE_warden"))
}

pub(crate) fn ok(out: std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Poll `f` until it gives a value, at most [`WAIT`].
pub(crate) fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(POLL);
    }
}

/// A `warden controller serve` process on a config file; its API address is read from what
/// it prints (the config listens on port 0).
struct Controller {
    config: PathBuf,
    child: Option<Child>,
    addr: String,
}

impl Controller {
    fn start(config: &Path) -> Controller {
        let mut c = Controller {
            config: config.to_path_buf(),
            child: None,
            addr: String::new(),
        };
        c.spawn();
        c
    }

    fn spawn(&mut self) {
        let mut child = warden()
            .args(["controller", "serve", "--config"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("warden controller serve starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads every line (the pipe must not fill up) and hands over the API address.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix(API_LINE) {
                    let addr = addr.split(',').next().unwrap_or_default().to_string();
                    let _ = tx.send(addr);
                }
                eprintln!("controller: {line}");
            }
        });
        let addr = rx
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("the controller did not serve: {:?}", child.try_wait()));
        self.addr = format!("http://{addr}");
        self.child = Some(child);
    }

    /// SIGKILL: a crash, nothing flushed or drained.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// NATS, the controller, a publisher key, a policy key, and a scratch dir for enrollments.
pub(crate) struct Fleet {
    // Dropped in this order: agents (the tests' own) first, then the controller, then NATS.
    controller: Controller,
    nats: Nats,
    dir: tempfile::TempDir,
}

impl Fleet {
    pub(crate) fn start() -> Fleet {
        Fleet::start_with("")
    }

    /// With `extra` appended to the controller's config (after its tables).
    pub(crate) fn start_with(extra: &str) -> Fleet {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("controller.toml");
        let write_config = |nats_url: &str| {
            std::fs::write(
                &config,
                format!(
                    "data-dir = \"controller-data\"\nlisten = \"127.0.0.1:0\"\nnats-url = {nats_url:?}\n\
                     tenants = [\"acme\", \"globex\"]\n\
                     [[tokens]]\nname = \"noc\"\nrole = \"admin\"\nsha256 = {:?}\n{extra}",
                    token_hash(NOC_TOKEN)
                ),
            )
            .expect("controller config");
        };
        // The server's operator-mode config is the controller's to write (from its keys); the
        // port is the test servers' own, so the URL is filled in once NATS listens.
        write_config("nats://127.0.0.1:4222");
        ok(
            warden()
                .args(["controller", "nats-config", "--config"])
                .arg(&config)
                .output()
                .expect("warden runs"),
            "controller nats-config",
        );
        let operator =
            std::fs::read_to_string(dir.path().join("controller-data/nats-operator.conf"))
                .expect("the controller wrote its operator config");
        let nats = Nats::start(
            1,
            Options {
                extra_config: operator,
                ..Options::default()
            },
        )
        .expect("nats-server in operator mode (run `cargo xtask nats` first)");
        write_config(&nats.url(0));
        let controller = Controller::start(&config);
        // The publisher's key signs plugins and runbooks; the policy key, site policies.
        for key in ["publisher", "policy"] {
            ok(
                warden()
                    .arg("--data-dir")
                    .arg(dir.path().join("keys-data"))
                    .args(["key", "generate", "--out"])
                    .arg(dir.path().join(key))
                    .output()
                    .expect("warden runs"),
                "key generate",
            );
        }
        Fleet {
            controller,
            nats,
            dir,
        }
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("controller-data")
    }

    /// `warden --json fleet <args>` against the controller; its JSON, or why it failed.
    pub(crate) fn try_fleet(&self, args: &[&str]) -> Result<Value, String> {
        let out = self.noc(true, args);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("not JSON: {e}"))
    }

    pub(crate) fn fleet(&self, args: &[&str]) -> Value {
        self.try_fleet(args)
            .unwrap_or_else(|e| panic!("warden fleet {args:?}: {e}"))
    }

    /// `warden --json fleet <args>` whatever its exit: (exit code, JSON printed).
    pub(crate) fn fleet_exit(&self, args: &[&str]) -> (Option<i32>, Value) {
        let out = self.noc(true, args);
        let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "warden fleet {args:?}: not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code(), json)
    }

    /// The exit code of `warden fleet <args>` (a refusal prints no JSON).
    pub(crate) fn fleet_try_exit(&self, args: &[&str]) -> Option<i32> {
        self.noc(false, args).status.code()
    }

    /// `warden [--json] fleet <args>` against the controller with the NOC's token.
    fn noc(&self, json: bool, args: &[&str]) -> std::process::Output {
        let mut cmd = warden();
        cmd.arg("--data-dir").arg(self.dir.path().join("noc-data"));
        if json {
            cmd.arg("--json");
        }
        cmd.args(["fleet", "--addr", &self.controller.addr])
            .args(args)
            .env("WARDEN_TOKEN", NOC_TOKEN)
            .output()
            .expect("warden runs")
    }

    /// The scratch dir (keys, bundles).
    pub(crate) fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// `warden fleet <args>` as a person reads it.
    pub(crate) fn fleet_human(&self, args: &[&str]) -> String {
        ok(self.noc(false, args), &format!("warden fleet {args:?}"))
    }

    /// `warden fleet <args>` as a person reads it, whatever its exit: (exit code, output).
    pub(crate) fn fleet_human_exit(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = self.noc(false, args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    fn trust(&self) -> String {
        let public = |key: &str| {
            std::fs::read_to_string(self.dir.path().join(format!("{key}.pub")))
                .expect("key")
                .trim()
                .to_string()
        };
        format!(
            "[[trust.keys]]\nname = \"publisher\"\npublic-key = {:?}\n\
             [[trust.policy-keys]]\nname = \"policy\"\npublic-key = {:?}\n",
            public("publisher"),
            public("policy")
        )
    }

    /// Enroll with a token from the controller (`warden fleet enroll-token`, `warden enroll`),
    /// then start a `warden serve` process with that identity and `tags`, with `fleet-hello`
    /// and `sleepy` (a nap of `nap` seconds) installed signed by the trusted publisher.
    pub(crate) fn agent(&self, tenant: &str, name: &str, tags: &str, nap: &str) -> FleetAgent {
        self.agent_with(tenant, name, tags, nap, "")
    }

    /// [`Fleet::agent`] with `extra` appended to its agent.toml (after `[fleet]`).
    pub(crate) fn agent_with(
        &self,
        tenant: &str,
        name: &str,
        tags: &str,
        nap: &str,
        extra: &str,
    ) -> FleetAgent {
        let token = self.fleet(&["enroll-token", "--tenant", tenant])["token"]["token"]
            .as_str()
            .expect("a token")
            .to_string();
        let creds = self.dir.path().join(format!("{name}/fleet.creds"));
        let printed: Value = serde_json::from_str(&ok(
            warden()
                .arg("--data-dir")
                .arg(self.dir.path().join(format!("{name}/enroll-data")))
                .args([
                    "--json",
                    "enroll",
                    "--controller",
                    &self.controller.addr,
                    "--token",
                    &token,
                    "--tenant",
                    tenant,
                    "--name",
                    name,
                    "--credentials",
                ])
                .arg(&creds)
                .output()
                .expect("warden runs"),
            "warden enroll",
        ))
        .expect("enroll JSON");
        assert_eq!(printed["tenant"], tenant);
        assert_eq!(printed["nats_urls"][0], self.nats.url(0));
        let id = printed["agent"].as_str().expect("agent id").to_string();
        let section = format!(
            "[fleet]\nurls = [{:?}]\ntenant = {tenant:?}\ncredentials = {:?}\nheartbeat-interval-secs = 1\n\
             [fleet.tags]\n{tags}\n{extra}",
            self.nats.url(0),
            creds.display().to_string()
        );
        let agent = Agent::start_inner("", &[], &section, &self.trust(), false, true);
        let fleet_agent = FleetAgent { agent, id };
        self.install_signed(&fleet_agent.agent, "fleet-hello", RUNBOOK);
        self.install_signed(&fleet_agent.agent, "sleepy", &sleepy_runbook(nap));
        fleet_agent
    }

    fn install_signed(&self, agent: &Agent, name: &str, text: &str) {
        let toml = agent.root().join(format!("{name}.toml"));
        std::fs::write(&toml, text).expect("runbook");
        let out = agent.root().join(format!("runbooks/{name}.wbundle"));
        ok(
            agent.warden(&[
                "runbook",
                "pack",
                &toml.display().to_string(),
                "--key",
                &self.dir.path().join("publisher.key").display().to_string(),
                "--out",
                &out.display().to_string(),
            ]),
            "runbook pack",
        );
    }

    /// The controller's view of `agent` (from `warden fleet agents`).
    pub(crate) fn agent_view(&self, agent: &str) -> Option<Value> {
        self.try_fleet(&["agents"]).ok()?["agents"]
            .as_array()?
            .iter()
            .find(|a| a["agent"] == agent)
            .cloned()
    }

    pub(crate) fn wait_presence(&self, agent: &FleetAgent, online: bool) {
        wait_for(&format!("agent {} online = {online}", agent.id), || {
            self.agent_view(&agent.id)
                .filter(|a| (a["presence"] == "online") == online)
        });
    }

    /// `warden fleet run <runbook> --target <target> --detach`: the run id.
    fn dispatch(&self, runbook: &str, target: &str) -> String {
        let started = self.fleet(&["run", runbook, "--target", target, "--detach"]);
        started["dispatched"]["run_id"]
            .as_str()
            .expect("a run id")
            .to_string()
    }

    /// The run as `warden fleet show` has it.
    fn run_view(&self, run: &str) -> Option<Value> {
        Some(self.try_fleet(&["show", run]).ok()?["run"].clone())
    }

    /// Wait until `agent`'s state in `run` is `state`; the agent's entry of the view.
    fn wait_state(&self, run: &str, agent: &FleetAgent, state: &str) -> Value {
        wait_for(&format!("{} {state} in run {run}", agent.id), || {
            self.run_view(run)?["agents"]
                .as_array()?
                .iter()
                .find(|a| a["agent"] == agent.id.as_str() && a["state"] == state)
                .cloned()
        })
    }

    /// The results the controller's store holds for `run`: (agent, status, error).
    fn stored(&self, run: &str) -> Vec<(String, String, Option<String>)> {
        let db = rusqlite::Connection::open_with_flags(
            self.data_dir().join("fleet.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("the controller's store");
        let mut stmt = db
            .prepare("SELECT agent, status, error FROM results WHERE run_id = ?1 ORDER BY agent")
            .expect("query");
        stmt.query_map([run], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("rows")
            .map(|r| r.expect("row"))
            .collect()
    }

    /// Records of the controller's audit log of `event` naming `run`.
    pub(crate) fn controller_audits(&self, event: &str, run: &str) -> Vec<Value> {
        std::fs::read_to_string(self.data_dir().join("audit/audit.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&format!("\"{event}\"")) && l.contains(run))
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// An agent process of the fleet and its id (its user public key).
pub(crate) struct FleetAgent {
    pub(crate) agent: Agent,
    pub(crate) id: String,
}

impl FleetAgent {
    /// How often the agent ran the fleet's `run` (its audit log's `run.queued` records).
    fn runs_of(&self, run: &str) -> usize {
        runs_of(
            &self.agent,
            &warden_fleet_wire::RunId::parse(run).expect("a run id"),
        )
    }

    /// The agent's run history (`warden runs list`): (runbook, status), newest first.
    fn history(&self) -> Vec<(String, String)> {
        let out = ok(self.agent.warden(&["--json", "runs", "list"]), "runs list");
        let listed: Value = serde_json::from_str(&out).expect("history JSON");
        let rows = listed["runs"].as_array().cloned().unwrap_or_default();
        rows.iter()
            .map(|r| {
                (
                    r["runbook"].as_str().unwrap_or_default().to_string(),
                    r["status"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    fn state_db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(
            self.agent.root().join("data/fleet/state.sqlite"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("the agent's fleet state")
    }

    /// The ledger's entry for `run`: whether it is there, and whether its final result is kept.
    fn ledger(&self, run: &str) -> Option<bool> {
        self.state_db()
            .query_row(
                "SELECT result IS NOT NULL FROM ledger WHERE run = ?1",
                [run],
                |r| r.get(0),
            )
            .ok()
    }

    fn ledger_len(&self) -> usize {
        self.state_db()
            .query_row("SELECT count(*) FROM ledger", [], |r| r.get::<_, i64>(0))
            .map(|n| usize::try_from(n).unwrap_or(0))
            .unwrap_or(0)
    }

    /// Results waiting in the outbox (not yet acknowledged by the stream).
    fn outbox_results(&self) -> usize {
        self.state_db()
            .query_row(
                "SELECT count(*) FROM outbox WHERE kind = 'result'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| usize::try_from(n).unwrap_or(0))
            .unwrap_or(0)
    }
}

#[test]
fn a_run_on_one_tenant_reaches_only_its_agent_and_both_sides_keep_it_once() {
    let fleet = Fleet::start();
    let acme = fleet.agent("acme", "acme-db-1", "role = \"db\"", "1.5");
    let globex = fleet.agent("globex", "globex-web-1", "role = \"web\"", "1.5");
    fleet.wait_presence(&acme, true);
    fleet.wait_presence(&globex, true);
    let listed = fleet.fleet(&["agents", "--tenant", "acme"]);
    let listed = listed["agents"].as_array().expect("agents");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["agent"], acme.id.as_str());
    assert_eq!(listed[0]["tags"]["role"], "db");
    assert!(
        fleet.fleet_human(&["agents"]).contains("online"),
        "the table shows presence"
    );

    // `warden fleet run` as a person runs it: it watches the run and exits 0 once all succeeded.
    let out = warden()
        .arg("--data-dir")
        .arg(fleet.dir.path().join("noc-data"))
        .args(["--json", "fleet", "--addr", &fleet.controller.addr])
        .args(["run", "fleet-hello", "--target", "tenant=acme"])
        .env("WARDEN_TOKEN", NOC_TOKEN)
        .output()
        .expect("warden fleet run");
    let view: Value = serde_json::from_str(&ok(out, "warden fleet run")).expect("run JSON");
    let view = &view["run"];
    let run = view["run_id"].as_str().expect("run id").to_string();
    assert_eq!(view["done"], true);
    let agents = view["agents"].as_array().expect("agents");
    assert_eq!(
        agents.len(),
        1,
        "only acme's agent was targeted: {agents:?}"
    );
    assert_eq!(agents[0]["agent"], acme.id.as_str());
    assert_eq!(agents[0]["state"], "succeeded", "{view}");

    // The controller: stored once, shown by `show` and `runs`.
    assert_eq!(
        fleet.stored(&run),
        [(acme.id.clone(), "succeeded".to_string(), None)]
    );
    let shown = fleet.fleet_human(&["show", &run]);
    assert!(
        shown.contains(&run) && shown.contains("succeeded"),
        "{shown}"
    );
    assert!(shown.contains(&acme.id[..12]), "{shown}");
    assert!(!shown.contains(&globex.id[..12]), "{shown}");
    let runs = fleet.fleet(&["runs"]);
    let listed = runs["runs"].as_array().expect("runs");
    assert!(
        listed
            .iter()
            .any(|r| r["run_id"] == run.as_str() && r["succeeded"] == 1 && r["agents"] == 1),
        "{runs}"
    );
    assert!(fleet.fleet_human(&["runs"]).contains(&run));

    // The agents: acme ran it once (audit, history, ledger with its result), globex never.
    assert_eq!(acme.runs_of(&run), 1);
    assert_eq!(
        acme.history(),
        [("fleet-hello".to_string(), "succeeded".to_string())]
    );
    assert_eq!(acme.ledger(&run), Some(true));
    wait_for("acme's outbox to drain", || {
        (acme.outbox_results() == 0).then_some(())
    });
    assert_eq!(globex.runs_of(&run), 0);
    assert!(globex.history().is_empty(), "{:?}", globex.history());
    assert_eq!(globex.ledger_len(), 0);
}

#[test]
fn an_agent_stopped_during_a_dispatch_runs_the_command_once_when_it_comes_back() {
    let fleet = Fleet::start();
    let mut acme = fleet.agent("acme", "acme-db-1", "role = \"db\"", "1.5");
    fleet.wait_presence(&acme, true);
    assert!(acme.agent.terminate().0.is_ok(), "the agent stops cleanly");
    // The controller has noticed (overdue after two missed heartbeats).
    fleet.wait_presence(&acme, false);

    let run = fleet.dispatch("fleet-hello", "tenant=acme,role=db");
    let view = fleet.run_view(&run).expect("the run");
    assert_eq!(view["done"], false);
    assert_eq!(acme.runs_of(&run), 0);

    // Back: it gets the command at its first heartbeat, runs it once.
    acme.agent.crash_and_restart();
    let state = fleet.wait_state(&run, &acme, "succeeded");
    assert!(state["sends"].as_u64().expect("sends") >= 2, "{state}");
    assert_eq!(fleet.run_view(&run).expect("run")["done"], true);
    assert_eq!(
        fleet.stored(&run),
        [(acme.id.clone(), "succeeded".to_string(), None)]
    );
    assert_eq!(acme.runs_of(&run), 1);
    assert_eq!(
        acme.history(),
        [("fleet-hello".to_string(), "succeeded".to_string())]
    );
    assert_eq!(acme.ledger(&run), Some(true));
}

#[test]
fn a_controller_killed_in_the_middle_of_a_run_loses_no_result_and_the_run_runs_once() {
    let mut fleet = Fleet::start();
    let acme = fleet.agent("acme", "acme-db-1", "role = \"db\"", "3.5");
    let globex = fleet.agent("globex", "globex-web-1", "role = \"web\"", "3.5");
    fleet.wait_presence(&acme, true);
    fleet.wait_presence(&globex, true);
    let run = fleet.dispatch("sleepy", "role=db");
    fleet.wait_state(&run, &acme, "running");

    // The controller crashes while the agent runs; the agent finishes and its result goes to
    // the stream (out of its outbox) while no controller is there.
    fleet.controller.kill();
    wait_for("the run to finish on the agent", || {
        (acme.ledger(&run) == Some(true)).then_some(())
    });
    wait_for("the result to leave the agent's outbox", || {
        (acme.outbox_results() == 0).then_some(())
    });
    assert!(
        fleet.stored(&run).iter().all(|(_, s, _)| s == "running"),
        "no final result could have been stored yet"
    );

    // Started again on the same data dir: it takes the result from the stream.
    fleet.controller.spawn();
    fleet.wait_state(&run, &acme, "succeeded");
    assert_eq!(fleet.run_view(&run).expect("run")["done"], true);
    assert_eq!(
        fleet.stored(&run),
        [(acme.id.clone(), "succeeded".to_string(), None)]
    );
    let finals: Vec<Value> = fleet
        .controller_audits("fleet.result", &run)
        .into_iter()
        .filter(|r| r.to_string().contains("succeeded"))
        .collect();
    assert_eq!(finals.len(), 1, "{finals:?}");
    assert_eq!(acme.runs_of(&run), 1, "the run ran again");
    assert_eq!(
        acme.history(),
        [("sleepy".to_string(), "succeeded".to_string())]
    );
    assert_eq!(globex.runs_of(&run), 0);
}

#[test]
fn an_agent_killed_in_the_middle_of_a_run_is_reported_interrupted_and_never_runs_it_twice() {
    let fleet = Fleet::start();
    let mut acme = fleet.agent("acme", "acme-db-1", "role = \"db\"", "600.25");
    fleet.wait_presence(&acme, true);
    let run = fleet.dispatch("sleepy", "tenant=acme");
    fleet.wait_state(&run, &acme, "running");

    acme.agent.crash_and_restart();
    let state = fleet.wait_state(&run, &acme, "failed");
    assert_eq!(
        state["error"].as_str(),
        Some(warden_agent::fleet::INTERRUPTED),
        "{state}"
    );
    assert_eq!(fleet.run_view(&run).expect("run")["done"], true);
    assert_eq!(
        fleet.stored(&run),
        [(
            acme.id.clone(),
            "failed".to_string(),
            Some(warden_agent::fleet::INTERRUPTED.to_string())
        )]
    );
    // The agent back online is not sent the run again (it answered), and never ran it twice.
    fleet.wait_presence(&acme, true);
    assert_eq!(acme.runs_of(&run), 1, "the run ran again after the restart");
    assert!(acme.agent.audit_log().contains("\"fleet.run-interrupted\""));
    assert_eq!(acme.ledger(&run), Some(true));
    wait_for("the agent's outbox to drain", || {
        (acme.outbox_results() == 0).then_some(())
    });
    assert_eq!(
        acme.history(),
        [("sleepy".to_string(), "interrupted".to_string())]
    );
}

#[test]
fn a_run_dispatched_to_an_offline_agent_survives_a_controller_crash_and_runs_once() {
    let mut fleet = Fleet::start();
    let mut acme = fleet.agent("acme", "acme-db-1", "role = \"db\"", "1.5");
    fleet.wait_presence(&acme, true);
    assert!(acme.agent.terminate().0.is_ok(), "the agent stops cleanly");
    fleet.wait_presence(&acme, false);
    let run = fleet.dispatch("fleet-hello", "tenant=acme");

    // The controller crashes with the run unanswered; the re-send state is all in its store.
    fleet.controller.kill();
    fleet.controller.spawn();
    let view = fleet.run_view(&run).expect("the run survives the crash");
    assert_eq!(view["done"], false);
    assert_eq!(view["agents"][0]["agent"], acme.id.as_str());
    assert_eq!(acme.runs_of(&run), 0);

    // The agent comes back to the new controller: sent the command, runs it once.
    acme.agent.crash_and_restart();
    let state = fleet.wait_state(&run, &acme, "succeeded");
    assert!(state["sends"].as_u64().expect("sends") >= 2, "{state}");
    assert_eq!(
        fleet.stored(&run),
        [(acme.id.clone(), "succeeded".to_string(), None)]
    );
    assert_eq!(acme.runs_of(&run), 1);
    assert_eq!(
        acme.history(),
        [("fleet-hello".to_string(), "succeeded".to_string())]
    );
}

#[test]
fn warden_fleet_cancel_cuts_a_run_short_and_the_run_shows_cancelled() {
    let fleet = Fleet::start();
    let acme = fleet.agent("acme", "acme-db-1", "role = \"db\"", "600.5");
    let other = fleet.agent("acme", "acme-db-2", "role = \"db\"", "600.5");
    fleet.wait_presence(&acme, true);
    fleet.wait_presence(&other, true);
    let run = fleet.dispatch("sleepy", "tenant=acme");
    fleet.wait_state(&run, &acme, "running");
    fleet.wait_state(&run, &other, "running");
    let line = fleet.fleet_human(&["cancel", &run]);
    assert_eq!(
        line.trim_end(),
        format!("run {run}: cancel sent to 2 agents (0 had answered)")
    );
    for a in [&acme, &other] {
        fleet.wait_state(&run, a, "cancelled");
        let log = a.agent.audit_log();
        let of_run = |event: &str| {
            log.lines()
                .filter(|l| l.contains(event) && l.contains(&format!("fleet:{run}")))
                .count()
        };
        assert_eq!((of_run("\"run.queued\""), of_run("\"run.cancel\"")), (1, 1));
    }
    assert_eq!(fleet.run_view(&run).expect("run")["done"], true);
    // Nothing left to cancel: sent to none.
    let again = fleet.fleet(&["cancel", &run]);
    assert_eq!(
        (&again["cancel"]["agents"], &again["cancel"]["settled"]),
        (&0.into(), &2.into())
    );
    assert_eq!(fleet.controller_audits("fleet.cancel", &run).len(), 2);
}

#[test]
fn an_agent_offline_during_a_cancel_takes_the_run_as_cancelled_when_it_returns() {
    let fleet = Fleet::start();
    let mut acme = fleet.agent("acme", "acme-db-1", "role = \"db\"", "600.75");
    fleet.wait_presence(&acme, true);
    assert!(acme.agent.terminate().0.is_ok(), "the agent stops cleanly");
    fleet.wait_presence(&acme, false);
    let run = fleet.dispatch("sleepy", "tenant=acme");
    let line = fleet.fleet_human(&["cancel", &run]);
    assert_eq!(
        line.trim_end(),
        format!("run {run}: cancel sent to 1 agents (0 had answered)")
    );
    // Back: the controller's re-send is the cancel, not the run.
    acme.agent.crash_and_restart();
    let state = fleet.wait_state(&run, &acme, "cancelled");
    assert!(
        state["error"]
            .as_str()
            .is_some_and(|e| e.contains("before it started")),
        "{state}"
    );
    assert_eq!(acme.runs_of(&run), 0, "the cancelled run never ran");
    assert!(
        acme.agent
            .audit_log()
            .contains("\"outcome\":\"cancelled-before-start\"")
    );
}
