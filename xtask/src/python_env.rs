//! Python virtual environments under `target/polyglot/`, created with the system `python3` and
//! filled with pinned packages. A stamp of the pins skips the install when nothing changed,
//! because pip is slow and CI time is tight.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::util;

/// The venv at `venv` with `pip install <install>` done for exactly `pins`; returns the venv.
/// `pins` is what the install depends on (a requirements file's text, a `pkg==version`).
pub fn ensure(venv: &Path, pins: &str, install: &[&OsStr]) -> anyhow::Result<PathBuf> {
    let python = venv.join("bin").join("python");
    let stamp = venv.join("warden-pins.txt");
    if python.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|s| s == pins) {
        return Ok(venv.to_path_buf());
    }
    if Command::new("python3").arg("--version").output().is_err() {
        bail!(
            "python3 (3.10 or later, with the venv module) is needed for {}: install it \
             (Debian/Ubuntu: apt-get install python3 python3-venv)",
            venv.display()
        );
    }
    println!(
        "python: creating {} ({})",
        venv.display(),
        pins.trim().replace('\n', ", ")
    );
    util::run(Command::new("python3").args(["-m", "venv"]).arg(venv))
        .context("creating the virtualenv (Debian/Ubuntu: apt-get install python3-venv)")?;
    util::run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(install),
    )?;
    std::fs::write(&stamp, pins).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(venv.to_path_buf())
}

/// The venv at `target/polyglot/<name>` with a requirements file installed.
pub fn ensure_requirements(
    root: &Path,
    name: &str,
    requirements: &Path,
) -> anyhow::Result<PathBuf> {
    let pins = std::fs::read_to_string(requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let venv = root.join("target").join("polyglot").join(name);
    ensure(&venv, &pins, &[OsStr::new("-r"), requirements.as_os_str()])
}
