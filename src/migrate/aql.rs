//! `POST /api/search/aql`: the one Artifactory query the schema1 page
//! gives, over a live scan. A compatibility door for existing scripts,
//! not an AQL engine: anything else is refused with what is supported.
//! Each tag is an item `manifest.json` at `<image>/<tag>` in its repository.

use super::client::Client;
use super::progress::Silent;
use super::scan;
use crate::config::{Config, Repository};
use crate::upstream::Peers;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub const SUPPORTED: &str = "supported: items.find({\"$and\":[…]}) or items.find({…}) over \
name, type, repo and @docker.manifest.type, each a string or {\"$eq\"|\"$ne\"|\"$match\": string} \
($match takes * and ?), then optionally .include(…) of repo, path, name, type, \
@docker.manifest, @docker.repoName, @docker.manifest.type, @docker.manifest.digest";

/// Bounds on one query: time, tags looked at, requests in flight.
const TIME_LIMIT: Duration = Duration::from_secs(300);
const CONCURRENCY: usize = 8;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AqlError {
    #[error("unsupported AQL: {0}; {SUPPORTED}")]
    Unsupported(String),
    #[error("another AQL query is running; try again shortly")]
    Busy,
    #[error("the scan took longer than {0} s")]
    Timeout(u64),
    #[error("scan failed: {0}")]
    Scan(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Name,
    Type,
    Repo,
    ManifestType,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Eq(String),
    Ne(String),
    Match(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub criteria: Vec<(Field, Op)>,
    /// Fields to return; empty: repo, path, name, type.
    pub include: Vec<String>,
}

const INCLUDABLE: [&str; 8] = [
    "repo",
    "path",
    "name",
    "type",
    "@docker.manifest",
    "@docker.repoName",
    "@docker.manifest.type",
    "@docker.manifest.digest",
];

fn unsupported(m: impl Into<String>) -> AqlError {
    AqlError::Unsupported(m.into())
}

pub fn parse(text: &str) -> Result<Query, AqlError> {
    let t = text.trim();
    let rest = t
        .strip_prefix("items.find(")
        .ok_or_else(|| unsupported("the query must start with items.find("))?;
    let mut de = serde_json::Deserializer::from_str(rest).into_iter::<serde_json::Value>();
    let criteria = match de.next() {
        Some(Ok(v)) => v,
        Some(Err(e)) => return Err(unsupported(format!("the find criteria are not JSON: {e}"))),
        None => return Err(unsupported("items.find() needs criteria")),
    };
    let rest = rest[de.byte_offset()..].trim_start();
    let rest = rest
        .strip_prefix(')')
        .ok_or_else(|| unsupported("items.find(…) is not closed"))?
        .trim();
    let include = if rest.is_empty() {
        Vec::new()
    } else {
        let inner = rest
            .strip_prefix(".include(")
            .and_then(|r| r.trim_end().strip_suffix(')'))
            .ok_or_else(|| unsupported(format!("{rest:?} after items.find(…)")))?;
        let list: Vec<String> = serde_json::from_str(&format!("[{inner}]"))
            .map_err(|_| unsupported("include takes quoted field names"))?;
        for f in &list {
            if !INCLUDABLE.contains(&f.as_str()) {
                return Err(unsupported(format!("include of {f:?}")));
            }
        }
        list
    };
    let mut out = Vec::new();
    collect(&criteria, &mut out, true)?;
    Ok(Query {
        criteria: out,
        include,
    })
}

fn collect(v: &serde_json::Value, out: &mut Vec<(Field, Op)>, top: bool) -> Result<(), AqlError> {
    let obj = v
        .as_object()
        .ok_or_else(|| unsupported("criteria must be objects"))?;
    for (k, v) in obj {
        if k == "$and" {
            if !top {
                return Err(unsupported("nested $and"));
            }
            let items = v
                .as_array()
                .ok_or_else(|| unsupported("$and takes a list"))?;
            for i in items {
                collect(i, out, false)?;
            }
            continue;
        }
        let field = match k.as_str() {
            "name" => Field::Name,
            "type" => Field::Type,
            "repo" => Field::Repo,
            "@docker.manifest.type" => Field::ManifestType,
            other => return Err(unsupported(format!("criterion on {other:?}"))),
        };
        let op = match v {
            serde_json::Value::String(s) => Op::Eq(s.clone()),
            serde_json::Value::Object(o) if o.len() == 1 => {
                let (op, val) = o
                    .iter()
                    .next()
                    .ok_or_else(|| unsupported("empty operator"))?;
                let val = val
                    .as_str()
                    .ok_or_else(|| unsupported(format!("{op} takes a string")))?
                    .to_string();
                match op.as_str() {
                    "$eq" => Op::Eq(val),
                    "$ne" => Op::Ne(val),
                    "$match" => Op::Match(val),
                    other => return Err(unsupported(format!("operator {other}"))),
                }
            }
            _ => return Err(unsupported(format!("the value for {k:?}"))),
        };
        out.push((field, op));
    }
    Ok(())
}

/// Artifactory's `$match`: `*` any run, `?` one character.
pub fn wildcard(pattern: &str, s: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), s.chars().collect());
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

impl Op {
    fn test(&self, v: &str) -> bool {
        match self {
            Op::Eq(x) => x == v,
            Op::Ne(x) => x != v,
            Op::Match(p) => wildcard(p, v),
        }
    }
}

/// One tag as an Artifactory item.
#[derive(Debug, Clone)]
pub struct Item {
    pub repo: String,
    pub image: String,
    pub tag: String,
    pub media_type: String,
    pub digest: String,
}

impl Query {
    /// Repository keys the criteria pin (`repo` with `$eq`), to scan less.
    pub fn repos(&self) -> Vec<String> {
        self.criteria
            .iter()
            .filter_map(|(f, o)| match (f, o) {
                (Field::Repo, Op::Eq(k)) => Some(k.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn matches(&self, i: &Item) -> bool {
        self.criteria.iter().all(|(f, op)| match f {
            Field::Name => op.test("manifest.json"),
            Field::Type => op.test("file"),
            Field::Repo => op.test(&i.repo),
            Field::ManifestType => op.test(&i.media_type),
        })
    }

    /// Artifactory's result document.
    pub fn render(&self, items: &[Item]) -> serde_json::Value {
        let default = ["repo", "path", "name", "type"].map(String::from);
        let fields = if self.include.is_empty() {
            &default[..]
        } else {
            &self.include[..]
        };
        let results: Vec<serde_json::Value> = items
            .iter()
            .filter(|i| self.matches(i))
            .map(|i| {
                let mut o = serde_json::Map::new();
                let mut props = Vec::new();
                for f in fields {
                    let (k, v) = match f.as_str() {
                        "repo" => ("repo", i.repo.clone()),
                        "path" => ("path", format!("{}/{}", i.image, i.tag)),
                        "name" => ("name", "manifest.json".into()),
                        "type" => ("type", "file".into()),
                        "@docker.manifest" => ("docker.manifest", i.tag.clone()),
                        "@docker.repoName" => ("docker.repoName", i.image.clone()),
                        "@docker.manifest.type" => ("docker.manifest.type", i.media_type.clone()),
                        _ => ("docker.manifest.digest", i.digest.clone()),
                    };
                    if f.starts_with('@') {
                        props.push(serde_json::json!({ "key": k, "value": v }));
                    } else {
                        o.insert(k.into(), v.into());
                    }
                }
                if !props.is_empty() {
                    o.insert("properties".into(), props.into());
                }
                o.into()
            })
            .collect();
        let n = results.len();
        serde_json::json!({
            "results": results,
            "range": { "start_pos": 0, "end_pos": n, "total": n },
        })
    }
}

/// A connector of its own: the gateway's belongs to `Shared`, and the
/// scan's tasks need one they can hold.
fn connector() -> Arc<pingora::connectors::http::Connector> {
    static C: OnceLock<Arc<pingora::connectors::http::Connector>> = OnceLock::new();
    C.get_or_init(|| Arc::new(pingora::connectors::http::Connector::new(None)))
        .clone()
}

/// One query at a time: each is a full scan of what it names.
static RUNNING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Parses, scans what the criteria allow, answers the JSON body. All I/O
/// is async; the work is bounded by one query at a time and a time limit.
pub async fn answer(cfg: &Config, peers: &Peers, body: &[u8]) -> Result<Vec<u8>, AqlError> {
    let text = std::str::from_utf8(body).map_err(|_| unsupported("the body is not UTF-8"))?;
    let q = parse(text)?;
    let _permit = RUNNING.try_acquire().map_err(|_| AqlError::Busy)?;
    let keys = q.repos();
    let repos: Vec<Arc<Repository>> = if keys.is_empty() {
        cfg.repositories.values().cloned().collect()
    } else {
        keys.iter()
            .filter_map(|k| cfg.repositories.get(k).cloned())
            .collect()
    };
    let client = Client::new(connector(), peers.clone());
    let report = tokio::time::timeout(
        TIME_LIMIT,
        scan::scan(&client, &repos, CONCURRENCY, Arc::new(Silent)),
    )
    .await
    .map_err(|_| AqlError::Timeout(TIME_LIMIT.as_secs()))?;
    if !report.summary.errors.is_empty() && report.all.is_empty() {
        return Err(AqlError::Scan(report.summary.errors.join("; ")));
    }
    let items: Vec<Item> = report
        .all
        .iter()
        .map(|t| Item {
            repo: t.repository.clone(),
            image: t.image.clone(),
            tag: t.tag.clone(),
            media_type: t.media_type.clone(),
            digest: t.digest.clone(),
        })
        .collect();
    Ok(serde_json::to_vec_pretty(&q.render(&items)).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"items.find({"$and": [{"name":{"$eq":"manifest.json"}}, {"type":"file"}, {"repo":"docker-local"}, {"@docker.manifest.type":{"$ne":"application/vnd.docker.distribution.manifest.v2+json"}}]}).include("repo","path","@docker.manifest","@docker.repoName")"#;

    #[test]
    fn accepted_and_refused() {
        let q = parse(SEED).unwrap();
        assert_eq!(q.criteria.len(), 4);
        assert_eq!(q.repos(), ["docker-local"]);
        assert_eq!(
            q.include,
            ["repo", "path", "@docker.manifest", "@docker.repoName"]
        );
        let ok = [
            r#"items.find({"name":"manifest.json","@docker.manifest.type":{"$match":"application/vnd.docker.distribution.manifest.v1*"}})"#,
            "  items.find( {\"repo\": {\"$eq\": \"a\"}} ) \n",
            r#"items.find({"$and":[{"repo":"a"}]}).include("name", "@docker.manifest.type")"#,
        ];
        for t in ok {
            assert!(parse(t).is_ok(), "{t}");
        }
        let refused = [
            "",
            "builds.find({})",
            "items.find(",
            r#"items.find({"name":"x"}"#,
            r#"items.find({"size":{"$gt":1}})"#,
            r#"items.find({"name":{"$gt":"a"}})"#,
            r#"items.find({"$or":[{"name":"a"}]})"#,
            r#"items.find({"$and":[{"$and":[{"name":"a"}]}]})"#,
            r#"items.find({"name":"manifest.json"}).sort({"$asc":["name"]})"#,
            r#"items.find({"name":"manifest.json"}).include("size")"#,
            r#"items.find({"name":"manifest.json"}).limit(5)"#,
            r#"items.find({"name":1})"#,
            r#"items.find(["name"])"#,
        ];
        for t in refused {
            let e = parse(t).unwrap_err();
            assert!(e.to_string().contains("supported:"), "{t}: {e}");
        }
    }

    #[test]
    fn matching_and_shape() {
        assert!(wildcard(
            "application/*v1*",
            "application/vnd.docker.distribution.manifest.v1+prettyjws"
        ));
        assert!(wildcard("a?c", "abc") && !wildcard("a?c", "abbc") && wildcard("*", ""));
        let items = [
            Item {
                repo: "docker-local".into(),
                image: "app".into(),
                tag: "v1".into(),
                media_type: "application/vnd.docker.distribution.manifest.v1+prettyjws".into(),
                digest: "sha256:1".into(),
            },
            Item {
                repo: "docker-local".into(),
                image: "app".into(),
                tag: "v2".into(),
                media_type: "application/vnd.docker.distribution.manifest.v2+json".into(),
                digest: "sha256:2".into(),
            },
            Item {
                repo: "other".into(),
                image: "x".into(),
                tag: "v1".into(),
                media_type: "application/vnd.docker.distribution.manifest.v1+json".into(),
                digest: "sha256:3".into(),
            },
        ];
        let v = parse(SEED).unwrap().render(&items);
        assert_eq!(
            v,
            serde_json::json!({
                "results": [{"repo": "docker-local", "path": "app/v1", "properties": [
                    {"key": "docker.manifest", "value": "v1"},
                    {"key": "docker.repoName", "value": "app"}]}],
                "range": {"start_pos": 0, "end_pos": 1, "total": 1}
            })
        );
        let all = parse(r#"items.find({"name":"manifest.json"})"#)
            .unwrap()
            .render(&items);
        assert_eq!(all["range"]["total"], 3);
        assert_eq!(all["results"][2]["type"], "file");
    }
}
