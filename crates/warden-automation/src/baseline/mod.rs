//! Baselines and drift (NIST SP 800-53 CM-2, CM-2(3), CM-8(3)): a baseline is a versioned,
//! hashed record of the stable inventory fields ([`snapshot`]); drift is how the latest
//! inventory differs from it ([`drift`]); the versions live in the history database
//! ([`record`]); and the built-in check `builtin:drift` lets a monitor alert on drift within
//! one interval ([`check`]). `warden baseline` is the command line over this module.

pub mod check;
pub mod drift;
pub mod record;
pub mod snapshot;

pub use check::{BuiltinCheck, DriftCheckConfig};
pub use drift::{Change, ChangeKind, Drift, Selector};
pub use record::{BaselineError, Version};
pub use snapshot::{Category, Snapshot};
