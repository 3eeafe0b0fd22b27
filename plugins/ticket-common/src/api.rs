//! JSON over the `http` capability, as every connector calls its PSA: one request, a status
//! that decides, a body parsed as JSON. Errors name the call and the status and quote at most
//! [`MAX_ERROR_BODY_CHARS`] of the response, never the request (its headers carry the
//! credentials).

use serde_json::Value;
use warden_sdk::PluginError;
use warden_sdk::http::Request;

/// How much of an error response is quoted: enough for the PSA's message, not a whole page.
pub const MAX_ERROR_BODY_CHARS: usize = 300;

/// A response the connector reads: its status and its body as JSON (`null` when empty).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

/// Send `req` (described as `what` in errors) and return the reply whatever its status; a
/// transport failure (denied, timed out, refused connection) is the plugin error `unreachable`.
pub fn send(what: &str, req: Request) -> Result<Reply, PluginError> {
    let resp = req
        .send()
        .map_err(|e| PluginError::new("unreachable", format!("{what}: {e}")))?;
    let body = if resp.body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&resp.body).unwrap_or_else(|_| Value::String(resp.text_lossy()))
    };
    Ok(Reply {
        status: resp.status,
        body,
    })
}

/// [`send`], and a status outside 2xx is the plugin error `http-<status>`.
pub fn send_ok(what: &str, req: Request) -> Result<Value, PluginError> {
    let reply = send(what, req)?;
    if (200..300).contains(&reply.status) {
        return Ok(reply.body);
    }
    Err(status_error(what, &reply))
}

/// The plugin error of a reply with an unexpected status.
pub fn status_error(what: &str, reply: &Reply) -> PluginError {
    let text = match &reply.body {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    PluginError::new(
        format!("http-{}", reply.status),
        format!(
            "{what}: HTTP {}{}{}",
            reply.status,
            if text.is_empty() { "" } else { ": " },
            crate::clip(text.trim(), MAX_ERROR_BODY_CHARS)
        ),
    )
}

/// The field at JSON pointer `pointer` as text (numbers too), or a `bad-response` error.
pub fn text_at(body: &Value, pointer: &str, what: &str) -> Result<String, PluginError> {
    optional_text_at(body, pointer).ok_or_else(|| {
        PluginError::new(
            "bad-response",
            format!("{what}: the response has no `{pointer}`"),
        )
    })
}

/// The field at `pointer` as text, when it is a non-empty string or a number.
pub fn optional_text_at(body: &Value, pointer: &str) -> Option<String> {
    match body.pointer(pointer)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
