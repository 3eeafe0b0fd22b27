//! Outbound HTTP(S) to the origins requested in the manifest (WIT `http`), with the host's size
//! and time caps.
//!
//! Request each origin, scheme, host and port, in `plugin.toml`
//! (`[capabilities] http = ["https://api.example.com"]`); the site policy must allow it too, and
//! a name resolving to a private address works only where the site names that range. The host
//! follows no redirect (a `3xx` comes back as it is), sets `Host` and `Content-Length` itself
//! (setting them, or a hop-by-hop header, is [`CapError::Invalid`]), refuses URLs with user info
//! or odd numeric hosts (`invalid`), answers [`CapError::Denied`] for an origin or address not
//! granted, [`CapError::TimedOut`] past the call's time limit and
//! [`CapError::LimitExceeded`] for a response body above the site's cap (4 MiB by default).
//!
//! ```no_run
//! use warden_sdk::http::Request;
//!
//! # fn main() -> Result<(), warden_sdk::CapError> {
//! let resp = Request::get("https://api.example.com/health")
//!     .header("accept", "application/json")
//!     .send()?;
//! if resp.status == 200 {
//!     warden_sdk::log::info(&resp.text_lossy(), &[]);
//! }
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

use crate::__private::bindings::warden::plugin::{http as wit, types::Field};
use crate::CapError;

/// An HTTP request, built step by step and sent with [`Request::send`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    timeout: Option<Duration>,
}

impl Request {
    /// A request with any method (`GET`, `POST`, ...).
    pub fn new(method: impl Into<String>, url: impl Into<String>) -> Self {
        Request {
            method: method.into(),
            url: url.into(),
            headers: Vec::new(),
            body: None,
            timeout: None,
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Request::new("GET", url)
    }

    /// A `POST` request; set its body with [`Request::body`].
    pub fn post(url: impl Into<String>) -> Self {
        Request::new("POST", url)
    }

    /// Add a header. `Host`, `Content-Length` and the hop-by-hop headers are the host's: setting
    /// one makes [`Request::send`] fail with [`CapError::Invalid`].
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Set the request body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Time limit of this call, connection and TLS included; the host caps it at the site's
    /// `http-timeout-ms` and at the run's deadline.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Send the request and read the whole response (a redirect is a response, not followed).
    pub fn send(self) -> Result<Response, CapError> {
        let req = wit::Request {
            method: self.method,
            url: self.url,
            headers: to_fields(self.headers),
            body: self.body,
            timeout_ms: self
                .timeout
                .map(|t| u32::try_from(t.as_millis()).unwrap_or(u32::MAX)),
        };
        let resp = wit::send(&req)?;
        Ok(Response {
            status: resp.status,
            headers: resp.headers.into_iter().map(|f| (f.key, f.value)).collect(),
            body: resp.body,
        })
    }
}

fn to_fields(pairs: Vec<(String, String)>) -> Vec<Field> {
    pairs
        .into_iter()
        .map(|(key, value)| Field { key, value })
        .collect()
}

/// An HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers as `(name, value)` pairs.
    pub headers: Vec<(String, String)>,
    /// The body (capped by the host).
    pub body: Vec<u8>,
}

impl Response {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text, invalid UTF-8 replaced.
    pub fn text_lossy(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}
