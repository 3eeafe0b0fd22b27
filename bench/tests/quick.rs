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

#[test]
fn the_report_benchmark_runs_at_quick_size() {
    let out = Command::new(env!("CARGO_BIN_EXE_warden-bench"))
        .args(["--report", "--quick"])
        .output()
        .expect("warden-bench starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("## Client report generation"), "{stdout}");
    // 100 agents x 4 monitors: every service is in the report, every format has a size.
    assert!(stdout.contains("400 services"), "{stdout}");
    for format in ["HTML", "CSV", "PDF"] {
        let row = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(format))
            .unwrap_or_else(|| panic!("no {format} row in {stdout}"));
        assert!(row.contains("KiB"), "{row}");
    }
}
