//! Docker registry tokens: short-lived ES256 JWTs carrying the granted
//! `access` list, and long-lived refresh tokens. The signing key is made
//! on first start and kept in the state dir (with the certificates); any
//! dockgate with the same key accepts the tokens.

use super::scope::Access;
use super::{write_private, AuthError};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivatePkcs8KeyDer;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const KEY_FILE: &str = "token-signing.key";
const ISSUER: &str = "dockgate";
/// Seconds of clock skew tolerated on exp/nbf.
const LEEWAY: u64 = 5;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    #[serde(default)]
    pub access: Vec<Access>,
    /// "refresh" for refresh tokens; absent for access tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    /// The user's key generation when issued (refresh tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gen: Option<u64>,
}

pub struct Signer {
    enc: EncodingKey,
    dec: DecodingKey,
    kid: String,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn random_id() -> String {
    let mut b = [0u8; 16];
    let _ = ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A new P-256 signing key (PKCS#8 DER).
pub fn generate_pkcs8() -> Result<Vec<u8>, AuthError> {
    EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
        .map(|d| d.as_ref().to_vec())
        .map_err(|_| AuthError::KeyGeneration)
}

/// The key's PEM text, as kept in the state dir.
pub fn pkcs8_pem(pkcs8: &[u8]) -> String {
    pem("PRIVATE KEY", pkcs8)
}

/// Reads the key file in `dir`, generating it (0600) when absent.
pub fn load_or_create(dir: &Path) -> Result<Vec<u8>, AuthError> {
    let path = dir.join(KEY_FILE);
    if path.exists() {
        return PrivatePkcs8KeyDer::from_pem_file(&path)
            .map(|k| k.secret_pkcs8_der().to_vec())
            .map_err(|e| AuthError::from(e).in_file(&path));
    }
    let doc = generate_pkcs8()?;
    write_private(&path, pkcs8_pem(&doc).as_bytes())?;
    Ok(doc)
}

/// The keys tokens are checked against: the first signs, all verify (the
/// others are being retired after a rotation).
pub struct Keyring {
    signers: Vec<Signer>,
}

impl Keyring {
    /// `keys[0]` signs; PKCS#8 DER each.
    pub fn new(keys: &[Vec<u8>]) -> Result<Self, AuthError> {
        let signers = keys
            .iter()
            .map(|k| Signer::from_pkcs8(k))
            .collect::<Result<Vec<_>, _>>()?;
        if signers.is_empty() {
            return Err(AuthError::NoSigningKey);
        }
        Ok(Self { signers })
    }

    pub fn issue(
        &self,
        sub: &str,
        aud: &str,
        access: Vec<Access>,
        ttl_secs: u64,
        refresh_gen: Option<u64>,
    ) -> Result<(String, Claims), AuthError> {
        match self.signers.first() {
            Some(s) => s.issue(sub, aud, access, ttl_secs, refresh_gen),
            None => Err(AuthError::NoSigningKey),
        }
    }

    /// Verifies with the key the token names (`kid`).
    pub fn verify(&self, token: &str, aud: &str) -> Result<Claims, AuthError> {
        let kid = jsonwebtoken::decode_header(token)?.kid;
        let signer = match kid {
            Some(k) => self.signers.iter().find(|s| s.kid == k),
            None => self.signers.first(),
        }
        .ok_or(AuthError::UnknownKey)?;
        signer.verify(token, aud)
    }

    /// The signing key's id.
    pub fn current_kid(&self) -> &str {
        self.signers.first().map(|s| s.kid.as_str()).unwrap_or("")
    }
}

impl Signer {
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, AuthError> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
            .map_err(AuthError::NotP256)?;
        let public = pair.public_key().as_ref().to_vec();
        let fp = ring::digest::digest(&ring::digest::SHA256, &public);
        let kid = fp.as_ref()[..12]
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect();
        Ok(Self {
            enc: EncodingKey::from_ec_der(pkcs8),
            dec: DecodingKey::from_ec_der(&public),
            kid,
        })
    }

    /// Loads the key from `dir`, generating it (0600) when absent.
    pub fn open(dir: &Path) -> Result<Self, AuthError> {
        Self::from_pkcs8(&load_or_create(dir)?).map_err(|e| e.in_file(&dir.join(KEY_FILE)))
    }

    pub fn issue(
        &self,
        sub: &str,
        aud: &str,
        access: Vec<Access>,
        ttl_secs: u64,
        refresh_gen: Option<u64>,
    ) -> Result<(String, Claims), AuthError> {
        let t = now();
        let claims = Claims {
            iss: ISSUER.into(),
            sub: sub.into(),
            aud: aud.into(),
            exp: t + ttl_secs,
            nbf: t.saturating_sub(1),
            iat: t,
            jti: random_id(),
            access,
            typ: refresh_gen.map(|_| "refresh".to_string()),
            gen: refresh_gen,
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let jwt = jsonwebtoken::encode(&header, &claims, &self.enc)?;
        Ok((jwt, claims))
    }

    /// Verifies signature, issuer, audience, exp and nbf.
    pub fn verify(&self, token: &str, aud: &str) -> Result<Claims, AuthError> {
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&[aud]);
        v.set_issuer(&[ISSUER]);
        v.leeway = LEEWAY;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        Ok(jsonwebtoken::decode::<Claims>(token, &self.dec, &v)?.claims)
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn issue_verify_and_refuse() {
        let dir = std::env::temp_dir().join(format!("dockgate-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let s = Signer::open(&dir).unwrap();
        let access = vec![Access {
            kind: "repository".into(),
            name: "k/app".into(),
            actions: vec!["pull".into()],
        }];
        let (jwt, claims) = s
            .issue("alice", "dockgate", access.clone(), 60, None)
            .unwrap();
        assert_eq!(s.verify(&jwt, "dockgate").unwrap(), claims);
        // same key file → same verdict
        assert!(Signer::open(&dir).unwrap().verify(&jwt, "dockgate").is_ok());
        assert!(s.verify(&jwt, "other-service").is_err());
        // altered access list: signature no longer matches
        let parts: Vec<&str> = jwt.split('.').collect();
        let mut c = claims.clone();
        c.access[0].actions.push("push".into());
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(serde_json::to_vec(&c).unwrap()),
            parts[2]
        );
        assert!(s.verify(&forged, "dockgate").is_err());
        // another key
        let other = std::env::temp_dir().join(format!("dockgate-token-o-{}", std::process::id()));
        std::fs::create_dir_all(&other).unwrap();
        let (foreign, _) = Signer::open(&other)
            .unwrap()
            .issue("alice", "dockgate", access.clone(), 60, None)
            .unwrap();
        assert!(s.verify(&foreign, "dockgate").is_err());
        // expired
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(s.kid.clone());
        let mut old = claims.clone();
        old.exp = now() - 3600;
        old.nbf = now() - 7200;
        let expired = jsonwebtoken::encode(&h, &old, &s.enc).unwrap();
        assert!(s.verify(&expired, "dockgate").is_err());
        assert!(s.verify("not.a.jwt", "dockgate").is_err());
        for d in [dir, other] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }
}
