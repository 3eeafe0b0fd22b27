//! The async runtime the agent runs on, with a bounded blocking pool. Tokio's default allows 512
//! blocking threads, and every API call takes one for its audit append (and a Trigger another for
//! its history row): a burst of 1,000 Triggers grew the agent to 517 threads, each with its stack,
//! for work that a few threads do as fast, since the audit log's group commit writes one batch per
//! fsync whatever the number of writers. Beyond the bound, blocking work waits in tokio's queue.

use super::config::AgentConfig;

/// Blocking threads for the API's short blocking work (authorization with its audit append,
/// history reads and writes, bundle checks): enough for the audit log's group commit to batch
/// 32 records per fsync, far below tokio's 512.
pub const API_BLOCKING_THREADS: usize = 32;

/// The name of the runtime's threads (workers and blocking), as `/proc/<pid>/task/*/comm` shows
/// it (at most 15 bytes).
pub const THREAD_NAME: &str = "warden-agent";

/// The blocking threads `config` needs: one per run that may go at once (a run's steps hold
/// theirs for the whole run), one per monitor (a check holds one while it runs), and
/// [`API_BLOCKING_THREADS`] for everything else. A long run never starves the API of threads.
pub fn blocking_threads(config: &AgentConfig) -> usize {
    config.api.max_concurrent_runs + config.monitors.len() + API_BLOCKING_THREADS
}

/// A multi-threaded runtime with [`blocking_threads`] blocking threads at most.
pub fn build(config: &AgentConfig) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(THREAD_NAME)
        .max_blocking_threads(blocking_threads(config))
        .build()
}
