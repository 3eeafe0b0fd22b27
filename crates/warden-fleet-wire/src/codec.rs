//! Encoding and decoding: every message is one JSON object carrying `"v"`, checked for size
//! before it is parsed and for its field bounds after.
//!
//! The size cap is checked on the raw bytes first, so an oversized message costs a length
//! comparison, never a parse. The version is read before the body (a small struct that ignores
//! everything else), so a message of a newer version is refused as such, not as malformed.
//! Unknown fields are ignored within a version: a newer sender may add optional fields without
//! a version bump; anything that changes the meaning of an existing field bumps `v`.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::WIRE_VERSION;

/// One message type of the fleet's wire.
pub trait Message: Serialize + DeserializeOwned {
    /// What the message is, for errors and logs.
    const KIND: &'static str;
    /// Largest encoded message, in bytes.
    const MAX_BYTES: usize;
    /// The message's `v`.
    fn version(&self) -> u32;
    /// Field bounds a well-formed message keeps (lengths, counts, characters).
    fn check(&self) -> Result<(), Malformed>;
}

/// Why bytes are not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("{kind} of {len} bytes is over its cap of {max} bytes")]
    TooLarge {
        kind: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{kind} is version {found}, this build speaks version {WIRE_VERSION}")]
    UnsupportedVersion { kind: &'static str, found: u32 },
    #[error("{kind} is not valid JSON of its shape: {cause}")]
    Unparsable { kind: &'static str, cause: String },
    #[error("{kind}: {0}", kind = .1)]
    Malformed(#[source] Malformed, &'static str),
}

/// A field out of its bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {field}: {problem}")]
pub struct Malformed {
    pub field: String,
    pub problem: String,
}

impl Malformed {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Malformed {
        Malformed {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// The message's JSON bytes, refused if it breaks its own bounds (a sender never puts an
/// invalid message on the wire).
pub fn encode<M: Message>(message: &M) -> Result<Vec<u8>, WireError> {
    message
        .check()
        .map_err(|m| WireError::Malformed(m, M::KIND))?;
    let bytes = serde_json::to_vec(message).map_err(|e| WireError::Unparsable {
        kind: M::KIND,
        cause: e.to_string(),
    })?;
    if bytes.len() > M::MAX_BYTES {
        return Err(WireError::TooLarge {
            kind: M::KIND,
            len: bytes.len(),
            max: M::MAX_BYTES,
        });
    }
    Ok(bytes)
}

/// Parse and check a message from untrusted bytes.
pub fn decode<M: Message>(bytes: &[u8]) -> Result<M, WireError> {
    if bytes.len() > M::MAX_BYTES {
        return Err(WireError::TooLarge {
            kind: M::KIND,
            len: bytes.len(),
            max: M::MAX_BYTES,
        });
    }
    #[derive(serde::Deserialize)]
    struct Version {
        v: u32,
    }
    let unparsable = |e: serde_json::Error| WireError::Unparsable {
        kind: M::KIND,
        cause: e.to_string(),
    };
    let Version { v } = serde_json::from_slice(bytes).map_err(unparsable)?;
    if v != WIRE_VERSION {
        return Err(WireError::UnsupportedVersion {
            kind: M::KIND,
            found: v,
        });
    }
    let message: M = serde_json::from_slice(bytes).map_err(unparsable)?;
    message
        .check()
        .map_err(|m| WireError::Malformed(m, M::KIND))?;
    Ok(message)
}

/// A free-text field: at most `max` bytes, no control characters (one line, printable in a
/// table and a log line).
pub(crate) fn check_text(field: &str, value: &str, max: usize) -> Result<(), Malformed> {
    if value.len() > max {
        return Err(Malformed::new(
            field,
            format!("{} bytes, at most {max}", value.len()),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Malformed::new(field, "holds control characters"));
    }
    Ok(())
}

/// A name (runbook, tag key, param, plugin): 1 to `max` bytes of `a-z A-Z 0-9 . _ -`, starting
/// with a letter or digit: no path (`/`, `..`) and nothing a shell or a subject would read.
pub(crate) fn check_name(field: &str, value: &str, max: usize) -> Result<(), Malformed> {
    let ok = value.len() <= max
        && value
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Malformed::new(
            field,
            format!("{value:?} is not 1 to {max} of a-z A-Z 0-9 . _ - from a letter or digit"),
        ))
    }
}

/// Collapse a multi-line error to the one line the wire carries, cut at `max` bytes on a
/// character boundary (for senders: [`check_text`] refuses what this would fix).
pub fn one_line(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}
