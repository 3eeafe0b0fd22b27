//! `cargo xtask layers`: the dependency rules between the workspace's crates, checked against
//! `cargo metadata`. The layout is the architecture (docs/ARCHITECTURE.md); this makes a
//! forbidden edge a CI failure instead of a review comment.
//!
//! Two kinds of rule, both over normal and build dependencies (a crate's tests may use more):
//! - `may_use`: the workspace crates a crate may depend on directly;
//! - `never`: crates, in the workspace or not, that must not appear anywhere in its dependency
//!   closure (so "the controller never links the sandbox" holds through any intermediate crate).
//!
//! And one source rule: protobuf types are the wire, so `warden_proto` may be named only in the
//! gRPC adapters listed in [`PROTO_USERS`]; and one manifest rule: features for tests only
//! ([`TEST_ONLY_FEATURES`]) are enabled in dev-dependencies, never in what ships.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::Value;

/// What the sandbox and the wire are made of: crates that the small, pure layers must not pull in.
const HEAVY: &[&str] = &[
    "wasmtime",
    "wasmtime-wasi",
    "tokio",
    "tonic",
    "prost",
    "rusqlite",
];

/// One crate's rule.
struct Rule {
    krate: &'static str,
    may_use: &'static [&'static str],
    never: &'static [&'static str],
}

/// Every workspace crate has a rule; a crate without one fails the check, so a new crate is a
/// decision, not an accident. A rule for a crate that does not exist yet (the controller) waits
/// for it.
const RULES: &[Rule] = &[
    Rule {
        krate: "warden-core",
        may_use: &[],
        never: HEAVY,
    },
    Rule {
        krate: "warden-host",
        may_use: &["warden-core"],
        // tokio comes with wasmtime-wasi (its stdout and stderr are async streams); the wire and
        // the database never do.
        never: &["tonic", "prost", "rusqlite", "warden-proto", "warden-audit"],
    },
    Rule {
        krate: "warden-testkit",
        may_use: &["warden-core", "warden-host"],
        never: &["tonic", "prost", "rusqlite", "cel", "croner", "clap"],
    },
    // Test support starting real nats-server processes: blocking and std-only, so that the
    // tests and benchmarks of any layer can use it without pulling in a runtime.
    Rule {
        krate: "warden-natstest",
        may_use: &[],
        never: HEAVY,
    },
    // Test support mounting a real full filesystem: std-only, for the tests of any layer.
    Rule {
        krate: "warden-tmpfs",
        may_use: &[],
        never: HEAVY,
    },
    // The fleet's NATS identity (keys, JWTs, enrollment, revocation): used by the controller
    // and the agent, so it must stay free of the sandbox and of both of them. Its tests use
    // warden-natstest (a dev-dependency, which these rules do not cover).
    Rule {
        krate: "warden-fleet-identity",
        may_use: &[],
        never: &[
            "wasmtime",
            "wasmtime-wasi",
            "warden-host",
            "warden-agent",
            "warden-controller",
            "tokio",
            "tonic",
            "prost",
            "rusqlite",
        ],
    },
    // The fleet's wire messages: pure encode / decode, shared by the controller and the agent,
    // so neither side's runtime, transport or sandbox may come with it.
    Rule {
        krate: "warden-fleet-wire",
        may_use: &["warden-fleet-identity"],
        never: &[
            "wasmtime",
            "wasmtime-wasi",
            "warden-host",
            "warden-agent",
            "warden-controller",
            "async-nats",
            "tokio",
            "tonic",
            "prost",
            "rusqlite",
        ],
    },
    // Roles, hashed bearer tokens and tenant scopes of the gRPC APIs: pure, so both the agent and
    // the controller can use it without either depending on the other.
    Rule {
        krate: "warden-access",
        may_use: &[],
        never: HEAVY,
    },
    // The Prometheus endpoint: an HTTP server and the metric types, nothing of either owner;
    // the agent and the controller define what they count.
    Rule {
        krate: "warden-metrics",
        may_use: &[],
        never: &[
            "wasmtime",
            "wasmtime-wasi",
            "warden-host",
            "warden-agent",
            "warden-controller",
            "tonic",
            "prost",
            "rusqlite",
        ],
    },
    // Client reports: pure computation and rendering over events the caller read.
    Rule {
        krate: "warden-report",
        may_use: &[],
        never: HEAVY,
    },
    Rule {
        krate: "warden-audit",
        may_use: &["warden-core"],
        never: HEAVY,
    },
    Rule {
        krate: "warden-bundle",
        may_use: &["warden-core"],
        never: HEAVY,
    },
    Rule {
        krate: "warden-history",
        may_use: &["warden-core"],
        never: &["wasmtime", "tokio", "tonic", "prost"],
    },
    Rule {
        krate: "warden-runbook",
        may_use: &[
            "warden-core",
            "warden-history",
            "warden-audit",
            "warden-bundle",
        ],
        never: &["wasmtime", "warden-host", "warden-proto", "tonic", "prost"],
    },
    Rule {
        krate: "warden-automation",
        may_use: &["warden-core", "warden-history", "warden-audit"],
        never: &["wasmtime", "warden-host", "warden-proto", "tonic", "prost"],
    },
    Rule {
        krate: "warden-proto",
        may_use: &[],
        never: &["wasmtime", "rusqlite"],
    },
    Rule {
        krate: "warden-author",
        may_use: &["warden-core"],
        never: &["wasmtime", "tokio", "tonic", "prost", "rusqlite"],
    },
    Rule {
        krate: "warden-agent",
        may_use: &[
            "warden-core",
            "warden-host",
            "warden-audit",
            "warden-bundle",
            "warden-history",
            "warden-runbook",
            "warden-automation",
            "warden-proto",
            "warden-fleet-identity",
            "warden-fleet-wire",
            "warden-access",
            "warden-metrics",
        ],
        never: &[],
    },
    Rule {
        krate: "warden-controller",
        may_use: &[
            "warden-core",
            "warden-audit",
            "warden-bundle",
            "warden-history",
            "warden-proto",
            "warden-access",
            "warden-fleet-identity",
            "warden-fleet-wire",
            "warden-metrics",
            "warden-report",
            // The agent's pure maintenance-window logic, reused by the approvals gate
            // (issue 16) instead of a second evaluator.
            "warden-automation",
        ],
        never: &["warden-host", "warden-agent", "wasmtime", "wasmtime-wasi"],
    },
    // The web console (issue 18): an HTTP adapter over the controller's core, as the gRPC one
    // is; it renders what the controller knows and never the sandbox or the agent. (The
    // protobuf types come with the controller's own gRPC adapter; the source rule below keeps
    // them out of the console's code.)
    Rule {
        krate: "warden-console",
        may_use: &[
            "warden-controller",
            "warden-access",
            "warden-fleet-identity",
            "warden-fleet-wire",
        ],
        never: &["warden-host", "warden-agent", "wasmtime", "wasmtime-wasi"],
    },
    // The binary, the tests, the benchmark and the tooling sit on top and may use anything;
    // so does the simulated fleet, test support for the scale test and the benchmark only.
    Rule {
        krate: "warden-fleetsim",
        may_use: &["*"],
        never: &[],
    },
    Rule {
        krate: "warden-runner",
        may_use: &["*"],
        never: &[],
    },
    Rule {
        krate: "warden-tests",
        may_use: &["*"],
        never: &[],
    },
    Rule {
        krate: "warden-bench",
        may_use: &["*"],
        never: &[],
    },
    Rule {
        krate: "xtask",
        may_use: &[],
        never: &[],
    },
];

/// The only source trees (relative to the repository root) that may name `warden_proto`: the
/// agent's gRPC adapter, the controller's, and the CLI's gRPC client.
const PROTO_USERS: &[&str] = &[
    "crates/warden-proto/",
    "crates/warden-agent/src/grpc/",
    "crates/warden-controller/src/grpc/",
    "runner/src/cli/",
    "tests/",
    "bench/",
];

/// Features that exist for tests: `tokio/test-util` lets code pause and move the runtime's
/// clock, which nothing in a shipped binary may do.
const TEST_ONLY_FEATURES: &[(&str, &str)] = &[("tokio", "test-util")];

/// Workspace members that enable a [`TEST_ONLY_FEATURES`] feature in a normal or build
/// dependency (`cargo metadata` reports each dependency with the workspace's features merged in).
fn check_test_only_features(metadata: &Value) -> Vec<String> {
    let members: BTreeSet<&str> = metadata["workspace_members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut problems = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        if !package["id"]
            .as_str()
            .is_some_and(|id| members.contains(id))
        {
            continue;
        }
        let name = package["name"].as_str().unwrap_or("?");
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            if dep["kind"].as_str() == Some("dev") {
                continue;
            }
            let dep_name = dep["name"].as_str().unwrap_or_default();
            for (crate_name, feature) in TEST_ONLY_FEATURES {
                let enabled = dep["features"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|f| f.as_str() == Some(feature));
                if dep_name == *crate_name && enabled {
                    problems.push(format!(
                        "`{name}` enables `{crate_name}/{feature}` outside its dev-dependencies: \
                         it is for tests only"
                    ));
                }
            }
        }
    }
    problems
}

pub fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    if !args.is_empty() {
        bail!("usage: cargo xtask layers");
    }
    let output = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(root)
        .args(["metadata", "--format-version", "1", "--locked"])
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let metadata: Value =
        serde_json::from_slice(&output.stdout).context("parsing cargo metadata")?;
    let graph = Graph::from_metadata(&metadata)?;
    let mut problems = check_rules(&graph);
    problems.extend(check_proto_sources(root, &graph)?);
    problems.extend(check_test_only_features(&metadata));
    if problems.is_empty() {
        println!(
            "layers: {} workspace crates, every dependency edge allowed",
            graph.members.len()
        );
        return Ok(());
    }
    for problem in &problems {
        eprintln!("layers: {problem}");
    }
    bail!("{} layering problem(s)", problems.len())
}

/// Package names and their normal/build dependencies, from `cargo metadata`'s resolve graph.
struct Graph {
    /// Workspace member name -> its manifest directory.
    members: BTreeMap<String, PathBuf>,
    /// Package name -> names of its normal and build dependencies.
    deps: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    fn from_metadata(metadata: &Value) -> anyhow::Result<Graph> {
        let packages = metadata["packages"]
            .as_array()
            .context("cargo metadata without packages")?;
        let mut names = BTreeMap::new();
        let mut dirs = BTreeMap::new();
        for package in packages {
            let id = package["id"].as_str().context("package without id")?;
            let name = package["name"].as_str().context("package without name")?;
            names.insert(id.to_string(), name.to_string());
            if let Some(manifest) = package["manifest_path"].as_str() {
                let dir = Path::new(manifest).parent().unwrap_or(Path::new("."));
                dirs.insert(id.to_string(), dir.to_path_buf());
            }
        }
        let mut members = BTreeMap::new();
        for id in metadata["workspace_members"]
            .as_array()
            .context("cargo metadata without workspace_members")?
        {
            let id = id.as_str().context("member id is not a string")?;
            let name = names.get(id).context("member not among the packages")?;
            let dir = dirs.get(id).cloned().unwrap_or_default();
            members.insert(name.clone(), dir);
        }
        let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let nodes = metadata["resolve"]["nodes"]
            .as_array()
            .context("cargo metadata without a resolve graph")?;
        for node in nodes {
            let id = node["id"].as_str().context("node without id")?;
            let name = names.get(id).context("node not among the packages")?;
            let entry = deps.entry(name.clone()).or_default();
            for dep in node["deps"].as_array().into_iter().flatten() {
                let runtime = dep["dep_kinds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|kind| kind["kind"].as_str() != Some("dev"));
                if !runtime {
                    continue;
                }
                if let Some(dep_name) = dep["pkg"].as_str().and_then(|id| names.get(id)) {
                    entry.insert(dep_name.clone());
                }
            }
        }
        Ok(Graph { members, deps })
    }

    fn direct(&self, name: &str) -> impl Iterator<Item = &String> {
        self.deps.get(name).into_iter().flatten()
    }

    /// Every package reachable from `name` through normal and build dependencies, with the path
    /// that reaches it first (for the error message).
    fn closure(&self, name: &str) -> BTreeMap<String, Vec<String>> {
        let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut queue = vec![(name.to_string(), vec![name.to_string()])];
        while let Some((current, path)) = queue.pop() {
            for dep in self.direct(&current) {
                if seen.contains_key(dep) {
                    continue;
                }
                let mut via = path.clone();
                via.push(dep.clone());
                seen.insert(dep.clone(), via.clone());
                queue.push((dep.clone(), via));
            }
        }
        seen
    }
}

fn check_rules(graph: &Graph) -> Vec<String> {
    let mut problems = Vec::new();
    for member in graph.members.keys() {
        let Some(rule) = RULES.iter().find(|r| r.krate == member) else {
            problems.push(format!(
                "crate `{member}` has no rule in xtask/src/layers.rs: say what it may depend on"
            ));
            continue;
        };
        for dep in graph.direct(member) {
            let workspace_dep = graph.members.contains_key(dep);
            let allowed = rule.may_use.contains(&"*") || rule.may_use.contains(&dep.as_str());
            if workspace_dep && !allowed {
                problems.push(format!("`{member}` may not depend on `{dep}`"));
            }
        }
        let closure = graph.closure(member);
        for forbidden in rule.never {
            if let Some(path) = closure.get(*forbidden) {
                problems.push(format!(
                    "`{member}` must never link `{forbidden}`, but does: {}",
                    path.join(" -> ")
                ));
            }
        }
    }
    problems
}

/// Files outside [`PROTO_USERS`] that name `warden_proto`.
fn check_proto_sources(root: &Path, graph: &Graph) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    // xtask names the crate in its own rules.
    for (_, dir) in graph.members.iter().filter(|(name, _)| *name != "xtask") {
        let src = dir.join("src");
        let mut files = Vec::new();
        collect_rust_files(&src, &mut files)?;
        for file in files {
            let relative = file.strip_prefix(root).unwrap_or(&file);
            let shown = relative.to_string_lossy().replace('\\', "/");
            if PROTO_USERS.iter().any(|allowed| shown.starts_with(allowed)) {
                continue;
            }
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            // `grpc::pb` is the agent's re-export: naming it is naming the wire too.
            if let Some(name) = ["warden_proto", "grpc::pb"]
                .into_iter()
                .find(|name| text.contains(name))
            {
                problems.push(format!(
                    "{shown} names `{name}`: protobuf types belong in the gRPC adapters"
                ));
            }
        }
    }
    Ok(problems)
}

fn collect_rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry
            .with_context(|| format!("listing {}", dir.display()))?
            .path();
        if path.is_dir() {
            collect_rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> Graph {
        let mut members = BTreeMap::new();
        let mut deps = BTreeMap::new();
        for (name, to) in edges {
            if name.starts_with("warden") {
                members.insert(name.to_string(), PathBuf::new());
            }
            deps.insert(
                name.to_string(),
                to.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>(),
            );
        }
        Graph { members, deps }
    }

    #[test]
    fn a_forbidden_transitive_edge_is_reported_with_its_path() {
        let g = graph(&[
            ("warden-core", &[]),
            ("warden-host", &["warden-core", "wasmtime"]),
            ("warden-controller", &["warden-core", "warden-bundle"]),
            ("warden-bundle", &["warden-core", "warden-host"]),
            ("wasmtime", &[]),
        ]);
        let problems = check_rules(&g);
        assert!(
            problems
                .iter()
                .any(|p| p == "`warden-bundle` may not depend on `warden-host`"),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains(
                "`warden-controller` must never link `warden-host`, but does: \
                 warden-controller -> warden-bundle -> warden-host"
            )),
            "{problems:?}"
        );
    }

    #[test]
    fn a_test_only_feature_outside_dev_dependencies_is_reported() {
        let metadata = |kind: Value| {
            serde_json::json!({
                "workspace_members": ["m"],
                "packages": [
                    { "id": "m", "name": "warden-agent", "dependencies": [
                        { "name": "tokio", "kind": kind, "features": ["time", "test-util"] },
                        { "name": "serde", "kind": null, "features": ["test-util"] },
                    ]},
                    // Not a member: its manifest is not ours.
                    { "id": "x", "name": "other", "dependencies": [
                        { "name": "tokio", "kind": null, "features": ["test-util"] },
                    ]},
                ]
            })
        };
        assert_eq!(
            check_test_only_features(&metadata(Value::Null)),
            [
                "`warden-agent` enables `tokio/test-util` outside its dev-dependencies: it is for \
              tests only"
            ]
        );
        assert!(check_test_only_features(&metadata(Value::from("dev"))).is_empty());
    }

    #[test]
    fn allowed_edges_pass_and_an_unknown_crate_needs_a_rule() {
        let g = graph(&[
            ("warden-core", &["serde"]),
            ("warden-host", &["warden-core", "wasmtime"]),
            ("serde", &[]),
            ("wasmtime", &[]),
        ]);
        assert_eq!(check_rules(&g), Vec::<String>::new());
        let g = graph(&[("warden-mystery", &[])]);
        assert_eq!(check_rules(&g).len(), 1);
    }
}
