//! Fuzzing of every parser of untrusted input: plugin manifest, site policy, runbook, bundle
//! header, testkit fixture and agent config. Each target is a function of bytes (the shape
//! cargo-fuzz and libFuzzer take); here each runs over mutants of real seeds (the repository's
//! examples) from a fixed-seed generator, so a failure names a case that reproduces. No target
//! may panic, whatever the bytes: an error is the only acceptable answer to garbage.
//!
//! A bounded number of cases runs in the normal test run ([`DEFAULT_CASES`] per target);
//! `cargo xtask fuzz` runs many more (`WARDEN_FUZZ_CASES`), and `WARDEN_FUZZ_SEED` picks
//! another stream of mutants.

use std::path::{Path, PathBuf};

/// Cases per target in a normal test run: a few seconds for all six targets in a debug build.
const DEFAULT_CASES: u64 = 400;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn seed_file(path: &str) -> Vec<u8> {
    std::fs::read(repo().join(path)).unwrap_or_else(|e| panic!("seed {path}: {e}"))
}

fn cases() -> u64 {
    std::env::var("WARDEN_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// xorshift64*: a small generator whose stream is fixed by its seed, so a case reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Fragments that TOML, JSON and the parsers' own grammars treat specially.
const TOKENS: &[&str] = &[
    "\"",
    "'",
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "=",
    ",",
    "\n",
    "#",
    "\\",
    "\\u0000",
    "${",
    "${params.",
    "}}",
    "0",
    "-1",
    "1e400",
    "18446744073709551616",
    "-9223372036854775809",
    "nan",
    "inf",
    "true",
    "\"\"\"",
    "'''",
    "\u{0}",
    "\u{feff}",
    "\u{202e}",
    "ß",
    "../",
    "/",
    "*",
    "**",
    "kv",
    "exec",
    "fs",
    "http",
    "version",
    "role",
    "name",
    "steps",
    "plugin",
    "quota-bytes = 18446744073709551615",
    "timeout-secs = 0",
    "1979-05-27T07:32:00Z",
];

/// One mutant of `seed` (sometimes spliced with `other`).
fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(out.len() + 1);
        match rng.below(8) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.next() as u8;
            }
            2 => {
                let end = (at + rng.below(64)).min(out.len());
                out.drain(at..end);
            }
            3 => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                out.splice(at..at, token.iter().copied());
            }
            4 => {
                let end = (at + rng.below(32)).min(out.len());
                let piece = out[at..end].to_vec();
                out.splice(at..at, piece);
            }
            5 if !other.is_empty() => {
                let from = rng.below(other.len());
                let end = (from + rng.below(256)).min(other.len());
                out.splice(at..at, other[from..end].iter().copied());
            }
            6 => out.truncate(at),
            _ => {
                // Deep nesting: what recursive descent parsers overflow their stacks on.
                let open = ["[", "{a=", "a=["][rng.below(3)];
                let depth = 1 + rng.below(5000);
                let nest = open.repeat(depth);
                out.splice(at..at, nest.bytes());
            }
        }
    }
    out
}

/// Run `target` over `seeds` and their mutants; a panic fails with the case that caused it.
fn fuzz(name: &str, seeds: &[Vec<u8>], target: impl Fn(&[u8])) {
    let base: u64 = std::env::var("WARDEN_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    let mut rng = Rng(base
        ^ name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        }));
    for seed in seeds {
        target(seed);
    }
    for case in 0..cases() {
        let seed = &seeds[rng.below(seeds.len())];
        let other = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, seed, other);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target(&input)));
        if outcome.is_err() {
            let shown = String::from_utf8_lossy(&input);
            panic!(
                "{name}: case {case} (WARDEN_FUZZ_SEED={base}) panicked on {} bytes:\n{}",
                input.len(),
                shown.escape_debug()
            );
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// The targets: bytes in, any result out, never a panic.

fn manifest_target(bytes: &[u8]) {
    let _ = warden_core::Manifest::parse(&text(bytes));
}

fn policy_target(bytes: &[u8]) {
    let _ = warden_core::SitePolicy::parse(&text(bytes), "fuzz.toml");
}

fn runbook_target(bytes: &[u8]) {
    let _ = warden_runbook::Runbook::parse(&text(bytes), "fuzz.toml");
}

fn bundle_target(bytes: &[u8]) {
    let _ = warden_bundle::Bundle::parse(bytes);
}

fn fixture_target(bytes: &[u8]) {
    let _ = warden_testkit::Fixture::parse(&text(bytes), "fuzz.toml");
}

fn agent_config_target(bytes: &[u8]) {
    let _ = warden_agent::daemon::config::AgentConfig::parse(
        &text(bytes),
        "fuzz.toml",
        Path::new("/nonexistent"),
    );
}

fn manifests() -> Vec<Vec<u8>> {
    [
        "plugins/service-health",
        "plugins/clean-temp",
        "plugins/inventory",
        "plugins/disk-encryption",
        "examples/python-check",
    ]
    .iter()
    .map(|d| seed_file(&format!("{d}/plugin.toml")))
    .collect()
}

#[test]
fn plugin_manifests_never_panic() {
    fuzz("manifest", &manifests(), manifest_target);
}

#[test]
fn site_policies_never_panic() {
    let seeds = [
        seed_file("examples/site-policy.toml"),
        seed_file("crates/warden-core/src/default-policy.toml"),
    ];
    fuzz("policy", &seeds, policy_target);
}

#[test]
fn runbooks_never_panic() {
    let seeds = [
        seed_file("examples/disk-pressure.toml"),
        seed_file("examples/service-down.toml"),
    ];
    fuzz("runbook", &seeds, runbook_target);
}

#[test]
fn bundle_headers_never_panic() {
    let runbook = text(&seed_file("examples/disk-pressure.toml"));
    let mut bundle =
        warden_bundle::Bundle::from_runbook("disk-pressure", &runbook, 30).expect("bundle");
    let unsigned = bundle.to_bytes().expect("bytes");
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    bundle.sign(&key);
    let signed = bundle.to_bytes().expect("bytes");
    fuzz("bundle", &[unsigned, signed], bundle_target);
}

#[test]
fn fixtures_never_panic() {
    let seeds = [
        "crates/warden-author/templates/common/check/tests/large-file-warns.toml",
        "crates/warden-author/templates/common/remediation/tests/stopped-service-is-restarted.toml",
        "crates/warden-author/templates/common/discovery/tests/debian.toml",
    ]
    .map(seed_file);
    fuzz("fixture", &seeds, fixture_target);
}

#[test]
fn agent_configs_never_panic() {
    fuzz(
        "agent-config",
        &[seed_file("examples/agent.toml")],
        agent_config_target,
    );
}

#[test]
fn the_mutator_changes_its_seeds() {
    let mut rng = Rng(1);
    let seed = b"name = \"x\"\n".to_vec();
    let changed = (0..100)
        .filter(|_| mutate(&mut rng, &seed, &seed) != seed)
        .count();
    assert!(
        changed > 90,
        "only {changed} of 100 mutants differ from the seed"
    );
}
