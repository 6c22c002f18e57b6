#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::tls::pem;
use crate::tls::store::{CertSpec, CertStore};
use crate::tls::testutil::{dns, handshake, ip, TempDir, TestCa};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use time::OffsetDateTime;
use x509_parser::extensions::ParsedExtension;

const DAY: i64 = 86_400;

fn opts(dir: &Path) -> GenerateOptions {
    GenerateOptions {
        ips: ["10.0.0.5", "127.0.0.1", "::1", "fd00::5"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect(),
        dns: vec!["Registry.Test".into(), "*.apps.test".into()],
        ..GenerateOptions::new(dir)
    }
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn ders(path: &Path) -> Vec<Vec<u8>> {
    pem::load_cert_chain(path)
        .unwrap()
        .iter()
        .map(|c| c.as_ref().to_vec())
        .collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn ski(x: &x509_parser::certificate::X509Certificate<'_>) -> Option<Vec<u8>> {
    x.iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
}

fn aki(x: &x509_parser::certificate::X509Certificate<'_>) -> Option<Vec<u8>> {
    x.iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
}

#[test]
fn generated_server_cert_fields() {
    let dir = TempDir::new("gen-fields");
    let t0 = now();
    let report = generate(&opts(dir.path())).unwrap();
    assert!(report.ca_created);

    let chain = ders(&report.server_cert);
    assert_eq!(chain.len(), 2, "server.crt = leaf + CA");
    assert_eq!(chain[1], ders(&report.ca_cert)[0], "chain ends with ca.crt");
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    let (_, ca) = x509_parser::parse_x509_certificate(&chain[1]).unwrap();

    // subjectAltName: every IP (v4 and v6) and DNS name, names lower-cased.
    let want = SanSet {
        ips: ["10.0.0.5", "127.0.0.1", "::1", "fd00::5"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect::<Vec<_>>(),
        dns: vec!["*.apps.test".into(), "registry.test".into()],
    };
    let mut want = want;
    want.tidy();
    assert_eq!(SanSet::from_cert(&leaf), want);
    assert_eq!(report.sans, want);

    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth && !eku.any && eku.other.is_empty());
    let ku = leaf.key_usage().unwrap().unwrap();
    assert!(ku.critical, "keyUsage is critical");
    assert!(ku.value.digital_signature());
    assert!(!ku.value.key_encipherment(), "ECDSA: no keyEncipherment");
    assert!(!ku.value.key_cert_sign());
    let bc = leaf
        .basic_constraints()
        .unwrap()
        .expect("basicConstraints present");
    assert!(!bc.value.ca);

    // Validity: backdated an hour, 200 days by default.
    let nb = leaf.validity().not_before.timestamp();
    let na = leaf.validity().not_after.timestamp();
    assert!(
        (t0 - 3600 - 5..=now() - 3600 + 5).contains(&nb),
        "notBefore {nb}"
    );
    assert!((na - (t0 + 200 * DAY)).abs() < 10, "notAfter {na}");
    assert_eq!((report.not_before, report.not_after), (nb, na));

    // Serial: 16 random bytes, positive.
    let serial = leaf.raw_serial();
    assert_eq!(serial.len(), 16);
    assert!(serial[0] & 0x80 == 0 && serial[0] != 0);

    // Issued by the CA.
    assert_eq!(leaf.issuer().as_raw(), ca.subject().as_raw());
    assert!(leaf.verify_signature(Some(ca.public_key())).is_ok());
    assert_eq!(aki(&leaf), ski(&ca), "AKI names the CA's key");

    // The CA: CA:TRUE pathlen 0, keyCertSign + cRLSign, ~10 years.
    let bc = ca.basic_constraints().unwrap().unwrap().value;
    assert!(bc.ca);
    assert_eq!(bc.path_len_constraint, Some(0));
    let ku = ca.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign());
    let ca_days =
        (ca.validity().not_after.timestamp() - ca.validity().not_before.timestamp()) / DAY;
    assert!((3649..=3651).contains(&ca_days), "CA days {ca_days}");
    assert_eq!(ca.subject().as_raw(), ca.issuer().as_raw(), "self-signed");

    // Keys 0600, certs never more than 0644; no temp files left.
    assert_eq!(mode(&report.server_key), 0o600);
    assert_eq!(mode(&report.ca_key), 0o600);
    assert_eq!(mode(&report.server_cert) & !0o644, 0);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        ["ca.crt", "ca.key", "server.crt", "server.key"],
        "{names:?}"
    );
}

#[test]
fn rustls_accepts_the_pair_by_name_and_by_ip() {
    let dir = TempDir::new("gen-hs");
    let report = generate(&opts(dir.path())).unwrap();
    let store = Arc::new(
        CertStore::new(vec![CertSpec {
            name: "generated".into(),
            cert: report.server_cert.clone(),
            key: report.server_key.clone(),
            server_names: vec![],
        }])
        .unwrap(),
    );
    let ca = pem::load_cert_chain(&report.ca_cert).unwrap().remove(0);
    for target in [
        dns("registry.test"),
        dns("x.apps.test"),
        ip("10.0.0.5"),
        ip("::1"),
        ip("fd00::5"),
    ] {
        let peer = handshake(store.clone(), &ca, target.clone());
        assert!(peer.is_ok(), "{target:?}: {peer:?}");
    }
    for target in [dns("other.test"), ip("10.0.0.6")] {
        let err = handshake(store.clone(), &ca, target.clone()).unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForNameContext { .. }
                ) | rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
            ),
            "{target:?}: {err:?}"
        );
    }
    // A client trusting another CA refuses it.
    let other = TestCa::new();
    assert!(handshake(store, &other.der, dns("registry.test")).is_err());
}

#[test]
fn serials_are_random() {
    let dir = TempDir::new("gen-serial");
    let o = opts(dir.path());
    let serials: Vec<String> = (0..4).map(|_| generate(&o).unwrap().serial).collect();
    for (i, a) in serials.iter().enumerate() {
        for b in &serials[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

#[test]
fn existing_ca_is_reused_and_old_trust_keeps_working() {
    let dir = TempDir::new("gen-reuse");
    let first = generate(&opts(dir.path())).unwrap();
    let ca_crt = std::fs::read(&first.ca_cert).unwrap();
    let ca_key = std::fs::read(&first.ca_key).unwrap();

    let mut o = opts(dir.path());
    o.ips.push("192.0.2.7".parse().unwrap());
    let second = generate(&o).unwrap();
    assert!(!second.ca_created);
    assert_eq!(std::fs::read(&second.ca_cert).unwrap(), ca_crt);
    assert_eq!(std::fs::read(&second.ca_key).unwrap(), ca_key);

    // A client that trusted the CA from the first run accepts the new cert
    // (issuer DN and key id re-read from ca.crt must match exactly).
    let store = Arc::new(
        CertStore::new(vec![CertSpec {
            name: "s".into(),
            cert: second.server_cert.clone(),
            key: second.server_key.clone(),
            server_names: vec![],
        }])
        .unwrap(),
    );
    let trusted = pem::parse_cert_chain(Path::new("ca.crt"), &ca_crt)
        .unwrap()
        .remove(0);
    handshake(store.clone(), &trusted, ip("192.0.2.7")).unwrap();
    handshake(store, &trusted, dns("registry.test")).unwrap();
}

#[test]
fn a_half_or_broken_ca_is_an_error_not_a_new_ca() {
    let other_ca = TestCa::new();
    let (leaf_pem, leaf_key) = other_ca.leaf(&["x.test"]);
    // (case, how to damage a good CA dir, expected message part)
    type Damage = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Damage, &str)> = vec![
        (
            "ca.key missing",
            Box::new(|d| std::fs::remove_file(d.join("ca.key")).unwrap()),
            "ca.crt exists but ca.key is missing",
        ),
        (
            "ca.crt missing",
            Box::new(|d| std::fs::remove_file(d.join("ca.crt")).unwrap()),
            "ca.key exists but ca.crt is missing",
        ),
        (
            "ca.key garbage",
            Box::new(|d| std::fs::write(d.join("ca.key"), "junk").unwrap()),
            "ca.key: unusable private key",
        ),
        (
            "ca.key of another CA",
            Box::new(move |d| std::fs::write(d.join("ca.key"), &leaf_key).unwrap()),
            "ca.key: private key does not match the certificate in",
        ),
        (
            "ca.crt not a CA",
            Box::new(move |d| std::fs::write(d.join("ca.crt"), &leaf_pem).unwrap()),
            "ca.crt: cannot use this CA: not a CA certificate",
        ),
        (
            "ca.crt garbage",
            Box::new(|d| std::fs::write(d.join("ca.crt"), "junk").unwrap()),
            "ca.crt: no CERTIFICATE block",
        ),
    ];
    for (case, damage, want) in cases {
        let dir = TempDir::new("gen-halfca");
        generate(&opts(dir.path())).unwrap();
        std::fs::remove_file(dir.path().join(SERVER_CERT)).unwrap();
        damage(dir.path());
        let before: Vec<_> = ["ca.crt", "ca.key"]
            .iter()
            .map(|n| std::fs::read(dir.path().join(n)).ok())
            .collect();
        let err = generate(&opts(dir.path())).unwrap_err().to_string();
        assert!(err.contains(want), "{case}: {err}");
        let after: Vec<_> = ["ca.crt", "ca.key"]
            .iter()
            .map(|n| std::fs::read(dir.path().join(n)).ok())
            .collect();
        assert_eq!(before, after, "{case}: CA files untouched");
        assert!(
            !dir.path().join(SERVER_CERT).exists(),
            "{case}: no server cert issued"
        );
    }
}

#[test]
fn option_errors_table() {
    let dir = TempDir::new("gen-opts");
    let base = GenerateOptions::new(dir.path().join("out"));
    let with = |f: &dyn Fn(&mut GenerateOptions)| {
        let mut o = base.clone();
        o.ips = vec!["10.0.0.5".parse().unwrap()];
        f(&mut o);
        o
    };
    let cases: Vec<(&str, GenerateOptions, &str)> = vec![
        (
            "zero days",
            with(&|o| o.days = 0),
            "days must be at least 1",
        ),
        ("no SANs", base.clone(), "no subjectAltName"),
        (
            "IP as DNS",
            with(&|o| o.dns = vec!["10.0.0.9".into()]),
            "is an IP address: list it as an IP (--ip 10.0.0.9)",
        ),
        (
            "IPv6 as DNS",
            with(&|o| o.dns = vec!["[::1]".into()]),
            "(--ip ::1)",
        ),
        (
            "bad name",
            with(&|o| o.dns = vec!["reg istry".into()]),
            "not a valid host name",
        ),
        (
            "mid wildcard",
            with(&|o| o.dns = vec!["a.*.test".into()]),
            "not a valid host name",
        ),
    ];
    for (case, o, want) in cases {
        let err = generate(&o).unwrap_err().to_string();
        assert!(err.contains(want), "{case}: {err}");
        assert!(!o.out_dir.join(CA_CERT).exists(), "{case}: nothing written");
    }
}

#[test]
fn detect_adds_host_addresses_but_no_loopback() {
    let dir = TempDir::new("gen-detect");
    let o = GenerateOptions {
        detect: true,
        ips: vec!["127.0.0.1".parse().unwrap()],
        ..GenerateOptions::new(dir.path())
    };
    let report = generate(&o).unwrap();
    let detected: Vec<_> = report
        .sans
        .ips
        .iter()
        .filter(|i| !i.is_loopback())
        .collect();
    assert_eq!(
        detected.len(),
        crate::tls::detect::local_addresses().unwrap().len(),
        "{}",
        report.sans
    );
    if let Some(h) = crate::tls::detect::hostname().unwrap() {
        assert!(report.sans.dns.contains(&h), "{}", report.sans);
    }
    // Only the loopback we asked for.
    assert_eq!(
        report.sans.ips.iter().filter(|i| i.is_loopback()).count(),
        1
    );
}

#[test]
fn key_type_names_table() {
    for (s, k) in [
        ("ecdsa-p256", KeyType::EcdsaP256),
        ("rsa-2048", KeyType::Rsa2048),
        ("rsa-3072", KeyType::Rsa3072),
        ("rsa-4096", KeyType::Rsa4096),
    ] {
        assert_eq!(s.parse::<KeyType>().unwrap(), k);
        assert_eq!(k.to_string(), s);
    }
    assert!("rsa-1024".parse::<KeyType>().is_err());
}

#[test]
fn report_shows_files_sans_and_trust_paths() {
    let dir = TempDir::new("gen-report");
    let report = generate(&opts(dir.path())).unwrap();
    let text = report.to_string();
    assert!(
        text.contains("ca.key, new)")
            && text.contains("IP:10.0.0.5")
            && text.contains("DNS:registry.test"),
        "{text}"
    );
    assert_eq!(
        report.sans.registry_addresses(5443),
        [
            "10.0.0.5:5443",
            "127.0.0.1:5443",
            "[::1]:5443",
            "[fd00::5]:5443",
            "registry.test:5443"
        ]
    );
}

#[test]
fn long_validity_warns_about_apple() {
    let dir = TempDir::new("gen-days");
    let r = generate(&GenerateOptions {
        days: 900,
        ..opts(dir.path())
    })
    .unwrap();
    assert!(
        r.warnings.iter().any(|w| w.contains("macOS/iOS")),
        "{:?}",
        r.warnings
    );
    assert!(generate(&opts(dir.path())).unwrap().warnings.is_empty());
}

#[test]
fn rsa_ca_and_server_cert_serve_a_handshake() {
    let dir = TempDir::new("gen-rsa");
    let mut o = opts(dir.path());
    o.key_type = KeyType::Rsa2048;
    let report = generate(&o).unwrap();
    assert_eq!(report.key_type, KeyType::Rsa2048);
    let chain = ders(&report.server_cert);
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    let (_, ca) = x509_parser::parse_x509_certificate(&chain[1]).unwrap();
    for c in [&leaf, &ca] {
        assert_eq!(
            c.public_key().algorithm.algorithm,
            x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION
        );
        assert_eq!(
            c.signature_algorithm.algorithm,
            x509_parser::oid_registry::OID_PKCS1_SHA256WITHRSA
        );
    }
    leaf.verify_signature(Some(ca.public_key())).unwrap();
    let ku = leaf.key_usage().unwrap().unwrap();
    assert!(ku.value.digital_signature() && ku.value.key_encipherment());
    assert_eq!(mode(&report.server_key), 0o600);
    // rustls (ring) loads and serves it.
    let store = Arc::new(
        CertStore::new(vec![CertSpec {
            name: "default".into(),
            cert: report.server_cert.clone(),
            key: report.server_key.clone(),
            server_names: vec![],
        }])
        .unwrap(),
    );
    let ca_der = rustls_pki_types::CertificateDer::from(chain[1].clone());
    let served = handshake(store, &ca_der, ip("10.0.0.5")).unwrap();
    assert_eq!(served[0].as_ref(), &chain[0][..]);
}
