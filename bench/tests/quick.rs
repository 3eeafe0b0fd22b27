//! Keeps the benchmark harness working: `cargo xtask test` (which builds the guest plugins first)
//! runs every benchmark once at `--quick` size. Nothing is timed or asserted about speed.

use std::process::Command;

#[test]
fn every_benchmark_runs_at_quick_size() {
    let out = Command::new(env!("CARGO_BIN_EXE_warden-bench"))
        .arg("--quick")
        .output()
        .expect("warden-bench starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "warden-bench --quick failed:\n{stdout}\n{stderr}"
    );
    for section in [
        "## 1. Trivial check plugin",
        "## 2. First runs",
        "### Python plugin",
        "## 3. Capability call overhead",
        "## 4. Throughput and memory",
        "daemon idle RSS",
        "## 6. The agent's API under load",
        "## Goals",
    ] {
        assert!(stdout.contains(section), "no `{section}` in:\n{stdout}");
    }
}

#[test]
fn a_missing_plugins_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_warden-bench"))
        .args(["--quick", "--plugins"])
        .arg(dir.path())
        .output()
        .expect("warden-bench starts");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cargo xtask build-plugins"),
        "the error should say how to build the guests: {stderr}"
    );
}
