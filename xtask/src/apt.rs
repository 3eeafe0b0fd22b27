//! Debian packages the tests need (Chromium for the console's browser tests, poppler-utils to
//! read back the PDF reports), installed with apt-get when one of their binaries is missing.
//! Debian's packages rather than downloads: the distribution's security updates keep them
//! current, and apt is reachable from every machine of the project.

use std::path::Path;
use std::process::Command;

use anyhow::Context;

use crate::util;

/// Install `packages` unless every one of `binaries` exists.
pub fn ensure(packages: &[&str], binaries: &[&str]) -> anyhow::Result<()> {
    if binaries.iter().all(|b| Path::new(b).exists()) {
        return Ok(());
    }
    println!("installing {} with apt-get", packages.join(" "));
    util::run(Command::new("apt-get").arg("update"))
        .context("apt-get update (the tests need root or a CI image with these packages)")?;
    util::run(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(packages),
    )
    .with_context(|| format!("apt-get install {}", packages.join(" ")))
}

/// poppler-utils: `pdftotext` and `pdftoppm` read back and render the PDF client reports.
pub fn ensure_poppler() -> anyhow::Result<()> {
    ensure(
        &["poppler-utils"],
        &["/usr/bin/pdftotext", "/usr/bin/pdftoppm"],
    )
}
