//! Predict what Go's `crypto/x509` (docker, containerd, podman, skopeo)
//! says about a server certificate for the address a client dials.
//!
//! Pure logic over [`CertFacts`]. It mirrors Go's `Certificate.Verify`
//! order (validity, then extended key usage, then `VerifyHostname`, all
//! before the chain) and the exact text of `HostnameError.Error()`; the
//! strings were checked against skopeo 1.9.3 (Go 1.19). Older Go releases
//! check the key usage after the host name, which only matters for
//! foreign certs without serverAuth. Trust in the issuing CA is not judged
//! here: that depends on the client machine.

use std::fmt;
use std::net::IpAddr;

use crate::tls::{Result, TlsError};

/// What the verdict needs from a certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertFacts {
    pub dns_sans: Vec<String>,
    pub ip_sans: Vec<IpAddr>,
    /// Go's `hasSANExtension`: true even if it holds no DNS/IP names.
    pub has_san_extension: bool,
    pub common_name: Option<String>,
    pub not_before: i64,
    pub not_after: i64,
    /// `None` when the cert has no extendedKeyUsage extension.
    pub eku: Option<Eku>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Eku {
    pub server_auth: bool,
    pub any: bool,
}

/// The address clients dial: `HOST`, `HOST:PORT`, `[IPv6]:PORT` or a
/// bare IPv6 address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialTarget {
    /// Host without brackets: what Go verifies.
    pub host: String,
    pub port: Option<u16>,
}

impl DialTarget {
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |reason: &str| TlsError::InvalidHost {
            host: s.to_string(),
            reason: reason.to_string(),
        };
        let t = s.trim();
        let (host, port) = if let Some(rest) = t.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or_else(|| bad("missing ']'"))?;
            match after {
                "" => (h, None),
                p => (
                    h,
                    Some(
                        p.strip_prefix(':')
                            .ok_or_else(|| bad("expected :PORT after ']'"))?,
                    ),
                ),
            }
        } else if t.matches(':').count() > 1 {
            (t, None) // bare IPv6, no port
        } else {
            match t.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (t, None),
            }
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        if t.starts_with('[') && host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad("only IPv6 addresses go in brackets"));
        }
        if !t.starts_with('[') && host.contains(':') && host.parse::<IpAddr>().is_err() {
            return Err(bad(
                "not an IPv6 address; write IPv6 with a port as [::1]:5443",
            ));
        }
        let port = match port {
            Some(p) => Some(p.parse::<u16>().map_err(|_| bad("port must be 0-65535"))?),
            None => None,
        };
        Ok(DialTarget {
            host: host.to_string(),
            port,
        })
    }

    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

/// `host:port` with brackets for IPv6: the registry's name in image
/// references and in `certs.d` directory names.
impl fmt::Display for DialTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = match self.ip() {
            Some(IpAddr::V6(_)) => format!("[{}]", self.host),
            _ => self.host.clone(),
        };
        match self.port {
            Some(p) => write!(f, "{host}:{p}"),
            None => f.write_str(&host),
        }
    }
}

/// One reason a Go client refuses the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The text Go prints (after `tls: failed to verify certificate: `).
    pub go_error: String,
    pub why: String,
    pub fix: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub target: DialTarget,
    /// In the order Go checks them: the first is what clients print.
    pub problems: Vec<Problem>,
}

impl Verdict {
    pub fn accepted(&self) -> bool {
        self.problems.is_empty()
    }
}

/// What Go-based clients dialing `target` at unix time `now` will say.
pub fn go_verdict(facts: &CertFacts, target: &DialTarget, now: i64) -> Verdict {
    let mut problems = Vec::new();
    let reissue = |extra: Option<&str>| fix_command(facts, extra);
    if now < facts.not_before {
        problems.push(Problem {
            go_error: format!(
                "x509: certificate has expired or is not yet valid: current time {} is before {}",
                rfc3339(now),
                rfc3339(facts.not_before)
            ),
            why: "the certificate's validity has not started; a clock is wrong on the client or on the machine that issued it".into(),
            fix: format!("check both clocks (timedatectl, NTP), or re-issue: {}", reissue(None)),
        });
    } else if now > facts.not_after {
        problems.push(Problem {
            go_error: format!(
                "x509: certificate has expired or is not yet valid: current time {} is after {}",
                rfc3339(now),
                rfc3339(facts.not_after)
            ),
            why: format!("the certificate expired on {}", rfc3339(facts.not_after)),
            fix: format!(
                "re-issue it from the same CA (clients keep trusting it): {}",
                reissue(None)
            ),
        });
    }
    if facts.eku.is_some_and(|e| !e.server_auth && !e.any) {
        problems.push(Problem {
            go_error: "x509: certificate specifies an incompatible key usage".into(),
            why: "its extendedKeyUsage does not include serverAuth".into(),
            fix: format!("re-issue it: {}", reissue(None)),
        });
    }
    if let Some(p) = hostname_problem(facts, &target.host) {
        problems.push(p);
    }
    Verdict {
        target: target.clone(),
        problems,
    }
}

fn hostname_problem(facts: &CertFacts, host: &str) -> Option<Problem> {
    // Go: IP addresses may be written in [ ].
    let candidate_ip = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = candidate_ip.parse::<IpAddr>() {
        if facts
            .ip_sans
            .iter()
            .any(|c| c.to_canonical() == ip.to_canonical())
        {
            return None;
        }
        let go_error = hostname_error_text(facts, candidate_ip);
        let why = if go_error.contains("legacy Common Name") {
            format!("{candidate_ip} is only in the subject CN, which Go has ignored since 1.15; it must be an IP SAN")
        } else if facts.ip_sans.is_empty() {
            format!("a client dialing {candidate_ip} only checks IP SANs (never DNS names or the CN), and the certificate has none")
        } else {
            format!("{candidate_ip} is not one of the certificate's IP SANs")
        };
        let fix = format!(
            "re-issue with the address in the SAN: {}",
            fix_command(facts, Some(candidate_ip))
        );
        return Some(Problem { go_error, why, fix });
    }

    let candidate = host.to_ascii_lowercase();
    let valid_candidate = valid_hostname(&candidate, false);
    let matched = facts.dns_sans.iter().any(|m| {
        if valid_candidate && valid_hostname(m, true) {
            match_hostnames(m, &candidate)
        } else {
            match_exactly(m, &candidate)
        }
    });
    if matched {
        return None;
    }
    let go_error = hostname_error_text(facts, host);
    let why = if go_error.contains("legacy Common Name") {
        format!("{host} is only in the subject CN, which Go has ignored since 1.15; it must be a DNS SAN")
    } else {
        format!("{host} is not one of the certificate's DNS names")
    };
    let fix = format!(
        "re-issue with the name in the SAN: {}",
        fix_command(facts, Some(host))
    );
    Some(Problem { go_error, why, fix })
}

/// Go's `HostnameError.Error()`, for the host Go puts in the error.
fn hostname_error_text(facts: &CertFacts, h: &str) -> String {
    let cn = facts.common_name.as_deref().unwrap_or("");
    if !facts.has_san_extension && match_hostnames(cn, h) {
        return "x509: certificate relies on legacy Common Name field, use SANs instead".into();
    }
    let valid = if h.parse::<IpAddr>().is_ok() {
        if facts.ip_sans.is_empty() {
            return format!(
                "x509: cannot validate certificate for {h} because it doesn't contain any IP SANs"
            );
        }
        facts
            .ip_sans
            .iter()
            .map(|ip| go_ip_string(*ip))
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        facts.dns_sans.join(", ")
    };
    if valid.is_empty() {
        return format!("x509: certificate is not valid for any names, but wanted to match {h}");
    }
    format!("x509: certificate is valid for {valid}, not {h}")
}

/// Go's `net.IP.String()`: IPv4-mapped IPv6 prints as dotted IPv4.
fn go_ip_string(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        v4 => v4.to_string(),
    }
}

/// Go's `validHostname`.
fn valid_hostname(host: &str, is_pattern: bool) -> bool {
    let host = if is_pattern {
        host
    } else {
        host.strip_suffix('.').unwrap_or(host)
    };
    !host.is_empty()
        && host.split('.').enumerate().all(|(i, part)| {
            !part.is_empty()
                && ((is_pattern && i == 0 && part == "*")
                    || part.char_indices().all(|(j, c)| {
                        c.is_ascii_alphanumeric() || (c == '-' && j != 0) || c == '_'
                    }))
        })
}

/// Go's `matchExactly`.
fn match_exactly(a: &str, b: &str) -> bool {
    !(a.is_empty() || a == "." || b.is_empty() || b == ".") && a.eq_ignore_ascii_case(b)
}

/// Go's `matchHostnames`: a leftmost `*` matches exactly one label.
fn match_hostnames(pattern: &str, host: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if pattern.is_empty() || host.is_empty() {
        return false;
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let h: Vec<&str> = host.split('.').collect();
    p.len() == h.len()
        && p.iter()
            .zip(&h)
            .enumerate()
            .all(|(i, (p, h))| (i == 0 && *p == "*") || p == h)
}

/// `dockgate cert generate` with the wanted name first, then the SANs the
/// cert already has, so re-issuing drops nothing.
fn fix_command(facts: &CertFacts, want: Option<&str>) -> String {
    let mut args: Vec<String> = Vec::new();
    let mut push = |flag: &str, v: String| {
        let quoted = if v.contains('*') { format!("'{v}'") } else { v };
        let arg = format!("{flag} {quoted}");
        if !args.contains(&arg) {
            args.push(arg);
        }
    };
    if let Some(w) = want {
        match w.parse::<IpAddr>() {
            Ok(ip) => push("--ip", go_ip_string(ip)),
            Err(_) => push("--dns", w.trim_end_matches('.').to_ascii_lowercase()),
        }
    }
    for ip in &facts.ip_sans {
        push("--ip", go_ip_string(*ip));
    }
    for d in &facts.dns_sans {
        push("--dns", d.clone());
    }
    let mut cmd = String::from("dockgate cert generate");
    for a in args {
        cmd.push(' ');
        cmd.push_str(&a);
    }
    cmd
}

/// RFC 3339 in UTC, as Go prints certificate times.
pub fn rfc3339(ts: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(ts) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("@{ts}"),
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Go-based clients (docker, containerd, podman, skopeo) dialing {}:",
            self.target
        )?;
        let Some((first, rest)) = self.problems.split_first() else {
            writeln!(
                f,
                "  ACCEPT this certificate, provided they trust the CA that issued it"
            )?;
            writeln!(
                f,
                "  (otherwise: x509: certificate signed by unknown authority)."
            )?;
            return loopback_note(f, &self.target);
        };
        writeln!(f, "  REJECT it with:")?;
        writeln!(f, "    {}", first.go_error)?;
        writeln!(f, "  Why: {}", first.why)?;
        writeln!(f, "  Fix: {}", first.fix)?;
        for p in rest {
            writeln!(f, "  After that, they would also refuse it with:")?;
            writeln!(f, "    {}", p.go_error)?;
            writeln!(f, "  Why: {}", p.why)?;
            writeln!(f, "  Fix: {}", p.fix)?;
        }
        loopback_note(f, &self.target)
    }
}

fn loopback_note(f: &mut fmt::Formatter<'_>, t: &DialTarget) -> fmt::Result {
    if t.ip().is_some_and(|ip| ip.is_loopback()) {
        writeln!(
            f,
            "  Note: the docker CLI skips TLS verification for loopback registries; \
             test with podman or skopeo instead."
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
