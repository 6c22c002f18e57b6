//! The gateway's side of authentication: who is asking, challenges and
//! refusals, and the endpoints dockgate answers itself: `/v2/token`,
//! `/v2/auth`, `/v1/auth` and `/api/repositories/<key>`.

use super::{respond, Ctx, Gateway};
use crate::admin;
use crate::config::{Challenge, ListenMethod};
use crate::observe::metrics::NO_REPO;
use crate::observe::Operation;
use crate::oci::{ErrorCode, RegistryError};
use crate::policy::auth::{acl::Action, scope, Decision, Failure, Principal};
use crate::rewrite::query;
use crate::route;
use crate::state::{StateError, StoreError};
use bytes::BytesMut;
use http::StatusCode;
use pingora::proxy::Session;
use pingora::Result;
use time::format_description::well_known::Rfc3339;

/// Largest form or JSON body the own endpoints read.
const SMALL_BODY: usize = 64 << 10;

const BASIC_CHALLENGE: &str = "Basic realm=\"dockgate\"";

/// 429 while throttled, otherwise 401.
fn refusal(f: &Failure) -> RegistryError {
    match f {
        Failure::Locked(_) => RegistryError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Toomanyrequests,
            f.message(),
        ),
        other => unauthorized(other.message()),
    }
}

/// The challenge, and `Retry-After` on a 429.
fn refusal_headers(f: &Failure, challenge: String) -> Vec<(&'static str, String)> {
    let mut h = vec![("WWW-Authenticate", challenge)];
    if let Failure::Locked(secs) = f {
        h.push(("Retry-After", secs.to_string()));
    }
    h
}

fn unauthorized(msg: impl Into<String>) -> RegistryError {
    RegistryError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, msg)
}

impl Gateway {
    /// Authenticates the request; bcrypt runs on a blocking thread.
    pub(super) async fn principal(&self, s: &Session, ctx: &Ctx) -> Result<Principal, Failure> {
        let Some(auth) = ctx.rt.as_ref().and_then(|r| r.auth.clone()) else {
            return Ok(Principal::Anonymous);
        };
        let header = s
            .req_header()
            .headers
            .get(http::header::AUTHORIZATION)
            .map(|v| v.to_str().map(str::to_string));
        let header = match header {
            None => return Ok(Principal::Anonymous),
            Some(Err(_)) => return Err(Failure::Malformed("not ASCII")),
            Some(Ok(h)) => h,
        };
        let ip = s.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
        if h_is_basic(&header) {
            tokio::task::spawn_blocking(move || auth.authenticate(Some(&header), ip))
                .await
                .unwrap_or(Err(Failure::Malformed("internal error")))
        } else {
            auth.authenticate(Some(&header), ip)
        }
    }

    /// `WWW-Authenticate` for this request's host, optionally for a scope.
    fn challenge(&self, ctx: &Ctx, scope: Option<&str>) -> String {
        let Some(auth) = ctx.rt.as_ref().and_then(|r| r.auth.as_ref()) else {
            return BASIC_CHALLENGE.into();
        };
        match auth.cfg.challenge {
            Challenge::Basic => BASIC_CHALLENGE.into(),
            Challenge::Bearer => {
                let mut c = format!(
                    "Bearer realm=\"https://{}/v2/token\",service=\"{}\"",
                    ctx.client_host, auth.cfg.service
                );
                if let Some(sc) = scope {
                    c.push_str(&format!(",scope=\"{sc}\""));
                }
                c
            }
        }
    }

    /// 401 (or 429 when throttled) for credentials that did not check out.
    pub(super) async fn refuse_credentials(
        &self,
        s: &mut Session,
        ctx: &mut Ctx,
        f: Failure,
    ) -> Result<bool> {
        self.shared
            .metrics
            .auth_failures
            .with_label_values(&[ctx.repo_label.as_str()])
            .inc();
        tracing::info!(repository = %ctx.repo_label, reason = %f.message(), "authentication failed");
        let e = refusal(&f);
        let h = refusal_headers(&f, self.challenge(ctx, None));
        respond::error_with(s, &e, &h).await?;
        Ok(true)
    }

    /// A refusal the client can act on. Anonymous: 401 with a challenge for
    /// the scope. A token lacking a scope its user's roles grant: 403 with
    /// a challenge carrying `error="insufficient_scope"` and the scope
    /// (RFC 6750 3.1), which makes clients fetch a wider token; oras-py
    /// only re-asks after a 403 and retries the same token after a 401.
    /// A user without the role: 403 DENIED, no challenge.
    pub(super) async fn refuse_access(
        &self,
        s: &mut Session,
        ctx: &Ctx,
        p: &Principal,
        name: &str,
        action: Action,
        decision: Decision,
    ) -> Result<bool> {
        let Decision::Challenge { insufficient_scope } = decision else {
            let e = RegistryError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Denied,
                format!(
                    "user {:?} may not {} repository {name}",
                    p.user().unwrap_or(""),
                    action.as_str()
                ),
            );
            respond::error(s, &e).await?;
            return Ok(true);
        };
        let actions: &[&str] = if action == Action::Pull {
            &["pull"]
        } else {
            &["pull", action.as_str()]
        };
        let mut ch = self.challenge(ctx, Some(&scope::format(name, actions)));
        let e = if insufficient_scope && ch.starts_with("Bearer ") {
            ch.push_str(",error=\"insufficient_scope\"");
            RegistryError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Denied,
                format!(
                    "the token does not grant {} on {name}: ask the token service for the scope in WWW-Authenticate",
                    action.as_str()
                ),
            )
        } else {
            unauthorized(format!(
                "authentication required to {} {name}",
                action.as_str()
            ))
        };
        respond::error_with(s, &e, &[("WWW-Authenticate", ch)]).await?;
        Ok(true)
    }

    /// A `GET /v2/` without credentials, when users are configured.
    pub(super) async fn challenge_ping(&self, s: &mut Session, ctx: &Ctx) -> Result<bool> {
        let e = unauthorized("authentication required");
        respond::error_with(s, &e, &[("WWW-Authenticate", self.challenge(ctx, None))]).await?;
        Ok(true)
    }

    /// Endpoints dockgate answers itself. None when `path` is not one.
    pub(super) async fn own_endpoint(
        &self,
        s: &mut Session,
        ctx: &mut Ctx,
        path: &str,
        method: &ListenMethod,
    ) -> Result<Option<bool>> {
        let auth_on = ctx.rt.as_ref().is_some_and(|r| r.auth.is_some());
        if path == "/v2/token" && auth_on {
            ctx.operation = Some(Operation::Token);
            ctx.repo_label = NO_REPO.into();
            return self.token(s, ctx, method).await.map(Some);
        }
        if (path == "/v2/auth" || path == "/v1/auth") && auth_on {
            ctx.operation = Some(Operation::Auth);
            ctx.repo_label = NO_REPO.into();
            return self.docker_config(s, ctx).await.map(Some);
        }
        if let Some(done) = self.sso_endpoint(s, ctx, path).await? {
            return Ok(Some(done));
        }
        if path == "/api/search/aql" || path == "/artifactory/api/search/aql" {
            ctx.operation = Some(Operation::Other);
            ctx.repo_label = NO_REPO.into();
            return self.aql(s, ctx).await.map(Some);
        }
        let key = path
            .strip_prefix("/api/repositories/")
            .or_else(|| path.strip_prefix("/artifactory/api/repositories/"));
        if let Some(key) = key {
            ctx.operation = Some(Operation::Other);
            ctx.repo_label = NO_REPO.into();
            return self
                .repository_api(s, ctx, key.trim_end_matches('/'))
                .await
                .map(Some);
        }
        Ok(None)
    }

    /// Reads a small body; None when it was too large and a 413 was sent.
    pub(super) async fn read_small_body(&self, s: &mut Session) -> Result<Option<Vec<u8>>> {
        let mut buf = BytesMut::new();
        while let Some(chunk) = s.read_request_body().await? {
            if buf.len() + chunk.len() > SMALL_BODY {
                let e = RegistryError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::SizeInvalid,
                    format!("body larger than {SMALL_BODY} bytes"),
                );
                respond::error(s, &e).await?;
                return Ok(None);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Some(buf.to_vec()))
    }

    /// The Docker token service (GET with Basic, or the OAuth2 POST form).
    async fn token(&self, s: &mut Session, ctx: &mut Ctx, method: &ListenMethod) -> Result<bool> {
        let Some(rt) = ctx.rt.clone() else {
            return Ok(false);
        };
        let Some(auth) = rt.auth.clone() else {
            return Ok(false);
        };
        let post = s.req_header().method == http::Method::POST;
        let mut form = query::parse(s.req_header().uri.query().unwrap_or(""));
        if post {
            let Some(body) = self.read_small_body(s).await? else {
                return Ok(true);
            };
            let text = String::from_utf8_lossy(&body).to_string();
            form.extend(query::parse(&text));
        }
        let get = |k: &str| form.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
        if let Some(svc) = get("service") {
            if svc != auth.cfg.service {
                let e = RegistryError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::Unsupported,
                    format!(
                        "unknown service {svc:?}; this token service is {:?}",
                        auth.cfg.service
                    ),
                );
                respond::error(s, &e).await?;
                return Ok(true);
            }
        }
        // Who: POST password/refresh_token grants, or the Authorization header.
        let ip = s.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
        // A CI workload token as the password (POST form or Basic).
        let password = match (post, get("grant_type").as_deref()) {
            (true, Some("password")) => get("password"),
            (false, _) => s
                .req_header()
                .headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .filter(|h| h_is_basic(h))
                .and_then(|h| crate::policy::auth::decode_basic(h[6..].trim()).ok())
                .map(|(_, p)| p),
            _ => None,
        };
        let workload = super::sso::workload(&auth, password.as_deref()).await;
        let who: Result<Option<String>, Failure> = match (post, get("grant_type").as_deref()) {
            _ if workload.is_some() => workload
                .as_ref()
                .map(|w| match w {
                    Ok(t) => Ok(t.user.clone()),
                    Err(f) => Err(f.clone()),
                })
                .unwrap_or(Ok(None)),
            (true, Some("password")) => {
                let (u, pw) = (
                    get("username").unwrap_or_default(),
                    get("password").unwrap_or_default(),
                );
                // Logged only if refused (log.rs); never the password.
                ctx.attempted_user = Some(u.clone());
                let a = auth.clone();
                let u2 = u.clone();
                tokio::task::spawn_blocking(move || a.check_password(&u2, &pw, ip))
                    .await
                    .unwrap_or(Err(Failure::Malformed("internal error")))
                    .map(|_| Some(u))
            }
            (true, Some("refresh_token")) => auth
                .check_refresh(&get("refresh_token").unwrap_or_default())
                .map(Some),
            (true, _) => Err(Failure::Malformed(
                "grant_type must be password or refresh_token",
            )),
            (false, _) => self
                .principal(s, ctx)
                .await
                .map(|p| p.user().map(str::to_string)),
        };
        let workload = workload.and_then(Result::ok).and_then(|t| t.workload);
        // Single sign-on users: key age and membership re-check.
        let who = match (who, &workload) {
            (Ok(u), None) => super::sso::recheck(&auth, u.as_deref()).await.map(|_| u),
            (other, _) => other,
        };
        let user = match who {
            Ok(u) => u,
            Err(f) => {
                self.shared
                    .metrics
                    .auth_failures
                    .with_label_values(&[NO_REPO])
                    .inc();
                let e = refusal(&f);
                let h = refusal_headers(&f, BASIC_CHALLENGE.to_string());
                respond::error_with(s, &e, &h).await?;
                return Ok(true);
            }
        };
        ctx.user = user.clone();
        let scopes: Vec<scope::Scope> = form
            .iter()
            .filter(|(k, _)| k == "scope")
            .flat_map(|(_, v)| scope::parse(v))
            .collect();
        let host = ctx.client_host.clone();
        let resolve = |name: &str| {
            route::image_of(&rt.cfg, method, Some(&host), name)
                .map(|(r, image)| route::auth_target(&rt.cfg, r, &image))
        };
        let issued = match &workload {
            None => {
                let access = auth.grant(user.as_deref(), &scopes, &resolve);
                auth.issue(user.as_deref(), access)
            }
            Some(w) => {
                ctx.workload = Some(w.workload.clone());
                auth.issue_workload(w, &scopes, &resolve)
            }
        };
        let (token, claims) = match issued {
            Ok(t) => t,
            Err(e) => {
                respond::error(
                    s,
                    &RegistryError::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Unknown, e),
                )
                .await?;
                return Ok(true);
            }
        };
        let issued = time::OffsetDateTime::from_unix_timestamp(claims.iat as i64)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_default();
        let mut body = serde_json::json!({
            "token": token,
            "access_token": token,
            "expires_in": claims.exp - claims.iat,
            "issued_at": issued,
        });
        let wants_refresh = get("offline_token").as_deref() == Some("true")
            || get("access_type").as_deref() == Some("offline")
            || get("grant_type").is_some();
        if let (Some(u), true, None) = (&user, wants_refresh, &workload) {
            if let Ok(r) = auth.issue_refresh(u) {
                body["refresh_token"] = serde_json::Value::String(r);
            }
        }
        if post {
            body["scope"] = serde_json::Value::String(
                scopes
                    .iter()
                    .map(|s| format!("{}:{}:{}", s.kind, s.name, s.actions.join(",")))
                    .collect::<Vec<_>>()
                    .join(" "),
            );
        }
        respond::json(s, 200, &[], serde_json::to_vec(&body).unwrap_or_default()).await?;
        Ok(true)
    }

    /// `/v2/auth`, `/v1/auth`: Basic credentials in, docker config out.
    async fn docker_config(&self, s: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let Some(auth) = ctx.rt.as_ref().and_then(|r| r.auth.clone()) else {
            return Ok(false);
        };
        let basic = s
            .req_header()
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(h_is_basic);
        let user = match self.principal(s, ctx).await {
            Ok(Principal::User(u)) if basic => u,
            Ok(_) => {
                let e =
                    unauthorized("Basic credentials (user and password or API key) are required");
                respond::error_with(s, &e, &[("WWW-Authenticate", BASIC_CHALLENGE.to_string())])
                    .await?;
                return Ok(true);
            }
            Err(f) => return self.refuse_credentials(s, ctx, f).await,
        };
        ctx.user = Some(user.clone());
        let config_json = s
            .req_header()
            .uri
            .query()
            .is_some_and(|q| query::first(&query::parse(q), "format") == Some("config.json"));
        let body = admin::dockercfg::entry(
            &ctx.client_host,
            &user,
            &auth.api_key(&user),
            &auth.email(&user),
            config_json,
        );
        respond::json(
            s,
            200,
            &[],
            serde_json::to_vec_pretty(&body).unwrap_or_default(),
        )
        .await?;
        Ok(true)
    }

    /// Artifactory-compatible repository settings: GET to read, POST to
    /// change `blockPushingSchema1` (repository admins only).
    async fn repository_api(&self, s: &mut Session, ctx: &mut Ctx, key: &str) -> Result<bool> {
        let Some(rt) = ctx.rt.clone() else {
            return Ok(false);
        };
        let Some(repo) = rt.cfg.repositories.get(key).cloned() else {
            respond::error(
                s,
                &RegistryError::name_unknown(format!("repository key {key:?} is not configured")),
            )
            .await?;
            return Ok(true);
        };
        ctx.repo_label = repo.key.clone();
        let principal = match self.principal(s, ctx).await {
            Ok(p) => p,
            Err(f) => return self.refuse_credentials(s, ctx, f).await,
        };
        ctx.user = principal.user().map(str::to_string);
        let m = s.req_header().method.clone();
        if m == http::Method::GET || m == http::Method::HEAD {
            if let Some(auth) = &rt.auth {
                if !crate::policy::auth::acl::may(
                    &auth.cfg,
                    &repo.acl,
                    principal.user(),
                    Action::Pull,
                ) {
                    let d = if principal.user().is_none() {
                        Decision::Challenge {
                            insufficient_scope: false,
                        }
                    } else {
                        Decision::Deny
                    };
                    return self
                        .refuse_access(s, ctx, &principal, &repo.key, Action::Pull, d)
                        .await;
                }
            }
            respond::json(
                s,
                200,
                &[],
                serde_json::to_vec_pretty(&admin::repositories::describe(&repo))
                    .unwrap_or_default(),
            )
            .await?;
            return Ok(true);
        }
        if m != http::Method::POST {
            let e = RegistryError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::Unsupported,
                "use GET or POST",
            );
            respond::error(s, &e).await?;
            return Ok(true);
        }
        let Some(auth) = rt.auth.clone() else {
            let e = unauthorized("changing repository settings needs an admin credential; configure [auth] users first");
            respond::error_with(s, &e, &[("WWW-Authenticate", BASIC_CHALLENGE.to_string())])
                .await?;
            return Ok(true);
        };
        if principal.user().is_none() {
            let e = unauthorized("an admin credential is required");
            respond::error_with(s, &e, &[("WWW-Authenticate", BASIC_CHALLENGE.to_string())])
                .await?;
            return Ok(true);
        }
        if !auth.may_administer(&principal, &repo) {
            let e = RegistryError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Denied,
                format!(
                    "user {:?} is not an admin of repository {key}",
                    principal.user().unwrap_or("")
                ),
            );
            respond::error(s, &e).await?;
            return Ok(true);
        }
        let Some(body) = self.read_small_body(s).await? else {
            return Ok(true);
        };
        let edits = match admin::repositories::edits(&repo, &body) {
            Ok(e) => e,
            Err(e) => {
                respond::error(s, &e).await?;
                return Ok(true);
            }
        };
        match self.shared.apply_edit(key, &edits).await {
            Ok(now) => {
                tracing::info!(repository = %key, user = %principal.user().unwrap_or(""), edits = ?edits, "repository settings changed");
                let body = now
                    .cfg
                    .repositories
                    .get(key)
                    .map(|r| admin::repositories::describe(r))
                    .unwrap_or_default();
                respond::json(
                    s,
                    200,
                    &[],
                    serde_json::to_vec_pretty(&body).unwrap_or_default(),
                )
                .await?;
            }
            Err(e) => {
                tracing::error!(error = %e, "repository settings not changed");
                // A shared store out of reach: try again later, elsewhere.
                let status = match e {
                    StateError::Store(StoreError::Unreachable(_)) => {
                        StatusCode::SERVICE_UNAVAILABLE
                    }
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                respond::error(
                    s,
                    &RegistryError::new(status, ErrorCode::Unknown, e.to_string()),
                )
                .await?;
            }
        }
        Ok(true)
    }
}

fn h_is_basic(h: &str) -> bool {
    h.len() > 6 && h[..6].eq_ignore_ascii_case("basic ")
}
