//! `warden plugin new|build|test`: the plugin author's loop on a project directory, without an
//! agent's data dir or policy: scaffold a project, build its component with pinned toolchains,
//! run it against fixture files on a fake machine.

use super::output::{inert, inert_lines, print_json};
use anyhow::{Context as _, Result, bail};
use clap::Args;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use warden_author::build::{self, BuildOptions};
use warden_author::scaffold::{self, Lang, ScaffoldOptions};
use warden_author::toolchain;
use warden_core::manifest::Role;

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The plugin name (lowercase letters, digits and dashes).
    pub name: String,
    /// What the plugin does: `discovery` (report facts), `check` (judge something) or
    /// `remediation` (plan and apply a fix).
    #[arg(long, value_parser = parse_role)]
    pub role: Role,
    /// The language: rust, python or js.
    #[arg(long, default_value = "rust")]
    pub lang: Lang,
    /// The project directory to create. Default: ./<NAME>.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Rust only: a checkout of Warden's `sdk/` (the SDK is not on crates.io). Default: the SDK
    /// of the source tree this `warden` was built from.
    #[arg(long, value_name = "PATH")]
    pub sdk: Option<PathBuf>,
}

fn parse_role(s: &str) -> Result<Role, String> {
    match s {
        "discovery" => Ok(Role::Discovery),
        "check" => Ok(Role::Check),
        "remediation" => Ok(Role::Remediation),
        other => Err(format!(
            "unknown role `{other}`: use discovery, check or remediation"
        )),
    }
}

pub fn new_plugin(args: NewArgs, json: bool) -> Result<ExitCode> {
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    let files = scaffold::scaffold(&ScaffoldOptions {
        name: args.name.clone(),
        role: args.role,
        lang: args.lang,
        dir: dir.clone(),
        sdk_path: args.sdk,
    })?;
    if json {
        print_json(&serde_json::json!({
            "name": args.name, "role": args.role.to_string(), "lang": args.lang.to_string(),
            "dir": dir, "files": files,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "created {} ({} plugin in {}) in {}:",
        args.name,
        args.role,
        args.lang,
        dir.display()
    );
    for f in &files {
        println!("  {}", f.display());
    }
    println!("next:");
    println!("  cd {}", dir.display());
    println!("  warden plugin build    # builds plugin.wasm");
    println!("  warden plugin test     # runs tests/*.toml on a fake machine");
    Ok(ExitCode::SUCCESS)
}
use warden_testkit::{Fixture, Harness, Verdict, verdict};

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The plugin project (plugin.toml and its sources).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Where to write the component. Default: the manifest's `component`, in the project.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Where the pinned toolchains (componentize-py, ComponentizeJS) are installed, once.
    /// Default: the user's cache dir (Linux: ~/.cache/warden/toolchains).
    #[arg(long, env = "WARDEN_TOOLCHAINS", value_name = "DIR")]
    pub toolchains: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The plugin project, with its component built.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// A fixture file (repeatable). Default: every `tests/*.toml` of the project.
    #[arg(long = "fixture", value_name = "FILE")]
    pub fixtures: Vec<PathBuf>,
    /// Where compiled components are kept between runs. Default: the user's cache dir
    /// (Linux: ~/.cache/warden/compiled).
    #[arg(long, env = "WARDEN_TEST_CACHE", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

fn user_cache(sub: &str) -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("warden").join(sub))
}

pub fn build_plugin(args: BuildArgs, json: bool) -> Result<ExitCode> {
    let toolchains = args
        .toolchains
        .or_else(toolchain::default_dir)
        .context("no cache directory for toolchains: pass --toolchains DIR")?;
    let progress = |line: &str| eprintln!("{line}");
    let report = build::build(
        &BuildOptions {
            dir: args.dir,
            out: args.out,
            toolchains,
        },
        &progress,
    )?;
    if json {
        print_json(&report)?;
    } else {
        println!(
            "built {} ({}): {} ({} KB) in {:.1} s",
            report.plugin,
            report.language,
            report.component.display(),
            report.bytes.div_ceil(1024),
            report.seconds
        );
        for w in &report.warnings {
            eprintln!("warning: {w}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The project's `tests/*.toml`, sorted.
fn default_fixtures(dir: &Path) -> Result<Vec<PathBuf>> {
    let tests = dir.join("tests");
    let entries = std::fs::read_dir(&tests).with_context(|| {
        format!(
            "no fixtures: {} does not exist; pass --fixture FILE or add tests/<case>.toml",
            tests.display()
        )
    })?;
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    out.sort();
    if out.is_empty() {
        bail!(
            "no fixtures in {}: add tests/<case>.toml (see docs/PLUGIN-AUTHORS.md) or pass --fixture FILE",
            tests.display()
        );
    }
    Ok(out)
}

pub fn test_plugin(args: TestArgs, json: bool) -> Result<ExitCode> {
    let cache = args
        .cache_dir
        .or_else(|| user_cache("compiled"))
        .context("no cache directory: pass --cache-dir DIR")?;
    if !json && std::io::stderr().is_terminal() {
        eprintln!(
            "preparing the plugin (a first run compiles its component; later runs load it from the cache)"
        );
    }
    let harness = Harness::new(&args.dir, &cache)?;
    let files = if args.fixtures.is_empty() {
        default_fixtures(&args.dir)?
    } else {
        args.fixtures
    };
    let m = harness.manifest();
    if !json {
        println!(
            "testing {} {} ({}) from {}: {} case(s)",
            inert(&m.name),
            inert(&m.version.to_string()),
            m.role,
            args.dir.display(),
            files.len()
        );
        for w in harness.warnings() {
            println!("warning: {}", inert_lines(w));
        }
    }
    let mut verdicts: Vec<Verdict> = Vec::new();
    for file in &files {
        let v = match Fixture::load(file) {
            Ok(fixture) => {
                let run = harness.run(&fixture)?;
                verdict(&fixture, &run)
            }
            Err(e) => Verdict {
                name: file.display().to_string(),
                passed: false,
                failures: vec![e.to_string()],
                result: "not run: the fixture is invalid".into(),
                calls: vec![],
                duration_ms: 0.0,
            },
        };
        if !json {
            print_verdict(&v);
        }
        verdicts.push(v);
    }
    let failed = verdicts.iter().filter(|v| !v.passed).count();
    if json {
        print_json(&serde_json::json!({
            "plugin": m.name,
            "version": m.version.to_string(),
            "warnings": harness.warnings(),
            "cases": verdicts,
            "passed": verdicts.len() - failed,
            "failed": failed,
        }))?;
    } else {
        println!(
            "{} case(s): {} passed, {failed} failed",
            verdicts.len(),
            verdicts.len() - failed
        );
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_verdict(v: &Verdict) {
    let mark = if v.passed { "ok  " } else { "FAIL" };
    // The result and failures quote what the plugin returned and logged.
    println!(
        "  {mark} {}: {} ({} call(s), {:.1} ms)",
        inert(&v.name),
        inert_lines(&v.result),
        v.calls.len(),
        v.duration_ms
    );
    for f in &v.failures {
        println!("         - {}", inert_lines(f));
    }
}
