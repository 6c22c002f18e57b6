//! Building and running the pingora server from a validated config:
//! listeners, TLS, signals (SIGHUP reload, SIGTERM drain).

use crate::config::ClientLimits;
use crate::observe::access_log::AccessLog;
use crate::observe::http::MetricsApp;
use crate::observe::status::{Board, Sampler};
use crate::observe::Metrics;
use crate::proxy::conn::{Connections, Guarded};
use crate::proxy::Gateway;
use crate::state::{prepare, Mode, Shared};
use crate::tls::{CertStore, ReloadEvent};
use crate::upstream::health::HealthCheck;
use async_trait::async_trait;
use pingora::apps::HttpServerOptions;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::ListenerConfig;
use pingora::protocols::http::v2::server::default_h2_options;
use pingora::protocols::l4::stream::L4BufferSettings;
use pingora::proxy::{http_proxy, HttpProxy};
use pingora::server::configuration::ServerConf;
use pingora::server::ShutdownWatch;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};

/// Writes out buffered access-log lines every 100 ms.
struct LogFlush {
    shared: Arc<Shared>,
}

#[async_trait]
impl BackgroundService for LogFlush {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => self.shared.access_log.flush(),
                _ = shutdown.changed() => {
                    self.shared.access_log.flush();
                    return;
                }
            }
        }
    }
}

/// Re-reads replaced PEM files and keeps the expiry gauge current.
struct CertWatch {
    store: Arc<CertStore>,
    metrics: Arc<Metrics>,
    every: Duration,
}

#[async_trait]
impl BackgroundService for CertWatch {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.every) => {}
                _ = shutdown.changed() => return,
            }
            let s = self.store.clone();
            match tokio::task::spawn_blocking(move || s.reload()).await {
                Ok(events) => {
                    for e in events {
                        if let ReloadEvent::Reloaded { name, .. } = e {
                            tracing::info!(certificate = %name, "certificate reloaded");
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "certificate reload task failed"),
            }
            set_cert_expiry(&self.metrics, &self.store);
        }
    }
}

/// Why `serve` stopped: the config or its certificates (before serving),
/// or a failure while starting or running. `file` is the config file.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Prepare(#[from] crate::state::StateError),
    /// A listen (or metrics) address that cannot be bound; `key` names it.
    #[error("{file}: {key}: {source}")]
    Listen {
        file: String,
        key: String,
        #[source]
        source: crate::listen_check::ListenError,
    },
    #[error("{file}: listen: none of the addresses can be bound")]
    NoListener { file: String },
    /// The certificates checked by `prepare` do not load into the store.
    #[error("{file}: tls: {source}")]
    Certs {
        file: String,
        #[source]
        source: crate::tls::TlsError,
    },
    #[error("{file}: server.runtime_dir: {}: {source}", dir.display())]
    RuntimeDir {
        file: String,
        dir: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: log.access_log: {}: {source}", log.display())]
    AccessLog {
        file: String,
        log: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// Runtime state (stores, users, keys) that cannot be opened.
    #[error("{0}")]
    Start(crate::state::StateError),
    #[error("{file}: {source}")]
    Cache {
        file: String,
        #[source]
        source: crate::cache::CacheError,
    },
    /// pingora's TLS settings.
    #[error("{0}")]
    Tls(#[from] Box<pingora::Error>),
}

pub fn serve(path: &Path) -> Result<(), ServeError> {
    let p = prepare(path, Mode::Serve)?;
    run_prepared(path, p)
}

fn run_prepared(path: &Path, mut p: crate::state::Prepared) -> Result<(), ServeError> {
    let file = path.display().to_string();
    for w in crate::config::warnings(&p.cfg) {
        tracing::warn!("{w}");
    }
    let cfg = Arc::new(checked_listeners(&p.cfg)?);
    if let Some(t) = &p.trust {
        tracing::info!(directory = %t.dir.display(), "trust directory for clients written");
        // For the person starting it: where the CA goes, as commands.
        eprintln!("{t}");
    }
    let store = Arc::new(
        CertStore::new(p.certs.clone()).map_err(|source| ServeError::Certs {
            file: file.clone(),
            source,
        })?,
    );
    std::fs::create_dir_all(&cfg.server.runtime_dir).map_err(|source| ServeError::RuntimeDir {
        file: file.clone(),
        dir: cfg.server.runtime_dir.clone(),
        source,
    })?;

    let conf = ServerConf {
        threads: cfg.server.threads,
        grace_period_seconds: Some(cfg.server.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(cfg.server.graceful_shutdown_timeout.as_secs()),
        pid_file: cfg
            .server
            .runtime_dir
            .join("dockgate.pid")
            .display()
            .to_string(),
        upgrade_sock: cfg
            .server
            .runtime_dir
            .join("upgrade.sock")
            .display()
            .to_string(),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let metrics = Arc::new(Metrics::new()?);
    let access_log =
        AccessLog::open(cfg.log.format, cfg.log.access_log.as_deref()).map_err(|source| {
            ServeError::AccessLog {
                file: file.clone(),
                log: cfg.log.access_log.clone().unwrap_or_default(),
                source,
            }
        })?;
    set_cert_expiry(&metrics, &store);
    p.cfg = cfg.clone();
    let shared = Shared::new(p, metrics.clone(), access_log).map_err(ServeError::Start)?;
    let connections = Arc::new(Connections::default());
    if let Some(c) = &cfg.cache {
        let cache = crate::cache::Cache::open(c, metrics.cache.clone()).map_err(|source| {
            ServeError::Cache {
                file: file.clone(),
                source,
            }
        })?;
        let _ = shared.cache.set(cache);
    }
    if let Some(addr) = cfg.metrics.address {
        let board = Board::new(shared.clone(), store.clone());
        server.add_service(background_service(
            "dockgate status samples",
            Sampler(board.clone()),
        ));
        let app = MetricsApp {
            metrics: metrics.clone(),
            ports: cfg.listeners.iter().map(|l| l.address.port()).collect(),
            status: board,
        };
        let mut svc = Service::new("dockgate metrics".to_string(), app);
        svc.add_tcp(&addr.to_string());
        server.add_service(svc);
    }
    server.add_service(background_service(
        "dockgate access log flush",
        LogFlush {
            shared: shared.clone(),
        },
    ));
    server.add_service(background_service(
        "dockgate certificate watch",
        CertWatch {
            store: store.clone(),
            metrics: metrics.clone(),
            every: cfg.tls.reload_interval,
        },
    ));
    server.add_service(background_service(
        "dockgate health checks",
        HealthCheck {
            shared: shared.clone(),
        },
    ));
    let pool = Arc::new(crate::upstream::h1::Pool::default());
    for l in &cfg.listeners {
        let gw = Gateway {
            pool: pool.clone(),
            addr: l.address,
            method: l.method.clone(),
            shared: shared.clone(),
            connections: connections.clone(),
        };
        let mut svc = proxy_service(&server, gw, &cfg.server.limits, l.address);
        // PROXY protocol v2, before TLS, from [policy] trusted_proxies only.
        svc.endpoints()
            .set_pre_tls_callback(Arc::new(crate::proxy::proxy_v2::ProxyV2 {
                shared: shared.clone(),
            }));
        let mut tls = TlsSettings::intermediate("", "")?;
        tls.set_cert_resolver(store.clone());
        tls.enable_h2();
        // No read buffer: rustls buffers what it reads, a second copy under it
        // only held memory. A 2 KiB write buffer still sends a manifest answer's
        // header and body records as one segment (pingora's 1,460 B default
        // flushes them apart); bigger writes bypass it, and the vendored
        // pingora-core frees it once flushed. 16/16 KiB -> 0/2 KiB took an idle
        // keep-alive connection from 30 to 14.6 KiB, the freed buffer 16.3 ->
        // 14.2 KiB at 10,000; manifest and blob CPU within the noise
        // (bench/README.md, 2026-12-01).
        let buffers = L4BufferSettings::new(0, 2 << 10);
        svc.add_listener(
            ListenerConfig::tcp(l.address.to_string())
                .tls(tls)
                .l4_buffer(buffers),
        );
        server.add_service(svc);
    }
    tracing::info!(
        listeners = ?cfg.listeners.iter().map(|l| l.address.to_string()).collect::<Vec<_>>(),
        backends = ?crate::upstream::describe(&cfg.backends),
        "dockgate serving"
    );
    first_health_check(&shared);
    let signals = Signals {
        shared,
        path: path.to_path_buf(),
        grace: cfg.server.grace_period,
        drain_delay: cfg.server.drain_delay,
    };
    server.run(RunArgs {
        shutdown_signal: Box::new(signals),
    });
    Ok(())
}

/// Fails at once on a taken address (pingora would retry for ~28 s, then
/// lose the listener); drops `[::1]` listeners on a machine without IPv6.
fn checked_listeners(cfg: &crate::config::Config) -> Result<crate::config::Config, ServeError> {
    use crate::listen_check::{probe, Probe};
    let mut cfg = cfg.clone();
    let file = cfg.path.display().to_string();
    let listen = |key: String| {
        let file = file.clone();
        move |source| ServeError::Listen { file, key, source }
    };
    let mut kept = Vec::new();
    for (i, l) in cfg.listeners.iter().enumerate() {
        match probe(l.address).map_err(listen(format!("listen[{i}].address")))? {
            Probe::Free => kept.push(l.clone()),
            Probe::NoIpv6 => tracing::warn!(
                address = %l.address,
                "IPv6 is not available on this machine; not listening on this address"
            ),
        }
    }
    if kept.is_empty() {
        return Err(ServeError::NoListener { file });
    }
    cfg.listeners = kept;
    if let Some(m) = cfg.metrics.address {
        probe(m).map_err(listen("metrics.address".into()))?;
    }
    Ok(cfg)
}

/// One listener's proxy, behind per-client connection limits and head
/// deadlines (`proxy::conn`).
fn proxy_service(
    server: &Server,
    gw: Gateway,
    limits: &ClientLimits,
    addr: std::net::SocketAddr,
) -> Service<Guarded<HttpProxy<Gateway>>> {
    let (gw_shared, gw_connections) = (gw.shared.clone(), gw.connections.clone());
    let gateway = Arc::new(gw.clone());
    let mut proxy = http_proxy(&server.configuration, gw);
    // h2 uploads are window-bound with the 64 KiB defaults.
    let mut h2 = default_h2_options();
    h2.initial_window_size(1 << 20);
    h2.initial_connection_window_size(4 << 20);
    proxy.h2_options = Some(h2);
    let mut opts = HttpServerOptions::default();
    opts.h2_idle_timeout = Some(limits.keepalive_timeout);
    proxy.server_options = Some(opts);
    let app = Guarded {
        gateway,
        shared: gw_shared,
        connections: gw_connections,
        inner: Arc::new(proxy),
    };
    Service::new(format!("dockgate {addr}"), app)
}

/// Signal handling: SIGHUP reloads in place, SIGTERM drains, SIGINT quits,
/// SIGQUIT hands listeners to a new process (pingora's upgrade).
struct Signals {
    shared: Arc<Shared>,
    path: PathBuf,
    grace: Duration,
    drain_delay: Duration,
}

impl Signals {
    async fn reload(&self) {
        match self.shared.reload().await {
            Ok(()) => tracing::info!(config = %self.path.display(), "reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "reload refused; the previous config keeps serving")
            }
        }
    }

    /// pingora sleeps the whole grace period even when idle; exit as soon
    /// as the last in-flight request is done instead.
    fn exit_when_drained(&self) {
        let shared = self.shared.clone();
        let deadline = Instant::now() + self.grace;
        let spawned = std::thread::Builder::new()
            .name("drain".into())
            .spawn(move || {
                // Let the listeners close first.
                std::thread::sleep(Duration::from_millis(200));
                while Instant::now() < deadline {
                    if shared.inflight.load(Ordering::SeqCst) == 0 {
                        tracing::info!("drained; exiting");
                        std::process::exit(0);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot watch the drain; waiting out the grace period");
        }
    }
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let kinds = [
            SignalKind::hangup(),
            SignalKind::quit(),
            SignalKind::terminate(),
            SignalKind::interrupt(),
        ];
        let mut streams = Vec::new();
        for k in kinds {
            match signal(k) {
                Ok(s) => streams.push(s),
                Err(e) => {
                    tracing::error!(error = %e, "cannot install signal handlers");
                    return ShutdownSignal::FastShutdown;
                }
            }
        }
        let [hup, quit, term, int] = &mut streams[..] else {
            return ShutdownSignal::FastShutdown;
        };
        loop {
            tokio::select! {
                _ = hup.recv() => self.reload().await,
                _ = quit.recv() => return ShutdownSignal::GracefulUpgrade,
                _ = term.recv() => {
                    self.shared.draining.store(true, Ordering::SeqCst);
                    if !self.drain_delay.is_zero() {
                        // Still accepting: a connection the balancer sent before its
                        // check saw the 503 is served, not reset in the accept queue.
                        tracing::info!(delay_seconds = self.drain_delay.as_secs(), "SIGTERM: health answers 503; listeners close after the delay");
                        tokio::select! {
                            _ = tokio::time::sleep(self.drain_delay) => {}
                            _ = int.recv() => {
                                self.shared.access_log.flush();
                                return ShutdownSignal::FastShutdown;
                            }
                        }
                    }
                    tracing::info!(grace_seconds = self.grace.as_secs(), "SIGTERM: no new connections; draining");
                    self.exit_when_drained();
                    return ShutdownSignal::GracefulTerminate;
                }
                _ = int.recv() => {
                    self.shared.access_log.flush();
                    return ShutdownSignal::FastShutdown;
                }
            }
        }
    }
}

/// `dockgate_tls_certificate_expiry_timestamp_seconds` per served cert.
fn set_cert_expiry(metrics: &Metrics, store: &CertStore) {
    for (name, t) in store.expiries() {
        metrics
            .cert_expiry
            .with_label_values(&[name.as_str()])
            .set(t as f64);
    }
}

/// One health-check round before serving, so the first `GET /v2/` already
/// knows which backends want credentials. Its own runtime and connector:
/// pingora's runtimes start only in `run`.
fn first_health_check(shared: &Arc<Shared>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return tracing::warn!(error = %e, "skipping the first health check"),
    };
    let check = HealthCheck {
        shared: shared.clone(),
    };
    let connector = pingora::connectors::http::Connector::new(None);
    let done = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), check.check_all(&connector)).await
    });
    if done.is_err() {
        tracing::warn!("first health check timed out; backends will be checked again shortly");
    }
}
