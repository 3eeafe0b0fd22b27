//! `warden baseline`: take a baseline, change the inventory, see the drift (table, JSON, exit
//! codes), accept part of it then the rest, list the versions with their hashes, and find each
//! version in the audit log. The inventory is the history's, as discovery records it: a fixture
//! written through the history itself, and the real `inventory` plugin run by a runbook.

use crate::cli::{Cli, POLICY, plugin_dir, text};
use serde_json::{Value, json};
use warden_history::History;

fn package(name: &str, version: &str) -> Value {
    json!({"kind": "package", "facts": {"name": name, "version": version, "architecture": "amd64"}})
}

/// What the inventory plugin reports, trimmed: the host with its volatile uptime, the OS, memory
/// (left out of baselines) and packages.
fn facts(uptime: u64, packages: &[Value]) -> Value {
    let mut groups = vec![
        json!({"kind": "host", "facts": {"hostname": "web1", "uptime_secs": uptime}}),
        json!({"kind": "os", "facts": {"family": "linux", "name": "Debian GNU/Linux",
               "version": "12", "kernel": "6.1.0-18-amd64", "arch": "x86_64"}}),
        json!({"kind": "memory", "facts": {"total_bytes": 8, "available_bytes": uptime}}),
    ];
    groups.extend(packages.iter().cloned());
    Value::Array(groups)
}

fn record(cli: &Cli, facts: &Value) {
    let history = History::open(&cli.tmp.path().join("data")).expect("history");
    history
        .record_inventory("inventory", "0.1.0", facts)
        .expect("inventory");
}

fn code(out: &std::process::Output) -> Option<i32> {
    out.status.code()
}

#[test]
fn take_drift_accept_part_then_the_rest_with_versions_hashed_and_audited() {
    let cli = Cli::new(POLICY);
    let out = cli.warden(&["baseline", "diff"]);
    assert_eq!(
        code(&out),
        Some(2),
        "no baseline is not drift: {}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("no baseline"),
        "{}",
        text(&out.stderr)
    );

    record(
        &cli,
        &facts(100, &[package("bash", "5.2"), package("openssl", "3.0.11")]),
    );
    let out = cli.warden(&[
        "baseline",
        "take",
        "--by",
        "ada",
        "--reason",
        "initial build",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("baseline 1 recorded: 8 items"),
        "{}",
        text(&out.stdout)
    );

    // Only the volatile facts moved: no drift.
    record(
        &cli,
        &facts(999, &[package("bash", "5.2"), package("openssl", "3.0.11")]),
    );
    let out = cli.warden(&["baseline", "diff"]);
    assert_eq!(
        code(&out),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("no drift"),
        "{}",
        text(&out.stdout)
    );

    // An unauthorized package and an upgrade.
    record(
        &cli,
        &facts(
            1000,
            &[
                package("bash", "5.2"),
                package("nmap", "7.93"),
                package("openssl", "3.0.13"),
            ],
        ),
    );
    let out = cli.warden(&["baseline", "diff"]);
    assert_eq!(code(&out), Some(1), "drift exits 1: {}", text(&out.stderr));
    let shown = text(&out.stdout);
    let lines: Vec<&str> = shown.lines().collect();
    assert!(lines[1].starts_with("CATEGORY  CHANGE   ITEM"), "{shown}");
    let added = lines
        .iter()
        .find(|l| l.contains("nmap:amd64"))
        .expect("nmap row");
    assert_eq!(
        added.split_whitespace().collect::<Vec<_>>(),
        ["package", "added", "nmap:amd64", "-", "7.93"]
    );
    let changed = lines
        .iter()
        .find(|l| l.contains("openssl"))
        .expect("openssl row");
    assert_eq!(
        changed.split_whitespace().collect::<Vec<_>>(),
        ["package", "changed", "openssl:amd64", "3.0.11", "3.0.13"]
    );
    assert_eq!(
        added.find("nmap"),
        changed.find("openssl"),
        "aligned:\n{shown}"
    );
    assert!(shown.contains("2 change(s): package +1 ~1"), "{shown}");

    let out = cli.warden(&["--json", "baseline", "diff"]);
    assert_eq!(code(&out), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["drift"], true);
    assert_eq!(v["baseline"]["version"], 1);
    assert_eq!(
        v["counts"]["package"],
        json!({"added": 1, "removed": 0, "changed": 1})
    );
    assert_eq!(v["changes"][0]["item"], "nmap:amd64");
    assert_eq!(v["changes"][0]["change"], "added");

    let out = cli.warden(&["baseline", "accept", "--only", "package:openssl:amd64"]);
    assert_eq!(code(&out), Some(2), "a reason is required");
    assert!(
        text(&out.stderr).contains("--reason"),
        "{}",
        text(&out.stderr)
    );
    let out = cli.warden(&["baseline", "accept", "--only", "user", "--reason", "x"]);
    assert_eq!(code(&out), Some(2), "nothing matches");
    assert!(
        text(&out.stderr).contains("no drift matches --only"),
        "{}",
        text(&out.stderr)
    );

    let out = cli.warden(&[
        "baseline",
        "accept",
        "--only",
        "package:openssl:amd64",
        "--by",
        "bob",
        "--reason",
        "CHG-1042 openssl update",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("baseline 2 recorded"),
        "{}",
        text(&out.stdout)
    );
    let out = cli.warden(&["--json", "baseline", "diff"]);
    assert_eq!(code(&out), Some(1), "nmap is still drift");
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["changes"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["changes"][0]["item"], "nmap:amd64");

    let out = cli.warden(&[
        "baseline",
        "accept",
        "--by",
        "bob",
        "--reason",
        "nmap approved for the audit",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = cli.warden(&["baseline", "diff"]);
    assert_eq!(code(&out), Some(0), "{}", text(&out.stdout));
    let out = cli.warden(&["baseline", "accept", "--reason", "again"]);
    assert_eq!(code(&out), Some(2));
    assert!(
        text(&out.stderr).contains("nothing to accept: no drift"),
        "{}",
        text(&out.stderr)
    );

    let out = cli.warden(&["baseline", "show"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    let rows: Vec<Vec<&str>> = listed
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 3, "{listed}");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row[0], (i + 1).to_string(), "{listed}");
        assert!(
            row[3].len() == 64 && row[3].chars().all(|c| c.is_ascii_hexdigit()),
            "{listed}"
        );
    }
    assert_eq!(rows[1][2], "bob");
    assert!(listed.contains("CHG-1042 openssl update"), "{listed}");
    assert_ne!(rows[0][3], rows[1][3], "a new version, a new hash");

    // Earlier versions are kept as they were (CM-2(3)).
    let out = cli.warden(&["baseline", "show", "--version", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let first = text(&out.stdout);
    assert!(
        first.starts_with("baseline 1 taken ") && first.contains("by ada: initial build"),
        "{first}"
    );
    assert!(first.contains(&format!("sha256 {}", rows[0][3])), "{first}");
    let openssl = first
        .lines()
        .find(|l| l.contains("openssl"))
        .expect("openssl");
    assert_eq!(
        openssl.split_whitespace().collect::<Vec<_>>(),
        ["package", "openssl:amd64", "3.0.11"]
    );
    assert!(
        !first.contains("nmap") && !first.contains("uptime"),
        "{first}"
    );
    let out = cli.warden(&["baseline", "show", "--version", "9"]);
    assert_eq!(code(&out), Some(2));
    // Against an earlier version, what was accepted since is drift again.
    let out = cli.warden(&["--json", "baseline", "diff", "--version", "1"]);
    assert_eq!(code(&out), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["baseline"]["version"], 1);
    assert_eq!(v["changes"].as_array().map(Vec::len), Some(2), "{v}");

    let log = std::fs::read_to_string(cli.tmp.path().join("data/audit/audit.log")).expect("audit");
    let recorded: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["event"] == "baseline.recorded")
        .collect();
    assert_eq!(recorded.len(), 3, "{log}");
    assert_eq!(recorded[1]["data"]["taken_by"], "bob");
    assert_eq!(recorded[1]["data"]["reason"], "CHG-1042 openssl update");
    assert_eq!(recorded[1]["data"]["sha256"], rows[1][3]);
    assert_eq!(recorded[1]["data"]["accepted"][0]["item"], "openssl:amd64");
}

#[test]
fn the_real_inventory_plugin_feeds_a_baseline_and_its_drift() {
    let cli = Cli::new(
        "[allow]\nfs-read = [\"/var/lib/dpkg/status\"]\n\
         sysinfo = [\"hostname\", \"os\", \"cpu\", \"memory\", \"disks\", \"network\", \"uptime\"]\n",
    );
    let out = cli.warden(&[
        "plugin",
        "install",
        &plugin_dir("inventory").display().to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let runbook = |packages: bool| {
        let path = cli.tmp.path().join(format!("discover-{packages}.toml"));
        std::fs::write(
            &path,
            format!(
                "name = \"discover\"\n[[steps]]\nid = \"facts\"\nplugin = \"inventory\"\n\
                 action = \"discover\"\nconfig = {{ packages = {packages} }}\n"
            ),
        )
        .expect("runbook");
        let out = cli.warden(&["runbook", "run", &path.display().to_string()]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    };
    runbook(false);
    let out = cli.warden(&["baseline", "take", "--reason", "without packages"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    runbook(false);
    let out = cli.warden(&["baseline", "diff"]);
    assert_eq!(
        code(&out),
        Some(0),
        "a second inventory of the same machine: {}",
        text(&out.stdout)
    );

    let has_dpkg = std::path::Path::new("/var/lib/dpkg/status").exists();
    runbook(true);
    let out = cli.warden(&["--json", "baseline", "diff"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    if has_dpkg {
        assert_eq!(code(&out), Some(1), "{v}");
        let changes = v["changes"].as_array().expect("changes");
        assert!(
            changes
                .iter()
                .all(|c| c["category"] == "package" && c["change"] == "added"),
            "{v}"
        );
        assert!(
            changes
                .iter()
                .any(|c| c["item"].as_str().is_some_and(|i| i.starts_with("bash"))),
            "{v}"
        );
    } else {
        assert_eq!(code(&out), Some(0), "{v}");
    }
}

/// One fixture case of the inventory plugin through the test harness.
fn inventory_case(text: &str) -> (warden_testkit::Fixture, warden_testkit::CaseRun) {
    let harness = warden_testkit::Harness::new(
        &plugin_dir("inventory"),
        &crate::cli::repo().join("target/test-cache"),
    )
    .expect("harness");
    let fixture = warden_testkit::Fixture::parse(text, "inline").expect("fixture");
    let run = harness.run(&fixture).expect("case runs");
    (fixture, run)
}

/// The inventory plugin on a fake machine (the test harness): the accounts, listening TCP
/// ports (TCP listening, UDP bound and unconnected; `/proc/net/udp6` absent here: left out)
/// with their owning processes (a scripted `ss`: by socket inode; a forged name on 8080 and a
/// socket whose owner `ss` cannot see on 53 give no process) and enabled services a baseline
/// records come from its files, parsed in the sandbox.
#[test]
fn the_inventory_plugin_reports_accounts_listening_ports_and_enabled_services() {
    let (fixture, run) = inventory_case(
        r#"
run = "discover"
[files]
"/var/lib/dpkg/status" = "Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b2\n"
"/etc/passwd" = "root:x:0:0:root:/root:/bin/bash\n# local\nada:x:1000:1000:Ada,,,:/home/ada:/bin/zsh\nbroken:x:nope:0::/:/bin/sh\n"
"/proc/net/tcp" = """
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
   1: 0100007F:0277 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1
   2: 0F02000A:0016 0202000A:C350 01 00000000:00000000 00:00000000 00000000     0        0 3 1
"""
"/proc/net/tcp6" = """
  sl  local_address                         remote_address                        st
   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 0 0 0 0 0 9 1
"""
"/proc/net/udp" = """
   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  10: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   102        0 11 2 0 0
  12: 0F02000A:9C40 0202000A:0035 01 00000000:00000000 00:00000000 00000000  1000        0 13 2 0 0
"""
"/etc/systemd/system/multi-user.target.wants/ssh.service" = ""
"/etc/systemd/system/multi-user.target.wants/cron.service" = ""
[[exec]]
program = "/usr/bin/ss"
args = ["-Hltunpe"]
stdout = """
tcp LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=611,fd=3)) ino:1 sk:1 cgroup:/system.slice/ssh.service <->
tcp LISTEN 0 128 127.0.0.1:631 0.0.0.0:* users:(("cupsd",pid=700,fd=7),("cupsd",pid=701,fd=7)) ino:2 sk:2 <->
tcp LISTEN 0 5 [::1]:8080 [::]:* users:(("evil\",pid=1,fd=1)),(\"sshd",pid=8,fd=8)) ino:9 sk:3 <->
udp UNCONN 0 0 127.0.0.53%lo:53 0.0.0.0:* uid:990 ino:11 sk:4 <->
"""
[sysinfo]
hostname = "web-01"
uptime-secs = 86400
unsupported = ["cpu", "memory", "disks", "network"]
[sysinfo.os]
family = "linux"
name = "Debian GNU/Linux"
version = "12"
kernel = "6.1.0-18-amd64"
arch = "x86_64"
[expect]
facts = [
  { kind = "user", facts = { name = "ada", uid = 1000, shell = "/bin/zsh" } },
  { kind = "listening-port", facts = { protocol = "tcp", address = "127.0.0.1", port = 631, process = "cupsd" } },
  { kind = "listening-port", facts = { protocol = "tcp6", address = "::1", port = 8080, process = "" } },
  { kind = "listening-port", facts = { protocol = "udp", address = "127.0.0.53", port = 53, process = "" } },
  { kind = "service", facts = { name = "ssh.service", state = "enabled" } },
]
"#,
    );
    let verdict = warden_testkit::verdict(&fixture, &run);
    assert!(verdict.passed, "{verdict:#?}");
    let Ok(warden_core::report::Output::Facts(groups)) = &run.reports[0].result else {
        panic!("no facts: {:?}", run.reports[0].result);
    };
    let snap = warden_automation::baseline::Snapshot::from_facts(groups);
    let text = snap.canonical();
    assert_eq!(
        text,
        r#"{"os":{"arch":"x86_64","family":"linux","hostname":"web-01","name":"Debian GNU/Linux","version":"12"},"kernel":{"kernel":"6.1.0-18-amd64"},"package":{"bash:amd64":"5.2.15-2+b2"},"service":{"cron.service":"enabled","ssh.service":"enabled"},"listening-port":{"tcp/0.0.0.0:22":"sshd","tcp/127.0.0.1:631":"cupsd","tcp6/[::1]:8080":"","udp/127.0.0.53:53":""},"user":{"ada":"uid=1000 shell=/bin/zsh","root":"uid=0 shell=/bin/bash"}}"#
    );
}

/// When `ss` fails (or is missing, or not granted) the ports are still reported, each with no
/// process: an owner is never guessed.
#[test]
fn the_inventory_reports_ports_without_owners_when_ss_fails() {
    let (fixture, run) = inventory_case(
        r#"
run = "discover"
[config]
packages = false
accounts = false
services = false
[files]
"/proc/net/tcp" = """
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
"""
[[exec]]
program = "/usr/bin/ss"
args = ["-Hltunpe"]
exit-code = 1
stderr = "Cannot open netlink socket: Operation not permitted\n"
[sysinfo]
hostname = "web-01"
unsupported = ["uptime", "os", "cpu", "memory", "disks", "network"]
[expect]
facts = [
  { kind = "listening-port", facts = { protocol = "tcp", address = "0.0.0.0", port = 22, process = "" } },
]
calls = ["fs.read /proc/net/tcp", "exec.run /usr/bin/ss -Hltunpe"]
"#,
    );
    let verdict = warden_testkit::verdict(&fixture, &run);
    assert!(verdict.passed, "{verdict:#?}");
    let warned = run.reports[0].logs.iter().any(|l| {
        l.level == "warn"
            && l.message == "ss failed; listening ports reported without their process"
            && l.fields.contains(&(
                "stderr".to_string(),
                "Cannot open netlink socket: Operation not permitted".to_string(),
            ))
    });
    assert!(warned, "{:#?}", run.reports[0].logs);
}

/// `python3` (as `command` starts it) listening on 127.0.0.1:`port` (0: any), once it listens:
/// the child (its stdin closed ends it) and the port. `None` without python3.
fn python_listener(
    mut command: std::process::Command,
    port: u16,
) -> Option<(std::process::Child, u16)> {
    let mut child = command
        .args([
            "-c",
            "import socket, sys\n\
             s = socket.socket()\n\
             s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('127.0.0.1', int(sys.argv[1])))\n\
             s.listen()\n\
             print(s.getsockname()[1], flush=True)\n\
             sys.stdin.read()\n",
        ])
        .arg(port.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("python3 answers");
    let listening: u16 = line.trim().parse().expect("python3's port");
    assert!(port == 0 || listening == port, "python3 listens on {port}");
    Some((child, listening))
}

/// Through the real runner on this machine: a listener this test opens shows this process as
/// its owner (the test owns it, so `ss` sees it even unprivileged), and when another process
/// listens on the same port instead, the baseline's drift calls the port `changed`, from this
/// process to that one.
#[test]
fn a_listener_shows_its_owning_process_and_a_new_owner_is_drift_changed() {
    if !std::path::Path::new("/usr/bin/ss").exists() {
        eprintln!("skipped: no /usr/bin/ss on this machine");
        return;
    }
    let cli = Cli::new(
        "[allow]\nfs-read = [\"/proc/net/tcp\", \"/proc/net/tcp6\"]\n\
         sysinfo = [\"hostname\", \"os\", \"cpu\", \"memory\", \"disks\", \"network\", \"uptime\"]\n\
         exec = [{ program = \"/usr/bin/ss\", args = [\"-Hltunpe\"] }]\n",
    );
    let out = cli.warden(&[
        "plugin",
        "install",
        &plugin_dir("inventory").display().to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let runbook = cli.tmp.path().join("discover.toml");
    std::fs::write(
        &runbook,
        "name = \"discover\"\n[[steps]]\nid = \"facts\"\nplugin = \"inventory\"\n\
         action = \"discover\"\n\
         config = { packages = false, accounts = false, services = false }\n",
    )
    .expect("runbook");
    let discover = || {
        let out = cli.warden(&["runbook", "run", &runbook.display().to_string()]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    };

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let port = listener.local_addr().expect("address").port();
    let item = format!("tcp/127.0.0.1:{port}");
    let comm = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .expect("comm")
            .trim_end()
            .to_string()
    };
    let me = comm("self");
    discover();
    let history = History::open(&cli.tmp.path().join("data")).expect("history");
    let row = history
        .inventory_of("inventory")
        .expect("history")
        .expect("an inventory");
    let ours: Vec<&Value> = row.facts["value"]
        .as_array()
        .expect("fact groups, as a discover step stores them")
        .iter()
        .filter(|g| g["kind"] == "listening-port" && g["facts"]["port"] == port)
        .collect();
    assert_eq!(ours.len(), 1, "{ours:?}");
    assert_eq!(ours[0]["facts"]["address"], "127.0.0.1");
    assert_eq!(
        ours[0]["facts"]["process"], me,
        "this test process owns the listener"
    );
    let out = cli.warden(&["baseline", "take", "--reason", "with the test's listener"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Another program on the same port: python3, as the tests' toolchain already needs it.
    drop(listener);
    let Some((mut child, _)) = python_listener(std::process::Command::new("python3"), port) else {
        eprintln!("skipped the change of owner: no python3 on this machine");
        return;
    };
    let other = comm(&child.id().to_string());
    assert_ne!(other, me);
    discover();
    let out = cli.warden(&["--json", "baseline", "diff"]);
    // Closing its stdin ends python3.
    drop(child.stdin.take());
    let _ = child.wait();
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(code(&out), Some(1), "{v}");
    let change = v["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .find(|c| c["category"] == "listening-port" && c["item"] == item.as_str())
        .unwrap_or_else(|| panic!("no change of {item}: {v}"));
    assert_eq!(change["change"], "changed", "{change}");
    assert_eq!(change["baseline"], me, "{change}");
    assert_eq!(change["current"], other, "{change}");
}

/// Run unprivileged (as `nobody`, when the tests run as root), `ss` sees only that user's own
/// processes: a listener of another user (this test's) has an empty process, never a guessed
/// one, and a listener of a `nobody` process shows it.
#[test]
fn an_unprivileged_inventory_names_only_its_own_users_listeners() {
    let root = std::fs::read_to_string("/proc/self/status")
        .is_ok_and(|s| s.lines().any(|l| l.starts_with("Uid:\t0\t")));
    let setpriv = std::path::Path::new("/usr/bin/setpriv");
    if !root || !setpriv.exists() || !std::path::Path::new("/usr/bin/ss").exists() {
        eprintln!("skipped: needs root, /usr/bin/setpriv and /usr/bin/ss");
        return;
    }
    // A directory `nobody` can write, with a policy of its own (and its own component cache).
    let tmp = tempfile::tempdir().expect("tempdir");
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let policy = tmp.path().join("warden.toml");
    std::fs::write(
        &policy,
        format!(
            "cache-dir = {:?}\n[allow]\nfs-read = [\"/proc/net/tcp\"]\n\
             sysinfo = [\"hostname\", \"os\", \"cpu\", \"memory\", \"disks\", \"network\", \"uptime\"]\n\
             exec = [{{ program = \"/usr/bin/ss\", args = [\"-Hltunpe\"] }}]\n\
             [trust]\nallow-unsigned = true\n",
            tmp.path().join("cache").display().to_string()
        ),
    )
    .expect("policy");
    let as_nobody = |program: &str| {
        let mut c = std::process::Command::new(setpriv);
        c.args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            program,
        ]);
        c
    };
    let warden = |args: &[&str]| {
        as_nobody(env!("CARGO_BIN_EXE_warden"))
            .arg("--data-dir")
            .arg(tmp.path().join("data"))
            .arg("--config")
            .arg(&policy)
            .args(args)
            .env_remove("WARDEN_DATA_DIR")
            .output()
            .expect("warden runs")
    };
    let out = warden(&[
        "plugin",
        "install",
        &plugin_dir("inventory").display().to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let mine = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
    let my_port = mine.local_addr().expect("address").port();
    let Some((mut child, nobody_port)) = python_listener(as_nobody("/usr/bin/python3"), 0) else {
        eprintln!("skipped: no python3 on this machine");
        return;
    };
    let out = warden(&[
        "run",
        "inventory",
        "--json",
        "--config",
        r#"{"packages": false, "accounts": false, "services": false}"#,
    ]);
    drop(child.stdin.take());
    let _ = child.wait();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    let process_of = |port: u16| {
        let groups = report["result"]["ok"]["value"].as_array().expect("facts");
        let found: Vec<&Value> = groups
            .iter()
            .filter(|g| g["kind"] == "listening-port" && g["facts"]["port"] == port)
            .collect();
        assert_eq!(found.len(), 1, "port {port}: {found:?}");
        found[0]["facts"]["process"].clone()
    };
    assert_eq!(process_of(my_port), "", "another user's listener: no owner");
    assert_eq!(process_of(nobody_port), "python3", "nobody's own listener");
    drop(mine);
}
