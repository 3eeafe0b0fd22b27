//! `warden-bench --report`: a tenant's client report (issue 18) for a month of 1,000 agents.
//! A controller on a real nats-server and SQLite store; the tenant's agents registered
//! through the heartbeat intake (each with a patch scan and two compliance checks installed),
//! a month of their incidents (a drift monitor's and a compliance check's among them, and one
//! PSA ticket per agent; as many of another tenant's, which the report must skip) through the
//! event intake. Then N reports of each
//! format, interleaved: the store read, the computation and the rendering, as `GetReport`
//! does them (without the gRPC hop).
//!
//! The store sits on /dev/shm when there is one: loading 100,000 events one commit each (the
//! intake's durability) is not what is measured, and a disk's fsyncs would make it minutes.

use std::time::{Duration, Instant};

use anyhow::Context;
use warden_access::Caller;
use warden_controller::controller::internal_caller;
use warden_controller::{ControllerConfig, ManualClock};
use warden_fleet_identity::{AgentId, AgentKey, TenantId};
use warden_fleet_wire::{
    AgentEvent, EventKind, EventTicket, Heartbeat, PatchSummary, PluginInfo, UnixMillis,
    WIRE_VERSION,
};

use crate::measure::{Stats, Table, fmt_duration};

/// 2026-11-01T00:00:00Z.
const NOVEMBER: i64 = 1_793_491_200_000;
const MONTH_MS: i64 = 30 * 86_400_000;
/// Each monitor and the check it runs: a plain one, a compliance check, one with no check
/// named (an older agent), the drift check.
const MONITORS: [(&str, &str); 4] = [
    ("disk", "disk-usage"),
    ("firewall", "host-firewall"),
    ("backup-nightly", ""),
    ("config-drift", "builtin:drift"),
];

#[derive(Debug, Clone)]
pub struct ReportBench {
    pub agents: usize,
    /// Incidents per agent and monitor in the month.
    pub incidents: usize,
    pub iterations: usize,
    pub markdown: bool,
}

fn heartbeat(tenant: &TenantId, i: usize) -> Heartbeat {
    Heartbeat {
        v: WIRE_VERSION,
        agent: AgentKey::generate().id(),
        tenant: tenant.clone(),
        agent_version: "0.1.0".into(),
        hostname: format!("{tenant}-host-{i:05}"),
        os: "linux".into(),
        tags: Default::default(),
        plugins: ["host-firewall", "disk-encryption"]
            .into_iter()
            .map(|name| {
                let mut p = PluginInfo::new(name, "0.1.0", "f".repeat(64));
                p.hipaa = vec![if name == "host-firewall" {
                    "164.312(e)(1)".into()
                } else {
                    "164.312(a)(2)(iv)".into()
                }];
                p
            })
            .collect(),
        open_incidents: 0,
        failing: Vec::new(),
        windows: None,
        // A third with security updates pending, a seventh waiting for a reboot.
        patches: Some(PatchSummary {
            pending: 2 + (i % 5) as u32,
            security: u32::from(i.is_multiple_of(3)),
            reboot_required: i.is_multiple_of(7),
            scanned_at: UnixMillis(NOVEMBER + MONTH_MS - 3_600_000),
        }),
        sent_at: UnixMillis::now(),
        seq: 1,
        interval_ms: 15_000,
    }
}

/// Register `n` agents of `tenant` and load their month of incidents; the event count.
fn load(
    controller: &warden_controller::Controller,
    tenant: &TenantId,
    n: usize,
    incidents: usize,
) -> anyhow::Result<usize> {
    let beats: Vec<Heartbeat> = (0..n).map(|i| heartbeat(tenant, i)).collect();
    let encoded: Vec<(String, Vec<u8>)> = beats
        .iter()
        .map(|hb| Ok((hb.nats_subject(), warden_fleet_wire::encode(hb)?)))
        .collect::<anyhow::Result<_>>()?;
    for chunk in encoded.chunks(256) {
        let refs: Vec<(&str, &[u8])> = chunk
            .iter()
            .map(|(s, p)| (s.as_str(), p.as_slice()))
            .collect();
        controller.take_heartbeats(&refs)?;
    }
    let agents: Vec<AgentId> = beats.into_iter().map(|hb| hb.agent).collect();
    let mut count = 0;
    for (a, agent) in agents.iter().enumerate() {
        let mut seq = 0;
        // The backup incident's PSA ticket.
        seq += 1;
        let mut ticket = AgentEvent::new(
            tenant.clone(),
            agent.clone(),
            seq,
            UnixMillis(NOVEMBER + 86_400_000),
            EventKind::Escalation,
            "backup-nightly",
        );
        ticket.tickets.push(EventTicket {
            incident: format!("backup-nightly-{a}"),
            system: "ticket-connectwise".into(),
            id: format!("CW-{a}"),
            status: "open".into(),
            resolve_by: None,
        });
        controller.take_event(&ticket.nats_subject(), &warden_fleet_wire::encode(&ticket)?)?;
        count += 1;
        for (m, monitor) in MONITORS.iter().enumerate() {
            for k in 0..incidents {
                // Spread over the month; 5 to 120 minutes each, fixed by position.
                let opened = NOVEMBER
                    + (MONTH_MS / incidents as i64) * k as i64
                    + ((a * 7 + m * 13) % 600) as i64 * 60_000;
                let minutes = 5 + ((a + m * 31 + k * 17) % 116) as i64;
                for (kind, at) in [
                    (EventKind::IncidentOpened, opened),
                    (EventKind::IncidentResolved, opened + minutes * 60_000),
                ] {
                    seq += 1;
                    let mut e = AgentEvent::new(
                        tenant.clone(),
                        agent.clone(),
                        seq,
                        UnixMillis(at),
                        kind,
                        monitor.0,
                    );
                    e.check = monitor.1.into();
                    controller.take_event(&e.nats_subject(), &warden_fleet_wire::encode(&e)?)?;
                    count += 1;
                }
            }
        }
    }
    Ok(count)
}

pub fn run(bench: &ReportBench) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("a tokio runtime")?;
    runtime.block_on(measure(bench))
}

async fn measure(bench: &ReportBench) -> anyhow::Result<()> {
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)?
    } else {
        tempfile::tempdir()?
    };
    let acme = TenantId::new("acme")?;
    let globex = TenantId::new("globex")?;
    let mut config = ControllerConfig::new(dir.path().join("controller"));
    config.tenants = vec![acme.clone(), globex.clone()];
    let clock = ManualClock::new(UnixMillis::now());
    let (_nats, mut running) = crate::console::start_controller(&mut config, &clock).await?;
    let controller = running.controller.clone();

    let started = Instant::now();
    let (c, n, k) = (controller.clone(), bench.agents, bench.incidents);
    let (a, g) = (acme.clone(), globex.clone());
    let events = tokio::task::spawn_blocking(move || -> anyhow::Result<usize> {
        Ok(load(&c, &a, n, k)? + load(&c, &g, n, k)?)
    })
    .await??;
    let loaded = started.elapsed();

    println!();
    println!("## Client report generation (issue 18)");
    println!();
    println!(
        "tenant acme: {} agents x {} monitors x {} incidents in November 2026; as many of \
         tenant globex beside them ({events} events in all, loaded in {}); one nats-server, \
         SQLite store on {}; {} reports of each format, interleaved, in-process (store read, \
         computation, rendering: what GetReport does without the gRPC hop)",
        bench.agents,
        MONITORS.len(),
        bench.incidents,
        fmt_duration(loaded),
        if shm.is_dir() {
            "/dev/shm"
        } else {
            "the temp dir"
        },
        bench.iterations
    );
    println!();
    let caller: Caller = internal_caller();
    let (from, to) = (UnixMillis(NOVEMBER), UnixMillis(NOVEMBER + MONTH_MS));
    type Render = fn(&warden_report::Report) -> Vec<u8>;
    let formats: [(&str, Render); 4] = [
        ("read + compute", |_| Vec::new()),
        ("HTML", |r| warden_report::html::render(r).into_bytes()),
        ("CSV", |r| warden_report::csv::render(r).into_bytes()),
        ("PDF", warden_report::pdf::render),
    ];
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); formats.len()];
    let mut sizes = vec![0usize; formats.len()];
    let mut services = 0;
    for _ in 0..bench.iterations {
        for (i, (_, render)) in formats.iter().enumerate() {
            let t = Instant::now();
            let report = controller.report(&caller, &acme, from, to)?;
            let body = render(&report);
            samples[i].push(t.elapsed());
            sizes[i] = body.len();
            services = report.services.len();
        }
    }
    let mut table = Table::new(&["report", "median", "p90", "size"]);
    for (i, (name, _)) in formats.iter().enumerate() {
        let s = Stats::new(std::mem::take(&mut samples[i]));
        table.row(vec![
            name.to_string(),
            fmt_duration(s.median()),
            fmt_duration(s.p90()),
            if sizes[i] == 0 {
                format!("{services} services")
            } else {
                format!("{} KiB", sizes[i] / 1024)
            },
        ]);
    }
    table.print(bench.markdown);
    running.stop().await;
    Ok(())
}
