//! Repositories whose backend namespaces overlap: two keys on one backend
//! (same API root) where one `name_prefix` is a prefix of the other's, so
//! one image can be reached through both. Refused unless the wider key
//! says `allow_overlap = true`; roles are then decided on the backend name
//! (see `route::auth_target`).

use super::Repository;
use std::collections::BTreeMap;
use std::sync::Arc;

/// (wider, narrower) pairs; for equal prefixes, in key order.
pub fn overlaps(repos: &BTreeMap<String, Arc<Repository>>) -> Vec<(&Repository, &Repository)> {
    let mut out = Vec::new();
    let all: Vec<&Repository> = repos.values().map(|r| r.as_ref()).collect();
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            if a.backend.name != b.backend.name
                || a.backend.v2_prefix_for(&a.key) != b.backend.v2_prefix_for(&b.key)
            {
                continue;
            }
            if b.name_prefix.starts_with(a.name_prefix.as_str()) {
                out.push((*a, *b));
            } else if a.name_prefix.starts_with(b.name_prefix.as_str()) {
                out.push((*b, *a));
            }
        }
    }
    out
}

/// Why an overlap is refused, for the error message.
pub fn explain(wide: &Repository, narrow: &Repository) -> String {
    let shown = |p: &str| {
        if p.is_empty() {
            "every name".to_string()
        } else {
            format!("names under {p:?}")
        }
    };
    format!(
        "overlaps repository {:?} on backend {:?}: {:?} serves {} and {:?} serves {}, so one image \
         is reachable through both keys. Give them disjoint name_prefix values, or set \
         allow_overlap = true on [repositories.{}] (the narrower repository's roles then also \
         apply to its names reached through {:?})",
        narrow.key,
        wide.backend.name,
        wide.key,
        shown(&wide.name_prefix),
        narrow.key,
        shown(&narrow.name_prefix),
        wide.key,
        wide.key,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn finds_overlaps_on_one_backend_root() {
        let text = r#"
[tls]
cert = "c.pem"
key = "k.pem"
[[listen]]
address = "127.0.0.1:5443"
method = "path"
[backends.local]
url = "http://127.0.0.1:5000"
[backends.art]
url = "http://127.0.0.1:8081"
v2_prefix = "/artifactory/api/docker/{repo}/v2"
[repositories.wide]
backend = "local"
allow_overlap = true
[repositories.a]
backend = "local"
name_prefix = "a/"
[repositories.ab]
backend = "local"
name_prefix = "a/b"
[repositories.b]
backend = "local"
name_prefix = "b/"
[repositories.art1]
backend = "art"
[repositories.art2]
backend = "art"
"#;
        let c = crate::config::parse(text, Path::new("/x/d.toml")).unwrap_err();
        // a/ holds a/b/: refused, naming both keys
        assert_eq!(c.key, "repositories.a");
        assert!(c.message.contains("\"ab\""), "{}", c.message);
        let ok = text.replace("name_prefix = \"a/b\"", "name_prefix = \"c/\"");
        let c = crate::config::parse(&ok, Path::new("/x/d.toml")).unwrap();
        let pairs: Vec<(String, String)> = overlaps(&c.repositories)
            .iter()
            .map(|(w, n)| (w.key.clone(), n.key.clone()))
            .collect();
        let want = [("wide", "a"), ("wide", "ab"), ("wide", "b")];
        assert_eq!(
            pairs,
            want.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        );
    }
}
