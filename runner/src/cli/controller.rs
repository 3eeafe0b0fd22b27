//! `warden controller`: run the fleet controller (the MSP side), beside a NATS server.
//!
//! `serve` writes the NATS server's operator-mode config into the data dir on every start
//! (`nats-operator.conf`, and `nats-server.conf` that includes it with JetStream on), so the
//! first start is: `warden controller serve --config c.toml` (it says how to start NATS if it
//! cannot connect), `nats-server -c <data-dir>/nats-server.conf`, then serve again.

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use warden_controller::ControllerConfig;

use super::Context;

#[derive(Debug, Subcommand)]
pub enum ControllerCommand {
    /// Start the controller: gRPC API, NATS loops, embedded SQLite store in the data dir.
    Serve(ServeArgs),
    /// Write the NATS server config for this controller's keys and print its path.
    NatsConfig(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The controller's config (TOML; see docs/FLEET.md). Without one: every default, data in
    /// ./controller-data.
    #[arg(long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The NATS port a standalone `nats-server.conf` uses when `nats-url` names none.
const NATS_PORT: u16 = 4222;

/// The port of `nats-url` (`nats://host:port`), so the written server config matches it.
fn nats_port(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or(NATS_PORT)
}

fn load(args: &ServeArgs) -> Result<ControllerConfig> {
    match &args.config {
        Some(path) => Ok(ControllerConfig::load(path)?),
        None => Ok(ControllerConfig::new(PathBuf::from("controller-data"))),
    }
}

/// Write `nats-operator.conf` and a `nats-server.conf` including it.
fn write_nats(config: &ControllerConfig) -> Result<PathBuf> {
    let operator = warden_controller::serve::write_nats_config(&config.data_dir, config)?;
    let dir = config
        .data_dir
        .canonicalize()
        .unwrap_or_else(|_| config.data_dir.clone());
    let store = dir.join("nats-store");
    let text = format!(
        "# nats-server for the warden fleet controller (written by `warden controller`).\n\
         port: {}\n\
         jetstream {{ store_dir: \"{}\" }}\n\
         include \"{}\"\n",
        nats_port(&config.nats_url),
        store.display(),
        operator
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("nats-operator.conf"),
    );
    let path = config.data_dir.join("nats-server.conf");
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

pub fn run(_cx: &Context, cmd: ControllerCommand) -> Result<ExitCode> {
    match cmd {
        ControllerCommand::NatsConfig(args) => {
            let config = load(&args)?;
            let path = write_nats(&config)?;
            println!("{}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        ControllerCommand::Serve(args) => serve(&load(&args)?),
    }
}

fn serve(config: &ControllerConfig) -> Result<ExitCode> {
    let nats_conf = write_nats(config)?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        // The web console (`[console]`): bound first, and its certificate read, so a taken
        // port or a bad certificate fails the start.
        let mut console = match &config.console {
            Some(settings) => {
                let tls = match &settings.tls {
                    Some(t) => Some(warden_console::tls::acceptor(&t.cert, &t.key)?),
                    None => None,
                };
                Some((warden_console::bind(settings.listen).await?, tls, settings))
            }
            None => None,
        };
        let console_url = match &console {
            Some((listener, tls, _)) => format!(
                ", console on {}://{}",
                if tls.is_some() { "https" } else { "http" },
                listener.local_addr()?
            ),
            None => String::new(),
        };
        let tokens = warden_access::Tokens::new(&config.tokens)?;
        let started = warden_controller::serve::serve(
            config,
            listener,
            shutdown,
            |addr| {
                eprintln!(
                    "warden controller: API on {addr}, NATS {}, data in {}{console_url}",
                    config.nats_url,
                    config.data_dir.display()
                );
            },
            |controller| {
                if let Some((listener, tls, settings)) = console.take() {
                    let options = warden_console::Options::from_settings(settings);
                    let controller = controller.clone();
                    tokio::spawn(async move {
                        // Ends with the runtime, when the API's shutdown returns.
                        let stop = std::future::pending::<()>();
                        if let Err(e) =
                            warden_console::serve(controller, tokens, options, listener, tls, stop)
                                .await
                        {
                            eprintln!("warden controller: {e}");
                        }
                    });
                }
            },
        )
        .await;
        match started {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(e @ warden_controller::FleetError::Nats(_)) => Err(anyhow::anyhow!(
                "{e}\nstart NATS with this controller's operator: nats-server -c {}",
                display(&nats_conf)
            )),
            Err(e) => Err(e.into()),
        }
    })
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
