//! Reaching etcd: client options from `[cluster]`, probing each member
//! for `dockgate check`, and what `dockgate cluster status` prints.

use super::ClusterError;
use crate::config::Cluster;
use etcd_client::{Certificate, Client, ConnectOptions, GetOptions, Identity, TlsOptions};
use std::time::Duration;

/// Each request (and connection attempt) gives up after this: a write
/// while etcd is away answers 503 quickly instead of hanging.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

fn read(key: &str, path: &std::path::Path) -> Result<Vec<u8>, ClusterError> {
    std::fs::read(path).map_err(|e| ClusterError::Config {
        key: format!("cluster.{key}"),
        message: format!("{}: {e}", path.display()),
    })
}

/// Connection options: TLS with the CA and client certificate when given.
pub fn options(c: &Cluster) -> Result<ConnectOptions, ClusterError> {
    let mut o = ConnectOptions::new()
        .with_connect_timeout(REQUEST_TIMEOUT)
        .with_timeout(REQUEST_TIMEOUT)
        .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
        .with_keep_alive_while_idle(true);
    if c.ca.is_some() || c.cert.is_some() {
        let mut tls = TlsOptions::new();
        if let Some(ca) = &c.ca {
            tls = tls.ca_certificate(Certificate::from_pem(read("ca", ca)?));
        }
        if let (Some(cert), Some(key)) = (&c.cert, &c.key) {
            tls = tls.identity(Identity::from_pem(read("cert", cert)?, read("key", key)?));
        }
        o = o.with_tls(tls);
    }
    Ok(o)
}

/// Connects to the members (lazily: errors show on the first request).
pub async fn connect(c: &Cluster) -> Result<Client, ClusterError> {
    Client::connect(&c.etcd, Some(options(c)?))
        .await
        .map_err(|e| ClusterError::Unreachable(chain(&e)))
}

/// An error with its causes, so "certificate unknown" is not hidden
/// behind "transport error".
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        src = s.source();
    }
    out
}

/// Asks each member on its own; the first that fails is named by its
/// index in `cluster.etcd` and its URL.
pub async fn probe(c: &Cluster) -> Result<(), ClusterError> {
    let opts = options(c)?;
    for (i, url) in c.etcd.iter().enumerate() {
        let member = |message: String| ClusterError::Member {
            key: format!("cluster.etcd[{i}]"),
            url: url.clone(),
            message,
        };
        let mut client = Client::connect([url], Some(opts.clone()))
            .await
            .map_err(|e| member(chain(&e)))?;
        client.status().await.map_err(|e| member(chain(&e)))?;
    }
    Ok(())
}

/// `dockgate cluster status`: members, leader, revision and raft lag.
pub async fn status(c: &Cluster) -> Result<String, ClusterError> {
    let mut client = connect(c).await?;
    let unreachable = |e: etcd_client::Error| ClusterError::Unreachable(chain(&e));
    let members = client.member_list().await.map_err(unreachable)?;
    let keys = client
        .get(
            c.prefix.as_bytes(),
            Some(GetOptions::new().with_prefix().with_count_only()),
        )
        .await
        .map_err(unreachable)?;
    let revision = keys.header().map(|h| h.revision()).unwrap_or(0);
    let mut rows = Vec::new();
    let mut leader_index = 0;
    let opts = options(c)?;
    for m in members.members() {
        let url = m.client_urls().first().cloned().unwrap_or_default();
        let st = match Client::connect([&url], Some(opts.clone())).await {
            Ok(mut one) => one.status().await.map_err(|e| chain(&e)),
            Err(e) => Err(chain(&e)),
        };
        if let Ok(s) = &st {
            if s.leader() == m.id() {
                leader_index = s.raft_index();
            }
        }
        rows.push((m.name().to_string(), m.id(), url, st));
    }
    let mut out = format!(
        "prefix {:?}: {} keys at revision {revision}\n",
        c.prefix,
        keys.count()
    );
    for (name, id, url, st) in rows {
        let line = match st {
            Ok(s) => format!(
                "{name} {id:x} {url}: {}version {}, raft index {} (lag {}), db {} B",
                if s.leader() == id { "leader, " } else { "" },
                s.version(),
                s.raft_index(),
                leader_index.saturating_sub(s.raft_index()),
                s.db_size()
            ),
            Err(e) => format!("{name} {id:x} {url}: unreachable: {e}"),
        };
        out.push_str(&line);
        out.push('\n');
    }
    Ok(out)
}
