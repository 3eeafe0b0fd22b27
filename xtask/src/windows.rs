//! `cargo xtask check-windows`: check that the `warden` binary, and every crate it links, still
//! compiles for Windows (`x86_64-pc-windows-gnu`), so the Windows service backend (`sc.exe`) and
//! the path handling behind `cfg(windows)` cannot rot unseen on the project's Linux machines.
//!
//! A check, not a build: nothing is linked or run (the tests need a Windows host). The C parts of
//! dependencies (bundled SQLite, ring) are still compiled by their build scripts, so the MinGW
//! cross compiler is installed first when missing, from Debian, pinned.

use std::process::Command;

use anyhow::{Context, bail};

/// GNU rather than MSVC: the GNU target's C compiler (MinGW) is a Debian package; MSVC's is not
/// installable on Linux.
pub const TARGET: &str = "x86_64-pc-windows-gnu";

/// The C cross compiler the build scripts look for (`cc` crate's default for [`TARGET`]).
const CROSS_CC: &str = "x86_64-w64-mingw32-gcc";

/// Debian bookworm's MinGW GCC, pinned so that a change of compiler is a change of this file.
const MINGW_PACKAGE: &str = "gcc-mingw-w64-x86-64=12.2.0-14+25.2";

pub fn run(root: &std::path::Path, args: &[String]) -> anyhow::Result<()> {
    if let Some(arg) = args.first() {
        bail!("`cargo xtask check-windows` takes no arguments (got {arg:?})");
    }
    ensure_target()?;
    ensure_cross_cc()?;
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args([
            "check",
            "--locked",
            "--target",
            TARGET,
            "-p",
            "warden-runner",
            "--bins",
        ])
        .status()
        .context("running cargo check")?;
    if !status.success() {
        bail!("the warden binary does not compile for {TARGET} (see the errors above)");
    }
    println!("warden compiles for {TARGET}");
    Ok(())
}

fn ensure_target() -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("running rustup (the check needs the Windows standard library)")?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == TARGET)
    {
        return Ok(());
    }
    println!("installing the Rust standard library for {TARGET}");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .context("running rustup target add")?;
    if !status.success() {
        bail!("`rustup target add {TARGET}` failed");
    }
    Ok(())
}

fn has_cross_cc() -> bool {
    Command::new(CROSS_CC)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn ensure_cross_cc() -> anyhow::Result<()> {
    if has_cross_cc() {
        return Ok(());
    }
    println!("installing the MinGW cross compiler ({MINGW_PACKAGE}) from Debian");
    for args in [
        &["update", "-qq"][..],
        &[
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            MINGW_PACKAGE,
        ][..],
    ] {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("running apt-get (install the MinGW cross compiler by hand elsewhere)")?;
        if !status.success() {
            bail!("`apt-get {}` failed (it needs root)", args.join(" "));
        }
    }
    if !has_cross_cc() {
        bail!("{CROSS_CC} is still missing after installing {MINGW_PACKAGE}");
    }
    Ok(())
}
