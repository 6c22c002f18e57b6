//! Users made by single sign-on: who they are at their provider, the
//! dockgate groups their provider groups gave them, when they last signed
//! in and were re-checked, and the provider credential the re-check uses.
//! Behind a trait so a shared store (the cluster's) can replace the file.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::RwLock;

pub const USERS_FILE: &str = "sso-users.json";

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

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

pub trait UserStore: Send + Sync {
    fn get(&self, name: &str) -> Option<SsoUser>;
    /// Blocking (it may write a file): call off the async threads.
    fn put(&self, name: &str, user: SsoUser) -> Result<(), StoreError>;
    fn all(&self) -> Vec<(String, SsoUser)>;
}

/// `<state_dir>/sso-users.json`, kept in memory, rewritten atomically.
pub struct FileStore {
    path: PathBuf,
    users: RwLock<BTreeMap<String, SsoUser>>,
}

impl FileStore {
    pub fn open(path: PathBuf) -> Result<Self, StoreError> {
        let err = |m: String| StoreError::Io {
            path: path.display().to_string(),
            message: m,
        };
        let users = match std::fs::read_to_string(&path) {
            Ok(t) => serde_json::from_str(&t).map_err(|e| err(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(err(e.to_string())),
        };
        Ok(Self {
            path,
            users: RwLock::new(users),
        })
    }
}

impl UserStore for FileStore {
    fn get(&self, name: &str) -> Option<SsoUser> {
        self.users.read().ok()?.get(name).cloned()
    }

    fn put(&self, name: &str, user: SsoUser) -> Result<(), StoreError> {
        let err = |m: String| StoreError::Io {
            path: self.path.display().to_string(),
            message: m,
        };
        let mut g = self
            .users
            .write()
            .map_err(|_| err("lock poisoned".into()))?;
        let mut next = g.clone();
        next.insert(name.to_string(), user);
        let text = serde_json::to_string_pretty(&next).map_err(|e| err(e.to_string()))?;
        crate::policy::auth::write_private(&self.path, text.as_bytes()).map_err(err)?;
        *g = next;
        Ok(())
    }

    fn all(&self) -> Vec<(String, SsoUser)> {
        self.users
            .read()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_store_round_trip() {
        let dir = std::env::temp_dir().join(format!("dockgate-sso-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(USERS_FILE);
        let s = FileStore::open(path.clone()).unwrap();
        assert!(s.get("ann").is_none());
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
        s.put("ann", u.clone()).unwrap();
        assert_eq!(FileStore::open(path.clone()).unwrap().get("ann"), Some(u));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
