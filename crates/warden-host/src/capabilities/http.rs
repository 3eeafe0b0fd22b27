//! `warden:plugin/http`: outbound requests to allow-listed hosts. The interface and its grant
//! check are in place; this runner build does not yet carry an HTTP client, so an allowed
//! request answers `unsupported` (and a host that is not granted is `denied`, as it will stay).

use super::{CapFailure, HostState};
use crate::bindings::CapError;
use crate::bindings::warden::plugin::http::{Host, Request, Response};
use warden_core::grant::Operation;

/// The host part of an `http://` or `https://` URL, lower-cased, without port or user info.
pub fn url_host(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        host_port.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

impl Host for HostState {
    fn send(&mut self, req: Request) -> Result<Response, CapFailure> {
        let Some(host) = url_host(&req.url) else {
            let why = format!("`{}` is not an http(s) URL", req.url.escape_debug());
            self.cx
                .record("http", "send", &req.url, &[], Some(why.clone()))?;
            return Err(CapError::Invalid(why).into());
        };
        self.cx
            .authorize(Operation::Http { host: &host }, "send", &req.url, &[])?;
        Err(
            CapError::Unsupported("outbound HTTP is not available in this runner build yet".into())
                .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::url_host;

    #[test]
    fn extracts_hosts_and_ignores_tricks() {
        assert_eq!(
            url_host("https://API.example.com:8443/x?y").as_deref(),
            Some("api.example.com")
        );
        assert_eq!(
            url_host("http://user@evil.com@good.com/").as_deref(),
            Some("good.com")
        );
        assert_eq!(url_host("http://[::1]:80/").as_deref(), Some("::1"));
        assert_eq!(url_host("ftp://x"), None);
        assert_eq!(url_host("http:///nohost"), None);
    }
}
