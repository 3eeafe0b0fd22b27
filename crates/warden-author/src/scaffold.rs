//! The project templates behind `warden plugin new`: a working discovery, check or remediation
//! plugin in Rust, Python or JavaScript, with its manifest, README and test cases, written into a
//! new directory. Pure file generation; the CLI lives elsewhere.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use warden_core::manifest::Role;

/// The language of a scaffolded plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    /// A crate using the Warden SDK, built for `wasm32-wasip2`.
    Rust,
    /// `app.py`, built with componentize-py.
    Python,
    /// `plugin.js`, built with ComponentizeJS.
    Js,
}

impl Lang {
    /// Every language, in the order `--help` lists them.
    pub const ALL: [Lang; 3] = [Lang::Rust, Lang::Python, Lang::Js];

    /// The name on the command line: `rust`, `python` or `js`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A language name that is not `rust`, `python` or `js`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown language `{0}`: use rust, python or js")]
pub struct ParseLangError(String);

impl FromStr for Lang {
    type Err = ParseLangError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rust" => Ok(Lang::Rust),
            "python" => Ok(Lang::Python),
            "js" | "javascript" => Ok(Lang::Js),
            other => Err(ParseLangError(other.escape_debug().to_string())),
        }
    }
}

/// What to scaffold, and where.
#[derive(Debug, Clone)]
pub struct ScaffoldOptions {
    /// The plugin name (`plugin.toml`'s `name`).
    pub name: String,
    /// Discovery, check or remediation.
    pub role: Role,
    pub lang: Lang,
    /// The project directory; it must not exist or be empty.
    pub dir: PathBuf,
    /// Rust only: a checkout of Warden's `sdk/`. Default: the SDK of the source tree this
    /// runner was built from, when it is still there.
    pub sdk_path: Option<PathBuf>,
}

/// Why a project was not scaffolded. Nothing is left behind when one of these is returned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScaffoldError {
    #[error("`{name}` cannot be a plugin name: {reason}")]
    InvalidName { name: String, reason: String },
    #[error(
        "`warden plugin new` scaffolds one role: pick --role check or --role remediation \
         (a check-remediation plugin starts as a remediation; add the `check` export by hand)"
    )]
    UnsupportedRole { role: Role },
    #[error("{} already exists and is not empty: choose a new directory (nothing was written)", dir.display())]
    DirNotEmpty { dir: PathBuf },
    #[error("{} exists and is not a directory: choose a new directory", dir.display())]
    NotADirectory { dir: PathBuf },
    #[error(
        "the Rust SDK is not on crates.io, and {}: pass --sdk <PATH to a checkout of warden's sdk/>",
        match path { Some(p) => format!("{} is not a checkout of warden's sdk/", p.display()), None => "the SDK this runner was built from is gone".to_string() }
    )]
    SdkNotFound { path: Option<PathBuf> },
    #[error("the SDK path {} is not UTF-8, which Cargo.toml cannot hold: move the SDK checkout", path.display())]
    SdkPathNotUtf8 { path: PathBuf },
    // `error`, not `source`: the message already says it, and a source would repeat it.
    #[error("cannot {action} {}: {error}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
}

/// Write a new plugin project into `opts.dir` and return the files written, relative to it.
///
/// Everything is checked before the first file is written; a failure while writing removes
/// what this call created.
pub fn scaffold(opts: &ScaffoldOptions) -> Result<Vec<PathBuf>, ScaffoldError> {
    validate_name(&opts.name, opts.lang)?;
    let role = RoleTemplates::of(opts.role)?;
    let sdk = match opts.lang {
        Lang::Rust => Some(sdk_dir(opts.sdk_path.as_deref())?),
        Lang::Python | Lang::Js => None,
    };
    check_dir(&opts.dir)?;
    let sdk = sdk.map(|sdk| as_seen_from(&sdk, &opts.dir));
    let files = render_all(opts, &role, sdk.as_deref());
    let mut written = Written::new(&opts.dir);
    for (path, text) in &files {
        if let Err(e) = written.write(path, text) {
            written.undo();
            return Err(e);
        }
    }
    Ok(files.into_iter().map(|(path, _)| path).collect())
}

/// The plugin-name rules of manifests, plus what the language's package system needs.
pub fn validate_name(name: &str, lang: Lang) -> Result<(), ScaffoldError> {
    let invalid = |reason: String| ScaffoldError::InvalidName {
        name: name.escape_debug().to_string(),
        reason,
    };
    warden_core::names::validate_plugin_name(name).map_err(invalid)?;
    // Cargo package names and WIT package names both start with a letter, and WIT has no
    // empty words.
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(invalid(
            "start it with a letter (e.g. `check-2fa` rather than `2fa-check`)".into(),
        ));
    }
    if name.contains("--") {
        return Err(invalid("use single `-` between words".into()));
    }
    let reserved = match lang {
        Lang::Rust => RUST_RESERVED.contains(&crate_name(name).as_str()),
        Lang::Python | Lang::Js => WIT_KEYWORDS.contains(&name),
    };
    if reserved {
        return Err(invalid(format!(
            "it is reserved in {}: add a word, e.g. `{name}-check`",
            match lang {
                Lang::Rust => "Rust (a keyword, a built-in crate or a dependency of the plugin)",
                Lang::Python | Lang::Js => "WIT, which names the plugin's package",
            }
        )));
    }
    Ok(())
}

/// Rust keywords, built-in crates and the template's own dependencies, as crate names.
const RUST_RESERVED: &[&str] = &[
    "abstract",
    "alloc",
    "as",
    "async",
    "await",
    "become",
    "box",
    "break",
    "const",
    "continue",
    "core",
    "crate",
    "do",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "final",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "macro",
    "match",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "proc_macro",
    "pub",
    "ref",
    "return",
    "self",
    "serde",
    "static",
    "std",
    "struct",
    "super",
    "test",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "unsafe",
    "unsized",
    "use",
    "virtual",
    "warden_sdk",
    "where",
    "while",
    "yield",
];

/// WIT keywords: `package local:<name>;` cannot use them.
const WIT_KEYWORDS: &[&str] = &[
    "as",
    "async",
    "bool",
    "borrow",
    "char",
    "constructor",
    "enum",
    "error-context",
    "export",
    "f32",
    "f64",
    "flags",
    "float32",
    "float64",
    "from",
    "func",
    "future",
    "import",
    "include",
    "interface",
    "list",
    "own",
    "package",
    "record",
    "resource",
    "result",
    "s16",
    "s32",
    "s64",
    "s8",
    "static",
    "stream",
    "string",
    "tuple",
    "type",
    "u16",
    "u32",
    "u64",
    "u8",
    "use",
    "variant",
    "with",
    "world",
];

/// `disk-usage` is the crate `disk_usage`.
fn crate_name(name: &str) -> String {
    name.replace('-', "_")
}

/// How the project at `dir` names `target` (absolute): relative when both sit in one tree (a
/// plugin in the checkout that holds the SDK, committed and built on another machine), else
/// absolute (they share only the root: a relative path would be as machine-bound, and would
/// break when the project moves).
fn as_seen_from(target: &Path, dir: &Path) -> PathBuf {
    let base = canonical_with_missing(dir);
    let common = base
        .components()
        .zip(target.components())
        .take_while(|(a, b)| a == b)
        .count();
    let below_root = target
        .components()
        .take(common)
        .any(|c| matches!(c, std::path::Component::Normal(_)));
    if !below_root {
        return target.to_path_buf();
    }
    let mut relative = PathBuf::new();
    for _ in base.components().skip(common) {
        relative.push("..");
    }
    relative.extend(target.components().skip(common));
    relative
}

/// `dir` made absolute through its nearest existing ancestor (the project dir may not exist
/// yet).
fn canonical_with_missing(dir: &Path) -> PathBuf {
    let mut missing = Vec::new();
    let mut at = dir;
    loop {
        let probe = if at.as_os_str().is_empty() {
            Path::new(".")
        } else {
            at
        };
        if let Ok(found) = std::fs::canonicalize(probe) {
            return missing
                .iter()
                .rev()
                .fold(found, |path, part| path.join(part));
        }
        match (at.file_name(), at.parent()) {
            (Some(name), Some(parent)) => {
                missing.push(name.to_owned());
                at = parent;
            }
            _ => return dir.to_path_buf(),
        }
    }
}

/// The SDK to depend on, checked and absolute.
fn sdk_dir(given: Option<&Path>) -> Result<PathBuf, ScaffoldError> {
    let (candidate, explicit) = match given {
        Some(p) => (p.to_path_buf(), true),
        None => (
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../sdk")),
            false,
        ),
    };
    let not_found = || ScaffoldError::SdkNotFound {
        path: explicit.then(|| candidate.clone()),
    };
    let dir = std::fs::canonicalize(&candidate).map_err(|_| not_found())?;
    // Any directory would make a broken Cargo.toml; the SDK's own manifest names it.
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).map_err(|_| not_found())?;
    if !manifest.contains("name = \"warden-sdk\"") {
        return Err(not_found());
    }
    if dir.to_str().is_none() {
        return Err(ScaffoldError::SdkPathNotUtf8 { path: dir });
    }
    Ok(dir)
}

fn check_dir(dir: &Path) -> Result<(), ScaffoldError> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(ScaffoldError::Io {
            action: "inspect",
            path: dir.into(),
            error,
        }),
        Ok(meta) if !meta.is_dir() => Err(ScaffoldError::NotADirectory { dir: dir.into() }),
        Ok(_) => {
            let mut entries = std::fs::read_dir(dir).map_err(|error| ScaffoldError::Io {
                action: "list",
                path: dir.into(),
                error,
            })?;
            if entries.next().is_some() {
                return Err(ScaffoldError::DirNotEmpty { dir: dir.into() });
            }
            Ok(())
        }
    }
}

/// What differs between roles: the manifest, the sources, the test cases and the README text.
struct RoleTemplates {
    role: &'static str,
    description: &'static str,
    manifest: &'static str,
    world: &'static str,
    rust: &'static str,
    python: &'static str,
    js: &'static str,
    about: &'static str,
    run: &'static str,
    policy: &'static str,
    rust_timeout_ms: u32,
    tests: &'static [(&'static str, &'static str)],
}

impl RoleTemplates {
    fn of(role: Role) -> Result<RoleTemplates, ScaffoldError> {
        match role {
            Role::Check => Ok(RoleTemplates {
                role: "check",
                description: "Check the size of a file against a limit",
                manifest: include_str!("../templates/common/check/plugin.toml"),
                world: include_str!("../templates/common/check/world.wit"),
                rust: include_str!("../templates/rust/check/lib.rs"),
                python: include_str!("../templates/python/check/app.py"),
                js: include_str!("../templates/js/check/plugin.js"),
                about: include_str!("../templates/common/check/about.md"),
                run: "warden run {{name}} --config '{\"path\": \"/var/log/syslog\", \"max_bytes\": 104857600}'",
                policy: "[allow]\nfs-read = [\"/var/log\"]\n",
                rust_timeout_ms: 10_000,
                tests: &[
                    (
                        "small-file-is-ok.toml",
                        include_str!("../templates/common/check/tests/small-file-is-ok.toml"),
                    ),
                    (
                        "large-file-warns.toml",
                        include_str!("../templates/common/check/tests/large-file-warns.toml"),
                    ),
                    (
                        "full-file-is-critical.toml",
                        include_str!("../templates/common/check/tests/full-file-is-critical.toml"),
                    ),
                    (
                        "missing-file-is-unknown.toml",
                        include_str!(
                            "../templates/common/check/tests/missing-file-is-unknown.toml"
                        ),
                    ),
                ],
            }),
            Role::Discovery => Ok(RoleTemplates {
                role: "discovery",
                description: "Report the OS distribution from /etc/os-release",
                manifest: include_str!("../templates/common/discovery/plugin.toml"),
                world: include_str!("../templates/common/discovery/world.wit"),
                rust: include_str!("../templates/rust/discovery/lib.rs"),
                python: include_str!("../templates/python/discovery/app.py"),
                js: include_str!("../templates/js/discovery/plugin.js"),
                about: include_str!("../templates/common/discovery/about.md"),
                run: "warden run {{name}}",
                policy: "[allow]\nfs-read = [\"/etc/os-release\", \"/usr/lib/os-release\"]\n",
                rust_timeout_ms: 10_000,
                tests: &[
                    (
                        "debian.toml",
                        include_str!("../templates/common/discovery/tests/debian.toml"),
                    ),
                    (
                        "extra-keys.toml",
                        include_str!("../templates/common/discovery/tests/extra-keys.toml"),
                    ),
                    (
                        "usr-lib-fallback.toml",
                        include_str!("../templates/common/discovery/tests/usr-lib-fallback.toml"),
                    ),
                    (
                        "missing-os-release.toml",
                        include_str!("../templates/common/discovery/tests/missing-os-release.toml"),
                    ),
                ],
            }),
            Role::Remediation => Ok(RoleTemplates {
                role: "remediation",
                description: "Restart a service when it is not running",
                manifest: include_str!("../templates/common/remediation/plugin.toml"),
                world: include_str!("../templates/common/remediation/world.wit"),
                rust: include_str!("../templates/rust/remediation/lib.rs"),
                python: include_str!("../templates/python/remediation/app.py"),
                js: include_str!("../templates/js/remediation/plugin.js"),
                about: include_str!("../templates/common/remediation/about.md"),
                run: "warden run {{name}} --config '{\"service\": \"nginx\"}'            # plan only\n\
                      warden run {{name}} --apply --config '{\"service\": \"nginx\"}'    # plan, then apply it",
                policy: "[allow]\nservices = [\"nginx\"]\nservice-control = true\n",
                // A restart waits for the service to come up.
                rust_timeout_ms: 30_000,
                tests: &[
                    (
                        "stopped-service-is-restarted.toml",
                        include_str!(
                            "../templates/common/remediation/tests/stopped-service-is-restarted.toml"
                        ),
                    ),
                    (
                        "running-service-is-left-alone.toml",
                        include_str!(
                            "../templates/common/remediation/tests/running-service-is-left-alone.toml"
                        ),
                    ),
                    (
                        "failed-service-plan.toml",
                        include_str!(
                            "../templates/common/remediation/tests/failed-service-plan.toml"
                        ),
                    ),
                ],
            }),
            Role::CheckRemediation | Role::Ticketing => {
                Err(ScaffoldError::UnsupportedRole { role })
            }
        }
    }
}

const README: &str = include_str!("../templates/common/README.md");
const RUST_CARGO_TOML: &str = include_str!("../templates/rust/Cargo.toml");

/// Every file of the project, rendered, in the order they are written.
fn render_all(
    opts: &ScaffoldOptions,
    role: &RoleTemplates,
    sdk: Option<&Path>,
) -> Vec<(PathBuf, String)> {
    let limits = match opts.lang {
        Lang::Rust => format!(
            "\n[limits]\nmemory-mb = 32\ntimeout-ms = {}\n",
            role.rust_timeout_ms
        ),
        Lang::Python | Lang::Js => "\n# An interpreter lives in the component: it needs more \
             memory than a Rust plugin.\n[limits]\nmemory-mb = 128\ntimeout-ms = 30000\n"
            .to_string(),
    };
    let sdk_path = sdk
        .and_then(Path::to_str)
        .map(toml_string)
        .unwrap_or_default();
    let crate_name = crate_name(&opts.name);
    let base: Vec<(&str, &str)> = vec![
        ("name", &opts.name),
        ("crate_name", &crate_name),
        ("role", role.role),
        ("description", role.description),
        ("sdk_path", &sdk_path),
        ("limits", &limits),
    ];
    // Fragments are rendered first: the single pass below does not look inside what it inserts.
    let about = render(role.about, &base);
    let run = render(role.run, &base);
    let (layout, toolchain, gitignore) = match opts.lang {
        Lang::Rust => (
            include_str!("../templates/rust/layout.md"),
            include_str!("../templates/rust/toolchain.md"),
            include_str!("../templates/rust/gitignore"),
        ),
        Lang::Python => (
            include_str!("../templates/python/layout.md"),
            include_str!("../templates/python/toolchain.md"),
            include_str!("../templates/python/gitignore"),
        ),
        Lang::Js => (
            include_str!("../templates/js/layout.md"),
            include_str!("../templates/js/toolchain.md"),
            include_str!("../templates/js/gitignore"),
        ),
    };
    let first_test = role
        .tests
        .first()
        .map(|(file, _)| *file)
        .unwrap_or_default();
    let mut readme_vars = base.clone();
    readme_vars.extend([
        ("about", about.as_str()),
        ("run", run.as_str()),
        ("layout", layout),
        ("toolchain", toolchain),
        ("policy", role.policy),
        ("first_test", first_test),
    ]);

    let mut files = vec![(PathBuf::from("plugin.toml"), render(role.manifest, &base))];
    match opts.lang {
        Lang::Rust => {
            files.push((PathBuf::from("Cargo.toml"), render(RUST_CARGO_TOML, &base)));
            files.push((PathBuf::from("src/lib.rs"), render(role.rust, &base)));
        }
        Lang::Python => {
            files.push((PathBuf::from("app.py"), render(role.python, &base)));
            files.push((PathBuf::from("wit/world.wit"), render(role.world, &base)));
        }
        Lang::Js => {
            files.push((PathBuf::from("plugin.js"), render(role.js, &base)));
            files.push((PathBuf::from("wit/world.wit"), render(role.world, &base)));
        }
    }
    for (file, text) in role.tests {
        files.push((Path::new("tests").join(file), render(text, &base)));
    }
    files.push((PathBuf::from("README.md"), render(README, &readme_vars)));
    files.push((PathBuf::from(".gitignore"), gitignore.to_string()));
    files
}

/// Replace each `{{key}}` by its value in one pass; an unknown key is left as it is (the
/// templates are constants, and a test checks that none is left).
fn render(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let value = after.find("}}").and_then(|end| {
            let key = &after[..end];
            vars.iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v, end + 2))
        });
        match value {
            Some((value, used)) => {
                out.push_str(value);
                rest = &after[used..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `s` as a TOML basic string, quotes included: a path may hold `"`, `\` or control characters.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Files and directories one `scaffold` call created, so a failure can take them back.
struct Written {
    root: PathBuf,
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Written {
    fn new(root: &Path) -> Written {
        Written {
            root: root.to_path_buf(),
            files: Vec::new(),
            dirs: Vec::new(),
        }
    }

    fn write(&mut self, rel: &Path, text: &str) -> Result<(), ScaffoldError> {
        let path = self.root.join(rel);
        if let Some(parent) = path.parent() {
            self.create_dirs(parent)?;
        }
        let io = |action, error| ScaffoldError::Io {
            action,
            path: path.clone(),
            error,
        };
        // `create_new`: never replace a file, even one that appeared since the emptiness check.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io("create", e))?;
        self.files.push(path.clone());
        file.write_all(text.as_bytes()).map_err(|e| io("write", e))
    }

    fn create_dirs(&mut self, dir: &Path) -> Result<(), ScaffoldError> {
        // The parent of a relative `name` is the empty path: the current directory.
        if dir.as_os_str().is_empty() || dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            self.create_dirs(parent)?;
        }
        std::fs::create_dir(dir).map_err(|error| ScaffoldError::Io {
            action: "create",
            path: dir.into(),
            error,
        })?;
        self.dirs.push(dir.into());
        Ok(())
    }

    /// Best effort: a removal that fails leaves that file, and the first error is reported.
    fn undo(&mut self) {
        for file in self.files.drain(..).rev() {
            let _ = std::fs::remove_file(file);
        }
        for dir in self.dirs.drain(..).rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_core::manifest::Manifest;

    const ROLES: [Role; 3] = [Role::Discovery, Role::Check, Role::Remediation];

    fn options(dir: &Path, name: &str, role: Role, lang: Lang) -> ScaffoldOptions {
        ScaffoldOptions {
            name: name.into(),
            role,
            lang,
            dir: dir.join(name),
            sdk_path: None,
        }
    }

    /// The repository's SDK: these tests run from the source tree.
    fn sdk() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../sdk"))
    }

    fn read(dir: &Path, file: &str) -> String {
        std::fs::read_to_string(dir.join(file)).expect("scaffolded file")
    }

    #[test]
    fn lang_names_round_trip() {
        for lang in Lang::ALL {
            assert_eq!(lang.to_string().parse::<Lang>(), Ok(lang));
        }
        assert_eq!("javascript".parse::<Lang>(), Ok(Lang::Js));
        let err = "go".parse::<Lang>().expect_err("unknown");
        assert!(err.to_string().contains("rust, python or js"), "{err}");
    }

    #[test]
    fn bad_names_say_what_to_change() {
        for (name, lang, hint) in [
            ("Disk", Lang::Rust, "lower-case"),
            ("", Lang::Python, "1 to 64"),
            ("disk_usage", Lang::Js, "lower-case"),
            ("2fa-check", Lang::Rust, "start it with a letter"),
            ("disk--usage", Lang::Python, "single `-`"),
            ("fn", Lang::Rust, "reserved in Rust"),
            ("test", Lang::Rust, "reserved in Rust"),
            ("warden-sdk", Lang::Rust, "reserved in Rust"),
            ("world", Lang::Js, "reserved in WIT"),
            ("list", Lang::Python, "reserved in WIT"),
        ] {
            let err = validate_name(name, lang).expect_err(name);
            assert!(err.to_string().contains(hint), "{name}: {err}");
        }
        for (name, lang) in [
            ("disk-usage2", Lang::Rust),
            ("world", Lang::Rust),
            ("fn", Lang::Python),
            ("x-2", Lang::Js),
        ] {
            assert!(validate_name(name, lang).is_ok(), "{name} refused");
        }
    }

    #[test]
    fn a_bad_name_writes_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let opts = options(tmp.path(), "Bad", Role::Check, Lang::Python);
        assert!(matches!(
            scaffold(&opts),
            Err(ScaffoldError::InvalidName { .. })
        ));
        assert!(!opts.dir.exists());
    }

    #[test]
    fn check_remediation_asks_to_pick_one_role() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let opts = options(tmp.path(), "both", Role::CheckRemediation, Lang::Js);
        let err = scaffold(&opts).expect_err("refused");
        assert!(matches!(err, ScaffoldError::UnsupportedRole { .. }));
        assert!(err.to_string().contains("pick --role"), "{err}");
        assert!(!opts.dir.exists());
    }

    #[test]
    fn a_non_empty_dir_is_refused_and_left_alone() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let opts = options(tmp.path(), "busy", Role::Check, Lang::Python);
        std::fs::create_dir(&opts.dir).expect("dir");
        std::fs::write(opts.dir.join("plugin.toml"), "mine").expect("file");
        let err = scaffold(&opts).expect_err("refused");
        assert!(matches!(err, ScaffoldError::DirNotEmpty { .. }), "{err}");
        assert!(err.to_string().contains("not empty"), "{err}");
        assert_eq!(read(&opts.dir, "plugin.toml"), "mine");
        assert_eq!(std::fs::read_dir(&opts.dir).expect("list").count(), 1);

        let file = tmp.path().join("a-file");
        std::fs::write(&file, "x").expect("file");
        let opts = ScaffoldOptions { dir: file, ..opts };
        assert!(matches!(
            scaffold(&opts),
            Err(ScaffoldError::NotADirectory { .. })
        ));
    }

    #[test]
    fn an_empty_existing_dir_is_used() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let opts = options(tmp.path(), "empty", Role::Discovery, Lang::Js);
        std::fs::create_dir(&opts.dir).expect("dir");
        scaffold(&opts).expect("scaffolded");
        assert!(opts.dir.join("plugin.js").is_file());
    }

    #[test]
    fn files_per_role_and_lang() {
        let tmp = tempfile::tempdir().expect("tempdir");
        for role in ROLES {
            for lang in Lang::ALL {
                let name = format!("p-{role}-{lang}");
                let opts = options(tmp.path(), &name, role, lang);
                let files = scaffold(&opts).expect("scaffolded");
                let mut expected: Vec<String> = vec!["plugin.toml".into()];
                expected.extend(
                    match lang {
                        Lang::Rust => ["Cargo.toml", "src/lib.rs"],
                        Lang::Python => ["app.py", "wit/world.wit"],
                        Lang::Js => ["plugin.js", "wit/world.wit"],
                    }
                    .map(String::from),
                );
                let tests = RoleTemplates::of(role).expect("role").tests;
                assert!(tests.len() >= 2, "{role}: fewer than two test cases");
                expected.extend(tests.iter().map(|(f, _)| format!("tests/{f}")));
                expected.extend(["README.md".into(), ".gitignore".into()]);
                let got: Vec<String> = files
                    .iter()
                    .map(|f| f.to_string_lossy().replace('\\', "/"))
                    .collect();
                assert_eq!(got, expected, "{role} {lang}");
                for file in &files {
                    let text = read(&opts.dir, &file.to_string_lossy());
                    assert!(
                        !text.contains("{{"),
                        "{role} {lang}: {} has an unreplaced placeholder",
                        file.display()
                    );
                }
                // What `warden plugin pack` writes by default stays out of the author's repo.
                let ignored = read(&opts.dir, ".gitignore");
                assert!(
                    ignored.lines().any(|l| l == "*.wbundle"),
                    "{role} {lang}: {ignored}"
                );
                let on_disk = walk(&opts.dir);
                assert_eq!(on_disk.len(), files.len(), "{role} {lang}: {on_disk:?}");
            }
        }
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).expect("list") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path);
            }
        }
        out
    }

    #[test]
    fn the_manifest_parses_validates_and_matches_the_world() {
        let tmp = tempfile::tempdir().expect("tempdir");
        for role in ROLES {
            for lang in Lang::ALL {
                let name = format!("m-{role}-{lang}");
                let opts = options(tmp.path(), &name, role, lang);
                scaffold(&opts).expect("scaffolded");
                let manifest = Manifest::parse(&read(&opts.dir, "plugin.toml"))
                    .unwrap_or_else(|e| panic!("{role} {lang}: {e}"));
                assert_eq!(manifest.name, name);
                assert_eq!(manifest.role, role);
                assert_eq!(manifest.component, "plugin.wasm");
                let schema = manifest.config_schema.as_ref().expect("config schema");
                assert_eq!(schema["additionalProperties"], serde_json::json!(false));
                if lang != Lang::Rust {
                    assert_eq!(manifest.limits.memory_mb, Some(128));
                    assert_eq!(manifest.limits.timeout_ms, Some(30_000));
                    // The world imports exactly what the manifest requests (`log` is free).
                    let world = read(&opts.dir, "wit/world.wit");
                    assert!(world.contains(&format!("package local:{name};")));
                    for capability in warden_core::Capability::ALL {
                        let (interface, requested) =
                            (capability.interface(), manifest.requests(capability));
                        let import = format!("import warden:plugin/{interface}@0.1.0;");
                        assert_eq!(
                            world.contains(&import),
                            requested,
                            "{role} {lang}: {import}"
                        );
                    }
                    let export = format!("export warden:plugin/{role}@0.1.0;");
                    assert!(world.contains(&export), "{role} {lang}: {export}");
                }
            }
        }
    }

    #[test]
    fn every_test_case_config_passes_the_schema() {
        let tmp = tempfile::tempdir().expect("tempdir");
        for role in ROLES {
            let opts = options(tmp.path(), &format!("t-{role}"), role, Lang::Python);
            scaffold(&opts).expect("scaffolded");
            let manifest = Manifest::parse(&read(&opts.dir, "plugin.toml")).expect("manifest");
            for (file, _) in RoleTemplates::of(role).expect("role").tests {
                let case: toml::Table = toml::from_str(&read(&opts.dir, &format!("tests/{file}")))
                    .unwrap_or_else(|e| panic!("{file}: {e}"));
                assert!(case.contains_key("expect"), "{file}: no [expect]");
                let config = case
                    .get("config")
                    .cloned()
                    .unwrap_or_else(|| toml::Value::Table(toml::Table::new()));
                let config = serde_json::to_value(config).expect("json");
                warden_core::config_schema::validate(manifest.config_schema.as_ref(), &config)
                    .unwrap_or_else(|e| panic!("{file}: {e:?}"));
            }
        }
    }

    #[test]
    fn the_sdk_path_is_escaped_in_cargo_toml() {
        let tmp = tempfile::tempdir().expect("tempdir");
        // A copy of the SDK's manifest is enough for the path checks.
        let odd = tmp.path().join("odd \"sdk\" \\ dir");
        std::fs::create_dir(&odd).expect("dir");
        std::fs::copy(sdk().join("Cargo.toml"), odd.join("Cargo.toml")).expect("copy");
        let mut opts = options(tmp.path(), "odd-path", Role::Remediation, Lang::Rust);
        opts.sdk_path = Some(odd.clone());
        scaffold(&opts).expect("scaffolded");
        let cargo: toml::Table =
            toml::from_str(&read(&opts.dir, "Cargo.toml")).expect("Cargo.toml parses");
        let dep = &cargo["dependencies"]["warden-sdk"];
        // Both in one tree: the path is relative, so the project builds on another machine.
        assert_eq!(dep["path"].as_str(), Some("../odd \"sdk\" \\ dir"));
        let resolved = std::fs::canonicalize(opts.dir.join(dep["path"].as_str().expect("path")));
        assert_eq!(
            resolved.expect("resolves"),
            std::fs::canonicalize(&odd).expect("canonical")
        );
        // The role is the SDK macro the plugin calls, not a cargo feature.
        assert!(dep.get("features").is_none(), "no role feature");
        assert_eq!(cargo["package"]["name"].as_str(), Some("odd-path"));
        assert!(cargo["workspace"].as_table().is_some_and(|t| t.is_empty()));
        let release = &cargo["profile"]["release"];
        assert_eq!(release["opt-level"].as_str(), Some("s"));
        assert_eq!(release["panic"].as_str(), Some("abort"));
        assert_eq!(release["codegen-units"].as_integer(), Some(1));
        assert_eq!(release["lto"].as_bool(), Some(true));
        assert_eq!(release["strip"].as_bool(), Some(true));
    }

    #[test]
    fn a_missing_sdk_says_to_pass_one() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut opts = options(tmp.path(), "no-sdk", Role::Check, Lang::Rust);
        opts.sdk_path = Some(tmp.path().join("nowhere"));
        let err = scaffold(&opts).expect_err("refused");
        assert!(matches!(err, ScaffoldError::SdkNotFound { .. }), "{err}");
        assert!(err.to_string().contains("--sdk <PATH"), "{err}");
        assert!(!opts.dir.exists());
        // Python and JavaScript need no SDK.
        opts.lang = Lang::Python;
        assert!(scaffold(&opts).is_ok());
    }

    #[test]
    fn a_project_beside_the_sdk_names_it_relatively_and_one_elsewhere_absolutely() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let tree = std::fs::canonicalize(tmp.path()).expect("canonical");
        let sdk = tree.join("checkout/sdk");
        assert_eq!(
            as_seen_from(&sdk, &tree.join("checkout/plugins/new-one")),
            Path::new("../../sdk")
        );
        // Only the root in common: absolute.
        assert_eq!(
            as_seen_from(Path::new("/a/sdk"), Path::new("/b/c")),
            Path::new("/a/sdk")
        );
    }

    #[test]
    fn the_default_sdk_is_this_source_tree() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let opts = options(tmp.path(), "default-sdk", Role::Discovery, Lang::Rust);
        scaffold(&opts).expect("scaffolded");
        let cargo: toml::Table = toml::from_str(&read(&opts.dir, "Cargo.toml")).expect("parses");
        let expected = std::fs::canonicalize(sdk()).expect("sdk");
        // Absolute, or relative when the project and the checkout share a parent (a checkout
        // under the temp dir): either way it names this tree's SDK from the project.
        let named = cargo["dependencies"]["warden-sdk"]["path"]
            .as_str()
            .expect("a path");
        assert_eq!(
            std::fs::canonicalize(opts.dir.join(named)).expect("the named SDK exists"),
            expected,
            "{named}"
        );
        assert!(read(&opts.dir, "src/lib.rs").contains("warden_sdk::discovery!(Plugin);"));
    }

    #[test]
    fn render_replaces_known_keys_once() {
        let vars = [("a", "{{b}}"), ("b", "x")];
        assert_eq!(render("{{a}}-{{b}}-{{c}}-{{", &vars), "{{b}}-x-{{c}}-{{");
        assert_eq!(toml_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000A\"");
    }
}
