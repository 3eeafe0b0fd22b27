//! `cargo xtask lint`: `cargo fmt --check` and `clippy -D warnings` on the root workspace, the
//! SDK (with its proc macro) and each guest workspace for `wasm32-wasip2`.
//! `--fmt-only` checks formatting alone: seconds rather than minutes, for CI.

use std::path::Path;

use anyhow::bail;

use crate::util::{self, GUEST_WORKSPACES, SDK_DIR, WASM_TARGET};

pub fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    let fmt_only = match args {
        [] => false,
        [flag] if flag == "--fmt-only" => true,
        _ => bail!("usage: cargo xtask lint [--fmt-only]"),
    };
    let wasm_dir = root.join("target").join("wasm");

    println!("lint: root workspace");
    util::run(util::cargo(root).args(["fmt", "--all", "--check"]))?;
    if fmt_only {
        util::run(util::cargo(&root.join(SDK_DIR)).args(["fmt", "--all", "--check"]))?;
        for workspace in GUEST_WORKSPACES {
            util::run(util::cargo(&root.join(workspace)).args(["fmt", "--all", "--check"]))?;
        }
        println!("lint: formatting clean (clippy not run: `cargo xtask lint` runs it)");
        return Ok(());
    }
    util::run(util::cargo(root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;

    let sdk = root.join(SDK_DIR);
    util::run(util::cargo(&sdk).args(["fmt", "--all", "--check"]))?;
    println!("lint: sdk");
    util::run(
        util::cargo(&sdk)
            .args([
                "clippy",
                "--workspace",
                "--target",
                WASM_TARGET,
                "--target-dir",
            ])
            .arg(&wasm_dir)
            .args(["--", "-D", "warnings"]),
    )?;

    for workspace in GUEST_WORKSPACES {
        let dir = root.join(workspace);
        util::run(util::cargo(&dir).args(["fmt", "--all", "--check"]))?;
        // The whole workspace at once: the role is a macro, so nothing unifies across guests.
        println!("lint: {workspace}");
        util::run(
            util::cargo(&dir)
                .args([
                    "clippy",
                    "--workspace",
                    "--target",
                    WASM_TARGET,
                    "--target-dir",
                ])
                .arg(&wasm_dir)
                .args(["--", "-D", "warnings"]),
        )?;
    }
    println!("lint: all clean");
    Ok(())
}
