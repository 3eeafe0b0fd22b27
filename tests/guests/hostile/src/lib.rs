//! # hostile
//!
//! A test guest that misbehaves on request, to prove the runner contains it and enforces every
//! grant. `check(config)` runs the attack named by the config field `attack`:
//!
//! | attack | what it does | expected of the runner |
//! |---|---|---|
//! | `loop` | spins forever | time limit (epoch interruption / fuel) ends it |
//! | `membomb` | allocates and touches 1 MiB chunks forever | memory limit ends it |
//! | `recursion` | unbounded non-tail recursion | stack overflow traps, host survives |
//! | `logflood` | logs 1 KiB messages forever | log budget ends it |
//! | `panic` | `panic!("hostile panic")` | a trap reported as a plugin failure |
//! | `read` | `fs::read(path)`, summary `read N bytes` | grants enforced; errors carry the cap code |
//! | `list` | `fs::list_dir(path)`, summary = names joined by `,` | same |
//! | `read-loop` | `fs::read(path)` forever, ignoring its errors | the deadline or a cancel ends the run, whatever `path` is |
//! | `exec` | runs `program` with `args` (and `timeout_ms`), summary = stdout without the trailing newline, metric `exit_code` (-1 when killed by a signal) | exec allow-list, timeouts |
//! | `kv-fill` | sets `k0`, `k1`, ... of `value_bytes` (1024) bytes until an error, returned as the plugin error | KV quota (`limit-exceeded`) |
//! | `kv-roundtrip` | sets `key` to `value`, reads it back; summary = value read, metric `keys` | KV persistence |
//! | `sysinfo` | summary `<hostname> / <os name>` | sysinfo grants |
//! | `service` | `service::status(name)`, summary = state (`running`, `stopped`, ...) | service allow-list |
//! | `stdout-flood` | writes `value_bytes` (2 MiB) to stdout in 1 KiB lines, ignoring write errors | one output budget (`limit-exceeded: log-bytes`) |
//! | `log-and-stderr` | logs `value_bytes` (40,000) bytes in 1 KiB records, then writes as many to stderr, ignoring errors | logs and stderr share the budget |
//! | `escapes` | summary, metric, log and field with ESC sequences, BEL, NUL, CR and bidi overrides ([`ESCAPES`]) | human output escapes them, `--json` keeps them |
//! | `escapes-error` | the plugin error `failed` with the message [`ESCAPES`] | same, for errors |
//! | `write` | `fs_write::write(path, contents)` from `check`, summary `wrote` | only `apply` may change the machine |
//! | `remove` | `fs_write::remove_file(path)` from `check`, summary `removed` | same |
//! | `service-start` | `service_control::start(name)` from `check`, summary `started` | same |
//! | `metrics` | returns `count` metrics `m0`, `m1`, ... (value = index, unit `u`) | stored outputs capped, expressions over big outputs bounded |
//!
//! Capability errors become plugin errors whose code is the cap-error code (`denied`,
//! `not-found`, ...). An unknown or missing attack is a `bad-config` error.
//!
//! `plan(config)` proposes one action on `path` (kind `create`, or `delete` when `remove` is
//! true) without touching anything, unless `attack` names one of the acting attacks (`write`,
//! `remove`, `service-start`): then it first does that, as a plan that acts, and fails with the
//! cap-error code if it is refused; `apply` writes `contents` (default empty) to each action's
//! target, or removes the target when `remove` is true, and reports `applied`, or `failed` with
//! the cap-error code as detail (e.g. `denied`). It deliberately trusts the action targets.

use std::hint::black_box;
use std::io::Write;
use std::time::Duration;

use serde::Deserialize;
use warden_sdk::{
    Action, ActionKind, ActionOutcome, Check, CheckResult, PluginError, Remediation, exec, fs,
    fs_write, kv, log, service, service_control, sysinfo,
};

/// Every knob of every attack; each attack reads the fields it needs.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Config {
    attack: Option<String>,
    path: Option<String>,
    program: Option<String>,
    args: Vec<String>,
    timeout_ms: Option<u64>,
    value_bytes: Option<usize>,
    key: Option<String>,
    value: Option<String>,
    name: Option<String>,
    contents: Option<String>,
    remove: bool,
    count: Option<usize>,
}

fn required<'a>(value: &'a Option<String>, key: &str) -> Result<&'a str, PluginError> {
    value
        .as_deref()
        .ok_or_else(|| PluginError::bad_config(format!("`{key}` is required for this attack")))
}

struct Hostile;

impl Check for Hostile {
    fn check(config: &str) -> Result<CheckResult, PluginError> {
        let config: Config = warden_sdk::config(config)?;
        match config.attack.as_deref() {
            Some("loop") => spin(),
            Some("membomb") => membomb(),
            Some("recursion") => Ok(CheckResult::ok(format!("depth {}", recurse(0)))),
            Some("logflood") => logflood(),
            Some("panic") => panic!("hostile panic"),
            Some("read") => {
                let bytes = fs::read(required(&config.path, "path")?)?;
                Ok(CheckResult::ok(format!("read {} bytes", bytes.len())))
            }
            Some("read-loop") => {
                let path = required(&config.path, "path")?;
                loop {
                    let _ = black_box(fs::read(path));
                }
            }
            Some("list") => {
                let entries = fs::list_dir(required(&config.path, "path")?)?;
                let names: Vec<String> = entries.into_iter().map(|e| e.name).collect();
                Ok(CheckResult::ok(names.join(",")))
            }
            Some("exec") => run_program(&config),
            Some("kv-fill") => kv_fill(config.value_bytes.unwrap_or(1024)),
            Some("kv-roundtrip") => kv_roundtrip(&config),
            Some("sysinfo") => {
                let host = sysinfo::hostname()?;
                let os = sysinfo::os()?;
                Ok(CheckResult::ok(format!("{host} / {}", os.name)))
            }
            Some("service") => {
                let state = service::status(required(&config.name, "name")?)?;
                Ok(CheckResult::ok(state.as_str()))
            }
            Some("stdout-flood") => flood(
                &mut std::io::stdout(),
                config.value_bytes.unwrap_or(2 << 20),
            ),
            Some("log-and-stderr") => log_and_stderr(config.value_bytes.unwrap_or(40_000)),
            Some("escapes") => Ok(escapes()),
            Some("escapes-error") => Err(PluginError::new("failed", ESCAPES)),
            Some(attack @ ("write" | "remove" | "service-start")) => {
                Ok(CheckResult::ok(act(attack, &config)?))
            }
            Some("metrics") => Ok((0..config.count.unwrap_or(1))
                .fold(CheckResult::ok("many metrics"), |r, i| {
                    r.metric(format!("m{i}"), i as f64, "u")
                })),
            Some(other) => Err(PluginError::bad_config(format!("unknown attack {other:?}"))),
            None => Err(PluginError::bad_config("`attack` is required")),
        }
    }
}

/// Burns CPU forever; `black_box` keeps the optimiser from proving the loop useless.
fn spin() -> ! {
    let mut counter = 0u64;
    loop {
        counter = black_box(counter).wrapping_add(1);
    }
}

/// Allocates 1 MiB at a time and writes to every page, so the memory is really committed.
fn membomb() -> ! {
    const CHUNK: usize = 1 << 20;
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = vec![0u8; CHUNK];
        for page in chunk.iter_mut().step_by(4096) {
            *page = 1;
        }
        hoard.push(black_box(chunk));
    }
}

/// Recurses until the stack runs out. The work after the call keeps it from being a tail call,
/// and the `black_box` exit that never triggers keeps the compiler from folding it away.
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 8]);
    if black_box(depth) == u64::MAX {
        return 0;
    }
    recurse(frame[0] + 1).wrapping_add(frame[7])
}

fn logflood() -> ! {
    let message = "x".repeat(1024);
    let mut n = 0u64;
    loop {
        log::info(&message, &[("n", &n.to_string())]);
        n = n.wrapping_add(1);
    }
}

/// Writes `total` bytes to `out` in 1 KiB lines, carrying on past refused writes, as a plugin
/// that ignores errors would; the summary says how many bytes were taken.
fn flood(out: &mut impl Write, total: usize) -> Result<CheckResult, PluginError> {
    let mut line = vec![b'x'; 1023];
    line.push(b'\n');
    let (mut written, mut refused) = (0usize, 0usize);
    while written + refused < total {
        match out.write_all(&line).and_then(|()| out.flush()) {
            Ok(()) => written += line.len(),
            Err(_) => refused += line.len(),
        }
    }
    Ok(CheckResult::ok(format!(
        "wrote {written} bytes, {refused} refused"
    )))
}

/// Each within the budget alone, over it together.
fn log_and_stderr(each: usize) -> Result<CheckResult, PluginError> {
    let record = "y".repeat(1024);
    for _ in 0..each / record.len() {
        log::info(&record, &[]);
    }
    flood(&mut std::io::stderr(), each)
}

/// Terminal control sequences a plugin could try on whoever reads its output: clear the screen,
/// ring the bell, a NUL, a carriage return rewriting the line, a window title (OSC), and the
/// bidi override and isolate that reorder what is shown.
pub const ESCAPES: &str = "\u{1b}[2J\u{7}bell\0nul\rCR\u{1b}]0;pwned\u{7}\u{202e}evil\u{2066}iso";

fn escapes() -> CheckResult {
    log::warn(
        &format!("log {ESCAPES}\nsecond line"),
        &[(&format!("key{ESCAPES}"), ESCAPES)],
    );
    CheckResult::warning(format!("summary {ESCAPES}")).metric(
        format!("metric{ESCAPES}"),
        1.0,
        format!("unit{ESCAPES}"),
    )
}

fn run_program(config: &Config) -> Result<CheckResult, PluginError> {
    let mut cmd = exec::Command::new(required(&config.program, "program")?).args(&config.args);
    if let Some(ms) = config.timeout_ms {
        cmd = cmd.timeout(Duration::from_millis(ms));
    }
    let out = cmd.run()?;
    let stdout = out.stdout_lossy();
    let exit_code = out.exit_code.map_or(-1.0, f64::from);
    Ok(CheckResult::ok(stdout.trim_end_matches(['\n', '\r'])).metric("exit_code", exit_code, ""))
}

fn kv_fill(value_bytes: usize) -> Result<CheckResult, PluginError> {
    const MAX_KEYS: usize = 100_000;
    let value = vec![b'x'; value_bytes];
    for i in 0..MAX_KEYS {
        kv::set(&format!("k{i}"), &value)?;
    }
    Ok(CheckResult::ok(format!("stored {MAX_KEYS} keys")))
}

fn kv_roundtrip(config: &Config) -> Result<CheckResult, PluginError> {
    let key = required(&config.key, "key")?;
    kv::set(key, required(&config.value, "value")?)?;
    let Some(read) = kv::get(key)? else {
        return Err(PluginError::new(
            "failed",
            format!("key {key:?} vanished after set"),
        ));
    };
    let keys = kv::list_keys()?.len();
    Ok(CheckResult::ok(String::from_utf8_lossy(&read)).metric("keys", keys as f64, ""))
}

/// The attacks that change the machine, for `check` and `plan` to try: the runner must refuse
/// them outside `apply`.
fn act(attack: &str, config: &Config) -> Result<&'static str, PluginError> {
    match attack {
        "write" => {
            let contents = config.contents.as_deref().unwrap_or_default();
            fs_write::write(required(&config.path, "path")?, contents)?;
            Ok("wrote")
        }
        "remove" => {
            fs_write::remove_file(required(&config.path, "path")?)?;
            Ok("removed")
        }
        "service-start" => {
            service_control::start(required(&config.name, "name")?)?;
            Ok("started")
        }
        other => Err(PluginError::bad_config(format!(
            "{other:?} is not an acting attack"
        ))),
    }
}

impl Remediation for Hostile {
    fn plan(config: &str) -> Result<Vec<Action>, PluginError> {
        let config: Config = warden_sdk::config(config)?;
        if let Some(attack @ ("write" | "remove" | "service-start")) = config.attack.as_deref() {
            act(attack, &config)?;
        }
        let path = required(&config.path, "path")?;
        let (kind, what) = if config.remove {
            (ActionKind::Delete, "remove")
        } else {
            (ActionKind::Create, "write")
        };
        Ok(vec![Action::new("1", kind, path, format!("{what} {path}"))])
    }

    fn apply(config: &str, actions: Vec<Action>) -> Result<Vec<ActionOutcome>, PluginError> {
        let config: Config = warden_sdk::config(config)?;
        let contents = config.contents.unwrap_or_default();
        Ok(actions
            .iter()
            .map(|action| {
                let (result, done) = if config.remove {
                    (fs_write::remove_file(&action.target), "removed")
                } else {
                    (fs_write::write(&action.target, &contents), "written")
                };
                match result {
                    Ok(()) => ActionOutcome::applied(action, done),
                    Err(e) => ActionOutcome::failed(action, e.code()),
                }
            })
            .collect())
    }
}

warden_sdk::check_remediation!(Hostile);
