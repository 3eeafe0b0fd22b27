//! The lifecycle plugins end to end through the agent (`warden_agent::daemon::serve`), as a
//! site runs them: the compliance checks as monitors (the audit daemon and the host firewall
//! open an incident when their control fails and resolve it when it is back; the checks of the
//! machine's own files reach the verdict `warden run` reaches), and apt patching from a maintenance
//! schedule that passes the window slot, applies once in that slot and refuses the slot when
//! the schedule fires again. Their fixture cases are in `tests/all/compliance.rs` and
//! `tests/all/patching.rs`; `warden run` of them on this machine in `cli_compliance.rs` and
//! `cli_patching.rs`.
//!
//! The machine is never changed: services are the site's `command` backend (a script of the
//! test that reads a flag file), and the patching policy grants apt's simulation only, so the
//! install the plan asks for is denied and audited.

use crate::daemon::{Serving, bearer, built, serve_in_process, wait_for};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use warden_agent::grpc::auth::token_hash;
use warden_agent::grpc::pb;

const TOKEN: &str = "tok-lifecycle-viewer-0123456789";

/// An agent of these tests on its own directory: policy, agent config, plugins installed.
struct Site {
    dir: tempfile::TempDir,
    serving: Option<Serving>,
    addr: String,
}

impl Site {
    /// `policy` is the site policy (`warden.toml`) without its cache and trust lines;
    /// `automation` the agent config's schedules, windows and monitors. `{scratch}` in either
    /// is the site's scratch directory; `programs` are written into it, executable, before
    /// the agent starts.
    fn start(
        policy: &str,
        automation: &str,
        plugins: &[&str],
        runbooks: &[(&str, &str)],
        programs: &[(&str, &str)],
    ) -> Site {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let scratch = root.join("scratch");
        std::fs::create_dir_all(&scratch).expect("scratch");
        std::fs::create_dir_all(root.join("runbooks")).expect("runbooks");
        let s = scratch.display().to_string();
        for (name, text) in programs {
            use std::os::unix::fs::PermissionsExt as _;
            let path = scratch.join(name);
            std::fs::write(&path, text).expect("program");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        for (name, text) in runbooks {
            std::fs::write(root.join("runbooks").join(format!("{name}.toml")), text)
                .expect("runbook");
        }
        let cache = crate::daemon::repo().join("target/test-cache");
        std::fs::write(
            root.join("warden.toml"),
            format!(
                "cache-dir = {:?}\n{}\n[trust]\nallow-unsigned = true\n",
                cache.display().to_string(),
                policy.replace("{scratch}", &s)
            ),
        )
        .expect("policy");
        std::fs::write(
            root.join("agent.toml"),
            format!(
                "[api]\nlisten = \"127.0.0.1:0\"\n[[api.token]]\nname = \"noc\"\nrole = \"viewer\"\n\
                 sha256 = {:?}\n[runbooks]\ndir = \"runbooks\"\n{}\n",
                token_hash(TOKEN),
                automation.replace("{scratch}", &s)
            ),
        )
        .expect("agent config");
        let mut site = Site {
            dir,
            serving: None,
            addr: String::new(),
        };
        for plugin in plugins {
            let out = site.warden(&["plugin", "install", &built(plugin).display().to_string()]);
            assert!(out.status.success(), "{plugin}: {}", text(&out.stderr));
        }
        let (serving, addr) = serve_in_process(site.dir.path());
        site.serving = Some(serving);
        site.addr = addr;
        site
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn scratch(&self) -> PathBuf {
        self.root().join("scratch")
    }

    /// The `warden` CLI beside the agent, on its data.
    fn warden(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_warden"))
            .arg("--data-dir")
            .arg(self.root().join("data"))
            .arg("--config")
            .arg(self.root().join("warden.toml"))
            .args(args)
            .output()
            .expect("warden runs")
    }

    async fn events(&self) -> tonic::Streaming<pb::AgentEvent> {
        let channel = tonic::transport::Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        pb::agent_client::AgentClient::with_interceptor(channel, bearer(TOKEN))
            .watch_events(pb::WatchEventsRequest {})
            .await
            .expect("watch events")
            .into_inner()
    }

    fn audit_records(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.root().join("data/audit/audit.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        if let Some(Serving::InProcess { stop, thread }) = self.serving.as_mut() {
            if let Some(stop) = stop.take() {
                let _ = stop.send("test over".into());
            }
            if let Some(thread) = thread.take() {
                let _ = thread.join();
            }
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn awaited(
    events: &mut tonic::Streaming<pb::AgentEvent>,
    what: &str,
    pred: impl Fn(&pb::AgentEvent) -> bool,
) -> pb::AgentEvent {
    awaited_within(events, what, Duration::from_secs(60), pred).await
}

/// A scheduled patch run against this machine's real apt: `apt-get -s` over every upgradable
/// package (141 on this machine's image) takes 20 to 90 s while the rest of the suite loads the
/// two cores, and the run makes several such calls (each capped by the policy at 120 s).
const APT_RUN_WAIT: Duration = Duration::from_secs(300);

async fn awaited_within(
    events: &mut tonic::Streaming<pb::AgentEvent>,
    what: &str,
    within: Duration,
    pred: impl Fn(&pb::AgentEvent) -> bool,
) -> pb::AgentEvent {
    tokio::time::timeout(within, wait_for(events, pred))
        .await
        .unwrap_or_else(|_| panic!("no {what} within {} s", within.as_secs()))
}

/// The site's service manager for these tests: `auditd` runs while `{scratch}/auditd.running`
/// exists (exit 0), and is stopped otherwise (exit 3, as the command backend reads it).
const SERVICE_SCRIPT: &str =
    "#!/bin/sh\n[ -e \"$(dirname \"$0\")/$1.running\" ] && exit 0\nexit 3\n";

/// An agent whose one monitor `name` runs the check `plugin` every second (an incident on the
/// first critical result), granted the reads `fs_read` and the `services` (TOML arrays), with
/// the services answered by [`SERVICE_SCRIPT`] through the site's `command` backend.
fn service_check_site(name: &str, plugin: &str, fs_read: &str, services: &str) -> Site {
    let policy = format!(
        r#"[allow]
fs-read = {fs_read}
services = {services}
[services]
backend = "command"
[services.command]
status = ["{{scratch}}/svc", "{{name}}"]
start = ["/bin/false", "{{name}}"]
stop = ["/bin/false", "{{name}}"]
restart = ["/bin/false", "{{name}}"]
"#
    );
    let automation = format!(
        "[[monitor]]\nname = {name:?}\nplugin = {plugin:?}\ninterval = \"1s\"\n\
         failures-to-trigger = 1\nfail-on = \"critical\"\n"
    );
    Site::start(
        &policy,
        &automation,
        &[plugin],
        &[],
        &[("svc", SERVICE_SCRIPT)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compliance_monitor_opens_an_incident_when_auditd_stops_and_resolves_it_when_it_runs() {
    let site = service_check_site(
        "audit-trail",
        "audit-daemon",
        r#"["/etc/systemd/system/multi-user.target.wants", "/etc/audit/rules.d", "/etc/audit/audit.rules"]"#,
        r#"["auditd"]"#,
    );
    let mut events = site.events().await;

    let opened = awaited(&mut events, "incident", |e| {
        e.kind == "incident-opened" && e.detail_json.contains("audit-trail")
    })
    .await;
    assert!(
        opened.detail_json.contains("auditd stopped"),
        "the incident names the evidence: {opened:?}"
    );

    std::fs::write(site.scratch().join("auditd.running"), "").expect("flag");
    let resolved = awaited(&mut events, "resolution", |e| {
        e.kind == "incident-resolved" && e.detail_json.contains("audit-trail")
    })
    .await;
    assert!(resolved.detail_json.contains("audit-trail"), "{resolved:?}");

    // Every check was a sandboxed run of the plugin, its service query checked and audited.
    let records = site.audit_records();
    let queries: Vec<_> = records
        .iter()
        .filter(|r| r["event"] == "capability.use" && r.to_string().contains("auditd"))
        .collect();
    assert!(queries.len() >= 2, "{records:?}");
    assert!(
        queries
            .iter()
            .all(|r| r.to_string().contains("\"allowed\":true")),
        "{queries:?}"
    );
    assert!(
        records
            .iter()
            .any(|r| r["event"] == "automation.incident-opened"),
        "{records:?}"
    );
    assert!(
        records
            .iter()
            .any(|r| r["event"] == "automation.incident-resolved"),
        "{records:?}"
    );
    // The report beside the agent counts the incident, resolved.
    let out = site.warden(&[
        "report",
        "--since",
        "1",
        "--monitor",
        "audit-trail",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let row = &report["monitors"][0];
    assert_eq!(row["monitor"], "audit-trail", "{report}");
    assert_eq!(
        (&row["incidents"], &row["resolved"]),
        (&1.into(), &1.into()),
        "{report}"
    );
    assert!(
        row["mttr_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{report}"
    );
    // The client report's compliance section: audit-daemon's claims (HIPAA 164.312(b), CMMC
    // AU.L2-3.3.1) with its runs' verdicts as the host audited them: `critical` while the
    // daemon was stopped, then `ok` or, on a machine that does not enable auditd at boot,
    // `warning` (that resolved the incident, the monitor fails on critical, but it is no pass
    // of the control). The state is stable since, so later runs repeat the last verdict.
    let verdicts: Vec<String> = site
        .audit_records()
        .iter()
        .filter(|r| r["event"] == "plugin.run" && r["data"]["plugin"]["name"] == "audit-daemon")
        .map(|r| r["data"]["status"].as_str().unwrap_or("none").to_string())
        .collect();
    assert_eq!(
        verdicts.first().map(String::as_str),
        Some("critical"),
        "the stopped daemon: {verdicts:?}"
    );
    let out = site.warden(&["report", "--since", "1", "--format", "csv"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = text(&out.stdout);
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let rows: Vec<std::collections::HashMap<&str, &str>> = lines
        .map(|l| header.iter().copied().zip(l.split(',')).collect())
        .collect();
    let failed = verdicts.iter().filter(|v| *v != "ok").count();
    let passed = verdicts.len() - failed;
    let last = if verdicts.last().map(String::as_str) == Some("ok") {
        "pass"
    } else {
        "fail"
    };
    for control in ["164.312(b)", "AU.L2-3.3.1"] {
        let row = rows
            .iter()
            .find(|r| r["record"] == "control" && r["control"] == control)
            .unwrap_or_else(|| panic!("{control} in {csv}"));
        assert_eq!(row["check"], "audit-daemon", "{csv}");
        // Runs after the audit read above may be in the report too: at least as many.
        let count = |column: &str| row[column].parse::<usize>().unwrap_or(0);
        assert!(count("failed") >= failed, "{verdicts:?}: {csv}");
        assert!(count("passed") >= passed, "{verdicts:?}: {csv}");
        assert_eq!(row["latest_outcome"], last, "{verdicts:?}: {csv}");
        let failing = if last == "fail" { "1" } else { "0" };
        assert_eq!(row["failing_now"], failing, "{csv}");
    }
    // A safeguard no installed check claims is listed as such.
    let uncovered = rows
        .iter()
        .find(|r| r["record"] == "control" && r["control"] == "164.312(d)")
        .unwrap_or_else(|| panic!("164.312(d) in {csv}"));
    assert_eq!(uncovered["check"], "", "not covered: {csv}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firewall_monitor_opens_an_incident_when_none_runs_and_resolves_it_when_nftables_runs() {
    let site = service_check_site(
        "firewall",
        "host-firewall",
        r#"["/etc/nftables.conf", "/etc/ufw/ufw.conf", "/etc/firewalld/firewalld.conf"]"#,
        r#"["nftables", "ufw", "firewalld"]"#,
    );
    let mut events = site.events().await;
    let opened = awaited(&mut events, "incident", |e| {
        e.kind == "incident-opened" && e.detail_json.contains("\"firewall")
    })
    .await;
    let detail: serde_json::Value = serde_json::from_str(&opened.detail_json).expect("json");
    let check = detail["check"].as_str().unwrap_or_default();
    assert!(
        check.starts_with("no host firewall enabled")
            && ["nftables stopped", "ufw stopped", "firewalld stopped"]
                .iter()
                .all(|s| check.contains(s)),
        "the incident names each firewall's state: {detail}"
    );

    std::fs::write(site.scratch().join("nftables.running"), "").expect("flag");
    awaited(&mut events, "resolution", |e| {
        e.kind == "incident-resolved" && e.detail_json.contains("\"firewall")
    })
    .await;
    let queries: Vec<_> = site
        .audit_records()
        .into_iter()
        .filter(|r| r["event"] == "capability.use" && r["data"]["plugin"] == "host-firewall")
        .collect();
    assert!(
        queries
            .iter()
            .any(|r| r.to_string().contains("nftables")
                && r.to_string().contains("\"allowed\":true")),
        "the service queries are checked and audited: {queries:?}"
    );
}

/// The checks that read the machine's own files (disk encryption, shell logoff, screen lock)
/// as monitors of the agent on this machine: each runs in the agent's sandbox on its schedule,
/// and the agent reaches the verdict `warden run` reaches on the same machine: an incident whose
/// check summary is the plugin's own when it fails, none when it does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_based_compliance_checks_run_as_monitors_with_the_verdict_of_warden_run() {
    const PLUGINS: [&str; 3] = ["disk-encryption", "auto-logoff", "screen-lock"];
    let policy = r#"[allow]
fs-read = [
    "/proc/mounts", "/sys/devices/virtual/block", "/etc/crypttab",
    "/etc/profile", "/etc/profile.d", "/etc/bash.bashrc",
    "/usr/share/xsessions", "/usr/share/wayland-sessions", "/etc/dconf",
]
"#;
    // What `warden run` says of this machine, from a CLI of its own (its audit log is not the
    // agent's).
    let cli = crate::cli::Cli::new(policy);
    let mut expected = Vec::new();
    for plugin in PLUGINS {
        let out = cli.warden(&["plugin", "install", &built(plugin).display().to_string()]);
        assert!(out.status.success(), "{plugin}: {}", text(&out.stderr));
        let out = cli.warden(&["run", plugin, "--json"]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{plugin}: {e}: {}", text(&out.stderr)));
        let check = &report["result"]["ok"]["value"];
        let status = check["status"].as_str().expect("a status").to_string();
        let summary = check["summary"].as_str().expect("a summary").to_string();
        expected.push((plugin, status, summary));
    }

    let automation: String = PLUGINS
        .iter()
        .map(|p| {
            format!(
                "[[monitor]]\nname = \"{p}-check\"\nplugin = \"{p}\"\ninterval = \"1s\"\n\
                 failures-to-trigger = 1\nfail-on = \"warning\"\n"
            )
        })
        .collect();
    let site = Site::start(policy, &automation, &PLUGINS, &[], &[]);
    // Two finished checks of each: the first one's verdict has been acted on by then (a
    // monitor's next check starts after its round ends).
    let checks = |records: &[serde_json::Value], plugin: &str| {
        records
            .iter()
            .filter(|r| {
                r["event"] == "plugin.run"
                    && r["data"]["plugin"]["name"] == plugin
                    && r["data"]["context"]["monitor"] == format!("{plugin}-check")
            })
            .count()
    };
    crate::fleet::wait_until(|| {
        let records = site.audit_records();
        PLUGINS.iter().all(|p| checks(&records, p) >= 2)
    })
    .await;
    let records = site.audit_records();
    for (plugin, status, summary) in expected {
        let runs: Vec<_> = records
            .iter()
            .filter(|r| r["event"] == "plugin.run" && r["data"]["plugin"]["name"] == plugin)
            .collect();
        assert!(
            runs.iter().all(|r| r["data"]["result"] == "ok"),
            "{plugin}: every check ran in the sandbox: {runs:?}"
        );
        let opened: Vec<_> = records
            .iter()
            .filter(|r| {
                r["event"] == "automation.incident-opened"
                    && r["data"]["incident"]["monitor"] == format!("{plugin}-check")
            })
            .collect();
        match status.as_str() {
            "warning" | "critical" => {
                assert_eq!(opened.len(), 1, "{plugin} is {status}: {opened:?}");
                assert_eq!(
                    opened[0]["data"]["check"], summary,
                    "{plugin}: the incident carries the check's own evidence"
                );
            }
            _ => assert!(opened.is_empty(), "{plugin} is {status}: {opened:?}"),
        }
    }
}

const APT_GET: &str = "/usr/bin/apt-get";
const SIMULATE: [&str; 5] = ["-s", "-q", "-o", "Debug::NoLocking=1", "dist-upgrade"];

/// apt's own count of upgrades, from the summary line of a simulation.
fn apt_upgrade_count() -> u64 {
    let out = Command::new(APT_GET)
        .args(SIMULATE)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .output()
        .expect("apt-get runs");
    let stdout = text(&out.stdout);
    stdout
        .lines()
        .find(|l| l.ends_with(" not upgraded."))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary line in {stdout}"))
}

const PATCH_NOW: &str = r#"
name = "patch-now"
[params.window_slot]
type = "string"
default = ""

[[steps]]
id = "scan"
plugin = "apt-updates"
action = "discover"
config = { packages = false }

[[steps]]
id = "patch"
plugin = "apt-patch"
action = "apply"
config = { window_slot = "${params.window_slot}", security = "auto", normal = "auto", reboot = "never" }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_schedule_applies_once_in_its_window_slot_and_refuses_the_slot_when_it_fires_again()
{
    if !Path::new(APT_GET).exists() {
        eprintln!("SKIPPED: {APT_GET} is absent; the fixture cases in tests/all/patching.rs ran");
        return;
    }
    let before = apt_upgrade_count();
    if before == 0 {
        eprintln!("SKIPPED: nothing is upgradable here, so apply would have nothing to do");
        return;
    }
    // The window opened a minute ago (a daily window at that minute, open for two hours), so
    // the schedule fires inside it and its slot is that opening.
    let opened = chrono::Utc::now() - chrono::TimeDelta::seconds(60);
    let opened = opened
        .date_naive()
        .and_hms_opt(
            chrono::Timelike::hour(&opened),
            chrono::Timelike::minute(&opened),
            0,
        )
        .expect("a minute")
        .and_utc();
    let slot = format!(
        "patch-night@{}",
        opened.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let policy = format!(
        "[limits]\nexec-timeout-ms = 120000\n[allow]\n\
         fs-read = [\"/run/reboot-required\", \"/run/reboot-required.pkgs\"]\n\
         exec = [{{ program = {APT_GET:?}, args = {SIMULATE:?} }}]\nkv = true\n"
    );
    let automation = format!(
        r#"
[[maintenance-window]]
name = "patch-night"
cron = "{minute} {hour} * * *"
duration = "2h"

[[schedule]]
name = "apt-patch"
runbook = "runbooks/patch-now.toml"
cron = "*/2 * * * * *"
maintenance = true
expected-duration = "10m"
windows = ["patch-night"]
window-slot-param = "window_slot"
"#,
        minute = chrono::Timelike::minute(&opened),
        hour = chrono::Timelike::hour(&opened),
    );
    let site = Site::start(
        &policy,
        &automation,
        &["apt-updates", "apt-patch"],
        &[("patch-now", PATCH_NOW)],
        &[],
    );
    let mut events = site.events().await;
    let fired = awaited(&mut events, "a firing", |e| {
        e.kind == "schedule-fired" && e.subject == "apt-patch"
    })
    .await;
    assert!(fired.detail_json.contains(&slot), "{fired:?} for {slot}");
    let by_schedule = |e: &pb::AgentEvent| {
        e.kind == "run.finished" && e.detail_json.contains("schedule:apt-patch")
    };
    awaited_within(&mut events, "the first run", APT_RUN_WAIT, by_schedule).await;
    awaited_within(&mut events, "the second run", APT_RUN_WAIT, by_schedule).await;

    let records = site.audit_records();
    let installs: Vec<_> = records
        .iter()
        .filter(|r| {
            r["event"] == "capability.use"
                && r.to_string().contains(APT_GET)
                && r.to_string().contains("--only-upgrade")
        })
        .collect();
    assert_eq!(
        installs.len(),
        1,
        "one install in the slot, however often the schedule fires: {installs:?}"
    );
    assert!(
        installs[0].to_string().contains("\"allowed\":false"),
        "this policy grants the simulation only: {:?}",
        installs[0]
    );
    let refused = records
        .iter()
        .filter(|r| r["event"] == "plugin.run" && r.to_string().contains("window-slot-used"))
        .count();
    assert!(refused >= 1, "the second firing is refused: {records:?}");
    assert_eq!(apt_upgrade_count(), before, "nothing was installed");
}
