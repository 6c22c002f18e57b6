//! Runtime state: what changes while dockgate runs, as opposed to the
//! config file's static part. Everything here goes through one trait, so a
//! single instance keeps it in files (`file::FileStore`, the default) and
//! several instances can share it. Reads are from memory; writes are async.

use crate::policy::auth::keys::ApiKeys;
use crate::policy::auth::token::Keyring;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// A repository's settings changed at runtime, over the config file's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepoOverride {
    pub block_schema1_push: Option<bool>,
    pub block_schema1_pull: Option<bool>,
}

impl RepoOverride {
    /// Applies one admin API edit (`block_schema1_push`/`_pull`).
    pub fn set(&mut self, field: &str, value: bool) -> Result<(), StoreError> {
        match field {
            "block_schema1_push" => self.block_schema1_push = Some(value),
            "block_schema1_pull" => self.block_schema1_pull = Some(value),
            other => return Err(StoreError::Invalid(format!("unknown setting {other:?}"))),
        }
        Ok(())
    }
}

/// The secrets every instance must agree on.
pub struct Secrets {
    /// The HMAC behind API keys.
    pub api_keys: ApiKeys,
    /// Token signing keys: the current one first, then retiring ones.
    pub tokens: Keyring,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The shared store cannot be reached: serve on, refuse writes.
    #[error("cluster store unreachable: {0}")]
    Unreachable(String),
    /// A file of the file store, or a value in the shared store.
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    Invalid(String),
}

/// One implementation per backing store. Sync methods read memory and
/// never block on the network; async ones write.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// "file" or "etcd", for logs and `dockgate cluster status`.
    fn kind(&self) -> &'static str;

    /// Repository settings changed at runtime (empty for the file store,
    /// which writes them into the config file itself).
    fn repo_overrides(&self) -> BTreeMap<String, RepoOverride>;

    /// Changes a repository's settings (`block_schema1_push`/`_pull`).
    /// The caller reloads afterwards.
    async fn set_repository(&self, key: &str, edits: &[(&str, bool)]) -> Result<(), StoreError>;

    /// A user's API-key generation (0 until first revoked).
    fn generation(&self, user: &str) -> u64;

    /// Bumps the generation: the user's API key and refresh tokens stop
    /// working. Returns the new generation.
    async fn revoke_keys(&self, user: &str) -> Result<u64, StoreError>;

    /// The API-key secret and token signing keys.
    fn secrets(&self) -> Arc<Secrets>;

    /// A failed login, for stores that share lockouts between instances
    /// (the local limiter has already counted it). Never blocks.
    fn login_failed(&self, _user: &str, _ip: Option<IpAddr>) {}

    /// A value in a keyed area (single sign-on: users, device codes,
    /// sessions), while not expired.
    fn get(&self, area: &str, key: &str) -> Option<String>;

    /// Every live (key, value) of an area, by key.
    fn list(&self, area: &str) -> Vec<(String, String)>;

    /// Stores a value; with `ttl` it disappears after that long.
    async fn put(
        &self,
        area: &str,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError>;

    /// Removes a value; false when there was none.
    async fn delete(&self, area: &str, key: &str) -> Result<bool, StoreError>;
}

/// Area names become file names and key segments.
pub fn check_area(area: &str) -> Result<(), StoreError> {
    if !area.is_empty()
        && area.len() <= 64
        && area
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "area {area:?}: lower-case letters, digits, - and _ only"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn areas_and_overrides() {
        for ok in ["sso-users", "device_codes", "s1"] {
            assert!(check_area(ok).is_ok(), "{ok}");
        }
        for bad in ["", "../x", "A", "a/b", &"x".repeat(65)] {
            assert!(check_area(bad).is_err(), "{bad}");
        }
        let mut o = RepoOverride::default();
        o.set("block_schema1_push", false).unwrap();
        assert_eq!(o.block_schema1_push, Some(false));
        assert!(o.set("read_only", true).is_err());
    }
}
