//! The `warden` command: thin entry point; the subcommands live in `cli/`.

mod cli;

use clap::Parser;
use std::panic::AssertUnwindSafe;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    cli::init_tracing(args.verbose);
    cli::pipe::install_hook();
    // Unwinding (rather than exiting in the hook) drops what the command holds, so an audit
    // log's queued records are still written when stdout's reader went away.
    match std::panic::catch_unwind(AssertUnwindSafe(|| cli::run(args))) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            // Errors quote plugins, runbooks, bundles and the agent's replies.
            eprintln!("warden: error: {}", cli::inert_lines(&cli::error_line(&e)));
            match e.downcast_ref::<cli::ExitWith>() {
                Some(exit) => ExitCode::from(exit.code),
                None => ExitCode::FAILURE,
            }
        }
        Err(panic) if cli::pipe::is_closed_stdout(&*panic) => {
            ExitCode::from(cli::pipe::CLOSED_STDOUT_EXIT)
        }
        Err(panic) => std::panic::resume_unwind(panic),
    }
}
