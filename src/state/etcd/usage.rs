//! Rate limits shared by the cluster: the etcd side of `policy::rate_share`.
//! Each instance publishes what it admitted since its last batch under
//! `usage/<instance>` (one key, on a short lease, so a stopped instance
//! leaves nothing behind), at once for the first request after a quiet
//! spell and then at most every `INTERVAL`; every instance charges the
//! others' batches, delivered by the watch it already has, to its own
//! buckets. Requests never wait for any of this. While etcd is unreachable
//! nothing is published or received: the limits are per instance until it
//! answers again, and that time's consumption is not charged afterwards.

use super::{unreachable, ClusterError, EtcdStore};
use crate::policy::rate_share::{Batch, Ledger, MAX_KEYS};
use etcd_client::PutOptions;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

pub const DIR: &str = "usage/";
/// The shortest time between two batches of one instance.
pub const INTERVAL: Duration = Duration::from_millis(250);
/// A batch's lease; renewed (a new one) after half of it.
const LEASE_SECS: i64 = 10;

/// Charges another instance's batch here; returns the keys charged.
pub type Absorb = Box<dyn Fn(&Batch) -> usize + Send + Sync>;

pub fn usage_key(instance: &str) -> String {
    format!("{DIR}{instance}")
}

/// Another instance's batch (`usage/<instance>`); None for our own.
pub fn foreign_batch(key: &str, data: &[u8], me: &str) -> Option<Batch> {
    let instance = key.strip_prefix(DIR)?;
    if instance == me || instance.is_empty() {
        return None;
    }
    Batch::decode(data)
}

impl EtcdStore {
    /// Starts sharing this instance's rate-limit consumption (`ledger`)
    /// and charging the others' with `absorb`.
    pub fn share_rate_limits(self: &Arc<Self>, ledger: Arc<Ledger>, absorb: Absorb) {
        if self.absorb.set(absorb).is_err() {
            return;
        }
        ledger.enable();
        self.handle.spawn(self.clone().publish(ledger));
    }

    /// Another instance's batch arrived through the watch.
    pub(super) fn received(&self, batches: Vec<Batch>) {
        let Some(absorb) = self.absorb.get() else {
            return;
        };
        let keys: usize = batches.iter().map(absorb).sum();
        self.metrics
            .rate_shared_keys
            .with_label_values(&["received"])
            .inc_by(keys as u64);
    }

    async fn publish(self: Arc<Self>, ledger: Arc<Ledger>) {
        let key = self.full(&usage_key(&self.instance));
        let mut lease = None;
        let mut last = Instant::now()
            .checked_sub(INTERVAL)
            .unwrap_or_else(Instant::now);
        loop {
            ledger.wait().await;
            tokio::time::sleep_until(last + INTERVAL).await;
            let (batch, left_out) = ledger.take(MAX_KEYS);
            last = Instant::now();
            // Unreachable: per instance meanwhile (the warning says so).
            if batch.keys.is_empty() || !self.connected.load(Ordering::SeqCst) {
                continue;
            }
            let put = self.put_batch(&key, &batch, &mut lease);
            match tokio::time::timeout(Duration::from_secs(1), put).await {
                Ok(Ok(())) => {
                    let m = &self.metrics.rate_shared_keys;
                    m.with_label_values(&["published"])
                        .inc_by(batch.keys.len() as u64);
                    m.with_label_values(&["left_out"]).inc_by(left_out as u64);
                }
                Ok(Err(e)) => {
                    lease = None;
                    tracing::debug!(error = %e, "rate-limit consumption not shared");
                }
                Err(_) => {
                    lease = None;
                    tracing::debug!("rate-limit consumption not shared: no answer within 1 s");
                }
            }
        }
    }

    async fn put_batch(
        &self,
        key: &str,
        batch: &Batch,
        lease: &mut Option<(i64, Instant)>,
    ) -> Result<(), ClusterError> {
        let mut c = self.client.clone();
        let half = Duration::from_secs(LEASE_SECS as u64 / 2);
        let id = match *lease {
            Some((id, at)) if at.elapsed() < half => id,
            _ => {
                let l = c.lease_grant(LEASE_SECS, None).await.map_err(unreachable)?;
                *lease = Some((l.id(), Instant::now()));
                l.id()
            }
        };
        let opts = PutOptions::new().with_lease(id);
        c.put(key, batch.encode(), Some(opts))
            .await
            .map_err(unreachable)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_from_others_only() {
        let b = br#"{"k":{"*|user:ci":{"requests":2,"bytes":0}}}"#;
        let got = foreign_batch("usage/b", b, "a").map(|b| b.keys.len());
        assert_eq!(got, Some(1));
        assert!(foreign_batch("usage/a", b, "a").is_none());
        assert!(foreign_batch("usage/", b, "a").is_none());
        assert!(foreign_batch("failures/b/1", b, "a").is_none());
        assert!(foreign_batch("usage/b", b"junk", "a").is_none());
    }
}
