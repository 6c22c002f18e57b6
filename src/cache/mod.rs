//! An edge cache for content-addressed objects: blobs and manifests by
//! digest, on local disk under `[cache] dir`, at most `max_size` bytes,
//! least recently used out first.
//!
//! - One fetch per digest: concurrent misses join the fetch in flight
//!   (the cache lock) and stream its bytes from the file as they land.
//! - Bytes are hashed as they arrive; an object is stored only when the
//!   digest matches, and no reader gets the last byte before that.
//! - Whether a client may pull is decided before the cache is asked; the
//!   cache adds that a digest first fetched through one repository is
//!   served for another only after the backend confirmed (one HEAD,
//!   remembered) that this repository holds it.
//!
//! Why not pingora-cache: its keys, hit/miss phases and eviction manager
//! are built for HTTP caching (Cache-Control, in-memory LRU lost on
//! restart); it finishes the response to the writer before the storage
//! can refuse it, and a per-repository HEAD before a hit has no phase of
//! its own. Content-addressed objects need none of HTTP's rules, so the
//! cache is small and our own; the proxy glue is `proxy/cache.rs`.

mod disk;
mod fill;
mod index;
mod metrics;
pub mod rules;

pub use fill::{Fill, Reader};
pub use metrics::CacheMetrics;

use crate::config::{Backend, CacheSettings};
use crate::migrate::client::{Client, ACCEPT_ALL};
use crate::upstream::Peers;
use http::{Method, StatusCode};
use index::Index;
use pingora::connectors::http::Connector;
use rules::Digest;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache.dir: {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the backend fetch of {0} failed; nothing was stored")]
    FillFailed(String),
    #[error("cache task: {0}")]
    Task(String),
}

/// Blob or manifest: manifests are fetched with every manifest type in
/// `Accept` and capped at 4 MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Blob,
    Manifest,
}

/// Who is asking for what, in the backend's terms.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub backend: String,
    /// The repository name on the backend.
    pub name: String,
    pub digest: Digest,
}

/// One request the cache may answer.
pub struct Request {
    pub key: Key,
    pub kind: Kind,
    pub backend: Arc<Backend>,
    pub peers: Peers,
    /// The object's path on the backend (`<v2_prefix>/<name>/blobs/<digest>`).
    pub path: String,
    pub head: bool,
    pub ranged: bool,
    /// Metric label.
    pub repo_label: String,
}

pub enum Lookup {
    /// Not for the cache: proxy to the backend as usual.
    Bypass,
    Hit(Reader),
    /// A fill in flight: this request started it, or waits on it.
    Fill(Arc<Fill>),
}

/// Confirmations remembered before the set is cleared (and re-learnt).
const MAX_CONFIRMED: usize = 100_000;

struct State {
    index: Index,
    fills: HashMap<Digest, Arc<Fill>>,
    confirmed: HashSet<Key>,
}

pub struct Cache {
    dir: PathBuf,
    state: Mutex<State>,
    connector: Arc<Connector>,
    metrics: CacheMetrics,
}

impl Cache {
    /// Reads the index from disk. Blocking: call at start, before serving.
    pub fn open(s: &CacheSettings, metrics: CacheMetrics) -> Result<Arc<Self>, CacheError> {
        let found = disk::prepare(&s.dir)?;
        let mut index = Index::new(s.max_size);
        for f in found {
            index.insert(&f.digest, f.meta.size, f.meta.content_type, f.mtime);
        }
        for d in index.shrink() {
            disk::remove(&s.dir, &d);
            metrics.evictions.inc();
        }
        metrics.size.set(index.used() as i64);
        metrics.objects.set(index.len() as i64);
        tracing::info!(dir = %s.dir.display(), objects = index.len(), bytes = index.used(), max_size = s.max_size, "cache opened");
        Ok(Arc::new(Self {
            dir: s.dir.clone(),
            state: Mutex::new(State {
                index,
                fills: HashMap::new(),
                confirmed: HashSet::new(),
            }),
            connector: Arc::new(Connector::new(None)),
            metrics,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding it leaves plain data, still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn metrics(&self) -> &CacheMetrics {
        &self.metrics
    }

    fn confirmed(&self, k: &Key) -> bool {
        self.lock().confirmed.contains(k)
    }

    fn confirm(&self, k: &Key) {
        let mut st = self.lock();
        if st.confirmed.len() >= MAX_CONFIRMED {
            st.confirmed.clear();
        }
        st.confirmed.insert(k.clone());
    }

    /// Whether the backend holds this digest in this repository: one HEAD,
    /// remembered when yes.
    async fn confirm_by_head(&self, r: &Request) -> bool {
        if self.confirmed(&r.key) {
            return true;
        }
        self.metrics
            .confirmations
            .with_label_values(&[&r.repo_label])
            .inc();
        let client = Client::new(self.connector.clone(), r.peers.clone());
        let accept: &[(&str, &str)] = match r.kind {
            Kind::Manifest => &[("Accept", ACCEPT_ALL)],
            Kind::Blob => &[],
        };
        match client
            .send(&r.backend, Method::HEAD, &r.path, accept, None, 0)
            .await
        {
            Ok(reply) if reply.status == StatusCode::OK => {
                self.confirm(&r.key);
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::debug!(error = %e, "cache: confirmation HEAD failed");
                false
            }
        }
    }

    /// Decides how a (authorised) GET or HEAD by digest is answered.
    pub async fn lookup(self: &Arc<Self>, r: Request) -> Lookup {
        let d = r.key.digest.clone();
        // A second round only when a fill was stored between two looks.
        for _ in 0..2 {
            let stored = self.lock().index.get(&d.to_string());
            if let Some(e) = stored {
                if !self.confirm_by_head(&r).await {
                    return Lookup::Bypass;
                }
                match self
                    .open_stored(&d, e.size, e.content_type, e.touched)
                    .await
                {
                    Ok(reader) => {
                        self.metrics.hits.with_label_values(&[&r.repo_label]).inc();
                        return Lookup::Hit(reader);
                    }
                    // Evicted meanwhile: fetch again.
                    Err(e) => tracing::debug!(error = %e, "cache: stored object gone"),
                }
            }
            // HEADs and Ranges are not worth a whole fetch.
            if r.head || r.ranged {
                return Lookup::Bypass;
            }
            // Under one lock: join the fetch in flight, or become it.
            let (fill, leader) = {
                let mut st = self.lock();
                if let Some(f) = st.fills.get(&d).cloned() {
                    (f, false)
                } else if st.index.get(&d.to_string()).is_some() {
                    continue;
                } else {
                    let f = Fill::new(r.key.clone());
                    st.fills.insert(d.clone(), f.clone());
                    (f, true)
                }
            };
            if leader {
                self.metrics
                    .misses
                    .with_label_values(&[&r.repo_label])
                    .inc();
                tokio::spawn(fill::run(self.clone(), fill.clone(), r));
                return Lookup::Fill(fill);
            }
            // The fetch's own answer speaks for its repository; another
            // repository asks the backend first.
            if fill.key() != &r.key && !self.confirm_by_head(&r).await {
                return Lookup::Bypass;
            }
            self.metrics
                .lock_waits
                .with_label_values(&[&r.repo_label])
                .inc();
            return Lookup::Fill(fill);
        }
        Lookup::Bypass
    }

    async fn open_stored(
        &self,
        d: &Digest,
        size: u64,
        content_type: String,
        touched: u64,
    ) -> Result<Reader, CacheError> {
        let dir = self.dir.clone();
        let dd = d.clone();
        // At most one mtime update a minute per object.
        let now = disk::now_secs();
        let touch = now.saturating_sub(touched) >= 60;
        if touch {
            self.lock().index.set_touched(&d.to_string(), now);
        }
        let file = blocking(move || {
            let f = disk::open(&dir, &dd)?;
            if touch {
                disk::touch(&dir, &dd);
            }
            Ok(f)
        })
        .await?;
        Ok(Reader::stored(
            Arc::new(file),
            size,
            content_type,
            self.metrics.clone(),
        ))
    }

    /// Reserves room for a fill; evicted objects' files are deleted.
    async fn reserve(&self, size: u64) -> bool {
        let gone = {
            let mut st = self.lock();
            let g = st.index.reserve(size);
            self.metrics.size.set(st.index.used() as i64);
            self.metrics.objects.set(st.index.len() as i64);
            g
        };
        let Some(gone) = gone else { return false };
        if !gone.is_empty() {
            self.metrics.evictions.inc_by(gone.len() as u64);
            let dir = self.dir.clone();
            let _ = blocking(move || {
                for d in gone {
                    disk::remove(&dir, &d);
                }
                Ok(())
            })
            .await;
        }
        true
    }

    /// A fill is over: stored (`Some(content_type)`) or given up.
    fn finish(&self, d: &Digest, reserved: u64, stored: Option<String>) {
        let mut st = self.lock();
        match stored {
            Some(ct) => st
                .index
                .commit(&d.to_string(), reserved, ct, disk::now_secs()),
            None => st.index.release(reserved),
        }
        st.fills.remove(d);
        self.metrics.size.set(st.index.used() as i64);
        self.metrics.objects.set(st.index.len() as i64);
    }
}

/// Cache file work in flight at once: a storm of readers would otherwise
/// grow tokio's blocking pool to one thread (stack, allocator cache) each.
static BLOCKING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(8);

/// Runs blocking file work off the worker threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CacheError> + Send + 'static,
) -> Result<T, CacheError> {
    let _permit = BLOCKING
        .acquire()
        .await
        .map_err(|e| CacheError::Task(e.to_string()))?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CacheError::Task(e.to_string()))?
}
