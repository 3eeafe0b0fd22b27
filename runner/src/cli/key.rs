//! `warden key generate`: a publisher key pair for signing bundles.

use super::Context;
use super::output::print_json;
use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;
use warden_core::keys;

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Write <OUT>.key (secret, owner-only) and <OUT>.pub. Never overwrites.
    Generate {
        #[arg(long, value_name = "PREFIX")]
        out: PathBuf,
    },
}

pub fn run(cx: &Context, cmd: KeyCommand) -> Result<ExitCode> {
    match cmd {
        KeyCommand::Generate { out } => {
            let (secret, public, key) = keys::generate(&out)?;
            let id = keys::key_id(&key);
            if cx.json {
                print_json(&serde_json::json!({
                    "key-id": id, "secret-key-file": secret, "public-key-file": public,
                    "public-key": hex::encode(key.as_bytes()),
                }))?;
            } else {
                println!("key {id}");
                println!(
                    "  secret key: {} (keep it off the agents)",
                    secret.display()
                );
                println!("  public key: {}", public.display());
                println!("trust it on an agent with, in the site policy:");
                println!(
                    "  [[trust.keys]]\n  name = \"my-publisher\"\n  public-key = \"{}\"",
                    hex::encode(key.as_bytes())
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
