#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::tls::testutil::{TempDir, TestCa};

/// What a load of (cert file, key file) should give.
#[derive(Debug, PartialEq)]
enum Want {
    Ok,
    NotFound(&'static str),
    NoCertificate,
    NoPrivateKey,
    BadPem,
    BadCertificate,
    BadKey,
    KeyMismatch,
}

fn kind(e: &TlsError) -> Want {
    match e {
        TlsError::NotFound { what, .. } => Want::NotFound(what),
        TlsError::NoCertificate { .. } => Want::NoCertificate,
        TlsError::NoPrivateKey { .. } => Want::NoPrivateKey,
        TlsError::BadPem { .. } => Want::BadPem,
        TlsError::BadCertificate { .. } => Want::BadCertificate,
        TlsError::BadKey { .. } => Want::BadKey,
        TlsError::KeyMismatch { .. } => Want::KeyMismatch,
        other => panic!("unexpected error {other:?}"),
    }
}

#[test]
fn load_certified_key_table() {
    let dir = TempDir::new("pem");
    let ca = TestCa::new();
    let (cert, key) = ca.leaf(&["registry.test", "127.0.0.1"]);
    let (_, other_key) = ca.leaf(&["other.test"]);
    let half_cert = &cert[..cert.len() / 2];
    let fake_cert = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
    let fake_key = "-----BEGIN PRIVATE KEY-----\naGVsbG8gd29ybGQ=\n-----END PRIVATE KEY-----\n";
    let combined = format!("{cert}{key}");

    // (case, cert content or None = absent, key content or None, want)
    let cases: Vec<(&str, Option<&str>, Option<&str>, Want)> = vec![
        ("valid pair", Some(&cert), Some(&key), Want::Ok),
        (
            "combined pem as both",
            Some(&combined),
            Some(&combined),
            Want::Ok,
        ),
        (
            "cert missing",
            None,
            Some(&key),
            Want::NotFound("certificate"),
        ),
        (
            "key missing",
            Some(&cert),
            None,
            Want::NotFound("private key"),
        ),
        ("empty cert", Some(""), Some(&key), Want::NoCertificate),
        ("empty key", Some(&cert), Some(""), Want::NoPrivateKey),
        (
            "garbage cert",
            Some("hello\n"),
            Some(&key),
            Want::NoCertificate,
        ),
        (
            "key given as cert",
            Some(&key),
            Some(&key),
            Want::NoCertificate,
        ),
        (
            "cert given as key",
            Some(&cert),
            Some(&cert),
            Want::NoPrivateKey,
        ),
        (
            "half-written cert",
            Some(half_cert),
            Some(&key),
            Want::BadPem,
        ),
        (
            "half-written key",
            Some(&cert),
            Some(&key[..key.len() / 2]),
            Want::BadPem,
        ),
        (
            "pem armour, not DER",
            Some(fake_cert),
            Some(&key),
            Want::BadCertificate,
        ),
        (
            "key armour, not DER",
            Some(&cert),
            Some(fake_key),
            Want::BadKey,
        ),
        (
            "key of another cert",
            Some(&cert),
            Some(&other_key),
            Want::KeyMismatch,
        ),
    ];
    for (i, (case, c, k, want)) in cases.into_iter().enumerate() {
        let cp = dir.path().join(format!("{i}.crt"));
        let kp = dir.path().join(format!("{i}.key"));
        if let Some(c) = c {
            std::fs::write(&cp, c).unwrap();
        }
        if let Some(k) = k {
            std::fs::write(&kp, k).unwrap();
        }
        match load_certified_key(&cp, &kp) {
            Ok(ck) => {
                assert_eq!(want, Want::Ok, "{case}");
                assert_eq!(ck.cert.len(), 1, "{case}");
            }
            Err(e) => {
                assert_eq!(kind(&e), want, "{case}: {e}");
                // Every message names a file we gave it.
                let msg = e.to_string();
                assert!(
                    msg.contains(&format!("{i}.crt")) || msg.contains(&format!("{i}.key")),
                    "{case}: {msg}"
                );
            }
        }
    }
}

#[test]
fn unreadable_file_is_an_io_error_naming_it() {
    let dir = TempDir::new("pem-dir");
    // A directory can't be read as a file: a stand-in for EACCES that also
    // works when the tests run as root.
    let e = load_cert_chain(dir.path()).unwrap_err();
    assert!(matches!(e, TlsError::Io { action: "read", .. }), "{e:?}");
    assert!(
        e.to_string().contains(&*dir.path().to_string_lossy()),
        "{e}"
    );
}

#[test]
fn leaf_not_after_is_the_leaf_expiry() {
    let dir = TempDir::new("pem-exp");
    let ca = TestCa::new();
    let mut params = rcgen::CertificateParams::new(vec!["a.test".to_string()]).unwrap();
    let not_after = time::OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap();
    params.not_after = not_after;
    let (cert, _) = ca.leaf_from(params);
    // Leaf followed by the CA: the CA's (later) expiry must not be used.
    let chain = format!("{cert}{}", ca.pem);
    let p = dir.path().join("chain.crt");
    std::fs::write(&p, chain).unwrap();
    assert_eq!(leaf_not_after(&p).unwrap(), 1_900_000_000);
    assert_eq!(load_cert_chain(&p).unwrap().len(), 2);
}
