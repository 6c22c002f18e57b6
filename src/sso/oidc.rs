//! OpenID Connect: discovery, the authorization-code request (PKCE, state,
//! nonce), the code and device-code exchanges, and ID-token checks
//! (signature by the provider's JWKS, iss, aud, exp, nonce).

use super::http::{self, HttpError};
use super::identity::Identity;
use super::jwt::{self, JwtError};
use super::ProviderError;
use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// Discovery and keys are fetched again after this.
const CACHE: Duration = Duration::from_secs(3600);
/// An unknown `kid` refetches the keys at most this often.
const KEY_REFETCH: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub userinfo_endpoint: Option<String>,
    #[serde(default)]
    pub device_authorization_endpoint: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct TokenAnswer {
    #[serde(default)]
    pub id_token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<String>,
}

pub struct Oidc {
    pub issuer: String,
    pub client_id: String,
    pub secret: Option<String>,
    pub scopes: Vec<String>,
    pub groups_claim: String,
    meta: RwLock<Option<(Metadata, Instant)>>,
    keys: RwLock<Option<(JwkSet, Instant)>>,
}

impl Oidc {
    pub fn new(
        issuer: String,
        client_id: String,
        secret: Option<String>,
        scopes: Vec<String>,
        groups_claim: String,
    ) -> Self {
        Self {
            issuer,
            client_id,
            secret,
            scopes,
            groups_claim,
            meta: RwLock::new(None),
            keys: RwLock::new(None),
        }
    }

    /// The discovery document, checked to name this issuer.
    pub async fn metadata(&self, c: &reqwest::Client) -> Result<Metadata, ProviderError> {
        if let Ok(g) = self.meta.read() {
            if let Some((m, at)) = g.as_ref() {
                if at.elapsed() < CACHE {
                    return Ok(m.clone());
                }
            }
        }
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let m: Metadata = http::json(c.get(&url)).await?;
        if m.issuer.trim_end_matches('/') != self.issuer {
            return Err(ProviderError::Misconfigured(format!(
                "{url} names issuer {:?}, not {:?}",
                m.issuer, self.issuer
            )));
        }
        if let Ok(mut g) = self.meta.write() {
            *g = Some((m.clone(), Instant::now()));
        }
        Ok(m)
    }

    async fn jwks(&self, c: &reqwest::Client, token: &str) -> Result<JwkSet, ProviderError> {
        let cached = self.keys.read().ok().and_then(|g| g.clone());
        if let Some((set, at)) = &cached {
            let fresh = at.elapsed() < CACHE;
            let may_refetch = at.elapsed() >= KEY_REFETCH;
            if fresh && (jwt::has_key(set, token) || !may_refetch) {
                return Ok(set.clone());
            }
        }
        let m = self.metadata(c).await?;
        let set: JwkSet = http::json(c.get(&m.jwks_uri)).await?;
        if let Ok(mut g) = self.keys.write() {
            *g = Some((set.clone(), Instant::now()));
        }
        Ok(set)
    }

    pub async fn authorize_url(
        &self,
        c: &reqwest::Client,
        redirect_uri: &str,
        state: &str,
        nonce: &str,
        challenge: &str,
    ) -> Result<String, ProviderError> {
        let m = self.metadata(c).await?;
        let scope = self.scopes.join(" ");
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &scope)
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        // Refresh tokens (for the membership re-check) need consent.
        if self.scopes.iter().any(|s| s == "offline_access") {
            q.append_pair("prompt", "consent");
        }
        let sep = if m.authorization_endpoint.contains('?') {
            '&'
        } else {
            '?'
        };
        Ok(format!("{}{sep}{}", m.authorization_endpoint, q.finish()))
    }

    fn token_request(
        &self,
        c: &reqwest::Client,
        url: &str,
        form: &[(&str, &str)],
    ) -> reqwest::RequestBuilder {
        let mut form: Vec<(&str, &str)> = form.to_vec();
        let req = c.post(url);
        match &self.secret {
            // client_secret_basic: form-encoded id and secret (RFC 6749 2.3.1).
            Some(s) => {
                let enc =
                    |x: &str| form_urlencoded::byte_serialize(x.as_bytes()).collect::<String>();
                req.basic_auth(enc(&self.client_id), Some(enc(s)))
                    .form(&form)
            }
            None => {
                form.push(("client_id", &self.client_id));
                req.form(&form)
            }
        }
    }

    /// Authorization code → verified identity.
    pub async fn exchange(
        &self,
        c: &reqwest::Client,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
        nonce: &str,
    ) -> Result<Identity, ProviderError> {
        let m = self.metadata(c).await?;
        let t: TokenAnswer = http::json(self.token_request(
            c,
            &m.token_endpoint,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier),
            ],
        ))
        .await?;
        self.identity(c, &m, t, Some(nonce)).await
    }

    /// Checks the ID token of a token answer and reads the user from it
    /// (and userinfo when the groups claim is only there).
    async fn identity(
        &self,
        c: &reqwest::Client,
        m: &Metadata,
        t: TokenAnswer,
        nonce: Option<&str>,
    ) -> Result<Identity, ProviderError> {
        let id_token = t
            .id_token
            .as_deref()
            .ok_or_else(|| ProviderError::BadAnswer("the token answer has no id_token".into()))?;
        let keys = self.jwks(c, id_token).await?;
        let claims = jwt::verify(id_token, &keys, &self.issuer, &self.client_id)?;
        check_nonce(&claims, nonce)?;
        let mut groups = groups_of(&claims, &self.groups_claim);
        if groups.is_none() {
            if let (Some(ui), Some(at)) = (&m.userinfo_endpoint, &t.access_token) {
                let info: Map<String, Value> = http::json(c.get(ui).bearer_auth(at)).await?;
                if info.get("sub") == claims.get("sub") {
                    groups = groups_of(&info, &self.groups_claim);
                }
            }
        }
        let s = |k: &str| {
            claims
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let sub = s("sub");
        let name = Some(s("preferred_username"))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| sub.clone());
        Ok(Identity {
            subject: sub,
            name,
            email: s("email"),
            groups: groups.unwrap_or_default(),
            credential: t.refresh_token,
        })
    }

    /// RFC 8628 device authorization, when the provider offers it.
    pub async fn device_start(&self, c: &reqwest::Client) -> Result<Value, ProviderError> {
        let m = self.metadata(c).await?;
        let url = m
            .device_authorization_endpoint
            .ok_or(ProviderError::NoDeviceFlow)?;
        let scope = self.scopes.join(" ");
        Ok(http::json(self.token_request(c, &url, &[("scope", &scope)])).await?)
    }

    pub async fn device_poll(
        &self,
        c: &reqwest::Client,
        device_code: &str,
    ) -> Result<Identity, ProviderError> {
        let m = self.metadata(c).await?;
        let t: TokenAnswer = http::json(self.token_request(
            c,
            &m.token_endpoint,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", device_code),
            ],
        ))
        .await
        .map_err(pending)?;
        self.identity(c, &m, t, None).await
    }

    /// The membership re-check: the provider refresh token for a fresh ID
    /// token. `Refused` when the provider no longer honours it.
    pub async fn recheck(
        &self,
        c: &reqwest::Client,
        refresh_token: &str,
    ) -> Result<Identity, ProviderError> {
        let m = self.metadata(c).await?;
        let mut t: TokenAnswer = http::json(self.token_request(
            c,
            &m.token_endpoint,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        ))
        .await?;
        // Providers that do not rotate refresh tokens return none.
        if t.refresh_token.is_none() {
            t.refresh_token = Some(refresh_token.to_string());
        }
        self.identity(c, &m, t, None).await
    }
}

/// `authorization_pending` / `slow_down` are not failures of the flow.
pub fn pending(e: HttpError) -> ProviderError {
    match e.oauth_error() {
        Some("authorization_pending") => ProviderError::Pending,
        Some("slow_down") => ProviderError::SlowDown,
        _ => e.into(),
    }
}

fn check_nonce(claims: &Map<String, Value>, nonce: Option<&str>) -> Result<(), ProviderError> {
    let Some(want) = nonce else {
        return Ok(());
    };
    match claims.get("nonce").and_then(Value::as_str) {
        Some(got) if super::seal::same(got, want) => Ok(()),
        _ => Err(ProviderError::Token(JwtError::Invalid(
            "nonce does not match the sign-in".into(),
        ))),
    }
}

/// The groups claim: a list of strings, or one string.
pub fn groups_of(claims: &Map<String, Value>, claim: &str) -> Option<Vec<String>> {
    match claims.get(claim)? {
        Value::Array(a) => Some(
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
        ),
        Value::String(s) => Some(vec![s.clone()]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nonce_and_groups() {
        let c: Map<String, Value> =
            serde_json::from_value(json!({"nonce": "n1", "groups": ["a", "b", 3], "g1": "x"}))
                .unwrap();
        assert!(check_nonce(&c, Some("n1")).is_ok());
        assert!(check_nonce(&c, Some("n2")).is_err());
        assert!(check_nonce(&c, None).is_ok());
        assert!(check_nonce(&Map::new(), Some("n1")).is_err());
        assert_eq!(groups_of(&c, "groups"), Some(vec!["a".into(), "b".into()]));
        assert_eq!(groups_of(&c, "g1"), Some(vec!["x".into()]));
        assert_eq!(groups_of(&c, "none"), None);
    }
}
