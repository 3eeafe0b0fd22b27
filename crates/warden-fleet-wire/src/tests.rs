//! The wire's behaviour: round trips, caps, versions, and the command checks an agent relies on.

use std::collections::BTreeMap;

use warden_fleet_identity::{AgentId, TenantId};

use crate::command::{MAX_BUNDLE_BYTES, MAX_CLOCK_SKEW_MS, MAX_COMMAND_LIFETIME_MS};
use crate::*;

fn agent() -> AgentId {
    AgentId::new(nkeys::KeyPair::new_user().public_key()).expect("agent id")
}

fn tenant(name: &str) -> TenantId {
    TenantId::new(name).expect("tenant")
}

const NOW: UnixMillis = UnixMillis(1_764_590_000_000);

fn run() -> RunId {
    RunId::from_parts(NOW, [7; 10])
}

fn command(to: &AgentId, lifetime_ms: i64) -> Command {
    Command::run_runbook(
        run(),
        tenant("acme"),
        to.clone(),
        NOW,
        NOW.plus_millis(lifetime_ms),
        RunRunbook {
            runbook: Some("restart-spooler".into()),
            bundle: None,
            params: BTreeMap::from([("service".to_string(), "spooler".to_string())]),
            dry_run: true,
        },
    )
}

#[test]
fn a_command_round_trips_and_passes_for_its_agent() {
    let me = agent();
    let c = command(&me, 60_000);
    let bytes = encode(&c).expect("encode");
    let back: Command = decode(&bytes).expect("decode");
    assert_eq!(back, c);
    assert_eq!(back.validate(NOW, &me, &tenant("acme")), Ok(()));
    assert_eq!(back.nats_subject(), format!("fleet.cmd.acme.{me}"));
    assert_eq!(peek_run(&bytes), Some(run()));
}

#[test]
fn a_command_for_another_agent_or_tenant_is_misaddressed() {
    let me = agent();
    let other = agent();
    let c = command(&other, 60_000);
    let refusal = c.validate(NOW, &me, &tenant("acme")).expect_err("refused");
    assert!(matches!(refusal, CommandRefusal::Misaddressed { .. }));
    assert_eq!(refusal.reason(), RefusalReason::Misaddressed);
    let mine = command(&me, 60_000);
    assert!(matches!(
        mine.validate(NOW, &me, &tenant("globex")),
        Err(CommandRefusal::Misaddressed { .. })
    ));
}

#[test]
fn an_expired_command_is_refused_and_the_ledger_keeps_it_past_the_skew() {
    let me = agent();
    let c = command(&me, 60_000);
    assert_eq!(
        c.validate(NOW.plus_millis(60_000), &me, &tenant("acme")),
        Ok(())
    );
    let late = NOW.plus_millis(60_001);
    let refusal = c.validate(late, &me, &tenant("acme")).expect_err("expired");
    assert!(matches!(refusal, CommandRefusal::Expired { .. }));
    assert_eq!(refusal.reason(), RefusalReason::Expired);
    assert_eq!(
        c.keep_in_ledger_until(),
        NOW.plus_millis(60_000 + MAX_CLOCK_SKEW_MS)
    );
}

#[test]
fn a_command_from_beyond_the_clock_skew_bound_is_refused() {
    let me = agent();
    let c = command(&me, 60_000);
    // The agent's clock is behind the controller's by exactly the bound: still accepted.
    let behind = NOW.plus_millis(-MAX_CLOCK_SKEW_MS);
    assert_eq!(c.validate(behind, &me, &tenant("acme")), Ok(()));
    let refusal = c
        .validate(behind.plus_millis(-1), &me, &tenant("acme"))
        .expect_err("skew");
    assert!(matches!(refusal, CommandRefusal::FromTheFuture { .. }));
    assert_eq!(refusal.reason(), RefusalReason::ClockSkew);
}

#[test]
fn malformed_commands_are_refused_by_encode_decode_and_validate() {
    let me = agent();
    // Longer than the lifetime bound.
    let long = command(&me, MAX_COMMAND_LIFETIME_MS + 1);
    assert!(matches!(encode(&long), Err(WireError::Malformed(..))));
    let refusal = long.validate(NOW, &me, &tenant("acme")).expect_err("long");
    assert!(matches!(refusal, CommandRefusal::Malformed(_)));
    assert_eq!(refusal.reason(), RefusalReason::Invalid);
    // Expiring before it was issued.
    assert!(matches!(
        encode(&command(&me, 0)),
        Err(WireError::Malformed(..))
    ));
    // Neither a runbook nor a bundle.
    let mut empty = command(&me, 60_000);
    let CommandKind::RunRunbook(r) = &mut empty.kind else {
        unreachable!("a run command")
    };
    r.runbook = None;
    assert!(matches!(encode(&empty), Err(WireError::Malformed(..))));
    // A param value with a newline (a log line or a table cell must stay one line).
    let mut nl = command(&me, 60_000);
    let CommandKind::RunRunbook(r) = &mut nl.kind else {
        unreachable!("a run command")
    };
    r.params.insert("x".into(), "a\nb".into());
    assert!(matches!(encode(&nl), Err(WireError::Malformed(..))));
    // A runbook name that is not a name.
    let json = serde_json::to_string(&command(&me, 60_000))
        .expect("json")
        .replace("restart-spooler", "../../etc");
    assert!(matches!(
        decode::<Command>(json.as_bytes()),
        Err(WireError::Malformed(..))
    ));
    // Not a command at all; the run id cannot be peeked either.
    assert!(matches!(
        decode::<Command>(b"{\"v\":1,\"run\":\"x\"}"),
        Err(WireError::Unparsable { .. })
    ));
    assert_eq!(peek_run(b"{\"v\":1,\"run\":\"x\"}"), None);
}

#[test]
fn a_bundle_travels_as_base64_up_to_its_cap() {
    let me = agent();
    let mut c = command(&me, 60_000);
    let CommandKind::RunRunbook(r) = &mut c.kind else {
        unreachable!("a run command")
    };
    r.bundle = Some(Bundle::new(vec![0xAB; MAX_BUNDLE_BYTES]));
    let bytes = encode(&c).expect("a bundle at its cap fits the command cap");
    assert!(bytes.len() <= command::MAX_COMMAND_BYTES);
    let back: Command = decode(&bytes).expect("decode");
    let CommandKind::RunRunbook(r) = &back.kind else {
        unreachable!("a run command")
    };
    assert_eq!(
        r.bundle.as_ref().map(|b| b.bytes().len()),
        Some(MAX_BUNDLE_BYTES)
    );
    let CommandKind::RunRunbook(r) = &mut c.kind else {
        unreachable!("a run command")
    };
    r.bundle = Some(Bundle::new(vec![0xAB; MAX_BUNDLE_BYTES + 1]));
    assert!(matches!(encode(&c), Err(WireError::Malformed(..))));
}

#[test]
fn oversized_bytes_are_refused_before_parsing_and_other_versions_as_such() {
    let big = vec![b' '; command::MAX_COMMAND_BYTES + 1];
    assert!(matches!(
        decode::<Command>(&big),
        Err(WireError::TooLarge { .. })
    ));
    let me = agent();
    let v2 = serde_json::to_string(&command(&me, 60_000))
        .expect("json")
        .replace("\"v\":1", "\"v\":2");
    assert_eq!(
        decode::<Command>(v2.as_bytes()),
        Err(WireError::UnsupportedVersion {
            kind: "command",
            found: 2
        })
    );
    // A field added by a newer sender within version 1 is ignored.
    let extra = serde_json::to_string(&command(&me, 60_000))
        .expect("json")
        .replacen('{', "{\"later\":true,", 1);
    assert!(decode::<Command>(extra.as_bytes()).is_ok());
}

#[test]
fn results_have_distinct_msg_ids_for_running_and_final() {
    let me = agent();
    let running = RunResult::new(run(), tenant("acme"), me.clone(), RunStatus::Running);
    let mut done = RunResult::new(run(), tenant("acme"), me.clone(), RunStatus::Succeeded);
    assert_eq!(done.msg_id(), format!("{}.{me}", run()));
    assert_eq!(running.msg_id(), format!("{}.{me}.running", run()));
    assert_eq!(done.nats_subject(), format!("fleet.res.acme.{me}"));
    done.started_at = Some(NOW);
    done.finished_at = Some(NOW.plus_millis(1200));
    done.steps = vec![StepSummary {
        name: "stop".into(),
        status: StepStatus::Ok,
        detail: String::new(),
    }];
    let back: RunResult = decode(&encode(&done).expect("encode")).expect("decode");
    assert_eq!(back, done);
    let refused = RunResult::new(
        run(),
        tenant("acme"),
        me,
        RunStatus::Refused {
            reason: RefusalReason::Replayed,
        },
    );
    let json = String::from_utf8(encode(&refused).expect("encode")).expect("utf8");
    assert!(
        json.contains("\"status\":{\"state\":\"refused\",\"reason\":\"replayed\"}"),
        "{json}"
    );
}

#[test]
fn result_bounds_hold() {
    let me = agent();
    let mut r = RunResult::new(run(), tenant("acme"), me, RunStatus::Failed);
    let step = StepSummary {
        name: "s".repeat(result::MAX_STEP_NAME_LEN),
        status: StepStatus::Failed,
        detail: "d".repeat(result::MAX_STEP_DETAIL_LEN),
    };
    r.steps = vec![step; result::MAX_STEPS];
    r.error = Some("e".repeat(result::MAX_ERROR_LEN));
    let bytes = encode(&r).expect("a result at every bound fits its cap");
    assert!(bytes.len() <= result::MAX_RESULT_BYTES);
    r.steps.push(r.steps[0].clone());
    assert!(matches!(encode(&r), Err(WireError::Malformed(..))));
    r.steps.pop();
    r.error = Some("two\nlines".into());
    assert!(matches!(encode(&r), Err(WireError::Malformed(..))));
    r.error = Some(one_line("two\nlines", 5));
    assert_eq!(r.error.as_deref(), Some("two l"));
    r.finished_at = Some(NOW);
    r.started_at = Some(NOW.plus_millis(1));
    assert!(matches!(encode(&r), Err(WireError::Malformed(..))));
}

#[test]
fn heartbeat_bounds_hold() {
    let me = agent();
    let mut hb = Heartbeat::new(tenant("acme"), me.clone(), NOW, 1, 30_000);
    hb.hostname = "db-1".into();
    hb.os = "linux".into();
    hb.tags.insert("role".into(), "db".into());
    let mut disk = PluginInfo::new("disk-encryption", "1.0.0", "a".repeat(64));
    disk.hipaa = vec!["164.312(a)(2)(iv)".into()];
    disk.cmmc = vec!["SC.L2-3.13.16".into()];
    hb.plugins.push(disk);
    hb.open_incidents = 1;
    hb.failing = vec!["disk-space".into()];
    let back: Heartbeat = decode(&encode(&hb).expect("encode")).expect("decode");
    assert_eq!(back, hb);
    assert_eq!(hb.nats_subject(), format!("fleet.hb.acme.{me}"));
    // Every bound at once still fits the cap.
    let mut full = hb.clone();
    full.hostname = "h".repeat(heartbeat::MAX_HOSTNAME_LEN);
    full.tags = (0..heartbeat::MAX_TAGS)
        .map(|i| {
            (
                format!("{i:0>width$}", width = heartbeat::MAX_TAG_KEY_LEN),
                "v".repeat(heartbeat::MAX_TAG_VALUE_LEN),
            )
        })
        .collect();
    full.plugins = (0..heartbeat::MAX_PLUGINS)
        .map(|i| {
            PluginInfo::new(
                format!("{i:0>width$}", width = heartbeat::MAX_PLUGIN_NAME_LEN),
                "v".repeat(heartbeat::MAX_VERSION_LEN),
                "f".repeat(64),
            )
        })
        .collect();
    full.failing = (0..heartbeat::MAX_FAILING)
        .map(|i| format!("{i:0>width$}", width = heartbeat::MAX_FAILING_NAME_LEN))
        .collect();
    // The compliance references at their bound, spread over the first plugins.
    for i in 0..heartbeat::MAX_COMPLIANCE_REFS {
        full.plugins[i % 8].hipaa.push(format!(
            "164.{i:0>width$}",
            width = heartbeat::MAX_COMPLIANCE_REF_LEN - 4
        ));
    }
    full.windows = Some(
        (0..heartbeat::MAX_WINDOWS)
            .map(|i| WindowInfo {
                name: format!("{i:0>width$}", width = heartbeat::MAX_WINDOW_NAME_LEN),
                cron: "*".repeat(heartbeat::MAX_WINDOW_CRON_LEN),
                timezone: "z".repeat(heartbeat::MAX_WINDOW_TIMEZONE_LEN),
                duration_secs: heartbeat::MAX_WINDOW_SECS,
            })
            .collect(),
    );
    let bytes = encode(&full).expect("every bound fits");
    assert!(
        bytes.len() <= heartbeat::MAX_HEARTBEAT_BYTES,
        "{}",
        bytes.len()
    );
    for bad in [
        {
            let mut h = hb.clone();
            h.interval_ms = heartbeat::MAX_HEARTBEAT_INTERVAL_MS + 1;
            h
        },
        {
            let mut h = hb.clone();
            h.tags.insert("a b".into(), "x".into());
            h
        },
        {
            let mut h = hb.clone();
            h.plugins[0].sha256 = "xyz".into();
            h
        },
        {
            let mut h = hb.clone();
            h.plugins[0].hipaa.push("164.312 (b); drop".into());
            h
        },
        {
            let mut h = hb.clone();
            h.plugins[0].cmmc = (0..=heartbeat::MAX_COMPLIANCE_REFS)
                .map(|i| format!("AC.L1-{i}"))
                .collect();
            h
        },
        {
            let mut h = hb.clone();
            h.failing = (0..=heartbeat::MAX_FAILING)
                .map(|i| i.to_string())
                .collect();
            h
        },
        {
            let mut h = hb.clone();
            h.failing = vec!["disk\u{1b}[31m".into()];
            h
        },
        {
            let mut h = hb.clone();
            h.failing = vec![String::new()];
            h
        },
    ] {
        assert!(
            matches!(encode(&bad), Err(WireError::Malformed(..))),
            "{bad:?}"
        );
    }
}

#[test]
fn events_round_trip_with_their_msg_id() {
    let me = agent();
    let mut e = AgentEvent::new(
        tenant("acme"),
        me.clone(),
        42,
        NOW,
        EventKind::Escalation,
        "disk-space",
    );
    e.detail = "remediation failed twice\nsee history".into();
    let back: AgentEvent = decode(&encode(&e).expect("encode")).expect("decode");
    assert_eq!(back, e);
    assert_eq!(e.msg_id(), format!("{me}.evt.42"));
    assert_eq!(e.nats_subject(), format!("fleet.evt.acme.{me}"));
    e.subject = String::new();
    assert!(matches!(encode(&e), Err(WireError::Malformed(..))));
}

#[test]
fn an_event_s_check_and_tickets_travel_and_are_absent_when_empty() {
    let me = agent();
    let mut e = AgentEvent::new(
        tenant("acme"),
        me,
        7,
        NOW,
        EventKind::IncidentOpened,
        "config-drift",
    );
    // Without them the JSON is what an older controller reads: neither key is there.
    let plain = String::from_utf8(encode(&e).expect("encode")).expect("json");
    assert!(
        !plain.contains("\"check\"") && !plain.contains("\"tickets\""),
        "{plain}"
    );
    // An older agent's event (no such keys) reads with them empty.
    let back: AgentEvent = decode(plain.as_bytes()).expect("decode");
    assert!(back.check.is_empty() && back.tickets.is_empty());
    e.check = "builtin:drift".into();
    e.tickets.push(EventTicket {
        incident: "config-drift-1".into(),
        system: "ticket-connectwise".into(),
        id: "CW-4711".into(),
        status: "open".into(),
        resolve_by: Some("2026-11-02T10:00:00Z".into()),
    });
    let back: AgentEvent = decode(&encode(&e).expect("encode")).expect("decode");
    assert_eq!(back, e);
    let mut bad = e.clone();
    bad.tickets[0].id = String::new();
    assert!(matches!(encode(&bad), Err(WireError::Malformed(..))));
    let mut bad = e.clone();
    bad.tickets = vec![e.tickets[0].clone(); event::MAX_EVENT_TICKETS + 1];
    assert!(matches!(encode(&bad), Err(WireError::Malformed(..))));
    let mut bad = e;
    bad.check = "x\u{1b}[31m".into();
    assert!(matches!(encode(&bad), Err(WireError::Malformed(..))));
}

#[test]
fn a_patch_summary_round_trips_and_is_absent_when_never_scanned() {
    let me = agent();
    let mut hb = Heartbeat::new(tenant("acme"), me, NOW, 1, 30_000);
    // Never scanned: no `patches` key at all, so an older controller sees the heartbeat it
    // always saw, and a heartbeat without the key (an older agent's) decodes to `None`.
    let json = String::from_utf8(encode(&hb).expect("encode")).expect("utf8");
    assert!(!json.contains("patches"), "{json}");
    let back: Heartbeat = decode(json.as_bytes()).expect("decode");
    assert_eq!(back.patches, None);

    hb.patches = Some(PatchSummary {
        pending: 12,
        security: 3,
        reboot_required: true,
        scanned_at: NOW.plus_millis(-60_000),
    });
    let json = String::from_utf8(encode(&hb).expect("encode")).expect("utf8");
    assert!(
        json.contains(
            "\"patches\":{\"pending\":12,\"security\":3,\"reboot_required\":true,\"scanned_at\":1764589940000}"
        ),
        "{json}"
    );
    let back: Heartbeat = decode(json.as_bytes()).expect("decode");
    assert_eq!(back, hb);
    // Nothing pending after a scan is a summary of zeros, not `None`.
    hb.patches = Some(PatchSummary {
        pending: 0,
        security: 0,
        reboot_required: false,
        scanned_at: NOW,
    });
    let back: Heartbeat = decode(&encode(&hb).expect("encode")).expect("decode");
    assert_eq!(back.patches.map(|p| p.pending), Some(0));
}

#[test]
fn maintenance_windows_round_trip_are_absent_from_an_older_agent_and_bounded() {
    let mut hb = Heartbeat::new(tenant("acme"), agent(), NOW, 1, 30_000);
    // An older agent's heartbeat has no key: `None` (unknown), not "no windows".
    let json = String::from_utf8(encode(&hb).expect("encode")).expect("utf8");
    assert!(!json.contains("windows"), "{json}");
    assert_eq!(
        decode::<Heartbeat>(json.as_bytes())
            .expect("decode")
            .windows,
        None
    );
    let nightly = WindowInfo {
        name: "patch-night".into(),
        cron: "0 2 * * SAT".into(),
        timezone: "Europe/Berlin".into(),
        duration_secs: 4 * 3600,
    };
    hb.windows = Some(vec![nightly.clone()]);
    let back: Heartbeat = decode(&encode(&hb).expect("encode")).expect("decode");
    assert_eq!(back, hb);
    hb.windows = Some(Vec::new());
    let back: Heartbeat = decode(&encode(&hb).expect("encode")).expect("decode");
    assert_eq!(back.windows, Some(Vec::new()), "none is not unknown");
    let too_many = vec![nightly.clone(); heartbeat::MAX_WINDOWS + 1];
    for (field, windows) in [
        ("windows", too_many),
        (
            "windows.name",
            vec![WindowInfo {
                name: "../x".into(),
                ..nightly.clone()
            }],
        ),
        (
            "windows.cron",
            vec![WindowInfo {
                cron: "0 2\n* * *".into(),
                ..nightly.clone()
            }],
        ),
        (
            "windows.duration_secs",
            vec![WindowInfo {
                duration_secs: 0,
                ..nightly.clone()
            }],
        ),
        (
            "windows.duration_secs",
            vec![WindowInfo {
                duration_secs: heartbeat::MAX_WINDOW_SECS + 1,
                ..nightly.clone()
            }],
        ),
    ] {
        hb.windows = Some(windows);
        match encode(&hb) {
            Err(WireError::Malformed(m, _)) => assert_eq!(m.field, field, "{m}"),
            other => panic!("{field}: {other:?}"),
        }
        let json = serde_json::to_vec(&hb).expect("json");
        assert!(matches!(
            decode::<Heartbeat>(&json),
            Err(WireError::Malformed(..))
        ));
    }
}

#[test]
fn patch_summary_bounds_hold() {
    let me = agent();
    let mut hb = Heartbeat::new(tenant("acme"), me, NOW, 1, 30_000);
    let at_bound = PatchSummary {
        pending: heartbeat::MAX_PATCHES_PENDING,
        security: heartbeat::MAX_PATCHES_PENDING,
        reboot_required: false,
        scanned_at: NOW,
    };
    hb.patches = Some(at_bound);
    assert!(encode(&hb).is_ok(), "every bound at once is accepted");
    for (field, bad) in [
        (
            "patches.pending",
            PatchSummary {
                pending: heartbeat::MAX_PATCHES_PENDING + 1,
                security: 0,
                ..at_bound
            },
        ),
        (
            "patches.security",
            PatchSummary {
                pending: 2,
                security: 3,
                ..at_bound
            },
        ),
        (
            "patches.scanned_at",
            PatchSummary {
                scanned_at: UnixMillis(0),
                ..at_bound
            },
        ),
    ] {
        hb.patches = Some(bad);
        match encode(&hb) {
            Err(WireError::Malformed(m, _)) => assert_eq!(m.field, field, "{m}"),
            other => panic!("{bad:?}: {other:?}"),
        }
        // A peer's bytes with the same summary are refused on decode too.
        let json = serde_json::to_vec(&hb).expect("json");
        assert!(
            matches!(decode::<Heartbeat>(&json), Err(WireError::Malformed(..))),
            "{bad:?}"
        );
    }
}
