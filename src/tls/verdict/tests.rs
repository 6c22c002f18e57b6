#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

const DAY: i64 = 86_400;
const NOW: i64 = 1_750_000_000; // 2025-06-15T15:06:40Z

fn cert(dns: &[&str], ips: &[&str]) -> CertFacts {
    CertFacts {
        dns_sans: dns.iter().map(|s| s.to_string()).collect(),
        ip_sans: ips.iter().map(|s| s.parse().unwrap()).collect(),
        has_san_extension: !(dns.is_empty() && ips.is_empty()),
        common_name: None,
        not_before: NOW - DAY,
        not_after: NOW + 300 * DAY,
        eku: Some(Eku {
            server_auth: true,
            any: false,
        }),
    }
}

fn cn_only(cn: &str) -> CertFacts {
    CertFacts {
        common_name: Some(cn.into()),
        ..cert(&[], &[])
    }
}

#[test]
fn go_errors_table() {
    let expired = CertFacts {
        not_before: NOW - 400 * DAY,
        not_after: NOW - 2 * DAY,
        ..cert(&[], &["10.0.0.5"])
    };
    let future = CertFacts {
        not_before: NOW + 3600,
        ..cert(&[], &["10.0.0.5"])
    };
    let client_only = CertFacts {
        eku: Some(Eku::default()),
        ..cert(&["reg.test"], &[])
    };
    let any_eku = CertFacts {
        eku: Some(Eku {
            server_auth: false,
            any: true,
        }),
        ..cert(&["reg.test"], &[])
    };
    let no_eku = CertFacts {
        eku: None,
        ..cert(&["reg.test"], &[])
    };
    let san_ext_without_names = CertFacts {
        has_san_extension: true,
        ..cert(&[], &[])
    };
    let both_wrong = CertFacts {
        not_after: NOW - DAY,
        ..cert(&["a.test"], &[])
    };

    // (case, facts, dialed address, expected Go errors in order; empty = accepted)
    let cases: Vec<(&str, CertFacts, &str, Vec<&str>)> = vec![
        ("ip in SANs", cert(&["reg.test"], &["10.0.0.5"]), "10.0.0.5:5443", vec![]),
        ("ipv6 in SANs", cert(&[], &["::1", "fd00::5"]), "[fd00::5]:5443", vec![]),
        ("ipv4-mapped equals v4", cert(&[], &["::ffff:10.0.0.5"]), "10.0.0.5", vec![]),
        ("name in SANs, any case", cert(&["Reg.Test"], &[]), "reg.TEST:5443", vec![]),
        ("trailing dot", cert(&["reg.test"], &[]), "reg.test.", vec![]),
        ("wildcard one label", cert(&["*.reg.test"], &[]), "a.reg.test", vec![]),
        ("no eku extension is fine", no_eku, "reg.test", vec![]),
        ("eku any is fine", any_eku, "reg.test", vec![]),
        (
            "ip dialed, only a DNS SAN",
            cert(&["reg.test"], &[]),
            "10.0.0.5:5443",
            vec!["x509: cannot validate certificate for 10.0.0.5 because it doesn't contain any IP SANs"],
        ),
        (
            "ip dialed, CN is another name, no SANs",
            cn_only("reg.test"),
            "127.0.0.1:5443",
            vec!["x509: cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs"],
        ),
        (
            "ip dialed, other IP SANs",
            cert(&["reg.test"], &["127.0.0.1", "::1"]),
            "127.0.0.2:5443",
            vec!["x509: certificate is valid for 127.0.0.1, ::1, not 127.0.0.2"],
        ),
        (
            "ipv6 dialed, brackets stripped in the error",
            cert(&[], &["10.0.0.5", "::ffff:10.0.0.6"]),
            "[fd00::9]:5443",
            vec!["x509: certificate is valid for 10.0.0.5, 10.0.0.6, not fd00::9"],
        ),
        (
            "CN is the dialed IP, no SANs",
            cn_only("127.0.0.1"),
            "127.0.0.1:5443",
            vec!["x509: certificate relies on legacy Common Name field, use SANs instead"],
        ),
        (
            "CN is the dialed name, no SANs",
            cn_only("reg.test"),
            "reg.test",
            vec!["x509: certificate relies on legacy Common Name field, use SANs instead"],
        ),
        (
            "CN wildcard matches, no SANs",
            cn_only("*.reg.test"),
            "a.reg.test",
            vec!["x509: certificate relies on legacy Common Name field, use SANs instead"],
        ),
        (
            "name dialed, other names",
            cert(&["a", "b"], &["10.0.0.5"]),
            "c:5443",
            vec!["x509: certificate is valid for a, b, not c"],
        ),
        (
            "name dialed, only IP SANs",
            cert(&[], &["10.0.0.5"]),
            "reg.test",
            vec!["x509: certificate is not valid for any names, but wanted to match reg.test"],
        ),
        (
            "SAN extension without names",
            san_ext_without_names,
            "reg.test",
            vec!["x509: certificate is not valid for any names, but wanted to match reg.test"],
        ),
        (
            "name dialed, CN differs, no SANs",
            cn_only("other.test"),
            "reg.test",
            vec!["x509: certificate is not valid for any names, but wanted to match reg.test"],
        ),
        (
            "wildcard is one label only",
            cert(&["*.reg.test"], &[]),
            "a.b.reg.test",
            vec!["x509: certificate is valid for *.reg.test, not a.b.reg.test"],
        ),
        (
            "wildcard does not match the apex",
            cert(&["*.reg.test"], &[]),
            "reg.test",
            vec!["x509: certificate is valid for *.reg.test, not reg.test"],
        ),
        (
            "expired",
            expired,
            "10.0.0.5:5443",
            vec!["x509: certificate has expired or is not yet valid: current time 2025-06-15T15:06:40Z is after 2025-06-13T15:06:40Z"],
        ),
        (
            "not yet valid",
            future,
            "10.0.0.5",
            vec!["x509: certificate has expired or is not yet valid: current time 2025-06-15T15:06:40Z is before 2025-06-15T16:06:40Z"],
        ),
        (
            "client-auth only",
            client_only,
            "reg.test",
            vec!["x509: certificate specifies an incompatible key usage"],
        ),
        (
            "expired and wrong name: expiry is reported first",
            both_wrong,
            "b.test",
            vec![
                "x509: certificate has expired or is not yet valid: current time 2025-06-15T15:06:40Z is after 2025-06-14T15:06:40Z",
                "x509: certificate is valid for a.test, not b.test",
            ],
        ),
    ];
    for (case, facts, addr, want) in cases {
        let v = go_verdict(&facts, &DialTarget::parse(addr).unwrap(), NOW);
        let got: Vec<&str> = v.problems.iter().map(|p| p.go_error.as_str()).collect();
        assert_eq!(got, want, "{case}");
        assert_eq!(v.accepted(), want.is_empty(), "{case}");
    }
}

#[test]
fn fixes_name_the_generate_command() {
    let cases = [
        (
            cert(&["reg.test"], &["127.0.0.1"]),
            "10.0.0.5:5443",
            "dockgate cert generate --ip 10.0.0.5 --ip 127.0.0.1 --dns reg.test",
        ),
        (
            cert(&[], &["10.0.0.5"]),
            "Reg.Test",
            "dockgate cert generate --dns reg.test --ip 10.0.0.5",
        ),
        (
            cn_only("127.0.0.1"),
            "127.0.0.1",
            "dockgate cert generate --ip 127.0.0.1",
        ),
        (
            cert(&["*.reg.test"], &[]),
            "reg.test",
            "dockgate cert generate --dns reg.test --dns '*.reg.test'",
        ),
    ];
    for (facts, addr, want) in cases {
        let v = go_verdict(&facts, &DialTarget::parse(addr).unwrap(), NOW);
        assert!(
            v.problems[0].fix.ends_with(want),
            "{addr}: {}",
            v.problems[0].fix
        );
    }
}

#[test]
fn display_says_accept_or_reject_in_plain_words() {
    let ok = go_verdict(
        &cert(&[], &["127.0.0.1"]),
        &DialTarget::parse("127.0.0.1:5443").unwrap(),
        NOW,
    );
    let text = ok.to_string();
    assert!(
        text.contains("dialing 127.0.0.1:5443") && text.contains("ACCEPT"),
        "{text}"
    );
    assert!(
        text.contains("docker CLI skips TLS verification for loopback"),
        "{text}"
    );

    let bad = go_verdict(
        &cert(&["reg.test"], &[]),
        &DialTarget::parse("[fd00::5]:5443").unwrap(),
        NOW,
    );
    let text = bad.to_string();
    for want in [
        "dialing [fd00::5]:5443",
        "REJECT",
        "x509: cannot validate certificate for fd00::5 because it doesn't contain any IP SANs",
        "Fix: re-issue with the address in the SAN: dockgate cert generate --ip fd00::5 --dns reg.test",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
}

#[test]
fn dial_target_parse_table() {
    let ok: &[(&str, &str, Option<u16>, &str)] = &[
        (
            "registry.test:5443",
            "registry.test",
            Some(5443),
            "registry.test:5443",
        ),
        ("registry.test", "registry.test", None, "registry.test"),
        ("10.0.0.5:443", "10.0.0.5", Some(443), "10.0.0.5:443"),
        ("[::1]:5443", "::1", Some(5443), "[::1]:5443"),
        ("[fd00::5]", "fd00::5", None, "[fd00::5]"),
        ("::1", "::1", None, "[::1]"),
        (" 10.0.0.5 ", "10.0.0.5", None, "10.0.0.5"),
    ];
    for (input, host, port, shown) in ok {
        let t = DialTarget::parse(input).unwrap();
        assert_eq!((t.host.as_str(), t.port), (*host, *port), "{input}");
        assert_eq!(t.to_string(), *shown, "{input}");
    }
    for bad in [
        "",
        ":5443",
        "host:port",
        "host:70000",
        "[::1",
        "[::1]5443",
        "[reg.test]:1",
        "a:b:c",
    ] {
        assert!(DialTarget::parse(bad).is_err(), "{bad:?} should fail");
    }
}

#[test]
fn go_hostname_helpers_table() {
    let cases = [
        ("*.a.test", "x.a.test", true),
        ("*.a.test", "a.test", false),
        ("A.Test", "a.test.", true),
        ("", "a", false),
        ("a.test", "", false),
        ("127.0.0.1", "127.0.0.1", true),
    ];
    for (pattern, host, want) in cases {
        assert_eq!(match_hostnames(pattern, host), want, "{pattern} vs {host}");
    }
    assert!(valid_hostname("*.a.test", true));
    assert!(!valid_hostname("*.a.test", false));
    assert!(!valid_hostname("-a.test", false));
    assert!(valid_hostname("a_b.test.", false));
}

#[test]
fn rfc3339_formats_utc() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(NOW), "2025-06-15T15:06:40Z");
}
