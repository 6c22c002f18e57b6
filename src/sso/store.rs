//! Users made by single sign-on: who they are at their provider, the
//! dockgate groups their provider groups gave them, when they last signed
//! in and were re-checked, and the provider credential the re-check uses.
//! Kept in the runtime-state store's `sso-users` area.

use crate::state::{StateStore, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SsoUser {
    pub provider: String,
    /// The provider's stable id (`sub`, GitHub's numeric id).
    pub subject: String,
    #[serde(default)]
    pub email: String,
    /// Dockgate groups (mapped), as of the last sign-in or re-check.
    #[serde(default)]
    pub groups: BTreeSet<String>,
    /// Unix seconds.
    pub created: u64,
    pub signed_in: u64,
    pub checked: u64,
    /// Provider refresh token (OIDC) or access token (GitHub) for the
    /// re-check; a secret, so the file is 0600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// A user of the htpasswd file this provider signs in (auto-create off).
    #[serde(default)]
    pub linked: bool,
}

/// The runtime-state area SSO users live in (files by default, the
/// cluster's store when shared).
pub const AREA: &str = "sso-users";

pub fn get(store: &dyn StateStore, name: &str) -> Option<SsoUser> {
    store
        .get(AREA, name)
        .and_then(|v| serde_json::from_str(&v).ok())
}

pub fn all(store: &dyn StateStore) -> Vec<(String, SsoUser)> {
    store
        .list(AREA)
        .into_iter()
        .filter_map(|(k, v)| serde_json::from_str(&v).ok().map(|u| (k, u)))
        .collect()
}

pub async fn put(store: &dyn StateStore, name: &str, user: &SsoUser) -> Result<(), StoreError> {
    let v = serde_json::to_string(user).map_err(|e| StoreError::Invalid(e.to_string()))?;
    store.put(AREA, name, &v, None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn users_round_trip_through_the_state_store() {
        let dir = std::env::temp_dir().join(format!("dockgate-sso-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("dockgate.toml");
        let s = crate::state::FileStore::open(&cfg, Some(&dir)).unwrap();
        assert!(get(&s, "ann").is_none());
        let u = SsoUser {
            provider: "idp".into(),
            subject: "1".into(),
            email: String::new(),
            groups: ["devs".to_string()].into(),
            created: 1,
            signed_in: 1,
            checked: 1,
            credential: Some("rt".into()),
            linked: false,
        };
        put(&s, "ann", &u).await.unwrap();
        assert_eq!(get(&s, "ann"), Some(u.clone()));
        let again = crate::state::FileStore::open(&cfg, Some(&dir)).unwrap();
        assert_eq!(all(&again), vec![("ann".to_string(), u)]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
