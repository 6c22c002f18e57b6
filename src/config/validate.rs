//! Turning the serde mirror into domain types. Every check names its key.

use super::file::{BackendFile, FileConfig, ListenFile, MethodFile, RepositoryFile};
use super::*;
use crate::oci::names::{is_valid_component, is_valid_name};
use std::net::ToSocketAddrs;
use std::path::Path;

pub(super) struct Ctx<'a> {
    file: &'a str,
    dir: &'a Path,
}

impl Ctx<'_> {
    pub(super) fn err(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            key: key.into(),
            message: message.into(),
        }
    }

    /// Relative paths resolve against the config file's directory.
    pub(super) fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.display().to_string(),
        key: "(file)".into(),
        message: format!("cannot read: {e}"),
    })?;
    parse(&text, path)
}

/// Validates config text as if read from `path`.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let dir = path.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let cx = Ctx { file: &file, dir };
    // The path names the key of a wrong value or type, an unknown key or an
    // unknown variant (the enums in `file.rs`); "." is a syntax error.
    let raw: FileConfig =
        serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
            let key = e.path().to_string();
            let e = e.into_inner();
            let line = e.span().map(|s| line_of(text, s.start)).unwrap_or_default();
            match key.as_str() {
                "." => cx.err(format!("(syntax{line})"), e.message()),
                _ => cx.err(
                    format!("{key} ({})", line.trim_start_matches(", ")),
                    e.message(),
                ),
            }
        })?;

    let server = Server {
        threads: match raw.server.threads {
            Some(n) if n == 0 || n > MAX_THREADS => {
                return Err(cx.err(
                    "server.threads",
                    format!("{n}: must be between 1 and {MAX_THREADS} (threads per listener)"),
                ))
            }
            Some(n) => n,
            None => 2,
        },
        grace_period: Duration::from_secs(raw.server.grace_period_seconds.unwrap_or(30)),
        graceful_shutdown_timeout: Duration::from_secs(
            raw.server.graceful_shutdown_timeout_seconds.unwrap_or(5),
        ),
        drain_delay: match raw.server.drain_delay_seconds {
            Some(n) if n > 300 => {
                return Err(cx.err(
                    "server.drain_delay_seconds",
                    format!("{n}: at most 300 (a balancer notices a failing check in seconds)"),
                ))
            }
            n => Duration::from_secs(n.unwrap_or(0)),
        },
        runtime_dir: cx.path(raw.server.runtime_dir.as_deref().unwrap_or("/run/dockgate")),
        public_hosts: public_hosts(&cx, &raw.server.public_hosts)?,
        limits: client_limits(&cx, &raw.server)?,
        fast_lane: raw.server.fast_lane.unwrap_or(true),
    };

    let tls = tls(&cx, &raw)?;

    let mut backends = BTreeMap::new();
    for (name, b) in &raw.backends {
        backends.insert(name.clone(), Arc::new(backend(&cx, name, b)?));
    }

    let mut repositories = BTreeMap::new();
    for (key, r) in &raw.repositories {
        repositories.insert(key.clone(), Arc::new(repository(&cx, key, r, &backends)?));
    }
    if repositories.is_empty() {
        return Err(cx.err(
            "repositories",
            "at least one [repositories.KEY] is required",
        ));
    }
    for (wide, narrow) in super::overlap::overlaps(&repositories) {
        let allowed = |k: &str| raw.repositories.get(k).is_some_and(|r| r.allow_overlap);
        let equal = wide.name_prefix == narrow.name_prefix;
        if !(allowed(&wide.key) || (equal && allowed(&narrow.key))) {
            return Err(cx.err(
                format!("repositories.{}", wide.key),
                super::overlap::explain(wide, narrow),
            ));
        }
    }

    if raw.listen.is_empty() {
        return Err(cx.err("listen", "at least one [[listen]] is required"));
    }
    let mut listeners: Vec<Listener> = Vec::new();
    for (i, l) in raw.listen.iter().enumerate() {
        let l = listener(&cx, i, l, &repositories)?;
        if listeners.iter().any(|o| o.address == l.address) {
            return Err(cx.err(
                format!("listen[{i}].address"),
                format!("{} is used twice", l.address),
            ));
        }
        listeners.push(l);
    }

    let metrics = match &raw.metrics {
        None => Metrics {
            address: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            health_check_interval: Duration::from_secs(10),
        },
        Some(m) => Metrics {
            address: match m.address.as_deref() {
                None => Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
                Some("") | Some("off") => None,
                Some(a) => Some(a.parse().map_err(|_| {
                    cx.err(
                        "metrics.address",
                        format!("{a:?} is not IP:PORT (or \"off\")"),
                    )
                })?),
            },
            health_check_interval: Duration::from_secs(
                m.health_check_interval_seconds.unwrap_or(10).max(1),
            ),
        },
    };

    if let Some(m) = metrics.address {
        if let Some(l) = listeners.iter().find(|l| same_socket(l.address, m)) {
            return Err(cx.err(
                "metrics.address",
                format!(
                    "{m} is also a [[listen]] address ({}); give metrics its own port",
                    l.address
                ),
            ));
        }
    }

    let log = match &raw.log {
        None => Log {
            format: LogFormat::Json,
            access_log: None,
        },
        Some(l) => Log {
            format: l.format.unwrap_or(LogFormat::Json),
            access_log: match l.access_log.as_deref() {
                None | Some("") | Some("-") | Some("stdout") => None,
                Some(p) => Some(cx.path(p)),
            },
        },
    };

    let auth = match &raw.auth {
        None => None,
        Some(a) => Some(auth(&cx, a, &tls)?),
    };

    let cluster = match &raw.cluster {
        Some(c) => Some(super::cluster::validate(c, &|k, m| cx.err(k, m), &|p| {
            cx.path(p)
        })?),
        None => None,
    };
    let policy = policy::global(&raw.policy).map_err(|(k, e)| cx.err(k, e.to_string()))?;
    Ok(Config {
        auth,
        cluster,
        policy,
        path: path.to_path_buf(),
        server,
        tls,
        listeners,
        backends,
        repositories,
        metrics,
        log,
        cache: cache::settings(&cx, raw.cache.as_ref(), &raw.repositories)?,
    })
}

/// More would not help on any machine; pingora aborts on absurd counts.
pub const MAX_THREADS: usize = 1024;

/// Whether two listening addresses would fight over one socket (same port,
/// same IP or one of them the wildcard).
fn same_socket(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Keys dockgate answers itself under /v2/ and so cannot be repositories.
pub const RESERVED_KEYS: [&str; 2] = ["token", "auth"];

fn auth(cx: &Ctx, a: &super::file::AuthFile, tls: &Tls) -> Result<Auth, ConfigError> {
    let challenge = a.challenge.unwrap_or(Challenge::Bearer);
    for (g, members) in &a.groups {
        if members.is_empty() {
            return Err(cx.err(
                format!("auth.groups.{g}"),
                "a group needs at least one member",
            ));
        }
    }
    let state_dir = match &a.state_dir {
        Some(d) => cx.path(d),
        None => tls
            .cert
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| cx.dir.to_path_buf()),
    };
    Ok(Auth {
        htpasswd: cx.path(&a.htpasswd),
        challenge,
        service: a.service.clone().unwrap_or_else(|| "dockgate".into()),
        token_ttl: Duration::from_secs(a.token_ttl_seconds.unwrap_or(300).clamp(10, 86_400)),
        refresh_ttl: Duration::from_secs(a.refresh_ttl_seconds.unwrap_or(30 * 86_400).max(60)),
        state_dir,
        admins: a.admins.clone(),
        groups: a.groups.clone(),
        emails: a.emails.clone(),
        max_failures: a.max_failures.unwrap_or(5).max(1),
        lockout: Duration::from_secs(a.lockout_seconds.unwrap_or(60)),
        max_users_per_address: a.max_users_per_address.unwrap_or(20).max(2),
        sso: super::sso::providers(cx, &a.sso)?,
        workloads: super::sso::workloads(cx, &a.workload)?,
        memberships: Default::default(),
    })
}

/// `, line N` of a byte offset (a span starting a line belongs to that line).
fn line_of(text: &str, offset: usize) -> String {
    let line = text.get(..offset).map_or(0, |t| t.matches('\n').count()) + 1;
    format!(", line {line}")
}

fn tls(cx: &Ctx, raw: &FileConfig) -> Result<Tls, ConfigError> {
    let t = &raw.tls;
    let (cert, key) = match (&t.cert, &t.key) {
        (Some(c), Some(k)) => (cx.path(c), cx.path(k)),
        (None, _) => {
            return Err(cx.err("tls.cert", "missing: path of the server certificate (PEM)"))
        }
        (_, None) => return Err(cx.err("tls.key", "missing: path of the private key (PEM)")),
    };
    let generate = if t.generate {
        let mut ips = Vec::new();
        for (i, ip) in t.ips.iter().enumerate() {
            ips.push(ip.parse().map_err(|_| {
                cx.err(
                    format!("tls.ips[{i}]"),
                    format!("{ip:?} is not an IP address"),
                )
            })?);
        }
        for (i, d) in t.dns.iter().enumerate() {
            if !is_dns_name(d, true) {
                return Err(cx.err(format!("tls.dns[{i}]"), format!("{d:?} is not a DNS name")));
            }
        }
        Some(Generate {
            ips,
            dns: t.dns.clone(),
            detect: t.detect,
            key_type: t.key_type.unwrap_or_default(),
            days: t.days,
        })
    } else {
        for (k, set) in [
            ("ips", !t.ips.is_empty()),
            ("dns", !t.dns.is_empty()),
            ("detect", t.detect),
        ] {
            if set {
                return Err(cx.err(format!("tls.{k}"), "only meaningful with generate = true"));
            }
        }
        None
    };
    let mut extra = Vec::new();
    for (i, c) in t.certificates.iter().enumerate() {
        if c.server_names.is_empty() {
            return Err(cx.err(
                format!("tls.certificates[{i}].server_names"),
                "must list at least one name",
            ));
        }
        for (j, n) in c.server_names.iter().enumerate() {
            if !is_dns_name(n, true) {
                return Err(cx.err(
                    format!("tls.certificates[{i}].server_names[{j}]"),
                    format!("{n:?} is not a DNS name"),
                ));
            }
        }
        extra.push(NamedCert {
            cert: cx.path(&c.cert),
            key: cx.path(&c.key),
            server_names: c
                .server_names
                .iter()
                .map(|s| s.to_ascii_lowercase())
                .collect(),
        });
    }
    Ok(Tls {
        cert,
        key,
        generate,
        extra,
        reload_interval: Duration::from_secs(t.reload_interval_seconds.unwrap_or(2).max(1)),
    })
}

/// Letters, digits and hyphens in dot-separated labels; a leading `*.` when allowed.
fn is_dns_name(n: &str, wildcard: bool) -> bool {
    let n = match n.strip_prefix("*.") {
        Some(rest) if wildcard => rest,
        _ => n,
    };
    !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn backend(cx: &Ctx, name: &str, b: &BackendFile) -> Result<Backend, ConfigError> {
    let key = |k: &str| format!("backends.{name}.{k}");
    let uri: http::Uri = b
        .url
        .parse()
        .map_err(|e| cx.err(key("url"), format!("{:?} is not a URL: {e}", b.url)))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => {
            return Err(cx.err(
                key("url"),
                format!("{:?}: scheme must be http or https", b.url),
            ))
        }
    };
    let Some(auth) = uri.authority() else {
        return Err(cx.err(key("url"), format!("{:?} has no host", b.url)));
    };
    if !matches!(uri.path(), "" | "/") {
        return Err(cx.err(
            key("url"),
            "must not carry a path; use v2_prefix for where the API lives",
        ));
    }
    let host = auth
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = auth.port_u16().unwrap_or(if tls { 443 } else { 80 });
    // Resolved here so that a bad name is a config error, not a runtime panic.
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| cx.err(key("url"), format!("cannot resolve {host:?}: {e}")))?
        .next()
        .ok_or_else(|| cx.err(key("url"), format!("{host:?} resolves to no address")))?;
    let v2_prefix = b.v2_prefix.clone().unwrap_or_else(|| "/v2".into());
    if !v2_prefix.starts_with('/') || v2_prefix.ends_with('/') || v2_prefix.contains("//") {
        return Err(cx.err(
            key("v2_prefix"),
            format!("{v2_prefix:?}: must start with '/' and not end with '/'"),
        ));
    }
    let kind = b.kind.unwrap_or(if v2_prefix.starts_with("/artifactory/") {
        BackendKind::Artifactory
    } else {
        BackendKind::Distribution
    });
    let ca = match &b.ca {
        Some(_) if !tls => return Err(cx.err(key("ca"), "only meaningful for an https url")),
        Some(c) => Some(cx.path(c)),
        None => None,
    };
    let secs = |v: Option<u64>, d: u64, k: &str| -> Result<Duration, ConfigError> {
        match v.unwrap_or(d) {
            0 => Err(cx.err(key(k), "must be at least 1")),
            n => Ok(Duration::from_secs(n)),
        }
    };
    Ok(Backend {
        name: name.to_string(),
        tls,
        addr,
        authority: auth.as_str().to_string(),
        host,
        ca,
        v2_prefix,
        kind,
        connect_timeout: secs(b.connect_timeout_seconds, 5, "connect_timeout_seconds")?,
        read_timeout: secs(b.read_timeout_seconds, 900, "read_timeout_seconds")?,
        write_timeout: secs(b.write_timeout_seconds, 900, "write_timeout_seconds")?,
        idle_timeout: secs(b.idle_timeout_seconds, 60, "idle_timeout_seconds")?,
        credentials: match (&b.username, &b.password_file) {
            (None, None) => None,
            (Some(u), Some(f)) => {
                let pf = cx.path(f);
                let pw = std::fs::read_to_string(&pf)
                    .map_err(|e| cx.err(key("password_file"), format!("{}: {e}", pf.display())))?;
                Some((u.clone(), pw.trim_end_matches(['\r', '\n']).to_string()))
            }
            (Some(_), None) => return Err(cx.err(key("password_file"), "required with username")),
            (None, Some(_)) => return Err(cx.err(key("username"), "required with password_file")),
        },
    })
}

fn repository(
    cx: &Ctx,
    key_name: &str,
    r: &RepositoryFile,
    backends: &BTreeMap<String, Arc<Backend>>,
) -> Result<Repository, ConfigError> {
    let key = |k: &str| format!("repositories.{key_name}.{k}");
    // The key is one name component and one DNS label (subdomain method).
    if RESERVED_KEYS.contains(&key_name) {
        return Err(cx.err(
            format!("repositories.{key_name}"),
            "this key is reserved for dockgate's own /v2/ endpoints",
        ));
    }
    if !is_valid_component(key_name) {
        return Err(cx.err(
            format!("repositories.{key_name}"),
            "a repository key must be lowercase letters, digits and separators (-, _, .), like a registry name component",
        ));
    }
    let backend = backends.get(&r.backend).cloned().ok_or_else(|| {
        let known: Vec<&str> = backends.keys().map(|s| s.as_str()).collect();
        cx.err(
            key("backend"),
            format!(
                "unknown backend {:?} (known: {})",
                r.backend,
                known.join(", ")
            ),
        )
    })?;
    let kind = r.kind.unwrap_or(RepoType::Local);
    let name_prefix = match r.name_prefix.as_deref().unwrap_or("") {
        "" => String::new(),
        p => {
            let p = p.trim_end_matches('/');
            if !is_valid_name(p) {
                return Err(cx.err(
                    key("name_prefix"),
                    format!("{p:?} is not a valid repository name prefix"),
                ));
            }
            format!("{p}/")
        }
    };
    Ok(Repository {
        key: key_name.to_string(),
        backend,
        kind,
        name_prefix,
        block_schema1_push: r.block_schema1_push.unwrap_or(kind == RepoType::Local),
        block_schema1_pull: r.block_schema1_pull.unwrap_or(kind == RepoType::Remote),
        acl: Acl {
            anonymous_read: r.anonymous_read,
            read: r.read.clone(),
            write: r.write.clone(),
            admin: r.admin.clone(),
        },
        cache: r.cache,
        policy: policy::repository(&policy::RepoPolicyFile {
            read_only: r.read_only,
            read_only_reason: r.read_only_reason.as_deref(),
            immutable_tags: &r.immutable_tags,
            allow_networks: &r.allow_networks,
            push_networks: &r.push_networks,
            rate_limit: r.rate_limit,
        })
        .map_err(|(k, e)| cx.err(key(&k), e.to_string()))?,
    })
}

fn listener(
    cx: &Ctx,
    i: usize,
    l: &ListenFile,
    repositories: &BTreeMap<String, Arc<Repository>>,
) -> Result<Listener, ConfigError> {
    let key = |k: &str| format!("listen[{i}].{k}");
    let address: SocketAddr = l
        .address
        .parse()
        .map_err(|_| cx.err(key("address"), format!("{:?} is not IP:PORT", l.address)))?;
    let method = match l.method {
        MethodFile::Path => ListenMethod::Path,
        MethodFile::Subdomain => {
            let Some(d) = &l.base_domain else {
                return Err(cx.err(key("base_domain"), "required for method = \"subdomain\""));
            };
            if !is_dns_name(d, false) {
                return Err(cx.err(key("base_domain"), format!("{d:?} is not a DNS name")));
            }
            ListenMethod::Subdomain {
                base_domain: d.to_ascii_lowercase(),
            }
        }
        MethodFile::Port => {
            let Some(r) = &l.repository else {
                return Err(cx.err(key("repository"), "required for method = \"port\""));
            };
            if !repositories.contains_key(r) {
                return Err(cx.err(key("repository"), format!("unknown repository {r:?}")));
            }
            ListenMethod::Port {
                repository: r.clone(),
            }
        }
    };
    let stray = match &method {
        ListenMethod::Path => l.base_domain.is_some() || l.repository.is_some(),
        ListenMethod::Subdomain { .. } => l.repository.is_some(),
        ListenMethod::Port { .. } => l.base_domain.is_some(),
    };
    if stray {
        return Err(cx.err(
            key("method"),
            format!(
                "base_domain/repository do not apply to method = {:?}",
                l.method.as_str()
            ),
        ));
    }
    Ok(Listener { address, method })
}

/// `[server]` deadlines and the per-client connection cap; zero is refused
/// (it would mean "no limit" to some readers and "refuse all" to others).
fn client_limits(
    cx: &Ctx,
    raw: &crate::config::file::ServerFile,
) -> Result<crate::config::ClientLimits, ConfigError> {
    let d = crate::config::ClientLimits::default();
    let secs = |key: &str, v: Option<u64>, default: Duration| match v {
        Some(0) => Err(cx.err(format!("server.{key}"), "must be at least 1")),
        Some(n) => Ok(Duration::from_secs(n)),
        None => Ok(default),
    };
    Ok(crate::config::ClientLimits {
        header_timeout: secs(
            "header_timeout_seconds",
            raw.header_timeout_seconds,
            d.header_timeout,
        )?,
        keepalive_timeout: secs(
            "keepalive_timeout_seconds",
            raw.keepalive_timeout_seconds,
            d.keepalive_timeout,
        )?,
        body_timeout: secs(
            "body_timeout_seconds",
            raw.body_timeout_seconds,
            d.body_timeout,
        )?,
        send_timeout: secs(
            "send_timeout_seconds",
            raw.send_timeout_seconds,
            d.send_timeout,
        )?,
        max_connections_per_client: match raw.max_connections_per_client {
            Some(0) => {
                return Err(cx.err("server.max_connections_per_client", "must be at least 1"))
            }
            Some(n) => n,
            None => d.max_connections_per_client,
        },
    })
}

mod cache;
#[cfg(test)]
mod tests;

/// `[server] public_hosts`: host names or IPs, without scheme or path.
fn public_hosts(cx: &Ctx, hosts: &[String]) -> Result<Vec<String>, ConfigError> {
    for (i, h) in hosts.iter().enumerate() {
        let name = crate::route::host_name(h);
        let ok = !name.is_empty()
            && !h.contains("://")
            && !h.contains('/')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '*'));
        if !ok {
            return Err(cx.err(
                format!("server.public_hosts[{i}]"),
                format!("{h:?} is not a host name or IP (no scheme, no path)"),
            ));
        }
    }
    Ok(hosts.to_vec())
}
