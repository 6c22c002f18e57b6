//! The in-memory LRU index over what is on disk: pure bookkeeping (no IO),
//! so eviction order and the size bound are unit-tested. Bytes being filled
//! are reserved up front, so disk use never passes `max_size`.

use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub size: u64,
    pub content_type: String,
    /// LRU position: larger is more recent.
    tick: u64,
    /// Seconds (unix) the file's mtime was last set, so the order survives
    /// a restart without a write per hit.
    pub touched: u64,
}

#[derive(Debug, Default)]
pub struct Index {
    entries: HashMap<String, Entry>,
    lru: BTreeMap<u64, String>,
    tick: u64,
    /// Bytes of stored entries.
    stored: u64,
    /// Bytes reserved by fills in flight.
    reserved: u64,
    max: u64,
}

impl Index {
    pub fn new(max: u64) -> Self {
        Self {
            max,
            ..Self::default()
        }
    }

    /// Stored plus reserved: what the disk holds or will hold.
    pub fn used(&self) -> u64 {
        self.stored + self.reserved
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Marks a hit as most recent.
    pub fn get(&mut self, digest: &str) -> Option<Entry> {
        self.tick += 1;
        let tick = self.tick;
        let e = self.entries.get_mut(digest)?;
        self.lru.remove(&e.tick);
        e.tick = tick;
        self.lru.insert(tick, digest.to_string());
        Some(e.clone())
    }

    pub fn set_touched(&mut self, digest: &str, when: u64) {
        if let Some(e) = self.entries.get_mut(digest) {
            e.touched = when;
        }
    }

    /// Reserves `size` bytes for a fill, evicting least recently used
    /// entries; returns the evicted digests (their files go), or None when
    /// `size` cannot fit even with everything evicted.
    pub fn reserve(&mut self, size: u64) -> Option<Vec<String>> {
        if self.reserved + size > self.max {
            return None;
        }
        let mut gone = Vec::new();
        while self.used() + size > self.max {
            let (_, d) = self.lru.pop_first()?;
            if let Some(e) = self.entries.remove(&d) {
                self.stored -= e.size;
            }
            gone.push(d);
        }
        self.reserved += size;
        Some(gone)
    }

    /// Gives back a reservation (a failed fill).
    pub fn release(&mut self, size: u64) {
        self.reserved = self.reserved.saturating_sub(size);
    }

    /// A reservation that became a stored entry (same size): most recent.
    pub fn commit(&mut self, digest: &str, size: u64, content_type: String, touched: u64) {
        self.release(size);
        self.insert(digest, size, content_type, touched);
    }

    /// An entry found on disk, or a committed fill. Re-inserting replaces.
    pub fn insert(&mut self, digest: &str, size: u64, content_type: String, touched: u64) {
        self.remove(digest);
        self.tick += 1;
        self.lru.insert(self.tick, digest.to_string());
        self.entries.insert(
            digest.to_string(),
            Entry {
                size,
                content_type,
                tick: self.tick,
                touched,
            },
        );
        self.stored += size;
    }

    pub fn remove(&mut self, digest: &str) -> Option<Entry> {
        let e = self.entries.remove(digest)?;
        self.lru.remove(&e.tick);
        self.stored -= e.size;
        Some(e)
    }

    /// After loading from disk: evicts until within `max` (a smaller
    /// `max_size` than last run).
    pub fn shrink(&mut self) -> Vec<String> {
        let mut gone = Vec::new();
        while self.used() > self.max {
            let Some((_, d)) = self.lru.pop_first() else {
                break;
            };
            if let Some(e) = self.entries.remove(&d) {
                self.stored -= e.size;
            }
            gone.push(d);
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(max: u64, items: &[(&str, u64)]) -> Index {
        let mut i = Index::new(max);
        for (d, s) in items {
            i.insert(d, *s, "t".into(), 0);
        }
        i
    }

    #[test]
    fn reserve_evicts_least_recent() {
        type Case<'a> = (
            &'a [(&'a str, u64)],
            &'a [&'a str],
            u64,
            Option<&'a [&'a str]>,
        );
        let cases: &[Case] = &[
            // (stored in insert order, hits, reserve, evicted)
            (&[("a", 40), ("b", 40)], &[], 20, Some(&[])),
            (&[("a", 40), ("b", 40)], &[], 30, Some(&["a"])),
            (&[("a", 40), ("b", 40)], &["a"], 30, Some(&["b"])),
            (&[("a", 40), ("b", 40)], &[], 100, Some(&["a", "b"])),
            (&[("a", 40), ("b", 40)], &[], 101, None),
            (&[], &[], 100, Some(&[])),
        ];
        for (stored, hits, size, want) in cases {
            let mut i = idx(100, stored);
            for h in *hits {
                i.get(h);
            }
            let got = i.reserve(*size);
            assert_eq!(
                got.as_deref(),
                want.map(|w| w.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                    .as_deref(),
                "{stored:?} {hits:?} {size}"
            );
            assert!(i.used() <= 100);
        }
    }

    #[test]
    fn reservations_count_and_release() {
        let mut i = idx(100, &[("a", 50)]);
        assert_eq!(i.reserve(50), Some(vec![]));
        // Another 10 must evict "a": the 50 reserved cannot be evicted.
        assert_eq!(i.reserve(10), Some(vec!["a".to_string()]));
        assert_eq!(i.reserve(41), None);
        assert_eq!(i.used(), 60);
        i.release(10);
        i.commit("b", 50, "t".into(), 0);
        assert_eq!((i.used(), i.len()), (50, 1));
        assert!(i.get("b").is_some() && i.get("a").is_none());
    }

    #[test]
    fn shrink_to_max() {
        let mut i = idx(100, &[("a", 60), ("b", 60), ("c", 50)]);
        // Loading does not enforce max; shrink does, oldest first.
        assert_eq!(i.shrink(), vec!["a".to_string(), "b".to_string()]);
        assert_eq!(i.used(), 50);
    }
}
