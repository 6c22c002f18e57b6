//! The endpoints dockgate answers itself, one file each: the token service,
//! `/v2/auth` and `/v1/auth`, the repository API, AQL, the catalog, the
//! ping and the passthrough realm route. Handlers take the request's facts
//! (and the small body they asked for) and return a [`Step`]; none sees a
//! pingora `Session`.

pub mod aql;
pub mod catalog;
pub mod credentials;
pub mod docker_config;
pub mod health;
pub mod ping;
pub mod realm;
pub mod repository_api;
pub mod sso;
pub mod token;

use crate::config::ListenMethod;
use crate::observe::Operation;
use crate::pipeline::Step;
use crate::rewrite::REALM_PREFIX;
use crate::state::{Shared, Snapshot};
use bytes::Bytes;
use std::net::IpAddr;
use std::sync::Arc;

/// Largest form or JSON body an own endpoint reads.
pub const SMALL_BODY: usize = 64 << 10;

/// The path a balancer's HTTP health check asks.
pub const HEALTH_PATH: &str = "/_dockgate/health";

/// An endpoint dockgate answers itself, chosen by path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Own {
    /// `/_dockgate/health` (a balancer's check).
    Health,
    /// `/_dockgate/realm/<backend>/<path>` (passthrough only).
    Realm(String),
    /// `/v2/token` (with `[auth]`).
    Token,
    /// `/v2/auth`, `/v1/auth` (with `[auth]`).
    DockerConfig,
    /// `/api/search/aql`.
    Aql,
    /// `/api/repositories/<key>`.
    RepositoryApi(String),
    /// `/login…`, `/user…`, `/logout` (with `[auth]`; see `sso::handlers`).
    Sso,
}

impl Own {
    /// Which own endpoint `path` is, if any. Token and auth paths exist
    /// only with `[auth]`; otherwise they route like any `/v2/` path.
    pub fn classify(path: &str, auth_on: bool) -> Option<Self> {
        if let Some(rest) = path.strip_prefix(REALM_PREFIX) {
            return Some(Own::Realm(rest.to_string()));
        }
        match path {
            HEALTH_PATH => return Some(Own::Health),
            "/v2/token" if auth_on => return Some(Own::Token),
            "/v2/auth" | "/v1/auth" if auth_on => return Some(Own::DockerConfig),
            "/api/search/aql" | "/artifactory/api/search/aql" => return Some(Own::Aql),
            p if auth_on && crate::sso::handlers::owns(p) => return Some(Own::Sso),
            _ => {}
        }
        path.strip_prefix("/api/repositories/")
            .or_else(|| path.strip_prefix("/artifactory/api/repositories/"))
            .map(|k| Own::RepositoryApi(k.trim_end_matches('/').to_string()))
    }

    /// Whether the handler reads a body for this method (read up to
    /// [`SMALL_BODY`] before it runs).
    pub fn takes_body(&self, method: &http::Method) -> bool {
        method == http::Method::POST
    }

    pub fn operation(&self) -> Operation {
        match self {
            Own::Realm(_) | Own::Token => Operation::Token,
            Own::DockerConfig => Operation::Auth,
            Own::Health | Own::Aql | Own::RepositoryApi(_) | Own::Sso => Operation::Other,
        }
    }
}

/// What a handler may use besides the request: the config snapshot this
/// request runs under and the shared parts (connector, metrics, realms).
pub struct Env<'a> {
    pub rt: &'a Arc<Snapshot>,
    pub shared: &'a Arc<Shared>,
}

/// The facts of one request, taken from the session once.
pub struct Request<'a> {
    pub head: &'a http::request::Parts,
    /// The `Host` (or `:authority`) the client dialed.
    pub client_host: String,
    /// The client's address as dockgate sees it.
    pub client_ip: Option<IpAddr>,
    /// This listener's method in the current config.
    pub listen: ListenMethod,
    /// The body, for endpoints that take one.
    pub body: Option<Bytes>,
}

impl Request<'_> {
    pub fn path(&self) -> &str {
        self.head.uri.path()
    }

    pub fn query(&self) -> Option<&str> {
        self.head.uri.query()
    }

    pub fn header(&self, name: http::header::HeaderName) -> Option<&str> {
        self.head.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What the pipeline records about a request for metrics and the log.
#[derive(Debug, Clone, Default)]
pub struct Notes {
    pub operation: Option<Operation>,
    /// The repository label (`-` for none).
    pub repo_label: String,
    /// The authenticated user, if any (never a credential).
    pub user: Option<String>,
    /// The user name of refused credentials.
    pub attempted_user: Option<String>,
    /// The `[auth.workload]` whose token a token request spent.
    pub workload: Option<String>,
    /// The rule that refused the request, if one did.
    pub refused: Option<crate::policy::Rule>,
}

/// Runs the handler for `own`.
pub async fn handle(own: Own, env: &Env<'_>, req: &Request<'_>, notes: &mut Notes) -> Step {
    notes.operation = Some(own.operation());
    notes.repo_label = crate::observe::metrics::NO_REPO.into();
    match own {
        Own::Health => health::handle(env, &req.head.method),
        Own::Realm(rest) => realm::handle(env, req, &rest),
        Own::Token => token::handle(env, req, notes).await,
        Own::DockerConfig => docker_config::handle(env, req, notes).await,
        Own::Aql => aql::handle(env, req, notes).await,
        Own::RepositoryApi(key) => repository_api::handle(env, req, notes, &key).await,
        Own::Sso => sso::handle(env, req, notes).await,
    }
}

#[cfg(test)]
mod tests {
    use super::Own;

    #[test]
    fn classification() {
        let cases: Vec<(&str, bool, Option<Own>)> = vec![
            ("/v2/token", true, Some(Own::Token)),
            ("/v2/token", false, None),
            ("/v2/auth", true, Some(Own::DockerConfig)),
            ("/v1/auth", true, Some(Own::DockerConfig)),
            ("/v1/auth", false, None),
            ("/api/search/aql", false, Some(Own::Aql)),
            ("/artifactory/api/search/aql", true, Some(Own::Aql)),
            (
                "/api/repositories/docker-local/",
                false,
                Some(Own::RepositoryApi("docker-local".into())),
            ),
            (
                "/artifactory/api/repositories/x",
                true,
                Some(Own::RepositoryApi("x".into())),
            ),
            (
                "/_dockgate/realm/hub/token",
                false,
                Some(Own::Realm("hub/token".into())),
            ),
            ("/v2/docker-local/app/manifests/v1", true, None),
            ("/v2/", true, None),
            ("/_dockgate/health", false, Some(Own::Health)),
            ("/_dockgate/health", true, Some(Own::Health)),
            ("/_dockgate/health/", true, None),
            ("/login", true, Some(Own::Sso)),
            ("/login/corp/callback", true, Some(Own::Sso)),
            ("/user/revoke", true, Some(Own::Sso)),
            ("/login", false, None),
        ];
        for (path, auth, want) in cases {
            assert_eq!(Own::classify(path, auth), want, "{path} auth={auth}");
        }
    }
}
