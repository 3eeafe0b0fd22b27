//! `cargo xtask test`: build the tests (and `warden`), the guest plugins the end-to-end tests
//! load, the Python environment of the example NOC client, headless Chromium (the console's
//! browser tests) and poppler-utils (the PDF reports read back), then run the root workspace's
//! tests, passing any extra arguments through to `cargo test`; then the host-side unit tests
//! of the guests' shared library crates (without extra arguments only: those are filters for the
//! root workspace).

use std::path::Path;

use crate::{build_plugins, python_env, util};

pub fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    // Everything the tests need, `warden` included, in one cargo invocation: building the
    // binary alone first (for the Python and JavaScript examples) and the tests afterwards costs
    // minutes of lost parallelism on 2 cores, and CI time is bounded.
    util::run(util::cargo(root).args(["test", "--workspace", "--no-run"]))?;
    build_plugins::run(root, &[])?;
    crate::nats::ensure(root)?;
    crate::chromium::ensure(root)?;
    crate::apt::ensure_poppler()?;
    python_env::ensure_requirements(
        root,
        "grpc-venv",
        &root.join("examples/noc-client/requirements.txt"),
    )?;
    util::run(util::cargo(root).args(["test", "--workspace"]).args(args))?;
    if args.is_empty() {
        guest_library_tests(root)?;
    }
    Ok(())
}

/// Guest crates whose unit tests run on the host: libraries shared by plugins (`ticket-common`,
/// `apt-common`: the apt output parser and the patch approval rules), `apt-patch` (the re-check
/// of a plan in apply), and `inventory`, `auto-logoff` and `screen-lock`, whose parsers (dpkg
/// status, passwd, the kernel's socket tables, `ss` output, `TMOUT` lines, dconf keyfiles) are
/// pure and whose test binaries link on the host. Other component crates (`cdylib`) are tested
/// through the sandbox (`tests/all`).
const GUEST_LIBRARIES: [(&str, &str); 6] = [
    ("plugins", "ticket-common"),
    ("plugins", "apt-common"),
    ("plugins", "apt-patch"),
    ("plugins", "inventory"),
    ("plugins", "auto-logoff"),
    ("plugins", "screen-lock"),
];

fn guest_library_tests(root: &Path) -> anyhow::Result<()> {
    for (workspace, package) in GUEST_LIBRARIES {
        let manifest = root.join(workspace).join("Cargo.toml");
        util::run(
            util::cargo(root)
                .args(["test", "--manifest-path"])
                .arg(&manifest)
                .args(["-p", package, "--target-dir"])
                .arg(root.join("target/guest-tests")),
        )?;
    }
    Ok(())
}
