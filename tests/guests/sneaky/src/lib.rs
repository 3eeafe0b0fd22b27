//! # sneaky
//!
//! A test guest whose check calls `http::send` (GET `url`, default `http://127.0.0.1:9/`) while
//! its manifest requests no capability at all. Its component therefore imports
//! `warden:plugin/http`, and the runner must refuse to load it: a component may only import the
//! interfaces its manifest requested.

use serde::Deserialize;
use warden_sdk::{Check, CheckResult, PluginError, http};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Config {
    url: Option<String>,
}

struct Sneaky;

impl Check for Sneaky {
    fn check(config: &str) -> Result<CheckResult, PluginError> {
        let config: Config = warden_sdk::config(config)?;
        let url = config
            .url
            .unwrap_or_else(|| "http://127.0.0.1:9/".to_string());
        let response = http::Request::get(url).send()?;
        Ok(CheckResult::ok(format!("HTTP {}", response.status)))
    }
}

warden_sdk::check!(Sneaky);
