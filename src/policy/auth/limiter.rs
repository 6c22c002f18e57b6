//! Failed-login throttling. Failures count per (user, client address):
//! after `max_failures` inside the window that pair is locked for the
//! lockout, doubling with each further failure (capped). One stale CI
//! password therefore never locks out the other users behind the same NAT.
//! Credential stuffing (many user names from one address) locks the
//! address, at a much higher threshold of distinct users, and even then
//! users who logged in from that address before keep working: a right
//! password is never refused because someone else failed.
//! Memory is bounded by pruning stale entries.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MAX_KEYS: usize = 100_000;
/// The backoff stops doubling here (lockout × 2^6).
const MAX_DOUBLINGS: u32 = 6;
/// How long a successful login keeps a (user, address) pair known-good.
const KNOWN_GOOD: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Failures of one (user, address) before it is locked.
    pub max_failures: u32,
    /// The first lockout, and the window failures are counted in.
    pub lockout: Duration,
    /// Distinct failing users from one address before the address is locked.
    pub max_users_per_address: u32,
}

type Pair = (String, Option<IpAddr>);

#[derive(Default)]
struct Count {
    failures: u32,
    last: Option<Instant>,
    until: Option<Instant>,
}

#[derive(Default)]
struct Address {
    users: HashSet<String>,
    since: Option<Instant>,
    until: Option<Instant>,
}

#[derive(Default)]
struct State {
    pairs: HashMap<Pair, Count>,
    addrs: HashMap<IpAddr, Address>,
    good: HashMap<Pair, Instant>,
}

/// Lives in the process's shared state, so counts survive a reload; a
/// reload only replaces the policy.
pub struct Limiter {
    policy: Mutex<Policy>,
    state: Mutex<State>,
}

fn remaining(until: Option<Instant>, now: Instant) -> Option<Duration> {
    until
        .filter(|u| *u > now)
        .map(|u| u - now)
        .map(|d| d.max(Duration::from_secs(1)))
}

impl Limiter {
    pub fn new(policy: Policy) -> Self {
        Self {
            policy: Mutex::new(policy),
            state: Mutex::new(State::default()),
        }
    }

    /// A reloaded config's thresholds; the counts are kept.
    pub fn set_policy(&self, policy: Policy) {
        if let Ok(mut p) = self.policy.lock() {
            *p = policy;
        }
    }

    fn policy(&self) -> Option<Policy> {
        self.policy.lock().ok().map(|p| *p)
    }

    /// `Err(retry_after)` while `user` from `ip` is locked out.
    pub fn check(&self, user: &str, ip: Option<IpAddr>) -> Result<(), Duration> {
        self.check_at(user, ip, Instant::now())
    }

    fn check_at(&self, user: &str, ip: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let Ok(s) = self.state.lock() else {
            return Ok(());
        };
        let pair = (user.to_string(), ip);
        if let Some(d) = s.pairs.get(&pair).and_then(|c| remaining(c.until, now)) {
            return Err(d);
        }
        let known = s
            .good
            .get(&pair)
            .is_some_and(|t| now.duration_since(*t) < KNOWN_GOOD);
        let addr = ip.and_then(|i| s.addrs.get(&i));
        match addr.and_then(|a| remaining(a.until, now)) {
            Some(d) if !known => Err(d),
            _ => Ok(()),
        }
    }

    pub fn failure(&self, user: &str, ip: Option<IpAddr>) {
        self.failure_at(user, ip, Instant::now())
    }

    fn failure_at(&self, user: &str, ip: Option<IpAddr>, now: Instant) {
        let Some(p) = self.policy() else { return };
        let Ok(mut s) = self.state.lock() else { return };
        if s.pairs.len() + s.addrs.len() + s.good.len() >= MAX_KEYS {
            prune(&mut s, p.lockout, now);
        }
        let c = s.pairs.entry((user.to_string(), ip)).or_default();
        // Forgotten a window after the last failure, or a window after a
        // lockout ended; a failure soon after a lockout doubles the next.
        let quiet_since = match (c.last, c.until) {
            (Some(l), Some(u)) => Some(l.max(u)),
            (l, u) => l.or(u),
        };
        if quiet_since.is_none_or(|t| now.saturating_duration_since(t) >= p.lockout) {
            c.failures = 0;
            c.until = None;
        }
        c.failures += 1;
        c.last = Some(now);
        if c.failures >= p.max_failures {
            let doublings = (c.failures - p.max_failures).min(MAX_DOUBLINGS);
            c.until = Some(now + p.lockout * 2u32.pow(doublings));
        }
        let Some(ip) = ip else { return };
        let a = s.addrs.entry(ip).or_default();
        if a.since.is_none_or(|t| now.duration_since(t) >= p.lockout) {
            a.users.clear();
            a.since = Some(now);
        }
        if a.users.len() < p.max_users_per_address as usize {
            a.users.insert(user.to_string());
        }
        if a.users.len() >= p.max_users_per_address as usize {
            a.until = Some(now + p.lockout);
        }
    }

    pub fn success(&self, user: &str, ip: Option<IpAddr>) {
        let Ok(mut s) = self.state.lock() else { return };
        let pair = (user.to_string(), ip);
        s.pairs.remove(&pair);
        s.good.insert(pair, Instant::now());
    }
}

fn prune(s: &mut State, window: Duration, now: Instant) {
    s.pairs.retain(|_, c| {
        remaining(c.until, now).is_some() || c.last.is_some_and(|l| now.duration_since(l) < window)
    });
    s.addrs.retain(|_, a| {
        remaining(a.until, now).is_some() || a.since.is_some_and(|t| now.duration_since(t) < window)
    });
    s.good.retain(|_, t| now.duration_since(*t) < KNOWN_GOOD);
    if s.good.len() > MAX_KEYS / 2 {
        s.good.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, n]))
    }

    #[test]
    fn locks_per_user_and_address_with_backoff() {
        let l = Limiter::new(Policy {
            max_failures: 3,
            lockout: Duration::from_secs(60),
            max_users_per_address: 5,
        });
        let t0 = Instant::now();
        for _ in 0..2 {
            l.failure_at("ci", ip(1), t0);
        }
        assert!(l.check_at("ci", ip(1), t0).is_ok());
        l.failure_at("ci", ip(1), t0);
        // locked for the lockout, with how long to wait
        assert_eq!(l.check_at("ci", ip(1), t0), Err(Duration::from_secs(60)));
        // the same user elsewhere, and others at the same address, are not
        assert!(l.check_at("ci", ip(2), t0).is_ok());
        assert!(l.check_at("alice", ip(1), t0).is_ok());
        // a failure soon after the lockout doubles the next one
        let t1 = t0 + Duration::from_secs(61);
        assert!(l.check_at("ci", ip(1), t1).is_ok());
        l.failure_at("ci", ip(1), t1);
        assert_eq!(l.check_at("ci", ip(1), t1), Err(Duration::from_secs(120)));
        let t2 = t1 + Duration::from_secs(121);
        l.failure_at("ci", ip(1), t2);
        assert_eq!(l.check_at("ci", ip(1), t2), Err(Duration::from_secs(240)));
        // a quiet window after a lockout forgets it
        let t3 = t2 + Duration::from_secs(240 + 60);
        l.failure_at("ci", ip(1), t3);
        assert!(l.check_at("ci", ip(1), t3).is_ok());
        // a success clears the pair
        l.success("ci", ip(1));
        assert!(l.check_at("ci", ip(1), t0).is_ok());
    }

    #[test]
    fn many_users_lock_the_address_but_not_known_users() {
        let l = Limiter::new(Policy {
            max_failures: 3,
            lockout: Duration::from_secs(60),
            max_users_per_address: 5,
        });
        let t0 = Instant::now();
        l.success("alice", ip(1));
        for u in ["u1", "u2", "u3", "u4"] {
            l.failure_at(u, ip(1), t0);
        }
        assert!(l.check_at("bob", ip(1), t0).is_ok());
        l.failure_at("u5", ip(1), t0);
        // stuffing: new names from that address wait
        assert_eq!(l.check_at("bob", ip(1), t0), Err(Duration::from_secs(60)));
        // alice logged in from there before: not refused for others' failures
        assert!(l.check_at("alice", ip(1), t0).is_ok());
        assert!(l.check_at("bob", ip(2), t0).is_ok());
        assert!(l
            .check_at("bob", ip(1), t0 + Duration::from_secs(61))
            .is_ok());
        // repeated failures of one name count once toward the address
        let l = Limiter::new(Policy {
            max_failures: 100,
            lockout: Duration::from_secs(60),
            max_users_per_address: 2,
        });
        for _ in 0..10 {
            l.failure_at("ci", ip(1), t0);
        }
        assert!(l.check_at("other", ip(1), t0).is_ok());
    }
}
