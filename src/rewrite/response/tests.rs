use super::*;

fn view() -> View {
    View {
        client_origin: "https://gw.example:5443".into(),
        backend_authorities: vec!["127.0.0.1:5000".into(), "gw.example:5443".into()],
        backend_name: "local".into(),
        v2_prefix: "/v2".into(),
        name_prefix: "team-a/".into(),
        client_prefix: "team-a-key/".into(),
    }
}

#[test]
fn locations() {
    let v = view();
    let cases: &[(&str, Option<&str>)] = &[
        (
            "/v2/team-a/app/blobs/uploads/u1?_state=x",
            Some("/v2/team-a-key/app/blobs/uploads/u1?_state=x"),
        ),
        (
            "http://127.0.0.1:5000/v2/team-a/app/blobs/uploads/u1",
            Some("https://gw.example:5443/v2/team-a-key/app/blobs/uploads/u1"),
        ),
        (
            "https://gw.example:5443/v2/team-a/lib/app/blobs/sha256:aa",
            Some("https://gw.example:5443/v2/team-a-key/lib/app/blobs/sha256:aa"),
        ),
        ("https://s3.amazonaws.com/bucket/blob?sig=1", None),
        ("/v2/other/app/blobs/x", None),
        ("/v2/_catalog?last=a&n=2", Some("/v2/_catalog?last=a&n=2")),
        (
            "http://127.0.0.1:5000/elsewhere",
            Some("https://gw.example:5443/elsewhere"),
        ),
    ];
    for (from, want) in cases {
        assert_eq!(v.location(from).as_deref(), *want, "{from}");
    }
}

#[test]
fn artifactory_prefix() {
    let v = View {
        v2_prefix: "/artifactory/api/docker/docker-local/v2".into(),
        name_prefix: String::new(),
        client_prefix: "docker-local/".into(),
        ..view()
    };
    assert_eq!(
        v.location("/artifactory/api/docker/docker-local/v2/app/blobs/uploads/1")
            .as_deref(),
        Some("/v2/docker-local/app/blobs/uploads/1")
    );
}

#[test]
fn links() {
    let v = view();
    assert_eq!(
        v.link("</v2/team-a/app/tags/list?last=b&n=2>; rel=\"next\"")
            .as_deref(),
        Some("</v2/team-a-key/app/tags/list?last=b&n=2>; rel=\"next\"")
    );
    assert_eq!(
        v.link("<http://127.0.0.1:5000/v2/team-a/app/tags/list?n=1>; rel=\"next\", <https://x.org/a>; rel=\"other\"").as_deref(),
        Some("<https://gw.example:5443/v2/team-a-key/app/tags/list?n=1>; rel=\"next\", <https://x.org/a>; rel=\"other\"")
    );
    assert_eq!(v.link("<https://x.org/a>; rel=\"next\""), None);
}

#[test]
fn challenges() {
    let v = view();
    let got = v
        .www_authenticate(r#"Bearer realm="http://127.0.0.1:5000/auth/token",service="reg",scope="repository:team-a/app:pull,push""#)
        .unwrap();
    assert_eq!(
        got,
        r#"Bearer realm="https://gw.example:5443/_dockgate/realm/local/auth/token",service="reg",scope="repository:team-a-key/app:pull,push""#
    );
    // an external token service keeps its realm; names are still mapped
    let got = v.www_authenticate(r#"Bearer realm="https://auth.docker.io/token",service="x",scope="repository:team-a/a:pull repository:team-a/b:pull""#).unwrap();
    assert!(
        got.contains(r#"realm="https://auth.docker.io/token""#),
        "{got}"
    );
    assert!(
        got.contains(r#"scope="repository:team-a-key/a:pull repository:team-a-key/b:pull""#),
        "{got}"
    );
    // Basic realms are labels, not URLs
    assert_eq!(v.www_authenticate(r#"Basic realm="Registry Realm""#), None);
    let (s, p) = parse_challenge(r#"Bearer realm="a,b",error="insufficient_scope", x=y"#).unwrap();
    assert_eq!(s, "Bearer");
    assert_eq!(
        p,
        vec![
            ("realm".into(), "a,b".into()),
            ("error".into(), "insufficient_scope".into()),
            ("x".into(), "y".into())
        ]
    );
}

#[test]
fn realm_paths_on_the_backend_only() {
    let auths = vec!["127.0.0.1:5000".to_string()];
    let cases: &[(&str, Option<&str>)] = &[
        (
            r#"Bearer realm="http://127.0.0.1:5000/auth/token?x=1",service="reg""#,
            Some("/auth/token"),
        ),
        (r#"Bearer realm="/token",service="reg""#, Some("/token")),
        (
            r#"Bearer realm="http://127.0.0.1:5000",service="reg""#,
            Some("/"),
        ),
        (r#"Bearer realm="https://auth.docker.io/token""#, None),
        (r#"Bearer realm="http://127.0.0.1:5001/token""#, None),
        (r#"Basic realm="Registry Realm""#, None),
        (r#"Bearer service="reg""#, None),
    ];
    for (c, want) in cases {
        assert_eq!(realm_path(&auths, c).as_deref(), *want, "{c}");
    }
}

#[test]
fn tags_list_names() {
    let v = view();
    let cases: &[(&str, Option<&str>)] = &[
        (
            r#"{"name":"team-a/app","tags":["1","2"]}"#,
            Some(r#"{"name":"team-a-key/app","tags":["1","2"]}"#),
        ),
        // distribution answers null for an image without tags
        (
            r#"{"name":"team-a/lib/app","tags":null}"#,
            Some(r#"{"name":"team-a-key/lib/app","tags":null}"#),
        ),
        // outside the prefix, not the shape, not JSON: left alone
        (r#"{"name":"other/app","tags":[]}"#, None),
        (r#"{"tags":[]}"#, None),
        (r#"["team-a/app"]"#, None),
        ("not json", None),
    ];
    for (body, want) in cases {
        let got = v.tags_list(body.as_bytes());
        assert_eq!(
            got.as_deref().map(|b| std::str::from_utf8(b).unwrap_or("")),
            *want,
            "{body}"
        );
    }
    // a port/subdomain listener without a prefix: the same name, unchanged
    let plain = View {
        name_prefix: String::new(),
        client_prefix: String::new(),
        ..view()
    };
    assert_eq!(plain.tags_list(br#"{"name":"app","tags":[]}"#), None);
}
