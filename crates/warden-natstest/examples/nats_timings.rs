//! How long the servers of this crate take, measured one run at a time (the tests run in
//! parallel and so measure each other too): a single server's start, a 3-node cluster's start
//! until every node is current with the meta leader, and the stall of an R3 stream after a
//! SIGKILL of its leader (from the kill to the first PubAck of a publish retried every 50 ms
//! with a 1 s ack timeout), then the restart of that node on its store until it is current.
//!
//! `cargo run -p warden-natstest --example nats_timings [runs]` (default 5); prints every run
//! and the medians.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage, stream};
use warden_natstest::{Health, Nats};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 5,
    };
    let mut single = Vec::new();
    let mut cluster = Vec::new();
    let mut stall = Vec::new();
    let mut restart = Vec::new();
    let mut current = Vec::new();
    for run in 1..=runs {
        let started = Instant::now();
        drop(tokio::task::block_in_place(Nats::single)?);
        single.push(started.elapsed());

        let started = Instant::now();
        let mut nats = tokio::task::block_in_place(|| Nats::cluster(3))?;
        cluster.push(started.elapsed());

        let client = async_nats::connect(nats.urls().as_slice()).await?;
        let js = jetstream::new(client.clone());
        let mut results = js
            .create_stream(stream::Config {
                name: "RESULTS".into(),
                subjects: vec!["results.>".into()],
                num_replicas: 3,
                ..Default::default()
            })
            .await?;
        publish_until_acked(&js, "before").await?;
        let info = results.info().await?;
        let leader = info
            .cluster
            .as_ref()
            .and_then(|c| c.leader.clone())
            .ok_or("no stream leader")?;
        let index = nats.node_named(&leader).ok_or("leader not ours")?;
        let connected_to_leader = client.server_info().server_name == leader;

        let killed = Instant::now();
        tokio::task::block_in_place(|| nats.kill(index))?;
        publish_until_acked(&js, "after").await?;
        stall.push(killed.elapsed());

        let (took, caught_up) = tokio::task::block_in_place(|| {
            let took = nats.restart(index)?;
            let caught_up = nats.wait_for(index, Health::Current, Duration::from_secs(30))?;
            Ok::<_, warden_natstest::Error>((took, caught_up))
        })?;
        restart.push(took);
        current.push(caught_up);
        println!(
            "run {run}: single {:?}, cluster {:?}, stall after killing leader {leader}{} {:?}, \
             restart {took:?} + current {caught_up:?}",
            single[run - 1],
            cluster[run - 1],
            if connected_to_leader {
                " (the client's server)"
            } else {
                ""
            },
            stall[run - 1],
        );
    }
    println!(
        "medians of {runs}: single server ready {:?}; 3-node cluster ready {:?}; first ack after \
         SIGKILL of the stream leader {:?}; restart on the same store {:?}, then current {:?}",
        median(&mut single),
        median(&mut cluster),
        median(&mut stall),
        median(&mut restart),
        median(&mut current),
    );
    Ok(())
}

async fn publish_until_acked(
    js: &jetstream::Context,
    id: &'static str,
) -> Result<(), Box<dyn std::error::Error>> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let message = PublishMessage::build().payload(id.into()).message_id(id);
        if let Ok(ack) = js.send_publish("results.x", message).await
            && let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), ack).await
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("no ack for {id} within 60 s").into())
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values.get(values.len() / 2).copied().unwrap_or_default()
}
