//! The local copy of everything under the cluster prefix, and what the
//! keys mean. Pure: the etcd client feeds it (a whole read, then watch
//! events) and requests read from it, never from etcd.
//!
//! Keys, relative to `[cluster] prefix`:
//! - `repos/<key>`: JSON `RepoOverride`
//! - `generations/<user>`: decimal API-key generation
//! - `secrets/api-key`: base64 HMAC secret (made once, create-if-absent)
//! - `secrets/token-keys`: JSON `TokenKeys`, the signing key first
//! - `failures/<instance>/<id>`: JSON `FailureRecord`, on a lease as long
//!   as the lockout window
//! - `areas/<area>/<key>`: a keyed area's value (single sign-on)
//! - `usage/<instance>`: JSON `rate_share::Batch`, on a short lease (not
//!   kept here: the watch hands each batch to the rate limiter)

use crate::state::store::RepoOverride;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

pub const API_KEY: &str = "secrets/api-key";
pub const TOKEN_KEYS: &str = "secrets/token-keys";

pub fn repo_key(key: &str) -> String {
    format!("repos/{key}")
}

pub fn generation_key(user: &str) -> String {
    format!("generations/{user}")
}

pub fn area_key(area: &str, key: &str) -> String {
    format!("areas/{area}/{key}")
}

pub fn failure_key(instance: &str, id: &str) -> String {
    format!("failures/{instance}/{id}")
}

/// One key's value and the revision that last changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub data: Vec<u8>,
    pub mod_revision: i64,
}

/// Keys relative to the prefix → values, as of `revision`.
#[derive(Debug, Clone, Default)]
pub struct Mirror {
    pub revision: i64,
    pub kvs: BTreeMap<String, Value>,
}

/// What a batch of changes touched, so only that is rebuilt.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Touched {
    pub repos: bool,
    pub secrets: bool,
}

impl Touched {
    pub fn of(key: &str) -> Self {
        Self {
            repos: key.starts_with("repos/"),
            secrets: key.starts_with("secrets/"),
        }
    }

    pub fn or(self, o: Self) -> Self {
        Self {
            repos: self.repos || o.repos,
            secrets: self.secrets || o.secrets,
        }
    }
}

impl Mirror {
    /// `Some` value, or `None` for a deletion.
    pub fn apply(&mut self, key: String, value: Option<Value>) -> Touched {
        let t = Touched::of(&key);
        match value {
            Some(v) => {
                self.kvs.insert(key, v);
            }
            None => {
                self.kvs.remove(&key);
            }
        }
        t
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.kvs.get(key)
    }

    /// Values under `dir/` (which ends without '/'), by the rest of the key.
    pub fn under<'a>(&'a self, dir: &str) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
        let start = format!("{dir}/");
        let len = start.len();
        self.kvs
            .range(start.clone()..)
            .take_while(move |(k, _)| k.starts_with(&start))
            .map(move |(k, v)| (&k[len..], v))
    }

    pub fn overrides(&self) -> BTreeMap<String, RepoOverride> {
        self.under("repos")
            .filter_map(|(k, v)| Some((k.to_string(), parse_override(&v.data)?)))
            .collect()
    }

    pub fn generation(&self, user: &str) -> u64 {
        self.get(&generation_key(user))
            .and_then(|v| parse_generation(&v.data))
            .unwrap_or(0)
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
struct OverrideJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    block_schema1_push: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    block_schema1_pull: Option<bool>,
}

pub fn parse_override(data: &[u8]) -> Option<RepoOverride> {
    let j: OverrideJson = serde_json::from_slice(data).ok()?;
    Some(RepoOverride {
        block_schema1_push: j.block_schema1_push,
        block_schema1_pull: j.block_schema1_pull,
    })
}

pub fn encode_override(o: &RepoOverride) -> Vec<u8> {
    serde_json::to_vec(&OverrideJson {
        block_schema1_push: o.block_schema1_push,
        block_schema1_pull: o.block_schema1_pull,
    })
    .unwrap_or_default()
}

pub fn parse_generation(data: &[u8]) -> Option<u64> {
    std::str::from_utf8(data).ok()?.trim().parse().ok()
}

/// The token signing keys: `keys[0]` signs, the others only verify until
/// `retire_at` (unix seconds), when their last token has expired.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenKeys {
    pub keys: Vec<TokenKey>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenKey {
    /// PKCS#8 DER, base64.
    pub pkcs8: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_at: Option<u64>,
}

impl TokenKeys {
    pub fn parse(data: &[u8]) -> Option<Self> {
        serde_json::from_slice(data).ok()
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn first(pkcs8: &[u8]) -> Self {
        Self {
            keys: vec![TokenKey {
                pkcs8: b64(pkcs8),
                retire_at: None,
            }],
        }
    }

    /// The keys still accepted at `now`, signing key first, as DER.
    pub fn live(&self, now: u64) -> Vec<Vec<u8>> {
        self.keys
            .iter()
            .enumerate()
            .filter(|(i, k)| *i == 0 || k.retire_at.is_none_or(|t| t > now))
            .filter_map(|(_, k)| unb64(&k.pkcs8))
            .collect()
    }

    /// A rotation: `new` signs from now on; the keys it replaces verify for
    /// `keep_secs` more (the longest a token they signed lives); keys
    /// already retired are dropped.
    pub fn rotate(&self, new: &[u8], now: u64, keep_secs: u64) -> Self {
        let mut keys = vec![TokenKey {
            pkcs8: b64(new),
            retire_at: None,
        }];
        for k in &self.keys {
            let retire = k.retire_at.unwrap_or(now + keep_secs).min(now + keep_secs);
            if retire > now {
                keys.push(TokenKey {
                    pkcs8: k.pkcs8.clone(),
                    retire_at: Some(retire),
                });
            }
        }
        Self { keys }
    }

    /// The earliest retirement still ahead: when the keyring must shrink.
    pub fn next_retirement(&self, now: u64) -> Option<u64> {
        self.keys
            .iter()
            .filter_map(|k| k.retire_at)
            .filter(|t| *t > now)
            .min()
    }
}

pub fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

pub fn unb64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
}

/// A failed login on one instance, counted by all.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FailureRecord {
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
}

/// A failure record from another instance (`failures/<instance>/<id>`).
pub fn foreign_failure(key: &str, data: &[u8], me: &str) -> Option<FailureRecord> {
    let rest = key.strip_prefix("failures/")?;
    let (instance, _) = rest.split_once('/')?;
    if instance == me {
        return None;
    }
    serde_json::from_slice(data).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(data: &str, rev: i64) -> Option<Value> {
        Some(Value {
            data: data.as_bytes().to_vec(),
            mod_revision: rev,
        })
    }

    #[test]
    fn mirror_reads_what_the_keys_mean() {
        let mut m = Mirror::default();
        let t = m.apply(
            repo_key("docker-local"),
            v(r#"{"block_schema1_push":false}"#, 2),
        );
        assert_eq!(
            t,
            Touched {
                repos: true,
                secrets: false
            }
        );
        m.apply(repo_key("bad"), v("not json", 3));
        m.apply(generation_key("alice"), v("3", 4));
        m.apply(generation_key("bob"), v("x", 5));
        m.apply("reposX/other".into(), v("{}", 6));
        let o = m.overrides();
        assert_eq!(o.len(), 1, "{o:?}");
        assert_eq!(o["docker-local"].block_schema1_push, Some(false));
        assert_eq!(o["docker-local"].block_schema1_pull, None);
        assert_eq!(m.generation("alice"), 3);
        assert_eq!(m.generation("bob"), 0);
        assert_eq!(m.generation("carol"), 0);
        assert!(m.apply(API_KEY.into(), None).secrets);
        m.apply(repo_key("docker-local"), None);
        assert!(m.overrides().is_empty());
        let back = parse_override(&encode_override(&RepoOverride {
            block_schema1_push: None,
            block_schema1_pull: Some(true),
        }))
        .unwrap();
        assert_eq!(back.block_schema1_pull, Some(true));
    }

    #[test]
    fn rotation_keeps_old_keys_until_their_tokens_expire() {
        let k = TokenKeys::first(b"one");
        assert_eq!(k.live(100), vec![b"one".to_vec()]);
        let r = k.rotate(b"two", 100, 60);
        assert_eq!(r.live(100), vec![b"two".to_vec(), b"one".to_vec()]);
        assert_eq!(r.live(159), vec![b"two".to_vec(), b"one".to_vec()]);
        assert_eq!(r.live(160), vec![b"two".to_vec()]);
        assert_eq!(r.next_retirement(100), Some(160));
        // a second rotation never extends a retiring key, and drops retired ones
        let r2 = r.rotate(b"three", 130, 600);
        assert_eq!(r2.keys.len(), 3);
        assert_eq!(r2.keys[2].retire_at, Some(160));
        let r3 = r2.rotate(b"four", 200, 60);
        assert_eq!(r3.keys.len(), 3, "{r3:?}");
        assert_eq!(TokenKeys::parse(&r3.encode()), Some(r3));
    }

    #[test]
    fn failures_from_others_only() {
        let rec = br#"{"user":"ci","ip":"10.0.0.1"}"#;
        let f = foreign_failure("failures/b/123", rec, "a").unwrap();
        assert_eq!(f.user, "ci");
        assert_eq!(f.ip, Some(IpAddr::from([10, 0, 0, 1])));
        assert!(foreign_failure("failures/a/123", rec, "a").is_none());
        assert!(foreign_failure("repos/x", rec, "a").is_none());
        assert!(foreign_failure("failures/b/1", b"junk", "a").is_none());
    }

    #[test]
    fn under_lists_one_directory() {
        let mut m = Mirror::default();
        m.apply(area_key("sso-users", "alice"), v("1", 1));
        m.apply(area_key("sso-users", "bob"), v("2", 2));
        m.apply(area_key("sso-users-x", "eve"), v("3", 3));
        m.apply(area_key("sessions", "s"), v("4", 4));
        let keys: Vec<&str> = m.under("areas/sso-users").map(|(k, _)| k).collect();
        assert_eq!(keys, ["alice", "bob"]);
    }
}
