use super::*;
use crate::oci::ErrorCode;
use std::path::Path;

pub(crate) fn cfg() -> Config {
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
[repositories.docker-local]
backend = "local"
allow_overlap = true
[repositories.team-a]
backend = "local"
name_prefix = "team-a/"
[repositories.docker-art]
backend = "art"
"#;
    crate::config::parse(text, Path::new("/x/d.toml")).unwrap()
}

fn sub() -> ListenMethod {
    ListenMethod::Subdomain {
        base_domain: "registry.example.com".into(),
    }
}

fn port() -> ListenMethod {
    ListenMethod::Port {
        repository: "team-a".into(),
    }
}

#[test]
fn routes_to_backend_paths() {
    let c = cfg();
    let cases: Vec<(ListenMethod, Option<&str>, &str, &str, &str)> = vec![
        (
            ListenMethod::Path,
            None,
            "/v2/docker-local/app/manifests/1",
            "docker-local",
            "/v2/app/manifests/1",
        ),
        (
            ListenMethod::Path,
            None,
            "/v2/team-a/x/y/blobs/uploads/",
            "team-a",
            "/v2/team-a/x/y/blobs/uploads/",
        ),
        (
            ListenMethod::Path,
            None,
            "/v2/docker-art/app/tags/list",
            "docker-art",
            "/artifactory/api/docker/docker-art/v2/app/tags/list",
        ),
        (
            sub(),
            Some("team-a.registry.example.com:5443"),
            "/v2/app/manifests/1",
            "team-a",
            "/v2/team-a/app/manifests/1",
        ),
        (
            sub(),
            Some("DOCKER-LOCAL.registry.example.com"),
            "/v2/lib/app/tags/list",
            "docker-local",
            "/v2/lib/app/tags/list",
        ),
        (
            port(),
            None,
            "/v2/app/blobs/uploads/u-1",
            "team-a",
            "/v2/team-a/app/blobs/uploads/u-1",
        ),
        (
            ListenMethod::Path,
            None,
            "/v2/team-a/app/_ext/x",
            "team-a",
            "/v2/team-a/app/_ext/x",
        ),
    ];
    for (m, host, path, key, backend) in cases {
        match route(&c, &m, host, path).unwrap().unwrap() {
            Routed::Repo(t) => {
                assert_eq!(t.repo.key, key, "{path}");
                assert_eq!(t.backend_path, backend, "{path}");
            }
            other => panic!("{path}: {other:?}"),
        }
    }
}

#[test]
fn local_and_error_routes() {
    let c = cfg();
    assert!(matches!(
        route(&c, &ListenMethod::Path, None, "/v2/").unwrap(),
        Some(Routed::Ping)
    ));
    assert!(route(&c, &ListenMethod::Path, None, "/metrics")
        .unwrap()
        .is_none());
    match route(&c, &ListenMethod::Path, None, "/v2/_catalog")
        .unwrap()
        .unwrap()
    {
        Routed::Catalog { repos, with_key } => {
            assert!(with_key);
            assert_eq!(repos.len(), 3);
        }
        other => panic!("{other:?}"),
    }
    match route(&c, &port(), None, "/v2/_catalog").unwrap().unwrap() {
        Routed::Catalog { repos, with_key } => {
            assert!(!with_key);
            assert_eq!(repos[0].key, "team-a");
        }
        other => panic!("{other:?}"),
    }
    let errs: Vec<(ListenMethod, Option<&str>, &str, ErrorCode)> = vec![
        (
            ListenMethod::Path,
            None,
            "/v2/nope/app/manifests/1",
            ErrorCode::NameUnknown,
        ),
        (
            ListenMethod::Path,
            None,
            "/v2/docker-local/manifests/1",
            ErrorCode::NameInvalid,
        ),
        (
            sub(),
            Some("registry.example.com"),
            "/v2/app/manifests/1",
            ErrorCode::NameUnknown,
        ),
        (
            sub(),
            Some("other.example.org"),
            "/v2/app/manifests/1",
            ErrorCode::NameUnknown,
        ),
        (
            sub(),
            Some("nope.registry.example.com"),
            "/v2/app/manifests/1",
            ErrorCode::NameUnknown,
        ),
        (
            ListenMethod::Path,
            None,
            "/v2/nope/_ext",
            ErrorCode::NameUnknown,
        ),
    ];
    for (m, host, path, code) in errs {
        assert_eq!(route(&c, &m, host, path).unwrap_err().code, code, "{path}");
    }
}

#[test]
fn reverse_names() {
    let c = cfg();
    let (r, n) = backend_name_of(&c, &ListenMethod::Path, None, "team-a/app").unwrap();
    assert_eq!((r.key.as_str(), n.as_str()), ("team-a", "team-a/app"));
    let (r, n) = backend_name_of(&c, &port(), None, "lib/app").unwrap();
    assert_eq!((r.key.as_str(), n.as_str()), ("team-a", "team-a/lib/app"));
    assert!(backend_name_of(&c, &ListenMethod::Path, None, "docker-local").is_none());
    assert!(backend_name_of(&c, &ListenMethod::Path, None, "Bad").is_none());
    assert_eq!(client_name(&ListenMethod::Path, &r, "app"), "team-a/app");
    assert_eq!(host_name("[::1]:5443"), "::1");
    assert_eq!(host_name("Example.COM."), "example.com");
}

#[test]
fn overlaps_are_decided_on_the_backend_name() {
    use crate::policy::auth::{acl::Action, decide, scope::Access, Decision, Principal};
    let text = r#"
[tls]
cert = "c.pem"
key = "k.pem"
[[listen]]
address = "127.0.0.1:5443"
method = "path"
[auth]
htpasswd = "h"
[backends.local]
url = "http://127.0.0.1:5000"
[backends.other]
url = "http://127.0.0.1:5001"
[repositories.docker-local]
backend = "local"
allow_overlap = true
read = ["*"]
write = ["wide", "alice"]
[repositories.team-a]
backend = "local"
name_prefix = "team-a/"
read = ["bob"]
write = ["alice"]
[repositories.elsewhere]
backend = "other"
name_prefix = "team-a/"
write = ["wide"]
"#;
    let c = crate::config::parse(text, Path::new("/x/d.toml")).unwrap();
    let auth = c.auth.clone().unwrap();
    let t = |key: &str, image: &str| auth_target(&c, c.repositories[key].clone(), image);
    assert_eq!(t("docker-local", "team-a/app").also.len(), 1);
    assert!(t("docker-local", "lib/app").also.is_empty());
    assert!(t("team-a", "app").also.is_empty());
    assert_eq!(t("team-a", "app").canonical(), "team-a/app");
    let user = |u: &str| Principal::User(u.into());
    let token = |u: &str, name: &str, actions: &[&str]| Principal::Token {
        user: u.into(),
        access: vec![Access {
            kind: "repository".into(),
            name: name.into(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }],
    };
    use Action::*;
    let challenge = Decision::Challenge {
        insufficient_scope: false,
    };
    let insufficient = Decision::Challenge {
        insufficient_scope: true,
    };
    let cases: Vec<(Principal, (&str, &str), Action, Decision)> = vec![
        // the wider repository cannot write into the narrower one's namespace
        (
            user("wide"),
            ("docker-local", "team-a/app"),
            Push,
            Decision::Deny,
        ),
        (
            user("wide"),
            ("docker-local", "lib/app"),
            Push,
            Decision::Allow,
        ),
        (user("wide"), ("elsewhere", "app"), Push, Decision::Allow),
        (
            user("alice"),
            ("docker-local", "team-a/app"),
            Push,
            Decision::Allow,
        ),
        (
            user("bob"),
            ("docker-local", "team-a/app"),
            Pull,
            Decision::Allow,
        ),
        (
            user("eve"),
            ("docker-local", "team-a/app"),
            Pull,
            Decision::Deny,
        ),
        (
            user("eve"),
            ("docker-local", "lib/app"),
            Pull,
            Decision::Allow,
        ),
        (Principal::Anonymous, ("team-a", "app"), Pull, challenge),
        // tokens: canonical names only, insufficient_scope when roles allow
        (
            token("alice", "team-a/app", &["pull", "push"]),
            ("team-a", "app"),
            Push,
            Decision::Allow,
        ),
        (
            token("alice", "team-a/app", &["pull"]),
            ("team-a", "app"),
            Push,
            insufficient,
        ),
        (
            token("alice", "app", &["pull", "push"]),
            ("team-a", "app"),
            Pull,
            insufficient,
        ),
        (
            token("alice", "team-a/app", &["pull"]),
            ("docker-local", "team-a/app"),
            Pull,
            insufficient,
        ),
        (
            token("bob", "team-a/app", &["pull"]),
            ("team-a", "app"),
            Push,
            Decision::Deny,
        ),
        (
            token("bob", "team-a/app", &["pull"]),
            ("team-a", "other"),
            Pull,
            insufficient,
        ),
        (
            token("eve", "team-a/app", &["pull"]),
            ("team-a", "app"),
            Pull,
            Decision::Allow,
        ),
        (
            token("", "team-a/app", &[]),
            ("team-a", "app"),
            Pull,
            challenge,
        ),
    ];
    for (p, (key, image), action, want) in cases {
        assert_eq!(
            decide(&auth, &p, &t(key, image), action),
            want,
            "{p:?} {key} {image} {action:?}"
        );
    }
}
