//! The compliance check plugins through `warden run` on this machine, whatever its state: each
//! reports one of the four statuses with the Nagios exit code that goes with it, and a summary
//! that names its evidence; `warden plugin inspect` shows the controls each gives evidence for,
//! in text and in `--json`.

use crate::cli::{Cli, plugin_dir, text};

/// A site policy that grants exactly what the five manifests request.
const POLICY: &str = r#"[allow]
fs-read = [
    "/proc/mounts", "/sys/devices/virtual/block", "/etc/crypttab",
    "/etc/profile", "/etc/profile.d", "/etc/bash.bashrc",
    "/usr/share/xsessions", "/usr/share/wayland-sessions", "/etc/dconf",
    "/etc/nftables.conf", "/etc/ufw/ufw.conf", "/etc/firewalld/firewalld.conf",
    "/etc/systemd/system/multi-user.target.wants", "/etc/audit/rules.d", "/etc/audit/audit.rules",
]
services = ["nftables", "ufw", "firewalld", "auditd"]
"#;

/// Each plugin, its HIPAA and CMMC references, and words its summary must contain whatever the
/// machine's state: the evidence it looked at.
const CONTROLS: [(&str, &str, &str, &[&str]); 5] = [
    (
        "disk-encryption",
        "164.312(a)(2)(iv)",
        "SC.L2-3.13.16",
        &["/"],
    ),
    (
        "auto-logoff",
        "164.312(a)(2)(iii)",
        "AC.L2-3.1.11",
        &["TMOUT", "/etc/"],
    ),
    (
        "screen-lock",
        "164.312(a)(2)(iii)",
        "AC.L2-3.1.10",
        &["session"],
    ),
    (
        "host-firewall",
        "164.312(e)(1)",
        "SC.L1-3.13.1",
        &["nftables", "ufw", "firewalld"],
    ),
    ("audit-daemon", "164.312(b)", "AU.L2-3.3.1", &["auditd"]),
];

#[test]
fn each_compliance_check_reports_a_status_with_its_evidence_and_nagios_code_on_this_machine() {
    let cli = Cli::new(POLICY);
    for (plugin, hipaa, cmmc, evidence) in CONTROLS {
        let dir = plugin_dir(plugin).display().to_string();
        let out = cli.warden(&["plugin", "install", &dir]);
        assert!(out.status.success(), "{plugin}: {}", text(&out.stderr));

        let shown = text(&cli.warden(&["plugin", "inspect", plugin]).stdout);
        assert!(
            shown.contains(&format!("evidence for HIPAA {hipaa}; CMMC {cmmc}")),
            "{shown}"
        );
        let out = cli.warden(&["plugin", "inspect", plugin, "--json"]);
        let inspected: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let tags = &inspected["plugin"]["manifest"]["compliance"];
        assert_eq!(tags["hipaa"], serde_json::json!([hipaa]), "{inspected}");
        assert_eq!(tags["cmmc"], serde_json::json!([cmmc]), "{inspected}");

        let out = cli.warden(&["run", plugin, "--json"]);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{plugin}: {e}: {}", text(&out.stderr)));
        let check = &report["result"]["ok"]["value"];
        let status = check["status"].as_str().unwrap_or_default();
        let code = match status {
            "ok" => 0,
            "warning" => 1,
            "critical" => 2,
            "unknown" => 3,
            other => panic!("{plugin}: not a status: {other:?} in {report}"),
        };
        assert_eq!(out.status.code(), Some(code), "{plugin}: {report}");
        let summary = check["summary"].as_str().unwrap_or_default();
        assert!(
            evidence.iter().all(|e| summary.contains(e)),
            "{plugin}: {summary:?} does not name {evidence:?}"
        );
        assert!(
            report["capability_uses"]
                .as_array()
                .is_some_and(|uses| !uses.is_empty()),
            "{plugin}: no evidence was read: {report}"
        );
        eprintln!("{plugin}: {status}: {summary}");
    }
}
