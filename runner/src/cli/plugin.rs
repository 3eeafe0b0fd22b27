//! `warden plugin install|list|inspect|remove`.

use super::Context;
use super::output::print_json;
use anyhow::{Result, bail};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Install a plugin directory holding `plugin.toml` and its component.
    Install { path: PathBuf },
    /// List installed plugins.
    List,
    /// Show a plugin's manifest, what it requests and what the site policy grants.
    Inspect { name: String },
    /// Remove an installed plugin.
    Remove { name: String },
}

pub fn run(cx: &Context, cmd: PluginCommand) -> Result<ExitCode> {
    let runner = cx.runner()?;
    match cmd {
        PluginCommand::Install { path } => {
            let report = runner.install_dir(&path)?;
            if cx.json {
                print_json(&report)?;
            } else {
                let m = &report.plugin.manifest;
                println!(
                    "installed {} {} ({}, sha256 {})",
                    m.name,
                    m.version,
                    m.role,
                    &report.plugin.sha256[..16]
                );
                for w in &report.warnings {
                    eprintln!("warning: {w}");
                }
                for r in &report.refusals {
                    eprintln!(
                        "warning: the site policy refuses {r}; the plugin will not run until that changes"
                    );
                }
                for r in &report.narrowed {
                    eprintln!("note: not granted by the site policy: {r}");
                }
            }
        }
        PluginCommand::List => {
            let plugins = runner.store().list()?;
            if cx.json {
                print_json(&plugins)?;
            } else if plugins.is_empty() {
                println!("no plugins installed in {}", cx.data_dir.display());
            } else {
                println!(
                    "{:<24} {:<10} {:<18} {:<16} DESCRIPTION",
                    "NAME", "VERSION", "ROLE", "SHA256"
                );
                for p in plugins {
                    let m = &p.manifest;
                    println!(
                        "{:<24} {:<10} {:<18} {:<16} {}",
                        m.name,
                        m.version.to_string(),
                        m.role.as_str(),
                        &p.sha256[..16],
                        m.description
                    );
                }
            }
        }
        PluginCommand::Inspect { name } => {
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
                println!("{} {} ({})", m.name, m.version, m.role);
                println!("  {}", m.description);
                println!(
                    "  sha256 {}  {} bytes",
                    installed.sha256, installed.size_bytes
                );
                println!("requested:");
                print!("{}", indent(&toml::to_string_pretty(&m.capabilities)?));
                println!("granted:");
                let g = &report.grant;
                for e in &g.exec {
                    println!(
                        "  exec {} args matching {:?} and {:?}",
                        e.program, e.manifest_args, e.policy_args
                    );
                }
                for p in &g.fs_read {
                    println!("  fs read {}", p.display());
                }
                for p in &g.fs_write {
                    println!("  fs write {}", p.display());
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
                    println!("  http {h}");
                }
                for s in &g.services {
                    println!(
                        "  service {s}{}",
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
                    println!("  not granted (calls will be denied): {r}");
                }
                if report.refusals.is_empty() {
                    println!("refused: nothing; the plugin can run");
                } else {
                    println!(
                        "refused (the plugin will not run until the policy allows these or the manifest drops them):"
                    );
                    for r in &report.refusals {
                        println!("  {r}");
                    }
                }
            }
        }
        PluginCommand::Remove { name } => {
            let Some(removed) = runner.remove(&name)? else {
                bail!("plugin `{name}` is not installed");
            };
            if cx.json {
                print_json(&removed)?;
            } else {
                println!(
                    "removed {} {}",
                    removed.manifest.name, removed.manifest.version
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}
