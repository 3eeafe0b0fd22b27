//! What a newcomer meets at the command line: a reader that stops early, error lines, readable
//! times and tables, and commands that find nothing where nothing was made yet.

use std::process::Stdio;

use crate::cli::{Cli, POLICY, text};

#[test]
fn a_reader_that_closes_stdout_early_ends_the_command_quietly() {
    let cli = Cli::new(POLICY);
    // A pipe whose read end is already closed: the first write to stdout meets a broken pipe,
    // as under `warden --json ... | head -2` once `head` has its lines.
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = cli
        .command(&["--json", "policy", "show"])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("warden runs");
    let err = text(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err, "", "nothing on stderr");
    assert_eq!(out.status.code(), Some(141), "{err}");
}

/// The error line of a failed command: exactly one line, in which no cause repeats what the part
/// before it already said (`a: b: b`, or `a (os error 2): a (os error 2)`).
fn assert_one_line_each_cause_once(what: &str, out: &std::process::Output) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{what}: {err}");
    assert_eq!(err.lines().count(), 1, "{what}: {err}");
    let parts: Vec<&str> = err.trim_end().split(": ").collect();
    for pair in parts.windows(2) {
        assert!(
            !pair[0].contains(pair[1].trim()),
            "{what}: `{}` is said twice in: {err}",
            pair[1]
        );
    }
}

#[test]
fn each_cause_of_an_error_is_said_once() {
    let cli = Cli::new(POLICY);
    let missing = cli.tmp.path().join("missing.wbundle");
    let out = cli.warden(&["plugin", "verify", &missing.display().to_string()]);
    assert_one_line_each_cause_once("a missing bundle", &out);
    assert_eq!(text(&out.stderr).matches("os error").count(), 1);

    // Nothing listens on port 1 of the loopback: the connection is refused.
    let out = cli
        .command(&["ctl", "--addr", "http://127.0.0.1:1", "version"])
        .env("WARDEN_TOKEN", "x")
        .output()
        .expect("warden runs");
    assert_one_line_each_cause_once("an agent that is not there", &out);
    assert!(text(&out.stderr).contains("cannot reach the agent"));

    // An address already in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let config = cli.tmp.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nlisten = \"127.0.0.1:{port}\"\n[[api.token]]\nname = \"noc\"\nrole = \"viewer\"\nsha256 = \"{}\"\n",
            "a".repeat(64)
        ),
    )
    .expect("agent config");
    let out = cli.warden(&["serve", "--agent-config", &config.display().to_string()]);
    assert_one_line_each_cause_once("a port in use", &out);
    assert_eq!(text(&out.stderr).matches("os error").count(), 1);
}

#[test]
fn times_are_rfc3339_and_tables_have_a_header() {
    let cli = Cli::new(POLICY);
    let dir = crate::cli::plugin_dir("disk-usage").display().to_string();
    assert!(cli.warden(&["plugin", "install", &dir]).status.success());

    let out = cli.warden(&["audit", "tail"]);
    let shown = text(&out.stdout);
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["SEQ", "AT", "EVENT", "DATA"],
        "{shown}"
    );
    let at = lines[1].split_whitespace().nth(1).unwrap_or_default();
    assert!(
        at.len() == "2026-12-01T06:22:29Z".len() && at.ends_with('Z') && at.contains('T'),
        "{shown}"
    );
    // `--json` keeps the machine value.
    let out = cli.warden(&["--json", "audit", "tail"]);
    let records: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(records[0]["at_ms"].is_u64(), "{records}");

    let out = cli.warden(&["plugin", "list"]);
    let shown = text(&out.stdout);
    let lines: Vec<&str> = shown.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("INSTALLED"),
        "{shown}"
    );
    assert_eq!(
        lines[0].find("ROLE"),
        lines[1].find("check"),
        "columns align: {shown}"
    );

    // A signed bundle's times.
    let prefix = cli.tmp.path().join("publisher");
    let out = cli.warden(&["key", "generate", "--out", &prefix.display().to_string()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bundle = cli.tmp.path().join("d.wbundle").display().to_string();
    let key = prefix.with_extension("key").display().to_string();
    let out = cli.warden(&["plugin", "pack", &dir, "--key", &key, "--out", &bundle]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = cli.warden(&["plugin", "verify", &bundle]);
    let shown = text(&out.stdout);
    let signed = shown
        .lines()
        .find(|l| l.trim_start().starts_with("signed at"))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(!signed.contains("epoch"), "{signed}");
    assert_eq!(signed.matches('Z').count(), 2, "{signed}");
}

#[test]
fn read_only_commands_create_nothing_and_say_there_is_nothing() {
    let cli = Cli::new(POLICY);
    let data = cli.tmp.path().join("data");

    let out = cli.warden(&["plugin", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("no plugins installed"),
        "{}",
        text(&out.stdout)
    );
    assert!(!data.exists(), "plugin list created the data dir");

    let out = cli.warden(&["runs", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("no runs yet"),
        "{}",
        text(&out.stdout)
    );
    let out = cli.warden(&["--json", "runs", "list"]);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(listed, serde_json::json!({"runs": [], "next_page": null}));
    let out = cli.warden(&["runs", "show", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!data.exists(), "runs created the data dir");

    let out = cli.warden(&["audit", "verify"]);
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "no log is not an intact log: {err}"
    );
    assert!(err.contains("nothing to verify"), "{err}");
    assert!(
        !text(&out.stdout).contains("intact"),
        "{}",
        text(&out.stdout)
    );
    assert!(!data.exists(), "audit verify created the data dir");
}

#[test]
fn global_flags_work_after_the_subcommand_and_logs_to_a_pipe_have_no_colors() {
    let cli = Cli::new(POLICY);
    let data = cli.tmp.path().join("after");
    let warden = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .env_remove("WARDEN_DATA_DIR")
            .env_remove("NO_COLOR")
            .env("WARDEN_LOG", "debug")
            .output()
            .expect("warden runs")
    };
    let out = warden(&["policy", "show", "--json", "-v"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json after it");
    assert_eq!(
        shown["data-dir"].as_str(),
        data.to_str(),
        "--data-dir after the subcommand: {shown}"
    );
    // Preparing the sandbox logs at debug level, before the missing plugin is refused.
    let out = warden(&["run", "ghost"]);
    let err = text(&out.stderr);
    assert!(err.contains("DEBUG"), "debug logs on stderr: {err}");
    assert!(
        !err.contains('\u{1b}'),
        "no ANSI escapes into a pipe: {err:?}"
    );
}

/// Text without its ANSI color sequences (`ESC [ ... m`).
fn uncolored(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn status_words_are_colored_for_a_terminal_and_the_table_stays_aligned() {
    let cli = crate::cli::hostile_cli();
    let runbook = cli.tmp.path().join("attack.toml");
    // One run that succeeds, one whose plugin fails: two status words.
    for (name, attack) in [("fine", "escapes"), ("broken", "escapes-error")] {
        std::fs::write(
            &runbook,
            format!(
                "name = \"{name}\"\n[[steps]]\nid = \"go\"\nplugin = \"hostile\"\naction = \"check\"\nconfig = {{ attack = \"{attack}\" }}\n"
            ),
        )
        .expect("runbook");
        let _ = cli.warden(&["runbook", "run", &runbook.display().to_string()]);
    }

    // CLICOLOR_FORCE stands for a terminal (as under `less -R`).
    let out = cli
        .command(&["runs", "list"])
        .env("CLICOLOR_FORCE", "1")
        .env_remove("NO_COLOR")
        .output()
        .expect("warden runs");
    let shown = text(&out.stdout);
    assert!(shown.contains("\x1b[32msucceeded\x1b[0m"), "{shown:?}");
    assert!(shown.contains("\x1b[31mfailed\x1b[0m"), "{shown:?}");
    // Aligned as people see it: every column after STATUS starts where its header does.
    let lines: Vec<String> = shown.lines().map(uncolored).collect();
    let at = lines[0].find("ORIGIN").expect("header");
    for line in &lines[1..] {
        assert_eq!(
            line.get(at..at + 3),
            Some("cli"),
            "the ORIGIN column is aligned: {lines:#?}"
        );
    }

    // A pipe gets plain words, and NO_COLOR wins over CLICOLOR_FORCE.
    let plain = cli.warden(&["runs", "list"]);
    assert!(!text(&plain.stdout).contains('\x1b'));
    let out = cli
        .command(&["runs", "list"])
        .env("CLICOLOR_FORCE", "1")
        .env("NO_COLOR", "1")
        .output()
        .expect("warden runs");
    assert!(!text(&out.stdout).contains('\x1b'));
    assert_eq!(text(&out.stdout), text(&plain.stdout));
}
