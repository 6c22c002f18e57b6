//! A small ring of counter samples, so the status page can show rates over
//! the last minutes without a Prometheus.

use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};

/// Cumulative counts for one repository at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Counts {
    pub requests: u64,
    /// Answered 5xx.
    pub errors: u64,
    /// Answered 401, 403 or 429.
    pub denied: u64,
    pub schema1_refused: u64,
}

impl Counts {
    fn since(self, earlier: Counts) -> Counts {
        Counts {
            requests: self.requests.saturating_sub(earlier.requests),
            errors: self.errors.saturating_sub(earlier.errors),
            denied: self.denied.saturating_sub(earlier.denied),
            schema1_refused: self.schema1_refused.saturating_sub(earlier.schema1_refused),
        }
    }

    fn add(&mut self, o: Counts) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.denied += o.denied;
        self.schema1_refused += o.schema1_refused;
    }

    /// Folds one `dockgate_requests_total` series into the counts.
    pub fn add_requests(&mut self, code: &str, n: u64) {
        self.requests += n;
        if code.starts_with('5') {
            self.errors += n;
        } else if matches!(code, "401" | "403" | "429") {
            self.denied += n;
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Unix time, seconds.
    pub at: i64,
    pub per_repo: BTreeMap<String, Counts>,
}

/// What happened between two samples.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Window {
    pub seconds: i64,
    pub counts: Counts,
}

impl Window {
    pub fn per_minute(&self, n: u64) -> f64 {
        if self.seconds <= 0 {
            0.0
        } else {
            n as f64 * 60.0 / self.seconds as f64
        }
    }
}

#[derive(Debug)]
pub struct History {
    samples: VecDeque<Sample>,
    cap: usize,
}

impl History {
    pub fn new(cap: usize) -> Self {
        Self {
            samples: VecDeque::with_capacity(cap),
            cap: cap.max(2),
        }
    }

    pub fn push(&mut self, s: Sample) {
        if self.samples.len() == self.cap {
            self.samples.pop_front();
        }
        self.samples.push_back(s);
    }

    /// Per repository: the counts between the oldest and newest sample. A
    /// repository missing from the oldest one started at zero.
    pub fn windows(&self) -> BTreeMap<String, Window> {
        let (Some(first), Some(last)) = (self.samples.front(), self.samples.back()) else {
            return BTreeMap::new();
        };
        let seconds = last.at - first.at;
        last.per_repo
            .iter()
            .map(|(repo, now)| {
                let then = first.per_repo.get(repo).copied().unwrap_or_default();
                (
                    repo.clone(),
                    Window {
                        seconds,
                        counts: now.since(then),
                    },
                )
            })
            .collect()
    }

    /// All repositories together, one window per pair of consecutive samples
    /// (the page's sparkline).
    pub fn steps(&self) -> Vec<(i64, Window)> {
        let total = |s: &Sample| {
            let mut c = Counts::default();
            s.per_repo.values().for_each(|v| c.add(*v));
            c
        };
        self.samples
            .iter()
            .zip(self.samples.iter().skip(1))
            .map(|(a, b)| {
                (
                    b.at,
                    Window {
                        seconds: b.at - a.at,
                        counts: total(b).since(total(a)),
                    },
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: i64, repos: &[(&str, u64, u64)]) -> Sample {
        Sample {
            at,
            per_repo: repos
                .iter()
                .map(|(r, req, err)| {
                    (
                        r.to_string(),
                        Counts {
                            requests: *req,
                            errors: *err,
                            ..Counts::default()
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn windows_span_the_ring_and_drop_the_oldest() {
        let mut h = History::new(3);
        assert!(h.windows().is_empty() && h.steps().is_empty());
        h.push(sample(0, &[("a", 10, 0)]));
        h.push(sample(5, &[("a", 20, 1)]));
        h.push(sample(10, &[("a", 40, 1), ("b", 6, 0)]));
        let w = h.windows();
        assert_eq!(w["a"].seconds, 10);
        assert_eq!(w["a"].counts.requests, 30);
        assert_eq!(w["a"].per_minute(w["a"].counts.requests), 180.0);
        assert_eq!(w["b"].counts.requests, 6, "new repository counts from zero");
        h.push(sample(15, &[("a", 40, 3), ("b", 6, 0)]));
        let w = h.windows();
        assert_eq!((w["a"].seconds, w["a"].counts.requests), (10, 20));
        assert_eq!(w["a"].counts.errors, 2);
        let steps = h.steps();
        assert_eq!(steps.len(), 2);
        assert_eq!(
            steps[0],
            (
                10,
                Window {
                    seconds: 5,
                    counts: Counts {
                        requests: 26,
                        ..Counts::default()
                    }
                }
            )
        );
        assert_eq!(steps[1].1.counts.errors, 2);
    }

    #[test]
    fn codes_fold_into_errors_and_denials() {
        let mut c = Counts::default();
        for (code, n) in [("200", 5), ("502", 2), ("401", 1), ("429", 3), ("404", 1)] {
            c.add_requests(code, n);
        }
        assert_eq!((c.requests, c.errors, c.denied), (12, 2, 4));
        // A counter reset (restart) never gives negative rates.
        assert_eq!(Counts::default().since(c), Counts::default());
        assert_eq!(Window::default().per_minute(5), 0.0);
    }
}
