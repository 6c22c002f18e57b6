//! `POST /api/search/aql`: admins only (with `[auth]`; without it the
//! endpoint is refused, since anyone could start full scans). The query
//! itself lives in `migrate::aql`.

use super::credentials;
use super::{Env, Notes, Request};
use crate::migrate::aql::{self, AqlError};
use crate::oci::{ErrorCode, RegistryError};
use crate::pipeline::{Local, Step};
use crate::policy::auth::acl;
use http::StatusCode;

pub async fn handle(env: &Env<'_>, req: &Request<'_>, notes: &mut Notes) -> Step {
    let rt = env.rt;
    let Some(auth) = rt.auth.clone() else {
        return Step::error(RegistryError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Denied,
            "the AQL endpoint is for admins and needs [auth]; use `dockgate schema1 scan`",
        ));
    };
    let principal = match credentials::principal(env, req).await {
        Ok(p) => p,
        Err(f) => return Step::Respond(credentials::refuse(env, req, notes, &f)),
    };
    notes.user = principal.user().map(str::to_string);
    let Some(user) = principal.user() else {
        return Step::Respond(credentials::basic_required(
            "an admin credential is required",
        ));
    };
    if !acl::is_global_admin(&auth.cfg, user) {
        return Step::error(RegistryError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Denied,
            format!("user {user:?} is not an admin"),
        ));
    }
    if req.head.method != http::Method::POST {
        return Step::error(RegistryError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Unsupported,
            "POST the AQL text",
        ));
    }
    let body = req.body.clone().unwrap_or_default();
    match aql::answer(&rt.cfg, &rt.peers, &body).await {
        Ok(b) => Step::Respond(Local::json(StatusCode::OK, Vec::new(), b)),
        Err(e) => {
            let (status, code) = match &e {
                AqlError::Unsupported(_) => (StatusCode::BAD_REQUEST, ErrorCode::Unsupported),
                AqlError::Busy => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::Toomanyrequests),
                AqlError::Timeout(_) | AqlError::Scan(_) => {
                    (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable)
                }
            };
            Step::error(RegistryError::new(status, code, e.to_string()))
        }
    }
}
