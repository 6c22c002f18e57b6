use super::*;
use crate::oci::manifest::{SCHEMA1_SIGNED, SCHEMA2};
use crate::policy::auth::scope::Access;
use std::path::Path;

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
        };
        let pol = Policies {
            auth: if with_auth { auth } else { None },
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
    };
    for (why, method, ep, key, stage, want) in cases {
        let facts = Facts {
            method,
            endpoint: Some(ep),
            name: "x/app",
            stage,
        };
        let got = decide(&facts, &Principal::Anonymous, &target(&c, key), &pol);
        assert_eq!(shape(&got), want, "{why}");
    }
}
