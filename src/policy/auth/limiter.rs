//! Failed-login throttling per user and per client address: after
//! `max_failures` failures inside the window, the key is locked out for
//! the window. Memory is bounded by pruning stale entries.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const MAX_KEYS: usize = 100_000;

pub struct Limiter {
    max_failures: u32,
    window: Duration,
    state: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Limiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
            state: Mutex::new(HashMap::new()),
        }
    }

    pub fn locked(&self, key: &str) -> bool {
        let Ok(s) = self.state.lock() else {
            return false;
        };
        s.get(key)
            .is_some_and(|(n, since)| *n >= self.max_failures && since.elapsed() < self.window)
    }

    pub fn failure(&self, key: &str) {
        let Ok(mut s) = self.state.lock() else { return };
        if s.len() >= MAX_KEYS {
            let w = self.window;
            s.retain(|_, (_, since)| since.elapsed() < w);
        }
        let e = s.entry(key.to_string()).or_insert((0, Instant::now()));
        if e.1.elapsed() >= self.window {
            *e = (0, Instant::now());
        }
        e.0 += 1;
        e.1 = Instant::now();
    }

    pub fn success(&self, key: &str) {
        if let Ok(mut s) = self.state.lock() {
            s.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_max_failures() {
        let l = Limiter::new(3, Duration::from_secs(60));
        for _ in 0..2 {
            l.failure("u:alice");
        }
        assert!(!l.locked("u:alice"));
        l.failure("u:alice");
        assert!(l.locked("u:alice"));
        assert!(!l.locked("ip:1.2.3.4"));
        l.success("u:alice");
        assert!(!l.locked("u:alice"));
        let short = Limiter::new(1, Duration::from_millis(1));
        short.failure("k");
        std::thread::sleep(Duration::from_millis(5));
        assert!(!short.locked("k"));
    }
}
