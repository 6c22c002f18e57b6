//! Network allowlists: which client addresses may reach dockgate, a
//! repository, or push to it; and who the client is behind trusted
//! proxies (`X-Forwarded-For`; PROXY protocol v2 is read at accept time).

use ipnet::IpNet;
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    #[error("{0:?} is not a network (CIDR like 10.0.0.0/8) or an address")]
    NotANetwork(String),
}

/// A list of networks; empty means "anywhere".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Networks(pub Vec<IpNet>);

impl Networks {
    /// Parses CIDRs or bare addresses (a single host).
    pub fn parse(items: &[String]) -> Result<Self, NetworkError> {
        items
            .iter()
            .map(|s| parse_one(s))
            .collect::<Result<Vec<_>, _>>()
            .map(Networks)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is in one of the networks. An IPv4-mapped IPv6
    /// address counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// An empty list allows everyone; otherwise the address must be in it
    /// (an unknown address is not).
    pub fn allows(&self, ip: Option<IpAddr>) -> bool {
        self.is_empty() || ip.is_some_and(|ip| self.contains(ip))
    }
}

fn parse_one(s: &str) -> Result<IpNet, NetworkError> {
    let s = s.trim();
    if let Ok(n) = s.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    s.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| NetworkError::NotANetwork(s.to_string()))
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client's address: the peer, or, when the peer is a trusted proxy,
/// the first untrusted hop of `X-Forwarded-For` read from the right (the
/// hops a trusted proxy appended; anything left of them is the client's
/// own claim and never believed past the first untrusted one).
pub fn client_address(peer: Option<IpAddr>, xff: &[&str], trusted: &Networks) -> Option<IpAddr> {
    let peer = peer?;
    if trusted.is_empty() || !trusted.contains(peer) {
        return Some(peer);
    }
    let hops = xff
        .iter()
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .filter(|h| !h.is_empty());
    let mut client = peer;
    for hop in hops.collect::<Vec<_>>().into_iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            // Garbage from an untrusted source: stop at the last good hop.
            return Some(client);
        };
        client = ip;
        if !trusted.contains(ip) {
            return Some(ip);
        }
    }
    Some(client)
}

/// `1.2.3.4`, `1.2.3.4:5678`, `[2001:db8::1]:443` or `2001:db8::1`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = hop.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(items: &[&str]) -> Networks {
        Networks::parse(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parsing_and_matching() {
        let n = nets(&["10.0.0.0/8", "2001:db8::/32", "127.0.0.1", "192.168.1.7/24"]);
        for (addr, want) in [
            ("10.1.2.3", true),
            ("11.0.0.1", false),
            ("2001:db8::5", true),
            ("2001:db9::5", false),
            ("127.0.0.1", true),
            ("127.0.0.2", false),
            ("::ffff:10.9.9.9", true),
            ("192.168.1.200", true),
        ] {
            assert_eq!(n.contains(ip(addr)), want, "{addr}");
        }
        assert!(Networks::default().allows(None));
        assert!(!n.allows(None));
        for bad in ["10.0.0.0/33", "example.com", "10.0.0/8", ""] {
            assert!(Networks::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn client_behind_proxies() {
        let trusted = nets(&["127.0.0.1", "10.0.0.0/8"]);
        let cases: Vec<(&str, Vec<&str>, &str, &str)> = vec![
            (
                "untrusted peer: its XFF is ignored",
                vec!["1.1.1.1"],
                "192.0.2.9",
                "192.0.2.9",
            ),
            (
                "trusted peer, one hop",
                vec!["203.0.113.5"],
                "127.0.0.1",
                "203.0.113.5",
            ),
            (
                "a client-forged left part is not believed",
                vec!["6.6.6.6, 203.0.113.5"],
                "127.0.0.1",
                "203.0.113.5",
            ),
            (
                "trusted hops are skipped",
                vec!["203.0.113.5, 10.1.1.1"],
                "127.0.0.1",
                "203.0.113.5",
            ),
            (
                "several headers",
                vec!["203.0.113.5", "10.1.1.1"],
                "127.0.0.1",
                "203.0.113.5",
            ),
            (
                "no header: the proxy itself",
                vec![],
                "127.0.0.1",
                "127.0.0.1",
            ),
            (
                "garbage stops at the last good hop",
                vec!["junk, 10.1.1.1"],
                "127.0.0.1",
                "10.1.1.1",
            ),
            (
                "with ports",
                vec!["[2001:db8::1]:443"],
                "127.0.0.1",
                "2001:db8::1",
            ),
        ];
        for (why, xff, peer, want) in cases {
            assert_eq!(
                client_address(Some(ip(peer)), &xff, &trusted),
                Some(ip(want)),
                "{why}"
            );
        }
    }
}
