//! Who is asking, and the answers that ask for credentials: challenges,
//! 401s, and the rendering of a policy [`Verdict`] into a local answer.

use super::{Env, Notes, Request};
use crate::config::Challenge;
use crate::oci::{ErrorCode, RegistryError};
use crate::pipeline::Local;
use crate::policy::auth::{Authenticator, Failure, Principal};
use crate::policy::Verdict;
use http::StatusCode;
use std::sync::Arc;

pub const BASIC_CHALLENGE: &str = "Basic realm=\"dockgate\"";

/// Authenticates the request; bcrypt runs on the blocking pool.
pub async fn principal(env: &Env<'_>, req: &Request<'_>) -> Result<Principal, Failure> {
    let Some(auth) = env.rt.auth.clone() else {
        return Ok(Principal::Anonymous);
    };
    let header = match req.head.headers.get(http::header::AUTHORIZATION) {
        None => return Ok(Principal::Anonymous),
        Some(v) => match v.to_str() {
            Ok(h) => h.to_string(),
            Err(_) => return Err(Failure::Malformed("not ASCII")),
        },
    };
    authenticate(auth, header, req.client_ip).await
}

async fn authenticate(
    auth: Arc<Authenticator>,
    header: String,
    ip: Option<std::net::IpAddr>,
) -> Result<Principal, Failure> {
    if is_basic(&header) {
        tokio::task::spawn_blocking(move || auth.authenticate(Some(&header), ip))
            .await
            .unwrap_or(Err(Failure::Malformed("internal error")))
    } else {
        auth.authenticate(Some(&header), ip)
    }
}

pub fn is_basic(h: &str) -> bool {
    h.len() > 6 && h[..6].eq_ignore_ascii_case("basic ")
}

/// `WWW-Authenticate` for this request's host, optionally for a scope.
pub fn challenge(env: &Env<'_>, req: &Request<'_>, scope: Option<&str>) -> String {
    let Some(auth) = env.rt.auth.as_ref() else {
        return BASIC_CHALLENGE.into();
    };
    match auth.cfg.challenge {
        Challenge::Basic => BASIC_CHALLENGE.into(),
        Challenge::Bearer => {
            let mut c = format!(
                "Bearer realm=\"https://{}/v2/token\",service=\"{}\"",
                req.client_host, auth.cfg.service
            );
            if let Some(sc) = scope {
                c.push_str(&format!(",scope=\"{sc}\""));
            }
            c
        }
    }
}

pub fn unauthorized(msg: impl Into<String>) -> RegistryError {
    RegistryError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, msg)
}

/// 401 (or 429 when throttled) for credentials that did not check out,
/// with `challenge`.
pub fn refusal(env: &Env<'_>, notes: &Notes, f: &Failure, challenge: String) -> Local {
    env.shared
        .metrics
        .auth_failures
        .with_label_values(&[notes.repo_label.as_str()])
        .inc();
    tracing::info!(repository = %notes.repo_label, reason = %f.message(), "authentication failed");
    let mut h = vec![("WWW-Authenticate", challenge)];
    let e = match f {
        Failure::Locked(secs) => {
            h.push(("Retry-After", secs.to_string()));
            RegistryError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::Toomanyrequests,
                f.message(),
            )
        }
        other => unauthorized(other.message()),
    };
    Local::error_with(e, h)
}

/// [`refusal`] with this host's challenge.
pub fn refuse(env: &Env<'_>, req: &Request<'_>, notes: &Notes, f: &Failure) -> Local {
    refusal(env, notes, f, challenge(env, req, None))
}

/// 401 asking for Basic credentials.
pub fn basic_required(msg: impl Into<String>) -> Local {
    Local::error_with(
        unauthorized(msg),
        vec![("WWW-Authenticate", BASIC_CHALLENGE.to_string())],
    )
}

/// 401 with this host's challenge (a `GET /v2/` without credentials).
pub fn challenge_ping(env: &Env<'_>, req: &Request<'_>) -> Local {
    Local::error_with(
        unauthorized("authentication required"),
        vec![("WWW-Authenticate", challenge(env, req, None))],
    )
}

/// A refusing verdict as the client sees it. A challenge is a 401, or a
/// 403 with `error="insufficient_scope"` for a token lacking the scope
/// (RFC 6750 3.1; see `policy::decide`). None for `Allow`.
pub fn render(env: &Env<'_>, req: &Request<'_>, v: Verdict) -> Option<Local> {
    match v {
        Verdict::Allow => None,
        Verdict::Deny(r) => Some(Local::error(r.error)),
        Verdict::Limit {
            retry_after,
            message,
        } => Some(Local::error_with(
            RegistryError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::Toomanyrequests,
                message,
            ),
            vec![("Retry-After", retry_after.to_string())],
        )),
        Verdict::Challenge {
            scope,
            insufficient_scope,
            message,
        } => {
            let mut ch = challenge(env, req, Some(&scope));
            let e = if insufficient_scope && ch.starts_with("Bearer ") {
                ch.push_str(",error=\"insufficient_scope\"");
                RegistryError::new(StatusCode::FORBIDDEN, ErrorCode::Denied, message)
            } else {
                unauthorized(message)
            };
            Some(Local::error_with(e, vec![("WWW-Authenticate", ch)]))
        }
    }
}
