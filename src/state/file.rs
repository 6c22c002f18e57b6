//! The file-backed runtime state of a single instance (the default):
//! repository settings are written into the config file itself (comments
//! kept), key generations, the API-key secret and the token signing key live
//! in `[auth] state_dir`, and each keyed area is one JSON file under
//! `state_dir/areas/`. Files changed by the `dockgate user` commands are
//! picked up without a reload.

use super::store::{check_area, RepoOverride, Secrets, StateStore, StoreError};
use crate::admin::repositories;
use crate::policy::auth::keys::{self, ApiKeys};
use crate::policy::auth::token::{self, Keyring};
use crate::policy::auth::watched::Watched;
use crate::policy::auth::write_private;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One keyed area's file: key → value and when it expires (unix seconds).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Area(BTreeMap<String, Entry>);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires: Option<u64>,
}

impl Entry {
    fn live(&self, now: u64) -> bool {
        self.expires.is_none_or(|e| e > now)
    }
}

fn parse_area(text: &str) -> Result<Area, serde_json::Error> {
    serde_json::from_str(text)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub struct FileStore {
    config: PathBuf,
    /// None without `[auth]`: nothing to keep but repository settings.
    state_dir: Option<PathBuf>,
    generations: Option<Watched<BTreeMap<String, u64>>>,
    secrets: Arc<Secrets>,
    areas: Mutex<HashMap<String, Arc<Watched<Area, serde_json::Error>>>>,
    /// Serialises this process's writes to area files.
    writes: Arc<Mutex<()>>,
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

impl FileStore {
    /// Loads (or creates, 0600) the secrets in `state_dir`. Blocking.
    pub fn open(config: &Path, state_dir: Option<&Path>) -> Result<Self, StoreError> {
        let (generations, secrets) = match state_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| io(format!("{}: {e}", dir.display())))?;
                let gens = Watched::open(dir.join(keys::GENERATIONS_FILE), keys::parse_generations)
                    .map_err(io)?;
                let secrets = Secrets {
                    api_keys: ApiKeys::new(&keys::load_or_create_secret(dir).map_err(io)?),
                    tokens: Keyring::new(&[token::load_or_create(dir).map_err(io)?])
                        .map_err(|e| io(format!("{}: {e}", dir.join(token::KEY_FILE).display())))?,
                };
                (Some(gens), secrets)
            }
            // Never used without [auth]; kept in memory only.
            None => {
                let mut secret = [0u8; 32];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
                    .map_err(|_| io("no system randomness"))?;
                let secrets = Secrets {
                    api_keys: ApiKeys::new(&secret),
                    tokens: Keyring::new(&[token::generate_pkcs8().map_err(io)?]).map_err(io)?,
                };
                (None, secrets)
            }
        };
        Ok(Self {
            config: config.to_path_buf(),
            state_dir: state_dir.map(Path::to_path_buf),
            generations,
            secrets: Arc::new(secrets),
            areas: Mutex::new(HashMap::new()),
            writes: Arc::default(),
        })
    }

    /// What `[auth] state_dir` holds, read only (nothing is created): for
    /// the first instance of a new cluster to publish.
    pub fn seed(dir: &Path) -> super::etcd::Seed {
        let api_secret = std::fs::read_to_string(dir.join(keys::SECRET_FILE))
            .ok()
            .and_then(|t| super::etcd::mirror::unb64(&t));
        let token_key = dir
            .join(token::KEY_FILE)
            .exists()
            .then(|| token::load_or_create(dir).ok())
            .flatten();
        let generations = std::fs::read_to_string(dir.join(keys::GENERATIONS_FILE))
            .ok()
            .and_then(|t| keys::parse_generations(&t).ok())
            .unwrap_or_default();
        super::etcd::Seed {
            api_secret,
            token_key,
            generations,
        }
    }

    fn state_dir(&self) -> Result<&Path, StoreError> {
        self.state_dir
            .as_deref()
            .ok_or_else(|| StoreError::Invalid("runtime state needs [auth] state_dir".into()))
    }

    fn area_path(&self, area: &str) -> Result<PathBuf, StoreError> {
        check_area(area)?;
        Ok(self.state_dir()?.join("areas").join(format!("{area}.json")))
    }

    fn area(&self, area: &str) -> Option<Arc<Area>> {
        let path = self.area_path(area).ok()?;
        let mut m = self.areas.lock().ok()?;
        let w = match m.get(area) {
            Some(w) => w.clone(),
            None => {
                let w = Arc::new(Watched::open(path, parse_area).ok()?);
                m.insert(area.to_string(), w.clone());
                w
            }
        };
        drop(m);
        Some(w.get())
    }

    /// Read-modify-write of one area file, off the async threads.
    async fn edit_area<R: Send + 'static>(
        &self,
        area: &str,
        f: impl FnOnce(&mut Area) -> R + Send + 'static,
    ) -> Result<R, StoreError> {
        let path = self.area_path(area)?;
        let lock = self.writes.clone();
        blocking(move || {
            let _g = lock.lock().map_err(|_| io("lock poisoned"))?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| io(format!("{}: {e}", dir.display())))?;
            }
            let mut a = match std::fs::read_to_string(&path) {
                Ok(t) => parse_area(&t).map_err(|e| io(format!("{}: {e}", path.display())))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Area::default(),
                Err(e) => return Err(io(format!("{}: {e}", path.display()))),
            };
            let now = unix_now();
            a.0.retain(|_, e| e.live(now));
            let r = f(&mut a);
            let text = serde_json::to_string_pretty(&a).map_err(io)?;
            write_private(&path, text.as_bytes()).map_err(io)?;
            Ok(r)
        })
        .await
    }
}

/// Runs file work on the blocking pool.
async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, StoreError> + Send + 'static,
) -> Result<R, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io(format!("state task failed: {e}")))?
}

/// Edits the config file in place (comments kept), checks the result would
/// serve, then renames it over the original.
fn edit_config(path: &Path, key: &str, edits: &[(String, bool)]) -> Result<(), StoreError> {
    let text = std::fs::read_to_string(path).map_err(|e| io(format!("{}: {e}", path.display())))?;
    let edits: Vec<(&str, bool)> = edits.iter().map(|(f, v)| (f.as_str(), *v)).collect();
    let new_text =
        repositories::apply(&text, key, &edits).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let staged = repositories::stage(path, &new_text).map_err(io)?;
    if let Err(e) = super::prepare(&staged, super::Mode::Serve) {
        let _ = std::fs::remove_file(&staged);
        return Err(StoreError::Invalid(e.to_string()));
    }
    repositories::commit(&staged, path).map_err(io)
}

#[async_trait]
impl StateStore for FileStore {
    fn kind(&self) -> &'static str {
        "file"
    }

    fn repo_overrides(&self) -> BTreeMap<String, RepoOverride> {
        BTreeMap::new()
    }

    async fn set_repository(&self, key: &str, edits: &[(&str, bool)]) -> Result<(), StoreError> {
        let path = self.config.clone();
        let key = key.to_string();
        let edits: Vec<(String, bool)> = edits.iter().map(|(f, v)| (f.to_string(), *v)).collect();
        blocking(move || edit_config(&path, &key, &edits)).await
    }

    fn generation(&self, user: &str) -> u64 {
        self.generations
            .as_ref()
            .and_then(|g| g.get().get(user).copied())
            .unwrap_or(0)
    }

    async fn revoke_keys(&self, user: &str) -> Result<u64, StoreError> {
        let dir = self.state_dir()?.to_path_buf();
        let user = user.to_string();
        blocking(move || keys::revoke(&dir, &user).map_err(io)).await
    }

    fn secrets(&self) -> Arc<Secrets> {
        self.secrets.clone()
    }

    fn get(&self, area: &str, key: &str) -> Option<String> {
        let now = unix_now();
        self.area(area)?
            .0
            .get(key)
            .filter(|e| e.live(now))
            .map(|e| e.value.clone())
    }

    fn list(&self, area: &str) -> Vec<(String, String)> {
        let now = unix_now();
        self.area(area)
            .map(|a| {
                a.0.iter()
                    .filter(|(_, e)| e.live(now))
                    .map(|(k, e)| (k.clone(), e.value.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn put(
        &self,
        area: &str,
        key: &str,
        value: &str,
        ttl: Option<Duration>,
    ) -> Result<(), StoreError> {
        let entry = Entry {
            value: value.to_string(),
            expires: ttl.map(|t| unix_now() + t.as_secs().max(1)),
        };
        let key = key.to_string();
        self.edit_area(area, move |a| {
            a.0.insert(key, entry);
        })
        .await
    }

    async fn delete(&self, area: &str, key: &str) -> Result<bool, StoreError> {
        let key = key.to_string();
        self.edit_area(area, move |a| a.0.remove(&key).is_some())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn areas_round_trip_and_expire() {
        let dir = std::env::temp_dir().join(format!("dockgate-filestore-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = FileStore::open(Path::new("/nonexistent.toml"), Some(&dir)).unwrap();
        assert_eq!(s.get("sso-users", "alice"), None);
        s.put("sso-users", "alice", "{\"email\":\"a@x\"}", None)
            .await
            .unwrap();
        s.put("sessions", "s1", "x", Some(Duration::from_secs(3600)))
            .await
            .unwrap();
        assert_eq!(
            s.get("sso-users", "alice").as_deref(),
            Some("{\"email\":\"a@x\"}")
        );
        // another instance on the same files agrees
        let other = FileStore::open(Path::new("/nonexistent.toml"), Some(&dir)).unwrap();
        assert_eq!(other.list("sessions"), vec![("s1".into(), "x".into())]);
        assert!(s.delete("sso-users", "alice").await.unwrap());
        assert!(!s.delete("sso-users", "alice").await.unwrap());
        assert!(s.put("../etc", "k", "v", None).await.is_err());
        // generations and secrets are the ones `dockgate user` sees
        assert_eq!(s.generation("bob"), 0);
        assert_eq!(s.revoke_keys("bob").await.unwrap(), 1);
        assert_eq!(other.generation("bob"), 1);
        let k = s.secrets().api_keys.key_for("bob", 1);
        assert!(other.secrets().api_keys.verify("bob", 1, &k));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
