//! The scheduler's rules against a hand-driven wall clock.

use super::config::{ScheduleConfig, WindowConfig};
use super::*;
use crate::AutomationConfig;
use crate::duration::HumanDuration;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 10, h, m, s)
        .single()
        .expect("valid time")
}

fn cfg(name: &str, cron: &str) -> ScheduleConfig {
    ScheduleConfig {
        name: name.into(),
        runbook: "rb.toml".into(),
        params: Default::default(),
        cron: cron.into(),
        timezone: "UTC".into(),
        jitter: HumanDuration::secs(0),
        maintenance: false,
        expected_duration: None,
        windows: vec![],
        dry_run: false,
        window_slot_param: None,
    }
}

fn window(name: &str, cron: &str, dur: &str) -> WindowConfig {
    WindowConfig {
        name: name.into(),
        cron: cron.into(),
        duration: HumanDuration::parse(dur).expect("duration"),
        timezone: "UTC".into(),
    }
}

fn scheduler(
    configs: Vec<ScheduleConfig>,
    windows: Vec<WindowConfig>,
    persisted: &HashMap<String, ScheduleState>,
    now: DateTime<Utc>,
) -> Scheduler {
    let auto = AutomationConfig {
        schedules: configs,
        windows,
        monitors: vec![],
    }
    .compile(Path::new("/etc/warden"))
    .expect("valid config");
    Scheduler::new(auto.schedules, auto.windows, "host-a", persisted, now)
}

fn fired(d: &[Decision]) -> Vec<(DateTime<Utc>, u64)> {
    d.iter()
        .filter_map(|d| match d {
            Decision::Fire { slot, missed, .. } => Some((*slot, *missed)),
            _ => None,
        })
        .collect()
}

#[test]
fn fires_at_its_slot_and_not_before() {
    let mut s = scheduler(
        vec![cfg("hourly", "0 * * * *")],
        vec![],
        &HashMap::new(),
        at(10, 30, 0),
    );
    assert_eq!(s.next_due(), Some(at(11, 0, 0)));
    assert!(s.poll(at(10, 59, 59)).is_empty());
    assert_eq!(fired(&s.poll(at(11, 0, 0))), vec![(at(11, 0, 0), 0)]);
    assert!(s.poll(at(11, 0, 30)).is_empty(), "a slot fires once");
    assert_eq!(s.next_due(), Some(at(12, 0, 0)));
    assert_eq!(
        s.state("hourly").and_then(|st| st.last_slot),
        Some(at(11, 0, 0))
    );
}

#[test]
fn a_new_schedule_does_not_backfill() {
    let mut s = scheduler(
        vec![cfg("hourly", "0 * * * *")],
        vec![],
        &HashMap::new(),
        at(10, 30, 0),
    );
    assert!(s.poll(at(10, 30, 0)).is_empty());
}

#[test]
fn missed_runs_after_downtime_coalesce_into_one() {
    let persisted = HashMap::from([(
        "hourly".to_string(),
        ScheduleState {
            last_slot: Some(at(8, 0, 0)),
            last_run_id: Some("r1".into()),
        },
    )]);
    let mut s = scheduler(
        vec![cfg("hourly", "0 * * * *")],
        vec![],
        &persisted,
        at(12, 30, 0),
    );
    // Slots 09, 10, 11 and 12 passed while the agent was down: one run, for 12:00.
    let d = s.poll(at(12, 30, 0));
    assert_eq!(fired(&d), vec![(at(12, 0, 0), 3)]);
    s.finished("hourly", Some("r2"));
    assert!(s.poll(at(12, 30, 1)).is_empty());
    assert_eq!(s.next_due(), Some(at(13, 0, 0)));
}

#[test]
fn a_restart_does_not_refire_the_consumed_slot() {
    let mut first = scheduler(
        vec![cfg("hourly", "0 * * * *")],
        vec![],
        &HashMap::new(),
        at(10, 30, 0),
    );
    assert_eq!(fired(&first.poll(at(11, 0, 0))).len(), 1);
    let saved = HashMap::from([("hourly".to_string(), first.state("hourly").expect("state"))]);
    let mut second = scheduler(
        vec![cfg("hourly", "0 * * * *")],
        vec![],
        &saved,
        at(11, 0, 5),
    );
    assert!(second.poll(at(11, 0, 5)).is_empty());
    assert_eq!(second.next_due(), Some(at(12, 0, 0)));
}

#[test]
fn a_forward_wall_clock_jump_fires_once_not_a_storm() {
    let mut s = scheduler(
        vec![cfg("minutely", "* * * * *")],
        vec![],
        &HashMap::new(),
        at(9, 59, 30),
    );
    assert_eq!(fired(&s.poll(at(10, 0, 0))).len(), 1);
    s.finished("minutely", None);
    // The clock jumps five hours ahead: 300 slots passed.
    let d = s.poll(at(15, 0, 10));
    assert_eq!(fired(&d), vec![(at(15, 0, 0), 299)]);
    s.finished("minutely", None);
    for sec in 11..60 {
        assert!(s.poll(at(15, 0, sec)).is_empty());
    }
    assert_eq!(fired(&s.poll(at(15, 1, 0))), vec![(at(15, 1, 0), 0)]);
}

#[test]
fn a_small_backward_jump_replays_nothing() {
    let mut s = scheduler(
        vec![cfg("hourly", "0 * * * *")],
        vec![],
        &HashMap::new(),
        at(11, 30, 0),
    );
    assert_eq!(fired(&s.poll(at(12, 0, 0))).len(), 1);
    s.finished("hourly", None);
    // NTP steps the clock back five minutes and time runs over 12:00 again.
    for (m, sec) in [(55, 0), (59, 59), (0, 0), (0, 1), (30, 0)] {
        let h = if m >= 55 { 11 } else { 12 };
        assert!(s.poll(at(h, m, sec)).is_empty(), "{h}:{m}:{sec}");
    }
    assert_eq!(fired(&s.poll(at(13, 0, 0))), vec![(at(13, 0, 0), 0)]);
}

#[test]
fn a_large_backward_jump_reanchors_and_fires_each_slot_once() {
    let mut s = scheduler(
        vec![cfg("hourly", "0 * * * *")],
        vec![],
        &HashMap::new(),
        at(11, 30, 0),
    );
    assert_eq!(fired(&s.poll(at(12, 0, 0))).len(), 1);
    s.finished("hourly", None);
    // The clock goes back two hours (it was wrong before).
    let d = s.poll(at(10, 5, 0));
    assert!(
        matches!(d.as_slice(), [Decision::ClockWentBack { last_slot, .. }] if *last_slot == at(12, 0, 0))
    );
    assert_eq!(s.next_due(), Some(at(11, 0, 0)));
    let mut runs = 0;
    let mut t = at(10, 5, 0);
    while t <= at(12, 59, 0) {
        let f = fired(&s.poll(t));
        runs += f.len();
        for _ in f {
            s.finished("hourly", None);
        }
        t += TimeDelta::seconds(30);
    }
    assert_eq!(runs, 2, "11:00 and 12:00, once each");
    assert!(
        !s.poll(at(12, 59, 30))
            .iter()
            .any(|d| matches!(d, Decision::ClockWentBack { .. }))
    );
}

#[test]
fn a_slot_due_while_the_previous_run_is_going_is_skipped_not_queued() {
    let mut s = scheduler(
        vec![cfg("minutely", "* * * * *")],
        vec![],
        &HashMap::new(),
        at(9, 59, 30),
    );
    assert_eq!(fired(&s.poll(at(10, 0, 0))).len(), 1);
    for m in [1, 2] {
        let d = s.poll(at(10, m, 0));
        assert!(
            matches!(d.as_slice(), [Decision::Skip { reason: SkipReason::StillRunning { since }, .. }] if *since == at(10, 0, 0)),
            "{d:?}"
        );
    }
    s.finished("minutely", Some("r1"));
    assert!(
        s.poll(at(10, 2, 30)).is_empty(),
        "skipped slots are not run late"
    );
    assert_eq!(fired(&s.poll(at(10, 3, 0))), vec![(at(10, 3, 0), 0)]);
}

fn maintenance(cron: &str, expected: &str) -> ScheduleConfig {
    ScheduleConfig {
        maintenance: true,
        expected_duration: Some(HumanDuration::parse(expected).expect("duration")),
        ..cfg("patch", cron)
    }
}

#[test]
fn a_maintenance_run_that_would_end_after_the_window_is_not_started() {
    // Window 02:00-04:00; a run at 03:30 expected to take 1h would end at 04:30.
    let w = vec![window("night", "0 2 * * *", "2h")];
    let mut s = scheduler(
        vec![maintenance("30 3 * * *", "1h")],
        w.clone(),
        &HashMap::new(),
        at(1, 0, 0),
    );
    let d = s.poll(at(3, 30, 0));
    match d.as_slice() {
        [
            Decision::Skip {
                reason:
                    SkipReason::WouldOverrunWindow {
                        window,
                        closes_at,
                        would_end_at,
                    },
                ..
            },
        ] => {
            assert_eq!(window, "night");
            assert_eq!(*closes_at, at(4, 0, 0));
            assert_eq!(*would_end_at, at(4, 30, 0));
        }
        other => panic!("expected a window skip, got {other:?}"),
    }
    assert!(!s.is_running("patch"));

    let mut fits = scheduler(
        vec![maintenance("30 3 * * *", "30m")],
        w.clone(),
        &HashMap::new(),
        at(1, 0, 0),
    );
    assert!(matches!(
        fits.poll(at(3, 30, 0)).as_slice(),
        [Decision::Fire { window: Some(w), window_slot: Some(slot), .. }]
            if w == "night" && slot == "night@2026-03-10T02:00:00Z"
    ));

    let mut outside = scheduler(
        vec![maintenance("0 5 * * *", "10m")],
        w,
        &HashMap::new(),
        at(1, 0, 0),
    );
    assert!(matches!(
        outside.poll(at(5, 0, 0)).as_slice(),
        [Decision::Skip {
            reason: SkipReason::NoWindowOpen,
            ..
        }]
    ));
}

#[test]
fn windows_are_read_in_their_time_zone() {
    // 02:00 in Berlin is 01:00 UTC in March before DST (CET, UTC+1).
    let mut w = window("night", "0 2 * * *", "1h");
    w.timezone = "Europe/Berlin".into();
    let auto = AutomationConfig {
        schedules: vec![],
        windows: vec![w],
        monitors: vec![],
    }
    .compile(Path::new("."))
    .expect("valid");
    let mw = &auto.windows[0];
    assert_eq!(mw.open_at(at(1, 30, 0)), Some((at(1, 0, 0), at(2, 0, 0))));
    assert_eq!(mw.open_at(at(2, 30, 0)), None);
    assert_eq!(mw.open_at(at(0, 59, 59)), None);
}

#[test]
fn cron_with_seconds_and_time_zone() {
    let mut c = cfg("tz", "0 0 3 * * *");
    c.timezone = "America/New_York".into();
    let s = scheduler(vec![c], vec![], &HashMap::new(), at(0, 0, 0));
    // 03:00 EDT (DST began 2026-03-08) is 07:00 UTC.
    assert_eq!(s.next_due(), Some(at(7, 0, 0)));
}

#[test]
fn jitter_is_stable_per_host_bounded_and_spreads_a_fleet() {
    let max = Duration::from_secs(300);
    let offsets: Vec<Duration> = (0..200)
        .map(|i| jitter_offset(&format!("host-{i}"), "patch", max))
        .collect();
    assert!(offsets.iter().all(|o| *o <= max));
    for (i, o) in offsets.iter().enumerate() {
        assert_eq!(
            *o,
            jitter_offset(&format!("host-{i}"), "patch", max),
            "stable"
        );
    }
    let mut distinct = offsets.clone();
    distinct.sort();
    distinct.dedup();
    assert!(
        distinct.len() > 150,
        "only {} distinct offsets",
        distinct.len()
    );
    let spread = distinct[distinct.len() - 1] - distinct[0];
    assert!(spread > Duration::from_secs(240), "spread {spread:?}");
    assert_eq!(jitter_offset("h", "patch", Duration::ZERO), Duration::ZERO);

    let mut c = cfg("patch", "0 * * * *");
    c.jitter = HumanDuration::secs(300);
    let mut s = scheduler(vec![c], vec![], &HashMap::new(), at(10, 30, 0));
    let due =
        at(11, 0, 0) + TimeDelta::from_std(jitter_offset("host-a", "patch", max)).expect("small");
    assert_eq!(s.next_due(), Some(due));
    if due > at(11, 0, 0) {
        assert!(s.poll(due - TimeDelta::milliseconds(1)).is_empty());
    }
    assert_eq!(fired(&s.poll(due)), vec![(at(11, 0, 0), 0)]);
}

#[test]
fn invalid_entries_are_refused_with_a_clear_error() {
    let check = |text: &str, needle: &str| {
        let err = AutomationConfig::parse(text, Path::new("agent.toml"))
            .and_then(|c| c.compile(Path::new(".")))
            .expect_err(text)
            .to_string();
        assert!(err.contains(needle), "`{err}` should mention `{needle}`");
    };
    let base = "[[schedule]]\nname = \"s\"\nrunbook = \"r.toml\"\n";
    check(
        &format!("{base}cron = \"0 * * * *\"\ntimezone = \"Mars/Olympus\""),
        "unknown time zone `Mars/Olympus`",
    );
    check(
        &format!("{base}cron = \"61 * * * *\""),
        "cron expression `61 * * * *`",
    );
    check(
        &format!("{base}cron = \"0 * * * *\"\nmaintenance = true\nexpected-duration = \"1h\""),
        "needs at least one [[maintenance-window]]",
    );
    check(
        &format!("{base}cron = \"0 * * * *\"\nmaintenance = true"),
        "needs `expected-duration`",
    );
    check(
        &format!(
            "{base}cron = \"0 * * * *\"\nmaintenance = true\nexpected-duration = \"3h\"\n[[maintenance-window]]\nname = \"w\"\ncron = \"0 2 * * *\"\nduration = \"2h\""
        ),
        "could never start",
    );
    check(
        &format!("{base}cron = \"0 * * * *\"\ncolour = \"blue\""),
        "unknown field `colour`",
    );
    check(
        &format!("{base}cron = \"0 * * * *\"\njitter = \"2d\""),
        "more than 1d",
    );
    check(
        &format!("{base}cron = \"0 * * * *\"\n{base}cron = \"0 * * * *\""),
        "used more than once",
    );
    check(
        &format!("{base}cron = \"0 * * * *\"\nparams = {{ list = [1] }}"),
        "parameter `list`",
    );
    check(
        "[[maintenance-window]]\nname = \"w\"\ncron = \"0 2 * * *\"\nduration = \"8d\"",
        "at most 7d",
    );
    check(
        "[[monitor]]\nname = \"m\"\nplugin = \"disk-usage\"\nfailures-to-trigger = 0",
        "at least 1",
    );
}

#[test]
fn a_clock_corrected_backwards_before_the_first_firing_does_not_stall() {
    // Started with a clock two hours fast, then NTP corrected it.
    let mut s = scheduler(
        vec![cfg("hourly", "0 * * * *")],
        vec![],
        &HashMap::new(),
        at(12, 30, 0),
    );
    assert_eq!(s.next_due(), Some(at(13, 0, 0)));
    assert!(s.poll(at(10, 30, 0)).is_empty());
    assert_eq!(s.next_due(), Some(at(11, 0, 0)));
    assert_eq!(fired(&s.poll(at(11, 0, 0))), vec![(at(11, 0, 0), 0)]);
}

#[test]
fn dst_transitions_fire_once() {
    let mut c = cfg("dst", "30 2 * * *");
    c.timezone = "Europe/Berlin".into();
    let day = |m: u32, d: u32, h: u32, min: u32| {
        Utc.with_ymd_and_hms(2026, m, d, h, min, 0)
            .single()
            .expect("valid")
    };
    let mut s = scheduler(vec![c], vec![], &HashMap::new(), day(3, 28, 12, 0));
    let mut slots = Vec::new();
    let mut now = day(3, 28, 12, 0);
    while now < day(3, 31, 12, 0) {
        slots.extend(fired(&s.poll(now)).into_iter().map(|(slot, _)| slot));
        s.finished("dst", None);
        now += TimeDelta::minutes(5);
    }
    // 02:30 does not exist on March 29 (02:00 CET -> 03:00 CEST): it fires at 03:00 CEST.
    assert_eq!(
        slots,
        vec![day(3, 29, 1, 0), day(3, 30, 0, 30), day(3, 31, 0, 30)]
    );
    let mut c = cfg("dst", "30 2 * * *");
    c.timezone = "Europe/Berlin".into();
    let mut s = scheduler(vec![c], vec![], &HashMap::new(), day(10, 24, 12, 0));
    let mut slots = Vec::new();
    let mut now = day(10, 24, 12, 0);
    while now < day(10, 27, 12, 0) {
        slots.extend(fired(&s.poll(now)).into_iter().map(|(slot, _)| slot));
        s.finished("dst", None);
        now += TimeDelta::minutes(5);
    }
    // 02:30 happens twice on October 25: it fires at the first (CEST) only.
    assert_eq!(
        slots,
        vec![day(10, 25, 0, 30), day(10, 26, 1, 30), day(10, 27, 1, 30)]
    );
}
