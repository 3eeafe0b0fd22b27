//! Warden's domain, shared by every other crate: what a plugin is (its manifest), what a site
//! allows (its policy), what a run may do (the grant, resolved from both, and the one permission
//! check), the named limits, validated names, the run report, publisher keys, cancellation, retry pauses.
//!
//! It links no sandbox, no async runtime, no database and no wire format (`cargo xtask layers`
//! checks it), so that a controller, a plugin author's test harness or a tool reading reports
//! can use these types without building wasmtime, tokio, tonic or SQLite.

pub mod cancel;
pub mod capability;
pub mod compliance;
pub mod config_schema;
pub mod contract;
pub mod egress;
pub mod error;
pub mod fsutil;
pub mod grant;
pub mod keys;
pub mod limits;
pub mod manifest;
pub mod names;
pub mod policy;
pub mod report;
pub mod request;
pub mod retry;
pub mod run_status;
pub mod ticket;

pub use cancel::CancelToken;
pub use capability::Capability;
pub use error::RunError;
pub use limits::Limit;
pub use manifest::Manifest;
pub use policy::SitePolicy;
pub use report::{Invocation, Output, RunReport};
pub use request::RunRequest;
pub use run_status::RunStatus;

/// Lowercase hex sha256 of `bytes`: how components and bundles are named and compared.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}
