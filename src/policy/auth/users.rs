//! Users from an htpasswd file (bcrypt `$2y$`/`$2b$`/`$2a$`, or argon2
//! PHC strings). Successful checks are cached briefly by a hash of the
//! password, so a push of many layers does not pay bcrypt per request; the
//! cache lives in the process's shared state and survives a reload.

use super::watched::Watched;
use super::AuthError;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CACHE_TTL: Duration = Duration::from_secs(300);
const CACHE_MAX: usize = 10_000;

/// (user, sha256(password)) → (when checked, the hash it matched).
type VerifiedCache = HashMap<(String, [u8; 32]), (Instant, String)>;

/// Recently verified passwords, and a hash to spend time on for unknown
/// users. An entry holds only while the user's hash is unchanged.
pub struct PasswordCache {
    entries: Mutex<VerifiedCache>,
    dummy: String,
}

impl PasswordCache {
    /// Slow (one bcrypt hash): made once per process.
    pub fn new() -> Result<Self, AuthError> {
        let dummy = bcrypt::hash("dockgate-timing", bcrypt::DEFAULT_COST)?;
        Ok(Self {
            entries: Mutex::new(HashMap::new()),
            dummy,
        })
    }
}

pub struct Users {
    file: Watched<BTreeMap<String, String>>,
    cache: Arc<PasswordCache>,
}

/// `user:hash` lines; `#` comments and blank lines are skipped.
pub fn parse_htpasswd(text: &str) -> Result<BTreeMap<String, String>, AuthError> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, hash)) = line.split_once(':') else {
            return Err(AuthError::HtpasswdLine { line: i + 1 });
        };
        if user.is_empty() || !(hash.starts_with("$2") || hash.starts_with("$argon2")) {
            return Err(AuthError::HtpasswdHash {
                line: i + 1,
                user: user.to_string(),
            });
        }
        out.insert(user.to_string(), hash.to_string());
    }
    Ok(out)
}

/// Checks a password against one stored hash.
pub fn verify_hash(password: &str, hash: &str) -> bool {
    if hash.starts_with("$argon2") {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        return PasswordHash::new(hash)
            .map(|h| {
                argon2::Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false);
    }
    bcrypt::verify(password, hash).unwrap_or(false)
}

fn digest(s: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl Users {
    pub fn open(path: PathBuf, cache: Arc<PasswordCache>) -> Result<Self, AuthError> {
        Ok(Self {
            file: Watched::open(path, parse_htpasswd)?,
            cache,
        })
    }

    /// Parses the file once, for `dockgate check`.
    pub fn check(path: PathBuf) -> Result<(), AuthError> {
        Watched::open(path, parse_htpasswd).map(|_| ())
    }

    pub fn exists(&self, user: &str) -> bool {
        self.file.get().contains_key(user)
    }

    /// Slow (bcrypt): call from a blocking task.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let users = self.file.get();
        let Some(hash) = users.get(user) else {
            // Spend the same time on unknown users as on known ones.
            let _ = bcrypt::verify(password, &self.cache.dummy);
            return false;
        };
        let key = (user.to_string(), digest(password));
        if let Ok(c) = self.cache.entries.lock() {
            if let Some((at, h)) = c.get(&key) {
                if at.elapsed() < CACHE_TTL && h == hash {
                    return true;
                }
            }
        }
        let ok = verify_hash(password, hash);
        if ok {
            if let Ok(mut c) = self.cache.entries.lock() {
                if c.len() >= CACHE_MAX {
                    c.clear();
                }
                c.insert(key, (Instant::now(), hash.clone()));
            }
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htpasswd_and_hashes() {
        let b = bcrypt::hash("s3cret", 4).unwrap();
        let text = format!("# users\nalice:{b}\n\n");
        let m = parse_htpasswd(&text).unwrap();
        assert!(verify_hash("s3cret", &m["alice"]));
        assert!(!verify_hash("wrong", &m["alice"]));
        assert!(parse_htpasswd("bob:{SHA}abc").is_err());
        assert!(parse_htpasswd("nocolon").is_err());
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let a = argon2::Argon2::default()
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        assert!(verify_hash("pw", &a));
        assert!(!verify_hash("px", &a));
    }
}
