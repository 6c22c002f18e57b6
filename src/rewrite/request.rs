//! Request edits: the backend query (mount sources, token scopes) and the
//! forwarding headers.

use super::query;
use crate::config::{Backend, BackendKind};
use crate::observe::addr;
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

/// The query to send upstream, rebuilt from decoded values. `from=`
/// (cross-repository mount) is mapped to the backend name when it lies in
/// the same repository key; otherwise (another key, a repeated or lone
/// `mount`/`from`) the mount is dropped so the client falls back to an
/// ordinary upload (202): another key may live on another backend, and must
/// not leak across keys.
pub fn upstream_query(
    query: Option<&str>,
    endpoint: Option<&Endpoint>,
    repo_key: &str,
    names: &dyn NameMap,
) -> Option<String> {
    let mut ps = query::parse(query?);
    if matches!(endpoint, Some(Endpoint::UploadStart)) {
        let mount = query::values(&ps, "mount").count();
        let froms: Vec<&str> = query::values(&ps, "from").collect();
        let mapped = match (mount, froms.as_slice()) {
            (1, [from]) => names
                .to_backend(from)
                .filter(|(key, _)| key == repo_key)
                .map(|(_, backend_name)| backend_name),
            _ => None,
        };
        match mapped {
            Some(b) => ps
                .iter_mut()
                .filter(|(k, _)| k == "from")
                .for_each(|(_, v)| *v = b.clone()),
            None => ps.retain(|(k, _)| k != "from" && k != "mount"),
        }
    }
    (!ps.is_empty()).then(|| query::build(&ps))
}

/// Parameters of a token request (RFC 6749 form and the Docker token GET)
/// that may be forwarded to a backend's token service.
const TOKEN_PARAMS: &[&str] = &[
    "service",
    "scope",
    "account",
    "client_id",
    "offline_token",
    "grant_type",
    "access_type",
    "username",
    "password",
    "refresh_token",
];

/// A token request's parameters for the backend: only the token request's
/// own keys, and each `scope=repository:<name>:<actions>` mapped from the
/// client's name to the backend's. Scopes for names the client cannot
/// address are dropped: the backend could not grant them on the client's
/// behalf anyway.
pub fn token_params(params: &[(String, String)], names: &dyn NameMap) -> query::Pairs {
    let mut out = Vec::new();
    for (k, v) in params {
        if !TOKEN_PARAMS.contains(&k.as_str()) {
            continue;
        }
        if k != "scope" {
            out.push((k.clone(), v.clone()));
            continue;
        }
        let mapped: Vec<String> = v
            .split(' ')
            .filter(|s| !s.is_empty())
            .filter_map(|s| map_scope(s, |n| names.to_backend(n).map(|(_, b)| b)))
            .collect();
        if !mapped.is_empty() {
            out.push(("scope".into(), mapped.join(" ")));
        }
    }
    out
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
        let mut xff = String::with_capacity(48);
        if let Some(p) = prior_xff.filter(|p| !p.trim().is_empty()) {
            xff.push_str(p);
            xff.push_str(", ");
        }
        addr::push_ip(&mut xff, ip);
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
        let up = Endpoint::UploadStart;
        let cases: &[(&str, Option<&str>)] = &[
            // same key, with name prefix: from becomes the backend name
            (
                "mount=sha256:aa&from=team-a%2Fother",
                Some("mount=sha256%3Aaa&from=team-a%2Fother"),
            ),
            (
                "mount=sha256:aa&from=team-a/other",
                Some("mount=sha256%3Aaa&from=team-a%2Fother"),
            ),
            // another key: the mount is dropped entirely
            ("mount=sha256:aa&from=docker-local%2Fx", None),
            ("mount=sha256:aa&from=unknown%2Fx", None),
            (
                "mount=sha256:aa&from=docker-local%2Fx&digest=sha256:bb",
                Some("digest=sha256%3Abb"),
            ),
            ("digest=sha256:bb", Some("digest=sha256%3Abb")),
            // an encoded key is seen as what the backend will see
            ("mount=sha256:aa&%66rom=docker-local%2Fx", None),
            ("%6Dount=sha256:aa&from=docker-local%2Fx", None),
            // repeated or lone mount parameters: no mount at all
            (
                "mount=sha256:aa&from=team-a%2Fok&from=docker-local%2Fx",
                None,
            ),
            ("mount=sha256:aa&mount=sha256:bb&from=team-a%2Fok", None),
            ("mount=sha256:aa", None),
            ("from=team-a%2Fok", None),
            // `;` is no separator for dockgate, and goes out encoded
            (
                "x=1;from=docker-local%2Fx",
                Some("x=1%3Bfrom%3Ddocker-local%2Fx"),
            ),
        ];
        for (q, want) in cases {
            assert_eq!(
                upstream_query(Some(q), Some(&up), "team-a", &names).as_deref(),
                *want,
                "{q}"
            );
        }
        // other endpoints: rebuilt, nothing mapped
        assert_eq!(
            upstream_query(
                Some("n=2&last=x%2Fy"),
                Some(&Endpoint::TagsList),
                "team-a",
                &names
            )
            .as_deref(),
            Some("n=2&last=x%2Fy")
        );
        assert_eq!(upstream_query(None, Some(&up), "team-a", &names), None);
    }

    #[test]
    fn token_params_are_filtered_and_mapped() {
        let q = query::parse("service=reg&scope=repository%3Ateam-a%2Fapp%3Apull%2Cpush&scope=repository:nope/x:pull&scope=registry:catalog:*&next=https://evil&account=u&%73cope=repository:docker-local/a:pull");
        let got = query::build(&token_params(&q, &names));
        assert_eq!(
            got,
            "service=reg&scope=repository%3Ateam-a%2Fapp%3Apull%2Cpush&scope=registry%3Acatalog%3A*&account=u&scope=repository%3Aa%3Apull"
        );
        let q = query::parse(
            "scope=repository%3Adocker-local%2Flib%2Fapp%3Apull+repository:team-a/b:push",
        );
        assert_eq!(
            token_params(&q, &names),
            vec![(
                "scope".to_string(),
                "repository:lib/app:pull repository:team-a/b:push".to_string()
            )]
        );
        assert_eq!(
            map_scope("repository(plugin):a/b:pull", |n| Some(format!("x/{n}"))).as_deref(),
            Some("repository(plugin):x/a/b:pull")
        );
        assert_eq!(map_scope("repository:bad", |n| Some(n.into())), None);
    }
}
