//! Artifactory-compatible repository settings, `/api/repositories/<key>`:
//! GET to read, POST to change `blockPushingSchema1` and the other
//! runtime settings (repository admins only). The config file is edited,
//! checked and swapped on the blocking pool.

use super::credentials;
use super::{Env, Notes, Request};
use crate::admin;
use crate::oci::{ErrorCode, RegistryError};
use crate::pipeline::{Local, Step};
use crate::policy::auth::acl::{self, Action};
use crate::policy::Verdict;
use crate::proxy::{Runtime, Shared};
use http::StatusCode;
use std::sync::Arc;

/// Why a settings change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("config lock poisoned")]
    Poisoned,
    #[error("{0}")]
    Config(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the blocking pool failed: {0}")]
    Join(String),
}

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
    let shared = env.shared.clone();
    let (path, k, e2) = (rt.cfg.path.clone(), key.to_string(), edits.clone());
    let done = tokio::task::spawn_blocking(move || apply(&shared, &path, &k, &e2))
        .await
        .unwrap_or_else(|e| Err(EditError::Join(e.to_string())));
    match done {
        Ok(()) => {
            tracing::info!(repository = %key, user = %principal.user().unwrap_or(""), edits = ?edits, "repository settings changed");
            let now = env.shared.snapshot();
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
            Step::error(RegistryError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Unknown,
                e.to_string(),
            ))
        }
    }
}

/// Edit the file, check the result serves, then swap file and runtime.
/// Blocking: file writes with fsync, certificate and CA loading.
fn apply(
    shared: &Arc<Shared>,
    path: &std::path::Path,
    key: &str,
    edits: &[(&str, bool)],
) -> Result<(), EditError> {
    let _guard = shared.reload_lock.lock().map_err(|_| EditError::Poisoned)?;
    let text = std::fs::read_to_string(path).map_err(|source| EditError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let new_text = admin::repositories::apply(&text, key, edits).map_err(EditError::Config)?;
    let staged = admin::repositories::stage(path, &new_text).map_err(EditError::Config)?;
    let prepared = match crate::runtime::prepare(&staged, crate::runtime::Mode::Serve) {
        Ok(p) => p,
        Err(e) => {
            let _ = std::fs::remove_file(&staged);
            return Err(EditError::Config(e));
        }
    };
    admin::repositories::commit(&staged, path).map_err(EditError::Config)?;
    let mut cfg = (*prepared.cfg).clone();
    cfg.path = path.to_path_buf();
    let rt = Runtime {
        cfg: Arc::new(cfg),
        peers: prepared.peers,
        auth: prepared.auth,
        hosts: prepared.hosts,
    };
    shared.current.store(Arc::new(rt));
    Ok(())
}
