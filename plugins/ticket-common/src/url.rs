//! URL pieces: percent-encoding a query value, and joining a configured base URL with a path.

/// Percent-encode `value` for a query string (RFC 3986 unreserved characters stay).
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `base` (with or without a trailing `/`) followed by `path` (which starts with `/`).
pub fn join(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_reserved_characters_and_joins_without_double_slashes() {
        assert_eq!(
            encode("externalXRef=\"warden:a b\""),
            "externalXRef%3D%22warden%3Aa%20b%22"
        );
        assert_eq!(join("https://x/", "/api"), "https://x/api");
        assert_eq!(join("https://x", "/api"), "https://x/api");
    }
}
