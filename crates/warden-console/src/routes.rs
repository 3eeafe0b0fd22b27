//! The console's handlers. Each one finds the session its cookie names (or sends the browser
//! to sign in), checks the CSRF token on every POST, lets the controller check role and scope,
//! and audits sign-ins, failed sign-ins, sign-outs, ended sessions, refusals and actions through
//! the controller's audit log before answering.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::Markup;
use serde::Deserialize;
use serde_json::json;
use warden_access::{Caller, Role};
use warden_controller::approvals::{ApprovalError, RequestId};
use warden_controller::controller::DispatchRequest;
use warden_controller::rollout::Command;
use warden_controller::store::query::SortKey;
use warden_controller::{Controller, FleetError};
use warden_fleet_identity::AgentId;
use warden_fleet_wire::{RunId, StepSummary, UnixMillis};

use crate::pages::{self, fleet::PAGE_SIZE};
use crate::session::{COOKIE, Ended, Session, same_token};
use crate::{Console, filter};

const CSS: &str = include_str!("../assets/console.css");
const JS: &str = include_str!("../assets/console.js");
/// Scripts only from the console itself, never inline: a second line behind the escaping.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
/// The live stream renders at most this often (a busy fleet moves the controller's progress
/// many times a second).
const LIVE_EVERY: Duration = Duration::from_millis(250);

pub(crate) type Shared = Arc<Console>;

pub fn router(console: Shared) -> Router {
    Router::new()
        .route("/", get(fleet))
        .route("/signin", get(signin_form).post(signin))
        .route("/signout", post(signout))
        .route("/agents/{id}", get(agent))
        .route("/agents/{id}/runs", post(trigger))
        .route("/runs/{id}", get(run))
        .route("/runs/{id}/live", get(live))
        .route("/runs/{id}/cancel", post(cancel_run))
        .route("/rollouts", get(rollouts))
        .route("/rollouts/{id}", get(rollout))
        .route("/rollouts/{id}/{action}", post(rollout_action))
        .route("/approvals", get(approvals))
        .route("/approvals/{id}/{decision}", post(decide))
        .route("/reports", get(crate::reports::form))
        .route("/reports/file", get(crate::reports::file))
        .route(
            "/assets/console.css",
            get(|| async { asset("text/css", CSS) }),
        )
        .route(
            "/assets/console.js",
            get(|| async { asset("text/javascript", JS) }),
        )
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(console)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

async fn secure_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

// ---- sessions -------------------------------------------------------------------------------

fn cookie_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

fn set_cookie(c: &Console, id: &str) -> (header::HeaderName, String) {
    let secure = if c.options.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    (
        header::SET_COOKIE,
        format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict{secure}"),
    )
}

fn clear_cookie() -> (header::HeaderName, String) {
    (
        header::SET_COOKIE,
        format!("{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"),
    )
}

fn caller_record(c: &Caller) -> serde_json::Value {
    json!({ "caller": c.name, "role": c.role, "tenant": c.scope.tenant() })
}

/// Append to the controller's audit log off the async workers; a log that cannot be written
/// serves nothing (as the gRPC API does).
async fn audit(c: &Shared, event: &'static str, data: serde_json::Value) -> Result<(), Response> {
    let controller = c.controller.clone();
    match tokio::task::spawn_blocking(move || controller.audit(event, data)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::error!("console: cannot audit {event}: {e}");
            Err(unavailable())
        }
        Err(e) => {
            tracing::error!("console: cannot audit {event}: {e}");
            Err(unavailable())
        }
    }
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        pages::problem(
            "Unavailable",
            None,
            "The controller cannot write its audit log; nothing is served until it can.",
        ),
    )
        .into_response()
}

/// The signed-in session the request's cookie names, or the response sending the browser to
/// sign in (an ended session's end audited).
pub(crate) async fn signed_in(
    c: &Shared,
    headers: &HeaderMap,
) -> Result<(String, Session, Caller), Response> {
    let to_signin = |why: Option<Ended>| {
        let url = match why {
            Some(w) if w != Ended::Unknown => format!("/signin?ended={}", w.name()),
            _ => "/signin".to_string(),
        };
        (StatusCode::SEE_OTHER, [clear_cookie()], Redirect::to(&url)).into_response()
    };
    let Some(id) = cookie_of(headers) else {
        return Err(to_signin(None));
    };
    match c.sessions.touch(&id, c.controller.now(), &c.options) {
        Ok(s) => match s.caller.clone() {
            Some(caller) => Ok((id, s, caller)),
            None => Err(to_signin(None)),
        },
        Err(expiry) => {
            if let Some(caller) = &expiry.caller {
                let mut data = caller_record(caller);
                data["reason"] = json!(expiry.why.name());
                audit(c, "console.session-ended", data).await?;
            }
            Err(to_signin(Some(expiry.why)))
        }
    }
}

/// Refuse a POST whose CSRF token is not its session's (audited).
async fn check_csrf(
    c: &Shared,
    session: &Session,
    given: Option<&str>,
    action: &str,
) -> Result<(), Response> {
    if given.is_some_and(|t| same_token(t, &session.csrf)) {
        return Ok(());
    }
    let mut data = session
        .caller
        .as_ref()
        .map(caller_record)
        .unwrap_or(json!({}));
    data["action"] = json!(action);
    data["reason"] = json!(if given.is_some() {
        "wrong token"
    } else {
        "no token"
    });
    audit(c, "console.csrf-refused", data).await?;
    Err((
        StatusCode::FORBIDDEN,
        pages::problem(
            "Refused",
            None,
            "This form is missing its security token or it is stale: reload the page and try again.",
        ),
    )
        .into_response())
}

// ---- sign-in --------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct SigninQuery {
    ended: Option<String>,
}

fn signin_page(c: &Shared, status: StatusCode, message: Option<&str>) -> Response {
    match c.sessions.create(None, c.controller.now(), &c.options) {
        Ok((id, s)) => (
            status,
            [set_cookie(c, &id)],
            pages::signin::page(&s.csrf, message),
        )
            .into_response(),
        Err(e) => internal(&format!("no randomness for a session: {e}")),
    }
}

async fn signin_form(State(c): State<Shared>, Query(q): Query<SigninQuery>) -> Response {
    // Fixed texts only: the query never reaches the page.
    let message = match q.ended.as_deref() {
        Some("idle-timeout") => Some("Your session ended after a time without use; sign in again."),
        Some("absolute-timeout") => Some("Your session reached its time limit; sign in again."),
        _ => None,
    };
    signin_page(&c, StatusCode::OK, message)
}

#[derive(Debug, Deserialize)]
struct SigninForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    token: String,
}

async fn signin(
    State(c): State<Shared>,
    ConnectInfo(crate::tls::Peer(remote)): ConnectInfo<crate::tls::Peer>,
    headers: HeaderMap,
    Form(form): Form<SigninForm>,
) -> Response {
    let now = c.controller.now();
    let form_session = cookie_of(&headers)
        .and_then(|id| c.sessions.touch(&id, now, &c.options).ok().map(|s| (id, s)));
    let Some((form_id, session)) = form_session else {
        let data = json!({ "remote": remote.to_string(), "reason": "no sign-in form session" });
        if let Err(r) = audit(&c, "console.signin-failed", data).await {
            return r;
        }
        return signin_page(
            &c,
            StatusCode::FORBIDDEN,
            Some("The sign-in form expired; try again."),
        );
    };
    if let Err(r) = check_csrf(&c, &session, form.csrf.as_deref(), "signin").await {
        return r;
    }
    if let Err(wait_ms) = c.throttle.check(remote.ip(), now.as_millis()) {
        // Rounded up: retrying at the time said must succeed.
        let secs = (wait_ms + 999) / 1000;
        let data = json!({ "remote": remote.to_string(), "retry_after_secs": secs });
        if let Err(r) = audit(&c, "console.signin-throttled", data).await {
            return r;
        }
        let minutes = (wait_ms + 59_999) / 60_000;
        let message = format!(
            "Too many failed sign-ins from your address; try again in {minutes} minute{}.",
            if minutes == 1 { "" } else { "s" }
        );
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, secs.to_string())],
            pages::signin::page(&session.csrf, Some(&message)),
        )
            .into_response();
    }
    let caller = c
        .tokens
        .identify(Some(&format!("Bearer {}", form.token.trim())));
    let Some(caller) = caller else {
        c.throttle.failed(remote.ip(), now.as_millis());
        let data = json!({ "remote": remote.to_string(), "reason": "unknown token" });
        if let Err(r) = audit(&c, "console.signin-failed", data).await {
            return r;
        }
        return (
            StatusCode::UNAUTHORIZED,
            pages::signin::page(&session.csrf, Some("That token is not valid here.")),
        )
            .into_response();
    };
    c.sessions.remove(&form_id);
    let (id, _) = match c.sessions.create(Some(caller.clone()), now, &c.options) {
        Ok(s) => s,
        Err(e) => return internal(&format!("no randomness for a session: {e}")),
    };
    let mut data = caller_record(&caller);
    data["remote"] = json!(remote.to_string());
    if let Err(r) = audit(&c, "console.signin", data).await {
        c.sessions.remove(&id);
        return r;
    }
    (
        StatusCode::SEE_OTHER,
        [set_cookie(&c, &id)],
        Redirect::to("/"),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: Option<String>,
}

async fn signout(
    State(c): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    let (id, session, caller) = match signed_in(&c, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = check_csrf(&c, &session, form.csrf.as_deref(), "signout").await {
        return r;
    }
    c.sessions.remove(&id);
    if let Err(r) = audit(&c, "console.signout", caller_record(&caller)).await {
        return r;
    }
    (
        StatusCode::SEE_OTHER,
        [clear_cookie()],
        Redirect::to("/signin"),
    )
        .into_response()
}

// ---- pages ----------------------------------------------------------------------------------

fn internal(message: &str) -> Response {
    tracing::error!("console: {message}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        pages::problem(
            "Error",
            None,
            "Something went wrong on the controller; it is logged.",
        ),
    )
        .into_response()
}

/// A refused or failed operation as a page with its status.
pub(crate) fn failure(session: &Session, e: &FleetError) -> Response {
    let (status, title) = match e {
        FleetError::Forbidden(_) => (StatusCode::FORBIDDEN, "Not allowed"),
        FleetError::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
        FleetError::Invalid(_)
        | FleetError::NoTargets(_)
        | FleetError::Target(_)
        | FleetError::Wire(_) => (StatusCode::BAD_REQUEST, "Not valid"),
        FleetError::Approval(a) => match a {
            ApprovalError::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
            ApprovalError::SelfApproval { .. } => (StatusCode::FORBIDDEN, "Not allowed"),
            ApprovalError::BadId(_) => (StatusCode::BAD_REQUEST, "Not valid"),
            // Expired, decided already, void, mismatched: the request's state forbids it.
            _ => (StatusCode::CONFLICT, "Not possible"),
        },
        other => return internal(&other.to_string()),
    };
    (status, pages::problem(title, Some(session), &e.to_string())).into_response()
}

/// Run a blocking controller read (SQLite) off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FleetError> + Send + 'static,
) -> Result<T, FleetError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(FleetError::Internal(e.to_string())))
}

#[derive(Debug, Deserialize)]
struct FleetParams {
    #[serde(default)]
    q: String,
    sort: Option<String>,
    dir: Option<String>,
    page: Option<usize>,
}

async fn fleet(
    State(c): State<Shared>,
    headers: HeaderMap,
    Query(p): Query<FleetParams>,
) -> Response {
    let (_, session, caller) = match signed_in(&c, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let view = pages::fleet::View {
        sort: p
            .sort
            .as_deref()
            .and_then(SortKey::parse)
            .unwrap_or_default(),
        descending: p.dir.as_deref() == Some("desc"),
        page: p.page.unwrap_or(1).clamp(1, 1_000_000),
        filter: p.q,
    };
    let now = c.controller.now();
    let mut query = match filter::parse(&view.filter) {
        Ok(q) => q,
        Err(e) => {
            let page = pages::fleet::page(&session, &view, Err(&e.to_string()), now);
            return (StatusCode::BAD_REQUEST, page).into_response();
        }
    };
    query.sort = view.sort;
    query.descending = view.descending;
    query.offset = (view.page - 1) * PAGE_SIZE;
    query.limit = PAGE_SIZE;
    let controller = c.controller.clone();
    match blocking(move || controller.fleet_page(&caller, query)).await {
        Ok(fleet) => pages::fleet::page(&session, &view, Ok(&fleet), now).into_response(),
        Err(e @ FleetError::Forbidden(_)) => {
            let page = pages::fleet::page(&session, &view, Err(&e.to_string()), now);
            (StatusCode::FORBIDDEN, page).into_response()
        }
        Err(e) => failure(&session, &e),
    }
}

fn not_found(session: &Session, what: &str) -> Response {
    failure(session, &FleetError::NotFound(what.to_string()))
}

async fn agent(State(c): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let (_, session, caller) = match signed_in(&c, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(agent) = AgentId::new(id) else {
        return not_found(&session, "agent");
    };
    let controller = c.controller.clone();
    match blocking(move || controller.agent_detail(&caller, &agent)).await {
        Ok(detail) => pages::agent::page(&session, &detail, c.controller.now()).into_response(),
        Err(e) => failure(&session, &e),
    }
}

#[derive(Debug, Deserialize)]
struct TriggerForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    runbook: String,
    #[serde(default)]
    dry_run: Option<String>,
}

async fn trigger(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<TriggerForm>,
) -> Response {
    let (_, session, caller) = match signed_in(&c, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = check_csrf(&c, &session, form.csrf.as_deref(), "run").await {
        return r;
    }
    let Ok(agent) = AgentId::new(id) else {
        return not_found(&session, "agent");
    };
    let runbook = form.runbook.trim().to_string();
    let mut data = caller_record(&caller);
    data["action"] = json!("run");
    data["agent"] = json!(agent.as_str());
    data["runbook"] = json!(runbook);
    data["dry_run"] = json!(form.dry_run.is_some());
    if let Err(r) = need_role(
        &c,
        &session,
        &caller,
        data.clone(),
        "running a runbook",
        Role::Operator,
    )
    .await
    {
        return r;
    }
    if runbook.is_empty() {
        return failure(
            &session,
            &FleetError::Invalid("name a runbook to run".into()),
        );
    }
    let request = DispatchRequest {
        runbook,
        target: format!("agent={}", agent.as_str()),
        params: Default::default(),
        dry_run: form.dry_run.is_some(),
        ttl_secs: None,
        bundle: None,
    };
    let outcome = c.controller.dispatch(&caller, request).await;
    match &outcome {
        Ok(d) => {
            data["decision"] = json!("dispatched");
            data["run"] = json!(d.run.as_str());
        }
        Err(FleetError::NeedsApproval(id)) => {
            data["decision"] = json!("needs-approval");
            data["request"] = json!(id.to_string());
        }
        Err(e) => {
            data["decision"] = json!("failed");
            data["error"] = json!(e.to_string());
        }
    }
    if let Err(r) = audit(&c, "console.action", data).await {
        return r;
    }
    match outcome {
        Ok(d) => Redirect::to(&format!("/runs/{}", pages::encode(d.run.as_str()))).into_response(),
        Err(e @ FleetError::NeedsApproval(_)) => (
            StatusCode::ACCEPTED,
            pages::problem("Waiting for approval", Some(&session), &e.to_string()),
        )
            .into_response(),
        Err(e) => failure(&session, &e),
    }
}

/// Each agent's step summaries, by agent id.
type Steps = Vec<(String, Vec<StepSummary>)>;

/// A run's view and each agent's steps, as `caller` may see them.
fn run_state(
    c: &Console,
    caller: &Caller,
    run: &RunId,
) -> Result<(warden_controller::runs::RunView, Steps), FleetError> {
    let view = c.controller.run_view(caller, run)?;
    let steps = c
        .controller
        .run_results(caller, run)?
        .into_iter()
        .map(|r| (r.agent.as_str().to_string(), r.steps))
        .collect();
    Ok((view, steps))
}

async fn run(State(c): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let (_, session, caller) = match signed_in(&c, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(run) = RunId::parse(id) else {
        return not_found(&session, "run");
    };
    let c2 = c.clone();
    match blocking(move || run_state(&c2, &caller, &run)).await {
        Ok((view, steps)) => {
            pages::run::page(&session, &view, &steps, c.controller.now()).into_response()
        }
        Err(e) => failure(&session, &e),
    }
}

/// The run's agents table as server-sent events: one `state` event now and after each change,
/// then `done` once every agent is settled.
async fn live(State(c): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let (_, session, caller) = match signed_in(&c, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(run) = RunId::parse(id) else {
        return not_found(&session, "run");
    };
    // Checked before the stream starts, so a caller who may not see the run gets its status.
    let c2 = c.clone();
    let (caller2, run2) = (caller.clone(), run.clone());
    if let Err(e) = blocking(move || run_state(&c2, &caller2, &run2)).await {
        return failure(&session, &e);
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, std::convert::Infallible>>(4);
    let mut progress = c.controller.progress();
    tokio::spawn(async move {
        loop {
            let c2 = c.clone();
            let (caller2, run2) = (caller.clone(), run.clone());
            let Ok((view, steps)) = blocking(move || run_state(&c2, &caller2, &run2)).await else {
                break;
            };
            let html: Markup = pages::run::agents_table(&view, &steps);
            if tx
                .send(Ok(Event::default().event("state").data(html.into_string())))
                .await
                .is_err()
            {
                break;
            }
            if view.done {
                let _ = tx
                    .send(Ok(Event::default().event("done").data("done")))
                    .await;
                break;
            }
            if progress.changed().await.is_err() {
                break;
            }
            tokio::time::sleep(LIVE_EVERY).await;
        }
    });
    Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response()
}

// ---- rollouts and approvals -----------------------------------------------------------------

/// Rollouts the list shows.
const ROLLOUTS_SHOWN: usize = 100;

/// A read-only page: the session, `read` (a blocking controller read, as the caller) off the
/// async workers, and `render` of what it gave, or the failure's page.
async fn read_page<T: Send + 'static>(
    c: &Shared,
    headers: &HeaderMap,
    read: impl FnOnce(&Controller, &Caller) -> Result<T, FleetError> + Send + 'static,
    render: impl FnOnce(&Session, &T, UnixMillis) -> Markup,
) -> Response {
    let (_, session, caller) = match signed_in(c, headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let controller = c.controller.clone();
    match blocking(move || read(&controller, &caller)).await {
        Ok(found) => render(&session, &found, c.controller.now()).into_response(),
        Err(e) => failure(&session, &e),
    }
}

async fn rollouts(State(c): State<Shared>, headers: HeaderMap) -> Response {
    let read = |ctl: &Controller, caller: &Caller| ctl.list_rollouts(caller, ROLLOUTS_SHOWN);
    read_page(&c, &headers, read, |s, list: &Vec<_>, now| {
        pages::rollouts::list(s, list, now)
    })
    .await
}

async fn rollout(State(c): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let read = move |ctl: &Controller, caller: &Caller| ctl.rollout_status(caller, &id);
    read_page(&c, &headers, read, pages::rollouts::page).await
}

/// The start of an action named `action` (`None`: no such action, 404) on `subject` (its
/// audit field and value): the session, its CSRF token, the audit record begun, and `role`
/// checked with a refusal audited. The controller checks the role too (and, for an approval,
/// its `[approvals] approvers` setting); checking here makes the refusal the console's
/// audited action, as a trigger's is.
async fn begin_action(
    c: &Shared,
    headers: &HeaderMap,
    form: &CsrfForm,
    action: Option<&str>,
    subject: (&str, &str),
    role: Role,
) -> Result<(Session, Caller, serde_json::Value), Response> {
    let (_, session, caller) = signed_in(c, headers).await?;
    let Some(action) = action else {
        return Err(not_found(&session, "action"));
    };
    check_csrf(c, &session, form.csrf.as_deref(), action).await?;
    let mut data = caller_record(&caller);
    data["action"] = json!(action);
    data[subject.0] = json!(subject.1);
    let what = format!("`{action}`");
    need_role(c, &session, &caller, data.clone(), &what, role).await?;
    Ok((session, caller, data))
}

/// The caller's `role` (or more), or the refusal (audited as `data` denied) for `what`.
async fn need_role(
    c: &Shared,
    session: &Session,
    caller: &Caller,
    mut data: serde_json::Value,
    what: &str,
    role: Role,
) -> Result<(), Response> {
    if caller.role >= role {
        return Ok(());
    }
    data["decision"] = json!("denied");
    audit(c, "console.action", data).await?;
    let e = FleetError::Forbidden(format!(
        "{what} needs the {} role; `{}` has {}",
        role.name(),
        caller.name,
        caller.role.name()
    ));
    Err(failure(session, &e))
}

/// Record how an action ended in its audit record.
fn outcome_into<T>(data: &mut serde_json::Value, outcome: &Result<T, FleetError>) {
    match outcome {
        Ok(_) => data["decision"] = json!("done"),
        Err(e) => {
            data["decision"] = json!("failed");
            data["error"] = json!(e.to_string());
        }
    }
}

async fn rollout_action(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let cmd = match action.as_str() {
        "pause" => Some(Command::Pause),
        "resume" => Some(Command::Resume),
        "rollback" => Some(Command::Rollback),
        _ => None,
    };
    let name = cmd.map(|cmd| format!("rollout-{}", cmd.name()));
    let begun = begin_action(
        &c,
        &headers,
        &form,
        name.as_deref(),
        ("rollout", &id),
        Role::Operator,
    )
    .await;
    let (session, caller, mut data) = match begun {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(cmd) = cmd else {
        return not_found(&session, "action");
    };
    let outcome = match cmd {
        Command::Rollback => c.controller.rollback_rollout(&caller, &id, None).await,
        cmd => {
            c.controller
                .pause_or_resume_rollout(&caller, &id, cmd)
                .await
        }
    };
    outcome_into(&mut data, &outcome);
    if let Err(r) = audit(&c, "console.action", data).await {
        return r;
    }
    match outcome {
        Ok(_) => Redirect::to(&format!("/rollouts/{}", pages::encode(&id))).into_response(),
        Err(e) => failure(&session, &e),
    }
}

/// Cancel a run (operator; the controller decides): back to the run's page.
async fn cancel_run(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let begun = begin_action(
        &c,
        &headers,
        &form,
        Some("run-cancel"),
        ("run", &id),
        Role::Operator,
    )
    .await;
    let (session, caller, mut data) = match begun {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Ok(run) = RunId::parse(id.clone()) else {
        return not_found(&session, "run");
    };
    let outcome = c.controller.cancel_run(&caller, &run).await;
    outcome_into(&mut data, &outcome);
    if let Err(r) = audit(&c, "console.action", data).await {
        return r;
    }
    match outcome {
        Ok(_) => Redirect::to(&format!("/runs/{}", pages::encode(&id))).into_response(),
        Err(e) => failure(&session, &e),
    }
}

async fn approvals(State(c): State<Shared>, headers: HeaderMap) -> Response {
    let read = |ctl: &Controller, caller: &Caller| ctl.list_approvals(caller, false);
    read_page(&c, &headers, read, |s, list: &Vec<_>, now| {
        pages::approvals::page(s, list, now)
    })
    .await
}

async fn decide(
    State(c): State<Shared>,
    headers: HeaderMap,
    Path((id, decision)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let name = ["approve", "deny"].into_iter().find(|d| *d == decision);
    let begun = begin_action(&c, &headers, &form, name, ("request", &id), Role::Approver).await;
    let (session, caller, mut data) = match begun {
        Ok(b) => b,
        Err(r) => return r,
    };
    let approving = name == Some("approve");
    let id = match RequestId::parse(&id) {
        Ok(id) => id,
        Err(e) => return failure(&session, &FleetError::Approval(e)),
    };
    let outcome = if approving {
        c.controller.approve(&caller, &id).await.map(|a| {
            if let Some(d) = &a.dispatched {
                data["run"] = json!(d.run.as_str());
            }
        })
    } else {
        let controller = c.controller.clone();
        let (caller, id) = (caller.clone(), id.clone());
        blocking(move || controller.deny(&caller, &id, "denied in the console"))
            .await
            .map(|_| ())
    };
    outcome_into(&mut data, &outcome);
    if let Err(r) = audit(&c, "console.action", data).await {
        return r;
    }
    match outcome {
        Ok(()) => Redirect::to("/approvals").into_response(),
        Err(e) => failure(&session, &e),
    }
}
