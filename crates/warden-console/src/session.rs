//! Server-side sessions. The browser holds only a random id (256 bits, in an HttpOnly,
//! SameSite=Strict cookie); the caller it stands for, its CSRF token and its times stay here,
//! so signing out or timing out ends it for good. Times are the controller's clock, so tests
//! move a manual clock instead of sleeping.
//!
//! The sign-in form gets a session too (no caller yet) so that its POST carries a CSRF token
//! like every other; signing in replaces that session with a new id (no fixation).

use std::collections::HashMap;
use std::sync::Mutex;

use warden_access::Caller;
use warden_fleet_wire::UnixMillis;

use crate::Options;

/// The session cookie's name.
pub const COOKIE: &str = "warden_session";
/// A sign-in form's session lasts 10 minutes.
pub const SIGN_IN_FORM_MS: i64 = 10 * 60_000;
/// Sessions kept at most (signed in and forms); the oldest form goes first, then the oldest
/// session: a flood of form loads cannot grow memory without bound.
pub const MAX_SESSIONS: usize = 20_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// `None`: a sign-in form's session.
    pub caller: Option<Caller>,
    pub csrf: String,
    pub created: UnixMillis,
    pub last_used: UnixMillis,
}

/// Why a cookie no longer names a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Unknown,
    Idle,
    Absolute,
}

impl Ended {
    pub fn name(self) -> &'static str {
        match self {
            Ended::Unknown => "unknown",
            Ended::Idle => "idle-timeout",
            Ended::Absolute => "absolute-timeout",
        }
    }
}

/// A session that has ended, and whose it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    pub why: Ended,
    pub caller: Option<Caller>,
}

#[derive(Debug, Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

fn random_hex() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b)?;
    Ok(hex::encode(b))
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Whether `s` has ended at `now`.
fn ended(s: &Session, now: UnixMillis, options: &Options) -> Option<Ended> {
    match &s.caller {
        None if now.millis_since(s.created) > SIGN_IN_FORM_MS => Some(Ended::Absolute),
        None => None,
        Some(_) if now.millis_since(s.created) > millis(options.absolute_timeout) => {
            Some(Ended::Absolute)
        }
        Some(_) if now.millis_since(s.last_used) > millis(options.idle_timeout) => {
            Some(Ended::Idle)
        }
        Some(_) => None,
    }
}

/// Constant-time equality of two tokens (a CSRF token compared byte by byte would leak its
/// prefix through timing).
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.by_id
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new session (a form's when `caller` is `None`); its id.
    pub fn create(
        &self,
        caller: Option<Caller>,
        now: UnixMillis,
        options: &Options,
    ) -> Result<(String, Session), getrandom::Error> {
        let id = random_hex()?;
        let session = Session {
            caller,
            csrf: random_hex()?,
            created: now,
            last_used: now,
        };
        let mut map = self.lock();
        map.retain(|_, s| ended(s, now, options).is_none());
        while map.len() >= MAX_SESSIONS {
            let oldest = map
                .iter()
                .min_by_key(|(_, s)| (s.caller.is_some(), s.last_used))
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => map.remove(&k),
                None => break,
            };
        }
        map.insert(id.clone(), session.clone());
        Ok((id, session))
    }

    /// The session `id` names at `now`, its last use moved to `now`; an ended one is removed
    /// (the error names who it was, for the audit record).
    pub fn touch(&self, id: &str, now: UnixMillis, options: &Options) -> Result<Session, Expiry> {
        let mut map = self.lock();
        let Some(s) = map.get_mut(id) else {
            return Err(Expiry {
                why: Ended::Unknown,
                caller: None,
            });
        };
        if let Some(why) = ended(s, now, options) {
            let caller = map.remove(id).and_then(|s| s.caller);
            return Err(Expiry { why, caller });
        }
        s.last_used = now;
        Ok(s.clone())
    }

    pub fn remove(&self, id: &str) -> Option<Session> {
        self.lock().remove(id)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use warden_access::{Role, Scope};

    use super::*;

    fn options() -> Options {
        Options {
            idle_timeout: Duration::from_secs(60),
            absolute_timeout: Duration::from_secs(300),
            secure_cookies: false,
        }
    }

    fn caller() -> Caller {
        Caller {
            name: "noc".into(),
            role: Role::Viewer,
            scope: Scope::AllTenants,
        }
    }

    #[test]
    fn a_session_ends_when_idle_and_at_its_absolute_timeout_even_if_used() {
        let s = Sessions::default();
        let o = options();
        let t0 = UnixMillis(1_000_000);
        let (id, first) = s.create(Some(caller()), t0, &o).expect("session");
        assert_eq!(first.csrf.len(), 64, "256 random bits");
        let why = |r: Result<Session, Expiry>| r.map(|_| ()).map_err(|e| e.why);
        assert_eq!(
            why(s.touch(&id, UnixMillis(t0.as_millis() + 61_000), &o)),
            Err(Ended::Idle)
        );
        assert_eq!(
            why(s.touch(&id, t0, &o)),
            Err(Ended::Unknown),
            "removed once ended"
        );
        let (id, _) = s.create(Some(caller()), t0, &o).expect("session");
        let mut t = t0.as_millis();
        while t < t0.as_millis() + 350_000 {
            t += 50_000;
            let touched = s.touch(&id, UnixMillis(t), &o);
            if t <= t0.as_millis() + 300_000 {
                assert!(touched.is_ok(), "used within the idle timeout at {t}");
            } else {
                assert_eq!(why(touched), Err(Ended::Absolute));
            }
        }
    }

    #[test]
    fn tokens_compare_by_value_and_length() {
        assert!(same_token("abcd", "abcd"));
        assert!(!same_token("abcd", "abce"));
        assert!(!same_token("abcd", "abc"));
    }
}
