//! Progress on stderr: an indicatif bar on a terminal, a plain line every
//! few seconds otherwise (logs, CI), nothing for the AQL endpoint.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub trait Progress: Send + Sync {
    /// A new phase with `total` units (`unit`: "tags", "bytes").
    fn start(&self, total: u64, unit: &str);
    fn inc(&self, n: u64);
    fn message(&self, m: &str);
    fn finish(&self);
    /// Where a multi-item run stands: item `n` of `of` (convert: images).
    /// Units counted by `inc` add up across phases into the run's total.
    fn item(&self, _n: usize, _of: usize) {}
}

/// For callers that report nothing (the HTTP endpoint, tests).
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _: u64, _: &str) {}
    fn inc(&self, _: u64) {}
    fn message(&self, _: &str) {}
    fn finish(&self) {}
}

pub struct Stderr {
    bar: Option<ProgressBar>,
    done: AtomicU64,
    total: AtomicU64,
    /// Units (bytes) over the whole run, across phases.
    grand: AtomicU64,
    item: Mutex<Option<(usize, usize)>>,
    plain: Mutex<(Instant, String)>,
}

const PLAIN_EVERY: Duration = Duration::from_secs(2);

impl Stderr {
    pub fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            b.enable_steady_tick(Duration::from_millis(200));
            b
        });
        Self {
            bar,
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            grand: AtomicU64::new(0),
            item: Mutex::new(None),
            plain: Mutex::new((Instant::now(), String::new())),
        }
    }
}

impl Stderr {
    /// "image 2/5, 1.20 GiB read in all: " once a run has items, else "".
    fn run_prefix(&self) -> String {
        match self.item.lock().ok().and_then(|i| *i) {
            Some((n, of)) => format!(
                "image {n}/{of}, {} read in all: ",
                indicatif::HumanBytes(self.grand.load(Ordering::Relaxed))
            ),
            None => String::new(),
        }
    }

    /// Units counted over the whole run (convert: bytes of layers read).
    pub fn grand_total(&self) -> u64 {
        self.grand.load(Ordering::Relaxed)
    }
}

impl Default for Stderr {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for Stderr {
    fn start(&self, total: u64, unit: &str) {
        self.done.store(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
        if let Ok(mut p) = self.plain.lock() {
            p.1 = unit.to_string();
        }
        if let Some(b) = &self.bar {
            let tpl = if unit == "bytes" {
                "{prefix}{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
            } else {
                "{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}"
            };
            if let Ok(style) = ProgressStyle::with_template(tpl) {
                b.set_style(style.progress_chars("=> "));
            }
            b.set_length(total);
            b.set_position(0);
        } else {
            eprintln!("{unit}: 0/{total}");
        }
    }

    fn inc(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        self.grand.fetch_add(n, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.inc(n);
            return;
        }
        if let Ok(mut p) = self.plain.lock() {
            if p.0.elapsed() >= PLAIN_EVERY {
                p.0 = Instant::now();
                eprintln!(
                    "{}{}: {done}/{}",
                    self.run_prefix(),
                    p.1,
                    self.total.load(Ordering::Relaxed)
                );
            }
        }
    }

    fn item(&self, n: usize, of: usize) {
        if let Ok(mut i) = self.item.lock() {
            *i = Some((n, of));
        }
        if let Some(b) = &self.bar {
            b.set_prefix(self.run_prefix());
        }
    }

    fn message(&self, m: &str) {
        match &self.bar {
            Some(b) => b.set_message(m.to_string()),
            None => eprintln!("{m}"),
        }
    }

    fn finish(&self) {
        match &self.bar {
            Some(b) => b.finish_and_clear(),
            None => {
                if let Ok(p) = self.plain.lock() {
                    eprintln!(
                        "{}{}: {}/{}",
                        self.run_prefix(),
                        p.1,
                        self.done.load(Ordering::Relaxed),
                        self.total.load(Ordering::Relaxed)
                    );
                }
            }
        }
    }
}
