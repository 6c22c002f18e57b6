//! Which repository a request addresses, by Artifactory's three methods:
//! the first path component (path), the Host's first label (subdomain), or
//! the listener itself (port). Depends only on std/http types and config.

use crate::config::{Config, ListenMethod, Repository};
use crate::oci::{self, ApiPath, Endpoint, RegistryError};
pub use crate::policy::auth::Target;

pub mod host;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub enum Routed {
    /// `GET /v2/`, answered locally.
    Ping,
    /// `/v2/_catalog` over these repositories; names get a `<key>/` prefix
    /// when `with_key` (path method).
    Catalog {
        repos: Vec<Arc<Repository>>,
        with_key: bool,
    },
    Repo(RepoTarget),
}

#[derive(Debug, Clone)]
pub struct RepoTarget {
    pub repo: Arc<Repository>,
    /// Client-side image name inside the repository (no key, no prefix).
    /// Empty for extension paths that name no image.
    pub image: String,
    /// None for unknown `/v2/` extension paths, which pass through.
    pub endpoint: Option<Endpoint>,
    /// Path on the backend, without query.
    pub backend_path: String,
}

/// The request's Host without port, lowercased.
pub fn host_name(host: &str) -> String {
    let h = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    h.trim_end_matches('.').to_ascii_lowercase()
}

/// Resolves a request. `Ok(None)` means the path is not under `/v2`.
pub fn route(
    cfg: &Config,
    method: &ListenMethod,
    host: Option<&str>,
    path: &str,
) -> Result<Option<Routed>, RegistryError> {
    let Some(api) = oci::path::parse(path)? else {
        return Ok(None);
    };
    let fixed_repo = |cfg: &Config| listener_repo(cfg, method, host);
    match api {
        ApiPath::Ping => Ok(Some(Routed::Ping)),
        ApiPath::Catalog => Ok(Some(match fixed_repo(cfg)? {
            Some(repo) => Routed::Catalog {
                repos: vec![repo],
                with_key: false,
            },
            None => Routed::Catalog {
                repos: cfg.repositories.values().cloned().collect(),
                with_key: true,
            },
        })),
        ApiPath::Repo { name, endpoint } => {
            let (repo, image) = match fixed_repo(cfg)? {
                Some(repo) => (repo, name),
                None => split_key(cfg, name)?,
            };
            if image.is_empty() {
                return Err(RegistryError::name_invalid(format!(
                    "{name:?} names a repository key but no image: use /v2/{}/<image>/...",
                    repo.key
                )));
            }
            if repo.name_prefix.len() + image.len() > oci::names::MAX_NAME_LEN {
                return Err(RegistryError::name_invalid("repository name too long"));
            }
            // Pushed piece by piece: every request is routed.
            let root = repo.backend.v2_prefix_for(&repo.key);
            let mut backend_path = String::with_capacity(root.len() + 1 + name.len() + 96);
            backend_path.push_str(&root);
            backend_path.push('/');
            backend_path.push_str(&repo.name_prefix);
            backend_path.push_str(image);
            endpoint.push_suffix(&mut backend_path);
            Ok(Some(Routed::Repo(RepoTarget {
                image: image.to_string(),
                repo,
                endpoint: Some(endpoint),
                backend_path,
            })))
        }
        ApiPath::Other { rest } => {
            let (repo, tail) = match fixed_repo(cfg)? {
                Some(repo) => (repo, rest),
                None => {
                    let (key, tail) = rest.split_once('/').unwrap_or((rest, ""));
                    let repo = lookup(cfg, key)?;
                    (repo, tail)
                }
            };
            let backend_path = format!(
                "{}/{}{}",
                repo.backend.v2_prefix_for(&repo.key),
                repo.name_prefix,
                tail
            );
            Ok(Some(Routed::Repo(RepoTarget {
                repo,
                image: String::new(),
                endpoint: None,
                backend_path,
            })))
        }
    }
}

/// The one repository a subdomain or port listener addresses; None for
/// path listeners, whose repository is in the path.
pub fn listener_repo(
    cfg: &Config,
    method: &ListenMethod,
    host: Option<&str>,
) -> Result<Option<Arc<Repository>>, RegistryError> {
    match method {
        ListenMethod::Path => Ok(None),
        ListenMethod::Port { repository } => lookup(cfg, repository).map(Some),
        ListenMethod::Subdomain { base_domain } => {
            let h = host.map(host_name).unwrap_or_default();
            let key = h
                .strip_suffix(base_domain.as_str())
                .and_then(|k| k.strip_suffix('.'))
                .filter(|k| !k.is_empty() && !k.contains('.'));
            let Some(key) = key else {
                return Err(RegistryError::name_unknown(format!(
                    "host {h:?} names no repository: use <repository-key>.{base_domain}"
                )));
            };
            lookup(cfg, key).map(Some)
        }
    }
}

fn lookup(cfg: &Config, key: &str) -> Result<Arc<Repository>, RegistryError> {
    cfg.repositories.get(key).cloned().ok_or_else(|| {
        RegistryError::name_unknown(format!(
            "repository key {key:?} is not configured on this gateway"
        ))
    })
}

/// `<key>/<image...>` → the repository and the image. A bare key has an
/// empty image, which callers refuse.
pub fn split_key<'a>(
    cfg: &Config,
    name: &'a str,
) -> Result<(Arc<Repository>, &'a str), RegistryError> {
    let (key, image) = name.split_once('/').unwrap_or((name, ""));
    Ok((lookup(cfg, key)?, image))
}

/// Client-facing name of an image in `repo`, as seen through `method`.
pub fn client_name(method: &ListenMethod, repo: &Repository, image: &str) -> String {
    match method {
        ListenMethod::Path => {
            let mut n = String::with_capacity(repo.key.len() + 1 + image.len());
            n.push_str(&repo.key);
            n.push('/');
            n.push_str(image);
            n
        }
        _ => image.to_string(),
    }
}

/// The reverse of routing a name: client-side name → (repository, image).
pub fn image_of(
    cfg: &Config,
    method: &ListenMethod,
    host: Option<&str>,
    client: &str,
) -> Option<(Arc<Repository>, String)> {
    if !oci::names::is_valid_name(client) {
        return None;
    }
    let probe = format!("/v2/{client}/tags/list");
    match route(cfg, method, host, &probe).ok()?? {
        Routed::Repo(t) if !t.image.is_empty() => Some((t.repo, t.image)),
        _ => None,
    }
}

/// Client-side name → (repository, backend name). Used for `?from=` and
/// token scopes.
pub fn backend_name_of(
    cfg: &Config,
    method: &ListenMethod,
    host: Option<&str>,
    client: &str,
) -> Option<(Arc<Repository>, String)> {
    let (repo, image) = image_of(cfg, method, host, client)?;
    let name = repo.backend_name(&image);
    Some((repo, name))
}

/// What authorisation decides on for `image` in `repo`: the canonical
/// (key, image) pair, plus every other repository whose namespace on the
/// same backend holds the same backend name and is at least as narrow, so
/// an overlap never grants what the narrower repository denies.
pub fn auth_target(cfg: &Config, repo: Arc<Repository>, image: &str) -> Target {
    let also = if image.is_empty() || cfg.repositories.len() == 1 {
        Vec::new()
    } else {
        let backend_name = repo.backend_name(image);
        let root = repo.backend.v2_prefix_for(&repo.key);
        cfg.repositories
            .values()
            .filter(|o| {
                o.key != repo.key
                    && o.backend.name == repo.backend.name
                    && o.backend.v2_prefix_for(&o.key) == root
                    && o.name_prefix.len() >= repo.name_prefix.len()
                    && backend_name.starts_with(o.name_prefix.as_str())
            })
            .cloned()
            .collect()
    };
    Target {
        repo,
        image: image.to_string(),
        also,
    }
}

#[cfg(test)]
pub(crate) mod tests;
