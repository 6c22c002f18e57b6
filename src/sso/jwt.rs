//! Verifying a JWT someone else signed (an OpenID provider's ID token, a CI
//! system's workload token) against their JWKS: signature by a key in the
//! set, issuer, audience and expiry. Pure: the caller fetches the JWKS.

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// Seconds of clock skew tolerated on exp/nbf/iat.
const LEEWAY: u64 = 30;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("not a JWT")]
    Malformed,
    #[error("signed by a key not in the issuer's JWKS")]
    UnknownKey,
    #[error("algorithm {0} is not accepted")]
    Algorithm(String),
    #[error("token expired")]
    Expired,
    #[error("token is for another audience")]
    Audience,
    #[error("token is from another issuer")]
    Issuer,
    #[error("signature does not verify")]
    Signature,
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// The `iss` claim, unverified: picks which issuer's keys to try.
pub fn peek_issuer(token: &str) -> Result<String, JwtError> {
    use base64::Engine;
    let payload = token.split('.').nth(1).ok_or(JwtError::Malformed)?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| JwtError::Malformed)?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| JwtError::Malformed)?;
    v.get("iss")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or(JwtError::Malformed)
}

/// Whether the token looks like a JWT (three base64url parts, a JSON header).
pub fn looks_like_jwt(s: &str) -> bool {
    s.starts_with("eyJ") && s.split('.').count() == 3 && jsonwebtoken::decode_header(s).is_ok()
}

/// The key `kid` names, or the only signing key when the token names none.
fn key_for<'a>(set: &'a JwkSet, kid: Option<&str>) -> Option<&'a Jwk> {
    match kid {
        Some(k) => set.find(k),
        None if set.keys.len() == 1 => set.keys.first(),
        None => None,
    }
}

/// Whether `kid` is in the set (a miss may mean the issuer rotated keys).
pub fn has_key(set: &JwkSet, token: &str) -> bool {
    jsonwebtoken::decode_header(token)
        .ok()
        .is_some_and(|h| key_for(set, h.kid.as_deref()).is_some())
}

/// Verifies and returns the claims.
pub fn verify(
    token: &str,
    set: &JwkSet,
    issuer: &str,
    audience: &str,
) -> Result<Map<String, Value>, JwtError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
    // Asymmetric only: an HMAC "signature" would be keyed by public data.
    if matches!(
        header.alg,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    ) {
        return Err(JwtError::Algorithm(format!("{:?}", header.alg)));
    }
    let jwk = key_for(set, header.kid.as_deref()).ok_or(JwtError::UnknownKey)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| JwtError::Invalid(e.to_string()))?;
    let mut v = Validation::new(header.alg);
    v.leeway = LEEWAY;
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<Map<String, Value>>(token, &key, &v)
        .map(|d| d.claims)
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => JwtError::Expired,
                K::InvalidAudience => JwtError::Audience,
                K::InvalidIssuer => JwtError::Issuer,
                K::InvalidSignature => JwtError::Signature,
                K::InvalidAlgorithm => JwtError::Algorithm(format!("{:?}", header.alg)),
                other => JwtError::Invalid(format!("{other:?}")),
            }
        })
}

#[cfg(test)]
pub(crate) mod testkey {
    //! An ES256 key and its JWKS for the tests of this module and others.
    use base64::Engine;
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    pub struct TestKey {
        enc: EncodingKey,
        pub kid: String,
        pub jwks: JwkSet,
    }

    impl TestKey {
        pub fn new(kid: &str) -> Self {
            let rng = SystemRandom::new();
            let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng)
                    .unwrap();
            let pk = pair.public_key().as_ref();
            let b = |x: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(x);
            let jwks: JwkSet = serde_json::from_value(serde_json::json!({"keys": [{
                "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
                "x": b(&pk[1..33]), "y": b(&pk[33..65]),
            }]}))
            .unwrap();
            Self {
                enc: EncodingKey::from_ec_der(doc.as_ref()),
                kid: kid.into(),
                jwks,
            }
        }

        pub fn sign(&self, claims: &serde_json::Value) -> String {
            let mut h = Header::new(Algorithm::ES256);
            h.kid = Some(self.kid.clone());
            jsonwebtoken::encode(&h, claims, &self.enc).unwrap()
        }
    }

    pub fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }
}

#[cfg(test)]
mod tests {
    use super::testkey::{now, TestKey};
    use super::*;
    use serde_json::json;

    #[test]
    fn verdicts() {
        let k = TestKey::new("k1");
        let other = TestKey::new("k1");
        let good = json!({"iss": "https://idp", "aud": "dockgate", "sub": "u", "exp": now() + 60});
        let mut expired = good.clone();
        expired["exp"] = json!(now() - 3600);
        let mut wrong_aud = good.clone();
        wrong_aud["aud"] = json!("else");
        let mut wrong_iss = good.clone();
        wrong_iss["iss"] = json!("https://evil");
        let cases: Vec<(String, Result<(), JwtError>)> = vec![
            (k.sign(&good), Ok(())),
            (k.sign(&expired), Err(JwtError::Expired)),
            (k.sign(&wrong_aud), Err(JwtError::Audience)),
            (k.sign(&wrong_iss), Err(JwtError::Issuer)),
            (other.sign(&good), Err(JwtError::Signature)),
            ("eyJ.x.y".into(), Err(JwtError::Malformed)),
        ];
        for (tok, want) in cases {
            let got = verify(&tok, &k.jwks, "https://idp", "dockgate").map(|_| ());
            assert_eq!(got, want);
        }
        assert_eq!(peek_issuer(&k.sign(&good)).unwrap(), "https://idp");
        assert!(looks_like_jwt(&k.sign(&good)));
        assert!(!looks_like_jwt("dgk_abc"));
        let named_other = TestKey::new("k2");
        assert_eq!(
            verify(&named_other.sign(&good), &k.jwks, "https://idp", "dockgate").map(|_| ()),
            Err(JwtError::UnknownKey)
        );
        assert!(!has_key(&k.jwks, &named_other.sign(&good)));
    }
}
