use super::*;
use crate::migrate::schema1::parse;

fn id(n: u8) -> String {
    format!("{:064x}", n)
}

/// A two-entry manifest: `top` is history[0]'s v1Compatibility text.
fn manifest(top: &str) -> Manifest {
    let base = format!(
        r##"{{"id":"{}","created":"2020-01-02T03:04:05.500000000Z","container_config":{{"Cmd":["/bin/sh","-c","#(nop) ADD file:x in / "]}},"author":"a <b@c>"}}"##,
        id(1)
    );
    let body = serde_json::json!({
        "schemaVersion": 1,
        "fsLayers": [{"blobSum": format!("sha256:{}", id(7))}, {"blobSum": format!("sha256:{}", id(8))}],
        "history": [{"v1Compatibility": top}, {"v1Compatibility": base}],
    });
    parse(body.to_string().as_bytes()).unwrap()
}

#[test]
fn config_like_skopeo() {
    // Keys out of order, nested order kept, whitespace dropped, `<>&`
    // escaped, the dropped keys gone, throwaway in history.
    let top = format!(
        r##"{{"os":"linux", "id":"{}","parent":"{}","Size":12,"throwaway":true,"layer_id":"x","parent_id":"y","created":"2021-06-07T08:09:10+02:00","config":{{"Labels":{{"z":"1","a":"<&>"}}, "Cmd":["sh"]}},"architecture":"amd64","container_config":{{"Cmd":["/bin/sh","-c","#(nop)  CMD [\"sh\"]"]}}}}"##,
        id(2),
        id(1)
    );
    let m = manifest(&top);
    let got =
        String::from_utf8(build(&m, &["sha256:aa".into()], Target::Schema2).unwrap()).unwrap();
    let want = concat!(
        r#"{"architecture":"amd64","config":{"Labels":{"z":"1","a":"\u003c\u0026\u003e"},"Cmd":["sh"]},"#,
        r##""container_config":{"Cmd":["/bin/sh","-c","#(nop)  CMD [\"sh\"]"]},"created":"2021-06-07T08:09:10+02:00","##,
        r#""history":[{"created":"2020-01-02T03:04:05.5Z","author":"a \u003cb@c\u003e","created_by":"/bin/sh -c #(nop) ADD file:x in / "},"#,
        r#"{"created":"2021-06-07T08:09:10+02:00","created_by":"/bin/sh -c #(nop)  CMD [\"sh\"]","empty_layer":true}],"#,
        r#""os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:aa"]}}"#
    );
    assert_eq!(got, want);
}

#[test]
fn empty_diff_ids_by_target() {
    let top = format!(
        r#"{{"id":"{}","parent":"{}","throwaway":true}}"#,
        id(2),
        id(1)
    );
    let m = manifest(&top);
    let s2 = String::from_utf8(build(&m, &[], Target::Schema2).unwrap()).unwrap();
    assert!(s2.contains(r#""rootfs":{"type":"layers"}"#), "{s2}");
    // A missing created is Go's zero time.
    assert!(
        s2.contains(r#"{"created":"0001-01-01T00:00:00Z","empty_layer":true}"#),
        "{s2}"
    );
    let oci = String::from_utf8(build(&m, &[], Target::Oci).unwrap()).unwrap();
    assert!(
        oci.contains(r#""rootfs":{"type":"layers","diff_ids":[]}"#),
        "{oci}"
    );
}

#[test]
fn old_docker_is_reencoded() {
    let top = format!(
        r#"{{"id":"{}","parent":"{}","docker_version":"1.6.2","created":"2015-06-01T12:00:00.50Z","unknown":1,"config":{{"Cmd":"x","Env":["A=<1>"],"Labels":{{}}}},"os":"linux"}}"#,
        id(2),
        id(1)
    );
    let got = String::from_utf8(build(&manifest(&top), &[], Target::Schema2).unwrap()).unwrap();
    let cfg = r#"{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"#;
    let want = format!(
        "{{\"config\":{cfg}{}}},\"container_config\":{cfg}{}}},\"created\":\"2015-06-01T12:00:00.5Z\",\"docker_version\":\"1.6.2\",",
        r#""Env":["A=\u003c1\u003e"],"Cmd":["x"],"Image":"","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":{}"#,
        r#""Env":null,"Cmd":null,"Image":"","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null"#,
    );
    assert!(got.starts_with(&want), "{got}\n{want}");
    assert!(!got.contains("unknown"));
}

#[test]
fn versions_and_times() {
    assert!(version_less("1.6.2", "1.8.3"));
    assert!(version_less("1.8", "1.8.3"));
    assert!(!version_less("1.8.3", "1.8.3"));
    assert!(!version_less("1.10.0", "1.8.3"));
    assert!(!version_less("17.03.1-ce", "1.8.3"));
    let cases = [
        ("2020-01-02T03:04:05Z", "2020-01-02T03:04:05Z"),
        ("2020-01-02T03:04:05.120000Z", "2020-01-02T03:04:05.12Z"),
        ("2020-01-02T03:04:05.000000000Z", "2020-01-02T03:04:05Z"),
        (
            "2020-01-02T03:04:05.1234567891Z",
            "2020-01-02T03:04:05.123456789Z",
        ),
        ("2020-01-02T03:04:05+00:00", "2020-01-02T03:04:05Z"),
        ("2020-01-02T03:04:05.5-07:00", "2020-01-02T03:04:05.5-07:00"),
    ];
    for (i, o) in cases {
        assert_eq!(go_time(Some(i)).unwrap(), o, "{i}");
    }
    for bad in [
        "2020-01-02",
        "yesterday",
        "2020-01-02T03:04:05",
        "2020-01-02T03:04:05.Z",
    ] {
        assert!(go_time(Some(bad)).is_err(), "{bad}");
    }
    assert_eq!(
        compact("{ \"a\" : [1, 2],\n \"b\": \"x y<\\\"\" }"),
        r#"{"a":[1,2],"b":"x y\u003c\""}"#
    );
}
