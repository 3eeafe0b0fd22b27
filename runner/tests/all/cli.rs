//! The `warden` binary as a user meets it: install, list, inspect, run with human and JSON
//! output, and one-line errors with a non-zero exit code. Uses the plugins built by
//! `cargo xtask build-plugins` (run by `cargo xtask test`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::reseal;
use warden_tmpfs as tmpfs;

pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

pub(crate) fn plugin_dir(name: &str) -> PathBuf {
    let dir = repo().join("target/plugins").join(name);
    assert!(
        dir.join("plugin.wasm").exists(),
        "run `cargo xtask build-plugins` first ({name} missing)"
    );
    dir
}

pub(crate) struct Cli {
    pub(crate) tmp: tempfile::TempDir,
}

impl Cli {
    pub(crate) fn new(policy: &str) -> Cli {
        let tmp = tempfile::tempdir().expect("tempdir");
        let cache = repo().join("target/test-cache");
        let dev = if policy.contains("[trust]") {
            ""
        } else {
            "\n[trust]\nallow-unsigned = true\n"
        };
        std::fs::write(
            tmp.path().join("warden.toml"),
            format!(
                "cache-dir = {:?}\n{policy}{dev}",
                cache.display().to_string()
            ),
        )
        .expect("policy");
        Cli { tmp }
    }

    /// `warden` with this CLI's data dir and policy, not started yet.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_warden"));
        command
            .arg("--data-dir")
            .arg(self.tmp.path().join("data"))
            .arg("--config")
            .arg(self.tmp.path().join("warden.toml"))
            .args(args)
            .env_remove("WARDEN_DATA_DIR");
        command
    }

    pub(crate) fn warden(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("warden runs")
    }
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub(crate) const POLICY: &str = "[allow]\nsysinfo = [\"disks\"]\n";

#[test]
fn install_list_inspect_run_and_remove() {
    let cli = Cli::new(POLICY);
    let out = cli.warden(&[
        "plugin",
        "install",
        &plugin_dir("disk-usage").display().to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("installed disk-usage 0.1.0"),
        "{}",
        text(&out.stdout)
    );

    let out = cli.warden(&["plugin", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json list");
    assert_eq!(list[0]["manifest"]["name"], "disk-usage");

    let out = cli.warden(&["plugin", "inspect", "disk-usage"]);
    let shown = text(&out.stdout);
    assert!(
        shown.contains("sysinfo disks") && shown.contains("refused: nothing"),
        "{shown}"
    );

    let out = cli.warden(&[
        "run",
        "disk-usage",
        "--json",
        "--config",
        r#"{"warning_percent": 100, "critical_percent": 100}"#,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["result"]["ok"]["type"], "check");
    assert_eq!(report["result"]["ok"]["value"]["status"], "ok");
    assert_eq!(report["capability_uses"][0]["capability"], "sysinfo");

    let out = cli.warden(&["plugin", "remove", "disk-usage"]);
    assert!(out.status.success());
    let out = cli.warden(&["run", "disk-usage"]);
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr).trim(),
        "warden: error: plugin `disk-usage` is not installed"
    );
}

/// Issue 17, item 6: `warden run` of a check exits 0 / 1 / 2 / 3 for ok / warning / critical /
/// unknown (the Nagios plugin convention), and 3 when the check cannot report a status at all,
/// with the usual one-line error. Each case is a real run of the `disk-usage` check on this
/// machine's filesystems.
#[test]
fn a_check_run_exits_with_the_nagios_code_of_its_status() {
    let cli = Cli::new(POLICY);
    let out = cli.warden(&[
        "plugin",
        "install",
        &plugin_dir("disk-usage").display().to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for (config, code, word) in [
        (
            r#"{"warning_percent": 100, "critical_percent": 100}"#,
            0,
            "OK",
        ),
        (
            r#"{"warning_percent": 0, "critical_percent": 100}"#,
            1,
            "WARNING",
        ),
        (
            r#"{"warning_percent": 0, "critical_percent": 0}"#,
            2,
            "CRITICAL",
        ),
        (r#"{"mounts": ["/no/such/mount"]}"#, 3, "UNKNOWN"),
    ] {
        let out = cli.warden(&["run", "disk-usage", "--config", config]);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{config}: {}",
            text(&out.stderr)
        );
        let shown = text(&out.stdout);
        assert!(shown.to_uppercase().starts_with(word), "{config}: {shown}");
        // --json reports the same run with the same code.
        let out = cli.warden(&["run", "disk-usage", "--json", "--config", config]);
        assert_eq!(out.status.code(), Some(code), "{config} --json");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(
            report["result"]["ok"]["value"]["status"],
            word.to_lowercase()
        );
    }
    // A check that cannot report a status is unknown: a plugin error, and bad --config JSON.
    let out = cli.warden(&[
        "run",
        "disk-usage",
        "--config",
        r#"{"warning_percent": 90, "critical_percent": 80}"#,
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let out = cli.warden(&["run", "disk-usage", "--config", "{not json"]);
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("warden: error: --config is not valid JSON") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn refused_grants_and_bad_input_fail_with_one_clear_line() {
    let cli = Cli::new(POLICY);
    // The policy grants no fs: clean-temp installs with a warning and refuses to run.
    let out = cli.warden(&[
        "plugin",
        "install",
        &plugin_dir("clean-temp").display().to_string(),
    ]);
    assert!(out.status.success());
    assert!(
        text(&out.stderr).contains("the site policy refuses fs.write"),
        "{}",
        text(&out.stderr)
    );
    let out = cli.warden(&["run", "clean-temp", "--config", r#"{"dir": "/tmp"}"#]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot run: the site policy refuses fs.read `/tmp`"),
        "{err}"
    );

    let out = cli.warden(&["run", "clean-temp", "--config", "{not json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("warden: error: --config is not valid JSON"));
    assert_eq!(
        text(&out.stderr).lines().count(),
        1,
        "{}",
        text(&out.stderr)
    );

    let empty = cli.tmp.path().join("empty");
    std::fs::create_dir_all(&empty).expect("dir");
    let out = cli.warden(&["plugin", "install", &empty.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("plugin.toml"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_broken_policy_is_reported_with_its_location() {
    let cli = Cli::new("[allow]\nfs-read = [\"relative/path\"]\n");
    let out = cli.warden(&["plugin", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("warden.toml") && err.contains("must be an absolute path"),
        "{err}"
    );
}

#[test]
fn key_generate_pack_verify_and_install_a_signed_bundle() {
    let cli = Cli::new("");
    let prefix = cli.tmp.path().join("publisher");
    let out = cli.warden(&["key", "generate", "--out", &prefix.display().to_string()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let public = std::fs::read_to_string(prefix.with_extension("pub")).expect("public key");
    let policy = format!(
        "cache-dir = {:?}\n[allow]\nsysinfo = [\"disks\"]\n[trust]\n[[trust.keys]]\nname = \"acme\"\npublic-key = \"{}\"\n",
        repo().join("target/test-cache").display().to_string(),
        public.trim()
    );
    std::fs::write(cli.tmp.path().join("warden.toml"), policy).expect("policy");

    let bundle = cli
        .tmp
        .path()
        .join("disk-usage.wbundle")
        .display()
        .to_string();
    let key = prefix.with_extension("key").display().to_string();
    let dir = plugin_dir("disk-usage").display().to_string();
    let out = cli.warden(&["plugin", "pack", &dir, "--key", &key, "--out", &bundle]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = cli.warden(&["plugin", "verify", &bundle]);
    assert!(out.status.success());
    let shown = text(&out.stdout);
    assert!(
        shown.contains("valid, trusted as `acme`") && shown.contains("would accept it: yes"),
        "{shown}"
    );

    let out = cli.warden(&["plugin", "install", &bundle]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("signed by acme"),
        "{}",
        text(&out.stdout)
    );

    // The directory itself is refused: this agent is not in development mode.
    let out = cli.warden(&["plugin", "install", &dir]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("development mode"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn audit_verify_and_tail_show_installs_and_catch_tampering() {
    let cli = Cli::new(POLICY);
    let dir = plugin_dir("disk-usage").display().to_string();
    assert!(cli.warden(&["plugin", "install", &dir]).status.success());
    assert!(
        cli.warden(&["plugin", "remove", "disk-usage"])
            .status
            .success()
    );
    let out = cli.warden(&["audit", "tail", "--json"]);
    let records: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let events: Vec<&str> = records
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|r| r["event"].as_str())
        .collect();
    assert_eq!(
        events,
        vec!["policy.loaded", "plugin.installed", "plugin.removed"],
        "the policy is recorded once"
    );
    let out = cli.warden(&["audit", "verify"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("intact: 3 record(s)"));

    let log = cli.tmp.path().join("data/audit/audit.log");
    let tampered = std::fs::read_to_string(&log)
        .expect("log")
        .replace("disk-usage", "disk-usagf");
    std::fs::write(&log, tampered).expect("tamper");
    let out = cli.warden(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("line 3"),
        "{}",
        text(&out.stderr)
    );
}

/// Kill `warden runbook run` with SIGKILL mid-step: the next start marks the run interrupted
/// (not lost, not re-run) and the audit log still verifies up to its last record.
#[test]
fn a_run_killed_mid_step_is_interrupted_and_the_audit_log_verifies() {
    let cli = Cli::new(
        "[allow]\nexec = [{ program = \"/bin/sleep\", args = [\"*\"] }]\nfs-read = [\"/tmp\"]\nfs-write = [\"/tmp\"]\nkv = true\nsysinfo = [\"hostname\", \"os\"]\nservices = [\"dbus\"]\n",
    );
    let pkg = cli.tmp.path().join("hostile");
    std::fs::create_dir_all(&pkg).expect("dir");
    std::fs::copy(
        plugin_dir("hostile").join("plugin.wasm"),
        pkg.join("plugin.wasm"),
    )
    .expect("copy");
    let manifest = "name = \"hostile\"\nversion = \"0.1.0\"\nrole = \"check-remediation\"\n[capabilities]\n\
        exec = [{ program = \"/bin/echo\", args = [\"*\"] }, { program = \"/bin/sleep\", args = [\"*\"] }]\n\
        sysinfo = [\"hostname\", \"os\"]\nservices = [\"dbus\"]\n[capabilities.fs]\nread = [\"/tmp\"]\nwrite = [\"/tmp\"]\n\
        [capabilities.kv]\nquota-bytes = 4096\n[limits]\ntimeout-ms = 120000\n";
    std::fs::write(pkg.join("plugin.toml"), manifest).expect("manifest");
    assert!(
        cli.warden(&["plugin", "install", &pkg.display().to_string()])
            .status
            .success()
    );
    let runbook = cli.tmp.path().join("slow.toml");
    std::fs::write(
        &runbook,
        "name = \"slow\"\n[[steps]]\nid = \"nap\"\nplugin = \"hostile\"\naction = \"check\"\n\
         config = { attack = \"exec\", program = \"/bin/sleep\", args = [\"27.1828\"] }\n",
    )
    .expect("runbook");

    let mut child = Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("--data-dir")
        .arg(cli.tmp.path().join("data"))
        .arg("--config")
        .arg(cli.tmp.path().join("warden.toml"))
        .args(["runbook", "run", &runbook.display().to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    // The step is in flight once its sleep child exists.
    let sleeping = || {
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .any(|e| {
                std::fs::read(e.path().join("cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains("27.1828"))
            })
    };
    let started = std::time::Instant::now();
    while !sleeping() {
        assert!(started.elapsed().as_secs() < 60, "the step never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    // The sleep died with the runner (see `an_exec_child_dies_with_a_runner_killed_with_sigkill`).

    let out = cli.warden(&["runs", "list", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(runs["runs"][0]["runbook"], "slow");
    assert_eq!(runs["runs"][0]["status"], "interrupted", "{runs}");
    let out = cli.warden(&["runs", "show", runs["runs"][0]["id"].as_str().expect("id")]);
    assert!(
        text(&out.stdout).contains("interrupted"),
        "{}",
        text(&out.stdout)
    );
    let out = cli.warden(&["audit", "verify"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn a_signed_runbook_runs_and_a_tampered_one_is_refused() {
    let cli = Cli::new("");
    let prefix = cli.tmp.path().join("ops");
    assert!(
        cli.warden(&["key", "generate", "--out", &prefix.display().to_string()])
            .status
            .success()
    );
    let public = std::fs::read_to_string(prefix.with_extension("pub")).expect("public key");
    let policy = format!(
        "cache-dir = {:?}\n[allow]\nsysinfo = [\"disks\"]\n[trust]\nallow-unsigned = true\n[[trust.keys]]\nname = \"ops\"\npublic-key = \"{}\"\n",
        repo().join("target/test-cache").display().to_string(),
        public.trim()
    );
    std::fs::write(cli.tmp.path().join("warden.toml"), policy).expect("policy");
    assert!(
        cli.warden(&[
            "plugin",
            "install",
            &plugin_dir("disk-usage").display().to_string()
        ])
        .status
        .success()
    );
    let runbook = cli.tmp.path().join("disks.toml");
    std::fs::write(&runbook, "name = \"disks\"\n[[steps]]\nid = \"check\"\nplugin = \"disk-usage\"\naction = \"check\"\nconfig = { warning_percent = 100, critical_percent = 100 }\n").expect("runbook");
    let bundle = cli.tmp.path().join("disks.wbundle").display().to_string();
    let key = prefix.with_extension("key").display().to_string();
    let out = cli.warden(&[
        "runbook",
        "pack",
        &runbook.display().to_string(),
        "--key",
        &key,
        "--out",
        &bundle,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = cli.warden(&["runbook", "run", &bundle]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("signed by ops"),
        "{}",
        text(&out.stderr)
    );

    let mut bytes = std::fs::read(&bundle).expect("bundle");
    let at = bytes
        .windows(3)
        .rposition(|w| w == b"100")
        .expect("threshold in the payload");
    bytes[at] = b'9';
    std::fs::write(&bundle, bytes).expect("tamper");
    let out = cli.warden(&["runbook", "run", &bundle]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("refused: the component is not the one that was signed"),
        "{}",
        text(&out.stderr)
    );
}

/// What the `hostile` guest's `escapes` attack puts in its output (the guest's `ESCAPES`).
const ESCAPES: &str = "\u{1b}[2J\u{7}bell\0nul\rCR\u{1b}]0;pwned\u{7}\u{202e}evil\u{2066}iso";
/// The same as `warden` prints it for a person.
const ESCAPED: &str =
    "\\u{1b}[2J\\u{7}bell\\u{0}nul\\u{d}CR\\u{1b}]0;pwned\\u{7}\\u{202e}evil\\u{2066}iso";

/// A CLI with the `hostile` guest installed, granted what it imports.
pub(crate) fn hostile_cli() -> Cli {
    let cli = Cli::new(
        "[allow]\nexec = [{ program = \"/bin/echo\", args = [\"*\"] }, { program = \"/bin/sleep\", args = [\"*\"] }]\n\
         fs-read = [\"/tmp\"]\nfs-write = [\"/tmp\"]\nkv = true\nsysinfo = [\"hostname\", \"os\"]\nservices = [\"dbus\"]\n",
    );
    let out = cli.warden(&[
        "plugin",
        "install",
        &plugin_dir("hostile").display().to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    cli
}

/// A character that must not reach a terminal raw: a control character other than the newline
/// (C0, DEL, C1), or a bidi control.
fn raw_control(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

fn assert_inert(what: &str, bytes: &[u8]) {
    let shown = text(bytes);
    let raw: Vec<char> = shown.chars().filter(|c| raw_control(*c)).collect();
    assert!(
        raw.is_empty(),
        "{what} has raw control characters {raw:?}: {shown:?}"
    );
}

#[test]
fn plugin_output_reaches_the_terminal_inert_and_json_keeps_it() {
    let cli = hostile_cli();
    let out = cli.warden(&["run", "hostile", "--config", r#"{"attack": "escapes"}"#]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a warning: {}",
        text(&out.stderr)
    );
    assert_inert("stdout", &out.stdout);
    assert_inert("stderr", &out.stderr);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(stdout.contains(&format!("summary {ESCAPED}")), "{stdout}");
    assert!(stdout.contains(&format!("metric{ESCAPED}")), "{stdout}");
    assert!(stdout.contains(&format!("unit{ESCAPED}")), "{stdout}");
    // A log message keeps its line break; its fields are one line each.
    assert!(
        stderr.contains(&format!(
            "log {ESCAPED}\nsecond line key{ESCAPED}={ESCAPED}"
        )),
        "{stderr}"
    );

    let out = cli.warden(&[
        "run",
        "hostile",
        "--json",
        "--config",
        r#"{"attack": "escapes"}"#,
    ]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let check = &report["result"]["ok"]["value"];
    assert_eq!(check["summary"], format!("summary {ESCAPES}"));
    assert_eq!(check["metrics"][0]["name"], format!("metric{ESCAPES}"));
    assert_eq!(
        report["logs"][0]["message"],
        format!("log {ESCAPES}\nsecond line")
    );

    // A plugin error goes to stderr through the same escaping.
    let out = cli.warden(&[
        "run",
        "hostile",
        "--config",
        r#"{"attack": "escapes-error"}"#,
    ]);
    assert_eq!(out.status.code(), Some(3), "a check that fails is unknown");
    assert_inert("stdout", &out.stdout);
    assert_inert("stderr", &out.stderr);
    assert!(text(&out.stderr).contains(ESCAPED), "{}", text(&out.stderr));
}

#[test]
fn runbook_progress_summary_and_history_are_inert() {
    let cli = hostile_cli();
    let runbook = cli.tmp.path().join("escapes.toml");
    std::fs::write(
        &runbook,
        "name = \"escapes\"\n[[steps]]\nid = \"look\"\nplugin = \"hostile\"\naction = \"check\"\n\
         config = { attack = \"escapes\" }\n\
         [[steps]]\nid = \"fail\"\nplugin = \"hostile\"\naction = \"check\"\n\
         config = { attack = \"escapes-error\" }\n",
    )
    .expect("runbook");
    let out = cli.warden(&["runbook", "run", &runbook.display().to_string()]);
    assert_eq!(out.status.code(), Some(1), "the second step fails");
    assert_inert("stdout", &out.stdout);
    assert_inert("stderr", &out.stderr);
    // Progress (the log line, each step's end) and the summary.
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(stderr.contains(&format!("log {ESCAPED}")), "{stderr}");
    assert!(stderr.contains(&format!("summary {ESCAPED}")), "{stderr}");
    assert!(stdout.contains(&format!("summary {ESCAPED}")), "{stdout}");

    let out = cli.warden(&["runs", "list", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let id = runs["runs"][0]["id"].as_str().expect("id");
    let out = cli.warden(&["runs", "show", id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_inert("runs show", &out.stdout);
    assert!(text(&out.stdout).contains(ESCAPED), "{}", text(&out.stdout));
}

/// Fields of `/proc/<pid>/stat` after the command name: state, ppid, ...
fn stat_fields(pid: &str) -> Option<(String, Vec<String>)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (head, rest) = stat.rsplit_once(") ")?;
    let comm = head.split_once(" (")?.1.to_string();
    Some((comm, rest.split_whitespace().map(String::from).collect()))
}

/// The pid of a child of `parent` running `comm`.
fn child_named(parent: u32, comm: &str) -> Option<String> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid = e.file_name().to_string_lossy().into_owned();
        let (name, fields) = stat_fields(&pid)?;
        (name == comm && fields.get(1) == Some(&parent.to_string())).then_some(pid)
    })
}

/// Gone, or a zombie waiting for whoever it was reparented to.
fn exited(pid: &str) -> bool {
    stat_fields(pid).is_none_or(|(_, f)| f.first().is_some_and(|s| s == "Z" || s == "X"))
}

/// SIGKILL `warden run` while the plugin's `exec` child runs: the child dies with the runner
/// instead of living on unsupervised.
#[test]
fn an_exec_child_dies_with_a_runner_killed_with_sigkill() {
    let cli = hostile_cli();
    let mut warden = Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("--data-dir")
        .arg(cli.tmp.path().join("data"))
        .arg("--config")
        .arg(cli.tmp.path().join("warden.toml"))
        .args([
            "run",
            "hostile",
            "--config",
            r#"{"attack": "exec", "program": "/bin/sleep", "args": ["600"]}"#,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    // Bounds below only keep a broken build from hanging the suite; neither is a measurement.
    let started = std::time::Instant::now();
    let sleep = loop {
        if let Some(pid) = child_named(warden.id(), "sleep") {
            break pid;
        }
        assert!(
            started.elapsed().as_secs() < 120,
            "the exec child never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    warden.kill().expect("SIGKILL");
    warden.wait().expect("reaped");
    let killed = std::time::Instant::now();
    while !exited(&sleep) {
        if killed.elapsed().as_secs() >= 30 {
            let _ = Command::new("/bin/kill").args(["-KILL", &sleep]).status();
            panic!("exec child {sleep} outlived the runner killed with SIGKILL");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn verify(cli: &Cli, extra: &[&str]) -> Output {
    let mut args = vec!["--json", "audit", "verify"];
    args.extend_from_slice(extra);
    cli.warden(&args)
}

fn records_verified(out: &Output) -> u64 {
    assert!(out.status.success(), "audit verify: {}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    report["records"].as_u64().expect("records")
}

/// Issue 13, item 4: the data directory on a real full filesystem (a tmpfs filled to its last
/// page). A read-only run whose records cannot be written fails, naming the audit log; the
/// failed batch (far more than a page: 200 capability uses) leaves no torn record; once space
/// returns the log verifies, and later runs append to the same intact chain.
#[test]
fn on_a_full_disk_a_read_only_run_fails_leaves_no_torn_record_and_later_runs_append() {
    let cli = Cli::new("[allow]\nkv = true\nfs-read = [\"/tmp\"]\n");
    let data = cli.tmp.path().join("data");
    let disk = tmpfs::Tmpfs::mount(&data);
    let out = cli.warden(&[
        "plugin",
        "install",
        &plugin_dir("calls").display().to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let run = || {
        cli.warden(&[
            "run",
            "calls",
            "--config",
            r#"{"kind": "kv", "calls": 200}"#,
        ])
    };
    let out = run();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log = data.join("audit/audit.log");
    let before = std::fs::read(&log).expect("log");
    let records = records_verified(&verify(&cli, &[]));

    disk.fill();
    let out = run();
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(3),
        "the check's records were lost, so it reports unknown: {err}"
    );
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("warden: error: ") && last.contains(&log.display().to_string()),
        "one line naming the audit log: {err}"
    );
    assert_eq!(
        std::fs::read(&log).expect("log"),
        before,
        "the failed batch was cut off whole: no torn record"
    );

    disk.free();
    assert_eq!(
        records_verified(&verify(&cli, &[])),
        records,
        "verifies once space returns"
    );
    let out = run();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        records_verified(&verify(&cli, &[])) > records + 200,
        "a later run's records are appended to the intact chain"
    );
}

/// Issue 13, item 12: whoever rewrites the whole log and its anchor consistently passes a plain
/// `audit verify` (the documented limit), but not a check against a head saved before.
#[test]
fn a_resealed_log_passes_plain_verify_but_not_a_head_saved_before() {
    let cli = Cli::new(POLICY);
    let dir = plugin_dir("disk-usage").display().to_string();
    assert!(cli.warden(&["plugin", "install", &dir]).status.success());
    assert!(
        cli.warden(&["plugin", "remove", "disk-usage"])
            .status
            .success()
    );
    let out = cli.warden(&["audit", "head"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let saved = text(&out.stdout).trim().to_string();
    let (seq, _) = saved.split_once(':').expect("SEQ:HASH");
    assert_eq!(seq, "3", "{saved}");
    let saved_file = cli.tmp.path().join("saved-head");
    std::fs::write(&saved_file, &saved).expect("saved head");
    let against = saved_file.display().to_string();
    assert!(verify(&cli, &["--expect", &saved]).status.success());
    assert!(verify(&cli, &["--against", &against]).status.success());
    assert!(cli.warden(&["plugin", "install", &dir]).status.success());
    assert_eq!(
        records_verified(&verify(&cli, &["--expect", &saved])),
        4,
        "a saved head stays valid while the log grows"
    );

    // Hide the removal: rewrite its record, re-link everything after it, re-anchor.
    let data = cli.tmp.path().join("data");
    let mut records = reseal::records(&data);
    assert_eq!(records[2]["event"], "plugin.removed");
    records[2]["event"] = serde_json::json!("plugin.inspected");
    reseal::reseal(&data, records, |_| {});
    assert_eq!(
        records_verified(&verify(&cli, &[])),
        4,
        "the limit: a consistent re-seal passes the chain and anchor checks"
    );
    for flag in [
        ["--expect", saved.as_str()],
        ["--against", against.as_str()],
    ] {
        let out = verify(&cli, &flag);
        assert_eq!(out.status.code(), Some(1), "{flag:?} catches the re-seal");
        let err = text(&out.stderr);
        assert!(
            err.contains("record 3 is not the one saved earlier"),
            "{flag:?}: {err}"
        );
    }
    // Cutting the log back below the saved head shows too.
    let records = reseal::records(&data);
    reseal::reseal(&data, records[..2].to_vec(), |_| {});
    assert!(verify(&cli, &[]).status.success());
    let err = text(&verify(&cli, &["--expect", &saved]).stderr);
    assert!(
        err.contains("ends at record 2, but record 3 was saved"),
        "{err}"
    );
    let out = verify(&cli, &["--expect", "3:nothex"]);
    assert!(
        text(&out.stderr).contains("64 hex digits"),
        "{}",
        text(&out.stderr)
    );
}

/// Runbook expressions are bounded before they can hurt the process: each hostile shape is
/// refused by `warden runbook validate` with exit code 1 and one line naming the bound, instead
/// of a stack overflow (the long chains), or a validation that passes and a run that then takes
/// hours or gigabytes (the comprehensions).
#[test]
fn hostile_expressions_are_refused_by_validate_with_one_line_naming_the_bound() {
    let cli = Cli::new(POLICY);
    let out = cli.warden(&[
        "plugin",
        "install",
        &plugin_dir("disk-usage").display().to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list = |n: usize| {
        let items: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        format!("[{}]", items.join(","))
    };
    let big = list(200);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "long",
            format!("true{}", " && true".repeat(600)),
            "over the limit of 4096 bytes",
        ),
        (
            "a long run of !",
            format!("{}true", "!".repeat(10_000)),
            "over the limit of 4096 bytes",
        ),
        (
            "a huge operator chain",
            format!("1{}", "+1".repeat(50_000)),
            "over the limit of 4096 bytes",
        ),
        (
            "deep parentheses",
            format!("{}true{}", "(".repeat(40), ")".repeat(40)),
            "nests brackets 40 deep, over the limit of 32",
        ),
        (
            "deep lists",
            format!("size({}{}) == 1", "[".repeat(40), "]".repeat(40)),
            "nests brackets 41 deep, over the limit of 32",
        ),
        (
            "a long operator chain",
            format!("1{} > 0", "+1".repeat(400)),
            "levels deep (each operator of a chain is a level), over the limit of 64",
        ),
        (
            "many nodes",
            format!("size([{}]) > 0", "0,".repeat(1100)),
            "has more than 1024 nodes",
        ),
        (
            "nested comprehensions",
            format!(
                "{big}.all(a, {big}.all(b, {big}.all(c, {big}.all(d, a + b + c + d >= 0))))",
                big = list(3)
            ),
            "nests comprehensions (all, exists, map, ...) 4 deep, over the limit of 3",
        ),
        (
            "a huge comprehension",
            format!("{big}.all(a, {big}.all(b, {big}.all(c, a + b + c >= 0)))"),
            "even with empty inputs, over the 2000000 left of the step's budget of 2000000",
        ),
        (
            "a growing result",
            format!(
                "{l}.map(a, {l}.map(b, '{}'))",
                "x".repeat(1000),
                l = list(64)
            ),
            "bytes even with empty inputs, over the 1048576 left of the step's limit of 1048576",
        ),
        (
            "growth inside",
            format!(
                "size({big}.map(a, {big}.map(b, '{}'))) > 0",
                "x".repeat(1000)
            ),
            "even with empty inputs, over the 2000000 left of the step's budget of 2000000",
        ),
        (
            "a slow regular expression",
            // `\\w` is `\w` once TOML has read it: twenty Unicode word classes.
            format!("'a'.matches(r'{}')", "\\\\w".repeat(20)),
            "compiles to more than 262144 bytes",
        ),
        (
            "a computed pattern",
            "'a'.matches('a' + 'b')".to_string(),
            "matches() needs a literal pattern",
        ),
    ];
    for (what, expr, bound) in &cases {
        for (key, field) in [
            ("when", format!("when = \"{expr}\"")),
            ("config", format!("config = {{ path = \"${{{expr}}}\" }}")),
        ] {
            let file = cli.tmp.path().join("hostile.toml");
            std::fs::write(
                &file,
                format!(
                    "name = \"hostile\"\n[[steps]]\nid = \"a\"\nplugin = \"disk-usage\"\naction = \"check\"\n{field}\n"
                ),
            )
            .expect("runbook");
            let out = cli.warden(&["runbook", "validate", &file.display().to_string()]);
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{what} in {key}: {err}");
            let first = err.lines().next().unwrap_or_default();
            assert!(
                first.contains(&format!("{key}: `")) && first.contains(bound),
                "{what} in {key}: {err}"
            );
            assert!(
                first.len() < 400,
                "{what} in {key}: the error quotes all of it: {first}"
            );
            assert_eq!(err.lines().count(), 3, "{what} in {key}: {err}");
            assert!(
                !err.contains("panicked") && !err.contains("overflow"),
                "{err}"
            );
        }
    }
}
