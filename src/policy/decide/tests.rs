use super::*;
use crate::oci::manifest::{SCHEMA1_SIGNED, SCHEMA2};
use crate::policy::auth::scope::Access;
use std::path::Path;
use std::time::Duration;

fn cfg() -> crate::config::Config {
    let text = r#"
[tls]
cert = "c.pem"
key = "k.pem"
[[listen]]
address = "127.0.0.1:5443"
method = "path"
[auth]
htpasswd = "users"
[backends.local]
url = "http://127.0.0.1:5000"
[repositories.open]
backend = "local"
name_prefix = "open/"
anonymous_read = true
write = ["alice"]
block_schema1_push = true
block_schema1_pull = true
[repositories.closed]
backend = "local"
name_prefix = "closed/"
block_schema1_push = false
read = ["bob"]
"#;
    crate::config::parse(text, Path::new("/x/d.toml")).unwrap()
}

fn target(c: &crate::config::Config, key: &str) -> Target {
    crate::route::auth_target(c, c.repositories[key].clone(), "app")
}

fn token(user: &str, name: &str, actions: &[&str]) -> Principal {
    Principal::Token {
        user: user.into(),
        access: vec![Access {
            kind: "repository".into(),
            name: name.into(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }],
    }
}

/// What a verdict comes down to, for the table.
fn shape(v: &Verdict) -> String {
    match v {
        Verdict::Allow => "allow".into(),
        Verdict::Deny(r) => format!("deny {} {}", r.rule.as_str(), r.error.status.as_u16()),
        Verdict::Challenge {
            scope,
            insufficient_scope,
            ..
        } => format!("challenge {scope} insufficient={insufficient_scope}"),
        Verdict::Limit { retry_after, .. } => format!("limit {retry_after}"),
    }
}

#[test]
fn head_decisions() {
    let c = cfg();
    let auth = c.auth.as_ref();
    let manifest = Endpoint::Manifest("v1".into());
    let alice = Principal::User("alice".into());
    let bob = Principal::User("bob".into());
    let anon = Principal::Anonymous;
    // (why, method, repository, principal, with [auth], expected)
    let cases: Vec<(&str, http::Method, &str, Principal, bool, &str)> = vec![
        (
            "anonymous pull of an anonymous_read repository",
            http::Method::GET,
            "open",
            anon.clone(),
            true,
            "allow",
        ),
        (
            "anonymous push must authenticate first: 401 + challenge",
            http::Method::PUT,
            "open",
            anon.clone(),
            true,
            "challenge repository:open/app:pull,push insufficient=false",
        ),
        (
            "a writer pushes",
            http::Method::PUT,
            "open",
            alice.clone(),
            true,
            "allow",
        ),
        (
            "a user without the role: 403 DENIED, no challenge",
            http::Method::PUT,
            "open",
            bob.clone(),
            true,
            "deny roles 403",
        ),
        (
            "anonymous read of a closed repository",
            http::Method::HEAD,
            "closed",
            anon.clone(),
            true,
            "challenge repository:open/app:pull insufficient=false",
        ),
        (
            "a reader reads",
            http::Method::GET,
            "closed",
            bob.clone(),
            true,
            "allow",
        ),
        (
            "deletes need delete",
            http::Method::DELETE,
            "open",
            bob.clone(),
            true,
            "deny roles 403",
        ),
        // oras-py 0.2.43 re-fetches a token only after a 403 (after a 401 it
        // retries the same token), so a token lacking a scope the user's
        // roles grant is answered 403 + `error="insufficient_scope"`.
        (
            "a token without the push scope, user may push: wider token",
            http::Method::PUT,
            "open",
            token("alice", "open/app", &["pull"]),
            true,
            "challenge repository:open/app:pull,push insufficient=true",
        ),
        (
            "a token with the scope",
            http::Method::PUT,
            "open",
            token("alice", "open/app", &["pull", "push"]),
            true,
            "allow",
        ),
        (
            "a token for another image does not carry over",
            http::Method::GET,
            "closed",
            token("bob", "open/app", &["pull"]),
            true,
            "challenge repository:open/app:pull insufficient=true",
        ),
        (
            "a token whose user lacks the role",
            http::Method::PUT,
            "open",
            token("bob", "open/app", &["pull"]),
            true,
            "deny roles 403",
        ),
        (
            "passthrough: the backend decides",
            http::Method::PUT,
            "closed",
            anon.clone(),
            false,
            "allow",
        ),
    ];
    for (why, method, key, p, with_auth, want) in cases {
        let facts = Facts {
            method: &method,
            endpoint: Some(&manifest),
            name: "open/app",
            stage: Stage::Head,
            client: None,
            over_limit: None,
            read_only: None,
        };
        let pol = Policies {
            auth: if with_auth { auth } else { None },
            global: &c.policy,
        };
        let got = decide(&facts, &p, &target(&c, key), &pol);
        assert_eq!(shape(&got), want, "{why}");
    }
}

#[test]
fn manifest_and_answer_decisions() {
    let c = cfg();
    let s1 = br#"{"schemaVersion":1,"fsLayers":[],"history":[]}"#.as_slice();
    let s2 = br#"{"schemaVersion":2,"config":{},"layers":[]}"#.as_slice();
    let manifest = Endpoint::Manifest("v1".into());
    let blob = Endpoint::Blob("sha256:x".into());
    let put = http::Method::PUT;
    let get = http::Method::GET;
    let cases: Vec<(&str, &http::Method, &Endpoint, &str, Stage, &str)> = vec![
        (
            "schema1 push to a blocking repository",
            &put,
            &manifest,
            "open",
            Stage::Manifest {
                content_type: Some(SCHEMA1_SIGNED),
                body: s1,
                current: None,
            },
            "deny schema1_push 403",
        ),
        (
            "schema2 push",
            &put,
            &manifest,
            "open",
            Stage::Manifest {
                content_type: Some(SCHEMA2),
                body: s2,
                current: None,
            },
            "allow",
        ),
        (
            "schema1 push where allowed",
            &put,
            &manifest,
            "closed",
            Stage::Manifest {
                content_type: Some(SCHEMA1_SIGNED),
                body: s1,
                current: None,
            },
            "allow",
        ),
        (
            "a body that contradicts its type",
            &put,
            &manifest,
            "closed",
            Stage::Manifest {
                content_type: Some(SCHEMA2),
                body: s1,
                current: None,
            },
            "deny bad_manifest 400",
        ),
        (
            "schema1 answer from a blocking repository",
            &get,
            &manifest,
            "open",
            Stage::Answer {
                status: 200,
                content_type: Some(SCHEMA1_SIGNED),
            },
            "deny schema1_pull 403",
        ),
        (
            "schema1 answer elsewhere",
            &get,
            &manifest,
            "closed",
            Stage::Answer {
                status: 200,
                content_type: Some(SCHEMA1_SIGNED),
            },
            "allow",
        ),
        (
            "a 404 answer is relayed",
            &get,
            &manifest,
            "open",
            Stage::Answer {
                status: 404,
                content_type: Some(SCHEMA1_SIGNED),
            },
            "allow",
        ),
        (
            "blobs are not manifests",
            &get,
            &blob,
            "open",
            Stage::Answer {
                status: 200,
                content_type: Some(SCHEMA1_SIGNED),
            },
            "allow",
        ),
    ];
    let pol = Policies {
        auth: c.auth.as_ref(),
        global: &c.policy,
    };
    for (why, method, ep, key, stage, want) in cases {
        let facts = Facts {
            method,
            endpoint: Some(ep),
            name: "x/app",
            stage,
            client: None,
            over_limit: None,
            read_only: None,
        };
        let got = decide(&facts, &Principal::Anonymous, &target(&c, key), &pol);
        assert_eq!(shape(&got), want, "{why}");
    }
}

fn edge_cfg() -> crate::config::Config {
    let text = r#"
[tls]
cert = "c.pem"
key = "k.pem"
[[listen]]
address = "127.0.0.1:5443"
method = "path"
[auth]
htpasswd = "users"
[backends.local]
url = "http://127.0.0.1:5000"
[repositories.guarded]
backend = "local"
write = ["alice"]
immutable_tags = ["v*"]
allow_networks = ["127.0.0.0/8"]
push_networks = ["127.0.0.1"]
"#;
    crate::config::parse(text, Path::new("/x/d.toml")).unwrap()
}

#[test]
fn edge_decisions() {
    let c = edge_cfg();
    let t = crate::route::auth_target(&c, c.repositories["guarded"].clone(), "app");
    let alice = Principal::User("alice".into());
    let anon = Principal::Anonymous;
    let v1 = Endpoint::Manifest("v1".into());
    let latest = Endpoint::Manifest("latest".into());
    let upload = Endpoint::Upload("u1".into());
    let ro = |draining| {
        Some(ReadOnlyNow {
            reason: "gc".into(),
            scope: "repository guarded".into(),
            draining,
        })
    };
    let (get, put, del, patch) = (
        http::Method::GET,
        http::Method::PUT,
        http::Method::DELETE,
        http::Method::PATCH,
    );
    let secs = |s: f64| Some(Duration::from_secs_f64(s));
    // (why, method, endpoint, principal, client, over_limit, read_only, expected)
    type Row<'a> = (
        &'a str,
        &'a http::Method,
        &'a Endpoint,
        &'a Principal,
        Option<&'a str>,
        Option<Duration>,
        Option<ReadOnlyNow>,
        &'a str,
    );
    let cases: Vec<Row> = vec![
        (
            "a pull from an allowed network",
            &get,
            &v1,
            &alice,
            Some("127.0.0.2"),
            None,
            None,
            "allow",
        ),
        (
            "a pull from elsewhere",
            &get,
            &v1,
            &alice,
            Some("10.0.0.1"),
            None,
            None,
            "deny network 403",
        ),
        (
            "an unknown address is not in a list",
            &get,
            &v1,
            &alice,
            None,
            None,
            None,
            "deny network 403",
        ),
        (
            "networks come before the challenge",
            &put,
            &v1,
            &anon,
            Some("10.0.0.1"),
            None,
            None,
            "deny network 403",
        ),
        (
            "a push from outside push_networks",
            &put,
            &latest,
            &alice,
            Some("127.0.0.2"),
            None,
            None,
            "deny network 403",
        ),
        (
            "a push from push_networks",
            &put,
            &latest,
            &alice,
            Some("127.0.0.1"),
            None,
            None,
            "allow",
        ),
        (
            "over the rate: 429, Retry-After rounded up",
            &get,
            &v1,
            &alice,
            Some("127.0.0.1"),
            secs(1.5),
            None,
            "limit 2",
        ),
        (
            "read-only refuses a push: 405",
            &put,
            &latest,
            &alice,
            Some("127.0.0.1"),
            None,
            ro(false),
            "deny read_only 405",
        ),
        (
            "read-only refuses a delete",
            &del,
            &latest,
            &alice,
            Some("127.0.0.1"),
            None,
            ro(false),
            "deny read_only 405",
        ),
        (
            "an upload open before the switch drains",
            &patch,
            &upload,
            &alice,
            Some("127.0.0.1"),
            None,
            ro(true),
            "allow",
        ),
        (
            "pulls go on while read-only",
            &get,
            &v1,
            &alice,
            Some("127.0.0.2"),
            None,
            ro(false),
            "allow",
        ),
        (
            "roles before read-only: anonymous is challenged",
            &put,
            &latest,
            &anon,
            Some("127.0.0.1"),
            None,
            ro(false),
            "challenge repository:guarded/app:pull,push insufficient=false",
        ),
        (
            "a protected tag is not deleted",
            &del,
            &v1,
            &alice,
            Some("127.0.0.1"),
            None,
            None,
            "deny immutable_tag 403",
        ),
        (
            "other tags are",
            &del,
            &latest,
            &alice,
            Some("127.0.0.1"),
            None,
            None,
            "allow",
        ),
    ];
    let pol = Policies {
        auth: c.auth.as_ref(),
        global: &c.policy,
    };
    for (why, method, ep, p, client, over_limit, read_only, want) in cases {
        let facts = Facts {
            method,
            endpoint: Some(ep),
            name: "guarded/app",
            stage: Stage::Head,
            client: client.map(|c| c.parse().unwrap()),
            over_limit,
            read_only,
        };
        // Deletes need the delete role; alice is given it through admin here.
        let mut cfg = c.auth.clone().unwrap();
        cfg.admins = vec!["alice".into()];
        let pol = Policies {
            auth: Some(&cfg),
            ..pol
        };
        assert_eq!(shape(&decide(&facts, p, &t, &pol)), want, "{why}");
    }
}

#[test]
fn immutable_tag_pushes() {
    let c = edge_cfg();
    let t = crate::route::auth_target(&c, c.repositories["guarded"].clone(), "app");
    let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#.as_slice();
    let same = crate::policy::immutable::digest_of(body);
    let v1 = Endpoint::Manifest("v1".into());
    let latest = Endpoint::Manifest("latest".into());
    let by_digest = Endpoint::Manifest(same.clone());
    let other = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    let cases: Vec<(&str, &Endpoint, Option<&str>, &str)> = vec![
        (
            "the same digest again: an idempotent re-push",
            &v1,
            Some(&same),
            "allow",
        ),
        (
            "a different digest to an existing protected tag",
            &v1,
            Some(other),
            "deny immutable_tag 403",
        ),
        ("a new protected tag", &v1, None, "allow"),
        (
            "an unprotected tag moves freely",
            &latest,
            Some(other),
            "allow",
        ),
        (
            "a push by digest is not a tag",
            &by_digest,
            Some(other),
            "allow",
        ),
    ];
    let pol = Policies {
        auth: c.auth.as_ref(),
        global: &c.policy,
    };
    let put = http::Method::PUT;
    for (why, ep, current, want) in cases {
        let facts = Facts {
            method: &put,
            endpoint: Some(ep),
            name: "guarded/app",
            stage: Stage::Manifest {
                content_type: Some(crate::oci::manifest::OCI_MANIFEST),
                body,
                current,
            },
            client: None,
            over_limit: None,
            read_only: None,
        };
        let got = decide(&facts, &Principal::Anonymous, &t, &pol);
        assert_eq!(shape(&got), want, "{why}");
        if let Verdict::Deny(r) = got {
            assert!(
                r.error.message.contains(other) && r.error.message.contains("v1"),
                "{}",
                r.error.message
            );
        }
    }
    assert!(needs_current(&t, Some(&v1)) && !needs_current(&t, Some(&latest)));
}

#[test]
fn gateway_allowlist() {
    let mut g = crate::config::policy::GlobalPolicy::default();
    assert!(admit(None, &g).is_none(), "no list: everyone");
    g.allow_networks = crate::policy::network::Networks::parse(&["127.0.0.1".into()]).unwrap();
    assert!(admit(Some("127.0.0.1".parse().unwrap()), &g).is_none());
    let r = admit(Some("127.0.0.2".parse().unwrap()), &g).unwrap();
    assert_eq!(
        (r.rule, r.error.status),
        (Rule::Network, StatusCode::FORBIDDEN)
    );
    assert!(r.error.message.contains("127.0.0.2"));
}
