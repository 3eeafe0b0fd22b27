//! `warden:plugin/http`: outbound requests to granted origins. In order: the request is checked
//! (method, the URL by the strict parser of `warden_core::egress`, headers a plugin may not set);
//! the origin (scheme, host, port) goes through the chokepoint, before any name is resolved; the
//! name is resolved and every address checked ([`Grant::dialable`](warden_core::grant::Grant::dialable)),
//! a refusal recorded as a second, denied use; then [`crate::http_client`] connects to exactly
//! the addresses that passed. The call is bounded by the smallest of the plugin's own timeout,
//! the site's `http-timeout-ms` and the run's deadline, and ends at once on cancellation.

use super::{CapFailure, HostState, RunContext};
use crate::bindings::CapError;
use crate::bindings::warden::plugin::http::{Host, Request, Response};
use crate::bindings::warden::plugin::types::Field;
use crate::http_client::{self, Exchange, FetchError, Interrupted};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use warden_core::egress::{HttpHost, HttpUrl};
use warden_core::error::RunError;
use warden_core::grant::Operation;

/// Methods a plugin may use. `CONNECT` (a tunnel past every check here) and `TRACE` are not
/// among them.
pub const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
/// Request headers the host sets itself or that change the connection rather than the request:
/// a plugin setting them could smuggle a second request or reach another virtual host. Any
/// `proxy-*` header is refused too.
pub const FORBIDDEN_HEADERS: [&str; 9] = [
    "host",
    "connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "content-length",
    "expect",
];
/// Most request headers one call may set.
pub const MAX_REQUEST_HEADERS: usize = 64;
/// Most bytes of request header names and values together (a bearer token is a few KiB).
pub const MAX_REQUEST_HEADER_BYTES: usize = 64 << 10;
/// Largest request body: a ticket or a webhook payload is kilobytes.
pub const MAX_REQUEST_BODY_BYTES: usize = 16 << 20;

/// A request that passed the checks that need no grant.
struct Checked {
    method: http::Method,
    url: HttpUrl,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

fn check_request(req: &Request) -> Result<Checked, String> {
    if !METHODS.contains(&req.method.as_str()) {
        return Err(format!(
            "method `{}` is not one of {}",
            req.method.escape_debug(),
            METHODS.join(", ")
        ));
    }
    let method = http::Method::from_bytes(req.method.as_bytes()).map_err(|e| e.to_string())?;
    let url = HttpUrl::parse(&req.url)?;
    http::uri::PathAndQuery::try_from(url.path_and_query.as_str())
        .map_err(|e| format!("the URL's path: {e}"))?;
    if req.headers.len() > MAX_REQUEST_HEADERS {
        return Err(format!("more than {MAX_REQUEST_HEADERS} request headers"));
    }
    let header_bytes: usize = req
        .headers
        .iter()
        .map(|f| f.key.len() + f.value.len())
        .sum();
    if header_bytes > MAX_REQUEST_HEADER_BYTES {
        return Err(format!(
            "request headers larger than {MAX_REQUEST_HEADER_BYTES} bytes"
        ));
    }
    let mut headers = Vec::with_capacity(req.headers.len());
    for Field { key, value } in &req.headers {
        let name = http::HeaderName::from_bytes(key.as_bytes())
            .map_err(|_| format!("`{}` is not a header name", key.escape_debug()))?;
        if FORBIDDEN_HEADERS.contains(&name.as_str()) || name.as_str().starts_with("proxy-") {
            return Err(format!(
                "header `{name}` may not be set by a plugin (the host sets it, or it changes the connection)"
            ));
        }
        let value = http::HeaderValue::from_str(value)
            .map_err(|_| format!("the value of header `{name}` has a control character"))?;
        headers.push((name, value));
    }
    if req
        .body
        .as_ref()
        .is_some_and(|b| b.len() > MAX_REQUEST_BODY_BYTES)
    {
        return Err(format!(
            "request body larger than {MAX_REQUEST_BODY_BYTES} bytes"
        ));
    }
    Ok(Checked {
        method,
        url,
        headers,
    })
}

impl Host for HostState {
    fn send(&mut self, req: Request) -> Result<Response, CapFailure> {
        let cx = &mut self.cx;
        let args = [req.method.clone()];
        let checked = match check_request(&req) {
            Ok(c) => c,
            Err(why) => {
                cx.record("http", "send", &req.url, &args, Some(why.clone()))?;
                return Err(CapError::Invalid(why).into());
            }
        };
        let origin = checked.url.origin.clone();
        cx.authorize(Operation::Http { origin: &origin }, "send", &req.url, &args)?;

        let remaining = cx.remaining()?;
        let asked = req
            .timeout_ms
            .map(|ms| Duration::from_millis(ms.into()))
            .unwrap_or(Duration::MAX);
        let own_limit = asked.min(cx.grant.limits.http_timeout);
        let run_bound = own_limit >= remaining;
        let deadline = Instant::now()
            .checked_add(own_limit)
            .map_or(cx.deadline, |d| d.min(cx.deadline));
        let cancel = cx.cancel.clone();

        let resolved = match &origin.host {
            HttpHost::Ip(ip) => vec![*ip],
            HttpHost::Name(name) => {
                match http_client::resolve(name, origin.port, deadline, &cancel) {
                    Ok(Ok(ips)) => ips,
                    Ok(Err(e)) => {
                        return Err(
                            CapError::Failed(format!("cannot resolve `{name}`: {e}")).into()
                        );
                    }
                    Err(i) => return Err(interrupted(cx, i, run_bound)),
                }
            }
        };
        let dial = match cx.grant.dialable(&origin.host.to_string(), &resolved) {
            Ok(dial) => dial,
            Err(why) => {
                cx.deny_last(&why)?;
                return Err(CapError::Denied(why).into());
            }
        };
        let tls = match http_client::system_tls() {
            Ok(tls) => tls,
            Err(e) => return Err(CapError::Failed(format!("TLS setup: {e}")).into()),
        };
        let exchange = Exchange {
            method: checked.method,
            addresses: dial
                .into_iter()
                .map(|ip| SocketAddr::new(ip, origin.port))
                .collect(),
            origin,
            path_and_query: checked.url.path_and_query,
            headers: checked.headers,
            body: req.body.unwrap_or_default(),
            response_cap: cx.grant.limits.http_response_bytes,
        };
        match http_client::fetch(exchange, tls, deadline, &cancel) {
            Ok(Ok(fetched)) => Ok(Response {
                status: fetched.status,
                headers: fetched
                    .headers
                    .into_iter()
                    .map(|(key, value)| Field { key, value })
                    .collect(),
                body: fetched.body,
            }),
            Ok(Err(FetchError::TooLarge(limit))) => Err(CapError::LimitExceeded(format!(
                "http-response-bytes: the response body is larger than {limit} bytes"
            ))
            .into()),
            Ok(Err(e)) => Err(CapError::Failed(e.to_string()).into()),
            Err(i) => Err(interrupted(cx, i, run_bound)),
        }
    }
}

/// A call cut short: a cancellation ends the run; a timeout ends the run when the run's deadline
/// was the bound, else it is the call's own `timed-out`.
fn interrupted(cx: &mut RunContext, why: Interrupted, run_bound: bool) -> CapFailure {
    match why {
        Interrupted::Cancelled => cx.stop(RunError::Cancelled),
        Interrupted::TimedOut if run_bound => match cx.remaining() {
            Err(stop) => stop,
            Ok(_) => CapError::TimedOut.into(),
        },
        Interrupted::TimedOut => CapError::TimedOut.into(),
        Interrupted::Lost(e) => CapError::Failed(e).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> Request {
        Request {
            method: method.into(),
            url: url.into(),
            headers: headers
                .iter()
                .map(|(k, v)| Field {
                    key: (*k).into(),
                    value: (*v).into(),
                })
                .collect(),
            body: None,
            timeout_ms: None,
        }
    }

    #[test]
    fn forbidden_headers_methods_and_urls_are_refused_before_any_grant_check() {
        for header in [
            "Host",
            "connection",
            "Transfer-Encoding",
            "upgrade",
            "TE",
            "keep-alive",
            "content-length",
            "Proxy-Authorization",
            "proxy-connection",
        ] {
            let err = check_request(&request("GET", "https://a.example/", &[(header, "x")]))
                .err()
                .unwrap_or_default();
            assert!(err.contains("may not be set"), "{header}: {err:?}");
        }
        let err = check_request(&request(
            "GET",
            "https://a.example/",
            &[("x-a", "b\r\nHost: c")],
        ))
        .err()
        .unwrap_or_default();
        assert!(err.contains("control character"), "{err:?}");
        for method in ["CONNECT", "TRACE", "get", "G ET"] {
            assert!(
                check_request(&request(method, "https://a.example/", &[])).is_err(),
                "{method}"
            );
        }
        assert!(check_request(&request("GET", "https://a@b.example/", &[])).is_err());
        let ok = check_request(&request(
            "POST",
            "https://a.example:8443/x?y=1",
            &[
                ("Authorization", "Bearer t"),
                ("content-type", "application/json"),
            ],
        ))
        .expect("a plain request passes");
        assert_eq!(ok.url.path_and_query, "/x?y=1");
        assert_eq!(ok.headers.len(), 2);
    }
}
