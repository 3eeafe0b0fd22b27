//! `warden enroll`: join the fleet. Generates the agent's own key, enrolls it with the
//! controller's gRPC API using a single-use token, and writes the credentials file (mode 0600)
//! that `[fleet] credentials` names. Then prints the `[fleet]` section to put in agent.toml.

use super::Context;
use super::output::print_json;
use anyhow::{Context as _, Result, bail};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use warden_agent::fleet::store_credentials;
use warden_agent::grpc::enroll_client::{EnrollOptions, enroll};
use warden_fleet_identity::TenantId;

#[derive(Debug, Args)]
pub struct EnrollArgs {
    /// The controller's gRPC address, `http://host:port` or `https://host:port`.
    #[arg(long)]
    pub controller: String,
    /// The enrollment token (`warden fleet enroll-token` on the controller's side).
    #[arg(long, env = "WARDEN_ENROLL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Read the token from this file instead.
    #[arg(long, conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// The tenant this agent belongs to (the token must be for it).
    #[arg(long)]
    pub tenant: String,
    /// Where to write the credentials. Default: <data-dir>/fleet.creds.
    #[arg(long)]
    pub credentials: Option<PathBuf>,
    /// Display name. Default: the host name.
    #[arg(long)]
    pub name: Option<String>,
    /// A PEM CA to verify an https:// controller with.
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// Replace an existing credentials file (the old identity is abandoned, not revoked).
    #[arg(long)]
    pub force: bool,
}

pub fn run(cx: &Context, args: EnrollArgs) -> Result<ExitCode> {
    let token = match (&args.token, &args.token_file) {
        (_, Some(file)) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?
            .trim()
            .to_string(),
        (Some(t), None) => t.trim().to_string(),
        (None, None) => bail!("no token: pass --token, --token-file or set WARDEN_ENROLL_TOKEN"),
    };
    let tenant =
        TenantId::new(args.tenant.clone()).map_err(|e| anyhow::anyhow!("--tenant: {e}"))?;
    let path = args
        .credentials
        .clone()
        .unwrap_or_else(|| cx.data_dir.join("fleet.creds"));
    if path.exists() && !args.force {
        bail!(
            "{} exists: this agent is enrolled already (pass --force to enroll a new identity)",
            path.display()
        );
    }
    let name = args
        .name
        .clone()
        .unwrap_or_else(warden_agent::daemon::host_name);
    let options = EnrollOptions {
        controller: args.controller.clone(),
        token,
        tenant: tenant.clone(),
        name,
        ca_file: args.ca_cert.clone(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let enrolled = runtime.block_on(enroll(&options))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    store_credentials(&path, &enrolled.credentials)?;
    if cx.json {
        print_json(&serde_json::json!({
            "agent": enrolled.agent,
            "tenant": tenant,
            "credentials": path,
            "nats_urls": enrolled.nats_urls,
            "tags": enrolled.tags,
            "expires_at": enrolled.credentials.expires_at,
        }))?;
    } else {
        println!("enrolled agent {} in tenant {tenant}", enrolled.agent);
        println!("credentials written to {} (mode 0600)", path.display());
        println!();
        println!("add to agent.toml:");
        println!("[fleet]");
        println!("urls = {:?}", enrolled.nats_urls);
        println!("tenant = {:?}", tenant.as_str());
        println!("credentials = {:?}", path.display().to_string());
        let tags: Vec<(&str, &str)> = enrolled
            .tags
            .iter()
            .filter_map(|t| t.split_once('='))
            .collect();
        if !tags.is_empty() {
            println!("[fleet.tags]");
            for (k, v) in tags {
                println!("{k} = {v:?}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
