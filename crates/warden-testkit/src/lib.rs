//! The plugin author's test harness: run a plugin against fixture files (a fake filesystem,
//! scripted programs, a fake service manager, sysinfo facts, kv state) without touching the
//! machine, and judge its result, plan and capability calls. Behind `warden plugin test`, and
//! usable from Rust:
//!
//! ```no_run
//! use warden_testkit::{Fixture, Harness};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let harness = Harness::new("my-plugin".as_ref(), "target/warden-cache".as_ref())?;
//! let fixture = Fixture::load("my-plugin/tests/small-log.toml".as_ref())?;
//! let run = harness.run(&fixture)?;
//! let verdict = warden_testkit::verdict(&fixture, &run);
//! assert!(verdict.passed, "{:?}", verdict.failures);
//! # Ok(()) }
//! ```

pub mod expect;
pub mod fakes;
pub mod fixture;
pub mod harness;

pub use expect::{Verdict, verdict};
pub use fixture::{Fixture, FixtureError, RunKind, SysinfoFacts};
pub use harness::{CaseRun, Harness, HarnessError, call_string};
