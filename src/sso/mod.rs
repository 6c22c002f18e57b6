//! Single sign-on: users who sign in through an OpenID Connect provider or
//! GitHub (Enterprise), created on first sign-in, with the provider's groups
//! mapped to dockgate groups; the browser page with their CLI secret; the
//! device flow `dockgate login` drives; the membership re-check at token
//! refresh; and CI workload tokens. The endpoints are plain functions of
//! request facts (`handlers`); `proxy/` only hands requests over.

pub mod cli;
pub mod github;
pub mod handlers;
pub mod helper;
pub mod http;
pub mod identity;
pub mod jwt;
pub mod oidc;
pub mod pages;
pub mod seal;
pub mod store;
pub mod workload;

use crate::config::{Auth, ProviderKind, SsoProvider};
use crate::policy::auth::memberships::Memberships;
use crate::state::StateStore;
use identity::{Admission, Identity};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use store::SsoUser;

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{0}")]
    Http(#[from] http::HttpError),
    #[error("ID token refused: {0}")]
    Token(#[from] jwt::JwtError),
    #[error("provider misconfigured: {0}")]
    Misconfigured(String),
    #[error("unexpected answer: {0}")]
    BadAnswer(String),
    #[error("the provider offers no device flow")]
    NoDeviceFlow,
    #[error("authorization_pending")]
    Pending,
    #[error("slow_down")]
    SlowDown,
}

impl ProviderError {
    /// The provider answered and said no (as opposed to being unreachable).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            ProviderError::Http(http::HttpError::Status {
                status: 400..=499,
                ..
            }) | ProviderError::Token(_)
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    #[error("auth.sso.{0}: client_secret_file: {1}")]
    Secret(String, String),
    #[error("{0}")]
    Store(#[from] crate::state::StoreError),
    #[error("{0}")]
    Workload(#[from] workload::WorkloadError),
    #[error("no provider {0:?}")]
    NoProvider(String),
    /// `identity::admit` said no; the reason is shown to the user.
    #[error("{0}")]
    Refused(String),
    #[error("provider {0:?} is no longer configured")]
    ProviderGone(String),
    #[error("the sign-in is older than max_key_age: sign in again")]
    TooOld,
}

pub enum Protocol {
    Oidc(Box<oidc::Oidc>),
    Github(github::Github),
}

pub struct Provider {
    pub cfg: SsoProvider,
    pub protocol: Protocol,
}

/// States of finished sign-ins remembered against replay of a callback.
const USED_STATES: usize = 4096;

pub struct Sso {
    pub providers: BTreeMap<String, Provider>,
    pub workloads: workload::Workloads,
    pub store: Arc<dyn StateStore>,
    pub memberships: Memberships,
    pub sealer: seal::Sealer,
    pub client: reqwest::Client,
    used: Mutex<VecDeque<String>>,
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn read_secret(p: &SsoProvider) -> Result<Option<String>, SsoError> {
    let Some(path) = &p.client_secret_file else {
        return Ok(None);
    };
    std::fs::read_to_string(path)
        .map(|s| Some(s.trim().to_string()))
        .map_err(|e| SsoError::Secret(p.name.clone(), format!("{}: {e}", path.display())))
}

impl Sso {
    /// Reads client secrets and JWKS files (blocking); users come from the
    /// runtime-state store.
    pub fn open(cfg: &Auth, store: Arc<dyn StateStore>) -> Result<Self, SsoError> {
        let mut providers = BTreeMap::new();
        for p in &cfg.sso {
            let secret = read_secret(p)?;
            let protocol = match &p.kind {
                ProviderKind::Oidc {
                    issuer,
                    scopes,
                    groups_claim,
                } => Protocol::Oidc(Box::new(oidc::Oidc::new(
                    issuer.clone(),
                    p.client_id.clone(),
                    secret,
                    scopes.clone(),
                    groups_claim.clone(),
                ))),
                ProviderKind::Github { base_url, api_url } => Protocol::Github(github::Github {
                    base_url: base_url.clone(),
                    api_url: api_url.clone(),
                    client_id: p.client_id.clone(),
                    secret,
                }),
            };
            providers.insert(
                p.name.clone(),
                Provider {
                    cfg: p.clone(),
                    protocol,
                },
            );
        }
        let memberships = cfg.memberships.clone();
        for (name, u) in store::all(&*store) {
            memberships.set(&name, u.groups);
        }
        // Derived from the API-key secret, so every instance sharing the
        // store agrees; no user name contains a NUL.
        let seal_key = store.secrets().api_keys.key_for("\0dockgate-sso-seal", 0);
        Ok(Self {
            providers,
            workloads: workload::Workloads::open(&cfg.workloads)?,
            store,
            memberships,
            sealer: seal::Sealer::new(seal_key.as_bytes()),
            client: http::client(),
            used: Mutex::new(VecDeque::new()),
        })
    }

    /// False when `state` finished a sign-in before (a replayed callback).
    pub fn first_use(&self, state: &str) -> bool {
        let Ok(mut used) = self.used.lock() else {
            return false;
        };
        if used.iter().any(|s| s == state) {
            return false;
        }
        if used.len() >= USED_STATES {
            used.pop_front();
        }
        used.push_back(state.to_string());
        true
    }

    /// An SSO-made user whose sign-in is younger than its provider's
    /// `max_key_age` (their API key and refresh tokens work meanwhile).
    pub fn knows(&self, user: &str, now: u64) -> bool {
        store::get(&*self.store, user).is_some_and(|u| {
            !u.linked
                && self
                    .providers
                    .get(&u.provider)
                    .is_some_and(|p| now.saturating_sub(u.signed_in) <= p.cfg.max_key_age.as_secs())
        })
    }

    /// Admits a verified sign-in: creates, updates or links the user and
    /// sets their groups.
    pub async fn admit(
        &self,
        provider: &str,
        id: &Identity,
        in_htpasswd: bool,
        now: u64,
    ) -> Result<String, SsoError> {
        let p = self
            .providers
            .get(provider)
            .ok_or_else(|| SsoError::NoProvider(provider.to_string()))?;
        let existing = store::get(&*self.store, &id.name);
        let linked = match identity::admit(&p.cfg, id, existing.as_ref(), in_htpasswd) {
            Admission::Refuse(why) => return Err(SsoError::Refused(why)),
            Admission::Create => false,
            Admission::Link => true,
            Admission::Update => existing.as_ref().is_some_and(|u| u.linked),
        };
        let groups = identity::map_groups(&p.cfg.groups, &id.groups);
        let user = SsoUser {
            provider: provider.to_string(),
            subject: id.subject.clone(),
            email: id.email.clone(),
            groups: groups.clone(),
            created: existing.as_ref().map(|u| u.created).unwrap_or(now),
            signed_in: now,
            checked: now,
            credential: id.credential.clone(),
            linked,
        };
        store::put(&*self.store, &id.name, &user).await?;
        self.memberships.set(&id.name, groups);
        Ok(id.name.clone())
    }

    /// At every token request of an SSO user: refuse past `max_key_age`,
    /// and ask the provider about membership when `recheck` has passed. A
    /// provider that refuses (user gone, grant revoked) leaves no groups;
    /// one that cannot be reached leaves them as they were until next time.
    pub async fn on_token(&self, user: &str) -> Result<(), SsoError> {
        let Some(mut u) = store::get(&*self.store, user) else {
            return Ok(());
        };
        // Another instance may have re-checked or signed the user in.
        self.memberships.set(user, u.groups.clone());
        let Some(p) = self.providers.get(&u.provider) else {
            return Err(SsoError::ProviderGone(u.provider.clone()));
        };
        let t = now();
        if !u.linked && t.saturating_sub(u.signed_in) > p.cfg.max_key_age.as_secs() {
            return Err(SsoError::TooOld);
        }
        if t.saturating_sub(u.checked) < p.cfg.recheck.as_secs() {
            return Ok(());
        }
        let Some(cred) = u.credential.clone() else {
            return Ok(());
        };
        let fresh = match &p.protocol {
            Protocol::Oidc(o) => o.recheck(&self.client, &cred).await,
            Protocol::Github(g) => g.identity(&self.client, cred).await,
        };
        match fresh {
            Ok(id) if id.subject == u.subject => {
                u.groups = identity::map_groups(&p.cfg.groups, &id.groups);
                u.credential = id.credential;
            }
            Ok(_) => u.groups = BTreeSet::new(),
            Err(e) if e.is_refusal() => {
                tracing::info!(user, provider = %u.provider, reason = %e, "provider no longer vouches for the user: groups dropped");
                u.groups = BTreeSet::new();
                u.credential = None;
            }
            Err(e) => {
                tracing::warn!(user, provider = %u.provider, error = %e, "membership re-check failed; groups kept until the next try");
                return Ok(());
            }
        }
        u.checked = t;
        self.memberships.set(user, u.groups.clone());
        Ok(store::put(&*self.store, user, &u).await?)
    }

    /// `dockgate check`: every OIDC provider's discovery must answer.
    pub async fn check_discovery(cfg: &Auth) -> Vec<String> {
        let c = http::client();
        let mut out = Vec::new();
        for p in &cfg.sso {
            if let ProviderKind::Oidc { issuer, .. } = &p.kind {
                let o = oidc::Oidc::new(
                    issuer.clone(),
                    p.client_id.clone(),
                    None,
                    vec![],
                    String::new(),
                );
                if let Err(e) = o.metadata(&c).await {
                    out.push(format!("auth.sso.{}.issuer: discovery failed: {e}", p.name));
                }
            }
        }
        out
    }
}
