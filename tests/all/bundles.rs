//! Signed bundles: what install accepts, and each thing it must refuse, with its reason, nothing
//! written to the store, the previous version untouched and an audit record. Also updates while
//! a run of the old version is in progress, and rollback marks that survive restarts and removal.

use serde_json::json;
use warden_agent::PluginManager;
use warden_agent::install::InstallError;
use warden_bundle::Bundle;
use warden_bundle::trust::TrustError;
use warden_core::RunRequest;
use warden_core::report::{Invocation, Output};
use warden_tests::{Sandbox, hostile_manifest};

fn trusting(sb: &Sandbox, keys: &[(&str, &str)], extra: &str) -> PluginManager {
    let mut policy = String::from("[allow]\nsysinfo = [\"disks\"]\n[trust]\n");
    policy.push_str(extra);
    for (name, public) in keys {
        policy.push_str(&format!(
            "[[trust.keys]]\nname = \"{name}\"\npublic-key = \"{public}\"\n"
        ));
    }
    sb.runner(&policy)
}

fn refused(r: Result<warden_agent::install::InstallReport, InstallError>) -> TrustError {
    match r {
        Err(InstallError::Refused(e)) => e,
        other => panic!("expected a trust refusal, got {other:?}"),
    }
}

/// Nothing was installed and the refusal is the last audit record.
fn assert_nothing_installed(sb: &Sandbox, runner: &PluginManager) {
    assert!(runner.store().list().expect("list").is_empty());
    assert_eq!(
        sb.audit_events().last().map(String::as_str),
        Some("plugin.install-refused")
    );
}

#[test]
fn a_bundle_signed_by_a_trusted_key_installs_and_runs() {
    let sb = Sandbox::new();
    let (key, public) = sb.key("publisher");
    let runner = trusting(&sb, &[("acme", &public)], "");
    let mut bundle = sb.unsigned_bundle("disk-usage", None);
    bundle.sign(&key);
    let report = runner
        .install_bundle(&sb.write_bundle(&bundle, "d.wbundle"))
        .expect("installs");
    assert_eq!(report.signers, vec!["acme".to_string()]);
    assert!(!report.unsigned);
    assert_eq!(sb.audit_events(), vec!["policy.loaded", "plugin.installed"]);
    let run = runner.run(&RunRequest::new("disk-usage", Invocation::Check));
    assert!(
        matches!(run.result, Ok(Output::Check(_))),
        "{:?}",
        run.result
    );
}

#[test]
fn unsigned_unknown_and_directory_installs_are_refused() {
    let sb = Sandbox::new();
    let (_trusted, public) = sb.key("publisher");
    let (stranger, _) = sb.key("stranger");
    let runner = trusting(&sb, &[("acme", &public)], "");
    let unsigned = sb.unsigned_bundle("disk-usage", None);
    assert_eq!(
        refused(runner.install_bundle(&sb.write_bundle(&unsigned, "u.wbundle"))),
        TrustError::Unsigned
    );
    assert_nothing_installed(&sb, &runner);

    let mut foreign = unsigned.clone();
    foreign.sign(&stranger);
    let e = refused(runner.install_bundle(&sb.write_bundle(&foreign, "f.wbundle")));
    assert!(matches!(e, TrustError::UnknownKey { .. }), "{e:?}");
    assert_nothing_installed(&sb, &runner);

    let dir = warden_tests::built_plugin("disk-usage");
    assert!(matches!(
        runner.install_dir(&dir),
        Err(InstallError::DirectoryNeedsDevelopmentMode)
    ));
    assert_nothing_installed(&sb, &runner);
}

#[test]
fn tampering_after_signing_is_refused_and_the_old_version_stays() {
    let sb = Sandbox::new();
    let (key, public) = sb.key("publisher");
    let runner = trusting(&sb, &[("acme", &public)], "");
    let mut v1 = sb.unsigned_bundle("disk-usage", None);
    v1.sign(&key);
    let installed = runner
        .install_bundle(&sb.write_bundle(&v1, "v1.wbundle"))
        .expect("v1")
        .plugin;

    let manifest =
        std::fs::read_to_string(warden_tests::built_plugin("disk-usage").join("plugin.toml"))
            .expect("manifest")
            .replace("version = \"0.1.0\"", "version = \"0.2.0\"");
    let mut v2 = sb.unsigned_bundle("disk-usage", Some(&manifest));
    v2.sign(&key);

    // Component bytes changed after signing.
    let mut bad = v2.clone();
    let last = bad.component.len() - 1;
    bad.component[last] ^= 0xff;
    assert_eq!(
        refused(runner.install_bundle(&sb.write_bundle(&bad, "c.wbundle"))),
        TrustError::ComponentMismatch
    );

    // A manifest field changed after signing: capabilities widened inside the signed statement.
    let mut widened = v2.clone();
    widened.statement_text = widened.statement_text.replace(
        r#"sysinfo = [\"disks\"]"#,
        r#"sysinfo = [\"disks\", \"processes\"]"#,
    );
    assert_ne!(
        widened.statement_text, v2.statement_text,
        "the test must really change the manifest"
    );
    let widened = Bundle::parse(&widened.to_bytes().expect("encode")).expect("parse");
    let e = refused(runner.install_bundle(&sb.write_bundle(&widened, "w.wbundle")));
    assert!(matches!(e, TrustError::BadSignature { .. }), "{e:?}");

    // A valid signature, but over different bytes (v1's statement) attached to v2.
    let mut swapped = v2.clone();
    swapped.signatures = v1.signatures.clone();
    let e = refused(runner.install_bundle(&sb.write_bundle(&swapped, "s.wbundle")));
    assert!(matches!(e, TrustError::BadSignature { .. }), "{e:?}");

    let listed = runner.store().list().expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].sha256, installed.sha256);
    assert_eq!(listed[0].manifest.version.to_string(), "0.1.0");
    let refusals = sb
        .audit_events()
        .iter()
        .filter(|e| *e == "plugin.install-refused")
        .count();
    assert_eq!(refusals, 3);
}

#[test]
fn the_same_signature_twice_counts_once() {
    let sb = Sandbox::new();
    let (a, pa) = sb.key("a");
    let (b, pb) = sb.key("b");
    let runner = trusting(&sb, &[("a", &pa), ("b", &pb)], "min-signatures = 2\n");
    let mut twice = sb.unsigned_bundle("disk-usage", None);
    twice.sign(&a);
    twice.signatures.push(twice.signatures[0].clone());
    twice.sign(&a);
    let e = refused(runner.install_bundle(&sb.write_bundle(&twice, "t.wbundle")));
    assert_eq!(e, TrustError::NotEnoughSignatures { needed: 2, have: 1 });
    assert_nothing_installed(&sb, &runner);
    let mut both = sb.unsigned_bundle("disk-usage", None);
    both.sign(&a);
    both.sign(&b);
    let report = runner
        .install_bundle(&sb.write_bundle(&both, "b.wbundle"))
        .expect("two distinct keys");
    assert_eq!(report.signers.len(), 2);
}

#[test]
fn rollback_is_refused_and_the_mark_survives_restart_and_removal() {
    let sb = Sandbox::new();
    let (key, public) = sb.key("publisher");
    let manifest =
        std::fs::read_to_string(warden_tests::built_plugin("disk-usage").join("plugin.toml"))
            .expect("m");
    let v2_manifest = manifest.replace("version = \"0.1.0\"", "version = \"0.2.0\"");
    let mut v1 = sb.unsigned_bundle("disk-usage", None);
    v1.sign(&key);
    let mut v2 = sb.unsigned_bundle("disk-usage", Some(&v2_manifest));
    v2.sign(&key);
    let (v1_path, v2_path) = (
        sb.write_bundle(&v1, "v1.wbundle"),
        sb.write_bundle(&v2, "v2.wbundle"),
    );
    {
        let runner = trusting(&sb, &[("acme", &public)], "");
        runner.install_bundle(&v2_path).expect("v2");
        runner.remove("disk-usage").expect("remove");
    }
    let runner = trusting(&sb, &[("acme", &public)], "");
    let e = refused(runner.install_bundle(&v1_path));
    assert_eq!(
        e,
        TrustError::Rollback {
            offered: "0.1.0".into(),
            highest: "0.2.0".into()
        }
    );
    assert_nothing_installed(&sb, &runner);
    runner
        .install_bundle(&v2_path)
        .expect("reinstalling the same version is not a rollback");
}

#[test]
fn expired_statements_hostile_names_and_oversized_bundles_are_refused() {
    let sb = Sandbox::new();
    let (key, public) = sb.key("publisher");
    let runner = trusting(&sb, &[("acme", &public)], "");

    let mut expired = sb.unsigned_bundle("disk-usage", None);
    expired.statement.expires_at = expired.statement.signed_at - 1;
    expired.statement_text = serde_json::to_string(&expired.statement).expect("json");
    expired.sign(&key);
    let e = refused(runner.install_bundle(&sb.write_bundle(&expired, "e.wbundle")));
    assert!(matches!(e, TrustError::Expired { .. }), "{e:?}");

    for name in ["../evil", "a/b", "x\u{7}y", "C:\\\\x", &"a".repeat(300)] {
        let mut hostile = sb.unsigned_bundle("disk-usage", None);
        hostile.statement.name = name.to_string();
        hostile.statement_text = serde_json::to_string(&hostile.statement).expect("json");
        hostile.sign(&key);
        let e = refused(runner.install_bundle(&sb.write_bundle(&hostile, "h.wbundle")));
        assert!(
            matches!(e, TrustError::BadStatement { .. }),
            "{name:?}: {e:?}"
        );
    }
    assert_nothing_installed(&sb, &runner);

    let small = sb.runner(&format!("[limits]\nmax-bundle-bytes = 1000\n[trust]\n[[trust.keys]]\nname = \"acme\"\npublic-key = \"{public}\"\n"));
    let mut big = sb.unsigned_bundle("disk-usage", None);
    big.sign(&key);
    let r = small.install_bundle(&sb.write_bundle(&big, "big.wbundle"));
    assert!(
        matches!(
            r,
            Err(InstallError::Bundle(warden_bundle::BundleError::TooLarge {
                limit: 1000,
                ..
            }))
        ),
        "{r:?}"
    );
}

#[test]
fn keys_are_limited_to_their_plugins_and_capability_ceiling() {
    let sb = Sandbox::new();
    let (key, public) = sb.key("publisher");
    let scoped = format!(
        "[[trust.keys]]\nname = \"disk-team\"\npublic-key = \"{public}\"\nplugins = [\"disk-*\"]\ncapabilities = [\"sysinfo\"]\n"
    );
    let runner = sb.runner(&format!(
        "[allow]\nsysinfo = [\"disks\"]\n[trust]\n{scoped}"
    ));
    let mut clean = sb.unsigned_bundle("clean-temp", None);
    clean.sign(&key);
    let e = refused(runner.install_bundle(&sb.write_bundle(&clean, "c.wbundle")));
    assert!(
        matches!(e, TrustError::KeyNotAllowedForPlugin { .. }),
        "{e:?}"
    );

    let widened =
        std::fs::read_to_string(warden_tests::built_plugin("disk-usage").join("plugin.toml"))
            .expect("m")
            .replace(
                "sysinfo = [\"disks\"]",
                "sysinfo = [\"disks\"]\nservices = [\"dbus\"]",
            );
    let mut greedy = sb.unsigned_bundle("disk-usage", Some(&widened));
    greedy.sign(&key);
    let e = refused(runner.install_bundle(&sb.write_bundle(&greedy, "g.wbundle")));
    assert!(
        matches!(&e, TrustError::CapabilityAboveKeyCeiling { capability, .. } if capability == "services"),
        "{e:?}"
    );
    let mut fine = sb.unsigned_bundle("disk-usage", None);
    fine.sign(&key);
    runner
        .install_bundle(&sb.write_bundle(&fine, "ok.wbundle"))
        .expect("within scope");
}

#[test]
fn an_update_during_a_run_takes_effect_for_new_runs_only() {
    let sb = Sandbox::new();
    let (key, public) = sb.key("publisher");
    let base = sb.standard_policy("default-timeout-ms = 10000");
    let runner = sb.runner(&format!(
        "{base}\n[trust]\n[[trust.keys]]\nname = \"acme\"\npublic-key = \"{public}\"\n"
    ));
    let v1_manifest = hostile_manifest(&sb.hostile_caps(), "");
    let mut v1 = sb.unsigned_bundle("hostile", Some(&v1_manifest));
    v1.sign(&key);
    let mut v2 = sb.unsigned_bundle(
        "hostile",
        Some(&v1_manifest.replace("version = \"0.1.0\"", "version = \"0.2.0\"")),
    );
    v2.sign(&key);
    runner
        .install_bundle(&sb.write_bundle(&v1, "v1.wbundle"))
        .expect("v1");
    let v2_path = sb.write_bundle(&v2, "v2.wbundle");
    std::thread::scope(|s| {
        let old =
            s.spawn(|| {
                runner.run(&RunRequest::new("hostile", Invocation::Check).with_config(
                    json!({"attack": "exec", "program": "/bin/sleep", "args": ["0.5"]}),
                ))
            });
        while runner.live_instances() == 0 {
            std::thread::yield_now();
        }
        runner
            .install_bundle(&v2_path)
            .expect("v2 installs while v1 runs");
        let new = runner.run(
            &RunRequest::new("hostile", Invocation::Check)
                .with_config(json!({"attack": "sysinfo"})),
        );
        assert_eq!(
            new.plugin.as_ref().map(|p| p.version.as_str()),
            Some("0.2.0")
        );
        assert!(new.result.is_ok(), "{:?}", new.result);
        let old = old.join().expect("thread");
        assert_eq!(
            old.plugin.as_ref().map(|p| p.version.as_str()),
            Some("0.1.0")
        );
        assert!(
            old.result.is_ok(),
            "the run in progress finished on its version: {:?}",
            old.result
        );
    });
}
