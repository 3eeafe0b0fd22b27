//! The `http` capability end to end: the `fetch` guest sends requests from inside a real
//! component to servers these tests start on 127.0.0.1, through the agent's plugin manager,
//! under a manifest and a site policy each test writes. Every denial is also checked from the
//! server's side: a refused call never reaches it.

use serde_json::json;
use warden_agent::PluginManager;
use warden_core::report::{CapabilityUse, Invocation, Output};
use warden_core::{Limit, RunError, RunReport, RunRequest};
use warden_tests::Sandbox;
use warden_tests::http_server::{Reply, TestServer};

/// What a test grants: the manifest's origins, the policy's origins and networks, extra limits.
struct Grants<'a> {
    request: Vec<String>,
    allow: Vec<String>,
    networks: &'a [&'a str],
    policy_limits: &'a str,
    manifest_limits: &'a str,
}

impl<'a> Grants<'a> {
    /// The same origins requested and allowed, loopback named by the policy.
    fn loopback(origins: &[String]) -> Grants<'a> {
        Grants {
            request: origins.to_vec(),
            allow: origins.to_vec(),
            networks: &["127.0.0.0/8"],
            policy_limits: "",
            manifest_limits: "",
        }
    }
}

fn toml_list<T: AsRef<str>>(items: &[T]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("{:?}", i.as_ref())).collect();
    format!("[{}]", quoted.join(", "))
}

fn runner(sb: &Sandbox, g: &Grants<'_>) -> PluginManager {
    let policy = format!(
        "[limits]\n{}\n[allow]\nhttp = {}\nhttp-networks = {}\n",
        g.policy_limits,
        toml_list(&g.allow),
        toml_list(g.networks)
    );
    let runner = sb.runner(&policy);
    let manifest = format!(
        "name = \"fetch\"\nversion = \"0.1.0\"\nrole = \"check\"\n\
         [capabilities]\nhttp = {}\n[limits]\n{}\n",
        toml_list(&g.request),
        g.manifest_limits
    );
    sb.install(&runner, "fetch", Some(&manifest));
    runner
}

fn fetch(runner: &PluginManager, config: serde_json::Value) -> RunReport {
    runner.run(&RunRequest::new("fetch", Invocation::Check).with_config(config))
}

/// The check's summary (`<status> <body>`), or the run's error.
fn summary(report: &RunReport) -> Result<String, RunError> {
    match &report.result {
        Ok(Output::Check(c)) => Ok(c.summary.clone()),
        Ok(other) => panic!("not a check result: {other:?}"),
        Err(e) => Err(e.clone()),
    }
}

/// The plugin error's code and message (the cap-error code and text).
fn cap_error(report: &RunReport) -> (String, String) {
    match &report.result {
        Err(RunError::Plugin { code, message }) => (code.clone(), message.clone()),
        other => panic!("expected a capability error, got {other:?}"),
    }
}

fn http_uses(report: &RunReport) -> Vec<&CapabilityUse> {
    report
        .capability_uses
        .iter()
        .filter(|u| u.capability == "http")
        .collect()
}

#[test]
pub(crate) fn allowed_get_and_post_carry_headers_and_body_and_are_audited() {
    let server = TestServer::start(Reply::Fixed {
        status: 200,
        headers: vec![("X-Reply".into(), "yes".into())],
        body: b"pong".to_vec(),
    });
    let sb = Sandbox::new();
    let runner = runner(&sb, &Grants::loopback(&[server.origin()]));

    let url = format!("{}/health?x=1", server.origin());
    let report = fetch(
        &runner,
        json!({"url": url, "headers": [["Authorization", "Bearer secret-token"]]}),
    );
    assert_eq!(summary(&report).expect("GET succeeds"), "200 pong");
    let response = report
        .logs
        .iter()
        .find(|l| l.message == "response")
        .expect("the guest logs the response headers");
    assert!(
        response.fields.contains(&("x-reply".into(), "yes".into())),
        "{response:?}"
    );
    let uses = http_uses(&report);
    assert_eq!(uses.len(), 1, "{uses:?}");
    assert!(uses[0].allowed && uses[0].function == "send" && uses[0].target == url);
    assert_eq!(uses[0].args, vec!["GET".to_string()]);

    let report = fetch(
        &runner,
        json!({"method": "POST", "url": format!("{}/tickets", server.origin()),
               "headers": [["Content-Type", "application/json"]], "body": "{\"summary\":\"disk full\"}"}),
    );
    assert_eq!(summary(&report).expect("POST succeeds"), "200 pong");

    let seen = server.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("GET", "/health?x=1")
    );
    assert_eq!(
        seen[0].header("host"),
        Some(server.addr.to_string().as_str())
    );
    assert_eq!(seen[0].header("authorization"), Some("Bearer secret-token"));
    assert_eq!(
        (seen[1].method.as_str(), seen[1].target.as_str()),
        ("POST", "/tickets")
    );
    assert_eq!(seen[1].header("content-type"), Some("application/json"));
    assert_eq!(seen[1].body, b"{\"summary\":\"disk full\"}");
    assert_eq!(seen[1].header("content-length"), Some("23"));
}

#[test]
fn an_origin_not_granted_is_denied_before_any_name_is_resolved_or_socket_opened() {
    let granted = TestServer::start(Reply::ok("granted"));
    let other_port = TestServer::start(Reply::ok("other port"));
    let sb = Sandbox::new();
    let runner = runner(&sb, &Grants::loopback(&[granted.origin()]));
    for url in [
        // Another host (a name that would not even resolve: no lookup is made).
        format!("http://not-granted.example:{}/", granted.port()),
        // The granted host on another port.
        format!("{}/", other_port.origin()),
        // The granted host and port over another scheme.
        format!("https://{}/", granted.addr),
    ] {
        let report = fetch(&runner, json!({ "url": url }));
        let (code, message) = cap_error(&report);
        assert_eq!(code, "denied", "{url}: {message}");
        assert!(message.contains("is not granted"), "{url}: {message}");
        let uses = http_uses(&report);
        assert!(uses.len() == 1 && !uses[0].allowed, "{url}: {uses:?}");
        assert_eq!(uses[0].reason.as_deref(), Some(message.as_str()));
    }
    assert_eq!(granted.connections() + other_port.connections(), 0);
}

#[test]
fn a_granted_name_that_resolves_to_loopback_is_denied_unless_the_policy_names_loopback() {
    let server = TestServer::start(Reply::ok("local"));
    let origin = format!("http://localhost:{}", server.port());
    let sb = Sandbox::new();
    let closed = runner(
        &sb,
        &Grants {
            networks: &[],
            ..Grants::loopback(std::slice::from_ref(&origin))
        },
    );
    let report = fetch(&closed, json!({ "url": format!("{origin}/") }));
    let (code, message) = cap_error(&report);
    assert_eq!(code, "denied", "{message}");
    assert!(
        message.contains("`localhost` resolves only to addresses that may not be dialled")
            && message.contains("loopback, not in the site policy's allow.http-networks"),
        "{message}"
    );
    // The origin was granted (first record), the addresses were not (second record).
    let uses = http_uses(&report);
    assert_eq!(
        uses.iter().map(|u| u.allowed).collect::<Vec<_>>(),
        vec![true, false],
        "{uses:?}"
    );
    assert_eq!(server.connections(), 0);

    let sb = Sandbox::new();
    let open = runner(
        &sb,
        &Grants {
            networks: &["127.0.0.0/8", "::1"],
            ..Grants::loopback(std::slice::from_ref(&origin))
        },
    );
    let report = fetch(&open, json!({ "url": format!("{origin}/") }));
    assert_eq!(
        summary(&report).expect("loopback named: allowed"),
        "200 local"
    );
    assert_eq!(
        server.requests()[0].header("host"),
        Some(&origin["http://".len()..])
    );
}

#[test]
fn ip_literal_spellings_and_user_info_are_refused_and_mapped_addresses_checked_as_ipv4() {
    let server = TestServer::start(Reply::ok("reached"));
    let port = server.port();
    let mapped_loopback = format!("http://[::ffff:127.0.0.1]:{port}");
    let mapped_metadata = format!("http://[::ffff:169.254.169.254]:{port}");
    let metadata = format!("http://169.254.169.254:{port}");
    let sb = Sandbox::new();
    // Every origin below is granted, and the policy names every private range it could: what
    // stops these calls is the spelling or the address, not a missing grant.
    let origins = vec![
        server.origin(),
        mapped_loopback.clone(),
        mapped_metadata.clone(),
        metadata.clone(),
    ];
    let runner = runner(
        &sb,
        &Grants {
            networks: &["127.0.0.0/8", "169.254.0.0/16"],
            ..Grants::loopback(&origins)
        },
    );
    for (url, code, why) in [
        (
            format!("http://2130706433:{port}/"),
            "invalid",
            "canonical dotted-quad",
        ),
        (
            format!("http://0177.0.0.1:{port}/"),
            "invalid",
            "canonical dotted-quad",
        ),
        (
            format!("http://0x7f000001:{port}/"),
            "invalid",
            "canonical dotted-quad",
        ),
        (
            format!("http://allowed.example@127.0.0.1:{port}/"),
            "invalid",
            "user info",
        ),
        (
            format!("{mapped_metadata}/latest/meta-data/"),
            "denied",
            "cloud metadata address, never dialled",
        ),
        (
            format!("{metadata}/latest/meta-data/"),
            "denied",
            "cloud metadata address, never dialled",
        ),
    ] {
        let report = fetch(&runner, json!({ "url": url }));
        let (got, message) = cap_error(&report);
        assert_eq!(got, code, "{url}: {message}");
        assert!(message.contains(why), "{url}: {message}");
        assert!(
            http_uses(&report).last().is_some_and(|u| !u.allowed),
            "{url}: the refusal is recorded"
        );
    }
    // A mapped loopback address is loopback: dialled (as 127.0.0.1) because the policy names
    // 127.0.0.0/8, and denied under a policy that does not.
    let report = fetch(&runner, json!({ "url": format!("{mapped_loopback}/") }));
    assert_eq!(
        summary(&report).expect("mapped loopback, named"),
        "200 reached"
    );
    let sb = Sandbox::new();
    let closed = runner_with_no_networks(&sb, std::slice::from_ref(&mapped_loopback));
    let (code, message) = cap_error(&fetch(
        &closed,
        json!({ "url": format!("{mapped_loopback}/") }),
    ));
    assert_eq!(code, "denied", "{message}");
    assert!(
        message.contains("::ffff:127.0.0.1 is loopback"),
        "{message}"
    );
}

fn runner_with_no_networks(sb: &Sandbox, origins: &[String]) -> PluginManager {
    runner(
        sb,
        &Grants {
            networks: &[],
            ..Grants::loopback(origins)
        },
    )
}

#[test]
fn a_redirect_to_another_host_is_returned_to_the_plugin_not_followed() {
    let target = TestServer::start(Reply::ok("followed"));
    let redirector = TestServer::start(Reply::Fixed {
        status: 302,
        headers: vec![("Location".into(), format!("{}/stolen", target.origin()))],
        body: vec![],
    });
    let sb = Sandbox::new();
    // Even with the redirect's target granted, the host does not follow it.
    let runner = runner(
        &sb,
        &Grants::loopback(&[redirector.origin(), target.origin()]),
    );
    let report = fetch(
        &runner,
        json!({ "url": format!("{}/start", redirector.origin()) }),
    );
    assert_eq!(summary(&report).expect("the 3xx is the answer"), "302 ");
    let response = report
        .logs
        .iter()
        .find(|l| l.message == "response")
        .expect("headers");
    assert!(
        response
            .fields
            .contains(&("location".into(), format!("{}/stolen", target.origin()))),
        "{response:?}"
    );
    assert_eq!(target.connections(), 0, "the redirect was not followed");
}

#[test]
fn a_response_that_never_comes_is_ended_by_the_runs_deadline_or_the_calls_own_timeout() {
    let server = TestServer::start(Reply::Never);
    let sb = Sandbox::new();
    let runner = runner(
        &sb,
        &Grants {
            manifest_limits: "timeout-ms = 1500",
            ..Grants::loopback(&[server.origin()])
        },
    );
    let report = fetch(
        &runner,
        json!({ "url": format!("{}/slow", server.origin()) }),
    );
    assert!(
        matches!(
            report.result,
            Err(RunError::LimitExceeded(Limit::Timeout { limit_ms: 1500 }))
        ),
        "{:?}",
        report.result
    );
    assert_eq!(server.requests().len(), 1, "the request was sent");

    // The plugin's own, shorter timeout is a `timed-out` it can handle.
    let report = fetch(
        &runner,
        json!({ "url": format!("{}/slow", server.origin()), "timeout_ms": 100 }),
    );
    let (code, _) = cap_error(&report);
    assert_eq!(code, "timed-out");
}

#[test]
fn a_cancelled_run_ends_its_call_in_flight() {
    let server = TestServer::start(Reply::Never);
    let sb = Sandbox::new();
    let runner = runner(&sb, &Grants::loopback(&[server.origin()]));
    let req = RunRequest::new("fetch", Invocation::Check)
        .with_config(json!({ "url": format!("{}/slow", server.origin()) }));
    let cancel = req.cancel.clone();
    let report = std::thread::scope(|s| {
        let run = s.spawn(|| runner.run(&req));
        server.wait_for_request();
        cancel.cancel();
        run.join().expect("the run thread")
    });
    assert!(
        matches!(report.result, Err(RunError::Cancelled)),
        "{:?}",
        report.result
    );
}

#[test]
fn an_endless_response_is_cut_at_the_size_limit() {
    let server = TestServer::start(Reply::Endless);
    let sb = Sandbox::new();
    let runner = runner(
        &sb,
        &Grants {
            policy_limits: "http-response-bytes = 65536",
            ..Grants::loopback(&[server.origin()])
        },
    );
    let report = fetch(&runner, json!({ "url": format!("{}/", server.origin()) }));
    let (code, message) = cap_error(&report);
    assert_eq!(code, "limit-exceeded", "{message}");
    assert!(
        message.contains("http-response-bytes") && message.contains("65536"),
        "{message}"
    );
}

#[test]
fn headers_the_host_sets_or_that_change_the_connection_are_refused() {
    let server = TestServer::start(Reply::ok("reached"));
    let sb = Sandbox::new();
    let runner = runner(&sb, &Grants::loopback(&[server.origin()]));
    for (name, value) in [
        ("Host", "evil.example"),
        ("Transfer-Encoding", "chunked"),
        ("Connection", "upgrade"),
        ("Content-Length", "0"),
        ("Proxy-Authorization", "Basic eA=="),
        ("X-Split", "a\r\nHost: evil.example"),
    ] {
        let report = fetch(
            &runner,
            json!({ "url": format!("{}/", server.origin()), "headers": [[name, value]] }),
        );
        let (code, message) = cap_error(&report);
        assert_eq!(code, "invalid", "{name}: {message}");
        assert!(
            http_uses(&report).first().is_some_and(|u| !u.allowed),
            "{name}: the refusal is recorded"
        );
    }
    assert_eq!(server.connections(), 0);
}

#[test]
fn https_to_a_server_that_does_not_speak_tls_fails_in_the_handshake() {
    let server = TestServer::start(Reply::ok("plain"));
    let origin = format!("https://{}", server.addr);
    let sb = Sandbox::new();
    let runner = runner(&sb, &Grants::loopback(std::slice::from_ref(&origin)));
    let (code, message) = cap_error(&fetch(&runner, json!({ "url": format!("{origin}/") })));
    assert_eq!(code, "failed", "{message}");
    assert!(message.contains("TLS"), "{message}");
    assert!(
        server.requests().is_empty(),
        "no plain-text request was sent"
    );
}
