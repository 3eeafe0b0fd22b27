//! The pinned toolchains `warden plugin build` uses: the `wasm32-wasip2` Rust target, a
//! virtualenv with componentize-py, an npm tree with ComponentizeJS. Each is installed once
//! into the toolchains directory and reused by every plugin project.

use super::BuildError;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The componentize-py release Python plugins are built with.
pub const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";
/// The pinned ComponentizeJS package set and the script that drives it.
const JS_PACKAGE: &str = include_str!("../toolchains/js/package.json");
const JS_LOCK: &str = include_str!("../toolchains/js/package-lock.json");
pub const JS_SCRIPT: &str = include_str!("../toolchains/js/componentize.mjs");
pub const JS_SCRIPT_NAME: &str = "componentize.mjs";

/// Where toolchains live: `$WARDEN_TOOLCHAINS`, else the user's cache dir.
pub fn default_dir() -> Option<PathBuf> {
    std::env::var_os("WARDEN_TOOLCHAINS")
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("warden").join("toolchains")))
}

/// A short hash of what a toolchain is pinned to: a changed pin installs into a new directory.
fn pin_tag(pins: &[&str]) -> String {
    let mut all = String::new();
    for p in pins {
        all.push_str(p);
        all.push('\0');
    }
    warden_core::sha256_hex(all.as_bytes())[..12].to_string()
}

/// Run `cmd`; on failure the error carries its output.
pub fn run(cmd: &mut Command, hint: &str) -> Result<String, BuildError> {
    let shown = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| BuildError::Tool {
            command: shown.clone(),
            message: format!("cannot start it: {e}. {hint}"),
        })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(BuildError::Tool {
            command: shown,
            message: format!("{} ({})", text.trim(), out.status),
        });
    }
    Ok(text)
}

/// `program arg arg`, for messages.
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Add the `wasm32-wasip2` target to the active Rust toolchain when it is missing.
pub fn ensure_rust_target(progress: &dyn Fn(&str)) -> Result<(), BuildError> {
    const TARGET: &str = "wasm32-wasip2";
    let hint = "Rust plugins need the wasm32-wasip2 target (rustup target add wasm32-wasip2)";
    let Ok(installed) = run(
        Command::new("rustup").args(["target", "list", "--installed"]),
        hint,
    ) else {
        // Without rustup (a distribution toolchain) the target may still be there; cargo says
        // clearly if it is not.
        return Ok(());
    };
    if installed.lines().any(|l| l.trim() == TARGET) {
        return Ok(());
    }
    progress(&format!("adding the Rust target {TARGET} (once)"));
    run(Command::new("rustup").args(["target", "add", TARGET]), hint).map(drop)
}

/// Held while a toolchain is checked or installed, so that two builds at once (parallel tests,
/// two terminals) do not install into the same directory together.
struct InstallLock(#[allow(dead_code)] std::fs::File);

fn lock(dir: &Path, name: &str) -> Result<InstallLock, BuildError> {
    std::fs::create_dir_all(dir).map_err(|e| BuildError::io(dir, e))?;
    let path = dir.join(format!(".{name}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| BuildError::io(&path, e))?;
    // std's lock: flock on Unix, LockFileEx on Windows.
    file.lock().map_err(|e| BuildError::io(&path, e))?;
    Ok(InstallLock(file))
}

/// The virtualenv with the pinned componentize-py; returns its `componentize-py`.
pub fn ensure_componentize_py(dir: &Path, progress: &dyn Fn(&str)) -> Result<PathBuf, BuildError> {
    let name = format!("componentize-py-{}", pin_tag(&[COMPONENTIZE_PY]));
    let _lock = lock(dir, &name)?;
    let venv = dir.join(name);
    let tool = venv.join("bin").join("componentize-py");
    let ready = venv.join(".warden-ready");
    if tool.is_file() && ready.is_file() {
        return Ok(tool);
    }
    progress(&format!(
        "installing {COMPONENTIZE_PY} into {} (once)",
        venv.display()
    ));
    let hint = "Python plugins need python3 (3.10 or later) with its venv module \
                (Debian/Ubuntu: apt-get install python3 python3-venv)";
    // A half-made venv from an interrupted install is replaced, not trusted.
    let _ = std::fs::remove_dir_all(&venv);
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        hint,
    )?;
    run(
        Command::new(venv.join("bin").join("python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg(COMPONENTIZE_PY),
        "pip could not install componentize-py from PyPI",
    )?;
    write(&ready, "")?;
    Ok(tool)
}

/// The npm tree with the pinned ComponentizeJS and the build script; returns the directory.
pub fn ensure_componentize_js(dir: &Path, progress: &dyn Fn(&str)) -> Result<PathBuf, BuildError> {
    let name = format!(
        "componentize-js-{}",
        pin_tag(&[JS_PACKAGE, JS_LOCK, JS_SCRIPT])
    );
    let _lock = lock(dir, &name)?;
    let js = dir.join(name);
    let ready = js.join(".warden-ready");
    if ready.is_file() {
        return Ok(js);
    }
    progress(&format!(
        "installing the pinned ComponentizeJS into {} (once)",
        js.display()
    ));
    let hint = "JavaScript plugins need Node.js 18 or later with npm \
                (Debian/Ubuntu: apt-get install nodejs npm)";
    let _ = std::fs::remove_dir_all(&js);
    std::fs::create_dir_all(&js).map_err(|e| BuildError::io(&js, e))?;
    write(&js.join("package.json"), JS_PACKAGE)?;
    write(&js.join("package-lock.json"), JS_LOCK)?;
    write(&js.join(JS_SCRIPT_NAME), JS_SCRIPT)?;
    // `npm ci` installs exactly the lock file and fails if it disagrees with package.json.
    run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&js),
        hint,
    )?;
    write(&ready, "")?;
    Ok(js)
}

fn write(path: &Path, text: &str) -> Result<(), BuildError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| BuildError::io(parent, e))?;
    }
    std::fs::write(path, text).map_err(|e| BuildError::io(path, e))
}
