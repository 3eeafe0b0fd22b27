//! The example plugins written in Python and JavaScript (`examples/<dir>/` with `plugin.toml`,
//! `world.wit` and `app.py` or `plugin.js`): built into components by the author's own tool,
//! `warden plugin build` (pinned toolchains under `target/polyglot/toolchains/`), and laid out in
//! `target/plugins/<name>/` like the Rust guests. A build whose inputs are unchanged is skipped.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::util;

/// Where the example plugins live, relative to the repository root.
const EXAMPLES_DIR: &str = "examples";
/// What pins the toolchains `warden plugin build` installs, relative to the repository root.
const TOOLCHAIN_PINS: [&str; 2] = [
    "crates/warden-author/toolchains",
    "crates/warden-author/src",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    Python,
    JavaScript,
}

impl Lang {
    fn name(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::JavaScript => "javascript",
        }
    }
}

/// One example plugin directory.
struct Example {
    dir: PathBuf,
    lang: Lang,
    /// The plugin name from `plugin.toml`.
    plugin: String,
    /// The component file name the manifest points at.
    component: String,
}

/// Build every Python and JavaScript example into `out_dir/<name>/`.
pub fn build_all(root: &Path, out_dir: &Path, verbose: bool) -> anyhow::Result<()> {
    let examples = find(&root.join(EXAMPLES_DIR))?;
    let work = root.join("target").join("polyglot");
    let mut warden = None;
    for example in &examples {
        let stamp = fingerprint(root, example)?;
        let build_dir = work.join("build").join(&example.plugin);
        let built = build_dir.join("plugin.wasm");
        let stamp_file = build_dir.join("inputs.stamp");
        let fresh = built.is_file()
            && std::fs::read_to_string(&stamp_file).is_ok_and(|s| s.trim() == stamp);
        if !fresh {
            let warden = match &warden {
                Some(w) => w,
                None => warden.insert(build_warden(root)?),
            };
            // A failed build must not leave a stamp that makes the next run skip it.
            let _ = std::fs::remove_file(&stamp_file);
            std::fs::create_dir_all(&build_dir)
                .with_context(|| format!("creating {}", build_dir.display()))?;
            let mut cmd = Command::new(warden);
            cmd.args(["plugin", "build"])
                .arg(&example.dir)
                .arg("--out")
                .arg(&built)
                .env("WARDEN_TOOLCHAINS", work.join("toolchains"));
            // Timed with any one-off toolchain install, which the tool announces.
            let started = Instant::now();
            run_quiet(&mut cmd, verbose, &example.plugin)?;
            std::fs::write(&stamp_file, &stamp)
                .with_context(|| format!("writing {}", stamp_file.display()))?;
            print!(
                "building plugin {} ({}) ... built in {:.1} s, ",
                example.plugin,
                example.lang.name(),
                started.elapsed().as_secs_f64()
            );
        } else {
            print!(
                "building plugin {} ({}) ... unchanged, ",
                example.plugin,
                example.lang.name()
            );
        }
        let dest = out_dir.join(&example.plugin);
        if dest.exists() {
            std::fs::remove_dir_all(&dest)
                .with_context(|| format!("clearing {}", dest.display()))?;
        }
        std::fs::create_dir_all(&dest).with_context(|| format!("creating {}", dest.display()))?;
        std::fs::copy(example.dir.join("plugin.toml"), dest.join("plugin.toml"))
            .with_context(|| format!("copying the manifest of {}", example.plugin))?;
        let bytes = std::fs::copy(&built, dest.join(&example.component))
            .with_context(|| format!("copying {}", built.display()))?;
        println!("{} KB", bytes.div_ceil(1024));
    }
    Ok(())
}

/// Example directories with a manifest, a world and a source in a language built here.
fn find(examples: &Path) -> anyhow::Result<Vec<Example>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(examples)
        .with_context(|| format!("reading {}", examples.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|dir| dir.join("plugin.toml").is_file())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|dir| {
            let lang = match (
                dir.join("app.py").is_file(),
                dir.join("plugin.js").is_file(),
            ) {
                (true, false) => Lang::Python,
                (false, true) => Lang::JavaScript,
                _ => bail!(
                    "{} must hold exactly one of app.py (Python) or plugin.js (JavaScript)",
                    dir.display()
                ),
            };
            if !dir.join("world.wit").is_file() {
                bail!(
                    "{} has no world.wit naming the interfaces the plugin imports",
                    dir.display()
                );
            }
            let manifest = std::fs::read_to_string(dir.join("plugin.toml"))
                .with_context(|| format!("reading {}/plugin.toml", dir.display()))?;
            let plugin = util::toml_string(&manifest, "", "name")
                .with_context(|| format!("no name in {}/plugin.toml", dir.display()))?;
            let component = util::toml_string(&manifest, "", "component")
                .unwrap_or_else(|| "plugin.wasm".into());
            Ok(Example {
                dir,
                lang,
                plugin,
                component,
            })
        })
        .collect()
}

/// A hash of everything a build depends on: the example's files, the project's WIT, and the
/// pinned toolchain. Content, not mtimes, so a fresh checkout of the same sources is unchanged.
fn fingerprint(root: &Path, example: &Example) -> anyhow::Result<String> {
    let mut files = list_files(&example.dir)?;
    files.extend(list_files(&root.join("wit"))?);
    for pins in TOOLCHAIN_PINS {
        files.extend(list_files(&root.join(pins))?);
    }
    let mut h = DefaultHasher::new();
    for file in files {
        let rel = file.strip_prefix(root).unwrap_or(&file);
        rel.hash(&mut h);
        std::fs::read(&file)
            .with_context(|| format!("reading {}", file.display()))?
            .hash(&mut h);
    }
    Ok(format!("{:016x}", h.finish()))
}

/// Regular files under `dir`, sorted, skipping caches and installed packages.
fn list_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if matches!(name, "__pycache__" | "node_modules") {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if path.is_file() {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The `warden` binary of this checkout, built (dev profile) so the examples are built by the
/// same tool plugin authors use.
fn build_warden(root: &Path) -> anyhow::Result<PathBuf> {
    println!("building the warden tool to build the Python and JavaScript examples");
    // The whole workspace, as the tests build it: one package alone re-resolves features.
    util::run(util::cargo(root).args(["build", "--workspace", "--quiet"]))?;
    let warden = root.join("target").join("debug").join("warden");
    if !warden.is_file() {
        bail!("{} was not built", warden.display());
    }
    Ok(warden)
}

/// Run a build, showing its output only when verbose or when it fails.
fn run_quiet(cmd: &mut Command, verbose: bool, plugin: &str) -> anyhow::Result<()> {
    if verbose {
        println!();
        return util::run(cmd);
    }
    let out = cmd
        .output()
        .with_context(|| format!("starting {}", util::describe(cmd)))?;
    if !out.status.success() {
        println!("failed");
        eprintln!("{}", String::from_utf8_lossy(&out.stdout));
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        bail!("building {plugin} failed ({})", out.status);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A throwaway repository layout with one Python example.
    fn layout(name: &str) -> PathBuf {
        let root =
            std::env::temp_dir().join(format!("xtask-polyglot-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for dir in ["wit", TOOLCHAIN_PINS[0], TOOLCHAIN_PINS[1], "examples/py"] {
            std::fs::create_dir_all(root.join(dir)).expect("dir");
        }
        for (file, text) in [
            ("wit/types.wit", "package warden:plugin@0.1.0;"),
            ("crates/warden-author/toolchains/package.json", "{}"),
            (
                "crates/warden-author/src/toolchain.rs",
                "const PY: &str = \"componentize-py==0.25.1\";",
            ),
            ("examples/py/app.py", "x = 1"),
            ("examples/py/world.wit", "package a:b;"),
            ("examples/py/plugin.toml", "name = \"py\"\n"),
        ] {
            std::fs::write(root.join(file), text).expect("file");
        }
        root
    }

    #[test]
    fn the_fingerprint_follows_sources_wit_and_pins() {
        let root = layout("fingerprint");
        let examples = find(&root.join(EXAMPLES_DIR)).expect("examples");
        assert_eq!(examples.len(), 1);
        assert_eq!(examples[0].lang, Lang::Python);
        assert_eq!(examples[0].component, "plugin.wasm");
        let first = fingerprint(&root, &examples[0]).expect("fingerprint");
        assert_eq!(first, fingerprint(&root, &examples[0]).expect("again"));
        let mut seen = vec![first];
        for (file, text) in [
            ("examples/py/app.py", "x = 2"),
            ("wit/types.wit", "package warden:plugin@0.1.1;"),
            ("crates/warden-author/toolchains/package.json", "{ }"),
            (
                "crates/warden-author/src/toolchain.rs",
                "const PY: &str = \"componentize-py==0.26.0\";",
            ),
        ] {
            std::fs::write(root.join(file), text).expect("edit");
            let next = fingerprint(&root, &examples[0]).expect("fingerprint");
            assert!(
                !seen.contains(&next),
                "{file} did not change the fingerprint"
            );
            seen.push(next);
        }
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn an_example_needs_exactly_one_source_and_a_world() {
        let root = layout("find");
        std::fs::write(root.join("examples/py/plugin.js"), "").expect("file");
        let err = find(&root.join(EXAMPLES_DIR))
            .err()
            .expect("two sources refused");
        assert!(err.to_string().contains("exactly one"), "{err}");
        std::fs::remove_file(root.join("examples/py/plugin.js")).expect("rm");
        std::fs::remove_file(root.join("examples/py/world.wit")).expect("rm");
        let err = find(&root.join(EXAMPLES_DIR))
            .err()
            .expect("no world refused");
        assert!(err.to_string().contains("world.wit"), "{err}");
        let _ = std::fs::remove_dir_all(&root);
    }
}
