//! The console in a real browser: headless Chromium driven over WebDriver (chromedriver), both
//! from Debian's packages (`cargo xtask chromium` installs them).
//!
//! "Does not run" is checked where it would show: a stored script would set
//! `window.__pwned`, which must stay undefined, and the text must be on the page as text.

use warden_fleet_wire::{
    RunId, RunResult, RunStatus, StepStatus, StepSummary, UnixMillis, WIRE_VERSION,
};

use warden_access::Role;
use warden_controller::FleetError;
use warden_controller::approvals::ApprovalState;
use warden_controller::rollout::Phase;

use crate::support::webdriver::Browser;
use crate::support::*;

const NOT_PWNED: &str = "return typeof window.__pwned;";

/// POST `body` (form fields as a JS object) to `path` from the page, with its cookies; the
/// status.
async fn post_from_page(b: &Browser, path: &str, fields: &str) -> u64 {
    let script = format!(
        "const done = arguments[arguments.length - 1];
         fetch({path:?}, {{ method: 'POST', body: new URLSearchParams({fields}) }})
           .then(r => done(r.status), e => done(String(e)));"
    );
    b.eval_async(&script).await.as_u64().expect("a status")
}

/// The page's CSRF token (the sign-out form's).
async fn csrf(b: &Browser) -> String {
    b.eval("return document.querySelector('input[name=csrf]').value;")
        .await
        .as_str()
        .expect("a token")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_noc_signs_in_filters_1000_agents_and_opens_one() {
    let h = Harness::start().await;
    let fleet = fleet_of(1000);
    seed(&h, &fleet, 400);
    let b = Browser::start().await;
    b.sign_in(&h.url, NOC_VIEWER).await;
    assert!(b.text("#count").await.starts_with("1000 agents"));
    assert_eq!(b.count("tr.agent").await, 50, "one page");
    if let Ok(path) = std::env::var("WARDEN_CONSOLE_SCREENSHOT") {
        std::fs::write(&path, b.screenshot().await).expect("screenshot written");
    }

    b.type_into("#q", "is:offline tag:role=db").await;
    b.click("#apply").await;
    let expected = fleet[..400]
        .iter()
        .filter(|a| a.tags.get("role").map(String::as_str) == Some("db"))
        .count();
    assert_eq!(expected, 40);
    b.wait_text("#count", |t| t.starts_with(&format!("{expected} agents")))
        .await;
    assert_eq!(b.count("tr.agent").await, expected);
    assert_eq!(
        b.count("tr.agent .state.offline").await,
        expected,
        "every row offline"
    );
    let shown = b
        .eval("return [...document.querySelectorAll('tr.agent a.host')].map(a => a.textContent);")
        .await;
    let offline_db: Vec<String> = fleet[..400]
        .iter()
        .filter(|a| a.tags.get("role").map(String::as_str) == Some("db"))
        .map(|a| a.hostname.clone())
        .collect();
    for host in shown.as_array().expect("hosts") {
        assert!(
            offline_db.contains(&host.as_str().unwrap_or_default().to_string()),
            "{host}"
        );
    }

    // Sort by host, descending: the last offline db host first.
    b.click("th:nth-child(2) a").await;
    b.wait_text("th:nth-child(2)", |t| t.ends_with('▲')).await;
    b.click("th:nth-child(2) a").await;
    b.wait_text("th:nth-child(2)", |t| t.ends_with('▼')).await;
    b.wait_text("tr.agent a.host", |t| t == "host-0390").await;
    assert_eq!(b.count("tr.agent").await, expected, "the filter kept");

    b.click("tr.agent a.host").await;
    b.wait_text("#host", |t| t == "host-0390").await;
    assert!(b.text("main").await.contains("role=db"));
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_viewer_has_no_run_button_and_its_post_is_refused() {
    let h = Harness::start().await;
    let agent = SeedAgent::new("acme", "web-01");
    h.heartbeats(std::slice::from_ref(&agent));
    let b = Browser::start().await;
    b.sign_in(&h.url, NOC_VIEWER).await;
    b.goto(&format!("{}/agents/{}", h.url, agent.id)).await;
    b.find("#host").await;
    assert_eq!(b.count("#trigger").await, 0, "no run form");
    assert_eq!(b.count("#run").await, 0, "no run button");
    let token = csrf(&b).await;
    let status = post_from_page(
        &b,
        &format!("/agents/{}/runs", agent.id),
        &format!("{{ csrf: {token:?}, runbook: 'disk-check' }}"),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(h.controller().progress().borrow().sends, 0, "nothing sent");
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_post_without_the_csrf_token_is_refused() {
    let h = Harness::start().await;
    let agent = SeedAgent::new("acme", "web-01");
    h.heartbeats(std::slice::from_ref(&agent));
    let b = Browser::start().await;
    b.sign_in(&h.url, NOC_OPERATOR).await;
    b.goto(&format!("{}/agents/{}", h.url, agent.id)).await;
    b.find("#trigger").await;
    let path = format!("/agents/{}/runs", agent.id);
    assert_eq!(
        post_from_page(&b, &path, "{ runbook: 'disk-check' }").await,
        403
    );
    assert_eq!(
        post_from_page(&b, &path, "{ runbook: 'disk-check', csrf: 'f00d' }").await,
        403
    );
    assert_eq!(h.controller().progress().borrow().sends, 0, "nothing sent");
    assert_eq!(h.audited("console.csrf-refused").len(), 2);
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_triggers_a_run_and_its_result_arrives_live_and_inert() {
    let h = Harness::start().await;
    let mut agent = SeedAgent::new(
        "acme",
        "<script>window.__pwned=1</script>web\u{202e}gpj.exe",
    )
    .tag("note", "<img src=x onerror=\"window.__pwned=2\">");
    agent.plugins.push(warden_fleet_wire::PluginInfo::new(
        "inventory",
        "1.0.0",
        "ab".repeat(32),
    ));
    h.heartbeats(std::slice::from_ref(&agent));
    let b = Browser::start().await;
    b.sign_in(&h.url, NOC_OPERATOR).await;
    // The fleet table: the host name and tag shown as text.
    let host = b.text("tr.agent a.host").await;
    assert_eq!(host, "<script>window.__pwned=1</script>web\\u{202e}gpj.exe");
    assert!(b.text("tr.agent").await.contains("<img src=x onerror="));
    assert_eq!(b.eval(NOT_PWNED).await, "undefined");

    b.click("tr.agent a.host").await;
    b.wait_text("#host", |t| t.contains("<script>")).await;
    assert_eq!(b.eval(NOT_PWNED).await, "undefined");
    b.type_into("#runbook", "disk-check").await;
    b.click("#run").await;
    b.wait_text("#summary", |t| t.starts_with("In progress"))
        .await;
    let url = b.url().await;
    let run = RunId::parse(url.rsplit('/').next().unwrap_or_default()).expect("a run page");
    assert_eq!(
        h.controller().progress().borrow().sends,
        1,
        "sent to the agent"
    );

    // The agent answers; the page (already open, over server-sent events) shows it.
    let now = UnixMillis::now();
    h.result(&RunResult {
        v: WIRE_VERSION,
        run,
        agent: agent.id.clone(),
        tenant: agent.tenant.clone(),
        status: RunStatus::Failed,
        started_at: Some(now),
        finished_at: Some(now),
        steps: vec![StepSummary {
            name: "df".into(),
            status: StepStatus::Failed,
            detail: "<script>window.__pwned=3</script>/var 97% full".into(),
        }],
        steps_omitted: 0,
        error: Some("<img src=x onerror=\"window.__pwned=4\">".into()),
    });
    b.wait_text("#summary", |t| t.starts_with("Finished")).await;
    let output = b.text("pre.output").await;
    assert_eq!(output, "<script>window.__pwned=3</script>/var 97% full");
    assert!(b.text("#agents").await.contains("failed"));
    assert_eq!(b.eval(NOT_PWNED).await, "undefined");
    // And after a reload, rendered by the page itself.
    b.goto(&url).await;
    b.wait_text("#summary", |t| t.starts_with("Finished")).await;
    assert_eq!(b.eval(NOT_PWNED).await, "undefined");
    let actions = h.audited("console.action");
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0]["decision"], "dispatched");
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_session_ends_and_the_browser_is_sent_to_sign_in() {
    let h = Harness::start().await;
    let b = Browser::start().await;
    b.sign_in(&h.url, NOC_VIEWER).await;
    h.clock
        .advance_ms(i64::try_from(IDLE.as_millis()).expect("ms") + 1_000);
    b.goto(&h.url).await;
    b.find("#token").await;
    assert!(b.url().await.ends_with("/signin?ended=idle-timeout"));
    assert!(b.text("main").await.contains("time without use"));
    // The cookie is HttpOnly: the page's scripts cannot read it.
    assert_eq!(b.eval("return document.cookie;").await, "");
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_approves_a_pending_rollout_in_the_browser() {
    let h = Harness::with_approvals().await;
    h.agents("acme", &["db-1", "db-2"]);
    let bundle = plugin_bundle(&h.dir.path().join("plugin"), "0.2.0");
    // Two agents, above the policy's one: operator B's start waits as a request.
    let requester = caller("noc-operator-b", Role::Operator);
    let request = match h
        .start_rollout(&requester, &bundle, "tenant=acme", None)
        .await
    {
        Err(FleetError::NeedsApproval(id)) => id,
        other => panic!("expected a request, got {other:?}"),
    };

    let b = Browser::start().await;
    b.sign_in(&h.url, NOC_OPERATOR).await;
    b.click("nav a[href='/approvals']").await;
    let section = format!("section[id='approval-{request}']");
    b.wait_text(&format!("{section} .requester"), |t| t == "noc-operator-b")
        .await;
    let sha = b.text(&format!("{section} code.sha256")).await;
    assert_eq!(sha, warden_core::sha256_hex(&bundle), "bound to the bundle");
    assert!(b.text(&section).await.contains("waves=100%"), "the plan");
    if let Ok(path) = std::env::var("WARDEN_CONSOLE_APPROVALS_SCREENSHOT") {
        std::fs::write(&path, b.screenshot().await).expect("screenshot written");
    }
    b.click(&format!("{section} button.approve")).await;
    b.wait_text(&format!("{section} span.state"), |t| t == "approved")
        .await;
    assert_eq!(
        b.count(&format!("{section} button.approve")).await,
        0,
        "decided once"
    );

    // Recorded by the controller: approved by noc-operator, waiting to be presented.
    let viewer = caller("test", Role::Viewer);
    let record = h.controller().approval(&viewer, &request).expect("request");
    assert_eq!(record.state, ApprovalState::Approved);
    assert_eq!(record.decided_by.as_deref(), Some("noc-operator"));
    let actions = h.audited("console.action");
    assert_eq!(actions.last().expect("audited")["decision"], "done");

    // The requester presents it and the rollout starts; the console lists it running.
    let started = h
        .start_rollout(&requester, &bundle, "tenant=acme", Some(request))
        .await
        .expect("the approved rollout starts");
    assert_eq!(started.record.state.phase, Phase::Running);
    b.click("nav a[href='/rollouts']").await;
    b.click(&format!("a[href='/rollouts/{}']", started.record.id))
        .await;
    b.wait_text("#state", |t| t == "running").await;
    assert_eq!(b.count("#pause").await, 1, "an operator may pause it");
    b.quit().await;
}
