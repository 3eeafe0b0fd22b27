//! # fetch
//!
//! A test guest for the `http` capability: `check(config)` sends one request and reports what
//! came back, so the end-to-end tests (`tests/http.rs`) can try allowed calls and every trick
//! against the host's checks from inside a real component.
//!
//! Config: `method` (default `GET`), `url`, `headers` (a list of `[name, value]`), `body` (text),
//! `timeout_ms`. The result is `ok` with the summary `<status> <body as text>`, the metrics
//! `status` and `body_bytes`, and one log record `response` whose fields are the response
//! headers. A capability error becomes the plugin error whose code is the cap-error code
//! (`denied`, `invalid`, `limit-exceeded`, `timed-out`, `failed`) and whose message is its text.

use serde::Deserialize;
use std::time::Duration;
use warden_sdk::{Check, CheckResult, PluginError, http, log};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Config {
    method: Option<String>,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    timeout_ms: Option<u64>,
}

struct Fetch;

impl Check for Fetch {
    fn check(config: &str) -> Result<CheckResult, PluginError> {
        let config: Config = warden_sdk::config(config)?;
        let mut req = http::Request::new(config.method.as_deref().unwrap_or("GET"), &config.url);
        for (name, value) in &config.headers {
            req = req.header(name, value);
        }
        if let Some(body) = config.body {
            req = req.body(body);
        }
        if let Some(ms) = config.timeout_ms {
            req = req.timeout(Duration::from_millis(ms));
        }
        let resp = req.send()?;
        let fields: Vec<(&str, &str)> = resp
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        log::info("response", &fields);
        Ok(
            CheckResult::ok(format!("{} {}", resp.status, resp.text_lossy()))
                .metric("status", f64::from(resp.status), "")
                .metric("body_bytes", resp.body.len() as f64, "B"),
        )
    }
}

warden_sdk::check!(Fetch);
