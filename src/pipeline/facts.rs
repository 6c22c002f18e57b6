//! The facts `policy::decide` is given that come from state: who the
//! client is, rate buckets, when read-only began and which uploads may
//! drain, and a protected tag's current digest (asked of the backend).

use crate::endpoint::Env;
use crate::oci::manifest as media;
use crate::oci::{Endpoint, ErrorCode, RegistryError};
use crate::policy::auth::Principal;
use crate::policy::decide::ReadOnlyNow;
use crate::policy::{network, read_only};
use crate::route::RepoTarget;
use http::StatusCode;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The client's address: the peer, or behind `trusted_proxies` the first
/// untrusted `X-Forwarded-For` hop.
pub fn client_ip(
    env: &Env<'_>,
    peer: Option<IpAddr>,
    head: &http::request::Parts,
) -> Option<IpAddr> {
    let trusted = &env.rt.cfg.policy.trusted_proxies;
    if trusted.is_empty() {
        return peer;
    }
    let xff: Vec<&str> = head
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    network::client_address(peer, &xff, trusted)
}

/// Limits and drains key on the user, or the address when anonymous.
pub fn who(p: &Principal, ip: Option<IpAddr>) -> String {
    match p.user() {
        Some(u) => format!("user:{u}"),
        None => {
            let mut s = String::with_capacity(24);
            s.push_str("addr:");
            match ip {
                Some(ip) => crate::observe::addr::push_ip(&mut s, ip),
                None => s.push('-'),
            }
            s
        }
    }
}

/// Takes one request from the gateway-wide and the repository's bucket;
/// the longer wait if either is empty.
pub fn over_limit(env: &Env<'_>, t: &RepoTarget, who: &str, now: Instant) -> Option<Duration> {
    let l = &env.shared.edge.limiter;
    let global = env.rt.cfg.policy.rate_limit.as_ref();
    let repo = t.repo.policy.rate_limit.as_ref();
    let g = global.and_then(|r| l.request(&format!("*|{who}"), r, now).err());
    let r = repo.and_then(|r| l.request(&format!("{}|{who}", t.repo.key), r, now).err());
    g.max(r)
}

/// The limit behind a limiter key (`over_limit`'s and `pace`'s, as another
/// instance reports it): `*|who` is the gateway-wide one, `REPO|who` the
/// repository's (repository keys hold no `|`).
pub fn rate_of(cfg: &crate::config::Config, key: &str) -> Option<crate::policy::rate::Rate> {
    match key.split_once('|')?.0 {
        "*" => cfg.policy.rate_limit,
        repo => cfg.repositories.get(repo)?.policy.rate_limit,
    }
}

/// Read-only as it stands for this request (the repository's, else the
/// whole gateway's), with whether this write may drain.
pub fn read_only(env: &Env<'_>, t: &RepoTarget, who: &str, now: Instant) -> Option<ReadOnlyNow> {
    let drain = &env.shared.edge.drain;
    let global = env.rt.cfg.policy.read_only.as_ref();
    // Switched through the repository API (the store), or in the config.
    let api = env
        .rt
        .store
        .get(crate::endpoint::repository_api::READ_ONLY_AREA, &t.repo.key);
    let repo = api.or_else(|| t.repo.policy.read_only.clone());
    // Both are kept current, so switching one off forgets its start.
    let g_since = drain.since(read_only::GLOBAL, global.is_some(), now);
    let r_since = drain.since(&t.repo.key, repo.is_some(), now);
    let (since, scope, reason) = match (repo.zip(r_since), global.zip(g_since)) {
        (Some((reason, since)), _) => (since, format!("repository {}", t.repo.key), reason),
        (None, Some((reason, since))) => (since, "this registry".to_string(), reason.clone()),
        _ => return None,
    };
    let uuid = match &t.endpoint {
        Some(Endpoint::Upload(id)) => Some(id.as_str()),
        Some(Endpoint::Manifest(_)) => None,
        // New uploads, mounts, blob deletes: never part of a drain.
        _ => {
            return Some(ReadOnlyNow {
                reason,
                scope,
                draining: false,
            })
        }
    };
    let drain_for = env.rt.cfg.policy.drain;
    Some(ReadOnlyNow {
        reason,
        scope,
        draining: drain.draining(since, drain_for, now, &t.repo.key, &t.image, who, uuid),
    })
}

/// A GET's body is paced when a pull byte rate applies.
pub fn pace(
    env: &Env<'_>,
    t: Option<&RepoTarget>,
    method: &http::Method,
    who: &str,
) -> Option<crate::pipeline::Pace> {
    if method != http::Method::GET {
        return None;
    }
    let t = t?;
    let (key, rate) = match t
        .repo
        .policy
        .rate_limit
        .and_then(|r| r.pull_bytes_per_second)
    {
        Some(r) => (format!("{}|{who}", t.repo.key), r),
        None => {
            let r = env.rt.cfg.policy.rate_limit?.pull_bytes_per_second?;
            (format!("*|{who}"), r)
        }
    };
    Some(crate::pipeline::Pace {
        key,
        bytes_per_second: rate,
    })
}

/// Every manifest type, so the backend answers the stored manifest (and
/// its digest) rather than a conversion.
const ACCEPT_ALL: [&str; 6] = [
    media::OCI_INDEX,
    media::OCI_MANIFEST,
    media::MANIFEST_LIST,
    media::SCHEMA2,
    media::SCHEMA1_SIGNED,
    media::SCHEMA1,
];

/// The digest a tag points to on the backend now; None when it does not
/// exist.
pub async fn current_digest(
    env: &Env<'_>,
    t: &RepoTarget,
) -> Result<Option<String>, RegistryError> {
    let b = &t.repo.backend;
    let unavailable = |why: String| {
        RegistryError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            format!(
                "cannot check immutable tag in repository {}: {why}",
                t.repo.key
            ),
        )
    };
    let mut req = pingora::http::RequestHeader::build("HEAD", t.backend_path.as_bytes(), None)
        .map_err(|e| unavailable(e.to_string()))?;
    let headers = [
        ("Host", b.authority.clone()),
        ("Accept", ACCEPT_ALL.join(", ")),
    ];
    for (k, v) in headers
        .into_iter()
        .chain(crate::upstream::credentials_header(b))
    {
        req.insert_header(k, v)
            .map_err(|e| unavailable(e.to_string()))?;
    }
    let peer = env.rt.peers.peer(b);
    let (head, _) = crate::upstream::request(&env.shared.connector, &peer, b, req, None, 0)
        .await
        .map_err(|e| unavailable(format!("backend {}: {e}", b.name)))?;
    match head.status {
        StatusCode::OK => head
            .headers
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(|d| Some(d.to_string()))
            .ok_or_else(|| unavailable("the backend sent no Docker-Content-Digest".into())),
        StatusCode::NOT_FOUND => Ok(None),
        s => Err(unavailable(format!("backend {} answered {s}", b.name))),
    }
}

/// Learns from a backend's answer: an upload it opened (for the drain).
pub fn learn(env: &Env<'_>, t: &RepoTarget, who: &str, status: u16, location: Option<&str>) {
    if status != 202 || !matches!(t.endpoint, Some(Endpoint::UploadStart)) {
        return;
    }
    if let Some(id) = location.and_then(read_only::upload_uuid) {
        env.shared
            .edge
            .drain
            .opened(id, &t.repo.key, &t.image, who, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_of_reads_the_limit_behind_a_key() {
        let text = r#"
[tls]
cert = "c.pem"
key = "k.pem"
[[listen]]
address = "127.0.0.1:5443"
method = "path"
[policy]
rate_limit = { requests_per_second = 2, burst = 4 }
[backends.local]
url = "http://127.0.0.1:5000"
[repositories.r]
backend = "local"
name_prefix = "r/"
rate_limit = { requests_per_second = 5, burst = 5 }
[repositories.free]
backend = "local"
name_prefix = "free/"
"#;
        let cfg = crate::config::parse(text, std::path::Path::new("/x/d.toml")).unwrap();
        let rps = |k: &str| rate_of(&cfg, k).map(|r| r.requests_per_second);
        let cases = [
            ("*|user:alice", Some(2.0)),
            ("r|user:alice", Some(5.0)),
            ("r|addr:10.0.0.1", Some(5.0)),
            ("free|user:alice", None),
            ("gone|user:alice", None),
            ("no separator", None),
        ];
        for (key, want) in cases {
            assert_eq!(rps(key), want, "{key}");
        }
    }
}
