#![cfg(target_os = "linux")]

//! The servers this crate starts, driven by the client the fleet layer uses (async-nats 0.51):
//! a single server and a 3-node cluster serve JetStream, an R3 stream survives the SIGKILL of
//! its leader and of a second node after the first came back on its own store, and no server
//! outlives its `Nats` or its test process.
//!
//! Lines starting `timing:` report how long starts, elections and restarts took (run with
//! `--nocapture`); nothing asserts on them.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage, stream};
use warden_natstest::{
    Error, Health, Nats, NatsBinary, live_processes_mentioning, process_is_live,
};

/// Bound of every wait for an election or a catch-up: the notes measured a 10.6 s stall.
const ELECTION_BOUND: Duration = Duration::from_secs(30);

async fn connect(urls: &[String]) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(5))
        .connect(urls)
        .await
        .expect("connecting to nats-server")
}

fn jetstream(client: async_nats::Client) -> jetstream::Context {
    jetstream::new(client)
}

async fn file_stream(js: &jetstream::Context, name: &str, replicas: usize) -> stream::Stream {
    js.create_stream(stream::Config {
        name: name.into(),
        subjects: vec![format!("{}.>", name.to_lowercase())],
        storage: stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    })
    .await
    .expect("creating the stream")
}

/// Publish with a message id until the stream acks it; the id makes a retry whose first attempt
/// was stored after all a duplicate rather than a second message. Returns the stream sequence
/// and how long it took.
async fn publish_until_acked(
    js: &jetstream::Context,
    subject: &str,
    id: &str,
    payload: &'static str,
) -> (u64, Duration) {
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < ELECTION_BOUND {
        let message = PublishMessage::build()
            .payload(payload.into())
            .message_id(id);
        match js.send_publish(subject.to_string(), message).await {
            // Short, so that an attempt lost to the election is retried soon.
            Ok(ack) => match tokio::time::timeout(Duration::from_secs(1), ack).await {
                Ok(Ok(ack)) => return (ack.sequence, started.elapsed()),
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = "no ack within 1 s".into(),
            },
            Err(e) => last = e.to_string(),
        }
        // A pause between attempts, not a synchronisation: the next attempt asks again.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no ack for {id} within {ELECTION_BOUND:?}: {last}");
}

async fn payload_at(stream: &stream::Stream, sequence: u64) -> String {
    let message = stream
        .get_raw_message(sequence)
        .await
        .expect("reading a message back");
    String::from_utf8(message.payload.to_vec()).expect("utf-8 payload")
}

async fn leader(stream: &mut stream::Stream) -> String {
    let info = stream.info().await.expect("stream info");
    info.cluster
        .as_ref()
        .and_then(|c| c.leader.clone())
        .expect("an R3 stream has a leader")
}

/// Every replica of the stream reported current, within a bounded wait.
async fn wait_replicas_current(stream: &mut stream::Stream, replicas: usize) {
    let started = Instant::now();
    loop {
        let info = stream.info().await.expect("stream info");
        let peers = info.cluster.as_ref().map_or(&[][..], |c| &c.replicas[..]);
        if peers.len() == replicas - 1 && peers.iter().all(|p| p.current && !p.offline) {
            return;
        }
        assert!(
            started.elapsed() < ELECTION_BOUND,
            "replicas not current after {ELECTION_BOUND:?}: {:?}",
            info.cluster
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_server_stores_a_message_and_gives_it_back() {
    let started = Instant::now();
    let nats = Nats::single().expect("starting nats-server");
    eprintln!("timing: single server ready in {:?}", started.elapsed());
    let client = connect(&nats.urls()).await;
    // async-nats 0.51's JetStream helpers need 2.10 (see docs/FLEET.md).
    assert!(
        client.is_server_compatible(2, 10, 0),
        "{}",
        client.server_info().version
    );
    assert_eq!(
        client.server_info().version,
        nats.binary().version.to_string()
    );
    let js = jetstream(client);
    let stream = file_stream(&js, "ONE", 1).await;
    let (sequence, _) = publish_until_acked(&js, "one.a", "one-1", "hello").await;
    assert_eq!(payload_at(&stream, sequence).await, "hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_server_restarted_after_a_sigkill_keeps_its_store() {
    let mut nats = Nats::single().expect("starting nats-server");
    let client = connect(&nats.urls()).await;
    let js = jetstream(client.clone());
    let stream = file_stream(&js, "KEPT", 1).await;
    let (sequence, _) = publish_until_acked(&js, "kept.a", "kept-1", "durable").await;
    let pid = nats.pid(0).expect("running");
    tokio::task::block_in_place(|| {
        nats.kill(0).expect("kill");
        assert!(!nats.is_running(0));
        assert!(!process_is_live(pid), "{pid} survived SIGKILL");
        let took = nats.restart(0).expect("restart");
        eprintln!("timing: single server restarted in {took:?}");
        nats.wait_for(0, Health::Current, ELECTION_BOUND)
            .expect("streams recovered");
    });
    assert_ne!(nats.pid(0), Some(pid));
    // The client reconnects by itself; the message is read from the recovered store.
    assert_eq!(payload_at(&stream, sequence).await, "durable");
    assert!(nats.log(0).contains("restarting n0"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_cluster_replicates_an_r3_stream() {
    let started = Instant::now();
    let nats = Nats::cluster(3).expect("starting the cluster");
    eprintln!(
        "timing: 3-node cluster ready (every node current with the meta leader) in {:?}",
        started.elapsed()
    );
    let js = jetstream(connect(&nats.urls()).await);
    let mut stream = file_stream(&js, "RESULTS", 3).await;
    let (sequence, _) = publish_until_acked(&js, "results.run1.agent1", "run1.agent1", "ok").await;
    wait_replicas_current(&mut stream, 3).await;
    // Read back through a client of each node in turn.
    for i in 0..nats.len() {
        let js = jetstream(connect(&[nats.url(i)]).await);
        let stream = js
            .get_stream("RESULTS")
            .await
            .expect("stream from each node");
        assert_eq!(
            payload_at(&stream, sequence).await,
            "ok",
            "through {}",
            nats.name(i)
        );
    }
    let info = stream.info().await.expect("info");
    assert_eq!(info.config.num_replicas, 3);
    assert_eq!(info.state.messages, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_r3_stream_takes_publishes_after_its_leader_is_sigkilled() {
    let mut nats = Nats::cluster(3).expect("starting the cluster");
    let js = jetstream(connect(&nats.urls()).await);
    let mut stream = file_stream(&js, "FLEET", 3).await;
    let (first, _) = publish_until_acked(&js, "fleet.r1", "r1", "before").await;
    wait_replicas_current(&mut stream, 3).await;

    let old = leader(&mut stream).await;
    let old_index = nats.node_named(&old).expect("the leader is one of ours");
    tokio::task::block_in_place(|| nats.kill(old_index)).expect("kill the leader");
    let (second, stall) = publish_until_acked(&js, "fleet.r2", "r2", "after").await;
    eprintln!("timing: first ack after SIGKILL of the stream leader {old}: {stall:?}");
    let new = leader(&mut stream).await;
    assert_ne!(new, old, "a killed node is not the leader");
    assert_eq!(second, first + 1, "one message each, no duplicate");
    assert_eq!(payload_at(&stream, first).await, "before");
    assert_eq!(payload_at(&stream, second).await, "after");

    // The killed node comes back on its own store and catches up...
    tokio::task::block_in_place(|| {
        let took = nats.restart(old_index).expect("restart");
        let current = nats
            .wait_for(old_index, Health::Current, ELECTION_BOUND)
            .expect("restarted node catches up");
        eprintln!("timing: {old} restarted in {took:?}, current {current:?} later");
    });
    // ...and is a working replica: with the new leader killed too, the quorum needs it.
    let new_index = nats.node_named(&new).expect("ours");
    tokio::task::block_in_place(|| nats.kill(new_index)).expect("kill the second leader");
    let (third, stall) = publish_until_acked(&js, "fleet.r3", "r3", "again").await;
    eprintln!("timing: first ack after SIGKILL of the next leader {new}: {stall:?}");
    assert_eq!(third, second + 1);
    for (sequence, payload) in [(first, "before"), (second, "after"), (third, "again")] {
        assert_eq!(payload_at(&stream, sequence).await, payload);
    }
}

#[test]
fn dropping_a_cluster_leaves_no_server_behind() {
    let nats = Nats::cluster(3).expect("starting the cluster");
    let dir = nats.dir().to_path_buf();
    let pids: Vec<u32> = (0..nats.len())
        .map(|i| nats.pid(i).expect("running"))
        .collect();
    assert_eq!(live_processes_mentioning(&dir).len(), 3);
    drop(nats);
    for pid in &pids {
        assert!(
            !process_is_live(*pid),
            "nats-server {pid} outlived the drop"
        );
    }
    assert_eq!(live_processes_mentioning(&dir), Vec::<u32>::new());
    assert!(!dir.exists(), "{} left behind", dir.display());
}

/// Set by `servers_die_with_their_sigkilled_test_process` for the helper it runs.
const HELPER_VAR: &str = "WARDEN_NATSTEST_HELPER";

/// Run by `servers_die_with_their_sigkilled_test_process` in a child process: starts a server,
/// prints its pid and directory, then waits (bounded) to be killed. Does nothing otherwise (as
/// in `cargo test -- --ignored`).
#[test]
#[ignore = "a helper: run by servers_die_with_their_sigkilled_test_process"]
fn helper_start_a_server_and_wait_to_be_killed() {
    if std::env::var_os(HELPER_VAR).is_none() {
        return;
    }
    let nats = Nats::single().expect("starting nats-server");
    println!(
        "SERVER {} {}",
        nats.pid(0).expect("running"),
        nats.dir().display()
    );
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn servers_die_with_their_sigkilled_test_process() {
    let mut owner = Command::new(std::env::current_exe().expect("this test binary"))
        .args([
            "--exact",
            "helper_start_a_server_and_wait_to_be_killed",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_VAR, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting the helper");
    let stdout = owner.stdout.take().expect("piped");
    // The harness prints `test <name> ... ` before the helper's own output, on the same line.
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.split_once("SERVER ").map(|(_, rest)| rest.to_string()));
    let line = line.expect("the helper printed its server");
    let mut words = line.split_whitespace();
    let pid: u32 = words.next().and_then(|p| p.parse().ok()).expect("pid");
    let dir = PathBuf::from(words.next().expect("dir"));
    assert!(process_is_live(pid));
    owner.kill().expect("SIGKILL the helper"); // no Drop runs in it
    owner.wait().expect("reap the helper");
    let started = Instant::now();
    while process_is_live(pid) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nats-server {pid} outlived its SIGKILLed test process"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(live_processes_mentioning(&dir), Vec::<u32>::new());
    // Nobody removed the helper's temporary directory.
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_server_older_than_2_10_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = dir.path().join("nats-server");
    // What Debian's package answers.
    std::fs::write(&fake, "#!/bin/sh\necho 'nats-server: v2.9.10'\n").expect("fake");
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let err = NatsBinary::at(&fake).expect_err("2.9.10 refused");
    assert!(matches!(err, Error::TooOld { .. }), "{err}");
    assert!(err.to_string().contains("2.10.0 or later"), "{err}");
}

#[test]
fn the_pinned_server_is_the_one_found() {
    if std::env::var_os(warden_natstest::ENV_VAR).is_some() {
        return; // another binary was asked for
    }
    let binary = NatsBinary::find().expect("run `cargo xtask nats` first");
    assert_eq!(binary.path, warden_natstest::pinned_path());
    assert_eq!(binary.version.to_string(), warden_natstest::PINNED_VERSION);
}
