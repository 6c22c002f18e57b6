#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::tls::generate::generate;
use crate::tls::testutil::TempDir;

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

#[test]
fn ensure_table() {
    // (case, setup before ensure, expected outcome kind)
    #[derive(Debug, PartialEq)]
    enum Want {
        Generated,
        Kept,
        Expiring,
        SansChanged(Vec<String>, Vec<String>),
        Unusable,
        OtherIssuer,
    }
    type Setup = Box<dyn Fn(&Path) -> GenerateOptions>;
    let cases: Vec<(&str, Setup, Want)> = vec![
        ("no files", Box::new(opts), Want::Generated),
        (
            "fresh and matching",
            Box::new(|d| {
                generate(&opts(d)).unwrap();
                opts(d)
            }),
            Want::Kept,
        ),
        (
            "expires within 30 days",
            Box::new(|d| {
                generate(&GenerateOptions {
                    days: 10,
                    ..opts(d)
                })
                .unwrap();
                opts(d)
            }),
            Want::Expiring,
        ),
        (
            "an IP added, a name dropped",
            Box::new(|d| {
                generate(&opts(d)).unwrap();
                let mut o = opts(d);
                o.ips.push("192.0.2.1".parse().unwrap());
                o.dns.retain(|n| !n.starts_with('*'));
                o
            }),
            Want::SansChanged(vec!["IP:192.0.2.1".into()], vec!["DNS:*.apps.test".into()]),
        ),
        (
            "server.key deleted",
            Box::new(|d| {
                generate(&opts(d)).unwrap();
                std::fs::remove_file(d.join(SERVER_KEY)).unwrap();
                opts(d)
            }),
            Want::Unusable,
        ),
        (
            "ca.crt replaced by another CA",
            Box::new(|d| {
                generate(&opts(d)).unwrap();
                let other = TempDir::new("gen-other-ca");
                generate(&opts(other.path())).unwrap();
                for n in [CA_CERT, CA_KEY] {
                    std::fs::copy(other.path().join(n), d.join(n)).unwrap();
                }
                opts(d)
            }),
            Want::OtherIssuer,
        ),
        (
            "CA kept off the server, cert still fine",
            Box::new(|d| {
                generate(&opts(d)).unwrap();
                std::fs::remove_file(d.join(CA_KEY)).unwrap();
                std::fs::remove_file(d.join(CA_CERT)).unwrap();
                opts(d)
            }),
            Want::Kept,
        ),
    ];
    for (case, setup, want) in cases {
        let dir = TempDir::new("gen-ensure");
        let o = setup(dir.path());
        let ca_before = std::fs::read(dir.path().join(CA_CERT)).ok();
        let got = match ensure_server_cert(&o).unwrap() {
            EnsureOutcome::Generated(_) => Want::Generated,
            EnsureOutcome::Kept { .. } => Want::Kept,
            EnsureOutcome::Reissued { reason, report } => {
                assert!(!report.ca_created, "{case}: re-issued from the same CA");
                assert_eq!(std::fs::read(&report.ca_cert).ok(), ca_before, "{case}");
                match reason {
                    ReissueReason::ExpiresSoon { days_left, .. } => {
                        assert!((8..=10).contains(&days_left), "{case}: {days_left}");
                        Want::Expiring
                    }
                    ReissueReason::SansChanged { missing, extra } => {
                        Want::SansChanged(missing, extra)
                    }
                    ReissueReason::Unusable(_) => Want::Unusable,
                    ReissueReason::OtherIssuer => Want::OtherIssuer,
                }
            }
        };
        assert_eq!(got, want, "{case}");
        // Whatever happened, a second run keeps what is there now.
        assert!(
            matches!(ensure_server_cert(&o).unwrap(), EnsureOutcome::Kept { .. }),
            "{case}: second run"
        );
    }
}

#[test]
fn ensure_without_ca_refuses_to_start_a_new_one() {
    let dir = TempDir::new("gen-ensure-noca");
    generate(&GenerateOptions {
        days: 5,
        ..opts(dir.path())
    })
    .unwrap();
    std::fs::remove_file(dir.path().join(CA_KEY)).unwrap();
    std::fs::remove_file(dir.path().join(CA_CERT)).unwrap();
    let err = ensure_server_cert(&opts(dir.path()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("must be re-issued") && err.contains("ca.crt and ca.key are not there"),
        "{err}"
    );
    assert!(!dir.path().join(CA_CERT).exists());
}
