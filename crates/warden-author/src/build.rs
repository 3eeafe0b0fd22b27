//! `warden plugin build`: turn a plugin project into the component its manifest names. The
//! language is recognised from the project's files; Python and JavaScript get the project's
//! `world.wit` with the warden WIT beside it, the way their toolchains expect.

use super::BuildError;
use super::toolchain::{self, JS_SCRIPT_NAME};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;
use warden_core::manifest::Manifest;

/// The warden WIT package, as `wit/deps/warden-plugin/` of a Python or JavaScript build.
const WARDEN_WIT: [(&str, &str); 11] = [
    ("exec.wit", include_str!("../../../wit/exec.wit")),
    ("fs.wit", include_str!("../../../wit/fs.wit")),
    ("http.wit", include_str!("../../../wit/http.wit")),
    ("kv.wit", include_str!("../../../wit/kv.wit")),
    ("log.wit", include_str!("../../../wit/log.wit")),
    ("roles.wit", include_str!("../../../wit/roles.wit")),
    ("service.wit", include_str!("../../../wit/service.wit")),
    ("sysinfo.wit", include_str!("../../../wit/sysinfo.wit")),
    ("ticketing.wit", include_str!("../../../wit/ticketing.wit")),
    ("types.wit", include_str!("../../../wit/types.wit")),
    ("worlds.wit", include_str!("../../../wit/worlds.wit")),
];

/// The world every Python and JavaScript plugin project defines in its `world.wit`.
pub const WORLD: &str = "plugin";

/// A plugin project's language, recognised from its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Language {
    /// `Cargo.toml`: a crate on the warden SDK.
    Rust,
    /// `app.py`: the module componentize-py builds.
    Python,
    /// `plugin.js`: the module ComponentizeJS builds.
    Javascript,
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Language::Rust => "Rust",
            Language::Python => "Python",
            Language::Javascript => "JavaScript",
        })
    }
}

impl Language {
    pub fn detect(dir: &Path) -> Result<Language, BuildError> {
        let found: Vec<Language> = [
            ("Cargo.toml", Language::Rust),
            ("app.py", Language::Python),
            ("plugin.js", Language::Javascript),
        ]
        .into_iter()
        .filter(|(file, _)| dir.join(file).is_file())
        .map(|(_, lang)| lang)
        .collect();
        match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(BuildError::UnknownLanguage {
                dir: dir.display().to_string(),
                why: "none of Cargo.toml (Rust), app.py (Python) or plugin.js (JavaScript) is there"
                    .into(),
            }),
            _ => Err(BuildError::UnknownLanguage {
                dir: dir.display().to_string(),
                why: "more than one of Cargo.toml, app.py and plugin.js is there; keep one language per project".into(),
            }),
        }
    }
}

/// What a build made.
#[derive(Debug, serde::Serialize)]
pub struct BuildReport {
    pub plugin: String,
    pub language: Language,
    pub component: PathBuf,
    pub bytes: u64,
    pub seconds: f64,
    /// Capabilities the manifest requests and the component never uses.
    pub warnings: Vec<String>,
}

/// Options of one build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The project: `plugin.toml` and the sources.
    pub dir: PathBuf,
    /// Where to write the component. Default: the manifest's `component`, in the project.
    pub out: Option<PathBuf>,
    /// Where the pinned toolchains are installed.
    pub toolchains: PathBuf,
}

/// Build the project's component.
pub fn build(opts: &BuildOptions, progress: &dyn Fn(&str)) -> Result<BuildReport, BuildError> {
    let started = Instant::now();
    let dir = &opts.dir;
    let manifest = Manifest::load(&dir.join("plugin.toml"))?;
    let language = Language::detect(dir)?;
    let out = opts
        .out
        .clone()
        .unwrap_or_else(|| dir.join(&manifest.component));
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| BuildError::io(parent, e))?;
    }
    progress(&format!(
        "building {} {} ({language}) into {}",
        manifest.name,
        manifest.version,
        out.display()
    ));
    match language {
        Language::Rust => build_rust(dir, &out, progress)?,
        Language::Python => {
            let tool = toolchain::ensure_componentize_py(&opts.toolchains, progress)?;
            let wit = assemble_wit(dir)?;
            toolchain::run(
                Command::new(tool)
                    .arg("-d")
                    .arg(wit.path())
                    .args(["-w", WORLD, "componentize", "-p"])
                    .arg(dir)
                    .arg("app")
                    .arg("-o")
                    .arg(&out)
                    // Bytecode caches would land in the project.
                    .env("PYTHONDONTWRITEBYTECODE", "1")
                    // The tool's own Rust backtrace says nothing about the author's code.
                    .env("RUST_BACKTRACE", "0"),
                "",
            )
            .map_err(|e| match e {
                BuildError::Tool { command, message } => BuildError::Tool {
                    command,
                    message: python_failure(&message),
                },
                other => other,
            })?;
        }
        Language::Javascript => {
            let js = toolchain::ensure_componentize_js(&opts.toolchains, progress)?;
            let wit = assemble_wit(dir)?;
            let source =
                std::path::absolute(dir.join("plugin.js")).map_err(|e| BuildError::io(dir, e))?;
            let out_abs = std::path::absolute(&out).map_err(|e| BuildError::io(&out, e))?;
            toolchain::run(
                Command::new("node")
                    .arg(js.join(JS_SCRIPT_NAME))
                    .arg(source)
                    .arg(wit.path())
                    .arg(WORLD)
                    .arg(out_abs)
                    .current_dir(&js),
                "JavaScript plugins need Node.js 18 or later",
            )?;
        }
    }
    let component = std::fs::read(&out).map_err(|e| BuildError::io(&out, e))?;
    // Checked here as an agent checks it at install, so the author hears it now.
    let warnings = crate::contract::check(&component, &manifest)?;
    Ok(BuildReport {
        plugin: manifest.name,
        language,
        component: out,
        bytes: u64::try_from(component.len()).unwrap_or(u64::MAX),
        seconds: started.elapsed().as_secs_f64(),
        warnings,
    })
}

/// What a failed componentize-py run says, for an author: the app's own Python traceback once
/// (the tool wraps it in an `AssertionError` of its own and repeats it under "Caused by:"), and
/// when the app imports a warden interface its world does not, the line of WIT to add.
fn python_failure(output: &str) -> String {
    let inner = output
        .split_once("AssertionError: ")
        .map_or(output, |(_, rest)| rest);
    let inner = inner.split("\nCaused by:").next().unwrap_or(inner);
    let inner = inner
        .split("\nStack backtrace:")
        .next()
        .unwrap_or(inner)
        .trim();
    match missing_import(inner) {
        Some(interface) => format!(
            "{inner}\n`{interface}` is a warden interface that world.wit does not import: add `{}` to world.wit (and request the capability in plugin.toml)",
            warden_core::contract::import_line(&interface)
        ),
        None => inner.to_string(),
    }
}

/// The warden interface a Python `ImportError` names: `cannot import name 'fs' from
/// 'wit_world.imports'` (Python spells `service-control` as `service_control`).
fn missing_import(text: &str) -> Option<String> {
    let (_, rest) = text.split_once("cannot import name '")?;
    let (name, rest) = rest.split_once('\'')?;
    if !rest.trim_start().starts_with("from 'wit_world.imports'") {
        return None;
    }
    let interface = name.replace('_', "-");
    let known = matches!(interface.as_str(), "log" | "types")
        || warden_core::Capability::from_interface(&interface).is_some();
    known.then_some(interface)
}

/// A temporary `wit/` of the project's world and the warden package as its dependency.
fn assemble_wit(dir: &Path) -> Result<tempfile::TempDir, BuildError> {
    let world = [dir.join("wit").join("world.wit"), dir.join("world.wit")]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| BuildError::MissingWorld {
            dir: dir.display().to_string(),
        })?;
    let tmp = tempfile::Builder::new()
        .prefix("warden-wit-")
        .tempdir()
        .map_err(|e| BuildError::io(Path::new("temporary directory"), e))?;
    let deps = tmp.path().join("deps").join("warden-plugin");
    std::fs::create_dir_all(&deps).map_err(|e| BuildError::io(&deps, e))?;
    for (name, text) in WARDEN_WIT {
        std::fs::write(deps.join(name), text).map_err(|e| BuildError::io(&deps, e))?;
    }
    let target = tmp.path().join("world.wit");
    std::fs::copy(&world, &target).map_err(|e| BuildError::io(&world, e))?;
    Ok(tmp)
}

fn build_rust(dir: &Path, out: &Path, progress: &dyn Fn(&str)) -> Result<(), BuildError> {
    toolchain::ensure_rust_target(progress)?;
    let mut cmd = Command::new("cargo");
    cmd.args([
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
        "--message-format=json-render-diagnostics",
        "--manifest-path",
    ])
    .arg(dir.join("Cargo.toml"))
    // Cargo's own progress and diagnostics go to the terminal; its messages come back here.
    .stderr(Stdio::inherit())
    .stdin(Stdio::null());
    let shown = toolchain::describe(&cmd);
    let output = cmd.output().map_err(|e| BuildError::Tool {
        command: shown.clone(),
        message: format!("cannot start cargo: {e}"),
    })?;
    if !output.status.success() {
        return Err(BuildError::Tool {
            command: shown,
            message: format!("failed ({}); see the messages above", output.status),
        });
    }
    let artifact = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "cdylib"))
        })
        .filter_map(|m| {
            m["filenames"].as_array().and_then(|f| {
                f.iter()
                    .filter_map(|f| f.as_str())
                    .find(|f| f.ends_with(".wasm"))
                    .map(PathBuf::from)
            })
        })
        .next_back()
        .ok_or_else(|| BuildError::Tool {
            command: shown,
            message: "built no .wasm: the crate needs `[lib] crate-type = [\"cdylib\"]`".into(),
        })?;
    std::fs::copy(&artifact, out).map_err(|e| BuildError::io(&artifact, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What componentize-py 0.25 printed for an app importing `fs` with no `import` in its world.
    const MISSING_FS: &str = "Traceback (most recent call last):\n  File \"/x/bin/componentize-py\", line 8, in <module>\n    sys.exit(script())\nAssertionError: Traceback (most recent call last):\n  File \"/0/app.py\", line 12, in <module>\n    from wit_world.imports import fs, log\nImportError: cannot import name 'fs' from 'wit_world.imports' (/world/wit_world/imports/__init__.py)\n\n\nCaused by:\n    ImportError: cannot import name 'fs' from 'wit_world.imports' (/world/wit_world/imports/__init__.py)\n (exit status: 1)";

    #[test]
    fn a_missing_world_import_is_named_with_its_line_and_the_traceback_said_once() {
        let said = python_failure(MISSING_FS);
        assert!(
            said.ends_with("add `import warden:plugin/fs@0.1.0;` to world.wit (and request the capability in plugin.toml)"),
            "{said}"
        );
        assert_eq!(said.matches("Traceback").count(), 1, "{said}");
        assert_eq!(said.matches("ImportError").count(), 1, "{said}");
        assert!(said.contains("File \"/0/app.py\", line 12"), "{said}");
    }

    #[test]
    fn other_import_errors_get_no_made_up_hint() {
        let said = python_failure(
            "AssertionError: Traceback (most recent call last):\nImportError: cannot import name 'nope' from 'wit_world.imports'",
        );
        assert!(!said.contains("world.wit"), "{said}");
        let said = python_failure("ImportError: cannot import name 'x' from 'json'");
        assert!(!said.contains("world.wit"), "{said}");
        assert_eq!(
            missing_import("cannot import name 'service_control' from 'wit_world.imports'"),
            Some("service-control".into())
        );
    }
}
