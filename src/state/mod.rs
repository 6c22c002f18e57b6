//! What the process runs on, in one place: the snapshot requests see
//! (config, peers, authenticator, host names, runtime-state store), swapped
//! whole on reload so a request never mixes two configs, and the parts that
//! outlive a reload (limiter, password cache, metrics, access log, backend
//! knowledge). `prepare` turns a config file into a snapshot's static part;
//! `Shared::new` / `reload` / `apply_edit` are the only places that build
//! a snapshot. Runtime state goes through `store::StateStore`.

pub mod cli;
pub mod etcd;
mod file;
pub mod prepare;
pub mod store;

pub use file::FileStore;
pub use prepare::{prepare, Mode, Prepared};
pub use store::{RepoOverride, Secrets, StateStore, StoreError};

use crate::config::{Config, ListenMethod};
use crate::observe::access_log::AccessLog;
use crate::observe::Metrics;
use crate::policy::auth::{Authenticator, Kept};
use crate::upstream::Peers;
use arc_swap::ArcSwap;
use pingora::connectors::http::Connector;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Why a config cannot serve, or runtime state cannot be opened. `file` is
/// the config file; every message names it and the key.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The config does not validate.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A backend's CA or peer settings.
    #[error("{file}: {source}")]
    Backend {
        file: String,
        #[source]
        source: crate::upstream::UpstreamError,
    },
    #[error(
        "{file}: auth.htpasswd: {}: no such file; create it with \
         `dockgate user add NAME --config {file}`",
        path.display()
    )]
    NoHtpasswd { file: String, path: PathBuf },
    /// Users, keys or single sign-on under `[auth]`; `key` names which.
    #[error("{file}: {key}: {source}")]
    Auth {
        file: String,
        key: &'static str,
        #[source]
        source: crate::policy::auth::AuthError,
    },
    #[error("{file}: auth.state_dir: {source}")]
    StateDir {
        file: String,
        #[source]
        source: StoreError,
    },
    #[error("{file}: auth: no [auth] section, so dockgate has no users")]
    NoAuth { file: String },
    #[error("{file}: cluster: no [cluster] section; this command needs etcd")]
    NoCluster { file: String },
    /// `[cluster]` members that cannot be reached or refuse the settings.
    #[error("{file}: {source}")]
    Cluster {
        file: String,
        #[source]
        source: etcd::ClusterError,
    },
    /// A certificate or key that cannot serve.
    #[error("{file}: tls: {source}")]
    Tls {
        file: String,
        #[source]
        source: crate::tls::TlsError,
    },
    /// What outlives reloads (one bcrypt hash at start).
    #[error("{0}")]
    Kept(crate::policy::auth::AuthError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("state task failed: {0}")]
    Task(String),
}

/// One immutable view of config and runtime state.
pub struct Snapshot {
    /// The config file's settings with runtime repository settings over them.
    pub cfg: Arc<Config>,
    /// The config file's settings alone.
    pub base: Arc<Config>,
    pub peers: Peers,
    /// None: passthrough mode.
    pub auth: Option<Arc<Authenticator>>,
    /// The `Host` names requests may carry.
    pub hosts: Arc<crate::route::host::HostNames>,
    /// Where runtime state is read and written.
    pub store: Arc<dyn StateStore>,
}

impl Snapshot {
    /// A listener's method in this config. Listeners are bound at start, so
    /// a reload can change how one routes but not where it listens.
    pub fn method_of(&self, addr: SocketAddr, fallback: &ListenMethod) -> ListenMethod {
        self.cfg
            .listeners
            .iter()
            .find(|l| l.address == addr)
            .map(|l| l.method.clone())
            .unwrap_or_else(|| fallback.clone())
    }
}

pub struct Shared {
    current: ArcSwap<Snapshot>,
    /// For dockgate's own backend calls (catalog, health checks).
    pub connector: Connector,
    /// Requests in flight, for draining on SIGTERM.
    pub inflight: Arc<AtomicUsize>,
    /// Set on SIGTERM: `/_dockgate/health` answers 503 so a balancer's
    /// check moves new connections elsewhere before the listeners close.
    pub draining: std::sync::atomic::AtomicBool,
    pub metrics: Arc<Metrics>,
    pub access_log: AccessLog,
    /// Serialises reloads and runtime edits.
    reload_lock: tokio::sync::Mutex<()>,
    /// Backends whose health check was answered 401: in passthrough mode a
    /// ping must reach them so clients learn to send credentials.
    pub auth_required: Mutex<HashSet<String>>,
    /// Token realm paths each backend advertised (the realm route's targets).
    pub realms: crate::rewrite::realm::Realms,
    kept: Kept,
    /// Edge-policy state: rate buckets, read-only switch times, open
    /// uploads. Per instance (not in the shared store yet).
    pub edge: crate::policy::EdgeState,
    /// A store shared between instances; None: files, per snapshot.
    shared_store: Option<Arc<dyn StateStore>>,
    /// The same store, when it is etcd.
    cluster: Option<Arc<etcd::EtcdStore>>,
    /// `[cache]`, opened at start (a reload does not move it).
    pub cache: std::sync::OnceLock<Arc<crate::cache::Cache>>,
}

/// Counts a request as in flight for as long as it lives.
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    pub fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The config with runtime repository settings laid over it.
fn with_overrides(cfg: &Config, overrides: &BTreeMap<String, RepoOverride>) -> Config {
    let mut cfg = cfg.clone();
    for (key, o) in overrides {
        if let Some(r) = cfg.repositories.get_mut(key) {
            let mut repo = (**r).clone();
            if let Some(v) = o.block_schema1_push {
                repo.block_schema1_push = v;
            }
            if let Some(v) = o.block_schema1_pull {
                repo.block_schema1_pull = v;
            }
            *r = Arc::new(repo);
        }
    }
    cfg
}

/// A snapshot from a prepared config and the current runtime state.
fn build(
    p: Prepared,
    kept: &Kept,
    shared_store: Option<&Arc<dyn StateStore>>,
) -> Result<Snapshot, StateError> {
    let file = p.cfg.path.display().to_string();
    let store: Arc<dyn StateStore> = match shared_store {
        Some(s) => s.clone(),
        None => Arc::new(
            FileStore::open(
                &p.cfg.path,
                p.cfg.auth.as_ref().map(|a| a.state_dir.as_path()),
            )
            .map_err(|source| StateError::StateDir {
                file: file.clone(),
                source,
            })?,
        ),
    };
    let base = p.cfg.clone();
    let cfg = Arc::new(with_overrides(&base, &store.repo_overrides()));
    let auth = match &cfg.auth {
        None => None,
        Some(a) => Some(Arc::new(
            Authenticator::open(a, kept, store.clone()).map_err(|source| StateError::Auth {
                file: file.clone(),
                key: "auth",
                source,
            })?,
        )),
    };
    Ok(Snapshot {
        cfg,
        base,
        peers: p.peers,
        auth,
        hosts: p.hosts,
        store,
    })
}

impl Shared {
    /// The process's state from a prepared config. Blocking (files, one
    /// bcrypt hash).
    pub fn new(
        p: Prepared,
        metrics: Arc<Metrics>,
        access_log: AccessLog,
    ) -> Result<Arc<Self>, StateError> {
        let kept = Kept::new().map_err(StateError::Kept)?;
        let cluster = match &p.cfg.cluster {
            Some(c) => {
                let lockout = p.cfg.auth.as_ref().map(|a| a.lockout);
                let seed = p
                    .cfg
                    .auth
                    .as_ref()
                    .map(|a| FileStore::seed(&a.state_dir))
                    .unwrap_or_default();
                if let Err(e) = metrics.register_cluster() {
                    tracing::warn!(error = %e, "cluster metrics not exported");
                }
                let store = etcd::EtcdStore::start(
                    c,
                    seed,
                    kept.limiter.clone(),
                    metrics.clone(),
                    lockout.unwrap_or(std::time::Duration::from_secs(60)),
                )
                .map_err(|source| StateError::Cluster {
                    file: p.cfg.path.display().to_string(),
                    source,
                })?;
                Some(store)
            }
            None => None,
        };
        let shared_store = cluster.clone().map(|c| c as Arc<dyn StateStore>);
        let snap = build(p, &kept, shared_store.as_ref())?;
        let shared = Arc::new(Self {
            current: ArcSwap::from_pointee(snap),
            connector: Connector::new(None),
            inflight: Arc::new(AtomicUsize::new(0)),
            draining: std::sync::atomic::AtomicBool::new(false),
            metrics,
            access_log,
            reload_lock: tokio::sync::Mutex::new(()),
            auth_required: Mutex::new(HashSet::new()),
            realms: Default::default(),
            kept,
            edge: Default::default(),
            shared_store,
            cache: std::sync::OnceLock::new(),
            cluster,
        });
        if let Some(c) = &shared.cluster {
            let weak = Arc::downgrade(&shared);
            c.on_change(Box::new(move || {
                if let Some(s) = weak.upgrade() {
                    s.refresh();
                }
            }));
            // Changes that landed between the first read and now.
            shared.refresh();
            let weak = Arc::downgrade(&shared);
            c.share_rate_limits(
                shared.edge.limiter.ledger(),
                Box::new(move |batch| {
                    let Some(s) = weak.upgrade() else { return 0 };
                    let cfg = s.snapshot().cfg.clone();
                    let rate_of = |k: &str| crate::pipeline::rate_of(&cfg, k);
                    let now = std::time::Instant::now();
                    crate::policy::rate_share::absorb(&s.edge.limiter, batch, rate_of, now)
                }),
            );
        }
        Ok(shared)
    }

    /// Lays the store's repository settings over the config again (they
    /// changed on another instance); everything else stays.
    pub fn refresh(&self) {
        self.current.rcu(|cur| {
            let cfg = with_overrides(&cur.base, &cur.store.repo_overrides());
            Snapshot {
                cfg: Arc::new(cfg),
                base: cur.base.clone(),
                peers: cur.peers.clone(),
                auth: cur.auth.clone(),
                hosts: cur.hosts.clone(),
                store: cur.store.clone(),
            }
        });
    }

    /// Re-reads the config file and swaps it in whole; on error the
    /// current config keeps serving.
    pub async fn reload(self: &Arc<Self>) -> Result<(), StateError> {
        let _guard = self.reload_lock.lock().await;
        self.reload_locked().await
    }

    async fn reload_locked(self: &Arc<Self>) -> Result<(), StateError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let path = me.snapshot().cfg.path.clone();
            let p = prepare(&path, Mode::Serve)?;
            if let Some(c) = &me.cluster {
                if p.cfg.cluster != me.snapshot().base.cluster {
                    tracing::warn!("[cluster] changes take effect at the next start");
                }
                if let Some(a) = &p.cfg.auth {
                    c.set_lockout(a.lockout);
                }
            }
            let snap = build(p, &me.kept, me.shared_store.as_ref())?;
            me.current.store(Arc::new(snap));
            Ok(())
        })
        .await
        .map_err(|e| StateError::Task(e.to_string()))?
    }

    /// Changes a repository's runtime settings through the store, then
    /// serves the result; returns the snapshot it is in.
    pub async fn apply_edit(
        self: &Arc<Self>,
        key: &str,
        edits: &[(&str, bool)],
    ) -> Result<Arc<Snapshot>, StateError> {
        let _guard = self.reload_lock.lock().await;
        self.snapshot().store.set_repository(key, edits).await?;
        self.reload_locked().await?;
        Ok(self.snapshot())
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_only_their_settings() {
        let cfg = crate::route::tests::cfg();
        let before = cfg.repositories["docker-local"].clone();
        let mut o = BTreeMap::new();
        o.insert(
            "docker-local".to_string(),
            RepoOverride {
                block_schema1_push: Some(!before.block_schema1_push),
                block_schema1_pull: None,
            },
        );
        o.insert("missing".to_string(), RepoOverride::default());
        let after = with_overrides(&cfg, &o);
        let r = &after.repositories["docker-local"];
        assert_eq!(r.block_schema1_push, !before.block_schema1_push);
        assert_eq!(r.block_schema1_pull, before.block_schema1_pull);
        assert_eq!(r.backend.name, before.backend.name);
        assert_eq!(after.repositories.len(), cfg.repositories.len());
    }
}
