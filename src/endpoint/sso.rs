//! The sign-in pages (`/login`, `/user`, `/logout`, see `sso::handlers`)
//! as an own endpoint, and the token service's single-sign-on steps:
//! workload tokens as the password, and the membership re-check.

use super::{Env, Notes, Request};
use crate::oci::RegistryError;
use crate::pipeline::{Local, Step};
use crate::policy::auth::{Authenticator, Failure};
use crate::sso::handlers;
use crate::sso::workload::WorkloadUser;
use bytes::Bytes;
use http::StatusCode;

pub async fn handle(env: &Env<'_>, req: &Request<'_>, notes: &mut Notes) -> Step {
    let auth = env.rt.auth.clone();
    let sso = auth
        .as_ref()
        .and_then(|a| a.sso.clone())
        .filter(|s| !s.providers.is_empty());
    let (Some(auth), Some(sso)) = (auth, sso) else {
        return Step::error(RegistryError::unsupported(format!(
            "{}: dockgate serves the registry API under /v2/ (no [auth.sso] providers)",
            req.path()
        )));
    };
    let cookie = req
        .head
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join("; ");
    let empty = Bytes::new();
    let resp = handlers::handle(
        &auth,
        &sso,
        handlers::Request {
            method: &req.head.method,
            path: req.path(),
            query: req.query().unwrap_or(""),
            host: &req.client_host,
            cookie: Some(cookie.as_str()).filter(|c| !c.is_empty()),
            body: req.body.as_ref().unwrap_or(&empty),
        },
    )
    .await;
    notes.user = None;
    Step::Respond(Local {
        status: StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        headers: resp.headers,
        body: Bytes::from(resp.body),
    })
}

/// A workload token presented as the password: verified here, or refused.
/// None when the password is not a JWT or no workloads are configured.
pub async fn workload(
    auth: &Authenticator,
    password: Option<&str>,
) -> Option<Result<WorkloadUser, Failure>> {
    let sso = auth.sso.as_ref().filter(|s| !s.workloads.is_empty())?;
    let jwt = password.filter(|p| crate::sso::jwt::looks_like_jwt(p))?;
    Some(
        match sso
            .workloads
            .verify(&sso.client, jwt, crate::sso::now())
            .await
        {
            Ok(w) => {
                tracing::info!(workload = %w.workload, user = %w.user, "workload token accepted");
                Ok(w)
            }
            Err(e) => Err(Failure::BadToken(e.to_string())),
        },
    )
}

/// Single sign-on users: `max_key_age` and the membership re-check.
pub async fn recheck(auth: &Authenticator, user: Option<&str>) -> Result<(), Failure> {
    match (&auth.sso, user) {
        (Some(sso), Some(u)) => sso
            .on_token(u)
            .await
            .map_err(|e| Failure::BadToken(e.to_string())),
        _ => Ok(()),
    }
}
