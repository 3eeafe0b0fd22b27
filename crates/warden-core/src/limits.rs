//! Named resource limits and their defaults. Every resource a plugin can consume has one, the
//! site policy may change it, and a plugin that exceeds one ends with [`Limit`] naming it.

use serde::Serialize;
use std::time::Duration;

/// Linear memory of one plugin instance unless its manifest or the policy says otherwise.
pub const DEFAULT_MEMORY_BYTES: u64 = 64 << 20;
/// The most memory the default policy grants a plugin that asks for more.
pub const DEFAULT_MAX_MEMORY_BYTES: u64 = 512 << 20;
/// Wall-clock time of one plugin call, host calls included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest deadline the default policy grants.
pub const DEFAULT_MAX_TIMEOUT: Duration = Duration::from_secs(600);
/// Bytes of log records (and WASI stdout/stderr) one run may produce.
pub const DEFAULT_LOG_BYTES: usize = 1 << 20;
/// Bytes kept from each of a child process's stdout and stderr.
pub const DEFAULT_EXEC_OUTPUT_BYTES: usize = 1 << 20;
/// Default time limit of one `exec` call.
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest file `fs.read` returns, and largest `fs-write.write`.
pub const DEFAULT_FS_FILE_BYTES: u64 = 16 << 20;
/// Most entries `fs.list-dir` returns.
pub const DEFAULT_FS_LIST_ENTRIES: usize = 100_000;
/// Largest HTTP response body one `http` call returns: a PSA's ticket JSON or a status page is
/// kilobytes; 4 MiB leaves room for a listing and bounds what a hostile server can make the host
/// buffer (the body is held in host memory, then copied into the plugin's).
pub const DEFAULT_HTTP_RESPONSE_BYTES: u64 = 4 << 20;
/// Default and largest time of one `http` call, connection and TLS handshake included: a PSA's
/// API answers in seconds; the run's own deadline bounds it further.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Plugin instances alive at once in one runner.
pub const DEFAULT_MAX_INSTANCES: u32 = 16;
/// KV quota of a plugin that requests kv without a size.
pub const DEFAULT_KV_QUOTA_BYTES: u64 = 64 << 10;
/// The largest KV quota the default policy grants.
pub const DEFAULT_MAX_KV_QUOTA_BYTES: u64 = 16 << 20;
/// Wasm stack of one instance; deeper recursion is a [`Limit::Stack`].
pub const DEFAULT_WASM_STACK_BYTES: usize = 512 << 10;
/// Largest bundle file accepted (a Python or JS component is 12-18 MB).
pub const DEFAULT_MAX_BUNDLE_BYTES: u64 = 160 << 20;
/// Largest component accepted (Python and JS components are 12-18 MB).
pub const MAX_COMPONENT_BYTES: u64 = 128 << 20;
/// Capability uses recorded in one run report; later ones are counted, not kept.
pub const MAX_RECORDED_CAPABILITY_USES: usize = 10_000;
/// Most processes one `exec` call may have alive at once (`pids.max` of its cgroup, where the
/// runner can set one: see `process::cgroup`): far above what an allow-listed tool needs (a
/// pipeline of a few), far below what a fork bomb needs to hurt the machine. Not a policy key.
pub const EXEC_PIDS_MAX: u64 = 256;
/// Most memory the processes of one `exec` call may use together (`memory.max` of its cgroup,
/// where the runner can set one). Generous for the system tools exec is for (package managers,
/// `df`, `systemctl`), and still a bound on a runaway one. Not a policy key.
pub const EXEC_MEMORY_MAX_BYTES: u64 = 1 << 30;

/// The limit a plugin run hit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum Limit {
    /// Linear memory would have grown past the grant.
    #[error("memory limit of {limit_bytes} bytes exceeded")]
    Memory { limit_bytes: u64 },
    /// The run's wall-clock deadline passed.
    #[error("time limit of {limit_ms} ms exceeded")]
    Timeout { limit_ms: u64 },
    /// The run produced more log bytes than allowed.
    #[error("log limit of {limit_bytes} bytes exceeded")]
    LogBytes { limit_bytes: usize },
    /// Too many plugin instances are already alive in this runner.
    #[error("instance limit of {limit} live plugin instances reached")]
    Instances { limit: u32 },
    /// The wasm call stack overflowed.
    #[error("stack limit of {limit_bytes} bytes exceeded (too deep recursion)")]
    Stack { limit_bytes: usize },
}

/// The limits in force for one run, resolved from manifest, policy and defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunLimits {
    pub memory_bytes: u64,
    pub timeout: Duration,
    pub log_bytes: usize,
    pub exec_output_bytes: usize,
    pub exec_timeout: Duration,
    pub fs_file_bytes: u64,
    pub fs_list_entries: usize,
    pub http_response_bytes: u64,
    pub http_timeout: Duration,
}
