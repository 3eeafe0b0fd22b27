//! A reader that stops early (`warden --json run inventory | head -2`) closes the pipe under
//! stdout; `println!` then panics on the broken pipe. That is not a failure of the command: the
//! panic is recognised here, its message suppressed, and `main` turns it into a quiet exit with
//! [`CLOSED_STDOUT_EXIT`]. The process keeps ignoring SIGPIPE (Rust's default): restoring the
//! default action would let any closed pipe kill it, including a plugin's exec child that stops
//! reading its stdin early.

use std::any::Any;
use std::io::ErrorKind;

/// The exit code after stdout's reader went away: 128 + SIGPIPE (13), what a shell reports for
/// a process killed by SIGPIPE, so `set -o pipefail` scripts see the same as with any other tool.
pub const CLOSED_STDOUT_EXIT: u8 = 141;

/// The panic message `print!`/`println!` produce when stdout cannot be written
/// (std: "failed printing to stdout: <io error>").
const STDOUT_PANIC_PREFIX: &str = "failed printing to stdout: ";

fn message(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&'static str>().copied())
}

/// Whether a panic is `println!` failing because stdout's reader closed the pipe. Only a broken
/// pipe qualifies: a full disk under a redirected stdout is an error worth reporting.
pub fn is_closed_stdout(payload: &(dyn Any + Send)) -> bool {
    let Some(io_error) = message(payload).and_then(|m| m.strip_prefix(STDOUT_PANIC_PREFIX)) else {
        return false;
    };
    // The io error's text ends in "(os error N)"; the kind comes from N, not from the words.
    io_error
        .rsplit_once("(os error ")
        .and_then(|(_, n)| n.strip_suffix(')'))
        .and_then(|n| n.parse::<i32>().ok())
        .is_some_and(|code| std::io::Error::from_raw_os_error(code).kind() == ErrorKind::BrokenPipe)
}

/// Keep the default panic message for every panic but a closed stdout.
pub fn install_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !is_closed_stdout(info.payload()) {
            default(info);
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(text: &str) -> Box<dyn Any + Send> {
        Box::new(text.to_string())
    }

    #[test]
    fn only_a_broken_pipe_under_stdout_is_a_closed_stdout() {
        let broken = std::io::Error::from(ErrorKind::BrokenPipe);
        let epipe = std::io::Error::from_raw_os_error(
            // The raw code of the platform's broken pipe, found through its kind.
            (1..512)
                .find(|c| std::io::Error::from_raw_os_error(*c).kind() == broken.kind())
                .expect("a platform code for a broken pipe"),
        );
        assert!(is_closed_stdout(&*payload(&format!(
            "failed printing to stdout: {epipe}"
        ))));
        let full = std::io::Error::from_raw_os_error(
            (1..512)
                .find(|c| std::io::Error::from_raw_os_error(*c).kind() == ErrorKind::StorageFull)
                .expect("a platform code for a full disk"),
        );
        assert!(!is_closed_stdout(&*payload(&format!(
            "failed printing to stdout: {full}"
        ))));
        assert!(!is_closed_stdout(&*payload(&format!(
            "failed printing to stderr: {epipe}"
        ))));
        assert!(!is_closed_stdout(&*payload("index out of bounds")));
        let not_text: Box<dyn Any + Send> = Box::new(7_u32);
        assert!(!is_closed_stdout(&*not_text));
    }
}
