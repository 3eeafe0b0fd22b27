//! The example plugins written in Python and JavaScript (`examples/<dir>/` with `plugin.toml`,
//! `world.wit` and `app.py` or `plugin.js`): built into components with pinned toolchains kept
//! under `target/polyglot/`, and laid out in `target/plugins/<name>/` like the Rust guests.
//! These builds take tens of seconds each, so one is skipped when its inputs are unchanged.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

use crate::util;

/// The componentize-py release the Python examples are built and tested with.
pub const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";

/// Where the example plugins live, relative to the repository root.
const EXAMPLES_DIR: &str = "examples";
/// The pinned npm package set and the build script, relative to the repository root.
const JS_TOOLCHAIN_DIR: &str = "xtask/polyglot";
const JS_BUILD_SCRIPT: &str = "componentize.mjs";
/// Every example names its world `plugin` in its own package (see the examples' READMEs).
const WORLD: &str = "plugin";

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
    let mut python = None;
    let mut node = None;
    for example in &examples {
        let stamp = fingerprint(root, example)?;
        let build_dir = work.join("build").join(&example.plugin);
        let built = build_dir.join("plugin.wasm");
        let stamp_file = build_dir.join("inputs.stamp");
        print!(
            "building plugin {} ({}) ... ",
            example.plugin,
            example.lang.name()
        );
        std::io::Write::flush(&mut std::io::stdout()).ok();
        let fresh = built.is_file()
            && std::fs::read_to_string(&stamp_file).is_ok_and(|s| s.trim() == stamp);
        if fresh {
            print!("unchanged, ");
        } else {
            // A failed build must not leave a stamp that makes the next run skip it.
            let _ = std::fs::remove_file(&stamp_file);
            let wit = assemble_wit(root, example, &build_dir)?;
            let mut cmd = match example.lang {
                Lang::Python => {
                    let venv = match &python {
                        Some(v) => v,
                        None => python.insert(ensure_python(&work)?),
                    };
                    python_build(venv, example, &wit, &built)
                }
                Lang::JavaScript => {
                    let js = match &node {
                        Some(j) => j,
                        None => node.insert(ensure_node(root, &work)?),
                    };
                    js_build(js, example, &wit, &built)
                }
            };
            // Timed without the one-off toolchain install, to show what a rebuild costs.
            let started = Instant::now();
            run_quiet(&mut cmd, verbose, &example.plugin)?;
            std::fs::write(&stamp_file, &stamp)
                .with_context(|| format!("writing {}", stamp_file.display()))?;
            print!("built in {:.1} s, ", started.elapsed().as_secs_f64());
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
    files.extend(list_files(&root.join(JS_TOOLCHAIN_DIR))?);
    let mut h = DefaultHasher::new();
    COMPONENTIZE_PY.hash(&mut h);
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

/// `build_dir/wit/`: the example's world as the main package, the project's WIT as a dependency.
fn assemble_wit(root: &Path, example: &Example, build_dir: &Path) -> anyhow::Result<PathBuf> {
    let wit = build_dir.join("wit");
    if wit.exists() {
        std::fs::remove_dir_all(&wit).with_context(|| format!("clearing {}", wit.display()))?;
    }
    let deps = wit.join("deps").join("warden-plugin");
    std::fs::create_dir_all(&deps).with_context(|| format!("creating {}", deps.display()))?;
    for file in list_files(&root.join("wit"))? {
        if let Some(name) = file.file_name() {
            std::fs::copy(&file, deps.join(name))
                .with_context(|| format!("copying {}", file.display()))?;
        }
    }
    std::fs::copy(example.dir.join("world.wit"), wit.join("world.wit"))
        .with_context(|| format!("copying {}/world.wit", example.dir.display()))?;
    Ok(wit)
}

/// The virtualenv with the pinned componentize-py, created on first use.
fn ensure_python(work: &Path) -> anyhow::Result<PathBuf> {
    crate::python_env::ensure(
        &work.join("venv"),
        COMPONENTIZE_PY,
        &[std::ffi::OsStr::new(COMPONENTIZE_PY)],
    )
}

/// `target/polyglot/js` with the pinned ComponentizeJS installed and the build script beside it.
fn ensure_node(root: &Path, work: &Path) -> anyhow::Result<PathBuf> {
    let js = work.join("js");
    let src = root.join(JS_TOOLCHAIN_DIR);
    std::fs::create_dir_all(&js).with_context(|| format!("creating {}", js.display()))?;
    std::fs::copy(src.join(JS_BUILD_SCRIPT), js.join(JS_BUILD_SCRIPT))
        .with_context(|| format!("copying {JS_BUILD_SCRIPT}"))?;
    let mut pins = Vec::new();
    for name in ["package.json", "package-lock.json"] {
        pins.extend(
            std::fs::read(src.join(name))
                .with_context(|| format!("reading {JS_TOOLCHAIN_DIR}/{name}"))?,
        );
    }
    let installed = js.join("node_modules").join(".warden-pin");
    if std::fs::read(&installed).is_ok_and(|p| p == pins) {
        return Ok(js);
    }
    require(
        Command::new("node").arg("--version"),
        "Node.js (18 or later) and npm are needed to build the JavaScript example plugins: \
         install them (Debian/Ubuntu: apt-get install nodejs npm)",
    )?;
    require(
        Command::new("npm").arg("--version"),
        "npm is needed to build the JavaScript example plugins: install it (Debian/Ubuntu: \
         apt-get install npm)",
    )?;
    for name in ["package.json", "package-lock.json"] {
        std::fs::copy(src.join(name), js.join(name))
            .with_context(|| format!("copying {JS_TOOLCHAIN_DIR}/{name}"))?;
    }
    println!();
    println!("installing the pinned ComponentizeJS into {}", js.display());
    // `npm ci` installs exactly the lock file and fails if it disagrees with package.json.
    util::run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&js),
    )?;
    std::fs::write(&installed, &pins)
        .with_context(|| format!("writing {}", installed.display()))?;
    Ok(js)
}

/// Fail with `hint` when `cmd` cannot be started or fails.
fn require(cmd: &mut Command, hint: &str) -> anyhow::Result<()> {
    match cmd.stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(status) if status.success() => Ok(()),
        _ => bail!("{hint}"),
    }
}

fn python_build(venv: &Path, example: &Example, wit: &Path, out: &Path) -> Command {
    let mut cmd = Command::new(venv.join("bin").join("componentize-py"));
    cmd.arg("-d")
        .arg(wit)
        .args(["-w", WORLD, "componentize", "-p"])
        .arg(&example.dir)
        .arg("app")
        .arg("-o")
        .arg(out);
    // Bytecode caches would land in the source tree.
    cmd.env("PYTHONDONTWRITEBYTECODE", "1");
    cmd
}

fn js_build(js: &Path, example: &Example, wit: &Path, out: &Path) -> Command {
    let mut cmd = Command::new("node");
    cmd.arg(js.join(JS_BUILD_SCRIPT))
        .arg(example.dir.join("plugin.js"))
        .arg(wit)
        .arg(WORLD)
        .arg(out)
        .current_dir(js);
    cmd
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
        for dir in ["wit", JS_TOOLCHAIN_DIR, "examples/py"] {
            std::fs::create_dir_all(root.join(dir)).expect("dir");
        }
        for (file, text) in [
            ("wit/types.wit", "package warden:plugin@0.1.0;"),
            ("xtask/polyglot/package.json", "{}"),
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
            ("xtask/polyglot/package.json", "{ }"),
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
