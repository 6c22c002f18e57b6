use super::*;

fn rate(rps: f64, burst: u32) -> Rate {
    Rate {
        requests_per_second: rps,
        burst,
        pull_bytes_per_second: Some(1000),
    }
}

/// What happens to one key, in time order.
#[derive(Debug, Clone, Copy)]
enum Ev {
    /// A request here; whether it must be admitted.
    Local(bool),
    /// Another instance reports this many admitted requests.
    Remote(u32),
}
use Ev::{Local, Remote};

/// (why, requests per second, burst, [(ms, event)])
type Case<'a> = (&'a str, f64, u32, &'a [(u64, Ev)]);

#[test]
fn local_and_remote_consumption_make_one_decision() {
    let cases: &[Case] = &[
        (
            "a client on one instance only gets its whole burst",
            5.0,
            5,
            &[
                (0, Local(true)),
                (0, Local(true)),
                (0, Local(true)),
                (0, Local(true)),
                (0, Local(true)),
                (0, Local(false)),
            ],
        ),
        (
            "what another instance admitted counts here",
            5.0,
            5,
            &[
                (0, Remote(3)),
                (0, Local(true)),
                (0, Local(true)),
                (0, Local(false)),
            ],
        ),
        (
            "a burst used up elsewhere refills at the rate",
            5.0,
            5,
            &[
                (0, Remote(5)),
                (0, Local(false)),
                (199, Local(false)),
                (200, Local(true)),
                (200, Local(false)),
            ],
        ),
        (
            "consumption elsewhere long ago has refilled",
            5.0,
            5,
            &[
                (0, Remote(5)),
                (1000, Local(true)),
                (1000, Local(true)),
                (1000, Local(true)),
                (1000, Local(true)),
                (1000, Local(true)),
                (1000, Local(false)),
            ],
        ),
        (
            "both took the burst in one interval: the excess is repaid",
            5.0,
            5,
            &[
                (0, Local(true)),
                (0, Local(true)),
                (0, Local(true)),
                (0, Local(true)),
                (0, Local(true)),
                (10, Remote(5)),
                (1100, Local(false)),
                (1200, Local(true)),
            ],
        ),
        (
            "two other instances add up",
            1.0,
            4,
            &[
                (0, Remote(2)),
                (0, Remote(2)),
                (0, Local(false)),
                (1000, Local(true)),
                (1000, Local(false)),
            ],
        ),
        (
            "a report of nothing changes nothing",
            1.0,
            1,
            &[(0, Remote(0)), (0, Local(true)), (0, Local(false))],
        ),
    ];
    for (why, rps, burst, events) in cases {
        let l = Limiter::default();
        let r = rate(*rps, *burst);
        let t0 = Instant::now();
        for (i, (ms, ev)) in events.iter().enumerate() {
            let now = t0 + Duration::from_millis(*ms);
            match ev {
                Local(want) => {
                    let got = l.request("k", &r, now).is_ok();
                    assert_eq!(got, *want, "{why}: event {i} at {ms} ms");
                }
                Remote(n) => {
                    let b = batch(&[("k", *n, 0)]);
                    absorb(&l, &b, |_| Some(r), now);
                }
            }
        }
    }
}

fn batch(keys: &[(&str, u32, u64)]) -> Batch {
    Batch {
        keys: keys
            .iter()
            .map(|(k, requests, bytes)| {
                (
                    k.to_string(),
                    Usage {
                        requests: *requests,
                        bytes: *bytes,
                    },
                )
            })
            .collect(),
    }
}

#[test]
fn the_wait_counts_remote_consumption() {
    let l = Limiter::default();
    let r = rate(5.0, 5);
    let t0 = Instant::now();
    absorb(&l, &batch(&[("k", 7, 0)]), |_| Some(r), t0);
    // 7 taken of a burst of 5: two intervals of debt, plus the next one.
    assert_eq!(l.request("k", &r, t0), Err(Duration::from_millis(600)));
}

#[test]
fn keys_not_limited_here_are_skipped_and_keys_stay_apart() {
    let l = Limiter::default();
    let r = rate(1.0, 1);
    let t0 = Instant::now();
    let b = batch(&[("limited|user:a", 1, 0), ("gone|user:a", 9, 0)]);
    let n = absorb(&l, &b, |k| k.starts_with("limited|").then_some(r), t0);
    assert_eq!(n, 1);
    assert!(l.request("limited|user:a", &r, t0).is_err());
    assert!(l.request("gone|user:a", &r, t0).is_ok());
    assert!(l.request("limited|user:b", &r, t0).is_ok());
}

#[test]
fn remote_pull_bytes_slow_local_pulls() {
    let l = Limiter::default();
    let r = rate(100.0, 100); // 1000 bytes per second
    let t0 = Instant::now();
    absorb(&l, &batch(&[("k", 0, 1500)]), |_| Some(r), t0);
    // 1.5 s of bytes used elsewhere: 500 more here means a 1 s hold.
    assert_eq!(l.pulled("k", 500, 1000, t0), Some(Duration::from_secs(1)));
    assert!(l.request("k", &r, t0).is_ok(), "bytes are not requests");
}

#[test]
fn the_ledger_records_only_when_shared_and_starts_empty_each_interval() {
    let l = Limiter::default();
    let r = rate(100.0, 100);
    let t0 = Instant::now();
    assert!(l.request("k", &r, t0).is_ok());
    assert_eq!(l.ledger().take(MAX_KEYS), (Batch::default(), 0));
    l.ledger().enable();
    for _ in 0..3 {
        assert!(l.request("k", &r, t0).is_ok());
    }
    assert_eq!(l.pulled("k", 700, 1000, t0), None);
    // A refused request was not admitted: not reported.
    let tight = rate(1.0, 1);
    assert!(l.request("t", &tight, t0).is_ok());
    assert!(l.request("t", &tight, t0).is_err());
    let (b, left_out) = l.ledger().take(MAX_KEYS);
    assert_eq!(b, batch(&[("k", 3, 700), ("t", 1, 0)]));
    assert_eq!(left_out, 0);
    // Idle keys publish nothing.
    assert_eq!(l.ledger().take(MAX_KEYS), (Batch::default(), 0));
}

#[test]
fn a_batch_carries_the_busiest_keys() {
    let ledger = Ledger::default();
    ledger.enable();
    for (key, n) in [("a", 1), ("b", 5), ("c", 3), ("d", 3), ("e", 2)] {
        for _ in 0..n {
            ledger.request(key);
        }
    }
    ledger.bytes("d", 10);
    let (b, left_out) = ledger.take(3);
    assert_eq!(b, batch(&[("b", 5, 0), ("c", 3, 0), ("d", 3, 10)]));
    assert_eq!(left_out, 2);
}

#[test]
fn batches_round_trip_and_foreign_values_are_ignored() {
    let b = batch(&[("*|user:alice", 2, 0), ("repo|addr:10.0.0.1", 0, 99)]);
    assert_eq!(Batch::decode(&b.encode()), Some(b));
    for bad in [&b"not json"[..], b"[]", b"{\"k\":{\"x\":5}}", b""] {
        assert_eq!(
            Batch::decode(bad),
            None,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn costs_never_panic() {
    assert_eq!(bytes_cost(0, 10), Duration::ZERO);
    assert_eq!(bytes_cost(1000, 500), Duration::from_millis(500));
    assert_eq!(request_cost(&rate(4.0, 1), 2), Duration::from_millis(500));
    assert_eq!(
        request_cost(&rate(1e-300, 1), u32::MAX),
        Duration::from_secs(86_400)
    );
}
