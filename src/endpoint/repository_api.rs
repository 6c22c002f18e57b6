//! Artifactory-compatible repository settings, `/api/repositories/<key>`:
//! GET to read, POST to change `blockPushingSchema1` and the other
//! runtime settings (repository admins only), through the state store
//! (`state::Shared::apply_edit`, which does its file work on the blocking
//! pool).

use super::credentials;
use super::{Env, Notes, Request};
use crate::admin;
use crate::oci::{ErrorCode, RegistryError};
use crate::pipeline::{Local, Step};
use crate::policy::auth::acl::{self, Action};
use crate::policy::Verdict;
use crate::state::{StateError, StoreError};
use http::StatusCode;

pub async fn handle(env: &Env<'_>, req: &Request<'_>, notes: &mut Notes, key: &str) -> Step {
    let rt = env.rt;
    let Some(repo) = rt.cfg.repositories.get(key).cloned() else {
        return Step::error(RegistryError::name_unknown(format!(
            "repository key {key:?} is not configured"
        )));
    };
    notes.repo_label = repo.key.clone();
    let principal = match credentials::principal(env, req).await {
        Ok(p) => p,
        Err(f) => return Step::Respond(credentials::refuse(env, req, notes, &f)),
    };
    notes.user = principal.user().map(str::to_string);
    let m = &req.head.method;
    if m == http::Method::GET || m == http::Method::HEAD {
        if let Some(auth) = &rt.auth {
            if !acl::may(&auth.cfg, &repo.acl, principal.user(), Action::Pull) {
                let v = match principal.user() {
                    None => Verdict::Challenge {
                        scope: crate::policy::auth::scope::format(&repo.key, &["pull"]),
                        insufficient_scope: false,
                        message: format!("authentication required to pull {}", repo.key),
                    },
                    Some(u) => Verdict::Deny(crate::policy::Refusal {
                        rule: crate::policy::Rule::Roles,
                        error: RegistryError::new(
                            StatusCode::FORBIDDEN,
                            ErrorCode::Denied,
                            format!("user {u:?} may not pull repository {}", repo.key),
                        ),
                    }),
                };
                if let Some(l) = credentials::render(env, req, v) {
                    return Step::Respond(l);
                }
            }
        }
        return Step::Respond(Local::ok_json(&admin::repositories::describe(&repo)));
    }
    if m != http::Method::POST {
        return Step::error(RegistryError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Unsupported,
            "use GET or POST",
        ));
    }
    let Some(auth) = rt.auth.clone() else {
        return Step::Respond(credentials::basic_required(
            "changing repository settings needs an admin credential; configure [auth] users first",
        ));
    };
    if principal.user().is_none() {
        return Step::Respond(credentials::basic_required(
            "an admin credential is required",
        ));
    }
    if !auth.may_administer(&principal, &repo) {
        return Step::error(RegistryError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Denied,
            format!(
                "user {:?} is not an admin of repository {key}",
                principal.user().unwrap_or("")
            ),
        ));
    }
    let body = req.body.clone().unwrap_or_default();
    let edits = match admin::repositories::edits(&repo, &body) {
        Ok(e) => e,
        Err(e) => return Step::error(e),
    };
    if let Err(e) = remember_reason(env, key, &body, &edits).await {
        return Step::error(RegistryError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            e.to_string(),
        ));
    }
    match env.shared.apply_edit(key, &edits).await {
        Ok(now) => {
            tracing::info!(repository = %key, user = %principal.user().unwrap_or(""), edits = ?edits, "repository settings changed");
            let body = now
                .cfg
                .repositories
                .get(key)
                .map(|r| admin::repositories::describe(r))
                .unwrap_or_default();
            Step::Respond(Local::ok_json(&body))
        }
        Err(e) => {
            tracing::error!(error = %e, "repository settings not changed");
            // A shared store out of reach: try again later, elsewhere.
            let status = match e {
                StateError::Store(StoreError::Unreachable(_)) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            Step::error(RegistryError::new(
                status,
                ErrorCode::Unknown,
                e.to_string(),
            ))
        }
    }
}

/// The admin's reason for read-only lives in the store's `read-only` area
/// (shared with other instances), set before the switch and dropped with it.
async fn remember_reason(
    env: &Env<'_>,
    key: &str,
    body: &[u8],
    edits: &[(&str, bool)],
) -> Result<(), StoreError> {
    let store = &env.rt.store;
    match edits.iter().find(|(f, _)| *f == "read_only") {
        Some((_, true)) => match admin::repositories::read_only_reason(body) {
            Some(r) => store.put(READ_ONLY_AREA, key, &r, None).await,
            None => store.delete(READ_ONLY_AREA, key).await.map(|_| ()),
        },
        Some((_, false)) => store.delete(READ_ONLY_AREA, key).await.map(|_| ()),
        None => Ok(()),
    }
}

/// Where read-only reasons set through the API are kept.
pub const READ_ONLY_AREA: &str = "read-only";
