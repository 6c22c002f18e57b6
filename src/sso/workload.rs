//! Workload identity for CI: a JWT from a configured issuer, presented as
//! the Basic password at `/v2/token`, becomes a user with the groups its
//! first matching rule names. The access token it buys is short-lived and
//! comes without a refresh token.

use super::http;
use super::jwt::{self, JwtError};
use crate::config::{ClaimRule, JwksSource, Workload};
use jsonwebtoken::jwk::JwkSet;
use serde_json::{Map, Value};
use std::sync::RwLock;
use std::time::{Duration, Instant};

const CACHE: Duration = Duration::from_secs(600);
const KEY_REFETCH: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    #[error("no [auth.workload] issuer {0:?}")]
    UnknownIssuer(String),
    #[error("workload {workload}: {source}")]
    Token {
        workload: String,
        #[source]
        source: JwtError,
    },
    #[error("workload {0}: its keys cannot be read: {1}")]
    Keys(String, String),
    #[error("workload {0}: no rule matches the token's claims")]
    NoRule(String),
}

/// Who a workload token stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadUser {
    pub workload: String,
    pub user: String,
    pub groups: Vec<String>,
    /// Seconds the access token may live: the configured TTL, never past
    /// the workload token's own expiry.
    pub ttl: u64,
}

pub struct Verifier {
    cfg: Workload,
    keys: RwLock<Option<(JwkSet, Instant)>>,
}

pub struct Workloads {
    all: Vec<Verifier>,
}

impl Workloads {
    /// JWKS files are read now, so a bad file fails at start.
    pub fn open(cfg: &[Workload]) -> Result<Self, WorkloadError> {
        let mut all = Vec::new();
        for w in cfg {
            let keys = match &w.jwks {
                JwksSource::File(p) => {
                    let text = std::fs::read_to_string(p).map_err(|e| {
                        WorkloadError::Keys(w.name.clone(), format!("{}: {e}", p.display()))
                    })?;
                    let set: JwkSet = serde_json::from_str(&text).map_err(|e| {
                        WorkloadError::Keys(w.name.clone(), format!("{}: {e}", p.display()))
                    })?;
                    Some((set, Instant::now()))
                }
                JwksSource::Url(_) => None,
            };
            all.push(Verifier {
                cfg: w.clone(),
                keys: RwLock::new(keys),
            });
        }
        Ok(Self { all })
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    pub async fn verify(
        &self,
        c: &reqwest::Client,
        token: &str,
        now: u64,
    ) -> Result<WorkloadUser, WorkloadError> {
        let iss = jwt::peek_issuer(token).map_err(|e| WorkloadError::Token {
            workload: "?".into(),
            source: e,
        })?;
        let v = self
            .all
            .iter()
            .find(|v| v.cfg.issuer == iss.trim_end_matches('/'))
            .ok_or_else(|| WorkloadError::UnknownIssuer(iss.clone()))?;
        let name = v.cfg.name.clone();
        let keys = v.jwks(c, token).await?;
        let claims =
            jwt::verify(token, &keys, &iss, &v.cfg.audience).map_err(|e| WorkloadError::Token {
                workload: name.clone(),
                source: e,
            })?;
        let (user, groups) =
            apply_rules(&v.cfg.rules, &claims).ok_or(WorkloadError::NoRule(name.clone()))?;
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(now);
        Ok(WorkloadUser {
            workload: name,
            user,
            groups,
            ttl: v
                .cfg
                .token_ttl
                .as_secs()
                .min(exp.saturating_sub(now))
                .max(1),
        })
    }
}

impl Verifier {
    async fn jwks(&self, c: &reqwest::Client, token: &str) -> Result<JwkSet, WorkloadError> {
        let cached = self.keys.read().ok().and_then(|g| g.clone());
        let url = match &self.cfg.jwks {
            JwksSource::File(_) => {
                return cached
                    .map(|(s, _)| s)
                    .ok_or_else(|| WorkloadError::Keys(self.cfg.name.clone(), "not loaded".into()))
            }
            JwksSource::Url(u) => u,
        };
        if let Some((set, at)) = &cached {
            if at.elapsed() < CACHE && (jwt::has_key(set, token) || at.elapsed() < KEY_REFETCH) {
                return Ok(set.clone());
            }
        }
        let set: JwkSet = http::json(c.get(url))
            .await
            .map_err(|e| WorkloadError::Keys(self.cfg.name.clone(), e.to_string()))?;
        if let Ok(mut g) = self.keys.write() {
            *g = Some((set.clone(), Instant::now()));
        }
        Ok(set)
    }
}

fn claim_str(claims: &Map<String, Value>, k: &str) -> Option<String> {
    match claims.get(k)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The first rule whose claims all match: its user (with `{claim}`
/// replaced) and groups.
pub fn apply_rules(
    rules: &[ClaimRule],
    claims: &Map<String, Value>,
) -> Option<(String, Vec<String>)> {
    let rule = rules.iter().find(|r| {
        r.claims.iter().all(|(k, want)| {
            claim_str(claims, k).is_some_and(|got| match want.strip_suffix('*') {
                Some(prefix) => got.starts_with(prefix),
                None => &got == want,
            })
        })
    })?;
    let mut user = rule.user.clone();
    while let Some(start) = user.find('{') {
        let end = start + user[start..].find('}')?;
        let v = claim_str(claims, &user[start + 1..end])?;
        // Claims become part of a user name: keep to its alphabet.
        let v: String = v
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@') {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        user.replace_range(start..=end, &v);
    }
    Some((user, rule.groups.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_pick_the_first_match() {
        let rules = vec![
            ClaimRule {
                claims: [
                    ("repository".to_string(), "acme/app".to_string()),
                    ("ref".to_string(), "refs/heads/main".to_string()),
                ]
                .into(),
                user: "ci-{repository}".into(),
                groups: vec!["deployers".into()],
            },
            ClaimRule {
                claims: [("repository".to_string(), "acme/*".to_string())].into(),
                user: "ci-readers".into(),
                groups: vec!["readers".into()],
            },
        ];
        let c = |v: Value| -> Map<String, Value> { serde_json::from_value(v).unwrap() };
        assert_eq!(
            apply_rules(
                &rules,
                &c(json!({"repository": "acme/app", "ref": "refs/heads/main"}))
            ),
            Some(("ci-acme-app".into(), vec!["deployers".into()]))
        );
        assert_eq!(
            apply_rules(
                &rules,
                &c(json!({"repository": "acme/app", "ref": "refs/heads/dev"}))
            ),
            Some(("ci-readers".into(), vec!["readers".into()]))
        );
        assert_eq!(
            apply_rules(&rules, &c(json!({"repository": "evil/app"}))),
            None
        );
        let missing = vec![ClaimRule {
            claims: Default::default(),
            user: "{nope}".into(),
            groups: vec![],
        }];
        assert_eq!(apply_rules(&missing, &c(json!({}))), None);
    }
}
