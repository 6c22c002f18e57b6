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
        return Step::Respond(Local::ok_json(&describe(rt, &repo)));
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
    if let Err(e) = switch_read_only(env, key, &body).await {
        return Step::error(RegistryError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            e.to_string(),
        ));
    }
    if edits.is_empty() {
        let now = env.shared.snapshot();
        return Step::Respond(Local::ok_json(&describe(&now, &repo)));
    }
    match env.shared.apply_edit(key, &edits).await {
        Ok(now) => {
            tracing::info!(repository = %key, user = %principal.user().unwrap_or(""), edits = ?edits, "repository settings changed");
            let body = now
                .cfg
                .repositories
                .get(key)
                .map(|r| describe(&now, r))
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

/// Read-only switched through the API lives in the store's `read-only`
/// area (value: the reason), shared with other instances; the config file
/// is not edited.
async fn switch_read_only(env: &Env<'_>, key: &str, body: &[u8]) -> Result<(), StoreError> {
    let store = &env.rt.store;
    match admin::repositories::read_only_change(body) {
        Some(Some(reason)) => store.put(READ_ONLY_AREA, key, &reason, None).await,
        Some(None) => store.delete(READ_ONLY_AREA, key).await.map(|_| ()),
        None => Ok(()),
    }
}

/// The repository as the API shows it, with read-only from the store.
fn describe(snap: &crate::state::Snapshot, repo: &crate::config::Repository) -> serde_json::Value {
    let mut d = admin::repositories::describe(repo);
    if let Some(reason) = snap.store.get(READ_ONLY_AREA, &repo.key) {
        d["readOnly"] = true.into();
        d["readOnlyReason"] = reason.into();
    }
    d
}

/// Where read-only switched through the API is kept.
pub const READ_ONLY_AREA: &str = "read-only";
