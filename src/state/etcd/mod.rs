//! Runtime state shared by several instances through etcd (`[cluster]`).
//! Each instance keeps a mirror of the prefix, fed by a watch, and serves
//! every read from it; writes are transactions on the revision the mirror
//! holds for the key (retried on a newer one, so two admins never lose an
//! update). When etcd is out of reach the mirror keeps serving, writes
//! answer "cluster store unreachable", and the client reconnects with
//! backoff; any break in the watch re-reads the whole prefix, so a change
//! is never half applied. The client runs on a thread of its own.

pub mod connect;
pub mod mirror;
pub mod usage;

use super::store::{check_area, RepoOverride, Secrets, StateStore, StoreError};
use crate::config::Cluster;
use crate::observe::Metrics;
use crate::policy::auth::keys::ApiKeys;
use crate::policy::auth::limiter::Limiter;
use crate::policy::auth::token::{self, Keyring};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse,
    WatchOptions,
};
use mirror::{Mirror, TokenKeys, Touched, Value};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{key}: {message}")]
    Config { key: String, message: String },
    /// One member, by its place in `cluster.etcd`.
    #[error("{key}: {url}: {message}")]
    Member {
        key: String,
        url: String,
        message: String,
    },
    #[error("cluster store unreachable: {0}")]
    Unreachable(String),
    #[error("{0}")]
    Invalid(String),
}

impl From<ClusterError> for StoreError {
    fn from(e: ClusterError) -> Self {
        match e {
            ClusterError::Unreachable(m) => StoreError::Unreachable(m),
            ClusterError::Invalid(m) => StoreError::Invalid(m),
            other => StoreError::Io(other.to_string()),
        }
    }
}

fn unreachable(e: etcd_client::Error) -> ClusterError {
    ClusterError::Unreachable(connect::chain(&e))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A key's new value from its current one (None: absent).
pub type Edit<'a> = dyn Fn(Option<&[u8]>) -> Result<Vec<u8>, ClusterError> + Send + Sync + 'a;

/// How long a write may retry on newer revisions before giving up.
const CAS_TRIES: usize = 8;

/// Read-modify-write of one key as a transaction on the revision read:
/// `guess` is what the caller believes is there (value, mod revision);
/// on a newer revision the fresh value is fetched and `f` runs again.
/// Returns the value written and its revision.
pub async fn cas(
    client: &mut Client,
    key: &str,
    mut guess: Option<(Option<Vec<u8>>, i64)>,
    f: &Edit<'_>,
) -> Result<(Vec<u8>, i64), ClusterError> {
    for _ in 0..CAS_TRIES {
        let (cur, rev) = match guess.take() {
            Some(g) => g,
            None => {
                let r = client.get(key, None).await.map_err(unreachable)?;
                match r.kvs().first() {
                    Some(kv) => (Some(kv.value().to_vec()), kv.mod_revision()),
                    None => (None, 0),
                }
            }
        };
        let new = f(cur.as_deref())?;
        let txn = Txn::new()
            .when([Compare::mod_revision(key, CompareOp::Equal, rev)])
            .and_then([TxnOp::put(key, new.clone(), None)])
            .or_else([TxnOp::get(key, None)]);
        let resp = client.txn(txn).await.map_err(unreachable)?;
        let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
        if resp.succeeded() {
            return Ok((new, revision));
        }
        // Someone wrote first: start again from what is there now.
        for op in resp.op_responses() {
            if let TxnOpResponse::Get(g) = op {
                guess = Some(match g.kvs().first() {
                    Some(kv) => (Some(kv.value().to_vec()), kv.mod_revision()),
                    None => (None, 0),
                });
            }
        }
    }
    Err(ClusterError::Invalid(format!(
        "{key}: too many concurrent writes; try again"
    )))
}

/// Creates `key` with `value` unless it exists (the first instance wins).
async fn create_if_absent(
    client: &mut Client,
    key: &str,
    value: Vec<u8>,
) -> Result<(), ClusterError> {
    let txn = Txn::new()
        .when([Compare::create_revision(key, CompareOp::Equal, 0)])
        .and_then([TxnOp::put(key, value, None)]);
    client.txn(txn).await.map_err(unreachable)?;
    Ok(())
}

/// The whole prefix, as a fresh mirror (failure records left out).
async fn read_all(client: &mut Client, prefix: &str) -> Result<Mirror, ClusterError> {
    let r = client
        .get(prefix, Some(GetOptions::new().with_prefix()))
        .await
        .map_err(unreachable)?;
    let mut m = Mirror {
        revision: r.header().map(|h| h.revision()).unwrap_or(0),
        ..Mirror::default()
    };
    for kv in r.kvs() {
        let Some(rel) = kv.key().strip_prefix(prefix.as_bytes()) else {
            continue;
        };
        let rel = String::from_utf8_lossy(rel).into_owned();
        // Events, not state: only the watch delivers them.
        if !rel.starts_with("failures/") && !rel.starts_with(usage::DIR) {
            m.apply(
                rel,
                Some(Value {
                    data: kv.value().to_vec(),
                    mod_revision: kv.mod_revision(),
                }),
            );
        }
    }
    Ok(m)
}

fn build_secrets(m: &Mirror, now: u64) -> Result<Secrets, ClusterError> {
    let bad = |what: &str| ClusterError::Invalid(format!("cluster state: {what}"));
    let api = m
        .get(mirror::API_KEY)
        .and_then(|v| mirror::unb64(&String::from_utf8_lossy(&v.data)))
        .ok_or_else(|| bad("secrets/api-key is missing or not base64"))?;
    let keys = m
        .get(mirror::TOKEN_KEYS)
        .and_then(|v| TokenKeys::parse(&v.data))
        .ok_or_else(|| bad("secrets/token-keys is missing or not JSON"))?;
    Ok(Secrets {
        api_keys: ApiKeys::new(&api),
        tokens: Keyring::new(&keys.live(now)).map_err(|e| bad(&e.to_string()))?,
    })
}

/// What a single instance kept in files, published by the first instance
/// of a new cluster so its API keys, tokens and revocations stay valid.
#[derive(Debug, Default, Clone)]
pub struct Seed {
    pub api_secret: Option<Vec<u8>>,
    pub token_key: Option<Vec<u8>>,
    pub generations: BTreeMap<String, u64>,
}

/// The secrets every instance shares, made by whichever starts first (from
/// its files when it has them, with its key generations, in one
/// transaction, so a revoked key never works again).
async fn ensure_secrets(
    client: &mut Client,
    prefix: &str,
    seed: &Seed,
) -> Result<(), ClusterError> {
    let secret = match &seed.api_secret {
        Some(s) => s.clone(),
        None => {
            let mut s = vec![0u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut s)
                .map_err(|_| ClusterError::Invalid("no system randomness".into()))?;
            s
        }
    };
    let api_key = format!("{prefix}{}", mirror::API_KEY);
    let mut puts = vec![TxnOp::put(
        api_key.as_str(),
        mirror::b64(&secret).into_bytes(),
        None,
    )];
    for (user, g) in &seed.generations {
        puts.push(TxnOp::put(
            format!("{prefix}{}", mirror::generation_key(user)),
            g.to_string().into_bytes(),
            None,
        ));
    }
    let txn = Txn::new()
        .when([Compare::create_revision(
            api_key.as_str(),
            CompareOp::Equal,
            0,
        )])
        .and_then(puts);
    client.txn(txn).await.map_err(unreachable)?;
    let key = match &seed.token_key {
        Some(k) => k.clone(),
        None => token::generate_pkcs8().map_err(|e| ClusterError::Invalid(e.to_string()))?,
    };
    create_if_absent(
        client,
        &format!("{prefix}{}", mirror::TOKEN_KEYS),
        TokenKeys::first(&key).encode(),
    )
    .await
}

pub struct EtcdStore {
    prefix: String,
    /// Marks this instance's failure records, so it does not count its
    /// own twice.
    instance: String,
    client: Client,
    mirror: RwLock<Mirror>,
    secrets: ArcSwap<Secrets>,
    connected: AtomicBool,
    last_contact: Mutex<Instant>,
    limiter: Arc<Limiter>,
    metrics: Arc<Metrics>,
    /// Seconds a failure record lives (the lockout window).
    lockout_secs: AtomicU64,
    on_change: OnceLock<Box<dyn Fn() + Send + Sync>>,
    /// Set when rate limits are shared (`usage`).
    absorb: OnceLock<usage::Absorb>,
    handle: tokio::runtime::Handle,
}

impl EtcdStore {
    /// Connects, makes the shared secrets if this is the first instance,
    /// reads the prefix and starts watching it, on a thread of its own.
    /// Blocking; fails when etcd cannot be reached at start.
    pub fn start(
        cluster: &Cluster,
        seed: Seed,
        limiter: Arc<Limiter>,
        metrics: Arc<Metrics>,
        lockout: Duration,
    ) -> Result<Arc<Self>, ClusterError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let cluster = cluster.clone();
        std::thread::Builder::new()
            .name("dockgate-cluster".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(ClusterError::Invalid(e.to_string())));
                        return;
                    }
                };
                rt.block_on(async move {
                    let first = async {
                        let mut client = connect::connect(&cluster).await?;
                        ensure_secrets(&mut client, &cluster.prefix, &seed).await?;
                        let m = read_all(&mut client, &cluster.prefix).await?;
                        let secrets = build_secrets(&m, unix_now())?;
                        Ok::<_, ClusterError>((client, m, secrets))
                    };
                    let (client, m, secrets) =
                        match tokio::time::timeout(Duration::from_secs(15), first).await {
                            Ok(Ok(v)) => v,
                            Ok(Err(e)) => {
                                let _ = tx.send(Err(e));
                                return;
                            }
                            Err(_) => {
                                let _ = tx.send(Err(ClusterError::Unreachable(
                                    "no answer within 15 s".into(),
                                )));
                                return;
                            }
                        };
                    let store = Arc::new(EtcdStore {
                        prefix: cluster.prefix.clone(),
                        instance: random_hex(8),
                        client,
                        mirror: RwLock::new(m),
                        secrets: ArcSwap::from_pointee(secrets),
                        connected: AtomicBool::new(true),
                        last_contact: Mutex::new(Instant::now()),
                        limiter,
                        metrics,
                        lockout_secs: AtomicU64::new(lockout.as_secs().max(1)),
                        on_change: OnceLock::new(),
                        absorb: OnceLock::new(),
                        handle: tokio::runtime::Handle::current(),
                    });
                    store.metrics.cluster_connected.set(1);
                    let _ = tx.send(Ok(store.clone()));
                    store.run().await;
                });
            })
            .map_err(|e| ClusterError::Invalid(format!("cannot start the cluster thread: {e}")))?;
        rx.recv_timeout(Duration::from_secs(20))
            .map_err(|_| ClusterError::Unreachable("no answer within 20 s".into()))?
    }

    /// Called (once) with what to do when repository settings change.
    pub fn on_change(&self, f: Box<dyn Fn() + Send + Sync>) {
        let _ = self.on_change.set(f);
    }

    /// A reload's lockout window, for failure records written from now on.
    pub fn set_lockout(&self, lockout: Duration) {
        self.lockout_secs
            .store(lockout.as_secs().max(1), Ordering::Relaxed);
    }

    fn client(&self) -> Result<Client, StoreError> {
        if self.connected.load(Ordering::SeqCst) {
            Ok(self.client.clone())
        } else {
            Err(StoreError::Unreachable("etcd is not connected".into()))
        }
    }

    fn full(&self, rel: &str) -> String {
        format!("{}{rel}", self.prefix)
    }

    fn guess(&self, rel: &str) -> Option<(Option<Vec<u8>>, i64)> {
        let m = self.mirror.read().ok()?;
        Some(match m.get(rel) {
            Some(v) => (Some(v.data.clone()), v.mod_revision),
            None => (None, 0),
        })
    }

    /// Our own write, seen before its watch event arrives.
    fn learn(&self, rel: &str, value: Option<Vec<u8>>, revision: i64) {
        let touched = match self.mirror.write() {
            Ok(mut m) => {
                let newer = m.get(rel).is_none_or(|v| v.mod_revision < revision);
                if !newer {
                    return;
                }
                m.apply(
                    rel.to_string(),
                    value.map(|data| Value {
                        data,
                        mod_revision: revision,
                    }),
                )
            }
            Err(_) => return,
        };
        self.changed(touched);
    }

    fn changed(&self, t: Touched) {
        if t.secrets {
            self.rebuild_secrets();
        }
        if t.repos {
            if let Some(f) = self.on_change.get() {
                f();
            }
        }
    }

    fn rebuild_secrets(&self) {
        let built = match self.mirror.read() {
            Ok(m) => build_secrets(&m, unix_now()),
            Err(_) => return,
        };
        match built {
            Ok(s) => self.secrets.store(Arc::new(s)),
            Err(e) => tracing::error!(error = %e, "keeping the previous keys"),
        }
    }

    /// Watches until the watch breaks or etcd stops answering, then
    /// re-reads everything; forever.
    async fn run(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(250);
        loop {
            if let Err(e) = self.watch().await {
                tracing::warn!(error = %e, "cluster watch ended; re-reading the whole state");
            }
            self.set_connected(false);
            loop {
                tokio::time::sleep(backoff).await;
                let mut c = self.client.clone();
                match read_all(&mut c, &self.prefix).await {
                    Ok(m) => {
                        if let Ok(mut cur) = self.mirror.write() {
                            *cur = m;
                        }
                        self.changed(Touched {
                            repos: true,
                            secrets: true,
                        });
                        self.set_connected(true);
                        tracing::info!("cluster store reachable again; state re-read");
                        backoff = Duration::from_millis(250);
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "cluster store still unreachable");
                        backoff = (backoff * 2).min(Duration::from_secs(4));
                        self.tick_metrics();
                    }
                }
            }
        }
    }

    fn set_connected(&self, up: bool) {
        let was = self.connected.swap(up, Ordering::SeqCst);
        if up {
            if let Ok(mut t) = self.last_contact.lock() {
                *t = Instant::now();
            }
        } else if was {
            tracing::warn!("cluster store unreachable; serving the last state seen");
        }
        if was != up && self.absorb.get().is_some() {
            if up {
                tracing::info!("rate limits shared by the cluster again");
            } else {
                tracing::warn!("rate limits are per instance until the cluster store answers");
            }
        }
        self.tick_metrics();
    }

    fn tick_metrics(&self) {
        let up = self.connected.load(Ordering::SeqCst);
        self.metrics.cluster_connected.set(up as i64);
        let age = self
            .last_contact
            .lock()
            .map(|t| if up { 0.0 } else { t.elapsed().as_secs_f64() })
            .unwrap_or(0.0);
        self.metrics.cluster_state_age.set(age);
    }

    /// One watch from the mirror's revision; returns when it breaks.
    async fn watch(&self) -> Result<(), ClusterError> {
        let start = self.mirror.read().map(|m| m.revision + 1).unwrap_or(0);
        let mut c = self.client.clone();
        let mut stream = c
            .watch(
                self.prefix.as_str(),
                Some(WatchOptions::new().with_prefix().with_start_revision(start)),
            )
            .await
            .map_err(unreachable)?;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut misses = 0;
        let mut next_retire = self.next_retirement();
        loop {
            tokio::select! {
                msg = stream.message() => {
                    let Some(resp) = msg.map_err(unreachable)? else {
                        return Err(ClusterError::Unreachable("watch closed".into()));
                    };
                    if resp.canceled() || resp.compact_revision() > 0 {
                        return Err(ClusterError::Unreachable(format!(
                            "watch cancelled: {}", resp.cancel_reason()
                        )));
                    }
                    self.apply(&resp);
                }
                _ = tick.tick() => {
                    // A watch on a dead member can stay silent: ask.
                    let mut c = self.client.clone();
                    match tokio::time::timeout(Duration::from_secs(2), c.status()).await {
                        Ok(Ok(_)) => {
                            misses = 0;
                            self.set_connected(true);
                        }
                        _ => {
                            misses += 1;
                            if misses >= 2 {
                                return Err(ClusterError::Unreachable("no status answer".into()));
                            }
                        }
                    }
                    if next_retire.is_some_and(|t| t <= unix_now()) {
                        self.rebuild_secrets();
                        next_retire = self.next_retirement();
                    }
                }
            }
        }
    }

    fn next_retirement(&self) -> Option<u64> {
        let m = self.mirror.read().ok()?;
        TokenKeys::parse(&m.get(mirror::TOKEN_KEYS)?.data)?.next_retirement(unix_now())
    }

    fn apply(&self, resp: &etcd_client::WatchResponse) {
        let mut touched = Touched::default();
        let mut foreign = Vec::new();
        let mut batches = Vec::new();
        if let Ok(mut m) = self.mirror.write() {
            for ev in resp.events() {
                let Some(kv) = ev.kv() else { continue };
                let Some(rel) = kv.key().strip_prefix(self.prefix.as_bytes()) else {
                    continue;
                };
                let rel = String::from_utf8_lossy(rel).into_owned();
                m.revision = m.revision.max(kv.mod_revision());
                if rel.starts_with("failures/") {
                    if ev.event_type() == EventType::Put {
                        foreign.extend(mirror::foreign_failure(&rel, kv.value(), &self.instance));
                    }
                    continue;
                }
                if rel.starts_with(usage::DIR) {
                    if ev.event_type() == EventType::Put {
                        batches.extend(usage::foreign_batch(&rel, kv.value(), &self.instance));
                    }
                    continue;
                }
                let value = match ev.event_type() {
                    EventType::Put => Some(Value {
                        data: kv.value().to_vec(),
                        mod_revision: kv.mod_revision(),
                    }),
                    EventType::Delete => None,
                };
                touched = touched.or(m.apply(rel, value));
            }
            if let Some(h) = resp.header() {
                m.revision = m.revision.max(h.revision());
            }
        }
        for f in foreign {
            self.limiter.failure(&f.user, f.ip);
        }
        self.received(batches);
        if let Ok(mut t) = self.last_contact.lock() {
            *t = Instant::now();
        }
        self.changed(touched);
    }

    /// Read-modify-write of one key on the revision the mirror holds.
    async fn update(&self, rel: &str, f: &Edit<'_>) -> Result<Vec<u8>, StoreError> {
        let mut c = self.client()?;
        let (v, rev) = cas(&mut c, &self.full(rel), self.guess(rel), f).await?;
        self.learn(rel, Some(v.clone()), rev);
        Ok(v)
    }
}

#[async_trait]
impl StateStore for EtcdStore {
    fn kind(&self) -> &'static str {
        "etcd"
    }

    fn repo_overrides(&self) -> BTreeMap<String, RepoOverride> {
        self.mirror
            .read()
            .map(|m| m.overrides())
            .unwrap_or_default()
    }

    async fn set_repository(&self, key: &str, edits: &[(&str, bool)]) -> Result<(), StoreError> {
        let edits: Vec<(String, bool)> = edits.iter().map(|(f, v)| (f.to_string(), *v)).collect();
        self.update(&mirror::repo_key(key), &move |cur| {
            let mut o = cur.and_then(mirror::parse_override).unwrap_or_default();
            for (f, v) in &edits {
                o.set(f, *v)
                    .map_err(|e| ClusterError::Invalid(e.to_string()))?;
            }
            Ok(mirror::encode_override(&o))
        })
        .await
        .map(|_| ())
    }

    fn generation(&self, user: &str) -> u64 {
        self.mirror.read().map(|m| m.generation(user)).unwrap_or(0)
    }

    async fn revoke_keys(&self, user: &str) -> Result<u64, StoreError> {
        let v = self
            .update(&mirror::generation_key(user), &bump_generation)
            .await?;
        Ok(mirror::parse_generation(&v).unwrap_or(0))
    }

    fn secrets(&self) -> Arc<Secrets> {
        self.secrets.load_full()
    }

    fn login_failed(&self, user: &str, ip: Option<IpAddr>) {
        let Ok(mut c) = self.client() else { return };
        let key = self.full(&mirror::failure_key(&self.instance, &random_hex(8)));
        let rec = mirror::FailureRecord {
            user: user.to_string(),
            ip,
        };
        let ttl = self.lockout_secs.load(Ordering::Relaxed) as i64;
        self.handle.spawn(async move {
            let put = async {
                let lease = c.lease_grant(ttl, None).await?;
                let opts = PutOptions::new().with_lease(lease.id());
                c.put(
                    key,
                    serde_json::to_vec(&rec).unwrap_or_default(),
                    Some(opts),
                )
                .await
            };
            if let Err(e) = put.await {
                tracing::debug!(error = %e, "failed login not shared with the cluster");
            }
        });
    }

    fn get(&self, area: &str, key: &str) -> Option<String> {
        let m = self.mirror.read().ok()?;
        let v = m.get(&mirror::area_key(area, key))?;
        Some(String::from_utf8_lossy(&v.data).into_owned())
    }

    fn list(&self, area: &str) -> Vec<(String, String)> {
        let Ok(m) = self.mirror.read() else {
            return Vec::new();
        };
        m.under(&format!("areas/{area}"))
            .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(&v.data).into_owned()))
            .collect()
    }

    async fn put(
        &self,
        area: &str,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        check_area(area)?;
        let rel = mirror::area_key(area, key);
        let mut c = self.client()?;
        let mut opts = PutOptions::new();
        if let Some(t) = ttl {
            let lease = c
                .lease_grant(t.as_secs().max(1) as i64, None)
                .await
                .map_err(unreachable)?;
            opts = opts.with_lease(lease.id());
        }
        let r = c
            .put(self.full(&rel), value.as_bytes().to_vec(), Some(opts))
            .await
            .map_err(unreachable)?;
        let rev = r.header().map(|h| h.revision()).unwrap_or(0);
        self.learn(&rel, Some(value.as_bytes().to_vec()), rev);
        Ok(())
    }

    async fn delete(&self, area: &str, key: &str) -> Result<bool, StoreError> {
        check_area(area)?;
        let rel = mirror::area_key(area, key);
        let mut c = self.client()?;
        let r = c.delete(self.full(&rel), None).await.map_err(unreachable)?;
        let rev = r.header().map(|h| h.revision()).unwrap_or(0);
        self.learn(&rel, None, rev);
        Ok(r.deleted() > 0)
    }
}

fn bump_generation(cur: Option<&[u8]>) -> Result<Vec<u8>, ClusterError> {
    let g = cur.and_then(mirror::parse_generation).unwrap_or(0);
    Ok((g + 1).to_string().into_bytes())
}

/// `dockgate user revoke-keys` with `[cluster]`.
pub async fn revoke_once(c: &Cluster, user: &str) -> Result<u64, ClusterError> {
    let mut client = connect::connect(c).await?;
    let key = format!("{}{}", c.prefix, mirror::generation_key(user));
    let (v, _) = cas(&mut client, &key, None, &bump_generation).await?;
    Ok(mirror::parse_generation(&v).unwrap_or(0))
}

/// `dockgate cluster rotate-keys`: a new signing key; the old ones verify
/// for `keep` more (the longest a token they signed lives).
pub async fn rotate_keys(c: &Cluster, keep: Duration) -> Result<usize, ClusterError> {
    let mut client = connect::connect(c).await?;
    ensure_secrets(&mut client, &c.prefix, &Seed::default()).await?;
    let key = format!("{}{}", c.prefix, mirror::TOKEN_KEYS);
    let new = token::generate_pkcs8().map_err(|e| ClusterError::Invalid(e.to_string()))?;
    let (v, _) = cas(&mut client, &key, None, &|cur| {
        let keys = cur.and_then(TokenKeys::parse).unwrap_or_default();
        Ok(keys.rotate(&new, unix_now(), keep.as_secs()).encode())
    })
    .await?;
    Ok(TokenKeys::parse(&v).map(|k| k.keys.len()).unwrap_or(0))
}
