//! `warden plugin install|pack|sign|verify|list|inspect|remove` on the agent's store, and the
//! author's `build|test` on a project directory (see `author`).

use super::Context;
use super::output::{inert, inert_lines, print_json, print_table, table};
use super::signing::SigningArgs;
use super::times;
use anyhow::{Result, bail};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;
use warden_agent::store::PluginStore;
use warden_bundle::{Bundle, keys, trust};

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    #[command(flatten)]
    Store(StoreCommand),
    /// Start a plugin project: manifest, source, tests and README, for a role and language.
    New(super::author::NewArgs),
    /// Build a plugin project (Rust, Python or JavaScript) into its component.
    Build(super::author::BuildArgs),
    /// Run a built plugin against fixture files on a fake machine and check what it did.
    Test(super::author::TestArgs),
}

/// The commands on this agent's plugin store.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Install a signed bundle (or, in development mode, a directory with plugin.toml + component).
    Install { path: PathBuf },
    /// Build a signed bundle from a plugin directory.
    Pack {
        dir: PathBuf,
        #[command(flatten)]
        signing: SigningArgs,
    },
    /// Add a co-signature to a bundle.
    Sign {
        bundle: PathBuf,
        #[arg(long)]
        key: PathBuf,
    },
    /// Say who signed a bundle and whether this agent would accept it, and why.
    Verify { bundle: PathBuf },
    /// List installed plugins.
    List,
    /// Show a plugin's manifest, what it requests and what the site policy grants.
    Inspect { name: String },
    /// Remove an installed plugin.
    Remove { name: String },
}

pub fn run(cx: &Context, cmd: PluginCommand) -> Result<ExitCode> {
    match cmd {
        PluginCommand::Store(cmd) => run_on_store(cx, cmd),
        // The author's commands work on a project, not on this agent's store.
        PluginCommand::New(args) => super::author::new_plugin(args, cx.json),
        PluginCommand::Build(args) => super::author::build_plugin(args, cx.json),
        PluginCommand::Test(args) => super::author::test_plugin(args, cx.json),
    }
}

/// `plugin list` reads the store as it is: it opens no runner, so it creates no data
/// directory, store or audit log where there is none yet.
fn list(cx: &Context) -> Result<ExitCode> {
    let plugins = PluginStore::existing(&cx.data_dir).list()?;
    if cx.json {
        print_json(&plugins)?;
    } else if plugins.is_empty() {
        println!(
            "no plugins installed in {}{}",
            cx.data_dir.display(),
            if cx.data_dir.exists() {
                ""
            } else {
                " (it does not exist yet)"
            }
        );
    } else {
        let mut rows = table([
            "NAME",
            "VERSION",
            "ROLE",
            "SHA256",
            "INSTALLED",
            "DESCRIPTION",
        ]);
        for p in plugins {
            let m = &p.manifest;
            rows.add_row([
                inert(&m.name).into_owned(),
                inert(&m.version.to_string()).into_owned(),
                m.role.as_str().to_string(),
                p.sha256.get(..16).unwrap_or(&p.sha256).to_string(),
                times::at_secs(p.installed_at),
                inert(&m.description).into_owned(),
            ]);
        }
        print_table(&rows);
    }
    Ok(ExitCode::SUCCESS)
}

fn run_on_store(cx: &Context, cmd: StoreCommand) -> Result<ExitCode> {
    if let StoreCommand::List = cmd {
        return list(cx);
    }
    let runner = cx.runner()?;
    match cmd {
        StoreCommand::Pack { dir, signing } => {
            let mut bundle = Bundle::from_plugin_dir(&dir, signing.valid_days)?;
            let st = bundle.statement.clone();
            let default = format!("{}-{}.wbundle", st.name, st.version);
            let (out, key_id) = signing.sign_and_write(&mut bundle, default)?;
            if cx.json {
                print_json(&serde_json::json!({ "bundle": out, "statement": st }))?;
            } else {
                println!(
                    "packed {} {} into {} (signed by key {key_id}, expires in {} days)",
                    inert(&st.name),
                    inert(&st.version.to_string()),
                    out.display(),
                    signing.valid_days
                );
            }
        }
        StoreCommand::Sign { bundle: path, key } => {
            let key = keys::load_secret(&key)?;
            let mut bundle = Bundle::read(&path, cx.policy.limits.max_bundle_bytes)?;
            bundle.sign(&key);
            std::fs::write(&path, bundle.to_bytes()?)?;
            println!(
                "added signature by key {} to {}",
                keys::key_id(&key.verifying_key()),
                path.display()
            );
        }
        StoreCommand::Verify { bundle: path } => {
            let bundle = Bundle::read(&path, cx.policy.limits.max_bundle_bytes)?;
            let checks = trust::check_signatures(&bundle, &cx.policy);
            let highest = runner.high_water().get(&bundle.statement.name)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs();
            let verdict = trust::evaluate(&bundle, &cx.policy, highest.as_ref(), now);
            let st = &bundle.statement;
            if cx.json {
                print_json(&serde_json::json!({
                    "statement": st,
                    "signatures": checks.iter().map(|(c, _)| c).collect::<Vec<_>>(),
                    "accepted": verdict.is_ok(),
                    "reason": verdict.as_ref().err(),
                }))?;
            } else {
                // A bundle being verified is not trusted yet: nothing in it reaches the terminal raw.
                println!(
                    "{} {} (component sha256 {}, {} bytes)",
                    inert(&st.name),
                    inert(&st.version.to_string()),
                    inert(&st.component_sha256),
                    st.component_length
                );
                println!(
                    "  signed at {}, expires at {}",
                    times::at_secs(st.signed_at),
                    times::at_secs(st.expires_at)
                );
                if checks.is_empty() {
                    println!("  no signatures");
                }
                for (c, _) in &checks {
                    let who = c
                        .trusted_as
                        .as_deref()
                        .map(|n| format!("trusted as `{n}`"))
                        .unwrap_or_else(|| "not trusted here".into());
                    println!(
                        "  signature by key {}: {}, {who}",
                        c.key_id,
                        if c.valid { "valid" } else { "INVALID" }
                    );
                }
                match &verdict {
                    Ok(a) if a.unsigned => {
                        println!("this agent would accept it: yes, UNSIGNED (development mode)")
                    }
                    Ok(a) => println!(
                        "this agent would accept it: yes (signed by {})",
                        inert(&a.signers.join(", "))
                    ),
                    Err(e) => println!(
                        "this agent would accept it: no: {}",
                        inert_lines(&e.to_string())
                    ),
                }
            }
            return Ok(if verdict.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        StoreCommand::Install { path } => {
            say_compiling(&path);
            let report = if path.is_dir() {
                runner.install_dir(&path)?
            } else {
                runner.install_bundle(&path)?
            };
            if cx.json {
                print_json(&report)?;
            } else {
                let m = &report.plugin.manifest;
                let provenance = if report.unsigned {
                    "UNSIGNED, development mode".to_string()
                } else {
                    format!("signed by {}", inert(&report.signers.join(", ")))
                };
                println!(
                    "installed {} {} ({}, sha256 {}, {provenance})",
                    inert(&m.name),
                    inert(&m.version.to_string()),
                    m.role,
                    &report.plugin.sha256[..16]
                );
                if report.unsigned {
                    eprintln!(
                        "warning: DEVELOPMENT MODE: this plugin is not signed; \
                         never enable trust.allow-unsigned on a production agent"
                    );
                }
                for w in &report.warnings {
                    eprintln!("warning: {}", inert_lines(w));
                }
                for r in &report.refusals {
                    eprintln!(
                        "warning: the site policy refuses {}; the plugin will not run until that changes",
                        inert(&r.to_string())
                    );
                }
                for r in &report.narrowed {
                    eprintln!(
                        "note: not granted by the site policy: {}",
                        inert(&r.to_string())
                    );
                }
            }
        }
        StoreCommand::List => return list(cx),
        StoreCommand::Inspect { name } => {
            let (installed, report) = runner.inspect(&name)?;
            if cx.json {
                print_json(&serde_json::json!({
                    "plugin": installed,
                    "requested": installed.manifest.capabilities,
                    "granted": report.grant,
                    "refused": report.refusals,
                    "narrowed": report.narrowed,
                }))?;
            } else {
                let m = &installed.manifest;
                println!(
                    "{} {} ({})",
                    inert(&m.name),
                    inert(&m.version.to_string()),
                    m.role
                );
                println!("  {}", inert(&m.description));
                if !m.compliance.is_empty() {
                    println!("  evidence for {}", inert(&m.compliance.summary()));
                }
                println!(
                    "  sha256 {}  {} bytes",
                    installed.sha256, installed.size_bytes
                );
                println!("requested:");
                print!(
                    "{}",
                    inert_lines(&indent(&toml::to_string_pretty(&m.capabilities)?))
                );
                println!("granted:");
                let g = &report.grant;
                for e in &g.exec {
                    // `{:?}` escapes control characters but not bidi controls.
                    println!(
                        "  exec {} args matching {} and {}",
                        inert(&e.program.to_string()),
                        inert(&format!("{:?}", e.manifest_args)),
                        inert(&format!("{:?}", e.policy_args))
                    );
                }
                for p in &g.fs_read {
                    println!("  fs read {}", inert(&p.display().to_string()));
                }
                for p in &g.fs_write {
                    println!("  fs write {}", inert(&p.display().to_string()));
                }
                if !g.sysinfo.is_empty() {
                    println!(
                        "  sysinfo {}",
                        g.sysinfo
                            .iter()
                            .map(|c| c.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                if let Some(q) = g.kv_quota_bytes {
                    println!("  kv quota {q} bytes");
                }
                for h in &g.http {
                    println!("  http {}", inert(&h.to_string()));
                }
                if !g.http_networks.is_empty() {
                    let nets: Vec<String> = g.http_networks.iter().map(|n| n.to_string()).collect();
                    println!("  http networks {}", nets.join(", "));
                }
                for s in &g.services {
                    println!(
                        "  service {}{}",
                        inert(&s.to_string()),
                        if g.service_control {
                            " (status and control)"
                        } else {
                            " (status)"
                        }
                    );
                }
                println!(
                    "  limits: memory {} MB, time {} ms",
                    g.limits.memory_bytes >> 20,
                    g.limits.timeout.as_millis()
                );
                for r in &report.narrowed {
                    println!(
                        "  not granted (calls will be denied): {}",
                        inert(&r.to_string())
                    );
                }
                if report.refusals.is_empty() {
                    println!("refused: nothing; the plugin can run");
                } else {
                    println!(
                        "refused (the plugin will not run until the policy allows these or the manifest drops them):"
                    );
                    for r in &report.refusals {
                        println!("  {}", inert(&r.to_string()));
                    }
                }
            }
        }
        StoreCommand::Remove { name } => {
            let Some(removed) = runner.remove(&name)? else {
                bail!("plugin `{}` is not installed", inert(&name));
            };
            if cx.json {
                print_json(&removed)?;
            } else {
                println!(
                    "removed {} {}",
                    inert(&removed.manifest.name),
                    inert(&removed.manifest.version.to_string())
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// A component is compiled to native code at install (once; runs use the compiled copy), which
/// takes seconds for a large one: a Python plugin is ~18 MB and ~5 s on 2 cores. Above this size
/// the install says so on stderr instead of looking hung; a Rust plugin (~0.2 MB) installs at
/// once and says nothing.
const SAY_COMPILING_ABOVE_BYTES: u64 = 2 << 20;

/// Say on stderr that a large component is being compiled (the bundle's size, or a plugin
/// directory's component).
fn say_compiling(path: &std::path::Path) {
    // Sizes from metadata only: the install reads the component itself.
    let file = if path.is_dir() {
        match warden_core::Manifest::load(&path.join("plugin.toml")) {
            Ok(m) => path.join(m.component),
            Err(_) => return,
        }
    } else {
        path.to_path_buf()
    };
    let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    if size > SAY_COMPILING_ABOVE_BYTES {
        eprintln!(
            "compiling {} ({:.1} MB) to native code: a large component takes a few seconds",
            inert(&path.display().to_string()),
            size as f64 / 1e6
        );
    }
}
