//! Walks repositories through the registry API (catalog → tags → one HEAD
//! per tag) and finds schema1 manifests, including children of lists.
//! A backend that fails is recorded and the walk goes on.

use super::classify::{self, Kind, SCHEMA1};
use super::client::{next_link, Client, ClientError, ACCEPT_ALL, LIST_LIMIT, MANIFEST_LIMIT};
use super::Progress;
use crate::config::{RepoType, Repository};
use http::{Method, StatusCode};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;

/// Hard stop on pages per catalog or tag list.
const MAX_PAGES: usize = 100_000;

/// One schema1 manifest and every tag that names it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub repository: String,
    pub image: String,
    /// The name on the backend (prefix included).
    #[serde(skip)]
    pub backend_name: String,
    pub tags: Vec<String>,
    /// Empty when distribution 3 refused to read it (no digest given).
    pub digest: String,
    pub media_type: String,
    /// Set when the schema1 manifest is a child of this list/index digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,
    pub remote: bool,
    pub note: String,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Summary {
    pub repositories: usize,
    pub images: usize,
    pub tags: usize,
    pub schema1: usize,
    pub errors: Vec<String>,
}

/// Every tag that answered, whatever its type (for the AQL endpoint).
#[derive(Debug, Clone)]
pub struct TagInfo {
    pub repository: String,
    pub image: String,
    pub tag: String,
    pub digest: String,
    pub media_type: String,
}

#[derive(Debug, Default)]
pub struct Report {
    pub rows: Vec<Row>,
    pub all: Vec<TagInfo>,
    pub summary: Summary,
}

/// A tag's answer.
struct Head {
    repo: Arc<Repository>,
    backend_name: String,
    tag: String,
    kind: Kind,
    digest: String,
    media_type: String,
}

/// Runs `f` over `items` with at most `n` at once; results in any order.
pub async fn bounded<I, T, F, Fut>(items: Vec<I>, n: usize, f: F) -> Vec<T>
where
    F: Fn(I) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        while set.len() >= n.max(1) {
            if let Some(Ok(r)) = set.join_next().await {
                out.push(r);
            }
        }
        set.spawn(f(item));
    }
    while let Some(r) = set.join_next().await {
        if let Ok(r) = r {
            out.push(r);
        }
    }
    out
}

/// Why a catalog or tag list could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("more than {MAX_PAGES} pages at {0}")]
    TooLong(String),
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("GET {path}: {status} {body}")]
    Status {
        path: String,
        status: StatusCode,
        body: String,
    },
    #[error("GET {path}: {source}")]
    Json {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Every page of a paged list (`_catalog` or `tags/list`), JSON field `field`.
async fn paged(
    client: &Client,
    repo: &Repository,
    first: String,
    field: &str,
) -> Result<Vec<String>, ListError> {
    let mut out = Vec::new();
    let mut path = Some(first);
    let mut pages = 0;
    while let Some(p) = path.take() {
        pages += 1;
        if pages > MAX_PAGES {
            return Err(ListError::TooLong(p));
        }
        let r = client
            .send(
                &repo.backend,
                Method::GET,
                &p,
                &[("Accept", "application/json")],
                None,
                LIST_LIMIT,
            )
            .await?;
        if r.status.as_u16() == 404 && field == "tags" {
            return Ok(out); // deleted between catalog and now
        }
        if !r.status.is_success() {
            return Err(ListError::Status {
                path: p,
                status: r.status,
                body: String::from_utf8_lossy(&r.body[..r.body.len().min(300)]).into_owned(),
            });
        }
        let v: serde_json::Value =
            serde_json::from_slice(&r.body).map_err(|source| ListError::Json {
                path: p.clone(),
                source,
            })?;
        if let Some(items) = v.get(field).and_then(|a| a.as_array()) {
            out.extend(items.iter().filter_map(|s| s.as_str().map(str::to_string)));
        }
        path = next_link(&r.headers);
    }
    Ok(out)
}

/// Every name in the catalog `repo`'s backend shows for its prefix (shared
/// by the repositories on that backend; each filters by its own prefix).
async fn images(client: &Client, repo: &Repository) -> Result<Vec<String>, ListError> {
    let prefix = repo.backend.v2_prefix_for(&repo.key);
    paged(
        client,
        repo,
        format!("{prefix}/_catalog?n=1000"),
        "repositories",
    )
    .await
}

pub fn manifest_path(repo: &Repository, backend_name: &str, reference: &str) -> String {
    format!(
        "{}/{backend_name}/manifests/{reference}",
        repo.backend.v2_prefix_for(&repo.key)
    )
}

/// HEAD one reference; falls back to a GET when the type says nothing or
/// the backend answered 500 (distribution 3 explains itself in the body).
async fn head(
    client: &Client,
    repo: &Repository,
    name: &str,
    reference: &str,
) -> (Kind, String, String) {
    let path = manifest_path(repo, name, reference);
    let accept = [("Accept", ACCEPT_ALL)];
    let r = match client
        .send(&repo.backend, Method::HEAD, &path, &accept, None, 0)
        .await
    {
        Ok(r) => r,
        Err(e) => return (Kind::Failed(0), String::new(), e.to_string()),
    };
    let ct = r.header("content-type").unwrap_or("").to_string();
    let digest = r.header("docker-content-digest").unwrap_or("").to_string();
    let kind = classify::classify(r.status.as_u16(), Some(&ct));
    if !matches!(kind, Kind::Unknown | Kind::Failed(500)) {
        return (kind, digest, ct);
    }
    let g = match client
        .send(
            &repo.backend,
            Method::GET,
            &path,
            &accept,
            None,
            MANIFEST_LIMIT,
        )
        .await
    {
        Ok(g) => g,
        Err(e) => return (Kind::Failed(0), digest, e.to_string()),
    };
    if classify::is_v3_schema1_error(g.status.as_u16(), &g.body) {
        return (Kind::Schema1Unreadable, digest, SCHEMA1.into());
    }
    if !g.status.is_success() {
        return (Kind::Failed(g.status.as_u16()), digest, ct);
    }
    (classify::classify_body(&g.body), digest, ct)
}

/// Scans the given repositories. `concurrency` bounds requests in flight.
pub async fn scan(
    client: &Client,
    repos: &[Arc<Repository>],
    concurrency: usize,
    progress: Arc<dyn Progress>,
) -> Report {
    let mut summary = Summary {
        repositories: repos.len(),
        ..Summary::default()
    };
    // Catalogs, once per (backend, prefix).
    let mut catalogs: HashMap<(String, String), Result<Vec<String>, ListError>> = HashMap::new();
    let mut named: Vec<(Arc<Repository>, String)> = Vec::new();
    for repo in repos {
        let key = (
            repo.backend.name.clone(),
            repo.backend.v2_prefix_for(&repo.key).into_owned(),
        );
        if !catalogs.contains_key(&key) {
            progress.message(&format!("catalog of {}", repo.backend.name));
            catalogs.insert(key.clone(), images(client, repo).await);
        }
        match catalogs.get(&key) {
            Some(Ok(names)) => named.extend(
                names
                    .iter()
                    .filter(|n| repo.image_of(n).is_some())
                    .map(|n| (repo.clone(), n.clone())),
            ),
            Some(Err(e)) => summary.errors.push(format!(
                "repository {} (backend {}): catalog: {e}",
                repo.key, repo.backend.name
            )),
            None => {}
        }
    }
    summary.images = named.len();
    // Tags of every image.
    progress.message("listing tags");
    let listed = bounded(named, concurrency, |(repo, name)| {
        let client = client.clone();
        async move {
            let first = format!(
                "{}/{name}/tags/list?n=1000",
                repo.backend.v2_prefix_for(&repo.key)
            );
            let got = paged(&client, &repo, first, "tags").await;
            (repo, name, got)
        }
    })
    .await;
    let mut jobs = Vec::new();
    for (repo, name, got) in listed {
        match got {
            Ok(tags) => jobs.extend(tags.into_iter().map(|t| (repo.clone(), name.clone(), t))),
            Err(e) => summary.errors.push(format!(
                "repository {} image {}: tags: {e}",
                repo.key,
                repo.image_of(&name).unwrap_or(&name)
            )),
        }
    }
    summary.tags = jobs.len();
    progress.start(jobs.len() as u64, "tags");
    // One HEAD per tag.
    let heads = bounded(jobs, concurrency, |(repo, name, tag)| {
        let client = client.clone();
        let progress = progress.clone();
        async move {
            let (kind, digest, media_type) = head(&client, &repo, &name, &tag).await;
            progress.inc(1);
            Head {
                repo,
                backend_name: name,
                tag,
                kind,
                digest,
                media_type,
            }
        }
    })
    .await;
    progress.finish();
    // Group by (repository, image, digest).
    type Key = (String, String, String);
    let mut groups: BTreeMap<Key, (Arc<Repository>, Kind, String, Vec<String>)> = BTreeMap::new();
    let mut all = Vec::with_capacity(heads.len());
    for h in heads {
        let image = h.repo.image_of(&h.backend_name).unwrap_or("").to_string();
        if !matches!(h.kind, Kind::Failed(_) | Kind::Missing) {
            all.push(TagInfo {
                repository: h.repo.key.clone(),
                image: image.clone(),
                tag: h.tag.clone(),
                digest: h.digest.clone(),
                media_type: h
                    .media_type
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string(),
            });
        }
        match &h.kind {
            Kind::Failed(s) => {
                summary.errors.push(format!(
                    "repository {} image {image} tag {}: HEAD failed ({}): {}",
                    h.repo.key,
                    h.tag,
                    if *s == 0 {
                        "no answer".into()
                    } else {
                        s.to_string()
                    },
                    h.media_type
                ));
                continue;
            }
            Kind::Missing | Kind::Image | Kind::Unknown => continue,
            Kind::Schema1 | Kind::List | Kind::Schema1Unreadable => {}
        }
        // Unreadable ones have no digest: one group per tag.
        let gd = if h.digest.is_empty() {
            format!("tag:{}", h.tag)
        } else {
            h.digest.clone()
        };
        let g = groups
            .entry((h.repo.key.clone(), h.backend_name.clone(), gd))
            .or_insert_with(|| (h.repo.clone(), h.kind.clone(), h.media_type.clone(), vec![]));
        g.3.push(h.tag);
    }
    let mut lists = Vec::new();
    let mut rows = Vec::new();
    for ((_, backend_name, digest), (repo, kind, media_type, mut tags)) in groups {
        tags.sort();
        let digest = if digest.starts_with("tag:") {
            String::new()
        } else {
            digest
        };
        if kind == Kind::List {
            lists.push((repo, backend_name, digest, tags));
            continue;
        }
        rows.push(row(&repo, &backend_name, tags, digest, media_type, None));
    }
    // Children of lists/indexes.
    let children = bounded(lists, concurrency, |(repo, name, digest, tags)| {
        let client = client.clone();
        async move {
            let mut found = Vec::new();
            let mut errors = Vec::new();
            let path = manifest_path(&repo, &name, &digest);
            let accept = [("Accept", ACCEPT_ALL)];
            let body = match client
                .send(
                    &repo.backend,
                    Method::GET,
                    &path,
                    &accept,
                    None,
                    MANIFEST_LIMIT,
                )
                .await
            {
                Ok(r) if r.status.is_success() => r.body,
                Ok(r) => {
                    errors.push(format!(
                        "repository {} list {digest}: GET {}",
                        repo.key, r.status
                    ));
                    return (found, errors);
                }
                Err(e) => {
                    errors.push(format!("repository {} list {digest}: {e}", repo.key));
                    return (found, errors);
                }
            };
            for c in classify::suspect_children(&body) {
                let (kind, d, ct) = head(&client, &repo, &name, &c.digest).await;
                match kind {
                    Kind::Schema1 | Kind::Schema1Unreadable => found.push(row(
                        &repo,
                        &name,
                        tags.clone(),
                        if d.is_empty() { c.digest.clone() } else { d },
                        ct,
                        Some(digest.clone()),
                    )),
                    Kind::Failed(s) => errors.push(format!(
                        "repository {} list {digest} child {}: HEAD {s}",
                        repo.key, c.digest
                    )),
                    _ => {}
                }
            }
            (found, errors)
        }
    })
    .await;
    for (found, errors) in children {
        rows.extend(found);
        summary.errors.extend(errors);
    }
    rows.sort_by(|a, b| {
        (&a.repository, &a.image, &a.tags, &a.digest).cmp(&(
            &b.repository,
            &b.image,
            &b.tags,
            &b.digest,
        ))
    });
    summary.errors.sort();
    summary.schema1 = rows.len();
    all.sort_by(|a, b| (&a.repository, &a.image, &a.tag).cmp(&(&b.repository, &b.image, &b.tag)));
    Report { rows, all, summary }
}

fn row(
    repo: &Repository,
    backend_name: &str,
    tags: Vec<String>,
    digest: String,
    media_type: String,
    list: Option<String>,
) -> Row {
    let remote = repo.kind == RepoType::Remote;
    let mut notes = Vec::new();
    if remote {
        notes.push("cache needs cleaning".to_string());
    }
    if digest.is_empty() {
        notes.push("backend cannot read schema1 (distribution 3)".to_string());
    }
    if let Some(l) = &list {
        notes.push(format!("child of list {l}"));
    }
    let media_type = media_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    Row {
        repository: repo.key.clone(),
        image: repo
            .image_of(backend_name)
            .unwrap_or(backend_name)
            .to_string(),
        backend_name: backend_name.to_string(),
        tags,
        digest,
        media_type,
        list,
        remote,
        note: notes.join("; "),
    }
}
