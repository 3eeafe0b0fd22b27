//! What the ticketing plugins share: calling a JSON API over the `http` capability with errors
//! that never carry credentials ([`api`]), templates for JSON bodies ([`template`]), HMAC-SHA256
//! and Basic credentials ([`sign`]), the per-tenant mapping of board, queue and priority
//! ([`tenants`]), and URL pieces ([`url`]).

pub mod api;
pub mod sign;
pub mod template;
pub mod tenants;
pub mod url;

/// Longest ticket title the connectors send: ConnectWise caps `summary` at 100 characters, and
/// the others accept at least as many.
pub const MAX_SUMMARY_CHARS: usize = 100;

/// `text` cut to `max` characters (not bytes), with `…` when it was cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::clip;

    #[test]
    fn clip_counts_characters_and_marks_a_cut() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "ab…");
        assert_eq!(clip("ééé", 2), "é…");
    }
}
