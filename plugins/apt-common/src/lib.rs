//! What the apt patching plugins (`apt-updates`, `apt-patch`) share, as pure code with no host
//! calls so that it is tested on the host (`cargo xtask test` runs these unit tests):
//!
//! - [`simulate`]: the parser of `apt-get -s dist-upgrade` output (upgradable packages with their
//!   installed and candidate versions and origins, security or not, and the packages kept back);
//! - [`policy`]: the approval rules that turn those into a plan of exact `package=version` pairs;
//! - [`reboot`]: the reboot policy and the reboot state read from `/run/reboot-required`;
//! - [`slot`]: "at most once per maintenance window slot".
//!
//! docs/PATCHING.md describes the whole flow, the knobs and what is tested.

pub mod host;
pub mod pattern;
pub mod policy;
pub mod reboot;
pub mod simulate;
pub mod slot;
pub mod time;

/// The program both plugins run, by the absolute path the site policy grants.
pub const APT_GET: &str = "/usr/bin/apt-get";

/// The argv of the simulation: `-s` never changes the machine, and `Debug::NoLocking` lets an
/// unprivileged agent (or a test) simulate while another apt holds the lock.
pub const SIMULATE_ARGS: [&str; 5] = ["-s", "-q", "-o", "Debug::NoLocking=1", "dist-upgrade"];
