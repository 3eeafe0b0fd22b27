//! Python virtual environments under `target/polyglot/`, created with the system `python3` and
//! filled from a pinned requirements file. A stamp of the requirements' text skips the install
//! when nothing changed, because pip is slow and CI time is tight.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::util;

/// A venv at `target/polyglot/<name>` with `requirements` installed; returns its python.
pub fn ensure(root: &Path, name: &str, requirements: &Path) -> anyhow::Result<PathBuf> {
    let venv = root.join("target").join("polyglot").join(name);
    let python = venv.join("bin").join("python");
    let wanted = std::fs::read_to_string(requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let stamp = venv.join(".requirements");
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&wanted) {
        return Ok(python);
    }
    let system = std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
    if Command::new(&system).arg("--version").output().is_err() {
        bail!(
            "python3 is needed to build the {name} environment: install it (Debian: apt-get install python3 python3-venv)"
        );
    }
    println!(
        "python: creating {} from {}",
        venv.display(),
        requirements.display()
    );
    util::run(Command::new(&system).args(["-m", "venv"]).arg(&venv))
        .context("creating the virtualenv (Debian: apt-get install python3-venv)")?;
    util::run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(requirements),
    )?;
    std::fs::write(&stamp, wanted)?;
    Ok(python)
}
