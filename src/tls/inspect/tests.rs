#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::tls::generate::{generate, GenerateOptions};
use crate::tls::testutil::{TempDir, TestCa};

fn generated(dir: &Path) -> PathBuf {
    let o = GenerateOptions {
        ips: vec!["10.0.0.5".parse().unwrap(), "::1".parse().unwrap()],
        dns: vec!["registry.test".into()],
        ..GenerateOptions::new(dir)
    };
    generate(&o).unwrap().server_cert
}

#[test]
fn describes_a_generated_cert() {
    let dir = TempDir::new("inspect");
    let r = inspect(&generated(dir.path()), None).unwrap();
    assert_eq!(r.chain_len, 2);
    assert_eq!(r.facts.dns_sans, ["registry.test"]);
    assert_eq!(
        r.facts.ip_sans,
        [
            "10.0.0.5".parse::<std::net::IpAddr>().unwrap(),
            "::1".parse().unwrap()
        ]
    );
    assert_eq!(r.key_type, "ECDSA P-256");
    assert!(!r.is_ca && !r.self_signed);
    assert_eq!(r.key_usage, ["digitalSignature"]);
    assert_eq!(r.ext_key_usage, ["serverAuth"]);
    assert!(r.verdict.is_none());
    let text = r.to_string();
    for want in [
        "Subject:    O=dockgate, CN=registry.test",
        "SANs:       DNS: registry.test",
        "IP:  10.0.0.5, ::1",
        "Issuer:     O=dockgate, CN=dockgate local CA",
        "days left",
        "Key:        ECDSA P-256",
        "CA:         no",
        "EKU:        serverAuth",
        "(2 certificates; the first is shown)",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }

    let ca = inspect(&dir.path().join("ca.crt"), None).unwrap();
    assert!(ca.is_ca && ca.self_signed);
    assert_eq!(ca.path_len, Some(0));
    assert_eq!(ca.key_usage, ["keyCertSign", "cRLSign"]);
    assert!(ca.to_string().contains("CA:         yes (pathlen 0)"));
}

#[test]
fn verdict_for_the_dialed_address_table() {
    let dir = TempDir::new("inspect-verdict");
    let server = generated(dir.path());
    let test_ca = TestCa::new();
    let write = |name: &str, pem: String| {
        let p = dir.path().join(name);
        std::fs::write(&p, pem).unwrap();
        p
    };
    let cn_ip = write("cn-ip.crt", test_ca.cn_only("127.0.0.1").0);
    let dns_only = write("dns-only.crt", test_ca.leaf(&["registry.test"]).0);
    let cases: Vec<(&Path, &str, Option<&str>)> = vec![
        (&server, "10.0.0.5:5443", None),
        (&server, "[::1]:5443", None),
        (&server, "registry.test:5443", None),
        (&server, "10.0.0.6:5443", Some("x509: certificate is valid for 10.0.0.5, ::1, not 10.0.0.6")),
        (&server, "other.test", Some("x509: certificate is valid for registry.test, not other.test")),
        (&cn_ip, "127.0.0.1:5443", Some("x509: certificate relies on legacy Common Name field, use SANs instead")),
        (
            &dns_only,
            "127.0.0.1:5443",
            Some("x509: cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs"),
        ),
    ];
    for (path, host, want) in cases {
        let r = inspect(path, Some(host)).unwrap();
        let v = r.verdict.as_ref().unwrap();
        assert_eq!(
            v.problems.first().map(|p| p.go_error.as_str()),
            want,
            "{host}"
        );
        let text = r.to_string();
        assert!(
            text.contains(if want.is_some() { "REJECT" } else { "ACCEPT" }),
            "{text}"
        );
    }
}

#[test]
fn expiry_is_judged_at_the_given_time() {
    let dir = TempDir::new("inspect-time");
    let path = generated(dir.path());
    let r = inspect(&path, None).unwrap();
    let later = r.facts.not_after + 3 * 86_400;
    let r = inspect_at(&path, Some("10.0.0.5:5443"), later).unwrap();
    assert!(r.to_string().contains("EXPIRED 3 days ago"));
    let go = &r.verdict.unwrap().problems[0].go_error;
    assert!(
        go.starts_with("x509: certificate has expired or is not yet valid: current time"),
        "{go}"
    );
}

#[test]
fn errors_name_the_file_or_the_host() {
    let dir = TempDir::new("inspect-err");
    let missing = dir.path().join("missing.crt");
    assert!(inspect(&missing, None)
        .unwrap_err()
        .to_string()
        .contains("missing.crt"));
    let path = generated(dir.path());
    let e = inspect(&path, Some("host:notaport"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("host:notaport") && e.contains("port"), "{e}");
}
