//! API keys: `base64(user:<key>)` credentials that work wherever the
//! password does, and that `dockgate user revoke-keys` invalidates.
//! A key is an HMAC of the user name and a per-user generation under a
//! secret kept in the state dir, so nothing per key is stored; revoking
//! bumps the generation (which also voids that user's refresh tokens).

use super::{write_private, AuthError};
use base64::Engine;
use ring::hmac;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const SECRET_FILE: &str = "api-key.secret";
pub const GENERATIONS_FILE: &str = "api-key-generations.json";
const PREFIX: &str = "dgk_";

/// The HMAC behind every API key; generations come from the state store.
pub struct ApiKeys {
    key: hmac::Key,
}

/// The generations file: user → generation.
pub fn parse_generations(text: &str) -> Result<BTreeMap<String, u64>, AuthError> {
    Ok(serde_json::from_str(text)?)
}

/// Reads the secret, creating it (0600) on first use.
pub fn load_or_create_secret(dir: &Path) -> Result<Vec<u8>, AuthError> {
    let path = dir.join(SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| AuthError::from(e).in_file(&path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = vec![0u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
                .map_err(|_| AuthError::NoRandomness)?;
            write_private(
                &path,
                base64::engine::general_purpose::STANDARD
                    .encode(&secret)
                    .as_bytes(),
            )?;
            Ok(secret)
        }
        Err(source) => Err(AuthError::Read { path, source }),
    }
}

impl ApiKeys {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// The user's key at generation `gen`.
    pub fn key_for(&self, user: &str, gen: u64) -> String {
        let tag = hmac::sign(&self.key, format!("{user}\0{gen}").as_bytes());
        format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    }

    /// Constant-time check of a presented key.
    pub fn verify(&self, user: &str, gen: u64, presented: &str) -> bool {
        let Some(b64) = presented.strip_prefix(PREFIX) else {
            return false;
        };
        let Ok(tag) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(b64) else {
            return false;
        };
        let msg = format!("{user}\0{gen}");
        hmac::verify(&self.key, msg.as_bytes(), &tag).is_ok()
    }
}

/// Bumps a user's generation: their API key and refresh tokens stop working.
pub fn revoke(dir: &Path, user: &str) -> Result<u64, AuthError> {
    let path: PathBuf = dir.join(GENERATIONS_FILE);
    super::secret_file::may_replace(&path)?;
    let mut map = match std::fs::read_to_string(&path) {
        Ok(t) => parse_generations(&t).map_err(|e| e.in_file(&path))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(source) => return Err(AuthError::Read { path, source }),
    };
    let g = map.entry(user.to_string()).or_insert(0);
    *g += 1;
    let g = *g;
    let text = serde_json::to_string_pretty(&map)?;
    write_private(&path, text.as_bytes())?;
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_verify_until_revoked() {
        let dir = std::env::temp_dir().join(format!("dockgate-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let k = ApiKeys::new(&load_or_create_secret(&dir).unwrap());
        let key = k.key_for("alice", 0);
        assert!(k.verify("alice", 0, &key));
        assert!(!k.verify("bob", 0, &key));
        assert!(!k.verify("alice", 0, "dgk_nope"));
        assert!(!k.verify("alice", 0, "password"));
        // a second instance with the same state dir agrees
        let again = ApiKeys::new(&load_or_create_secret(&dir).unwrap());
        assert!(again.verify("alice", 0, &key));
        assert_eq!(revoke(&dir, "alice").unwrap(), 1);
        assert!(!k.verify("alice", 1, &key));
        assert!(k.verify("alice", 1, &k.key_for("alice", 1)));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(SECRET_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
