//! `cargo xtask chromium`: make sure headless Chromium and its chromedriver (Debian's
//! `chromium` and `chromium-driver` packages) are installed for the console's browser tests,
//! installing them with apt-get when missing, and record the versions in
//! `target/tools/chromium.txt`.
//!
//! Debian's packages, not a downloaded browser (see [`crate::apt`]). The two must be the same
//! build (chromedriver drives only its own Chromium version), which is checked here rather than
//! found out as a session error in the middle of a test.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const PACKAGES: [&str; 2] = ["chromium", "chromium-driver"];

pub fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    if let Some(arg) = args.first() {
        bail!("`cargo xtask chromium` takes no arguments (got {arg:?})");
    }
    let record = ensure(root)?;
    print!("{}", std::fs::read_to_string(&record)?);
    Ok(())
}

/// Installed (with apt-get when missing) and of one version; the path of the record.
pub fn ensure(root: &Path) -> anyhow::Result<PathBuf> {
    crate::apt::ensure(&PACKAGES, &[CHROMIUM, CHROMEDRIVER])?;
    let browser = version_of(CHROMIUM)?;
    let driver = version_of(CHROMEDRIVER)?;
    if browser != driver {
        bail!(
            "Chromium is {browser} but chromedriver is {driver}: upgrade both (apt-get install {})",
            PACKAGES.join(" ")
        );
    }
    let packages = Command::new("dpkg-query")
        .args(["-W", "-f", "${Package} ${Version}\n"])
        .args(PACKAGES)
        .output()
        .context("dpkg-query")?;
    let dir = root.join("target/tools");
    std::fs::create_dir_all(&dir)?;
    let record = dir.join("chromium.txt");
    std::fs::write(
        &record,
        format!(
            "chromium {browser} ({CHROMIUM}, {CHROMEDRIVER})\n{}",
            String::from_utf8_lossy(&packages.stdout)
        ),
    )?;
    Ok(record)
}

/// The dotted version a `--version` line names (`Chromium 156.0.8078.114 built on ...`).
fn version_of(binary: &str) -> anyhow::Result<String> {
    let out = Command::new(binary)
        .arg("--version")
        .output()
        .with_context(|| format!("{binary} --version"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()) && w.contains('.'))
        .map(str::to_string)
        .with_context(|| format!("{binary} --version printed no version: {text:?}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_version_is_the_dotted_word() {
        let word = "ChromeDriver 156.0.8078.114 (ea19f97-refs/branch-heads/8078_108@{#5})"
            .split_whitespace()
            .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()) && w.contains('.'));
        assert_eq!(word, Some("156.0.8078.114"));
    }
}
