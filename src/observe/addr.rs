//! Addresses printed for logs, limiter keys and `X-Forwarded-For`. An
//! IPv4 address through `Display` costs ~1,600 instructions (its padding
//! support formats into a stack buffer first), and a manifest GET printed
//! one three times (callgrind, bench/README.md "The fast lane"); this
//! writes the digits directly. IPv6 keeps `Display` (its `::` rules).

use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};

/// Appends `ip` as `Display` would.
pub fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, o) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_u16(out, u16::from(o));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// `a` as `Display` prints it: `1.2.3.4:5`, `[::1]:5`.
pub fn socket(a: SocketAddr) -> String {
    let mut s = String::with_capacity(21);
    match a {
        SocketAddr::V4(_) => push_ip(&mut s, a.ip()),
        SocketAddr::V6(v6) => {
            let _ = write!(s, "[{}", v6.ip());
            if v6.scope_id() != 0 {
                let _ = write!(s, "%{}", v6.scope_id());
            }
            s.push(']');
        }
    }
    s.push(':');
    push_u16(&mut s, a.port());
    s
}

fn push_u16(out: &mut String, n: u16) {
    let mut digits = [0u8; 5];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_as_display() {
        let cases = [
            "0.0.0.0:0",
            "127.0.0.1:28443",
            "255.255.255.255:65535",
            "10.0.200.9:80",
            "[::1]:443",
            "[2001:db8::8:800:200c:417a]:5000",
            "[::ffff:1.2.3.4]:1",
            "[fe80::1%7]:22",
        ];
        for c in cases {
            let a: SocketAddr = c.parse().unwrap();
            assert_eq!(socket(a), a.to_string(), "{c}");
            let mut ip = String::new();
            push_ip(&mut ip, a.ip());
            assert_eq!(ip, a.ip().to_string(), "{c}");
        }
    }
}
