//! `warden policy show`: the site policy in force and where it came from.

use super::Context;
use anyhow::Result;
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print the effective site policy.
    Show,
}

pub fn run(cx: &Context, cmd: PolicyCommand) -> Result<ExitCode> {
    match cmd {
        PolicyCommand::Show => {
            if cx.json {
                super::output::print_json(&serde_json::json!({
                    "origin": cx.policy_origin,
                    "data-dir": cx.data_dir,
                    "policy": cx.policy,
                }))?;
            } else {
                println!("# site policy: {}", cx.policy_origin);
                println!("# data dir: {}", cx.data_dir.display());
                print!("{}", toml::to_string_pretty(&cx.policy)?);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
