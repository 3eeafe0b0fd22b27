//! TLS between an agent and NATS, end to end: a real nats-server 2.12.8 in operator mode whose
//! client port takes TLS only, with a server certificate from a CA made in the test
//! (`warden_natstest::TestPki`), and the agent in this process with `[fleet] ca-file`.
//!
//! An agent trusting the CA connects and runs a command. One trusting another CA, or facing a
//! certificate for another name, is refused: it audits `fleet.tls-refused` saying why, and the
//! server never saw its CONNECT (no connection, open or closed, bears its client name). An agent
//! told to use TLS, facing a server that offers none, sends a TLS handshake and nothing else.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use warden_fleet_wire::RunStatus;
use warden_natstest::TestPki;

use crate::daemon::Agent;
use crate::fleet::{Fleet, first_heartbeat, runs_of};

/// Bound on every wait for something that should happen.
const WAIT: Duration = Duration::from_secs(30);
/// Refused handshakes seen at the server before the agent's audit is checked for repeats: the
/// second attempt's refusal has been handled by the time the third shows.
const REFUSED_HANDSHAKES: usize = 3;

async fn tls_fleet(pki: &TestPki, names: &[&str]) -> Fleet {
    let server = pki.server("server", names).expect("server certificate");
    Fleet::start_with(Some((server, pki.ca_file()))).await
}

/// The agent's audit records of `event`, once there is one (bounded wait on the file).
pub(crate) async fn audited(agent: &Agent, event: &str) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let records: Vec<serde_json::Value> = agent
            .audit_log()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|r| r["event"] == event)
            .collect();
        if !records.is_empty() {
            return records;
        }
        assert!(Instant::now() < deadline, "no {event} within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The server's connections, open and closed (`/connz?state=all`), as its monitor lists them.
pub(crate) fn connections(fleet: &Fleet) -> Vec<serde_json::Value> {
    let url = format!(
        "{}/connz?state=all&auth=true&limit=1024",
        fleet.nats.monitor_url(0)
    );
    let body = http_get(&url);
    let connz: serde_json::Value = serde_json::from_str(&body).expect("connz JSON");
    connz["connections"].as_array().cloned().unwrap_or_default()
}

/// A plain HTTP/1.0 GET of a loopback URL (the monitor port is plain HTTP).
fn http_get(url: &str) -> String {
    use std::io::{Read as _, Write as _};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').expect("path");
    let mut stream = std::net::TcpStream::connect(host).expect("monitor port");
    write!(stream, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").expect("request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

pub(crate) fn client_name(fleet: &Fleet) -> String {
    format!("warden-agent {}", fleet.agent_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_trusting_the_ca_connects_over_tls_and_runs_a_command() {
    let pki = TestPki::generate("warden fleet test CA").expect("CA");
    let fleet = tls_fleet(&pki, &["127.0.0.1", "localhost"]).await;
    let mut heartbeats = fleet.heartbeats().await;
    let mut copies = fleet.result_copies().await;
    let agent = fleet.agent();
    let hb = first_heartbeat(&mut heartbeats).await;
    assert_eq!(hb.agent, fleet.agent_id);

    let (command, _, result) = fleet.run_by_name(&mut copies, "fleet-hello").await;
    assert_eq!(result.status, RunStatus::Succeeded, "{result:?}");
    assert_eq!(runs_of(&agent, &command.run), 1);

    let started = audited(&agent, "fleet.link-started").await;
    assert_eq!(started[0]["data"]["tls"], true, "{started:?}");
    // The server saw the agent's connection with TLS (a cipher suite and version negotiated).
    let mine: Vec<_> = connections(&fleet)
        .into_iter()
        .filter(|c| c["name"] == client_name(&fleet).as_str())
        .collect();
    assert!(!mine.is_empty(), "the agent's connection is listed");
    assert!(
        mine.iter().all(|c| c["tls_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("1."))),
        "{mine:?}"
    );
    assert!(
        agent
            .audit_log()
            .lines()
            .all(|l| !l.contains("fleet.tls-refused"))
    );
}

/// An agent given `ca` facing the fleet's server: it says why it refused, and the server never
/// got its CONNECT.
async fn refused(fleet: &Fleet, ca: &Path, expected: &str) {
    let agent = fleet.agent_with_section(&fleet.fleet_section_for(&fleet.tls_url(), Some(ca)));
    let records = audited(&agent, "fleet.tls-refused").await;
    let reason = records[0]["data"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        reason.contains("the certificate of 127.0.0.1 was refused") && reason.contains(expected),
        "{reason}"
    );
    // The client retries every few seconds; wait for a few refused handshakes at the server.
    let name = client_name(fleet);
    let deadline = Instant::now() + WAIT;
    let connz = loop {
        let connz = connections(fleet);
        let refused = connz
            .iter()
            .filter(|c| c["reason"].as_str().is_some_and(|r| r.contains("TLS")))
            .count();
        if refused >= REFUSED_HANDSHAKES {
            break connz;
        }
        assert!(
            Instant::now() < deadline,
            "{refused} refused handshake(s) within {WAIT:?}: {connz:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        connz.iter().all(|c| c["name"] != name.as_str()),
        "the server got the agent's CONNECT: {connz:?}"
    );
    // Said once, however often it was refused.
    assert_eq!(audited(&agent, "fleet.tls-refused").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_not_trusting_the_servers_ca_is_refused_and_says_why() {
    let pki = TestPki::generate("warden fleet test CA").expect("CA");
    let fleet = tls_fleet(&pki, &["127.0.0.1", "localhost"]).await;
    let stranger = TestPki::generate("another CA").expect("CA");
    refused(&fleet, &stranger.ca_file(), "UnknownIssuer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_for_another_name_is_refused_and_said() {
    let pki = TestPki::generate("warden fleet test CA").expect("CA");
    // For `localhost` only (the test's controller connects by that name); the agent dials
    // 127.0.0.1.
    let fleet = tls_fleet(&pki, &["localhost"]).await;
    refused(&fleet, &pki.ca_file(), "not valid for name").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_requiring_tls_sends_nothing_in_clear_to_a_plain_server() {
    let pki = TestPki::generate("warden fleet test CA").expect("CA");
    let fleet = Fleet::start_with(None).await;
    // A plain "server": it offers no TLS in its INFO and records the first bytes it is sent.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("nats://{}", listener.local_addr().expect("addr"));
    let received = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("the agent connects");
        socket
            .write_all(
                b"INFO {\"server_id\":\"plain\",\"version\":\"2.12.8\",\"proto\":1,\
                  \"max_payload\":1048576,\"headers\":true,\"tls_required\":false}\r\n",
            )
            .await
            .expect("info");
        let mut bytes = vec![0u8; 4096];
        let n = socket.read(&mut bytes).await.expect("read");
        bytes.truncate(n);
        bytes
    });
    // `nats://` with a CA file: TLS is required all the same.
    let _agent = fleet.agent_with_section(&fleet.fleet_section_for(&url, Some(&pki.ca_file())));
    let bytes = tokio::time::timeout(WAIT, received)
        .await
        .expect("the agent sent something")
        .expect("listener");
    assert_eq!(
        bytes.first(),
        Some(&0x16),
        "a TLS handshake record: {bytes:?}"
    );
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains("CONNECT"), "{text}");
    assert!(!text.contains("eyJ"), "no JWT in clear: {text}");
}
