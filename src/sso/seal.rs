//! Values the gateway hands out and must get back unaltered: cookies (the
//! login in progress, the session), device-flow handles, one-time CLI codes.
//! JSON + expiry, HMAC-SHA256 over a purpose label, base64url; nothing is
//! stored server-side, so any gateway with the same secret accepts them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::hmac;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("malformed")]
    Malformed,
    #[error("signature does not verify")]
    Forged,
    #[error("expired")]
    Expired,
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    exp: u64,
    v: T,
}

pub struct Sealer {
    key: hmac::Key,
}

impl Sealer {
    /// `secret` is the state dir's API-key secret; the key is derived from
    /// it so a cookie can never double as an API key.
    pub fn new(secret: &[u8]) -> Self {
        let base = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let derived = hmac::sign(&base, b"dockgate sso seal v1");
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
        }
    }

    fn tag(&self, purpose: &str, body: &str) -> hmac::Tag {
        hmac::sign(&self.key, format!("{purpose}\0{body}").as_bytes())
    }

    pub fn seal<T: Serialize>(&self, purpose: &str, v: &T, now: u64, ttl: u64) -> String {
        let json = serde_json::to_vec(&Envelope { exp: now + ttl, v }).unwrap_or_default();
        let body = B64.encode(json);
        let tag = self.tag(purpose, &body);
        format!("{body}.{}", B64.encode(tag.as_ref()))
    }

    pub fn open<T: DeserializeOwned>(
        &self,
        purpose: &str,
        sealed: &str,
        now: u64,
    ) -> Result<T, SealError> {
        let (body, tag) = sealed.split_once('.').ok_or(SealError::Malformed)?;
        let tag = B64.decode(tag).map_err(|_| SealError::Malformed)?;
        hmac::verify(&self.key, format!("{purpose}\0{body}").as_bytes(), &tag)
            .map_err(|_| SealError::Forged)?;
        let raw = B64.decode(body).map_err(|_| SealError::Malformed)?;
        let env: Envelope<T> = serde_json::from_slice(&raw).map_err(|_| SealError::Malformed)?;
        if env.exp < now {
            return Err(SealError::Expired);
        }
        Ok(env.v)
    }
}

/// 32 random bytes, base64url: state, nonce, PKCE verifier.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    B64.encode(b)
}

/// The PKCE S256 challenge of a verifier (RFC 7636).
pub fn pkce_challenge(verifier: &str) -> String {
    B64.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()).as_ref())
}

/// Equal strings, in time independent of where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_refuse() {
        let s = Sealer::new(b"secret");
        let v = s.seal("session", &"ann".to_string(), 100, 60);
        assert_eq!(s.open::<String>("session", &v, 150), Ok("ann".into()));
        assert_eq!(
            s.open::<String>("session", &v, 161),
            Err(SealError::Expired)
        );
        assert_eq!(s.open::<String>("login", &v, 150), Err(SealError::Forged));
        assert_eq!(
            Sealer::new(b"other").open::<String>("session", &v, 150),
            Err(SealError::Forged)
        );
        let forged = format!("{}x", v);
        assert!(s.open::<String>("session", &forged, 150).is_err());
        assert_eq!(
            s.open::<String>("session", "nodot", 150),
            Err(SealError::Malformed)
        );
    }

    #[test]
    fn pkce_is_s256_base64url() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mJ0kNIPDBF3M3WQ2ah4bfsxugGYqf0"),
            "0wmNDIrG5C4ZqCozyIJYfhK4iFdV-pWGIuMVTJF-XE4"
        );
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("ab", "abc"));
        assert_ne!(random_token(), random_token());
    }
}
