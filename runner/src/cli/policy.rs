//! `warden policy show`: the site policy in force and where it came from; `warden policy sign`:
//! a site policy signed by a policy key, for the fleet to distribute (`warden fleet publish`).

use super::Context;
use super::signing::SigningArgs;
use anyhow::{Context as _, Result};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;
use warden_bundle::Bundle;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print the effective site policy (a distributed signed policy, when one is in force).
    Show,
    /// Sign a site policy file with a policy key (one of the agents' `trust.policy-keys`).
    Sign {
        /// The policy (TOML, as `warden.toml`).
        file: PathBuf,
        /// Its version: higher than every version the agents applied before.
        #[arg(long, value_name = "VERSION")]
        policy_version: semver::Version,
        #[command(flatten)]
        signing: SigningArgs,
    },
}

pub fn run(cx: &Context, cmd: PolicyCommand) -> Result<ExitCode> {
    match cmd {
        PolicyCommand::Show => show(cx),
        PolicyCommand::Sign {
            file,
            policy_version: version,
            signing,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let mut bundle = Bundle::from_policy(&text, &version, signing.valid_days)?;
            let default = format!("site-policy-{version}.wbundle");
            let (out, key_id) = signing.sign_and_write(&mut bundle, default)?;
            if cx.json {
                super::output::print_json(&serde_json::json!({
                    "bundle": out, "statement": bundle.statement,
                }))?;
            } else {
                println!(
                    "signed site policy {version} into {} (by key {key_id}, expires in {} days)",
                    out.display(),
                    signing.valid_days
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn show(cx: &Context) -> Result<ExitCode> {
    let runner = cx.runner()?;
    let policy = runner.policy();
    let origin = match runner.distributed_policy() {
        Some(d) => format!(
            "signed site policy {} (sha256 {}, signed by {}), under the root of trust of {}",
            d.version,
            &d.sha256[..12.min(d.sha256.len())],
            d.signers.join(", "),
            cx.policy_origin
        ),
        None => cx.policy_origin.clone(),
    };
    if cx.json {
        super::output::print_json(&serde_json::json!({
            "origin": origin,
            "data-dir": cx.data_dir,
            "distributed": runner.distributed_policy().map(|d| serde_json::json!({
                "version": d.version.to_string(), "sha256": d.sha256, "signers": d.signers,
            })),
            "policy": *policy,
        }))?;
    } else {
        println!("# site policy: {origin}");
        println!("# data dir: {}", cx.data_dir.display());
        print!("{}", toml::to_string_pretty(&*policy)?);
    }
    Ok(ExitCode::SUCCESS)
}
