//! The console's auth rules over plain HTTP: sign-in with the API's tokens and roles, the
//! session cookie's attributes, CSRF on every POST, role and tenant checks, the timeouts, and
//! the audit record of each.

use hyper::{StatusCode, header};

use crate::support::http::{Client, form};
use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn pages_need_a_session_and_sign_in_sets_a_strict_httponly_cookie() {
    let h = Harness::start().await;
    let mut anonymous = Client::new(&h.url);
    let r = anonymous.get("/").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.header(header::LOCATION).as_deref(), Some("/signin"));

    let mut c = Client::new(&h.url);
    let form_page = c.get("/signin").await;
    let form_cookie = c.cookie.clone().expect("the form has a session");
    let set = form_page.header(header::SET_COOKIE).expect("a cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP here: {set}");
    let csp = form_page
        .header(header::CONTENT_SECURITY_POLICY)
        .expect("a CSP");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let csrf = form_page.csrf().expect("csrf");
    let r = c
        .post("/signin", &form(&[("csrf", &csrf), ("token", NOC_VIEWER)]))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let session = c.cookie.clone().expect("a session cookie");
    assert_ne!(session, form_cookie, "a new id at sign-in (no fixation)");
    assert_eq!(session.len(), 64);
    let r = c.get("/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.contains("noc-viewer (viewer, all tenants)"),
        "{}",
        r.body
    );
    let signins = h.audited("console.signin");
    assert_eq!(signins.len(), 1);
    assert_eq!(signins[0]["caller"], "noc-viewer");
    assert_eq!(signins[0]["role"], "viewer");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_token_is_refused_and_audited_without_the_token() {
    let h = Harness::start().await;
    let mut c = Client::new(&h.url);
    let r = c.sign_in("tok-not-configured").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("not valid"), "{}", r.body);
    assert_eq!(
        c.get("/").await.status,
        StatusCode::SEE_OTHER,
        "not signed in"
    );
    let failed = h.audited("console.signin-failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["reason"], "unknown token");
    let text = serde_json::to_string(&h.audit().iter().map(|r| &r.data).collect::<Vec<_>>())
        .expect("json");
    assert!(
        !text.contains("tok-not-configured"),
        "the token is never logged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_failed_sign_ins_are_throttled_per_address_until_the_window_passes() {
    let h = Harness::start().await;
    let mut c = Client::new(&h.url);
    for i in 0..warden_console::throttle::MAX_FAILURES {
        let r = c.sign_in(&format!("tok-guess-{i}")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "guess {i}");
    }
    // Even the right token waits now: the limit is on the address, not on the guess.
    let r = c.sign_in(NOC_VIEWER).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert_eq!(r.header(header::RETRY_AFTER).as_deref(), Some("300"));
    assert!(
        r.body
            .contains("Too many failed sign-ins from your address; try again in 5 minutes."),
        "{}",
        r.body
    );
    assert!(
        c.get("/").await.status == StatusCode::SEE_OTHER,
        "not signed in"
    );
    let throttled = h.audited("console.signin-throttled");
    assert_eq!(throttled.len(), 1);
    assert!(
        throttled[0]["remote"]
            .as_str()
            .is_some_and(|r| r.starts_with("127.0.0.1:")),
        "{throttled:?}"
    );
    assert_eq!(h.audited("console.signin-failed").len(), 5);

    h.clock.advance_ms(warden_console::throttle::WINDOW_MS);
    let r = c.sign_in(NOC_VIEWER).await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "the window passed: {}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_post_without_its_csrf_token_is_refused_and_audited() {
    let h = Harness::start().await;
    let agent = SeedAgent::new("acme", "web-01");
    h.heartbeats(std::slice::from_ref(&agent));
    let mut c = Client::new(&h.url);
    c.sign_in(NOC_OPERATOR).await;
    let page = c.get(&format!("/agents/{}", agent.id)).await;
    let csrf = page.csrf().expect("the page has the session's token");
    let path = format!("/agents/{}/runs", agent.id);
    let sends = h.controller().progress().borrow().sends;
    for body in [
        form(&[("runbook", "disk-check")]),
        form(&[("runbook", "disk-check"), ("csrf", &"0".repeat(64))]),
    ] {
        let r = c.post(&path, &body).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    }
    // Sign-out is a POST too.
    assert_eq!(c.post("/signout", "").await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        h.controller().progress().borrow().sends,
        sends,
        "nothing was sent"
    );
    let refused = h.audited("console.csrf-refused");
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert_eq!(refused[0]["reason"], "no token");
    assert_eq!(refused[1]["reason"], "wrong token");
    // With the token: dispatched, and audited as the console's action.
    let r = c
        .post(&path, &form(&[("runbook", "disk-check"), ("csrf", &csrf)]))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(
        r.header(header::LOCATION)
            .expect("to the run")
            .starts_with("/runs/")
    );
    assert_eq!(h.controller().progress().borrow().sends, sends + 1);
    let actions = h.audited("console.action");
    assert_eq!(actions.last().expect("audited")["decision"], "dispatched");
    assert_eq!(h.audited("fleet.dispatch").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_viewer_gets_no_run_form_and_403_and_nothing_is_sent() {
    let h = Harness::start().await;
    let agent = SeedAgent::new("acme", "web-01");
    h.heartbeats(std::slice::from_ref(&agent));
    let mut c = Client::new(&h.url);
    c.sign_in(NOC_VIEWER).await;
    let page = c.get(&format!("/agents/{}", agent.id)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        !page.body.contains("id=\"trigger\""),
        "no run form for a viewer"
    );
    let csrf = page.csrf().expect("the sign-out form's token");
    let r = c
        .post(
            &format!("/agents/{}/runs", agent.id),
            &form(&[("runbook", "disk-check"), ("csrf", &csrf)]),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains("operator role"), "{}", r.body);
    assert_eq!(h.controller().progress().borrow().sends, 0);
    let actions = h.audited("console.action");
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0]["decision"], "denied");
    assert_eq!(actions[0]["caller"], "noc-viewer");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_scoped_session_sees_and_acts_on_its_tenant_only() {
    let h = Harness::start().await;
    let ours = SeedAgent::new("acme", "acme-web");
    let theirs = SeedAgent::new("globex", "globex-web");
    h.heartbeats(&[ours.clone(), theirs.clone()]);
    let mut c = Client::new(&h.url);
    c.sign_in(ACME_OPERATOR).await;
    let fleet = c.get("/").await;
    assert!(fleet.body.contains("acme-web"), "{}", fleet.body);
    assert!(
        !fleet.body.contains("globex-web"),
        "another tenant's agent is not listed"
    );
    assert!(fleet.body.contains("1 agent,"), "{}", fleet.body);
    assert_eq!(
        c.get("/?q=tenant%3Aglobex").await.status,
        StatusCode::FORBIDDEN
    );
    let other = c.get(&format!("/agents/{}", theirs.id)).await;
    assert_eq!(
        other.status,
        StatusCode::NOT_FOUND,
        "not even its existence"
    );
    let csrf = fleet.csrf().expect("csrf");
    let r = c
        .post(
            &format!("/agents/{}/runs", theirs.id),
            &form(&[("runbook", "disk-check"), ("csrf", &csrf)]),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(h.controller().progress().borrow().sends, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_end_when_idle_at_the_absolute_limit_and_at_sign_out() {
    let h = Harness::start().await;
    let mut c = Client::new(&h.url);
    c.sign_in(NOC_VIEWER).await;
    h.clock
        .advance_ms(i64::try_from(IDLE.as_millis()).expect("ms") + 1_000);
    let r = c.get("/").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        r.header(header::LOCATION).as_deref(),
        Some("/signin?ended=idle-timeout")
    );
    assert_eq!(
        c.get("/").await.header(header::LOCATION).as_deref(),
        Some("/signin")
    );

    // Used every 4 minutes (under the idle timeout) it still ends at the absolute limit.
    let mut c = Client::new(&h.url);
    c.sign_in(NOC_VIEWER).await;
    let mut ended_at = None;
    for minute in (4..=64).step_by(4) {
        h.clock.advance_ms(4 * 60_000);
        let r = c.get("/").await;
        if r.status != StatusCode::OK {
            assert_eq!(
                r.header(header::LOCATION).as_deref(),
                Some("/signin?ended=absolute-timeout")
            );
            ended_at = Some(minute);
            break;
        }
    }
    assert_eq!(ended_at, Some(64), "the first use past 60 minutes");
    let ended = h.audited("console.session-ended");
    let reasons: Vec<&str> = ended.iter().filter_map(|e| e["reason"].as_str()).collect();
    assert_eq!(reasons, ["idle-timeout", "absolute-timeout"]);

    let mut c = Client::new(&h.url);
    c.sign_in(NOC_VIEWER).await;
    let csrf = c.get("/").await.csrf().expect("csrf");
    let kept = c.cookie.clone();
    let r = c.post("/signout", &form(&[("csrf", &csrf)])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    c.cookie = kept;
    assert_eq!(
        c.get("/").await.status,
        StatusCode::SEE_OTHER,
        "the old id is dead"
    );
    assert_eq!(h.audited("console.signout").len(), 1);
}
