//! The sign-in endpoints as plain functions: request facts in, a response
//! value out. `GET /login` (providers), `GET /login/<p>` (start: state,
//! nonce, PKCE in a signed cookie), `GET /login/<p>/callback` (all checked,
//! then the user is admitted and a session cookie set), `GET /user` (the
//! page), `POST /user/revoke`, `POST /logout`, and for `dockgate login`
//! the device flow (`POST /login/<p>/device`, `POST /login/device/token`)
//! or, where the provider has none, the loopback redirect
//! (`GET /login/<p>?cli_port=N&cli_state=S` … `POST /login/cli/token`).

use super::{now, pages, seal, Protocol, ProviderError, Sso};
use crate::policy::auth::Authenticator;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;

pub const SESSION_COOKIE: &str = "dockgate_session";
pub const LOGIN_COOKIE: &str = "dockgate_login";
/// Short-lived: the page only shows the key; docker keeps using that.
const SESSION_TTL: u64 = 900;
const LOGIN_TTL: u64 = 600;
/// The one-time code handed to `dockgate login`'s loopback listener.
const CLI_CODE_TTL: u64 = 120;

pub struct Request<'a> {
    pub method: &'a http::Method,
    pub path: &'a str,
    pub query: &'a str,
    /// Host (and port) the client addressed, for redirect URIs.
    pub host: &'a str,
    pub cookie: Option<&'a str>,
    pub body: &'a [u8],
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    fn html(status: u16, body: String) -> Self {
        Self {
            status,
            headers: vec![
                ("Content-Type", "text/html; charset=utf-8".into()),
                ("Cache-Control", "no-store".into()),
                (
                    "Content-Security-Policy",
                    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'".into(),
                ),
                ("X-Frame-Options", "DENY".into()),
            ],
            body: body.into_bytes(),
        }
    }

    fn error_page(status: u16, msg: &str) -> Self {
        Self::html(status, pages::error(msg))
    }

    fn redirect(to: &str) -> Self {
        Self {
            status: 303,
            headers: vec![
                ("Location", to.into()),
                ("Cache-Control", "no-store".into()),
            ],
            body: Vec::new(),
        }
    }

    fn json(status: u16, v: Value) -> Self {
        Self {
            status,
            headers: vec![
                ("Content-Type", "application/json".into()),
                ("Cache-Control", "no-store".into()),
            ],
            body: serde_json::to_vec(&v).unwrap_or_default(),
        }
    }

    fn cookie(mut self, name: &str, value: &str, path: &str, max_age: u64) -> Self {
        self.headers.push((
            "Set-Cookie",
            format!(
                "{name}={value}; Path={path}; Max-Age={max_age}; Secure; HttpOnly; SameSite=Lax"
            ),
        ));
        self
    }
}

/// Paths these handlers own.
pub fn owns(path: &str) -> bool {
    path == "/login"
        || path.starts_with("/login/")
        || path == "/user"
        || path.starts_with("/user/")
        || path == "/logout"
}

#[derive(Serialize, Deserialize)]
struct LoginCookie {
    p: String,
    state: String,
    nonce: String,
    verifier: String,
    /// `dockgate login` waiting on 127.0.0.1:port, and its own state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cli: Option<(u16, String)>,
}

/// What the loopback listener gets, and spends once at `/login/cli/token`.
#[derive(Serialize, Deserialize)]
struct CliCode {
    user: String,
    id: String,
}

#[derive(Serialize, Deserialize)]
struct DeviceHandle {
    p: String,
    dc: String,
}

fn cookie_value<'a>(header: Option<&'a str>, name: &str) -> Option<&'a str> {
    header?
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn form(text: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(text).into_owned().collect()
}

fn field<'a>(f: &'a [(String, String)], k: &str) -> Option<&'a str> {
    f.iter().find(|(x, _)| x == k).map(|(_, v)| v.as_str())
}

fn redirect_uri(host: &str, provider: &str) -> String {
    format!("https://{host}/login/{provider}/callback")
}

pub async fn handle(auth: &Authenticator, sso: &Arc<Sso>, r: Request<'_>) -> Response {
    let get = r.method == http::Method::GET || r.method == http::Method::HEAD;
    let post = r.method == http::Method::POST;
    let parts: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
    match (get, post, parts.as_slice()) {
        (true, _, ["login"]) => {
            let list: Vec<(String, String)> = sso
                .providers
                .values()
                .map(|p| (p.cfg.name.clone(), p.cfg.display_name.clone()))
                .collect();
            if form(r.query.as_bytes())
                .iter()
                .any(|(k, v)| k == "format" && v == "json")
            {
                let v: Vec<Value> = list
                    .iter()
                    .map(|(n, d)| json!({"name": n, "display_name": d}))
                    .collect();
                return Response::json(200, Value::Array(v));
            }
            Response::html(200, pages::providers(&list))
        }
        (_, true, ["login", "device", "token"]) => device_token(auth, sso, &r).await,
        (_, true, ["login", "cli", "token"]) => cli_token(auth, sso, &r),
        (true, _, ["login", p]) => start(sso, &r, p).await,
        (true, _, ["login", p, "callback"]) => callback(auth, sso, &r, p).await,
        (_, true, ["login", p, "device"]) => device_start(sso, p).await,
        (true, _, ["user"]) => user_page(auth, sso, &r),
        (_, true, ["user", "revoke"]) => revoke(auth, sso, &r).await,
        (_, true, ["logout"]) => match session_user(sso, &r, true) {
            Ok(_) => Response::redirect("/login").cookie(SESSION_COOKIE, "", "/", 0),
            Err(resp) => resp,
        },
        _ => Response::error_page(404, "no such page"),
    }
}

async fn start(sso: &Sso, r: &Request<'_>, p: &str) -> Response {
    let Some(provider) = sso.providers.get(p) else {
        return Response::error_page(404, &format!("no sign-in provider {p:?}"));
    };
    let q = form(r.query.as_bytes());
    let cli = match (field(&q, "cli_port"), field(&q, "cli_state")) {
        (None, _) => None,
        (Some(port), Some(st)) if !st.is_empty() && st.len() <= 128 => match port.parse::<u16>() {
            Ok(n) if n >= 1024 => Some((n, st.to_string())),
            _ => return Response::error_page(400, "cli_port: a port number from 1024"),
        },
        _ => return Response::error_page(400, "cli_port needs cli_state"),
    };
    let c = LoginCookie {
        p: p.to_string(),
        state: seal::random_token(),
        nonce: seal::random_token(),
        verifier: seal::random_token(),
        cli,
    };
    let challenge = seal::pkce_challenge(&c.verifier);
    let uri = redirect_uri(r.host, p);
    let url = match &provider.protocol {
        Protocol::Oidc(o) => {
            o.authorize_url(&sso.client, &uri, &c.state, &c.nonce, &challenge)
                .await
        }
        Protocol::Github(g) => Ok(g.authorize_url(&uri, &c.state, &challenge)),
    };
    match url {
        Ok(url) => {
            let sealed = sso.sealer.seal("login", &c, now(), LOGIN_TTL);
            Response::redirect(&url).cookie(LOGIN_COOKIE, &sealed, "/login", LOGIN_TTL)
        }
        Err(e) => {
            tracing::warn!(provider = p, error = %e, "sign-in provider unavailable");
            Response::error_page(
                502,
                &format!("the sign-in provider {p:?} is unavailable: {e}"),
            )
        }
    }
}

async fn callback(auth: &Authenticator, sso: &Arc<Sso>, r: &Request<'_>, p: &str) -> Response {
    let q = form(r.query.as_bytes());
    let Some(provider) = sso.providers.get(p) else {
        return Response::error_page(404, &format!("no sign-in provider {p:?}"));
    };
    let Some(sealed) = cookie_value(r.cookie, LOGIN_COOKIE) else {
        return Response::error_page(400, "no sign-in in progress in this browser (cookies off, or it took longer than 10 minutes)");
    };
    let c: LoginCookie = match sso.sealer.open("login", sealed, now()) {
        Ok(c) => c,
        Err(e) => return Response::error_page(400, &format!("the sign-in cookie is {e}")),
    };
    let state = field(&q, "state").unwrap_or("");
    if c.p != p || !seal::same(state, &c.state) {
        return Response::error_page(
            400,
            "state mismatch: this answer does not belong to the sign-in this browser started",
        );
    }
    if let Some(err) = field(&q, "error") {
        return Response::error_page(403, &format!("the provider refused the sign-in: {err}"));
    }
    let Some(code) = field(&q, "code") else {
        return Response::error_page(400, "the provider's answer has no code");
    };
    if !sso.first_use(&c.state) {
        return Response::error_page(
            400,
            "this sign-in was already completed (a replayed answer)",
        );
    }
    let uri = redirect_uri(r.host, p);
    let id = match &provider.protocol {
        Protocol::Oidc(o) => {
            o.exchange(&sso.client, code, &c.verifier, &uri, &c.nonce)
                .await
        }
        Protocol::Github(g) => g.exchange(&sso.client, code, &c.verifier, &uri).await,
    };
    let id = match id {
        Ok(id) => id,
        Err(e) => {
            tracing::info!(provider = p, reason = %e, "sign-in refused");
            let status = if e.is_refusal() { 403 } else { 502 };
            return Response::error_page(status, &format!("sign-in failed: {e}"));
        }
    };
    let user = match admit(auth, sso, p, id).await {
        Ok(u) => u,
        Err(why) => return Response::error_page(403, &why.to_string()),
    };
    tracing::info!(user = %user, provider = p, "signed in");
    if let Some((port, cli_state)) = &c.cli {
        // Back to `dockgate login` on this machine's loopback (RFC 8252).
        let code = CliCode {
            user,
            id: seal::random_token(),
        };
        let sealed = sso.sealer.seal("cli", &code, now(), CLI_CODE_TTL);
        let q = form_urlencoded::Serializer::new(String::new())
            .append_pair("code", &sealed)
            .append_pair("state", cli_state)
            .finish();
        return Response::redirect(&format!("http://127.0.0.1:{port}/?{q}")).cookie(
            LOGIN_COOKIE,
            "",
            "/login",
            0,
        );
    }
    let session = sso.sealer.seal("session", &user, now(), SESSION_TTL);
    Response::redirect("/user")
        .cookie(LOGIN_COOKIE, "", "/login", 0)
        .cookie(SESSION_COOKIE, &session, "/", SESSION_TTL)
}

async fn admit(
    auth: &Authenticator,
    sso: &Sso,
    p: &str,
    id: super::identity::Identity,
) -> Result<String, super::SsoError> {
    let local = auth.local_user(&id.name);
    sso.admit(p, &id, local, now()).await
}

/// The session's user; for POSTs also the form's CSRF token.
fn session_user(sso: &Sso, r: &Request<'_>, check_csrf: bool) -> Result<String, Response> {
    let t = now();
    let user: String = cookie_value(r.cookie, SESSION_COOKIE)
        .filter(|v| !v.is_empty())
        .and_then(|v| sso.sealer.open("session", v, t).ok())
        .ok_or_else(|| Response::redirect("/login"))?;
    if check_csrf {
        let f = form(r.body);
        let ok = field(&f, "csrf")
            .and_then(|c| sso.sealer.open::<String>("csrf", c, t).ok())
            .is_some_and(|u| u == user);
        if !ok {
            return Err(Response::error_page(
                403,
                "the form is stale or not from this site; reload the page",
            ));
        }
    }
    Ok(user)
}

fn user_page(auth: &Authenticator, sso: &Sso, r: &Request<'_>) -> Response {
    let user = match session_user(sso, r, false) {
        Ok(u) => u,
        Err(resp) => return resp,
    };
    let rec = super::store::get(&*sso.store, &user);
    let csrf = sso.sealer.seal("csrf", &user, now(), SESSION_TTL);
    let key = auth.api_key(&user);
    let view = pages::UserView {
        user: &user,
        provider: rec
            .as_ref()
            .and_then(|u| sso.providers.get(&u.provider))
            .map(|p| p.cfg.display_name.as_str())
            .unwrap_or(""),
        email: rec.as_ref().map(|u| u.email.as_str()).unwrap_or(""),
        groups: sso.memberships.of(&user).into_iter().collect(),
        host: r.host,
        key: &key,
        csrf: &csrf,
    };
    Response::html(200, pages::user(&view))
}

async fn revoke(auth: &Authenticator, sso: &Sso, r: &Request<'_>) -> Response {
    let user = match session_user(sso, r, true) {
        Ok(u) => u,
        Err(resp) => return resp,
    };
    match auth.revoke_keys(&user).await {
        Ok(()) => {
            tracing::info!(user = %user, "keys revoked from the sign-in page");
            Response::redirect("/user")
        }
        Err(e) => Response::error_page(500, &format!("keys not revoked: {e}")),
    }
}

/// `dockgate login`'s loopback listener got a code: a refresh token for it, once.
fn cli_token(auth: &Authenticator, sso: &Sso, r: &Request<'_>) -> Response {
    let f = form(r.body);
    let code: CliCode = match field(&f, "code").map(|c| sso.sealer.open("cli", c, now())) {
        Some(Ok(c)) => c,
        Some(Err(seal::SealError::Expired)) => {
            return Response::json(400, json!({"error": "expired_token"}))
        }
        _ => return Response::json(400, json!({"error": "invalid_grant"})),
    };
    if !sso.first_use(&code.id) {
        return Response::json(
            400,
            json!({"error": "invalid_grant", "error_description": "code already used"}),
        );
    }
    match auth.issue_refresh(&code.user) {
        Ok(t) => Response::json(200, json!({"user": code.user, "refresh_token": t})),
        Err(e) => Response::json(
            500,
            json!({"error": "server_error", "error_description": e.to_string()}),
        ),
    }
}

async fn device_start(sso: &Sso, p: &str) -> Response {
    let Some(provider) = sso.providers.get(p) else {
        return Response::json(
            404,
            json!({"error": "invalid_request", "error_description": format!("no sign-in provider {p:?}")}),
        );
    };
    let answer = match &provider.protocol {
        Protocol::Oidc(o) => o.device_start(&sso.client).await,
        Protocol::Github(g) => g.device_start(&sso.client).await,
    };
    let v = match answer {
        Ok(v) => v,
        Err(ProviderError::NoDeviceFlow) => {
            return Response::json(
                400,
                json!({"error": "unsupported_grant_type", "error_description": "the provider offers no device flow; use the browser"}),
            )
        }
        Err(e) => {
            return Response::json(
                502,
                json!({"error": "temporarily_unavailable", "error_description": e.to_string()}),
            )
        }
    };
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let expires = v
        .get("expires_in")
        .and_then(Value::as_u64)
        .unwrap_or(600)
        .min(1800);
    if s("device_code").is_empty() || s("user_code").is_empty() {
        return Response::json(
            502,
            json!({"error": "temporarily_unavailable", "error_description": "the provider's device answer lacks a code"}),
        );
    }
    let handle = sso.sealer.seal(
        "device",
        &DeviceHandle {
            p: p.to_string(),
            dc: s("device_code"),
        },
        now(),
        expires,
    );
    Response::json(
        200,
        json!({
            "handle": handle,
            "user_code": s("user_code"),
            "verification_uri": s("verification_uri"),
            "verification_uri_complete": v.get("verification_uri_complete"),
            "interval": v.get("interval").and_then(Value::as_u64).unwrap_or(5),
            "expires_in": expires,
        }),
    )
}

async fn device_token(auth: &Authenticator, sso: &Arc<Sso>, r: &Request<'_>) -> Response {
    let f = form(r.body);
    let h: DeviceHandle = match field(&f, "handle").map(|h| sso.sealer.open("device", h, now())) {
        Some(Ok(h)) => h,
        Some(Err(seal::SealError::Expired)) => {
            return Response::json(400, json!({"error": "expired_token"}))
        }
        _ => {
            return Response::json(
                400,
                json!({"error": "invalid_grant", "error_description": "not a device handle of this gateway"}),
            )
        }
    };
    let Some(provider) = sso.providers.get(&h.p) else {
        return Response::json(400, json!({"error": "invalid_grant"}));
    };
    let id = match &provider.protocol {
        Protocol::Oidc(o) => o.device_poll(&sso.client, &h.dc).await,
        Protocol::Github(g) => g.device_poll(&sso.client, &h.dc).await,
    };
    let id = match id {
        Ok(id) => id,
        Err(ProviderError::Pending) => {
            return Response::json(400, json!({"error": "authorization_pending"}))
        }
        Err(ProviderError::SlowDown) => return Response::json(400, json!({"error": "slow_down"})),
        Err(e) => {
            let code = match &e {
                ProviderError::Http(h) if e.is_refusal() => {
                    h.oauth_error().unwrap_or("access_denied").to_string()
                }
                _ if e.is_refusal() => "access_denied".to_string(),
                _ => "temporarily_unavailable".to_string(),
            };
            return Response::json(
                400,
                json!({"error": code, "error_description": e.to_string()}),
            );
        }
    };
    let user = match admit(auth, sso, &h.p, id).await {
        Ok(u) => u,
        Err(why) => {
            return Response::json(
                403,
                json!({"error": "access_denied", "error_description": why.to_string()}),
            )
        }
    };
    match auth.issue_refresh(&user) {
        Ok(t) => {
            tracing::info!(user = %user, provider = %h.p, "signed in (device flow)");
            Response::json(200, json!({"user": user, "refresh_token": t}))
        }
        Err(e) => Response::json(
            500,
            json!({"error": "server_error", "error_description": e.to_string()}),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_paths() {
        let h = Some("a=1; dockgate_login=xy.z; dockgate_session=s");
        assert_eq!(cookie_value(h, LOGIN_COOKIE), Some("xy.z"));
        assert_eq!(cookie_value(h, SESSION_COOKIE), Some("s"));
        assert_eq!(cookie_value(h, "nope"), None);
        assert_eq!(cookie_value(None, "a"), None);
        for (p, want) in [
            ("/login", true),
            ("/login/gh/callback", true),
            ("/user", true),
            ("/user/revoke", true),
            ("/logout", true),
            ("/loginx", false),
            ("/users", false),
            ("/v2/", false),
        ] {
            assert_eq!(owns(p), want, "{p}");
        }
        let r = Response::redirect("/x").cookie("c", "v", "/", 10);
        let set = &r
            .headers
            .iter()
            .find(|(k, _)| *k == "Set-Cookie")
            .unwrap()
            .1;
        for attr in ["Secure", "HttpOnly", "SameSite=Lax", "Max-Age=10"] {
            assert!(set.contains(attr), "{set}");
        }
    }
}
