//! `[cluster]`: several instances sharing runtime state through etcd.
//! Without it, runtime state stays in files (one instance).

use super::ConfigError;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    /// Member client URLs, `https://host:2379`.
    pub etcd: Vec<String>,
    /// The CA that signed the members' certificates.
    pub ca: Option<String>,
    /// Client certificate and key, when etcd asks for one.
    pub cert: Option<String>,
    pub key: Option<String>,
    /// Where dockgate's keys live in etcd.
    pub prefix: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub etcd: Vec<String>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// Ends with '/'.
    pub prefix: String,
}

pub const DEFAULT_PREFIX: &str = "/dockgate/";

/// Checks URLs and PEM files; `resolve` makes a path absolute against the
/// config file's directory.
pub fn validate(
    c: &ClusterFile,
    err: &dyn Fn(String, String) -> ConfigError,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<Cluster, ConfigError> {
    if c.etcd.is_empty() {
        return Err(err(
            "cluster.etcd".into(),
            "at least one member URL is required, e.g. [\"https://127.0.0.1:2379\"]".into(),
        ));
    }
    let mut tls = None;
    for (i, url) in c.etcd.iter().enumerate() {
        let key = format!("cluster.etcd[{i}]");
        let u: http::Uri = url
            .parse()
            .map_err(|e| err(key.clone(), format!("{url:?}: not a URL: {e}")))?;
        let https = match u.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(err(
                    key,
                    format!("{url:?}: use https://host:port (or http:// without TLS)"),
                ))
            }
        };
        if u.port_u16().is_none() || u.host().is_none_or(str::is_empty) {
            return Err(err(key, format!("{url:?}: needs a host and a port (2379)")));
        }
        if u.path() != "/" && !u.path().is_empty() {
            return Err(err(key, format!("{url:?}: no path after host:port")));
        }
        match tls {
            Some(t) if t != https => {
                return Err(err(key, "mixes http:// and https:// members".into()))
            }
            _ => tls = Some(https),
        }
    }
    let tls = tls.unwrap_or(false);
    let file =
        |name: &str, v: &Option<String>| v.as_deref().map(|p| (name.to_string(), resolve(p)));
    let ca = file("ca", &c.ca);
    let cert = file("cert", &c.cert);
    let key = file("key", &c.key);
    if tls && ca.is_none() {
        return Err(err(
            "cluster.ca".into(),
            "https members need the CA that signed their certificates".into(),
        ));
    }
    if !tls && (ca.is_some() || cert.is_some()) {
        return Err(err(
            "cluster.etcd".into(),
            "ca/cert/key are set but the members are http://; use https://".into(),
        ));
    }
    if cert.is_some() != key.is_some() {
        return Err(err(
            if cert.is_some() {
                "cluster.key"
            } else {
                "cluster.cert"
            }
            .into(),
            "cert and key go together".into(),
        ));
    }
    for (name, path) in ca.iter().chain(cert.iter()) {
        let certs: Vec<_> = CertificateDer::pem_file_iter(path)
            .map_err(|e| {
                err(
                    format!("cluster.{name}"),
                    format!("{}: {e}", path.display()),
                )
            })?
            .collect::<Result<_, _>>()
            .map_err(|e| {
                err(
                    format!("cluster.{name}"),
                    format!("{}: {e}", path.display()),
                )
            })?;
        if certs.is_empty() {
            return Err(err(
                format!("cluster.{name}"),
                format!("{}: no certificate in it", path.display()),
            ));
        }
    }
    if let Some((_, path)) = &key {
        PrivateKeyDer::from_pem_file(path)
            .map_err(|e| err("cluster.key".into(), format!("{}: {e}", path.display())))?;
    }
    let prefix = c.prefix.clone().unwrap_or_else(|| DEFAULT_PREFIX.into());
    if prefix.is_empty() || !prefix.ends_with('/') {
        return Err(err(
            "cluster.prefix".into(),
            format!("{prefix:?}: must end with '/', e.g. \"/dockgate/\""),
        ));
    }
    Ok(Cluster {
        etcd: c.etcd.clone(),
        ca: ca.map(|(_, p)| p),
        cert: cert.map(|(_, p)| p),
        key: key.map(|(_, p)| p),
        prefix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn check(c: ClusterFile) -> Result<Cluster, ConfigError> {
        let err = |k: String, m: String| ConfigError {
            file: "f.toml".into(),
            key: k,
            message: m,
        };
        validate(&c, &err, &|p: &str| Path::new("/etc/dockgate").join(p))
    }

    fn plain(urls: &[&str]) -> ClusterFile {
        ClusterFile {
            etcd: urls.iter().map(|s| s.to_string()).collect(),
            ca: None,
            cert: None,
            key: None,
            prefix: None,
        }
    }

    #[test]
    fn errors_name_the_key() {
        let ok = check(plain(&["http://127.0.0.1:2379", "http://127.0.0.1:22379"])).unwrap();
        assert_eq!(ok.prefix, DEFAULT_PREFIX);
        for (c, key) in [
            (plain(&[]), "cluster.etcd"),
            (
                plain(&["http://127.0.0.1:2379", "127.0.0.1:1"]),
                "cluster.etcd[1]",
            ),
            (plain(&["http://127.0.0.1"]), "cluster.etcd[0]"),
            (plain(&["ftp://127.0.0.1:1"]), "cluster.etcd[0]"),
            (plain(&["http://h:1", "https://h:2"]), "cluster.etcd[1]"),
            (plain(&["https://h:1"]), "cluster.ca"),
            (plain(&["http://h:1/v3"]), "cluster.etcd[0]"),
        ] {
            assert_eq!(check(c).unwrap_err().key, key);
        }
        let mut c = plain(&["https://h:1"]);
        c.ca = Some("/nonexistent/ca.pem".into());
        assert_eq!(check(c).unwrap_err().key, "cluster.ca");
        let mut c = plain(&["http://h:1"]);
        c.prefix = Some("dockgate".into());
        assert_eq!(check(c).unwrap_err().key, "cluster.prefix");
        let mut c = plain(&["https://h:1"]);
        c.ca = Some("/nonexistent/ca.pem".into());
        c.cert = Some("c.pem".into());
        assert_eq!(check(c).unwrap_err().key, "cluster.key");
    }
}
