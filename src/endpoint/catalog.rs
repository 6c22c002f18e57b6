//! `/v2/_catalog` across repositories: each backend's catalog is read in
//! full (following its Link pages), filtered to the repository's name
//! prefix, named as the client sees it, merged and paged here. Only names
//! the principal may pull are listed.

use super::credentials;
use super::{Env, Request};
use crate::config::Repository;
use crate::oci::{catalog, ErrorCode, RegistryError};
use crate::pipeline::{Local, Step};
use crate::policy::auth::{acl, acl::Action, Principal};
use crate::route;
use crate::state::{Shared, Snapshot};
use http::StatusCode;
use std::collections::HashMap;
use std::sync::Arc;

/// `GET /v2/_catalog` over `repos`.
pub async fn handle(
    env: &Env<'_>,
    req: &Request<'_>,
    p: &Principal,
    mut repos: Vec<Arc<Repository>>,
    with_key: bool,
) -> Step {
    let rt = env.rt;
    let auth = rt.auth.as_ref().map(|a| a.cfg.clone());
    if let Some(a) = &auth {
        repos.retain(|r| acl::may(a, &r.acl, p.user(), Action::Pull));
        if repos.is_empty() && p.user().is_none() {
            return Step::Respond(credentials::challenge_ping(env, req));
        }
    }
    // Names inside a narrower repository's namespace need its roles too.
    let user = p.user().map(str::to_string);
    let cfg = rt.cfg.clone();
    let visible = move |r: &Arc<Repository>, image: &str| {
        auth.as_ref().is_none_or(|c| {
            let t = route::auth_target(&cfg, r.clone(), image);
            crate::policy::auth::may_on(c, &t, user.as_deref(), Action::Pull)
        })
    };
    match serve(env.shared, rt, &repos, with_key, req.query(), &visible).await {
        Ok(a) => Step::Respond(Local::json(StatusCode::OK, a.headers, a.body)),
        Err(e) => Step::error(e),
    }
}

/// Hard stop on how much of a backend catalog dockgate will walk.
const MAX_PAGES: usize = 1000;
const PAGE_BYTES: usize = 8 << 20;

pub struct Answer {
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

pub async fn serve(
    shared: &Shared,
    rt: &Snapshot,
    repos: &[Arc<Repository>],
    with_key: bool,
    query: Option<&str>,
    visible: &(dyn Fn(&Arc<Repository>, &str) -> bool + Sync),
) -> Result<Answer, RegistryError> {
    let (n, last) = catalog::params(query);
    let mut names = Vec::new();
    let mut failures = Vec::new();
    let mut fetched: HashMap<(String, String), Result<Vec<String>, CatalogError>> = HashMap::new();
    for repo in repos {
        let prefix = repo.backend.v2_prefix_for(&repo.key);
        let key = (repo.backend.name.clone(), prefix.to_string());
        if !fetched.contains_key(&key) {
            let got = backend_names(shared, rt, repo, &prefix).await;
            fetched.insert(key.clone(), got);
        }
        match fetched.get(&key) {
            Some(Ok(all)) => names.extend(
                all.iter()
                    .filter_map(|n| repo.image_of(n))
                    .filter(|img| visible(repo, img))
                    .map(|img| {
                        if with_key {
                            format!("{}/{img}", repo.key)
                        } else {
                            img.to_string()
                        }
                    }),
            ),
            Some(Err(e)) => failures.push(format!("repository {}: {e}", repo.key)),
            None => {}
        }
    }
    if !failures.is_empty() && failures.len() == repos.len() {
        return Err(RegistryError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            format!("catalog unavailable: {}", failures.join("; ")),
        ));
    }
    let (page, link) = catalog::page(names, n, last.as_deref());
    let mut headers = Vec::new();
    if let Some(l) = link {
        headers.push(("Link", l));
    }
    // A partial catalog is reported, not hidden.
    for f in &failures {
        tracing::warn!(failure = %f, "catalog incomplete");
        headers.push((
            "Warning",
            format!("199 dockgate \"{}\"", f.replace('"', "'")),
        ));
    }
    let body = serde_json::to_vec(&serde_json::json!({ "repositories": page })).unwrap_or_default();
    Ok(Answer { body, headers })
}

/// Why one backend's catalog is missing from the answer.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("backend catalog too long")]
    TooLong,
    #[error("backend {backend} ({authority}): {source}")]
    Request {
        backend: String,
        authority: String,
        #[source]
        source: Box<pingora::Error>,
    },
    #[error("backend {backend} answered {status} to {path}")]
    Status {
        backend: String,
        status: u16,
        path: String,
    },
    #[error("backend {backend}: bad catalog JSON: {source}")]
    Json {
        backend: String,
        #[source]
        source: serde_json::Error,
    },
}

async fn backend_names(
    shared: &Shared,
    rt: &Snapshot,
    repo: &Repository,
    prefix: &str,
) -> Result<Vec<String>, CatalogError> {
    let b = &repo.backend;
    let peer = rt.peers.peer(b);
    let mut out = Vec::new();
    let mut next = Some(format!("{prefix}/_catalog?n=1000"));
    let mut pages = 0;
    while let Some(path) = next.take() {
        pages += 1;
        if pages > MAX_PAGES {
            return Err(CatalogError::TooLong);
        }
        let (head, body) = crate::upstream::get(&shared.connector, &peer, b, &path, PAGE_BYTES)
            .await
            .map_err(|source| CatalogError::Request {
                backend: b.name.clone(),
                authority: b.authority.clone(),
                source,
            })?;
        if head.status != StatusCode::OK {
            return Err(CatalogError::Status {
                backend: b.name.clone(),
                status: head.status.as_u16(),
                path,
            });
        }
        let v: serde_json::Value =
            serde_json::from_slice(&body).map_err(|source| CatalogError::Json {
                backend: b.name.clone(),
                source,
            })?;
        if let Some(list) = v.get("repositories").and_then(|r| r.as_array()) {
            out.extend(list.iter().filter_map(|x| x.as_str().map(str::to_string)));
        }
        next = head
            .headers
            .get("link")
            .and_then(|l| l.to_str().ok())
            .and_then(|l| next_link(l, prefix));
    }
    Ok(out)
}

/// The path of a `rel="next"` link, made relative to the backend.
fn next_link(link: &str, prefix: &str) -> Option<String> {
    let start = link.find('<')? + 1;
    let end = link[start..].find('>')? + start;
    let url = &link[start..end];
    let path = match url.find("://") {
        Some(i) => &url[i + 3..][url[i + 3..].find('/')?..],
        None => url,
    };
    path.starts_with(prefix).then(|| path.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn next_links() {
        assert_eq!(
            super::next_link("</v2/_catalog?last=a&n=2>; rel=\"next\"", "/v2").as_deref(),
            Some("/v2/_catalog?last=a&n=2")
        );
        assert_eq!(
            super::next_link("<http://h:5000/v2/_catalog?n=1>; rel=\"next\"", "/v2").as_deref(),
            Some("/v2/_catalog?n=1")
        );
        assert_eq!(
            super::next_link("<http://h:5000/other>; rel=\"next\"", "/v2"),
            None
        );
    }
}
