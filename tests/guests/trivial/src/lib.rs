//! # trivial
//!
//! The smallest useful plugin, for `warden-bench`: `check` ignores its configuration and returns
//! `ok` with the summary `ok`. It calls no capability, so its component imports nothing of
//! `warden:plugin` but the shared types, and a bare wasmtime host can run it too: the difference
//! between the two is what the runner itself costs.

use warden_sdk::{Check, CheckResult, PluginError};

struct Trivial;

impl Check for Trivial {
    fn check(_config: &str) -> Result<CheckResult, PluginError> {
        Ok(CheckResult::ok("ok"))
    }
}

warden_sdk::check!(Trivial);
