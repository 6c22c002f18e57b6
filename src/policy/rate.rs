//! Rate limits: requests per second with a burst, and pull bytes per
//! second, per key (a user, or the client address for anonymous requests,
//! within one repository). GCRA ("virtual scheduling"): one instant per
//! key, no background refill. Kept per instance; with `[cluster]` the
//! instances also charge each other's consumption (`rate_share`).

use super::rate_share::Ledger;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A configured limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub requests_per_second: f64,
    pub burst: u32,
    /// Pull bytes per second (answers to GET), if limited.
    pub pull_bytes_per_second: Option<u64>,
}

/// Keys are dropped once idle this long (their bucket is full again).
const IDLE: Duration = Duration::from_secs(600);
/// Above this many keys, idle ones are swept on insert.
const SWEEP_AT: usize = 50_000;

#[derive(Default)]
pub struct Limiter {
    requests: Mutex<HashMap<String, Instant>>,
    bytes: Mutex<HashMap<String, Instant>>,
    /// What this instance admitted since it last told the cluster.
    ledger: Arc<Ledger>,
}

impl Limiter {
    /// Admits one request for `key`, or says how long to wait.
    pub fn request(&self, key: &str, rate: &Rate, now: Instant) -> Result<(), Duration> {
        let interval = Duration::from_secs_f64(1.0 / rate.requests_per_second);
        let tolerance = interval * rate.burst.saturating_sub(1);
        let Ok(mut map) = self.requests.lock() else {
            return Ok(());
        };
        sweep(&mut map, now);
        let tat = map.get(key).copied().unwrap_or(now).max(now);
        let ahead = tat - now;
        if ahead > tolerance {
            return Err(ahead - tolerance);
        }
        map.insert(key.to_string(), tat + interval);
        drop(map);
        self.ledger.request(key);
        Ok(())
    }

    /// The record of local consumption the cluster exchange publishes.
    pub fn ledger(&self) -> Arc<Ledger> {
        self.ledger.clone()
    }

    /// Uses up `cost` of `key`'s request bucket without asking (another
    /// instance admitted those requests).
    pub fn charge(&self, key: &str, cost: Duration, now: Instant) {
        if let Ok(mut map) = self.requests.lock() {
            charge(&mut map, key, cost, now);
        }
    }

    /// As `charge`, for the pull byte bucket.
    pub fn charge_bytes(&self, key: &str, cost: Duration, now: Instant) {
        if let Ok(mut map) = self.bytes.lock() {
            charge(&mut map, key, cost, now);
        }
    }

    /// Accounts `n` pulled bytes for `key`; returns how long to hold the
    /// chunk back so the key stays at its rate (after a one-second burst).
    pub fn pulled(&self, key: &str, n: usize, per_second: u64, now: Instant) -> Option<Duration> {
        if per_second == 0 || n == 0 {
            return None;
        }
        let cost = Duration::from_secs_f64(n as f64 / per_second as f64);
        let Ok(mut map) = self.bytes.lock() else {
            return None;
        };
        sweep(&mut map, now);
        let tat = map.get(key).copied().unwrap_or(now).max(now) + cost;
        map.insert(key.to_string(), tat);
        drop(map);
        self.ledger.bytes(key, n as u64);
        let wait = (tat - now).checked_sub(Duration::from_secs(1))?;
        (!wait.is_zero()).then_some(wait)
    }
}

fn charge(map: &mut HashMap<String, Instant>, key: &str, cost: Duration, now: Instant) {
    sweep(map, now);
    let from = map.get(key).copied().unwrap_or(now).max(now);
    // A cost too large for the clock (absurd rates) leaves the bucket be.
    if let Some(tat) = from.checked_add(cost) {
        map.insert(key.to_string(), tat);
    }
}

fn sweep(map: &mut HashMap<String, Instant>, now: Instant) {
    if map.len() >= SWEEP_AT {
        map.retain(|_, tat| *tat + IDLE > now);
    }
}

/// `Retry-After` in whole seconds, never 0.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0).max(u64::from(wait.is_zero()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(rps: f64, burst: u32) -> Rate {
        Rate {
            requests_per_second: rps,
            burst,
            pull_bytes_per_second: None,
        }
    }

    #[test]
    fn burst_then_rate() {
        let l = Limiter::default();
        let t0 = Instant::now();
        let r = rate(2.0, 3);
        for i in 0..3 {
            assert!(l.request("a", &r, t0).is_ok(), "burst request {i}");
        }
        let wait = l.request("a", &r, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(l.request("b", &r, t0).is_ok(), "keys are separate");
        assert!(l.request("a", &r, t0 + Duration::from_millis(500)).is_ok());
        assert!(l.request("a", &r, t0 + Duration::from_millis(600)).is_err());
        assert!(l.request("a", &r, t0 + Duration::from_secs(10)).is_ok());
    }

    #[test]
    fn bytes_are_paced_after_a_second_of_burst() {
        let l = Limiter::default();
        let t0 = Instant::now();
        assert_eq!(l.pulled("a", 1000, 1000, t0), None);
        assert_eq!(
            l.pulled("a", 500, 1000, t0),
            Some(Duration::from_millis(500))
        );
        assert_eq!(l.pulled("a", 0, 1000, t0), None);
        assert_eq!(l.pulled("b", 100, 1000, t0), None);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2100)), 3);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
