//! Status words in color for a person at a terminal: green for what went well, red for what
//! failed or was refused, yellow for what is not settled yet. Plain text otherwise.
//!
//! The choice follows the common conventions: `NO_COLOR` (any value) turns colors off;
//! `CLICOLOR_FORCE` (any value but `0`) turns them on where stdout is no terminal (a pager
//! with `less -R`, a test); otherwise colors are on when stdout is a terminal whose `TERM` is
//! not `dumb`. Only words the runner itself chose are painted, never text a plugin wrote (that
//! is made inert first, see `output::inert`).

use std::io::IsTerminal;
use std::sync::OnceLock;

/// Whether this process paints status words (decided once).
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        decide(
            std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
            std::env::var_os("CLICOLOR_FORCE").is_some_and(|v| !v.is_empty() && v != "0"),
            std::io::stdout().is_terminal(),
            std::env::var_os("TERM").is_some_and(|t| t == "dumb"),
        )
    })
}

fn decide(no_color: bool, force: bool, terminal: bool, dumb: bool) -> bool {
    !no_color && (force || (terminal && !dumb))
}

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const RESET: &str = "\x1b[0m";

fn color_of(word: &str) -> Option<&'static str> {
    match word {
        "succeeded" | "ok" | "online" | "installed" | "passed" | "resolved" | "completed" => {
            Some(GREEN)
        }
        "failed" | "critical" | "refused" | "offline" | "expired" | "error" | "revoked"
        | "halted" | "denied" => Some(RED),
        "warning" | "unknown" | "running" | "queued" | "missing" | "overdue" | "cancelled"
        | "interrupted" | "pending" | "paused" | "required" => Some(YELLOW),
        _ => None,
    }
}

/// `word` painted by what it means when colors are on; as it is otherwise.
pub fn status(word: &str) -> String {
    paint(word, enabled())
}

/// [`status`] followed by the spaces that make it `width` columns wide (a `format!` width would
/// count the invisible escape bytes).
pub fn status_padded(word: &str, width: usize) -> String {
    let pad = width.saturating_sub(word.chars().count());
    format!("{}{}", status(word), " ".repeat(pad))
}

fn paint(word: &str, on: bool) -> String {
    match color_of(word) {
        Some(color) if on => format!("{color}{word}{RESET}"),
        _ => word.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_color_wins_force_overrides_a_pipe_and_a_dumb_terminal_gets_none() {
        assert!(decide(false, false, true, false), "a terminal");
        assert!(!decide(false, false, false, false), "a pipe");
        assert!(decide(false, true, false, false), "forced on a pipe");
        assert!(!decide(true, true, true, false), "NO_COLOR wins");
        assert!(!decide(false, false, true, true), "TERM=dumb");
    }

    #[test]
    fn words_are_painted_by_meaning_and_unknown_words_are_left_alone() {
        assert_eq!(paint("succeeded", true), "\x1b[32msucceeded\x1b[0m");
        assert_eq!(paint("failed", true), "\x1b[31mfailed\x1b[0m");
        assert_eq!(paint("running", true), "\x1b[33mrunning\x1b[0m");
        assert_eq!(paint("something", true), "something");
        assert_eq!(paint("failed", false), "failed");
    }
}
