//! The audit trail is written as a run goes (issue 14): each capability use reaches the audit
//! log while the plugin is still running, so a crash in the middle of a run loses none of them;
//! and a call the grant allowed but the filesystem then refused leaves its allowed record as it
//! was and a second, denied, record after it.

use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use warden_core::report::Invocation;
use warden_core::{CancelToken, RunError, RunRequest};
use warden_tests::Sandbox;

/// The `capability.use` records of the audit log, in order.
fn use_records(sb: &Sandbox) -> Vec<Value> {
    let text =
        std::fs::read_to_string(sb.data_dir().join("audit").join("audit.log")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "capability.use")
        .map(|v| v["data"]["use"].clone())
        .collect()
}

/// Upper bound on how long the group commit may keep a record in memory; far above its
/// configured delay, so only a trail that waits for the end of the run misses it.
const WAIT_FOR_RECORD: Duration = Duration::from_secs(20);

#[test]
fn capability_uses_reach_the_audit_log_while_the_run_is_still_going() {
    let sb = Sandbox::new();
    // The run may go on for a minute: the test cancels it once it has seen the records.
    let runner = sb.hostile_runner("default-timeout-ms = 5000", "timeout-ms = 60000");
    let file = sb.scratch().join("watched.txt");
    std::fs::write(&file, "x").expect("write");
    let cancel = CancelToken::default();
    let finished = Arc::new(AtomicBool::new(false));
    let run = {
        let (cancel, finished) = (cancel.clone(), finished.clone());
        let mut req = RunRequest::new("hostile", Invocation::Check)
            .with_config(json!({ "attack": "read-loop", "path": file }));
        req.cancel = cancel;
        std::thread::spawn(move || {
            let report = runner.run(&req);
            finished.store(true, Ordering::SeqCst);
            report
        })
    };
    let deadline = Instant::now() + WAIT_FOR_RECORD;
    let seen = loop {
        let reads: Vec<Value> = use_records(&sb)
            .into_iter()
            .filter(|u| u["function"] == "read" && u["target"] == file.display().to_string())
            .collect();
        if !reads.is_empty() {
            break reads;
        }
        assert!(
            Instant::now() < deadline,
            "no capability.use record within {WAIT_FOR_RECORD:?} of a run that reads in a loop"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        !finished.load(Ordering::SeqCst),
        "the records were seen only after the run ended"
    );
    assert!(seen.iter().all(|u| u["allowed"] == true), "{seen:?}");
    cancel.cancel();
    let report = run.join().expect("the run's thread");
    assert!(
        matches!(report.result, Err(RunError::Cancelled)),
        "{:?}",
        report.result
    );
}

/// A FIFO at `path`, made by the `mkfifo` program (no libc in the tests).
fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {path:?}");
}

#[test]
fn a_call_refused_after_the_grant_allowed_it_keeps_both_records_in_order() {
    let sb = Sandbox::new();
    let runner = sb.hostile_runner("default-timeout-ms = 5000", "timeout-ms = 20000");
    let fifo = sb.scratch().join("pipe");
    mkfifo(&fifo);
    let report = runner.run(
        &RunRequest::new("hostile", Invocation::Check)
            .with_config(json!({ "attack": "read", "path": fifo })),
    );
    assert!(
        report.result.is_err(),
        "a FIFO is not read: {:?}",
        report.result
    );
    let target = fifo.display().to_string();
    // Records of a read-only run are group-committed: wait for them, boundedly.
    let deadline = Instant::now() + WAIT_FOR_RECORD;
    let records = loop {
        let records: Vec<Value> = use_records(&sb)
            .into_iter()
            .filter(|u| u["target"] == target)
            .collect();
        if records.len() >= 2 || Instant::now() >= deadline {
            break records;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        records.len(),
        2,
        "{records:?}; the run recorded {:?}",
        report.capability_uses
    );
    assert_eq!(
        records[0]["allowed"], true,
        "the grant's decision comes first"
    );
    assert_eq!(records[1]["allowed"], false, "then the refusal");
    assert!(
        records[1]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("not a regular file")),
        "{records:?}"
    );
    assert_eq!(records[0]["function"], records[1]["function"]);
}
