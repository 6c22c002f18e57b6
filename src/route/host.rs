//! Which `Host`/`:authority` values dockgate answers. Absolute URLs it
//! builds (upload `Location`, the challenge realm, `Link`, `/v2/auth`
//! entries, `X-Forwarded-Host` to backends) come from the request's host,
//! so only configured names are accepted: the served certificates' names
//! and IPs, `<key>.<base_domain>` on subdomain listeners, listener
//! addresses, the machine's own IPs (loopback included: an IP of this host
//! cannot point anywhere else), and `[server] public_hosts`. Anything else is
//! refused before it can be reflected. DNS names are read from the
//! certificates at (re)load; IPs of a hot-reloaded certificate are covered
//! by the machine's own addresses.

use super::host_name;
use crate::config::{Config, ListenMethod};
use std::collections::HashSet;
use std::net::IpAddr;

#[derive(Debug, Clone, Default)]
pub struct HostNames {
    exact: HashSet<String>,
    /// IPs among the exact names (a Host IP is compared parsed, not printed).
    exact_ips: HashSet<IpAddr>,
    /// `*.suffix` patterns, stored as `.suffix`: one more label matches.
    wildcard: HashSet<String>,
    local_ips: HashSet<IpAddr>,
}

/// The IP a host names, bare or with brackets and port.
fn ip_of(name: &str) -> Option<IpAddr> {
    name.parse().ok().or_else(|| host_name(name).parse().ok())
}

fn normalize(name: &str) -> String {
    match ip_of(name) {
        Some(ip) => ip.to_string(),
        None => host_name(name),
    }
}

impl HostNames {
    /// From the config and the names (DNS and IP SANs) of the served
    /// certificates.
    pub fn new(cfg: &Config, cert_names: &[String], local_ips: &[IpAddr]) -> Self {
        let mut h = Self {
            local_ips: local_ips.iter().copied().collect(),
            ..Self::default()
        };
        for n in cert_names {
            h.add(n);
        }
        if let Some(g) = &cfg.tls.generate {
            g.dns.iter().for_each(|n| h.add(n));
            g.ips.iter().for_each(|ip| h.add(&ip.to_string()));
        }
        for c in &cfg.tls.extra {
            c.server_names.iter().for_each(|n| h.add(n));
        }
        for l in &cfg.listeners {
            let ip = l.address.ip();
            if ip.is_unspecified() {
                h.add("127.0.0.1");
                h.add("::1");
            } else {
                h.add(&ip.to_string());
            }
            if let ListenMethod::Subdomain { base_domain } = &l.method {
                h.add(base_domain);
                h.add(&format!("*.{base_domain}"));
            }
        }
        cfg.server.public_hosts.iter().for_each(|n| h.add(n));
        h
    }

    fn add(&mut self, name: &str) {
        match name.strip_prefix("*.") {
            Some(suffix) => {
                self.wildcard.insert(format!(".{}", normalize(suffix)));
            }
            None => match ip_of(name) {
                Some(ip) => {
                    self.exact_ips.insert(ip);
                }
                None => {
                    self.exact.insert(host_name(name));
                }
            },
        }
    }

    /// True when `host` (a Host header or `:authority`, port allowed) is
    /// one of ours.
    pub fn allows(&self, host: &str) -> bool {
        if let Some(ip) = ip_of(host) {
            return self.exact_ips.contains(&ip)
                || ip.is_loopback()
                || self.local_ips.contains(&ip);
        }
        let h = host_name(host);
        if h.is_empty() {
            return false;
        }
        if self.exact.contains(&h) {
            return true;
        }
        h.split_once('.').is_some_and(|(label, rest)| {
            !label.is_empty() && self.wildcard.contains(&format!(".{rest}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn only_configured_names() {
        let text = r#"
[server]
public_hosts = ["registry.example.com", "203.0.113.7"]
[tls]
cert = "c.pem"
key = "k.pem"
[[listen]]
address = "127.0.0.1:5443"
method = "path"
[[listen]]
address = "0.0.0.0:5444"
method = "subdomain"
base_domain = "registry.localhost"
[[listen]]
address = "[::1]:5445"
method = "port"
repository = "docker-local"
[backends.local]
url = "http://127.0.0.1:5000"
[repositories.docker-local]
backend = "local"
"#;
        let c = crate::config::parse(text, Path::new("/x/d.toml")).unwrap();
        let local = ["192.0.2.10".parse().unwrap()];
        let h = HostNames::new(
            &c,
            &[
                "gw.example.org".into(),
                "*.svc.example".into(),
                "10.1.2.3".into(),
            ],
            &local,
        );
        let cases: &[(&str, bool)] = &[
            ("127.0.0.1:5443", true),
            ("[::1]:5445", true),
            ("docker-local.registry.localhost:5444", true),
            ("Docker-Local.Registry.Localhost.", true),
            ("registry.localhost", true),
            ("a.b.registry.localhost", false),
            ("gw.example.org", true),
            ("x.svc.example", true),
            ("svc.example", false),
            ("10.1.2.3:443", true),
            ("registry.example.com", true),
            ("203.0.113.7", true),
            ("evil.example", false),
            ("evil.example:5443", false),
            ("127.0.0.2", true),
            ("192.0.2.10:5443", true),
            ("192.0.2.11", false),
            ("localhost", false),
            ("", false),
            ("registry.localhost.evil.example", false),
        ];
        for (host, want) in cases {
            assert_eq!(h.allows(host), *want, "{host}");
        }
    }
}
