//! Rate limits shared by a cluster: what this instance admitted since it
//! last told the others (the `Ledger`), the batch it publishes, and how the
//! others' batches are charged to the local buckets. Pure: the etcd side
//! (`state/etcd/usage.rs`) only moves batches; requests decide from memory.
//!
//! Each instance keeps its own GCRA buckets and charges them with what the
//! other instances report, as if those requests had come here. A client
//! whose connections all stay on one instance gets its whole limit there;
//! a client spread over several is held to one limit, give or take what
//! the others admit before their next batch arrives.

use super::rate::{Limiter, Rate};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Most keys one batch carries: the busiest; the rest of that interval's
/// consumption stays local.
pub const MAX_KEYS: usize = 512;
/// Most keys the ledger holds between two batches (a flood of new keys
/// must not grow it without bound); later ones are not shared.
const MAX_PENDING: usize = 10_000;

/// One key's consumption in an interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Requests admitted.
    pub requests: u32,
    /// Pull bytes sent (paced answers only).
    pub bytes: u64,
}

/// What one instance admitted in one interval, by limiter key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    #[serde(rename = "k")]
    pub keys: BTreeMap<String, Usage>,
}

impl Batch {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// None for anything that is not a batch (written by a newer or older
    /// dockgate, or not by dockgate at all): ignored, never fatal.
    pub fn decode(data: &[u8]) -> Option<Self> {
        serde_json::from_slice(data).ok()
    }
}

/// This instance's consumption since the last batch. Off (records nothing)
/// unless the cluster shares limits.
#[derive(Default)]
pub struct Ledger {
    on: AtomicBool,
    pending: Mutex<HashMap<String, Usage>>,
    /// Woken when the first consumption after a batch is recorded, so the
    /// first request of a burst travels at once.
    news: Notify,
}

impl Ledger {
    pub fn enable(&self) {
        self.on.store(true, Ordering::Relaxed);
    }

    pub fn request(&self, key: &str) {
        self.record(key, |u| u.requests = u.requests.saturating_add(1));
    }

    pub fn bytes(&self, key: &str, n: u64) {
        self.record(key, |u| u.bytes = u.bytes.saturating_add(n));
    }

    fn record(&self, key: &str, f: impl FnOnce(&mut Usage)) {
        if !self.on.load(Ordering::Relaxed) {
            return;
        }
        let Ok(mut p) = self.pending.lock() else {
            return;
        };
        let first = p.is_empty();
        if let Some(u) = p.get_mut(key) {
            f(u);
        } else if p.len() < MAX_PENDING {
            f(p.entry(key.to_string()).or_default());
        } else {
            return;
        }
        drop(p);
        if first {
            self.news.notify_one();
        }
    }

    /// Waits until something was recorded since the last `take`.
    pub async fn wait(&self) {
        self.news.notified().await
    }

    /// The busiest `max` keys since the last call, and how many were left
    /// out; starts the next interval empty.
    pub fn take(&self, max: usize) -> (Batch, usize) {
        let all = match self.pending.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(_) => return (Batch::default(), 0),
        };
        busiest(all, max)
    }
}

/// The `max` keys with the most requests (then bytes); ties by key so a
/// batch does not depend on hash order.
fn busiest(all: HashMap<String, Usage>, max: usize) -> (Batch, usize) {
    let mut v: Vec<(String, Usage)> = all.into_iter().collect();
    let left_out = v.len().saturating_sub(max);
    if left_out > 0 {
        v.sort_by(|(ka, a), (kb, b)| {
            (b.requests, b.bytes)
                .cmp(&(a.requests, a.bytes))
                .then_with(|| ka.cmp(kb))
        });
        v.truncate(max);
    }
    (
        Batch {
            keys: v.into_iter().collect(),
        },
        left_out,
    )
}

/// Charges another instance's batch to the local buckets: each key's
/// requests and bytes as if they had been admitted here at `now`.
/// `rate_of` gives a key's limit (the same config on every instance); keys
/// no longer limited here are skipped. Returns the keys charged.
pub fn absorb(
    limiter: &Limiter,
    batch: &Batch,
    rate_of: impl Fn(&str) -> Option<Rate>,
    now: Instant,
) -> usize {
    let mut charged = 0;
    for (key, u) in &batch.keys {
        let Some(rate) = rate_of(key) else { continue };
        if u.requests > 0 {
            limiter.charge(key, request_cost(&rate, u.requests), now);
        }
        if let Some(bps) = rate.pull_bytes_per_second.filter(|_| u.bytes > 0) {
            limiter.charge_bytes(key, bytes_cost(bps, u.bytes), now);
        }
        charged += 1;
    }
    charged
}

/// Bucket time `n` requests use up.
pub fn request_cost(rate: &Rate, n: u32) -> Duration {
    secs(f64::from(n) / rate.requests_per_second)
}

/// Bucket time `n` pulled bytes use up.
pub fn bytes_cost(per_second: u64, n: u64) -> Duration {
    if per_second == 0 {
        return Duration::ZERO;
    }
    secs(n as f64 / per_second as f64)
}

/// Seconds as a Duration, at most a day (never a panic on odd floats).
fn secs(s: f64) -> Duration {
    const DAY: Duration = Duration::from_secs(86_400);
    Duration::try_from_secs_f64(s).map_or(DAY, |d| d.min(DAY))
}

#[cfg(test)]
mod tests;
