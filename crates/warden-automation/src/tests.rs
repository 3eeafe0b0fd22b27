//! The drivers on tokio's paused clock with a scripted executor: tests await the events the
//! drivers report, never a wall-clock sleep.

use super::*;
use crate::monitor::{EscalationReason, MonitorState};
use crate::schedule::SkipReason;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;
use warden_core::RunStatus;
use warden_core::report::CheckStatus;

/// Wall clock = a base + tokio's (paused) elapsed time + manual jumps.
struct TestClock {
    base: DateTime<Utc>,
    start: tokio::time::Instant,
    offset: Mutex<TimeDelta>,
}

impl TestClock {
    fn new(base: DateTime<Utc>) -> Arc<TestClock> {
        Arc::new(TestClock {
            base,
            start: tokio::time::Instant::now(),
            offset: Mutex::new(TimeDelta::zero()),
        })
    }
    fn jump(&self, by: TimeDelta) {
        *self.offset.lock().expect("lock") += by;
    }
}

impl WallClock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = TimeDelta::from_std(self.start.elapsed()).expect("small");
        self.base + elapsed + *self.offset.lock().expect("lock")
    }
}

struct Fake {
    events: mpsc::UnboundedSender<AutomationEvent>,
    checks: Mutex<VecDeque<CheckStatus>>,
    check_default: CheckStatus,
    run_time: Duration,
    run_results: Mutex<VecDeque<bool>>,
    launches: Mutex<Vec<RunbookLaunch>>,
    panic_runs: bool,
}

impl Fake {
    fn new(run_time: Duration) -> (Arc<Fake>, mpsc::UnboundedReceiver<AutomationEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let fake = Fake {
            events: tx,
            checks: Mutex::new(VecDeque::new()),
            check_default: CheckStatus::Ok,
            run_time,
            run_results: Mutex::new(VecDeque::new()),
            launches: Mutex::new(Vec::new()),
            panic_runs: false,
        };
        (Arc::new(fake), rx)
    }
    fn with_checks(mut self: Arc<Self>, checks: &[CheckStatus], default: CheckStatus) -> Arc<Self> {
        let f = Arc::get_mut(&mut self).expect("unique");
        f.checks = Mutex::new(checks.iter().copied().collect());
        f.check_default = default;
        self
    }
    fn with_runs(mut self: Arc<Self>, results: &[bool]) -> Arc<Self> {
        Arc::get_mut(&mut self).expect("unique").run_results =
            Mutex::new(results.iter().copied().collect());
        self
    }
    fn launches(&self) -> Vec<RunbookLaunch> {
        self.launches.lock().expect("lock").clone()
    }
}

impl Executor for Fake {
    fn run_runbook(&self, req: RunbookLaunch) -> BoxFuture<Result<RunOutcome, LaunchError>> {
        let mut launches = self.launches.lock().expect("lock");
        launches.push(req);
        let n = launches.len();
        let ok = self
            .run_results
            .lock()
            .expect("lock")
            .pop_front()
            .unwrap_or(true);
        let d = self.run_time;
        let panic = self.panic_runs;
        Box::pin(async move {
            tokio::time::sleep(d).await;
            assert!(!panic, "scripted executor panic");
            Ok(RunOutcome {
                run_id: format!("run-{n}"),
                status: if ok {
                    RunStatus::Succeeded
                } else {
                    RunStatus::Failed
                },
            })
        })
    }
    fn run_check(&self, _req: CheckLaunch) -> BoxFuture<Result<CheckOutcome, LaunchError>> {
        let status = self
            .checks
            .lock()
            .expect("lock")
            .pop_front()
            .unwrap_or(self.check_default);
        Box::pin(async move {
            Ok(CheckOutcome {
                status,
                summary: "scripted".into(),
            })
        })
    }
    fn event(&self, ev: AutomationEvent) {
        let _ = self.events.send(ev);
    }
}

struct Rig {
    _dir: tempfile::TempDir,
    history: Arc<History>,
    audit: Arc<AuditLog>,
    clock: Arc<TestClock>,
    stop: watch::Sender<bool>,
    handle: AutomationHandle,
}

fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, h, m, s)
        .single()
        .expect("valid")
}

fn start(config: &str, base: DateTime<Utc>, fake: Arc<Fake>) -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    let automation = AutomationConfig::parse(config, Path::new("agent.toml"))
        .and_then(|c| c.compile(dir.path()))
        .expect("valid config");
    let history = Arc::new(History::open(dir.path()).expect("history"));
    let audit = Arc::new(AuditLog::new(dir.path()));
    let clock = TestClock::new(base);
    let deps = Deps {
        history: history.clone(),
        audit: audit.clone(),
        clock: clock.clone(),
        host_id: "test-host".into(),
    };
    let (stop, rx) = watch::channel(false);
    let handle = spawn(automation, fake, deps, rx).expect("spawn");
    Rig {
        _dir: dir,
        history,
        audit,
        clock,
        stop,
        handle,
    }
}

impl Rig {
    async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.handle.join().await;
    }
    fn audited(&self, kind: &str) -> usize {
        self.audit
            .tail(10_000)
            .expect("audit")
            .iter()
            .filter(|r| r.event == kind)
            .count()
    }
}

/// The next event matching `pred` (others are collected into `seen`). Virtual time: the bound
/// only stops a broken driver from hanging the test.
async fn expect(
    rx: &mut mpsc::UnboundedReceiver<AutomationEvent>,
    what: &str,
    pred: impl Fn(&AutomationEvent) -> bool,
) -> AutomationEvent {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(3 * 86_400), async {
        while let Some(ev) = rx.recv().await {
            if pred(&ev) {
                return Some(ev);
            }
            seen.push(ev);
        }
        None
    })
    .await;
    match found {
        Ok(Some(ev)) => ev,
        _ => panic!("no {what}; saw {seen:#?}"),
    }
}

/// Schedule events only, in order, until `n` have been seen.
async fn schedule_events(
    rx: &mut mpsc::UnboundedReceiver<AutomationEvent>,
    n: usize,
) -> Vec<AutomationEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        let ev = expect(rx, "a schedule event", |e| {
            matches!(
                e,
                AutomationEvent::ScheduleFired { .. }
                    | AutomationEvent::ScheduleSkipped { .. }
                    | AutomationEvent::ScheduleRunFinished { .. }
                    | AutomationEvent::ScheduleClockWentBack { .. }
            )
        })
        .await;
        out.push(ev);
    }
    out
}

fn fired_slot(e: &AutomationEvent) -> Option<DateTime<Utc>> {
    match e {
        AutomationEvent::ScheduleFired { slot, .. } => Some(*slot),
        _ => None,
    }
}

const EVERY_10S: &str = r#"
[[schedule]]
name = "tick"
runbook = "tick.toml"
cron = "*/10 * * * * *"
params = { level = 2 }
"#;

#[tokio::test(start_paused = true)]
async fn a_schedule_fires_runs_and_persists_its_slot() {
    let (fake, mut rx) = Fake::new(Duration::from_secs(1));
    let rig = start(EVERY_10S, t(0, 0, 3), fake.clone());
    let ev = schedule_events(&mut rx, 3).await;
    assert_eq!(fired_slot(&ev[0]), Some(t(0, 0, 10)));
    assert!(
        matches!(&ev[1], AutomationEvent::ScheduleRunFinished { run_id, status, .. } if run_id == "run-1" && *status == RunStatus::Succeeded)
    );
    assert_eq!(fired_slot(&ev[2]), Some(t(0, 0, 20)));
    let launch = &fake.launches()[0];
    assert!(launch.runbook.ends_with("tick.toml"));
    assert_eq!(launch.params, vec![("level".to_string(), "2".to_string())]);
    assert!(
        matches!(&launch.origin, LaunchOrigin::Schedule { name, slot } if name == "tick" && *slot == t(0, 0, 10))
    );
    let states = rig.history.schedule_states().expect("states");
    assert_eq!(states["tick"].last_slot, Some(t(0, 0, 20)));
    assert_eq!(states["tick"].last_run_id.as_deref(), Some("run-1"));
    assert!(rig.audited("automation.schedule-fired") >= 2);
    assert_eq!(rig.audited("automation.schedule-run-finished"), 1);
    rig.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_run_still_going_makes_the_next_slots_skip() {
    let (fake, mut rx) = Fake::new(Duration::from_secs(25));
    let rig = start(EVERY_10S, t(0, 0, 3), fake.clone());
    let ev = schedule_events(&mut rx, 5).await;
    assert_eq!(fired_slot(&ev[0]), Some(t(0, 0, 10)));
    for (e, slot_s) in ev[1..3].iter().zip([20, 30]) {
        assert!(
            matches!(e, AutomationEvent::ScheduleSkipped { slot, reason: SkipReason::StillRunning { since }, .. } if *slot == t(0, 0, slot_s) && *since == t(0, 0, 10)),
            "{e:?}"
        );
    }
    assert!(matches!(
        &ev[3],
        AutomationEvent::ScheduleRunFinished { .. }
    ));
    assert_eq!(fired_slot(&ev[4]), Some(t(0, 0, 40)));
    assert_eq!(fake.launches().len(), 2);
    rig.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn wall_clock_jumps_cause_no_storm() {
    let (fake, mut rx) = Fake::new(Duration::from_secs(1));
    let rig = start(EVERY_10S, t(0, 0, 3), fake.clone());
    schedule_events(&mut rx, 2).await; // fired 00:00:10, finished
    rig.clock.jump(TimeDelta::days(1));
    let jumped = schedule_events(&mut rx, 1).await;
    let AutomationEvent::ScheduleFired { slot, missed, .. } = &jumped[0] else {
        panic!("{jumped:?}");
    };
    assert!(
        *missed >= 1000 - 1,
        "a day of slots coalesced, missed {missed}"
    );
    assert!(*slot > t(0, 0, 10) + TimeDelta::days(1) - TimeDelta::seconds(10));
    let after = schedule_events(&mut rx, 4).await;
    let slots: Vec<_> = after.iter().filter_map(fired_slot).collect();
    assert_eq!(
        slots,
        vec![
            *slot + TimeDelta::seconds(10),
            *slot + TimeDelta::seconds(20)
        ]
    );

    // Now two hours back: the schedule re-anchors, then fires every 10 s again.
    let before_back = rig.clock.now();
    rig.clock.jump(TimeDelta::hours(-2));
    let back = expect(&mut rx, "clock-went-back", |e| {
        matches!(e, AutomationEvent::ScheduleClockWentBack { .. })
    })
    .await;
    assert!(matches!(
        back,
        AutomationEvent::ScheduleClockWentBack { .. }
    ));
    let ev = schedule_events(&mut rx, 6).await;
    let slots: Vec<_> = ev.iter().filter_map(fired_slot).collect();
    assert_eq!(slots.len(), 3, "{ev:?}");
    assert!(slots[0] < before_back - TimeDelta::minutes(100));
    assert_eq!(slots[1] - slots[0], TimeDelta::seconds(10));
    assert_eq!(slots[2] - slots[1], TimeDelta::seconds(10));
    rig.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_maintenance_window_refuses_a_run_that_would_overrun_it() {
    let config = r#"
[[maintenance-window]]
name = "midnight"
cron = "0 0 * * *"
duration = "1m"

[[schedule]]
name = "patch"
runbook = "patch.toml"
cron = "*/10 * * * * *"
maintenance = true
expected-duration = "15s"
"#;
    let (fake, mut rx) = Fake::new(Duration::from_secs(1));
    let rig = start(config, t(0, 0, 3), fake.clone());
    let mut fired = Vec::new();
    let refused = loop {
        let ev = schedule_events(&mut rx, 1).await.remove(0);
        match ev {
            AutomationEvent::ScheduleFired { slot, window, .. } => {
                assert_eq!(window.as_deref(), Some("midnight"));
                fired.push(slot);
            }
            AutomationEvent::ScheduleSkipped { .. } => break ev,
            _ => {}
        }
    };
    assert_eq!(
        fired,
        vec![t(0, 0, 10), t(0, 0, 20), t(0, 0, 30), t(0, 0, 40)]
    );
    assert!(
        matches!(&refused, AutomationEvent::ScheduleSkipped { slot, reason: SkipReason::WouldOverrunWindow { closes_at, would_end_at, .. }, .. }
            if *slot == t(0, 0, 50) && *closes_at == t(0, 1, 0) && *would_end_at == t(0, 1, 5)),
        "{refused:?}"
    );
    let next = expect(&mut rx, "a skip", |e| {
        matches!(e, AutomationEvent::ScheduleSkipped { .. })
    })
    .await;
    assert!(
        matches!(
            next,
            AutomationEvent::ScheduleSkipped {
                reason: SkipReason::NoWindowOpen,
                ..
            }
        ),
        "{next:?}"
    );
    assert_eq!(fake.launches().len(), 4);
    assert!(rig.audited("automation.schedule-skipped") >= 2);
    rig.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_maintenance_schedule_passes_the_window_slot_as_the_named_param() {
    let config = r#"
[[maintenance-window]]
name = "midnight"
cron = "0 0 * * *"
duration = "1m"

[[schedule]]
name = "patch"
runbook = "patch.toml"
params = { reboot = "never" }
cron = "*/20 * * * * *"
maintenance = true
expected-duration = "5s"
window-slot-param = "window_slot"
"#;
    let (fake, mut rx) = Fake::new(Duration::from_secs(1));
    let rig = start(config, t(0, 0, 3), fake.clone());
    let fired = expect(&mut rx, "a firing", |e| {
        matches!(e, AutomationEvent::ScheduleFired { .. })
    })
    .await;
    assert!(
        matches!(&fired, AutomationEvent::ScheduleFired { window_slot: Some(s), .. } if s == "midnight@2026-05-01T00:00:00Z"),
        "{fired:?}"
    );
    // The next firing in the same window occurrence carries the same slot: the runbook, not
    // the schedule, refuses to act twice in it.
    expect(&mut rx, "a second firing", |e| {
        matches!(e, AutomationEvent::ScheduleFired { .. })
    })
    .await;
    let launches = fake.launches();
    assert!(launches.len() >= 2, "{launches:?}");
    for launch in &launches[..2] {
        assert_eq!(
            launch.params,
            vec![
                ("reboot".to_string(), "never".to_string()),
                (
                    "window_slot".to_string(),
                    "midnight@2026-05-01T00:00:00Z".to_string()
                ),
            ]
        );
    }
    rig.shutdown().await;
}

#[test]
fn window_slot_param_needs_a_maintenance_schedule_and_a_free_param_name() {
    let base = r#"
[[maintenance-window]]
name = "midnight"
cron = "0 0 * * *"
duration = "1h"

[[schedule]]
name = "patch"
runbook = "patch.toml"
cron = "0 0 * * *"
"#;
    for (extra, why) in [
        (
            "window-slot-param = \"window_slot\"\n",
            "only meaningful with `maintenance = true`",
        ),
        (
            "maintenance = true\nexpected-duration = \"5m\"\nwindow-slot-param = \"Slot\"\n",
            "is not a runbook parameter name",
        ),
        (
            "maintenance = true\nexpected-duration = \"5m\"\nparams = { slot = \"x\" }\nwindow-slot-param = \"slot\"\n",
            "both in `params` and the `window-slot-param`",
        ),
    ] {
        let text = format!("{base}{extra}");
        let compiled = AutomationConfig::parse(&text, Path::new("/etc/warden/agent.toml"))
            .expect("parses")
            .compile(Path::new("/etc/warden"));
        let Err(err) = compiled else {
            panic!("{extra}: accepted");
        };
        let err = err.to_string();
        assert!(err.contains(why), "{extra}: {err}");
    }
}

const DISK: &str = r#"
[[monitor]]
name = "disk"
plugin = "disk-usage"
config = { warning_percent = 80 }
interval = "60s"
failures-to-trigger = 3

[monitor.remediation]
runbook = "disk-pressure.toml"
params = { force = true }
verify-delay = "10s"
"#;

#[tokio::test(start_paused = true)]
async fn a_monitor_detects_remediates_verifies_and_records_mttr() {
    use CheckStatus::*;
    let (fake, mut rx) = Fake::new(Duration::from_secs(30));
    let fake = fake.with_checks(&[Ok, Critical, Warning, Critical, Ok], Ok);
    let rig = start(DISK, t(0, 0, 0), fake.clone());
    let ev = expect(&mut rx, "incident-resolved", |e| {
        matches!(e, AutomationEvent::IncidentResolved { .. })
    })
    .await;
    let AutomationEvent::IncidentResolved {
        incident,
        time_to_detect_ms,
        time_to_remediate_ms,
        time_to_resolve_ms,
    } = ev
    else {
        unreachable!()
    };
    // Checks at 0 (ok), 60, 120, 180 (failing); remediation 180-210; verify at 220.
    assert_eq!(incident.detected_at, t(0, 1, 0));
    assert_eq!(time_to_detect_ms, 120_000);
    assert_eq!(time_to_remediate_ms, Some(30_000));
    assert_eq!(time_to_resolve_ms, Some(160_000));
    let launches = fake.launches();
    assert_eq!(launches.len(), 1);
    assert!(
        matches!(&launches[0].origin, LaunchOrigin::Monitor { name, attempt: 1, .. } if name == "disk")
    );
    assert_eq!(
        launches[0].params,
        vec![("force".to_string(), "true".to_string())]
    );

    let sla = rig
        .history
        .sla_report(t(0, 0, 0), t(1, 0, 0), Some("disk"))
        .expect("report");
    assert_eq!(
        (sla[0].incidents, sla[0].resolved, sla[0].escalated),
        (1, 1, 0)
    );
    assert_eq!(sla[0].mttr_ms, Some(160_000.0));
    assert_eq!(rig.audited("automation.incident-resolved"), 1);
    assert_eq!(rig.audited("automation.remediation-started"), 1);
    rig.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_monitor_escalates_when_remediation_keeps_failing() {
    let (fake, mut rx) = Fake::new(Duration::from_secs(5));
    let fake = fake
        .with_checks(&[], CheckStatus::Critical)
        .with_runs(&[false, false, false]);
    let rig = start(DISK, t(0, 0, 0), fake.clone());
    expect(&mut rx, "escalated state", |e| {
        matches!(
            e,
            AutomationEvent::MonitorStateChanged {
                to: MonitorState::Escalated,
                ..
            }
        )
    })
    .await;
    let ev = expect(&mut rx, "escalation", |e| {
        matches!(e, AutomationEvent::Escalated { .. })
    })
    .await;
    assert!(
        matches!(&ev, AutomationEvent::Escalated { monitor, reason: EscalationReason::RemediationFailed { attempts: 2 }, .. } if monitor == "disk"),
        "{ev:?}"
    );
    // Ten more failing checks: no further remediation once escalated.
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(fake.launches().len(), 2);
    let open = rig
        .history
        .open_incident("disk")
        .expect("query")
        .expect("open");
    assert!(matches!(
        open.escalated,
        Some(EscalationReason::RemediationFailed { attempts: 2 })
    ));
    assert_eq!(rig.audited("automation.escalated"), 1);
    rig.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_the_drivers() {
    let config = format!("{EVERY_10S}\n{DISK}");
    let (fake, mut rx) = Fake::new(Duration::from_secs(1));
    let rig = start(&config, t(0, 0, 3), fake.clone());
    schedule_events(&mut rx, 1).await;
    rig.shutdown().await;
    let launched = fake.launches().len();
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(
        fake.launches().len(),
        launched,
        "nothing launched after shutdown"
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_executor_fails_one_run_not_the_driver() {
    let (mut fake, mut rx) = Fake::new(Duration::from_secs(1));
    Arc::get_mut(&mut fake).expect("unique").panic_runs = true;
    let rig = start(EVERY_10S, t(0, 0, 3), fake.clone());
    let failed = expect(&mut rx, "run failed", |e| {
        matches!(e, AutomationEvent::ScheduleRunFailed { .. })
    })
    .await;
    assert!(
        matches!(&failed, AutomationEvent::ScheduleRunFailed { error, .. } if error.contains("panic")),
        "{failed:?}"
    );
    let next = expect(&mut rx, "next firing", |e| {
        matches!(e, AutomationEvent::ScheduleFired { .. })
    })
    .await;
    assert_eq!(fired_slot(&next), Some(t(0, 0, 20)));
    rig.shutdown().await;
}
