//! Request edits: the backend query (mount sources, token scopes) and the
//! forwarding headers.

use super::query::{decode, encode, join, pairs};
use crate::config::{Backend, BackendKind};
use crate::oci::Endpoint;
use std::net::IpAddr;

/// Maps a client-side repository name to (repository key, backend name).
pub trait NameMap {
    fn to_backend(&self, client_name: &str) -> Option<(String, String)>;
}

impl<F: Fn(&str) -> Option<(String, String)>> NameMap for F {
    fn to_backend(&self, client_name: &str) -> Option<(String, String)> {
        self(client_name)
    }
}

/// The query to send upstream. `from=` (cross-repository mount) is mapped to
/// the backend name when it lies in the same repository key; otherwise the
/// mount is dropped so the client falls back to an ordinary upload (202):
/// another key may live on another backend, and must not leak across keys.
pub fn upstream_query(
    query: Option<&str>,
    endpoint: Option<&Endpoint>,
    repo_key: &str,
    names: &dyn NameMap,
) -> Option<String> {
    let q = query?;
    if !matches!(endpoint, Some(Endpoint::UploadStart)) || !q.contains("from=") {
        return Some(q.to_string());
    }
    let ps = pairs(q);
    let mapped = ps
        .iter()
        .find(|(k, _)| *k == "from")
        .and_then(|(_, v)| decode(v))
        .and_then(|from| names.to_backend(&from))
        .filter(|(key, _)| key == repo_key)
        .map(|(_, backend_name)| encode(&backend_name));
    let kept: Vec<(&str, &str)> = match &mapped {
        Some(from) => ps
            .iter()
            .map(|&(k, v)| {
                if k == "from" {
                    (k, from.as_str())
                } else {
                    (k, v)
                }
            })
            .collect(),
        None => ps
            .into_iter()
            .filter(|(k, _)| *k != "from" && *k != "mount")
            .collect(),
    };
    if kept.is_empty() {
        None
    } else {
        Some(join(&kept))
    }
}

/// Rewrites each `scope=repository:<name>:<actions>` of a token request from
/// client names to backend names. Scopes for unknown names are dropped: the
/// backend could not grant them on the client's behalf anyway.
pub fn token_query(query: &str, names: &dyn NameMap) -> String {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in pairs(query) {
        if k != "scope" {
            out.push((k.to_string(), v.to_string()));
            continue;
        }
        let Some(scopes) = decode(v) else { continue };
        let mapped: Vec<String> = scopes
            .split(' ')
            .filter_map(|s| map_scope(s, |n| names.to_backend(n).map(|(_, b)| b)))
            .collect();
        if !mapped.is_empty() {
            out.push(("scope".into(), encode(&mapped.join(" "))));
        }
    }
    let refs: Vec<(&str, &str)> = out.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    join(&refs)
}

/// `repository:<name>:<actions>` with `<name>` mapped; other resource types
/// (e.g. `registry:catalog:*`) are kept. None when the name can't be mapped.
pub fn map_scope(scope: &str, map: impl Fn(&str) -> Option<String>) -> Option<String> {
    let mut parts = scope.splitn(2, ':');
    let kind = parts.next().unwrap_or("");
    let rest = parts.next().unwrap_or("");
    if !kind.starts_with("repository") {
        return Some(scope.to_string());
    }
    let (name, actions) = rest.rsplit_once(':')?;
    Some(format!("{kind}:{}:{actions}", map(name)?))
}

/// Headers telling the backend how the client reached dockgate, so it builds
/// URLs (upload Location) on the client-facing origin.
pub fn forwarded_headers(
    client_host: &str,
    listen_port: u16,
    client_ip: Option<IpAddr>,
    prior_xff: Option<&str>,
    backend: &Backend,
) -> Vec<(&'static str, String)> {
    let mut h = vec![
        ("X-Forwarded-Proto", "https".to_string()),
        ("X-Forwarded-Host", client_host.to_string()),
        ("X-Forwarded-Port", listen_port.to_string()),
    ];
    if let Some(ip) = client_ip {
        let xff = match prior_xff {
            Some(p) if !p.trim().is_empty() => format!("{p}, {ip}"),
            _ => ip.to_string(),
        };
        h.push(("X-Forwarded-For", xff));
    }
    if backend.kind == BackendKind::Artifactory {
        h.push((
            "X-JFrog-Override-Base-Url",
            format!("https://{client_host}"),
        ));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &str) -> Option<(String, String)> {
        let (key, image) = n.split_once('/')?;
        match key {
            "docker-local" => Some((key.into(), image.into())),
            "team-a" => Some((key.into(), format!("team-a/{image}"))),
            _ => None,
        }
    }

    #[test]
    fn mount_from_is_mapped_or_dropped() {
        let d = "sha256:aa";
        let up = Endpoint::UploadStart;
        let cases: Vec<(&str, Option<String>)> = vec![
            // same key, with name prefix: from becomes the backend name
            (
                "mount=sha256:aa&from=team-a%2Fother",
                Some(format!("mount={d}&from=team-a%2Fother")),
            ),
            (
                "mount=sha256:aa&from=team-a/other",
                Some(format!("mount={d}&from=team-a%2Fother")),
            ),
            // another key: the mount is dropped entirely
            ("mount=sha256:aa&from=docker-local%2Fx", None),
            ("mount=sha256:aa&from=unknown%2Fx", None),
            (
                "mount=sha256:aa&from=docker-local%2Fx&digest=sha256:bb",
                Some("digest=sha256:bb".into()),
            ),
            ("digest=sha256:bb", Some("digest=sha256:bb".into())),
        ];
        for (q, want) in cases {
            assert_eq!(
                upstream_query(Some(q), Some(&up), "team-a", &names),
                want,
                "{q}"
            );
        }
        // only upload starts are touched
        let q = "n=2&last=x%2Fy";
        assert_eq!(
            upstream_query(Some(q), Some(&Endpoint::TagsList), "team-a", &names).as_deref(),
            Some(q)
        );
        assert_eq!(upstream_query(None, Some(&up), "team-a", &names), None);
    }

    #[test]
    fn token_scopes_are_mapped() {
        let q = "service=reg&scope=repository%3Ateam-a%2Fapp%3Apull%2Cpush&scope=repository:nope/x:pull&scope=registry:catalog:*";
        let got = token_query(q, &names);
        assert_eq!(
            got,
            "service=reg&scope=repository%3Ateam-a%2Fapp%3Apull%2Cpush&scope=registry%3Acatalog%3A%2A"
        );
        let got = token_query("scope=repository%3Adocker-local%2Flib%2Fapp%3Apull", &names);
        assert_eq!(got, "scope=repository%3Alib%2Fapp%3Apull");
        assert_eq!(
            map_scope("repository(plugin):a/b:pull", |n| Some(format!("x/{n}"))).as_deref(),
            Some("repository(plugin):x/a/b:pull")
        );
        assert_eq!(map_scope("repository:bad", |n| Some(n.into())), None);
    }
}
