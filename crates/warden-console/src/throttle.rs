//! Sign-in throttling: an address that failed to sign in [`MAX_FAILURES`] times within
//! [`WINDOW_MS`] is refused further attempts (429, with when to retry) until its oldest failure
//! in the window ages out. Pure apart from its lock: the caller passes the time (the
//! controller's clock), so tests move it.
//!
//! - **Who is counted**: the peer address; IPv6 by its /64, since one host commonly holds a
//!   whole /64 and could otherwise step through addresses. Behind a proxy every client is the
//!   proxy's address: the limit then protects the console as a whole (documented in FLEET.md).
//! - **What counts**: a token that is not valid. A success does not clear the count: holding
//!   one valid low-role token must not buy more guesses at another.
//! - **Memory**: at most [`MAX_TRACKED`] addresses; when full, addresses whose failures have
//!   all aged out are forgotten first, then a new address is not tracked (its attempts still
//!   reach the token check, which is the real barrier: API tokens are 256-bit random).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;

/// Failed sign-ins one address may make within the window: a person mistyping or pasting the
/// wrong token a few times is never stopped, a guesser is held to one try a minute.
pub const MAX_FAILURES: usize = 5;
/// The window: 5 minutes.
pub const WINDOW_MS: i64 = 5 * 60_000;
/// Addresses tracked at once: 10,000 is a few hundred KiB and far more than a NOC has.
pub const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Default)]
pub struct Throttle {
    failures: Mutex<HashMap<IpAddr, VecDeque<i64>>>,
}

/// The address an attempt is counted under.
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

impl Throttle {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, VecDeque<i64>>> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Err(ms)`: refused; the attempt may be made again in `ms` milliseconds.
    pub fn check(&self, ip: IpAddr, now_ms: i64) -> Result<(), i64> {
        let mut map = self.lock();
        let Some(times) = map.get_mut(&key(ip)) else {
            return Ok(());
        };
        while times.front().is_some_and(|&t| t <= now_ms - WINDOW_MS) {
            times.pop_front();
        }
        match times.front() {
            Some(&oldest) if times.len() >= MAX_FAILURES => Err(oldest + WINDOW_MS - now_ms),
            _ => Ok(()),
        }
    }

    /// Count a failed sign-in from `ip`.
    pub fn failed(&self, ip: IpAddr, now_ms: i64) {
        let mut map = self.lock();
        let k = key(ip);
        if !map.contains_key(&k) && map.len() >= MAX_TRACKED {
            map.retain(|_, times| times.back().is_some_and(|&t| t > now_ms - WINDOW_MS));
            if map.len() >= MAX_TRACKED {
                return;
            }
        }
        let times = map.entry(k).or_default();
        times.push_back(now_ms);
        // Older failures than the limit needs never matter again.
        while times.len() > MAX_FAILURES {
            times.pop_front();
        }
    }

    pub fn tracked(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn the_sixth_failure_in_the_window_is_refused_until_the_oldest_ages_out() {
        let t = Throttle::default();
        let a = ip("192.0.2.7");
        for i in 0..MAX_FAILURES as i64 {
            assert_eq!(t.check(a, i * 1000), Ok(()), "attempt {i}");
            t.failed(a, i * 1000);
        }
        // Five failures at 0..4 s: refused until the first leaves the window at 300 s.
        assert_eq!(t.check(a, 10_000), Err(WINDOW_MS - 10_000));
        assert_eq!(t.check(ip("192.0.2.8"), 10_000), Ok(()), "another address");
        assert_eq!(t.check(a, WINDOW_MS), Ok(()), "the oldest aged out");
        t.failed(a, WINDOW_MS);
        assert!(
            t.check(a, WINDOW_MS + 1).is_err(),
            "five in the window again"
        );
    }

    #[test]
    fn an_ipv6_host_counts_as_its_64_and_a_mapped_ipv4_as_itself() {
        let t = Throttle::default();
        for i in 0..MAX_FAILURES {
            t.failed(ip(&format!("2001:db8:1:2::{i:x}")), 0);
        }
        assert!(t.check(ip("2001:db8:1:2:ffff::1"), 1).is_err(), "same /64");
        assert_eq!(t.check(ip("2001:db8:1:3::1"), 1), Ok(()), "another /64");
        for _ in 0..MAX_FAILURES {
            t.failed(ip("::ffff:198.51.100.1"), 0);
        }
        assert!(t.check(ip("198.51.100.1"), 1).is_err());
    }

    #[test]
    fn memory_stays_bounded_and_aged_out_addresses_go_first() {
        let t = Throttle::default();
        for i in 0..MAX_TRACKED as u32 {
            t.failed(IpAddr::V4(i.into()), 0);
        }
        t.failed(ip("203.0.113.1"), 1);
        assert_eq!(t.tracked(), MAX_TRACKED, "full: the new one is not tracked");
        t.failed(ip("203.0.113.1"), WINDOW_MS + 1);
        assert_eq!(t.tracked(), 1, "the aged-out ones were forgotten for it");
    }
}
