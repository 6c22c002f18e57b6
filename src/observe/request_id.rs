//! Request ids: one per request, in the access log line, sent back to the
//! client as `X-Request-Id` and passed to the backend, so one push can be
//! followed through client, gateway and registry logs. A client's own
//! `X-Request-Id` is replaced: an audit log must not take ids from clients.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

pub const HEADER: &str = "x-request-id";

/// The id as a header value, marked never-indexed: it is unique per answer,
/// so over h2 HPACK would add it to the connection's table and evict the
/// entries that do repeat (~3.8k instructions an answer, callgrind). Made
/// once for the request head; dockgate's own answers copy it, mark and all.
pub fn value(id: &str) -> Option<http::HeaderValue> {
    let mut v = http::HeaderValue::from_str(id).ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// `<12 hex random per process>-<counter>`: unique across restarts without
/// a random draw per request.
pub fn next() -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut b = [0u8; 6];
        // Without randomness, the pid still tells processes apart.
        if ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).is_err() {
            b[..4].copy_from_slice(&std::process::id().to_be_bytes());
        }
        b.iter().map(|x| format!("{x:02x}")).collect()
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // As `format!("{prefix}-{n:08x}")`, without the formatter (every request).
    let hex = |d: u64| char::from(b"0123456789abcdef"[(d & 0xf) as usize]);
    let digits = (64 - n.leading_zeros()).div_ceil(4).max(8);
    let mut id = String::with_capacity(prefix.len() + 1 + 16);
    id.push_str(prefix);
    id.push('-');
    for i in (0..digits).rev() {
        id.push(hex(n >> (4 * i)));
    }
    id
}

#[cfg(test)]
mod tests {
    #[test]
    fn counter_printed_as_hex_of_at_least_eight_digits() {
        let a = super::next();
        let b = super::next();
        let (pa, na) = a.split_once('-').unwrap();
        let (pb, nb) = b.split_once('-').unwrap();
        assert_eq!(pa, pb);
        assert!(na.len() >= 8 && nb.len() >= 8, "{a} {b}");
        let (na, nb) = (
            u64::from_str_radix(na, 16).unwrap(),
            u64::from_str_radix(nb, 16).unwrap(),
        );
        assert!(nb > na, "{a} {b}");
    }

    #[test]
    fn ids_are_unique_and_header_safe() {
        let ids: Vec<String> = (0..1000).map(|_| super::next()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len());
        for id in &ids {
            assert!(id.len() >= 21, "{id}");
            assert!(
                id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'),
                "{id}"
            );
        }
    }
}
