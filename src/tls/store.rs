//! `CertStore`: the listener's certificates, chosen by SNI, hot-reloaded.
//!
//! Handshakes only do a lock-free `ArcSwap` load; all file I/O happens in
//! [`CertStore::reload`], which the [`watch`] task runs off the runtime's
//! worker threads. A replacement is validated completely (PEM, X.509, key
//! matches leaf) before it is swapped in, so a broken file never serves.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::tls::fsutil::{self, Stamp};
use crate::tls::{pem, Result, TlsError};

/// One `[[tls.certificates]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSpec {
    /// Name used in logs, metrics and error messages.
    pub name: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Exact names or single-label wildcards (`*.example.com`). Empty
    /// means "the default": used without SNI (clients dialing an IP) and
    /// when no name matches.
    pub server_names: Vec<String>,
}

/// What one reload pass did for one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadEvent {
    /// New files were valid and now serve.
    Reloaded { name: String, not_after: i64 },
    /// Changed files don't load yet (e.g. cert written, key not yet);
    /// the old cert serves and the next pass tries again.
    Retrying { name: String, error: String },
    /// The same broken files failed twice in a row: logged once as an
    /// error; the old cert keeps serving until the files change again.
    Refused { name: String, error: String },
}

#[derive(Debug)]
pub struct CertStore {
    entries: Vec<Entry>,
    exact: HashMap<String, usize>,
    /// `*.example.com` is stored under `example.com`.
    wildcard: HashMap<String, usize>,
    default: usize,
}

#[derive(Debug)]
struct Entry {
    spec: CertSpec,
    live: ArcSwap<Live>,
    reload: Mutex<ReloadState>,
}

#[derive(Debug)]
struct Live {
    key: Arc<CertifiedKey>,
    not_after: i64,
}

type Stamps = (Option<Stamp>, Option<Stamp>);

#[derive(Debug)]
struct ReloadState {
    /// File versions of what serves now.
    loaded: Stamps,
    /// File versions that last failed, and whether that was reported.
    failed: Option<(Stamps, bool)>,
}

impl CertStore {
    /// Load every spec; any failure is an error naming
    /// `tls.certificates.<name>` and the file. At most one spec may have
    /// no server_names; if none does, the first spec is the default.
    pub fn new(specs: Vec<CertSpec>) -> Result<Self> {
        if specs.is_empty() {
            return Err(TlsError::InvalidConfig(
                "tls.certificates: no certificate configured".into(),
            ));
        }
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        let mut default = None;
        let mut entries = Vec::with_capacity(specs.len());
        for (i, spec) in specs.into_iter().enumerate() {
            let key = format!("tls.certificates.{}", spec.name);
            if spec.server_names.is_empty() {
                if let Some(d) = default.replace(i) {
                    return Err(TlsError::InvalidConfig(format!(
                        "{key}: only one certificate may have no server_names \
                         (the default), and tls.certificates.{} already has none",
                        name_of(&entries, d)
                    )));
                }
            }
            for raw in &spec.server_names {
                let (map, name) = match parse_server_name(raw) {
                    Some(Pattern::Exact(n)) => (&mut exact, n),
                    Some(Pattern::Wildcard(n)) => (&mut wildcard, n),
                    None => {
                        return Err(TlsError::InvalidConfig(format!(
                            "{key}.server_names: {raw:?} is not a host name or a \
                             single-label wildcard like *.example.com"
                        )))
                    }
                };
                if let Some(prev) = map.insert(name, i) {
                    // Also catches a name listed twice in the same spec.
                    let prev = if prev == i {
                        &spec.name
                    } else {
                        name_of(&entries, prev)
                    };
                    return Err(TlsError::InvalidConfig(format!(
                        "{key}.server_names: {raw:?} is also listed by tls.certificates.{prev}"
                    )));
                }
            }
            let stamps = stamps(&spec);
            let live = load_live(&spec).map_err(|e| e.with_key(key))?;
            entries.push(Entry {
                spec,
                live: ArcSwap::from_pointee(live),
                reload: Mutex::new(ReloadState {
                    loaded: stamps,
                    failed: None,
                }),
            });
        }
        Ok(CertStore {
            entries,
            exact,
            wildcard,
            // Without an explicit default, the first cert answers no-SNI
            // clients: a clear name-mismatch error beats a failed handshake.
            default: default.unwrap_or(0),
        })
    }

    /// The cert for an SNI name (`None`: no SNI sent). Always `Some`:
    /// `pick` only returns indexes of `entries`, which is never empty.
    pub fn resolve_name(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let e = self.entries.get(self.pick(sni))?;
        Some(e.live.load().key.clone())
    }

    fn pick(&self, sni: Option<&str>) -> usize {
        let Some(name) = sni else {
            return self.default;
        };
        let name = normalize(name);
        if let Some(&i) = self.exact.get(&name) {
            return i;
        }
        match name.split_once('.') {
            Some((_, parent)) => self.wildcard.get(parent).copied(),
            None => None,
        }
        .unwrap_or(self.default)
    }

    /// Re-read every pair whose files changed since they were loaded.
    /// Never blocks handshakes; logs what it did.
    pub fn reload(&self) -> Vec<ReloadEvent> {
        self.entries.iter().filter_map(Entry::reload).collect()
    }

    /// `(name, notAfter unix seconds)` of what serves now.
    /// What serves now, per entry: its spec and its leaf certificate (DER).
    pub fn served(&self) -> Vec<(CertSpec, Option<rustls_pki_types::CertificateDer<'static>>)> {
        self.entries
            .iter()
            .map(|e| (e.spec.clone(), e.live.load().key.cert.first().cloned()))
            .collect()
    }

    pub fn expiries(&self) -> Vec<(String, i64)> {
        self.entries
            .iter()
            .map(|e| (e.spec.name.clone(), e.live.load().not_after))
            .collect()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.resolve_name(client_hello.server_name())
    }
}

impl Entry {
    fn reload(&self) -> Option<ReloadEvent> {
        let mut st = lock(&self.reload);
        let now = stamps(&self.spec);
        if now == st.loaded {
            // Unchanged, or put back as it was after a broken attempt.
            st.failed = None;
            return None;
        }
        let name = self.spec.name.clone();
        match load_live(&self.spec) {
            Ok(live) => {
                let not_after = live.not_after;
                self.live.store(Arc::new(live));
                st.loaded = now;
                st.failed = None;
                tracing::info!(cert = %self.spec.cert.display(), name, not_after, "reloaded certificate");
                Some(ReloadEvent::Reloaded { name, not_after })
            }
            Err(e) => {
                let error = e.to_string();
                match st.failed {
                    // Same files failed last time too: they are not mid-write.
                    Some((seen, reported)) if seen == now => {
                        if reported {
                            return None;
                        }
                        st.failed = Some((now, true));
                        tracing::error!(name, "refusing replaced certificate, the previous one keeps serving: {error}");
                        Some(ReloadEvent::Refused { name, error })
                    }
                    _ => {
                        st.failed = Some((now, false));
                        tracing::info!(
                            name,
                            "replaced certificate does not load yet, will retry: {error}"
                        );
                        Some(ReloadEvent::Retrying { name, error })
                    }
                }
            }
        }
    }
}

/// Poll the store's files every `every` and reload what changed. Run it
/// as a background task (a pingora background service in the server).
pub async fn watch(store: Arc<CertStore>, every: Duration) {
    // tokio's interval panics on a zero period.
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick fires at once; files were just loaded
    loop {
        tick.tick().await;
        let s = store.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || s.reload()).await {
            tracing::error!("certificate reload task failed: {e}");
        }
    }
}

fn load_live(spec: &CertSpec) -> Result<Live> {
    let chain = pem::load_cert_chain(&spec.cert)?;
    let key = pem::load_private_key(&spec.key)?;
    let not_after = match chain.first() {
        Some(leaf) => pem::not_after(&spec.cert, leaf)?,
        None => {
            return Err(TlsError::NoCertificate {
                path: spec.cert.clone(),
            })
        }
    };
    let ck = pem::certified_key(&spec.cert, &spec.key, chain, key)?;
    if not_after < time::OffsetDateTime::now_utc().unix_timestamp() {
        tracing::warn!(cert = %spec.cert.display(), name = spec.name, "certificate has expired; clients will refuse it");
    }
    Ok(Live {
        key: Arc::new(ck),
        not_after,
    })
}

fn name_of(entries: &[Entry], i: usize) -> &str {
    entries.get(i).map_or("?", |e| e.spec.name.as_str())
}

fn stamps(spec: &CertSpec) -> Stamps {
    (fsutil::stamp(&spec.cert), fsutil::stamp(&spec.key))
}

fn lock(m: &Mutex<ReloadState>) -> MutexGuard<'_, ReloadState> {
    // A panic mid-reload leaves consistent state (fields are set last).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, PartialEq, Eq)]
enum Pattern {
    Exact(String),
    Wildcard(String),
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn parse_server_name(raw: &str) -> Option<Pattern> {
    let name = normalize(raw.trim());
    let valid = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
    };
    match name.strip_prefix("*.") {
        Some(parent) if valid(parent) => Some(Pattern::Wildcard(parent.to_string())),
        Some(_) => None,
        None if valid(&name) => Some(Pattern::Exact(name)),
        None => None,
    }
}

#[cfg(test)]
mod tests;
