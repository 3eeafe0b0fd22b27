//! Helpers shared by the commands: where the guest workspaces are, how to run a nested cargo
//! with a clean environment, and a minimal reader for the few TOML keys xtask needs.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The wasm target every guest is built for.
pub const WASM_TARGET: &str = "wasm32-wasip2";

/// Cargo workspaces of guest crates, relative to the repository root. Each is built apart from
/// the root workspace (a different target), all its guests in one invocation (see
/// `build_plugins`).
pub const GUEST_WORKSPACES: [&str; 2] = ["plugins", "tests/guests"];

/// The guest SDK, a standalone package used by every guest.
pub const SDK_DIR: &str = "sdk";

/// One guest crate: a directory of a guest workspace holding `Cargo.toml` and `plugin.toml`.
#[derive(Debug)]
pub struct Guest {
    pub dir: PathBuf,
    /// The cargo package name (`disk-usage`).
    pub package: String,
    /// The plugin name from `plugin.toml`, which names its directory in `target/plugins/`.
    pub plugin: String,
    /// The component file name the manifest points at.
    pub component: String,
}

/// Guest crates of `workspace`, sorted by directory name.
pub fn guests(workspace: &Path) -> anyhow::Result<Vec<Guest>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(workspace)
        .with_context(|| format!("reading {}", workspace.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|dir| dir.join("Cargo.toml").is_file() && dir.join("plugin.toml").is_file())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|dir| {
            let cargo = read(&dir.join("Cargo.toml"))?;
            let manifest = read(&dir.join("plugin.toml"))?;
            let package = toml_string(&cargo, "package", "name")
                .with_context(|| format!("no package name in {}/Cargo.toml", dir.display()))?;
            let plugin = toml_string(&manifest, "", "name")
                .with_context(|| format!("no name in {}/plugin.toml", dir.display()))?;
            let component =
                toml_string(&manifest, "", "component").unwrap_or_else(|| "plugin.wasm".into());
            Ok(Guest {
                dir,
                package,
                plugin,
                component,
            })
        })
        .collect()
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// The string value of `key = "..."` in table `section` ("" for the top level). Enough for the
/// simple manifests of this repository, and keeps xtask free of a TOML dependency.
pub fn toml_string(text: &str, section: &str, key: &str) -> Option<String> {
    let mut current = "";
    for line in text.lines().map(str::trim) {
        if let Some(header) = line.strip_prefix('[') {
            current = header.trim_end_matches(']').trim();
            continue;
        }
        if current != section {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if k.trim() == key {
            let v = v.trim();
            let v = v.split_once(" #").map_or(v, |(v, _)| v.trim());
            return v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .map(str::to_string);
        }
    }
    None
}

/// A `cargo` command run in `dir`, with the settings of the outer `cargo xtask` removed: a host
/// RUSTFLAGS or target dir must not leak into a wasm build or a nested workspace.
pub fn cargo(dir: &Path) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(cargo);
    cmd.current_dir(dir);
    for var in [
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_TARGET_DIR",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTDOCFLAGS",
        "CARGO_ENCODED_RUSTDOCFLAGS",
        "CARGO_MAKEFLAGS",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Run `cmd` with inherited output; fail when it fails.
pub fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("starting {}", describe(cmd)))?;
    if !status.success() {
        bail!("{} failed ({status})", describe(cmd));
    }
    Ok(())
}

/// The command line, for error messages.
pub fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// `args` as one shell line, each argument quoted where a shell would split or expand it, so a
/// printed command pastes as it ran (`--config '{"dir": "/tmp/x"}'`).
pub fn shell_line(args: &[&str]) -> String {
    // shlex quotes more than a shell needs (`'force=true'`): words of these characters alone
    // are left as they are, for a line that reads as one would type it.
    let plain = |arg: &str| {
        !arg.is_empty()
            && arg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c))
    };
    args.iter()
        .map(|&arg| match shlex::try_quote(arg) {
            _ if plain(arg) => arg.to_string(),
            Ok(quoted) => quoted.into_owned(),
            Err(_) => format!("{arg:?}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::toml_string;

    #[test]
    fn reads_top_level_and_table_keys() {
        let text =
            "name = \"disk-usage\" # the name\nrole = \"check\"\n\n[package]\nname = \"x\"\n";
        assert_eq!(toml_string(text, "", "name").as_deref(), Some("disk-usage"));
        assert_eq!(toml_string(text, "package", "name").as_deref(), Some("x"));
        assert_eq!(toml_string(text, "", "component"), None);
    }

    #[test]
    fn a_printed_command_quotes_what_a_shell_would_split() {
        assert_eq!(
            super::shell_line(&["run", "--config", r#"{"dir": "/tmp/x"}"#, "plain=1"]),
            r#"run --config '{"dir": "/tmp/x"}' plain=1"#
        );
    }
}
