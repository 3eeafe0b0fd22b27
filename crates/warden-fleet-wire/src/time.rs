//! Time on the wire: unix milliseconds in a typed wrapper, so a seconds value (what the identity
//! layer's JWTs use) can never be passed where milliseconds are meant. Humans see RFC 3339; the
//! wire carries the integer, which every language parses without a date library.

use serde::{Deserialize, Serialize};

/// Milliseconds since the unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixMillis(pub i64);

impl UnixMillis {
    pub fn from_secs(secs: i64) -> UnixMillis {
        UnixMillis(secs.saturating_mul(1000))
    }

    /// The system clock; every function of this crate takes the time as an argument instead.
    pub fn now() -> UnixMillis {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        UnixMillis(ms)
    }

    pub fn as_millis(self) -> i64 {
        self.0
    }

    /// Whole seconds (rounded down), for the identity layer's JWT times.
    pub fn as_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    pub fn plus_millis(self, ms: i64) -> UnixMillis {
        UnixMillis(self.0.saturating_add(ms))
    }

    /// `self - earlier` in milliseconds (negative if `earlier` is later).
    pub fn millis_since(self, earlier: UnixMillis) -> i64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// Minutes, as milliseconds (for the constants of this crate).
pub(crate) const fn minutes(n: i64) -> i64 {
    n * 60 * 1000
}
