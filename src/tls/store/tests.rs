#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::tls::testutil::{dns, handshake, ip, write_pair, TempDir, TestCa};
use std::path::Path;

fn spec(name: &str, (cert, key): (PathBuf, PathBuf), names: &[&str]) -> CertSpec {
    CertSpec {
        name: name.into(),
        cert,
        key,
        server_names: names.iter().map(|s| s.to_string()).collect(),
    }
}

/// Replace a file the way deploy tools do (new inode via rename).
fn replace(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn leaf_der(store: &CertStore, sni: Option<&str>) -> Vec<u8> {
    store.resolve_name(sni).unwrap().cert[0].as_ref().to_vec()
}

fn der_of(pem: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .as_ref()
        .to_vec()
}

#[test]
fn sni_selection_table() {
    let dir = TempDir::new("store-sni");
    let ca = TestCa::new();
    let specs = vec![
        spec(
            "ip",
            write_pair(dir.path(), "ip", &ca.leaf(&["127.0.0.1"])),
            &[],
        ),
        spec(
            "reg",
            write_pair(dir.path(), "reg", &ca.leaf(&["registry.test"])),
            &["registry.test", "*.apps.test"],
        ),
        spec(
            "other",
            write_pair(dir.path(), "other", &ca.leaf(&["Other.Test"])),
            &["Other.Test."],
        ),
    ];
    let store = CertStore::new(specs).unwrap();
    let cases: &[(Option<&str>, usize)] = &[
        (None, 0),
        (Some("registry.test"), 1),
        (Some("REGISTRY.test."), 1),
        (Some("x.apps.test"), 1),
        (Some("apps.test"), 0),
        (Some("a.b.apps.test"), 0),
        (Some("other.test"), 2),
        (Some("unknown.test"), 0),
        (Some("localhost"), 0),
    ];
    for &(sni, want) in cases {
        assert_eq!(store.pick(sni), want, "{sni:?}");
    }
    // resolve_name hands out the cert loaded for that entry.
    assert_ne!(
        leaf_der(&store, None),
        leaf_der(&store, Some("registry.test"))
    );
}

#[test]
fn first_cert_is_default_when_none_is_declared() {
    let dir = TempDir::new("store-nodefault");
    let ca = TestCa::new();
    let store = CertStore::new(vec![
        spec(
            "a",
            write_pair(dir.path(), "a", &ca.leaf(&["a.test"])),
            &["a.test"],
        ),
        spec(
            "b",
            write_pair(dir.path(), "b", &ca.leaf(&["b.test"])),
            &["b.test"],
        ),
    ])
    .unwrap();
    assert_eq!(store.pick(None), 0);
    assert_eq!(store.pick(Some("b.test")), 1);
}

#[test]
fn new_rejects_bad_config() {
    let dir = TempDir::new("store-bad");
    let ca = TestCa::new();
    let a = write_pair(dir.path(), "a", &ca.leaf(&["a.test"]));
    let b = write_pair(dir.path(), "b", &ca.leaf(&["b.test"]));
    let missing = (dir.path().join("nope.crt"), b.1.clone());
    let cases: Vec<(&str, Vec<CertSpec>, &str)> = vec![
        ("no certs", vec![], "no certificate configured"),
        (
            "two defaults",
            vec![spec("a", a.clone(), &[]), spec("b", b.clone(), &[])],
            "tls.certificates.b: only one certificate may have no server_names",
        ),
        (
            "duplicate name",
            vec![
                spec("a", a.clone(), &["x.test"]),
                spec("b", b.clone(), &["X.test"]),
            ],
            "tls.certificates.b.server_names: \"X.test\" is also listed by tls.certificates.a",
        ),
        (
            "mid wildcard",
            vec![spec("a", a.clone(), &["a.*.test"])],
            "single-label wildcard",
        ),
        (
            "bare star",
            vec![spec("a", a.clone(), &["*"])],
            "single-label wildcard",
        ),
        (
            "missing file",
            vec![spec("m", missing, &[])],
            "tls.certificates.m: ",
        ),
    ];
    for (case, specs, want) in cases {
        let e = CertStore::new(specs).unwrap_err().to_string();
        assert!(e.contains(want), "{case}: {e}");
    }
    let e = CertStore::new(vec![spec("m", (dir.path().join("nope.crt"), b.1), &[])])
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope.crt") && e.contains("not found"), "{e}");
}

#[test]
fn broken_replacement_keeps_old_cert_then_valid_one_loads() {
    let dir = TempDir::new("store-reload");
    let ca = TestCa::new();
    let old = ca.leaf(&["registry.test"]);
    let paths = write_pair(dir.path(), "reg", &old);
    let store = CertStore::new(vec![spec("reg", paths.clone(), &[])]).unwrap();
    assert!(store.reload().is_empty(), "nothing changed yet");

    let broken: &[(&str, &str)] = &[
        ("garbage", "this is not a certificate\n"),
        ("half written", &old.0[..old.0.len() / 2]),
        ("empty", ""),
    ];
    for (case, content) in broken {
        replace(&paths.0, content);
        let ev = store.reload();
        assert!(
            matches!(&ev[..], [ReloadEvent::Retrying { .. }]),
            "{case}: {ev:?}"
        );
        let ev = store.reload();
        match &ev[..] {
            [ReloadEvent::Refused { name, error }] => {
                assert_eq!(name, "reg");
                assert!(error.contains("reg.crt"), "{case}: {error}");
            }
            other => panic!("{case}: {other:?}"),
        }
        // Reported once per change, not on every pass.
        assert!(store.reload().is_empty(), "{case}");
        assert_eq!(
            leaf_der(&store, None),
            der_of(&old.0),
            "{case}: old cert serves"
        );
    }

    let new = ca.leaf(&["registry.test"]);
    replace(&paths.0, &new.0);
    replace(&paths.1, &new.1);
    let ev = store.reload();
    assert!(matches!(&ev[..], [ReloadEvent::Reloaded { .. }]), "{ev:?}");
    assert_eq!(leaf_der(&store, None), der_of(&new.0));
    let peer = handshake(Arc::new(store), &ca.der, dns("registry.test")).unwrap();
    assert_eq!(peer[0].as_ref(), der_of(&new.0));
}

#[test]
fn cert_then_key_rotation_is_retried_not_refused() {
    let dir = TempDir::new("store-midwrite");
    let ca = TestCa::new();
    let old = ca.leaf(&["registry.test"]);
    let paths = write_pair(dir.path(), "reg", &old);
    let store = CertStore::new(vec![spec("reg", paths.clone(), &[])]).unwrap();

    let new = ca.leaf(&["registry.test"]);
    replace(&paths.0, &new.0); // cert first ...
    match &store.reload()[..] {
        [ReloadEvent::Retrying { error, .. }] => {
            assert!(error.contains("does not match"), "{error}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(leaf_der(&store, None), der_of(&old.0));
    replace(&paths.1, &new.1); // ... then the key
    assert!(matches!(
        &store.reload()[..],
        [ReloadEvent::Reloaded { .. }]
    ));
    assert_eq!(leaf_der(&store, None), der_of(&new.0));
}

#[test]
fn handshake_picks_cert_by_sni_and_default_for_ip() {
    let dir = TempDir::new("store-hs");
    let ca = TestCa::new();
    let by_ip = ca.leaf(&["127.0.0.1", "::1"]);
    let by_name = ca.leaf(&["registry.test"]);
    let store = Arc::new(
        CertStore::new(vec![
            spec("ip", write_pair(dir.path(), "ip", &by_ip), &[]),
            spec(
                "name",
                write_pair(dir.path(), "name", &by_name),
                &["registry.test"],
            ),
        ])
        .unwrap(),
    );
    let cases = [
        (dns("registry.test"), &by_name),
        (ip("127.0.0.1"), &by_ip),
        (ip("::1"), &by_ip),
    ];
    for (target, want) in cases {
        let peer = handshake(store.clone(), &ca.der, target.clone()).unwrap();
        assert_eq!(peer[0].as_ref(), der_of(&want.0), "{target:?}");
    }
    // The verifier still checks names: an unknown name gets the default
    // cert, which rustls refuses.
    assert!(handshake(store, &ca.der, dns("nope.test")).is_err());
}

#[test]
fn expiries_report_each_cert() {
    let dir = TempDir::new("store-exp");
    let ca = TestCa::new();
    let mut params = rcgen::CertificateParams::new(vec!["a.test".to_string()]).unwrap();
    params.not_after = time::OffsetDateTime::from_unix_timestamp(2_000_000_000).unwrap();
    let store = CertStore::new(vec![spec(
        "a",
        write_pair(dir.path(), "a", &ca.leaf_from(params)),
        &[],
    )])
    .unwrap();
    assert_eq!(store.expiries(), vec![("a".to_string(), 2_000_000_000)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_picks_up_replacement() {
    let dir = TempDir::new("store-watch");
    let ca = TestCa::new();
    let paths = write_pair(dir.path(), "reg", &ca.leaf(&["registry.test"]));
    let store = Arc::new(CertStore::new(vec![spec("reg", paths.clone(), &[])]).unwrap());
    let task = tokio::spawn(watch(store.clone(), Duration::from_millis(50)));

    let new = ca.leaf(&["registry.test"]);
    replace(&paths.0, &new.0);
    replace(&paths.1, &new.1);
    let mut ok = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if leaf_der(&store, None) == der_of(&new.0) {
            ok = true;
            break;
        }
    }
    task.abort();
    assert!(ok, "watch did not reload within 2 s");
}

#[test]
fn parse_server_name_table() {
    let cases: &[(&str, Option<Pattern>)] = &[
        (
            "registry.example.com",
            Some(Pattern::Exact("registry.example.com".into())),
        ),
        (
            "Registry.Example.COM.",
            Some(Pattern::Exact("registry.example.com".into())),
        ),
        (
            "*.example.com",
            Some(Pattern::Wildcard("example.com".into())),
        ),
        ("localhost", Some(Pattern::Exact("localhost".into()))),
        ("*", None),
        ("*.", None),
        ("a.*.example.com", None),
        ("*.*.example.com", None),
        ("foo*.example.com", None),
        ("", None),
        ("a..b", None),
        ("host name", None),
    ];
    for (raw, want) in cases {
        assert_eq!(&parse_server_name(raw), want, "{raw:?}");
    }
}
