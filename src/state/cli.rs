//! What the command line does with runtime state: the same operations on
//! the file store or, with `[cluster]`, on etcd, each on a short-lived
//! runtime of its own.

use super::etcd::{self, ClusterError};
use super::StateError;
use crate::config::{self, Config};
use std::path::Path;
use std::time::Duration;

fn load(path: &Path) -> Result<Config, StateError> {
    Ok(config::load(path)?)
}

/// The `[auth]` section the `user` commands work on.
pub fn auth(path: &Path) -> Result<config::Auth, StateError> {
    load(path)?.auth.ok_or_else(|| StateError::NoAuth {
        file: path.display().to_string(),
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, StateError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StateError::Task(e.to_string()))
}

fn block_on<T>(
    f: impl std::future::Future<Output = Result<T, ClusterError>>,
) -> Result<T, StateError> {
    runtime()?
        .block_on(f)
        .map_err(|e| StateError::Store(e.into()))
}

fn cluster_of(cfg: &Config) -> Result<&config::Cluster, StateError> {
    cfg.cluster.as_ref().ok_or_else(|| StateError::NoCluster {
        file: cfg.path.display().to_string(),
    })
}

/// `dockgate user revoke-keys` (and `delete`): bumps the user's key
/// generation where the instances read it.
pub fn revoke_keys(path: &Path, user: &str) -> Result<u64, StateError> {
    let cfg = load(path)?;
    let auth = cfg.auth.as_ref().ok_or_else(|| StateError::NoAuth {
        file: path.display().to_string(),
    })?;
    match &cfg.cluster {
        Some(c) => block_on(etcd::revoke_once(c, user)),
        None => crate::policy::auth::keys::revoke(&auth.state_dir, user).map_err(|source| {
            StateError::Auth {
                file: path.display().to_string(),
                key: "auth.state_dir",
                source,
            }
        }),
    }
}

/// `dockgate check`: every member answers, with the configured TLS.
pub fn probe(cfg: &Config) -> Result<(), StateError> {
    match &cfg.cluster {
        Some(c) => runtime()?
            .block_on(etcd::connect::probe(c))
            .map_err(|source| StateError::Cluster {
                file: cfg.path.display().to_string(),
                source,
            }),
        None => Ok(()),
    }
}

/// `dockgate cluster status`.
pub fn status(path: &Path) -> Result<String, StateError> {
    let cfg = load(path)?;
    block_on(etcd::connect::status(cluster_of(&cfg)?))
}

/// `dockgate cluster rotate-keys`: returns how many keys now verify. Old
/// keys stay for the longest a token they signed can live.
pub fn rotate_keys(path: &Path) -> Result<(usize, Duration), StateError> {
    let cfg = load(path)?;
    let c = cluster_of(&cfg)?;
    let keep = cfg
        .auth
        .as_ref()
        .map(|a| a.token_ttl.max(a.refresh_ttl))
        .unwrap_or(Duration::from_secs(300));
    let n = block_on(etcd::rotate_keys(c, keep))?;
    Ok((n, keep))
}
