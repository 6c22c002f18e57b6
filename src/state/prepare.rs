//! Turning a config file into what requests run under: the validated
//! config, backend peers and certificate specs (the authenticator is added
//! by `state`, from the parts that outlive a reload). The same path serves
//! `check`, `serve`, SIGHUP and the admin API, so what `check` accepts is
//! what will serve.

use super::StateError;
use crate::config::{self, Config};
use crate::route::host::HostNames;
use crate::tls::{
    ensure_server_cert, write_trust_dir, CertSpec, CertStore, EnsureOutcome, GenerateOptions,
    SanSet, TrustDir,
};
use crate::upstream::Peers;
use std::path::Path;
use std::sync::Arc;

/// Everything a config needs before it may serve: loaded certs and peers.
pub struct Prepared {
    pub cfg: Arc<Config>,
    pub peers: Peers,
    pub certs: Vec<CertSpec>,
    /// The `Host` names requests may carry.
    pub hosts: Arc<HostNames>,
    /// `[tls] generate` when serving: the CA for each client, per address.
    pub trust: Option<TrustDir>,
}

/// Whether `prepare` may write files (generate certificates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `dockgate check`: read only; missing generated certs are fine.
    Check,
    /// `serve` and reload: generate or re-issue certs when configured.
    Serve,
}

/// Validates config, certificates and backend CAs; the same path runs for
/// `check`, `serve` and reload, so what `check` accepts will serve.
pub fn prepare(path: &Path, mode: Mode) -> Result<Prepared, StateError> {
    let file = path.display().to_string();
    let tls = |source| StateError::Tls {
        file: file.clone(),
        source,
    };
    let cfg = config::load(path)?;
    let certs = cert_specs(&cfg);
    let (pending, trust) = match &cfg.tls.generate {
        Some(g) => ensure_certs(&cfg, g, mode).map_err(tls)?,
        None => (false, None),
    };
    if !pending {
        CertStore::new(certs.clone()).map_err(tls)?;
    }
    prepare_rest(path, mode, cfg, certs, trust)
}

fn prepare_rest(
    path: &Path,
    mode: Mode,
    cfg: Config,
    certs: Vec<CertSpec>,
    trust: Option<TrustDir>,
) -> Result<Prepared, StateError> {
    let file = path.display().to_string();
    let peers = Peers::load(&cfg).map_err(|source| StateError::Backend {
        file: file.clone(),
        source,
    })?;
    if let Some(a) = &cfg.auth {
        // An absent file would silently mean "no users": every login fails.
        if !a.htpasswd.is_file() {
            return Err(StateError::NoHtpasswd {
                file,
                path: a.htpasswd.clone(),
            });
        }
    }
    if let (Some(a), Mode::Check) = (&cfg.auth, mode) {
        // Read-only: the htpasswd must parse; state files are made at serve.
        crate::policy::auth::users::Users::check(a.htpasswd.clone()).map_err(|source| {
            StateError::Auth {
                file,
                key: "auth.htpasswd",
                source,
            }
        })?;
    }
    let local_ips = crate::tls::detect::local_addresses().unwrap_or_default();
    let hosts = Arc::new(HostNames::new(&cfg, &cert_names(&certs), &local_ips));
    Ok(Prepared {
        cfg: Arc::new(cfg),
        peers,
        certs,
        hosts,
        trust,
    })
}

/// DNS and IP names of the served certificates (those readable now).
fn cert_names(certs: &[CertSpec]) -> Vec<String> {
    certs
        .iter()
        .filter_map(|c| crate::tls::inspect::inspect(&c.cert, None).ok())
        .flat_map(|r| {
            let ips: Vec<String> = r.facts.ip_sans.iter().map(|i| i.to_string()).collect();
            r.facts.dns_sans.into_iter().chain(ips)
        })
        .collect()
}

fn cert_specs(cfg: &Config) -> Vec<CertSpec> {
    let mut certs = vec![CertSpec {
        name: "default".into(),
        cert: cfg.tls.cert.clone(),
        key: cfg.tls.key.clone(),
        server_names: vec![],
    }];
    for (i, c) in cfg.tls.extra.iter().enumerate() {
        certs.push(CertSpec {
            name: c
                .server_names
                .first()
                .cloned()
                .unwrap_or_else(|| format!("certificate-{i}")),
            cert: c.cert.clone(),
            key: c.key.clone(),
            server_names: c.server_names.clone(),
        });
    }
    certs
}

/// `[tls] generate = true`: make or re-issue the server cert from the local
/// CA in the cert's directory, and write the clients' trust directory.
/// Returns true when a check found nothing yet (the first `serve` will
/// generate).
fn ensure_certs(
    cfg: &Config,
    g: &config::Generate,
    mode: Mode,
) -> Result<(bool, Option<TrustDir>), crate::tls::TlsError> {
    let dir = cfg
        .tls
        .cert
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut opts = GenerateOptions::new(&dir);
    opts.ips = g.ips.clone();
    opts.dns = g.dns.clone();
    opts.detect = g.detect;
    opts.key_type = g.key_type;
    if let Some(d) = g.days {
        opts.days = d;
    }
    if mode == Mode::Check {
        let missing = !cfg.tls.cert.exists() || !cfg.tls.key.exists();
        return Ok((missing, None));
    }
    match ensure_server_cert(&opts)? {
        EnsureOutcome::Generated(r) => {
            tracing::info!(cert = %r.server_cert.display(), sans = %r.sans, "generated server certificate; clients must trust {}", r.ca_cert.display())
        }
        EnsureOutcome::Reissued { reason, report } => {
            tracing::info!(cert = %report.server_cert.display(), reason = ?reason, "re-issued server certificate from the same CA")
        }
        EnsureOutcome::Kept { .. } => {}
    }
    let sans = SanSet::from_options(&opts)?;
    let trust = write_trust_dir(
        &dir,
        &dir.join(crate::tls::generate::CA_CERT),
        &client_addresses(cfg, &sans),
    )?;
    Ok((false, Some(trust)))
}

/// Every `host:port` a client may write in an image name: each listener's
/// port with each SAN, and `<key>.<base_domain>` on subdomain listeners.
fn client_addresses(cfg: &Config, sans: &SanSet) -> Vec<String> {
    let mut out = Vec::new();
    for l in &cfg.listeners {
        let port = l.address.port();
        out.extend(sans.registry_addresses(port));
        if let config::ListenMethod::Subdomain { base_domain } = &l.method {
            out.extend(
                cfg.repositories
                    .keys()
                    .map(|k| format!("{k}.{base_domain}:{port}")),
            );
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|a| seen.insert(a.clone()));
    out
}
