//! The plugin author's commands as an author meets them: `warden plugin test` on a built plugin
//! with passing and failing fixtures (exit codes, the reasons printed, JSON), `warden plugin
//! build` refusing what it cannot build with what to change, and `warden plugin new` for every
//! role and language: the scaffold builds and its own tests pass.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// `warden <args>` with the shared compile cache and toolchains of this checkout.
fn warden(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .current_dir(cwd)
        .env("WARDEN_TEST_CACHE", repo().join("target/test-cache"))
        .env(
            "WARDEN_TOOLCHAINS",
            repo().join("target/polyglot/toolchains"),
        )
        .env_remove("WARDEN_DATA_DIR")
        .env_remove("WARDEN_CONFIG")
        .output()
        .expect("warden runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A copy of the built `service-health` plugin with the given fixtures in `tests/`.
fn project_with_fixtures(fixtures: &[(&str, &str)]) -> tempfile::TempDir {
    let built = repo().join("target/plugins/service-health");
    assert!(
        built.join("plugin.wasm").exists(),
        "run `cargo xtask build-plugins` first"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    for f in ["plugin.toml", "plugin.wasm"] {
        std::fs::copy(built.join(f), dir.path().join(f)).expect("copy");
    }
    std::fs::create_dir_all(dir.path().join("tests")).expect("tests dir");
    for (name, body) in fixtures {
        std::fs::write(dir.path().join("tests").join(name), body).expect("fixture");
    }
    dir
}

const DOWN_IS_CRITICAL: &str = r#"
run = "check"
[config]
service = "nginx"
[services]
nginx = "failed"
[expect]
status = "critical"
"#;

const WRONG_EXPECTATION: &str = r#"
name = "a running service is ok"
run = "check"
[config]
service = "nginx"
[services]
nginx = "running"
[expect]
status = "warning"
"#;

#[test]
fn plugin_test_passes_and_fails_cases_with_the_reason_and_exit_code() {
    let project = project_with_fixtures(&[
        ("1-down.toml", DOWN_IS_CRITICAL),
        ("2-wrong.toml", WRONG_EXPECTATION),
        ("3-broken.toml", "run = \"check\"\n[expect]\nplan = []\n"),
    ]);
    let dir = project.path().to_str().expect("utf-8 path");
    let out = warden(&["plugin", "test", dir], project.path());
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("testing service-health 0.1.0 (check-remediation)"),
        "{shown}"
    );
    assert!(shown.contains("ok   1-down: check: critical"), "{shown}");
    assert!(shown.contains("FAIL a running service is ok"), "{shown}");
    assert!(shown.contains("expected status warning, got ok"), "{shown}");
    assert!(
        shown.contains("`expect.plan` applies to run = plan or apply"),
        "{shown}"
    );
    assert!(shown.contains("3 case(s): 1 passed, 2 failed"), "{shown}");

    let one = project.path().join("tests/1-down.toml");
    let out = warden(
        &[
            "plugin",
            "test",
            dir,
            "--fixture",
            one.to_str().expect("utf-8"),
        ],
        project.path(),
    );
    assert!(out.status.success(), "{}", text(&out));

    let out = warden(&["--json", "plugin", "test", dir], project.path());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["passed"], 1);
    assert_eq!(json["failed"], 2);
    assert_eq!(json["cases"][0]["calls"][0], "service.status nginx");
}

#[test]
fn plugin_test_and_build_say_what_to_change() {
    let empty = tempfile::tempdir().expect("tempdir");
    let dir = empty.path().to_str().expect("utf-8");
    let out = warden(&["plugin", "build", dir], empty.path());
    assert!(!out.status.success());
    assert!(text(&out).contains("plugin.toml"), "{}", text(&out));

    // A manifest but no source in a known language.
    let built = repo().join("target/plugins/service-health/plugin.toml");
    std::fs::copy(built, empty.path().join("plugin.toml")).expect("manifest");
    let out = warden(&["plugin", "build", dir], empty.path());
    assert!(
        text(&out).contains("none of Cargo.toml (Rust), app.py (Python) or plugin.js"),
        "{}",
        text(&out)
    );
    // A Python project without its world.
    std::fs::write(empty.path().join("app.py"), "").expect("app.py");
    let out = warden(&["plugin", "build", dir], empty.path());
    assert!(text(&out).contains("has no world.wit"), "{}", text(&out));
    // Testing before building.
    let out = warden(&["plugin", "test", dir], empty.path());
    assert!(
        text(&out).contains("build the plugin first (`warden plugin build"),
        "{}",
        text(&out)
    );
}

/// `warden plugin new` for `role` in `lang`, then `warden plugin build` and `warden plugin test`
/// exactly as the scaffold's README says: the build succeeds and every generated case passes.
fn scaffold_builds_and_passes_its_tests(role: &str, lang: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let name = format!("my-{role}");
    let out = warden(
        &["plugin", "new", &name, "--role", role, "--lang", lang],
        tmp.path(),
    );
    assert!(out.status.success(), "new: {}", text(&out));
    assert!(text(&out).contains("plugin.toml"), "{}", text(&out));
    let project = tmp.path().join(&name);

    // Rust scaffolds share one target dir, so the SDK's dependencies build once.
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["plugin", "build"])
        .current_dir(&project)
        .env(
            "WARDEN_TOOLCHAINS",
            repo().join("target/polyglot/toolchains"),
        )
        .env("CARGO_TARGET_DIR", repo().join("target/scaffolds"))
        .output()
        .expect("warden runs");
    assert!(out.status.success(), "build: {}", text(&out));
    assert!(project.join("plugin.wasm").is_file());

    if lang == "python" {
        // Installing compiles ~18 MB of code: the install says so rather than look hung.
        let config = tmp.path().join("warden.toml");
        std::fs::write(
            &config,
            format!(
                "cache-dir = {:?}\n[trust]\nallow-unsigned = true\n",
                repo().join("target/test-cache").display().to_string()
            ),
        )
        .expect("config");
        let data = tmp.path().join("data").display().to_string();
        let config = config.display().to_string();
        let project = project.display().to_string();
        let out = warden(
            &[
                "--data-dir",
                &data,
                "--config",
                &config,
                "plugin",
                "install",
                &project,
            ],
            tmp.path(),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "install: {}", text(&out));
        assert!(
            err.contains("compiling") && err.contains("MB) to native code"),
            "{err}"
        );
    }

    let out = warden(&["plugin", "test"], &project);
    let shown = text(&out);
    assert!(out.status.success(), "test: {shown}");
    let summary = shown
        .lines()
        .find(|l| l.contains(" case(s): "))
        .unwrap_or_default();
    assert!(
        summary.ends_with("passed, 0 failed")
            && !summary.starts_with("0 ")
            && !summary.starts_with("1 "),
        "at least two cases, all passing: {shown}"
    );
}

#[test]
fn a_rust_discovery_scaffold_builds_and_passes_its_tests() {
    scaffold_builds_and_passes_its_tests("discovery", "rust");
}

#[test]
fn a_rust_check_scaffold_builds_and_passes_its_tests() {
    scaffold_builds_and_passes_its_tests("check", "rust");
}

#[test]
fn a_rust_remediation_scaffold_builds_and_passes_its_tests() {
    scaffold_builds_and_passes_its_tests("remediation", "rust");
}

#[test]
fn a_python_discovery_scaffold_builds_and_passes_its_tests() {
    scaffold_builds_and_passes_its_tests("discovery", "python");
}

#[test]
fn a_python_check_scaffold_builds_and_passes_its_tests() {
    scaffold_builds_and_passes_its_tests("check", "python");
}

#[test]
fn a_python_remediation_scaffold_builds_and_passes_its_tests() {
    scaffold_builds_and_passes_its_tests("remediation", "python");
}

#[test]
fn a_js_discovery_scaffold_builds_and_passes_its_tests() {
    scaffold_builds_and_passes_its_tests("discovery", "js");
}

#[test]
fn a_js_check_scaffold_builds_and_passes_its_tests() {
    scaffold_builds_and_passes_its_tests("check", "js");
}

#[test]
fn a_js_remediation_scaffold_builds_and_passes_its_tests() {
    scaffold_builds_and_passes_its_tests("remediation", "js");
}

#[test]
fn plugin_new_refuses_what_it_cannot_scaffold_and_writes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = warden(
        &["plugin", "new", "Bad_Name", "--role", "check"],
        tmp.path(),
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("cannot be a plugin name"),
        "{}",
        text(&out)
    );
    let out = warden(&["plugin", "new", "ok-name", "--role", "fixer"], tmp.path());
    assert!(
        text(&out).contains("use discovery, check or remediation"),
        "{}",
        text(&out)
    );
    let out = warden(
        &[
            "plugin", "new", "ok-name", "--role", "check", "--lang", "cobol",
        ],
        tmp.path(),
    );
    assert!(
        text(&out).contains("use rust, python or js"),
        "{}",
        text(&out)
    );
    std::fs::create_dir(tmp.path().join("taken")).expect("dir");
    std::fs::write(tmp.path().join("taken/keep.txt"), "mine").expect("file");
    let out = warden(
        &[
            "plugin", "new", "taken", "--role", "check", "--lang", "python",
        ],
        tmp.path(),
    );
    assert!(
        text(&out).contains("already exists and is not empty"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read_dir(tmp.path().join("taken"))
            .expect("dir")
            .count(),
        1,
        "nothing written next to the existing file"
    );
    assert_eq!(
        std::fs::read_dir(tmp.path()).expect("dir").count(),
        1,
        "no project directory left behind by the refusals"
    );
}

/// A copy of the built guest `plugin` with its manifest edited by `edit`.
fn edited_copy(plugin: &str, edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let built = repo().join("target/plugins").join(plugin);
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(built.join("plugin.wasm"), dir.path().join("plugin.wasm")).expect("copy");
    let manifest = std::fs::read_to_string(built.join("plugin.toml")).expect("manifest");
    std::fs::write(dir.path().join("plugin.toml"), edit(manifest)).expect("manifest");
    std::fs::create_dir(dir.path().join("tests")).expect("tests dir");
    dir
}

#[test]
fn the_errors_an_author_meets_say_what_to_change() {
    let test = |dir: &Path, fixture: &str| {
        std::fs::write(dir.join("tests/case.toml"), fixture).expect("fixture");
        let out = warden(&["plugin", "test", dir.to_str().expect("utf-8")], dir);
        (out.status.success(), text(&out))
    };

    // A request the component never uses: a warning, and the plugin still runs.
    let unused = edited_copy("trivial", |m| {
        m + "\n[capabilities.kv]\nquota-bytes = 1024\n"
    });
    let (ok, shown) = test(
        unused.path(),
        "run = \"check\"\n[expect]\nstatus = \"ok\"\n",
    );
    assert!(ok, "{shown}");
    assert!(
        shown.contains("warning: the manifest requests `kv` but the component never uses it: remove it from [capabilities]"),
        "{shown}"
    );

    // A role whose export the component lacks.
    let wrong_role = edited_copy("trivial", |m| {
        m.replace("role = \"check\"", "role = \"discovery\"")
    });
    let (ok, shown) = test(wrong_role.path(), "run = \"discover\"\n");
    assert!(!ok);
    assert!(
        shown.contains("a discovery plugin must export `warden:plugin/discovery@0.1.0`, and this component does not (it exports: check)"),
        "{shown}"
    );

    // An import the manifest does not request: refused, naming it and where to request it.
    let sneaky = edited_copy("sneaky", |m| m);
    let (ok, shown) = test(sneaky.path(), "run = \"check\"\n");
    assert!(!ok);
    assert!(
        shown.contains("imports `warden:plugin/http@0.1.0`, which its manifest does not request: add it to [capabilities] in plugin.toml"),
        "{shown}"
    );
    assert_eq!(
        shown.matches("does not request").count(),
        1,
        "said once: {shown}"
    );

    // A configuration the schema refuses.
    let health = edited_copy("service-health", |m| m);
    let (ok, shown) = test(
        health.path(),
        "run = \"check\"\n[config]\nservise = \"nginx\"\n",
    );
    assert!(!ok);
    assert!(
        shown.contains("invalid configuration for `service-health`")
            && shown.contains("\"service\" is a required property"),
        "{shown}"
    );
}

/// A Python scaffold of `role`, made in a new temporary directory: (the directory, the project).
fn python_scaffold(role: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = warden(
        &["plugin", "new", "probe", "--role", role, "--lang", "python"],
        tmp.path(),
    );
    assert!(out.status.success(), "new: {}", text(&out));
    let project = tmp.path().join("probe");
    (tmp, project)
}

#[test]
fn plugin_build_refuses_a_component_that_imports_what_its_manifest_does_not_request() {
    let (_tmp, project) = python_scaffold("check");
    // The world still imports fs (app.py uses it); the manifest no longer requests it.
    let manifest = std::fs::read_to_string(project.join("plugin.toml")).expect("manifest");
    let cut = manifest.replace("[capabilities.fs]\nread = [\"/var/log\"]\n", "");
    assert_ne!(cut, manifest, "the scaffold requests fs");
    std::fs::write(project.join("plugin.toml"), cut).expect("manifest");

    let out = warden(&["plugin", "build"], &project);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("does not match plugin.toml, and an agent would refuse it")
            && shown.contains(
                "imports `warden:plugin/fs@0.1.0`, which its manifest does not request: add it to [capabilities] in plugin.toml"
            ),
        "{shown}"
    );
}

#[test]
fn a_python_import_missing_from_the_world_names_the_line_to_add_once() {
    let (_tmp, project) = python_scaffold("check");
    let world_wit = project.join("wit/world.wit");
    let world = std::fs::read_to_string(&world_wit).expect("world");
    let cut = world.replace("    import warden:plugin/fs@0.1.0;\n", "");
    assert_ne!(cut, world, "the scaffold's world imports fs");
    std::fs::write(&world_wit, cut).expect("world");

    let out = warden(&["plugin", "build"], &project);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("add `import warden:plugin/fs@0.1.0;` to world.wit"),
        "{shown}"
    );
    assert_eq!(shown.matches("Traceback").count(), 1, "said once: {shown}");
}
