//! Authentication and authorization at the gateway: users from htpasswd,
//! API keys, Docker registry tokens, per-repository roles, and failed-login
//! throttling. With no `[auth]`, dockgate runs in passthrough mode and none
//! of this is used.

pub mod acl;
pub mod keys;
pub mod limiter;
pub mod memberships;
pub mod scope;
pub mod secret_file;
pub mod token;
pub mod users;
pub mod watched;

use crate::config::{Auth, Repository};
use crate::state::StateStore;
use acl::Action;
use base64::Engine;
use scope::Access;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What failed in authentication's files, keys and tokens.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file whose contents do not parse.
    #[error("{}: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Owner or write problems of a private file.
    #[error(transparent)]
    Write(#[from] secret_file::SecretFileError),
    #[error("line {line}: expected user:hash")]
    HtpasswdLine { line: usize },
    #[error(
        "line {line}: user {user:?}: only bcrypt (htpasswd -B) and argon2 hashes are accepted"
    )]
    HtpasswdHash { line: usize, user: String },
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Base64(#[from] base64::DecodeError),
    #[error("{0}")]
    Pem(#[from] rustls_pki_types::pem::Error),
    #[error("no system randomness")]
    NoRandomness,
    #[error("cannot generate the token signing key")]
    KeyGeneration,
    #[error("not a P-256 key: {0}")]
    NotP256(ring::error::KeyRejected),
    #[error("no token signing key")]
    NoSigningKey,
    #[error("signed by an unknown key")]
    UnknownKey,
    /// Signing or checking a token.
    #[error("{0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
    #[error("{0}")]
    Bcrypt(#[from] bcrypt::BcryptError),
    #[error("{0}")]
    Sso(#[from] crate::sso::SsoError),
    #[error("{0}")]
    Store(#[from] crate::state::StoreError),
}

impl AuthError {
    /// `path: <self>`, for what went wrong inside a file.
    pub fn in_file(self, path: &Path) -> Self {
        AuthError::Parse {
            path: path.to_path_buf(),
            source: Box::new(self),
        }
    }
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Anonymous,
    /// Basic credentials (password or API key) checked against htpasswd.
    User(String),
    /// A dockgate token: the `access` claim decides, per the token spec.
    Token {
        user: String,
        access: Vec<Access>,
    },
}

impl Principal {
    pub fn user(&self) -> Option<&str> {
        match self {
            Principal::Anonymous => None,
            Principal::User(u) | Principal::Token { user: u, .. } => {
                Some(u.as_str()).filter(|u| !u.is_empty())
            }
        }
    }
}

/// One image as authorisation sees it: the canonical (repository key,
/// image) pair, the same on every listener, and the other repositories
/// whose roles also apply to it (overlapping namespaces).
#[derive(Debug, Clone)]
pub struct Target {
    pub repo: Arc<Repository>,
    /// Empty for extension paths that name no image.
    pub image: String,
    pub also: Vec<Arc<Repository>>,
}

impl Target {
    /// The name a token's `access` carries: `<key>/<image>`.
    pub fn canonical(&self) -> String {
        if self.image.is_empty() {
            self.repo.key.clone()
        } else {
            format!("{}/{}", self.repo.key, self.image)
        }
    }
}

/// What a request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// A challenge for the scope: 401 to authenticate, or, with
    /// `insufficient_scope`, a token that lacks a scope its user's roles
    /// would grant (answered 403 with the challenge, see `proxy::auth`).
    Challenge {
        insufficient_scope: bool,
    },
    /// 403: the user lacks the role.
    Deny,
}

/// The roles decision over a target: its repository and every
/// overlapping narrower one must allow.
pub fn may_on(cfg: &Auth, t: &Target, user: Option<&str>, action: Action) -> bool {
    std::iter::once(&t.repo)
        .chain(t.also.iter())
        .all(|r| acl::may(cfg, &r.acl, user, action))
}

/// The decision table: principal × roles × token scope.
pub fn decide(cfg: &Auth, p: &Principal, t: &Target, action: Action) -> Decision {
    let roles = may_on(cfg, t, p.user(), action);
    let granted = match p {
        Principal::Token { access, .. } => scope::grants(access, &t.canonical(), action.as_str()),
        _ => roles,
    };
    match (granted, roles, p) {
        (true, _, _) => Decision::Allow,
        (false, true, Principal::Token { .. }) => Decision::Challenge {
            insufficient_scope: true,
        },
        (false, _, _) if p.user().is_none() => Decision::Challenge {
            insufficient_scope: false,
        },
        _ => Decision::Deny,
    }
}

/// Why a credential was not accepted. Messages never echo the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Malformed(&'static str),
    BadCredentials,
    /// Throttled; retry after this many seconds.
    Locked(u64),
    BadToken(String),
}

impl Failure {
    pub fn message(&self) -> String {
        match self {
            Failure::Malformed(m) => format!("malformed Authorization header: {m}"),
            Failure::BadCredentials => "invalid username or password".into(),
            Failure::Locked(secs) => {
                format!("too many failed logins; try again in {secs} s")
            }
            Failure::BadToken(why) => format!("invalid token: {why}"),
        }
    }
}

pub struct Authenticator {
    pub cfg: Auth,
    users: users::Users,
    /// Key generations, the API-key secret and the token keys.
    store: Arc<dyn StateStore>,
    limiter: Arc<limiter::Limiter>,
    /// Single sign-on and workload tokens, when configured.
    pub sso: Option<Arc<crate::sso::Sso>>,
}

/// What outlives a reload: failure counts and verified passwords.
pub struct Kept {
    pub limiter: Arc<limiter::Limiter>,
    pub passwords: Arc<users::PasswordCache>,
}

impl Kept {
    /// Slow (one bcrypt hash): once per process.
    pub fn new() -> Result<Self, AuthError> {
        Ok(Self {
            limiter: Arc::new(limiter::Limiter::new(limiter::Policy {
                max_failures: 5,
                lockout: std::time::Duration::from_secs(60),
                max_users_per_address: 20,
            })),
            passwords: Arc::new(users::PasswordCache::new()?),
        })
    }
}

/// Writes a secret file atomically, keeping the owner and mode of the file
/// it replaces (see `secret_file`).
pub fn write_private(path: &Path, data: &[u8]) -> Result<(), AuthError> {
    Ok(secret_file::write_private(path, data)?)
}

impl Authenticator {
    /// Applies `cfg`'s thresholds to the kept limiter.
    pub fn open(cfg: &Auth, kept: &Kept, store: Arc<dyn StateStore>) -> Result<Self, AuthError> {
        kept.limiter.set_policy(limiter::Policy {
            max_failures: cfg.max_failures,
            lockout: cfg.lockout,
            max_users_per_address: cfg.max_users_per_address,
        });
        let sso = if cfg.sso.is_empty() && cfg.workloads.is_empty() {
            None
        } else {
            Some(Arc::new(crate::sso::Sso::open(cfg, store.clone())?))
        };
        Ok(Self {
            users: users::Users::open(cfg.htpasswd.clone(), kept.passwords.clone())?,
            sso,
            store,
            limiter: kept.limiter.clone(),
            cfg: cfg.clone(),
        })
    }

    fn api_key_ok(&self, user: &str, pass: &str) -> bool {
        self.store
            .secrets()
            .api_keys
            .verify(user, self.store.generation(user), pass)
    }

    /// Decodes `Authorization`. Blocking (bcrypt): run off the async threads.
    pub fn authenticate(
        &self,
        header: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Result<Principal, Failure> {
        let Some(h) = header.map(str::trim) else {
            return Ok(Principal::Anonymous);
        };
        let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => {
                let (user, pass) = decode_basic(rest.trim())?;
                self.check_password(&user, &pass, ip)?;
                Ok(Principal::User(user))
            }
            "bearer" => {
                let c = self
                    .store
                    .secrets()
                    .tokens
                    .verify(rest.trim(), &self.cfg.service)
                    .map_err(|e| Failure::BadToken(e.to_string()))?;
                if c.typ.is_some() {
                    return Err(Failure::BadToken(
                        "a refresh token is not an access token".into(),
                    ));
                }
                Ok(Principal::Token {
                    user: c.sub,
                    access: c.access,
                })
            }
            _ => Err(Failure::Malformed("expected Basic or Bearer")),
        }
    }

    /// Password or API key, throttled per (user, address) and per address
    /// for credential stuffing (see `limiter`).
    pub fn check_password(
        &self,
        user: &str,
        pass: &str,
        ip: Option<IpAddr>,
    ) -> Result<(), Failure> {
        if let Err(wait) = self.limiter.check(user, ip) {
            return Err(Failure::Locked(wait.as_secs().max(1)));
        }
        let ok = (self.users.exists(user)
            && (self.api_key_ok(user, pass) || self.users.verify(user, pass)))
            || (self.sso_knows(user) && self.api_key_ok(user, pass));
        if !ok && !self.users.exists(user) {
            // Same cost for unknown users.
            let _ = self.users.verify(user, pass);
        }
        if ok {
            self.limiter.success(user, ip);
            return Ok(());
        }
        self.limiter.failure(user, ip);
        self.store.login_failed(user, ip);
        Err(Failure::BadCredentials)
    }

    pub fn decide(&self, p: &Principal, t: &Target, action: Action) -> Decision {
        decide(&self.cfg, p, t, action)
    }

    pub fn may_administer(&self, p: &Principal, repo: &Repository) -> bool {
        p.user()
            .is_some_and(|u| acl::may_administer(&self.cfg, &repo.acl, u))
    }

    /// What a token request gets: each repository scope narrowed to what
    /// the user may do, named canonically (`<key>/<image>`) so the token
    /// means the same on every listener; `resolve` maps a client name
    /// (as addressed on the listener asked) to its target.
    pub fn grant(
        &self,
        user: Option<&str>,
        scopes: &[scope::Scope],
        resolve: &dyn Fn(&str) -> Option<Target>,
    ) -> Vec<Access> {
        grant(&self.cfg, user, scopes, resolve)
    }

    pub fn issue(
        &self,
        user: Option<&str>,
        access: Vec<Access>,
    ) -> Result<(String, token::Claims), AuthError> {
        self.store.secrets().tokens.issue(
            user.unwrap_or(""),
            &self.cfg.service,
            access,
            self.cfg.token_ttl.as_secs(),
            None,
        )
    }

    pub fn issue_refresh(&self, user: &str) -> Result<String, AuthError> {
        let gen = self.store.generation(user);
        self.store
            .secrets()
            .tokens
            .issue(
                user,
                &self.cfg.service,
                Vec::new(),
                self.cfg.refresh_ttl.as_secs(),
                Some(gen),
            )
            .map(|(t, _)| t)
    }

    /// The user a refresh token stands for, while not revoked.
    pub fn check_refresh(&self, token: &str) -> Result<String, Failure> {
        let c = self
            .store
            .secrets()
            .tokens
            .verify(token, &self.cfg.service)
            .map_err(|e| Failure::BadToken(e.to_string()))?;
        if c.typ.as_deref() != Some("refresh") {
            return Err(Failure::BadToken("not a refresh token".into()));
        }
        if c.gen != Some(self.store.generation(&c.sub))
            || !(self.users.exists(&c.sub) || self.sso_knows(&c.sub))
        {
            return Err(Failure::BadToken("revoked".into()));
        }
        Ok(c.sub)
    }

    /// A user single sign-on made, whose sign-in is within `max_key_age`.
    fn sso_knows(&self, user: &str) -> bool {
        self.sso
            .as_ref()
            .is_some_and(|s| s.knows(user, crate::sso::now()))
    }

    /// In the htpasswd file.
    pub fn local_user(&self, user: &str) -> bool {
        self.users.exists(user)
    }

    /// The user's API key and refresh tokens stop working.
    pub async fn revoke_keys(&self, user: &str) -> Result<(), AuthError> {
        self.store.revoke_keys(user).await?;
        Ok(())
    }

    /// A workload's access token: its rule's groups (for this token only)
    /// and its own short lifetime.
    pub fn issue_workload(
        &self,
        w: &crate::sso::workload::WorkloadUser,
        scopes: &[scope::Scope],
        resolve: &dyn Fn(&str) -> Option<Target>,
    ) -> Result<(String, token::Claims), AuthError> {
        let mut cfg = self.cfg.clone();
        for g in &w.groups {
            cfg.groups
                .entry(g.clone())
                .or_default()
                .push(w.user.clone());
        }
        let access = grant(&cfg, Some(&w.user), scopes, resolve);
        self.store
            .secrets()
            .tokens
            .issue(&w.user, &self.cfg.service, access, w.ttl, None)
    }

    pub fn api_key(&self, user: &str) -> String {
        self.store
            .secrets()
            .api_keys
            .key_for(user, self.store.generation(user))
    }

    pub fn email(&self, user: &str) -> String {
        self.cfg.emails.get(user).cloned().unwrap_or_default()
    }
}

/// See [`Authenticator::grant`].
pub fn grant(
    cfg: &Auth,
    user: Option<&str>,
    scopes: &[scope::Scope],
    resolve: &dyn Fn(&str) -> Option<Target>,
) -> Vec<Access> {
    let mut out = Vec::new();
    for s in scopes {
        if s.kind == "registry" && s.name == "catalog" {
            // The catalog is filtered per repository when served.
            out.push(Access {
                kind: s.kind.clone(),
                name: s.name.clone(),
                actions: vec!["*".into()],
            });
            continue;
        }
        if s.kind != "repository" {
            continue;
        }
        let Some(target) = resolve(&s.name) else {
            continue;
        };
        let mut actions: Vec<String> = s
            .actions
            .iter()
            .flat_map(|a| {
                if a == "*" {
                    vec!["pull", "push", "delete"]
                } else {
                    vec![a.as_str()]
                }
            })
            .filter_map(Action::parse)
            .filter(|a| may_on(cfg, &target, user, *a))
            .map(|a| a.as_str().to_string())
            .collect();
        actions.sort();
        actions.dedup();
        out.push(Access {
            kind: "repository".into(),
            name: target.canonical(),
            actions,
        });
    }
    out
}

/// `base64(user:password)` → parts.
pub fn decode_basic(b64: &str) -> Result<(String, String), Failure> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| Failure::Malformed("Basic credentials are not base64"))?;
    let text = String::from_utf8(raw)
        .map_err(|_| Failure::Malformed("Basic credentials are not UTF-8"))?;
    let (u, p) = text
        .split_once(':')
        .ok_or(Failure::Malformed("Basic credentials lack ':'"))?;
    if u.is_empty() {
        return Err(Failure::Malformed("empty user name"));
    }
    Ok((u.to_string(), p.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_decoding() {
        let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(
            decode_basic(&enc("a:b:c")).unwrap(),
            ("a".into(), "b:c".into())
        );
        assert!(decode_basic("%%%").is_err());
        assert!(decode_basic(&enc("nocolon")).is_err());
        assert!(decode_basic(&enc(":pw")).is_err());
    }
}
