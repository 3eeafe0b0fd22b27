//! `warden serve` (the agent daemon) and `warden token new` (a bearer token for its API).

use super::Context;
use super::output::print_json;
use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use warden_agent::daemon::config::AgentConfig;
use warden_agent::grpc::auth::{Role, new_token, token_hash};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The agent config (API address, tokens, runbook directory). Default: <data-dir>/agent.toml.
    #[arg(long, env = "WARDEN_AGENT_CONFIG", value_name = "FILE")]
    pub agent_config: Option<PathBuf>,
}

pub fn serve(cx: &Context, args: ServeArgs) -> Result<ExitCode> {
    let path = args
        .agent_config
        .unwrap_or_else(|| cx.data_dir.join("agent.toml"));
    let config = AgentConfig::load(&path)?;
    let config_path = std::path::absolute(&path).unwrap_or(path);
    let runner = cx.runner()?;
    let runtime =
        warden_agent::daemon::runtime::build(&config).context("cannot start the async runtime")?;
    runtime.block_on(warden_agent::daemon::serve_until_signal(
        runner,
        config,
        config_path,
        |addr| {
            // The first line on stdout says where the agent listens (port 0 picks one).
            println!("warden agent listening on {addr}");
            let _ = std::io::stdout().flush();
        },
    ))?;
    eprintln!("warden agent stopped");
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a new API token: prints the token (give it to its holder) and the config entry
    /// (only its sha256) to paste into agent.toml.
    New {
        /// Who holds it, e.g. `noc-alice`.
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// Print the sha256 of a token read from stdin (to rebuild a lost config entry).
    Hash,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RoleArg {
    Viewer,
    /// Reads, and approves or denies another's four-eyes request at the controller; acts on
    /// nothing by itself (an agent's API treats it as a viewer).
    Approver,
    Operator,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Viewer => Role::Viewer,
            RoleArg::Approver => Role::Approver,
            RoleArg::Operator => Role::Operator,
            RoleArg::Admin => Role::Admin,
        }
    }
}

pub fn token(cx: &Context, cmd: TokenCommand) -> Result<ExitCode> {
    match cmd {
        TokenCommand::New { name, role } => {
            let token =
                new_token().map_err(|e| anyhow::anyhow!("no randomness for a token: {e}"))?;
            let hash = token_hash(&token);
            let role = Role::from(role);
            let role_word = serde_json::to_value(role)?
                .as_str()
                .unwrap_or_default()
                .to_string();
            if cx.json {
                print_json(
                    &serde_json::json!({ "name": name, "role": role, "token": token, "sha256": hash }),
                )?;
            } else {
                println!("token (shown once; give it to {name}): {token}");
                println!();
                println!("add to agent.toml:");
                println!("[[api.token]]");
                println!("name = {name:?}");
                println!("role = {role_word:?}");
                println!("sha256 = {hash:?}");
                // The controller reads the same entry under another table name.
                println!();
                println!("or to the controller's config:");
                println!("[[tokens]]");
                println!("name = {name:?}");
                println!("role = {role_word:?}");
                println!("sha256 = {hash:?}");
            }
        }
        TokenCommand::Hash => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            println!("{}", token_hash(line.trim()));
        }
    }
    Ok(ExitCode::SUCCESS)
}
