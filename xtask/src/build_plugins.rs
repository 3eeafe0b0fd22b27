//! `cargo xtask build-plugins`: compile every guest crate (first-party plugins and test guests)
//! to a `wasm32-wasip2` component, and the Python and JavaScript examples with their pinned
//! toolchains (see `polyglot`), laid out as `target/plugins/<name>/{plugin.toml, plugin.wasm}`,
//! the layout the runner loads plugins from.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use crate::polyglot;
use crate::util::{self, GUEST_WORKSPACES, Guest, WASM_TARGET};

pub fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    let verbose = match args {
        [] => false,
        [flag] if flag == "-v" || flag == "--verbose" => true,
        _ => bail!("usage: cargo xtask build-plugins [-v|--verbose]"),
    };
    ensure_target()?;
    let wasm_dir = root.join("target").join("wasm");
    let out_dir = root.join("target").join("plugins");
    for workspace in GUEST_WORKSPACES {
        let workspace = root.join(workspace);
        let guests = util::guests(&workspace)?;
        build(&workspace, &guests, &wasm_dir, verbose)?;
        for guest in &guests {
            install(guest, &wasm_dir, &out_dir)?;
        }
    }
    polyglot::build_all(root, &out_dir, verbose)?;
    println!("plugins ready in {}", out_dir.display());
    Ok(())
}

/// Install the wasm target through rustup when it is missing.
fn ensure_target() -> anyhow::Result<()> {
    let listed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match listed {
        Ok(out) if out.status.success() => {
            if String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|line| line.trim() == WASM_TARGET)
            {
                return Ok(());
            }
            println!("installing the {WASM_TARGET} target with rustup");
            util::run(Command::new("rustup").args(["target", "add", WASM_TARGET]))
        }
        // Without rustup (a distribution toolchain) the target may still be there; the build
        // will say clearly if it is not.
        _ => {
            eprintln!("warning: cannot ask rustup for installed targets; assuming {WASM_TARGET}");
            Ok(())
        }
    }
}

/// Build every guest of `workspace` in one cargo invocation, so they compile in parallel and
/// share one build of the SDK (the role is a macro, not a feature, so nothing unifies).
fn build(workspace: &Path, guests: &[Guest], wasm_dir: &Path, verbose: bool) -> anyhow::Result<()> {
    let names: Vec<&str> = guests.iter().map(|g| g.plugin.as_str()).collect();
    print!("building plugins {} ... ", names.join(", "));
    // Show what is building before the (possibly long) compile starts.
    std::io::Write::flush(&mut std::io::stdout()).ok();

    let mut cmd = util::cargo(workspace);
    cmd.args([
        "build",
        "--release",
        "--target",
        WASM_TARGET,
        "--target-dir",
    ])
    .arg(wasm_dir);
    for guest in guests {
        cmd.args(["-p", &guest.package]);
    }
    if verbose {
        println!();
        util::run(&mut cmd)?;
    } else {
        let out = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("starting {}", util::describe(&cmd)))?;
        if !out.status.success() {
            println!("failed");
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
            bail!(
                "building the plugins of {} failed ({})",
                workspace.display(),
                out.status
            );
        }
        println!("done");
    }
    Ok(())
}

/// Lay out one built guest as `out_dir/<name>/{plugin.toml, component}`.
fn install(guest: &Guest, wasm_dir: &Path, out_dir: &Path) -> anyhow::Result<()> {
    let wasm = wasm_dir
        .join(WASM_TARGET)
        .join("release")
        .join(format!("{}.wasm", guest.package.replace('-', "_")));
    let dest = out_dir.join(&guest.plugin);
    // Start from an empty directory so no stale file from an older layout survives.
    if dest.exists() {
        std::fs::remove_dir_all(&dest).with_context(|| format!("clearing {}", dest.display()))?;
    }
    std::fs::create_dir_all(&dest).with_context(|| format!("creating {}", dest.display()))?;
    std::fs::copy(guest.dir.join("plugin.toml"), dest.join("plugin.toml"))
        .with_context(|| format!("copying the manifest of {}", guest.package))?;
    let bytes = std::fs::copy(&wasm, dest.join(&guest.component))
        .with_context(|| format!("copying {}", wasm.display()))?;
    println!("  {} {} KB", guest.plugin, bytes.div_ceil(1024));
    Ok(())
}
