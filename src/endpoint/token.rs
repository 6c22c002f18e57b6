//! The Docker token service, `/v2/token`: GET with Basic credentials, or
//! the OAuth2 POST form (password or refresh_token grants).

use super::credentials::{self, BASIC_CHALLENGE};
use super::{Env, Notes, Request};
use crate::oci::{ErrorCode, RegistryError};
use crate::pipeline::{Local, Step};
use crate::policy::auth::{scope, Failure};
use crate::rewrite::query;
use crate::route;
use http::StatusCode;
use time::format_description::well_known::Rfc3339;

pub async fn handle(env: &Env<'_>, req: &Request<'_>, notes: &mut Notes) -> Step {
    let rt = env.rt;
    let Some(auth) = rt.auth.clone() else {
        return Step::error(RegistryError::unsupported(
            "no token service without [auth]",
        ));
    };
    let post = req.head.method == http::Method::POST;
    let mut form = query::parse(req.query().unwrap_or(""));
    if let (true, Some(body)) = (post, &req.body) {
        form.extend(query::parse(&String::from_utf8_lossy(body)));
    }
    let get = |k: &str| form.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
    if let Some(svc) = get("service") {
        if svc != auth.cfg.service {
            return Step::error(RegistryError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::Unsupported,
                format!(
                    "unknown service {svc:?}; this token service is {:?}",
                    auth.cfg.service
                ),
            ));
        }
    }
    // A CI workload token as the password (POST form or Basic).
    let password = match (post, get("grant_type").as_deref()) {
        (true, Some("password")) => get("password"),
        (false, _) => req
            .header(http::header::AUTHORIZATION)
            .filter(|h| credentials::is_basic(h))
            .and_then(|h| crate::policy::auth::decode_basic(h[6..].trim()).ok())
            .map(|(_, p)| p),
        _ => None,
    };
    let workload = match super::sso::workload(&auth, password.as_deref()).await {
        None => None,
        Some(Ok(w)) => Some(w),
        Some(Err(f)) => {
            return Step::Respond(credentials::refusal(
                env,
                notes,
                &f,
                BASIC_CHALLENGE.to_string(),
            ))
        }
    };
    // Who: POST password/refresh_token grants, or the Authorization header.
    let ip = req.client_ip;
    let who: Result<Option<String>, Failure> = match (post, get("grant_type").as_deref()) {
        _ if workload.is_some() => Ok(workload.as_ref().map(|w| w.user.clone())),
        (true, Some("password")) => {
            let (u, pw) = (
                get("username").unwrap_or_default(),
                get("password").unwrap_or_default(),
            );
            // Logged only if refused (log.rs); never the password.
            notes.attempted_user = Some(u.clone());
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
        (false, _) => credentials::principal(env, req)
            .await
            .map(|p| p.user().map(str::to_string)),
    };
    // Single sign-on users: key age and membership re-check.
    let who = match (who, &workload) {
        (Ok(u), None) => super::sso::recheck(&auth, u.as_deref()).await.map(|_| u),
        (other, _) => other,
    };
    let user = match who {
        Ok(u) => u,
        Err(f) => {
            return Step::Respond(credentials::refusal(
                env,
                notes,
                &f,
                BASIC_CHALLENGE.to_string(),
            ))
        }
    };
    notes.user = user.clone();
    let scopes: Vec<scope::Scope> = form
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| scope::parse(v))
        .collect();
    let resolve = |name: &str| {
        route::image_of(&rt.cfg, &req.listen, Some(&req.client_host), name)
            .map(|(r, image)| route::auth_target(&rt.cfg, r, &image))
    };
    let issued = match &workload {
        None => {
            let access = auth.grant(user.as_deref(), &scopes, &resolve);
            auth.issue(user.as_deref(), access)
        }
        Some(w) => {
            notes.workload = Some(w.workload.clone());
            auth.issue_workload(w, &scopes, &resolve)
        }
    };
    let (token, claims) = match issued {
        Ok(t) => t,
        Err(e) => {
            return Step::error(RegistryError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Unknown,
                e.to_string(),
            ))
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
    Step::Respond(Local::json(
        StatusCode::OK,
        Vec::new(),
        serde_json::to_vec(&body).unwrap_or_default(),
    ))
}
