//! `warden-bench --console`: the web console's fleet table at 10,000 agents (issue 18). A
//! controller on a real nats-server (one node, operator mode) and SQLite store, its agents
//! registered through the controller's own heartbeat intake (2/5 of them heard from 10 minutes
//! ago, offline), the console on loopback; then N requests of each page through a plain
//! HTTP/1.1 client with a signed-in session: the first page, a filter, a sort and a deep page,
//! and one agent's page, whose audit section searches the controller's audit log backward (the
//! log is first filled with [`AUDIT_FILLER`] records about other agents, so the search reads
//! about its whole byte budget). Each response is read to its end; the time is the whole request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, header};
use hyper_util::rt::TokioIo;
use warden_access::{Role, TokenEntry, token_hash};
use warden_controller::serve::{self, Options};
use warden_controller::{ControllerConfig, ManualClock};
use warden_fleet_identity::{AgentKey, TenantId};
use warden_fleet_wire::{Heartbeat, UnixMillis, WIRE_VERSION};

use crate::measure::{Stats, Table, fmt_duration};

const TOKEN: &str = "tok-bench-console";

/// Audit records written before the agent page is measured, none about the measured agent:
/// at about 330 bytes each, 100,000 are about the 32 MiB the agent page's audit search reads
/// at most, so the page is measured at its worst.
pub const AUDIT_FILLER: usize = 100_000;
/// Writers of the filler at once: the log commits concurrent appends together, so the filler
/// takes seconds rather than one flush per record.
const FILLER_WRITERS: usize = 32;

#[derive(Debug, Clone)]
pub struct ConsoleBench {
    pub agents: usize,
    pub requests: usize,
    /// Audit records written before the agent page is measured ([`AUDIT_FILLER`]).
    pub audit_records: usize,
    pub markdown: bool,
}

/// One request; its status, the session cookie it set, and the body.
async fn request(
    addr: &str,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: Option<String>,
) -> anyhow::Result<(u16, Option<String>, String)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, addr);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, format!("warden_session={c}"));
    }
    if body.is_some() {
        req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    }
    let res = sender
        .send_request(req.body(Full::new(Bytes::from(body.unwrap_or_default())))?)
        .await?;
    let status = res.status().as_u16();
    let set = res
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_string());
    let body = res.into_body().collect().await?.to_bytes();
    Ok((status, set, String::from_utf8_lossy(&body).into_owned()))
}

fn heartbeat(i: usize) -> anyhow::Result<Heartbeat> {
    let tenant = TenantId::new(format!("tenant-{:02}", i % 40))?;
    let mut tags = std::collections::BTreeMap::new();
    tags.insert(
        "role".to_string(),
        ["web", "db", "file", "dc"][i % 4].to_string(),
    );
    tags.insert("site".to_string(), format!("site-{}", i % 25));
    Ok(Heartbeat {
        v: WIRE_VERSION,
        agent: AgentKey::generate().id(),
        tenant,
        agent_version: "0.1.0".into(),
        hostname: format!("host-{i:05}"),
        os: if i.is_multiple_of(3) {
            "windows"
        } else {
            "linux"
        }
        .into(),
        tags,
        plugins: Vec::new(),
        open_incidents: u32::from(i.is_multiple_of(11)),
        windows: None,
        failing: if i.is_multiple_of(11) {
            vec!["disk-space".into()]
        } else {
            Vec::new()
        },
        patches: None,
        sent_at: UnixMillis::now(),
        seq: 1,
        interval_ms: 15_000,
    })
}

/// Heartbeats taken as the heartbeat loop does, in its batches.
fn take(
    controller: &warden_controller::Controller,
    beats: &[(String, Vec<u8>)],
) -> anyhow::Result<()> {
    for chunk in beats.chunks(256) {
        let refs: Vec<(&str, &[u8])> = chunk
            .iter()
            .map(|(s, p)| (s.as_str(), p.as_slice()))
            .collect();
        controller.take_heartbeats(&refs)?;
    }
    Ok(())
}

/// A one-node nats-server in the controller's operator mode and the controller on it, its
/// loops not ticking (the benchmarks drive the intake themselves). Keep the server alive.
pub(crate) async fn start_controller(
    config: &mut ControllerConfig,
    clock: &ManualClock,
) -> anyhow::Result<(warden_natstest::Nats, serve::Running)> {
    let fragment = serve::write_nats_config(&config.data_dir, config)?;
    let extra_config = std::fs::read_to_string(fragment)?;
    let nats = tokio::task::block_in_place(|| {
        warden_natstest::Nats::start(
            1,
            warden_natstest::Options {
                extra_config,
                ..warden_natstest::Options::default()
            },
        )
    })?;
    config.nats_url = nats.url(0);
    let running = serve::start(config, Arc::new(clock.clone()), Options { tick: None }).await?;
    Ok((nats, running))
}

pub fn run(bench: &ConsoleBench) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("a tokio runtime")?;
    runtime.block_on(measure(bench))
}

async fn measure(bench: &ConsoleBench) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = ControllerConfig::new(dir.path().join("controller"));
    config.tenants = (0..40)
        .map(|t| TenantId::new(format!("tenant-{t:02}")))
        .collect::<Result<_, _>>()?;
    config.tokens = vec![TokenEntry {
        name: "bench".into(),
        role: Role::Viewer,
        sha256: token_hash(TOKEN),
        tenant: None,
    }];
    let clock = ManualClock::new(UnixMillis::now());
    let (_nats, mut running) = start_controller(&mut config, &clock).await?;
    let controller = running.controller.clone();

    let started = Instant::now();
    let mut ids = Vec::with_capacity(bench.agents);
    let beats: Vec<(String, Vec<u8>)> = (0..bench.agents)
        .map(|i| {
            let hb = heartbeat(i)?;
            ids.push(hb.agent.to_string());
            Ok((hb.nats_subject(), warden_fleet_wire::encode(&hb)?))
        })
        .collect::<anyhow::Result<_>>()?;
    let measured = ids
        .get(bench.agents / 2)
        .cloned()
        .context("no agents to measure")?;
    let offline = bench.agents * 2 / 5;
    let (old, new) = beats.split_at(offline);
    take(&controller, old)?;
    // The rest are heard from 10 minutes later: the first 2/5 are offline by then.
    clock.advance_ms(10 * 60_000);
    take(&controller, new)?;
    let registered = started.elapsed();

    // Records about other agents (their ids, as a dispatch's result records name them).
    let started = Instant::now();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let writers: Vec<_> = (0..FILLER_WRITERS)
            .map(|w| {
                let (controller, ids, measured) = (&controller, &ids, &measured);
                scope.spawn(move || -> anyhow::Result<()> {
                    for n in (w..bench.audit_records).step_by(FILLER_WRITERS) {
                        let agent = &ids[n % ids.len()];
                        if agent == measured {
                            continue;
                        }
                        controller.audit(
                            "fleet.result",
                            serde_json::json!({
                                "run": format!("01BENCH{n:019}"),
                                "agent": agent,
                                "tenant": format!("tenant-{:02}", n % 40),
                                "status": "succeeded",
                                "steps": 3,
                                "duration_ms": 1234,
                            }),
                        )?;
                    }
                    Ok(())
                })
            })
            .collect();
        for w in writers {
            w.join()
                .map_err(|_| anyhow::anyhow!("a filler writer panicked"))??;
        }
        Ok(())
    })?;
    let filled = started.elapsed();

    let listener = warden_console::bind("127.0.0.1:0".parse()?).await?;
    let addr = listener.local_addr()?.to_string();
    let tokens = warden_access::Tokens::new(&config.tokens)?;
    let options = warden_console::Options {
        idle_timeout: Duration::from_secs(3600),
        absolute_timeout: Duration::from_secs(3600),
        secure_cookies: false,
    };
    tokio::spawn(warden_console::serve(
        controller.clone(),
        tokens,
        options,
        listener,
        None,
        std::future::pending(),
    ));
    let (_, form_cookie, page) = request(&addr, "GET", "/signin", None, None).await?;
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("no CSRF token on the sign-in page")?;
    let (status, cookie, _) = request(
        &addr,
        "POST",
        "/signin",
        form_cookie.as_deref(),
        Some(format!("csrf={csrf}&token={TOKEN}")),
    )
    .await?;
    let cookie = cookie.context("no session after sign-in")?;
    if status != 303 {
        bail!("sign-in answered {status}");
    }

    let pages = [
        ("first page", "/".to_string()),
        (
            "is:offline tag:role=db",
            "/?q=is%3Aoffline+tag%3Arole%3Ddb".to_string(),
        ),
        ("free text host-0123", "/?q=host-0123".to_string()),
        (
            "sorted by last seen, page 100",
            "/?sort=last-seen&dir=desc&page=100".to_string(),
        ),
        (
            "one agent's page (with its audit)",
            format!("/agents/{measured}"),
        ),
    ];
    println!();
    println!("## The web console's fleet table (issue 18)");
    println!();
    println!(
        "{} agents in 40 tenants registered through the controller's heartbeat intake in {} \
         ({offline} offline); one nats-server, SQLite store, console on loopback; {} requests \
         of each page, interleaved, over a new HTTP/1.1 connection each, body read to the end",
        bench.agents,
        fmt_duration(registered),
        bench.requests
    );
    println!(
        "the controller's audit log filled with {} records about other agents in {} \
         ({FILLER_WRITERS} writers); the agent page searches it backward",
        bench.audit_records,
        fmt_duration(filled)
    );
    println!();
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); pages.len()];
    let mut sizes = vec![0usize; pages.len()];
    for _ in 0..bench.requests {
        for (i, (_, path)) in pages.iter().enumerate() {
            let t = Instant::now();
            let (status, _, body) = request(&addr, "GET", path, Some(&cookie), None).await?;
            samples[i].push(t.elapsed());
            if status != 200 {
                bail!("{path} answered {status}");
            }
            sizes[i] = body.len();
        }
    }
    let mut table = Table::new(&["page", "median", "p90", "p99", "HTML"]);
    for (i, (name, _)) in pages.iter().enumerate() {
        let s = Stats::new(std::mem::take(&mut samples[i]));
        table.row(vec![
            name.to_string(),
            fmt_duration(s.median()),
            fmt_duration(s.p90()),
            fmt_duration(s.p99()),
            format!("{} KiB", sizes[i] / 1024),
        ]);
    }
    table.print(bench.markdown);
    running.stop().await;
    Ok(())
}
