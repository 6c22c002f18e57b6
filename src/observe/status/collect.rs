//! Reading the live gateway into a [`Status`], and the sampler that feeds
//! the rate history every few seconds.

use super::history::{Counts, History, Sample};
use super::{BackendView, CertificateView, ListenerView, Point, Rates, RepositoryView, Status};
use crate::config::{Challenge, Config, ListenMethod};
use crate::observe::Metrics;
use crate::state::Shared;
use crate::tls::CertStore;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use prometheus::core::Collector;
use prometheus::proto::MetricType;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use x509_parser::extensions::GeneralName;

/// How often counters are sampled, and how many samples are kept: rates
/// cover the last five minutes.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
const SAMPLES: usize = 61;

pub struct Board {
    shared: Arc<Shared>,
    store: Arc<CertStore>,
    history: Mutex<History>,
    started: Instant,
}

impl Board {
    pub fn new(shared: Arc<Shared>, store: Arc<CertStore>) -> Arc<Self> {
        Arc::new(Self {
            shared,
            store,
            history: Mutex::new(History::new(SAMPLES)),
            started: Instant::now(),
        })
    }

    /// Takes one sample of the counters into the ring.
    pub fn sample(&self) {
        let s = sample(&self.shared.metrics, now());
        if let Ok(mut h) = self.history.lock() {
            h.push(s);
        }
    }

    /// The page's data. Parses certificates: call off the worker threads.
    pub fn status(&self) -> Status {
        let rt = self.shared.snapshot();
        let up = backend_up(&self.shared.metrics);
        let (windows, steps) = match self.history.lock() {
            Ok(h) => (h.windows(), h.steps()),
            Err(_) => Default::default(),
        };
        let window_seconds = windows.values().map(|w| w.seconds).max().unwrap_or(0);
        let rates_of = |w: &super::history::Window| Rates {
            requests_per_minute: w.per_minute(w.counts.requests),
            errors_per_minute: w.per_minute(w.counts.errors),
            denied_per_minute: w.per_minute(w.counts.denied),
            schema1_refused: w.counts.schema1_refused,
        };
        let mut total = super::history::Window {
            seconds: window_seconds,
            ..Default::default()
        };
        for w in windows.values() {
            total.counts.requests += w.counts.requests;
            total.counts.errors += w.counts.errors;
            total.counts.denied += w.counts.denied;
            total.counts.schema1_refused += w.counts.schema1_refused;
        }
        let now = now();
        Status {
            version: concat!(
                env!("CARGO_PKG_VERSION"),
                " (commit ",
                env!("DOCKGATE_COMMIT"),
                ")"
            )
            .to_string(),
            generated_at: now,
            uptime_seconds: self.started.elapsed().as_secs(),
            auth: match rt.cfg.auth.as_ref().map(|a| a.challenge) {
                None => "passthrough".into(),
                Some(Challenge::Bearer) => "bearer".into(),
                Some(Challenge::Basic) => "basic".into(),
            },
            listeners: listeners(&rt.cfg),
            backends: rt
                .cfg
                .backends
                .values()
                .map(|b| BackendView {
                    name: b.name.clone(),
                    url: format!(
                        "{}://{}{}",
                        if b.tls { "https" } else { "http" },
                        b.authority,
                        b.v2_prefix
                    ),
                    kind: format!("{:?}", b.kind).to_lowercase(),
                    up: up.get(&b.name).copied(),
                })
                .collect(),
            repositories: rt
                .cfg
                .repositories
                .values()
                .map(|r| RepositoryView {
                    key: r.key.clone(),
                    kind: r.kind.as_str().to_string(),
                    backend: r.backend.name.clone(),
                    backend_up: up.get(&r.backend.name).copied(),
                    name_prefix: r.name_prefix.clone(),
                    block_schema1_push: r.block_schema1_push,
                    block_schema1_pull: r.block_schema1_pull,
                    anonymous_read: r.acl.anonymous_read,
                    readers: r.acl.read.len(),
                    writers: r.acl.write.len(),
                    admins: r.acl.admin.len(),
                    rates: windows.get(&r.key).map(rates_of).unwrap_or_default(),
                })
                .collect(),
            window_seconds,
            totals: rates_of(&total),
            recent: steps
                .iter()
                .map(|(at, w)| Point {
                    at: *at,
                    requests_per_minute: w.per_minute(w.counts.requests),
                    errors_per_minute: w.per_minute(w.counts.errors),
                })
                .collect(),
            certificates: certificates(&self.store, now),
        }
    }
}

/// Samples the counters every [`SAMPLE_EVERY`].
pub struct Sampler(pub Arc<Board>);

#[async_trait]
impl BackgroundService for Sampler {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            self.0.sample();
            tokio::select! {
                _ = tokio::time::sleep(SAMPLE_EVERY) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Every series of a collector as (labels, value).
fn series(c: &dyn Collector) -> Vec<(BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for family in c.collect() {
        let counter = family.get_field_type() == MetricType::COUNTER;
        for m in family.get_metric() {
            let labels = m
                .get_label()
                .iter()
                .map(|l| (l.name().to_string(), l.value().to_string()))
                .collect();
            let v = if counter {
                m.get_counter().value()
            } else {
                m.get_gauge().value()
            };
            out.push((labels, v));
        }
    }
    out
}

fn label<'a>(labels: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    labels.get(name).map_or("", String::as_str)
}

fn sample(m: &Metrics, at: i64) -> Sample {
    let mut per_repo: BTreeMap<String, Counts> = BTreeMap::new();
    for (l, v) in series(&m.requests) {
        per_repo
            .entry(label(&l, "repository").to_string())
            .or_default()
            .add_requests(label(&l, "code"), v as u64);
    }
    for (l, v) in series(&m.schema1_refused) {
        per_repo
            .entry(label(&l, "repository").to_string())
            .or_default()
            .schema1_refused += v as u64;
    }
    Sample { at, per_repo }
}

fn backend_up(m: &Metrics) -> BTreeMap<String, bool> {
    series(&m.backend_up)
        .into_iter()
        .map(|(l, v)| (label(&l, "backend").to_string(), v >= 1.0))
        .collect()
}

fn listeners(cfg: &Config) -> Vec<ListenerView> {
    cfg.listeners
        .iter()
        .map(|l| {
            let (method, detail) = match &l.method {
                ListenMethod::Path => ("path", None),
                ListenMethod::Subdomain { base_domain } => {
                    ("subdomain", Some(format!("*.{base_domain}")))
                }
                ListenMethod::Port { repository } => ("port", Some(repository.clone())),
            };
            ListenerView {
                address: l.address.to_string(),
                method: method.into(),
                detail,
            }
        })
        .collect()
}

fn certificates(store: &CertStore, now: i64) -> Vec<CertificateView> {
    store
        .served()
        .into_iter()
        .map(|(spec, leaf)| {
            let mut v = CertificateView {
                name: spec.name,
                server_names: spec.server_names,
                subject: String::new(),
                dns_sans: vec![],
                ip_sans: vec![],
                not_after: 0,
                days_left: 0,
            };
            let parsed = leaf
                .as_ref()
                .and_then(|d| x509_parser::parse_x509_certificate(d.as_ref()).ok());
            if let Some((_, x)) = parsed {
                v.subject = x.subject().to_string();
                v.not_after = x.validity().not_after.timestamp();
                v.days_left = (v.not_after - now).div_euclid(86_400);
                if let Ok(Some(san)) = x.subject_alternative_name() {
                    for n in &san.value.general_names {
                        match n {
                            GeneralName::DNSName(d) => v.dns_sans.push(d.to_string()),
                            GeneralName::IPAddress(b) => v.ip_sans.push(ip_string(b)),
                            _ => {}
                        }
                    }
                }
            }
            v
        })
        .collect()
}

fn ip_string(b: &[u8]) -> String {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).map(|a| std::net::IpAddr::from(a).to_string()),
        16 => <[u8; 16]>::try_from(b).map(|a| std::net::IpAddr::from(a).to_string()),
        _ => return format!("<{} bytes>", b.len()),
    }
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_fold_codes_and_refusals_per_repository() {
        let m = Metrics::new().unwrap();
        let req = |repo, code, n| {
            m.requests
                .with_label_values(&[repo, "manifest_get", "GET", code])
                .inc_by(n)
        };
        req("a", "200", 7);
        req("a", "502", 2);
        req("a", "403", 1);
        req("b", "200", 3);
        m.schema1_refused.with_label_values(&["a", "push"]).inc();
        m.backend_up.with_label_values(&["main"]).set(1);
        m.backend_up.with_label_values(&["spare"]).set(0);
        let s = sample(&m, 42);
        assert_eq!(s.at, 42);
        let a = s.per_repo["a"];
        assert_eq!(
            (a.requests, a.errors, a.denied, a.schema1_refused),
            (10, 2, 1, 1)
        );
        assert_eq!(s.per_repo["b"].requests, 3);
        let up = backend_up(&m);
        assert_eq!(up.get("main"), Some(&true));
        assert_eq!(up.get("spare"), Some(&false));
        assert_eq!(ip_string(&[127, 0, 0, 1]), "127.0.0.1");
        assert_eq!(ip_string(&[0; 16]), "::");
        assert_eq!(ip_string(&[1, 2]), "<2 bytes>");
    }
}
