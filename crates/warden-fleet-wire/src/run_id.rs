//! Run ids: ULIDs (48-bit unix milliseconds, 80 random bits, 26 characters of Crockford base32).
//!
//! Sortable by creation time (the NOC lists runs newest first without another column), unique
//! without coordination between controller processes, and free of `.`, `*` and `>`, so a run id
//! can sit inside a NATS subject or a `Nats-Msg-Id` of the form `<run>.<agent>`. The controller
//! supplies the randomness ([`RunId::from_parts`]): this crate stays pure.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::time::UnixMillis;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters of a ULID.
pub const RUN_ID_LEN: usize = 26;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("run id {0:?} is not a ULID (26 characters of Crockford base32, upper case)")]
pub struct InvalidRunId(pub String);

/// A run's id, shared by every agent the run targets.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

impl RunId {
    /// The id of a run created at `at`, from 10 random bytes.
    pub fn from_parts(at: UnixMillis, random: [u8; 10]) -> RunId {
        // 48 bits of time: ULIDs cover the years 1970..10889; clamp instead of wrapping.
        let ms = u128::try_from(at.as_millis().clamp(0, (1 << 48) - 1)).unwrap_or(0);
        let mut value = ms << 80;
        for (i, b) in random.iter().enumerate() {
            value |= u128::from(*b) << (8 * (9 - i));
        }
        let mut out = [0u8; RUN_ID_LEN];
        for (i, slot) in out.iter_mut().enumerate() {
            let shift = 5 * (RUN_ID_LEN - 1 - i);
            *slot = ALPHABET[usize::try_from((value >> shift) & 0x1f).unwrap_or(0)];
        }
        RunId(out.iter().map(|b| char::from(*b)).collect())
    }

    pub fn parse(s: impl Into<String>) -> Result<RunId, InvalidRunId> {
        let s = s.into();
        let ok = s.len() == RUN_ID_LEN
            && s.bytes().all(|b| ALPHABET.contains(&b))
            // 130 bits of characters for 128 bits of value: the first one is at most 7.
            && s.as_bytes().first().is_some_and(|b| *b <= b'7');
        if ok {
            Ok(RunId(s))
        } else {
            Err(InvalidRunId(s))
        }
    }

    /// When the run was created (the ULID's time part).
    pub fn created_at(&self) -> UnixMillis {
        let mut value: u128 = 0;
        for b in self.0.bytes() {
            let digit = ALPHABET.iter().position(|a| *a == b).unwrap_or(0);
            value = (value << 5) | u128::try_from(digit).unwrap_or(0);
        }
        UnixMillis(i64::try_from(value >> 80).unwrap_or(0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RunId {
    type Error = InvalidRunId;
    fn try_from(s: String) -> Result<RunId, InvalidRunId> {
        RunId::parse(s)
    }
}

impl From<RunId> for String {
    fn from(id: RunId) -> String {
        id.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_id_round_trips_its_time_and_sorts_by_it() {
        let a = RunId::from_parts(UnixMillis(1_764_590_000_000), [0xff; 10]);
        let b = RunId::from_parts(UnixMillis(1_764_590_000_001), [0; 10]);
        assert_eq!(a.as_str().len(), RUN_ID_LEN);
        assert_eq!(a.created_at(), UnixMillis(1_764_590_000_000));
        assert!(a < b, "{a} sorts before {b}");
        assert_eq!(RunId::parse(a.to_string()), Ok(a.clone()));
        let json = serde_json::to_string(&a).expect("json");
        assert_eq!(serde_json::from_str::<RunId>(&json).expect("parse"), a);
    }

    #[test]
    fn run_ids_that_could_break_a_subject_are_refused() {
        for bad in [
            "",
            "01ARZ3NDEKTSV4RRFFQ69G5FA",   // 25
            "01ARZ3NDEKTSV4RRFFQ69G5FAVV", // 27
            "01ARZ3NDEKTSV4RRFFQ69G5F.V",
            "01ARZ3NDEKTSV4RRFFQ69G5F*V",
            "01arz3ndektsv4rrffq69g5fav",
            "81ARZ3NDEKTSV4RRFFQ69G5FAV", // overflows 128 bits
            "01ARZ3NDEKTSV4RRFFQ69G5FIU", // I and U are not Crockford
        ] {
            assert!(RunId::parse(bad).is_err(), "{bad}");
        }
        assert!(RunId::parse("01ARZ3NDEKTSV4RRFFQ69G5FAV").is_ok());
    }
}
