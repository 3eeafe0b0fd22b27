//! `[metrics]` of agent.toml and of the controller's config.

use serde::Deserialize;
use std::net::SocketAddr;

/// `[metrics]`: where `/metrics` is served. Absent, no endpoint is served.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MetricsConfig {
    /// `listen = "127.0.0.1:9464"`.
    pub listen: SocketAddr,
    /// The endpoint has no authentication: an address other than loopback must be asked for
    /// by name (`allow-remote = true`), so a typo cannot publish it to the network.
    #[serde(default)]
    pub allow_remote: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetricsConfigError {
    #[error(
        "[metrics] listen = \"{0}\" is not a loopback address; the endpoint has no \
         authentication, so set allow-remote = true to serve it there"
    )]
    NotLoopback(SocketAddr),
}

impl MetricsConfig {
    /// Refuse a non-loopback address unless `allow-remote` says so.
    pub fn validate(&self) -> Result<(), MetricsConfigError> {
        if self.listen.ip().is_loopback() || self.allow_remote {
            Ok(())
        } else {
            Err(MetricsConfigError::NotLoopback(self.listen))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> MetricsConfig {
        toml::from_str(text).expect("a [metrics] section")
    }

    #[test]
    fn loopback_is_accepted_and_another_address_only_when_asked_for() {
        assert_eq!(parse("listen = \"127.0.0.1:9464\"").validate(), Ok(()));
        assert_eq!(parse("listen = \"[::1]:9464\"").validate(), Ok(()));
        let wide = parse("listen = \"0.0.0.0:9464\"");
        assert!(!wide.allow_remote, "allow-remote is off by default");
        assert_eq!(
            wide.validate(),
            Err(MetricsConfigError::NotLoopback(wide.listen))
        );
        let asked = parse("listen = \"0.0.0.0:9464\"\nallow-remote = true");
        assert_eq!(asked.validate(), Ok(()));
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let err = toml::from_str::<MetricsConfig>("listen = \"127.0.0.1:1\"\nport = 2")
            .expect_err("a typo is an error");
        assert!(err.to_string().contains("port"), "{err}");
    }
}
