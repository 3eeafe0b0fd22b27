//! The `warden` command: thin entry point; the subcommands live in `cli/`.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_tracing(args.verbose);
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            // Errors quote plugins, runbooks, bundles and the agent's replies.
            eprintln!("warden: error: {}", cli::inert_lines(&format!("{e:#}")));
            match e.downcast_ref::<cli::ExitWith>() {
                Some(exit) => ExitCode::from(exit.code),
                None => ExitCode::FAILURE,
            }
        }
    }
}
