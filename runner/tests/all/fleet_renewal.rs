//! JWT renewal at half-life, the agent's side end to end: the agent in this process (the
//! daemon with `[fleet]`) holds credentials past half their lifetime (a JWT issued 20 days ago,
//! valid 30: the "short lifetime" is injected by the issue time, so nothing waits), asks over
//! its connection, replaces its `.creds` file and reconnects with the new JWT. The controller's
//! answer is played by a NATS client with the controller's credentials calling the identity
//! layer's `FleetAuthority::renew`, as the controller does (its own side is tested in
//! crates/warden-controller/tests/enrollment.rs).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio_stream::StreamExt as _;
use warden_fleet_identity::{AgentKey, DenyList, RenewalReply, RenewalRequest, subjects, unix_now};

use crate::fleet::Fleet;
use crate::fleet_tls::{audited, client_name, connections};

const WAIT: Duration = Duration::from_secs(30);
const DAY: i64 = 24 * 60 * 60;

fn jwt_in(creds: &str) -> String {
    let (_, rest) = creds
        .split_once("-----BEGIN NATS USER JWT-----")
        .expect("a JWT block");
    rest.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .expect("the JWT")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_past_half_life_renews_replaces_its_creds_and_reconnects_with_them() {
    let fleet = Fleet::start().await;
    // Credentials issued 20 days ago (valid 30): past half-life.
    let text = std::fs::read_to_string(&fleet.creds).expect("creds");
    let seed = text
        .split_once("-----BEGIN USER NKEY SEED-----")
        .and_then(|(_, rest)| rest.lines().map(str::trim).find(|l| !l.is_empty()))
        .expect("a seed")
        .to_string();
    let key = AgentKey::from_seed(&seed).expect("the agent's key");
    let aged = fleet
        .authority
        .lock()
        .expect("authority")
        .agent_jwt(
            &fleet.acme,
            &fleet.agent_id,
            "fleet-test-host",
            &DenyList::new(),
            unix_now() - 20 * DAY,
        )
        .expect("jwt");
    warden_agent::fleet::store_credentials(&fleet.creds, &key.credentials(&aged).expect("creds"))
        .expect("stored");

    // The controller's answer.
    let mut requests = fleet
        .controller
        .subscribe(subjects::renewal(&fleet.acme, &fleet.agent_id))
        .await
        .expect("subscribe");
    fleet.controller.flush().await.expect("flush");
    let asked = Arc::new(AtomicUsize::new(0));
    let issued = Arc::new(std::sync::Mutex::new(None::<String>));
    let (authority, tenant, agent, controller) = (
        fleet.authority.clone(),
        fleet.acme.clone(),
        fleet.agent_id.clone(),
        fleet.controller.clone(),
    );
    let (asked2, issued2) = (asked.clone(), issued.clone());
    let responder = tokio::spawn(async move {
        while let Some(message) = requests.next().await {
            asked2.fetch_add(1, Ordering::SeqCst);
            let request: RenewalRequest =
                serde_json::from_slice(&message.payload).expect("a renewal request");
            let reply = match authority.lock().expect("authority").renew(
                &request,
                &tenant,
                &agent,
                "fleet-test-host",
                &DenyList::new(),
                unix_now(),
            ) {
                Ok(jwt) => {
                    *issued2.lock().expect("issued") = Some(jwt.jwt.clone());
                    RenewalReply::renewed(&jwt)
                }
                Err(e) => RenewalReply::refused(&e),
            };
            controller
                .publish(
                    message.reply.expect("a reply subject"),
                    serde_json::to_vec(&reply).expect("json").into(),
                )
                .await
                .expect("reply");
        }
    });

    let agent = fleet.agent();
    let records = audited(&agent, "fleet.credentials-renewed").await;
    let new_jwt = issued
        .lock()
        .expect("issued")
        .clone()
        .expect("a JWT was issued");
    assert_ne!(new_jwt, aged.jwt);
    assert!(
        records[0]["data"]["expires_at"].as_i64() > Some(aged.expires_at),
        "{records:?}"
    );

    // The file holds the new JWT with the same seed, private.
    let text = std::fs::read_to_string(&fleet.creds).expect("creds");
    assert_eq!(jwt_in(&text), new_jwt);
    assert!(text.contains(&seed));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&fleet.creds)
            .expect("creds")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }

    // The connection open now signed in with the new JWT; the old one was closed.
    let name = client_name(&fleet);
    let deadline = Instant::now() + WAIT;
    loop {
        let mine: Vec<_> = connections(&fleet)
            .into_iter()
            .filter(|c| c["name"] == name.as_str())
            .collect();
        let open_with_new = mine
            .iter()
            .any(|c| c["stop"].is_null() && c["jwt"].as_str() == Some(new_jwt.as_str()));
        let closed_old = mine
            .iter()
            .any(|c| !c["stop"].is_null() && c["jwt"].as_str() == Some(aged.jwt.as_str()));
        if open_with_new && closed_old {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no open connection with the renewed JWT within {WAIT:?}: {mine:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Asked once: the new JWT's half-life is 15 days away.
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    responder.abort();
}
