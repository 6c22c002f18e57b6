//! `--detect`: this machine's own addresses and host name, for the server
//! cert's subjectAltName. Uses `nix` (getifaddrs, gethostname): already in
//! the tree through pingora, and no `unsafe` here.

use std::net::IpAddr;

use crate::tls::{Result, TlsError};

/// Non-loopback unicast addresses of interfaces that are up, sorted.
pub fn local_addresses() -> Result<Vec<IpAddr>> {
    use nix::net::if_::InterfaceFlags;
    let addrs = nix::ifaddrs::getifaddrs()
        .map_err(|e| TlsError::Detect(format!("cannot list network interfaces: {e}")))?;
    let mut out: Vec<IpAddr> = addrs
        .filter(|a| a.flags.contains(InterfaceFlags::IFF_UP))
        .filter_map(|a| a.address)
        .filter_map(|sa| {
            if let Some(v4) = sa.as_sockaddr_in() {
                Some(IpAddr::V4(v4.ip()))
            } else {
                sa.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
            }
        })
        .filter(|ip| worth_a_san(*ip))
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// The host name, lower-cased; `None` if it is unset, `localhost`, or not
/// usable as a DNS name.
pub fn hostname() -> Result<Option<String>> {
    let h = nix::unistd::gethostname()
        .map_err(|e| TlsError::Detect(format!("cannot read the host name: {e}")))?;
    Ok(usable_hostname(&h.to_string_lossy()))
}

/// Addresses a client could dial us on. Link-local ones need a zone
/// (`fe80::1%eth0`) that a registry address can't carry, so they're left out.
pub(crate) fn worth_a_san(ip: IpAddr) -> bool {
    if ip.is_loopback() || ip.is_unspecified() || ip.is_multicast() {
        return false;
    }
    match ip {
        IpAddr::V4(v4) => !v4.is_link_local() && !v4.is_broadcast(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
    }
}

pub(crate) fn usable_hostname(raw: &str) -> Option<String> {
    let h = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    let ok = !h.is_empty()
        && h != "localhost"
        && h.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    ok.then_some(h)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn worth_a_san_table() {
        let cases = [
            ("127.0.0.1", false),
            ("127.1.2.3", false),
            ("::1", false),
            ("0.0.0.0", false),
            ("::", false),
            ("169.254.1.1", false),
            ("fe80::1", false),
            ("febf::1", false),
            ("224.0.0.1", false),
            ("255.255.255.255", false),
            ("10.0.0.5", true),
            ("192.168.1.20", true),
            ("203.0.113.9", true),
            ("fd00::5", true),
            ("2001:db8::1", true),
        ];
        for (ip, want) in cases {
            assert_eq!(worth_a_san(ip.parse().unwrap()), want, "{ip}");
        }
    }

    #[test]
    fn usable_hostname_table() {
        let cases = [
            ("buildbox", Some("buildbox")),
            ("BuildBox.Example.com.", Some("buildbox.example.com")),
            ("localhost", None),
            ("", None),
            ("bad_host", None),
            ("-x", None),
            ("a..b", None),
        ];
        for (raw, want) in cases {
            assert_eq!(usable_hostname(raw).as_deref(), want, "{raw:?}");
        }
    }

    #[test]
    fn detected_addresses_are_never_loopback() {
        for ip in local_addresses().unwrap() {
            assert!(worth_a_san(ip), "{ip}");
        }
        hostname().unwrap();
    }
}
