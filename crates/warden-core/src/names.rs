//! Validation of names that come from manifests, policies and plugins: plugin names, service
//! names and host names. They end up in file names and in argv, so they are kept to safe sets.

/// Longest plugin name.
pub const MAX_PLUGIN_NAME: usize = 64;

/// `[a-z0-9-]`, 1..=64 characters, not starting or ending with `-`.
pub fn validate_plugin_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_PLUGIN_NAME {
        return Err(format!(
            "plugin names have 1 to {MAX_PLUGIN_NAME} characters"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        || name.starts_with('-')
        || name.ends_with('-')
    {
        return Err(format!(
            "`{}` is not a valid plugin name: use lower-case letters, digits and inner `-`",
            name.escape_debug()
        ));
    }
    Ok(())
}

/// Service names go into service-manager argv, so an option-like or odd name is refused.
pub fn validate_service_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@' | b':'));
    if name.is_empty()
        || name.len() > 256
        || !ok_chars
        || name.starts_with('-')
        || name.starts_with('.')
    {
        return Err(format!(
            "`{}` is not a valid service name (letters, digits, `-_.@:`; not starting with `-` or `.`)",
            name.escape_debug()
        ));
    }
    Ok(())
}

/// A DNS host name or an IP literal, without scheme, port or path.
pub fn validate_host_name(host: &str) -> Result<(), String> {
    let ok = !host.is_empty()
        && host.len() <= 253
        && (host.parse::<std::net::IpAddr>().is_ok()
            || host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
            }));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{}` is not a valid host name",
            host.escape_debug()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_plugin_names_are_refused() {
        for bad in [
            "",
            "../x",
            "a/b",
            "A",
            "x\n",
            "-x",
            "x-",
            &"a".repeat(65),
            "a b",
            "a\\b",
        ] {
            assert!(validate_plugin_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_plugin_name("disk-usage2").is_ok());
    }

    #[test]
    fn option_like_service_names_are_refused() {
        for bad in ["-H", "--help", "a b", "x;rm", "", ".hidden", "a/b"] {
            assert!(validate_service_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_service_name("getty@tty1.service").is_ok());
    }

    #[test]
    fn host_names() {
        assert!(validate_host_name("api.example.com").is_ok());
        assert!(validate_host_name("127.0.0.1").is_ok());
        for bad in ["http://x", "x:80", "a..b", "", "-a.com"] {
            assert!(validate_host_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
