//! What read-only mode needs to remember: when it was switched on (per
//! repository, or for the whole gateway), and the uploads that were open
//! before, which may finish for `drain_seconds`. The decision itself is in
//! `decide`; this is the state it is given facts from.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Uploads are forgotten after this long (distribution purges them too).
const UPLOAD_TTL: Duration = Duration::from_secs(24 * 3600);
const SWEEP_AT: usize = 10_000;

/// The scope key for gateway-wide read-only.
pub const GLOBAL: &str = "";

#[derive(Debug, Clone)]
struct Open {
    repo: String,
    image: String,
    who: String,
    seen: Instant,
}

#[derive(Default)]
pub struct Drain {
    uploads: Mutex<HashMap<String, Open>>,
    switched: Mutex<HashMap<String, Instant>>,
}

impl Drain {
    /// The backend opened upload `uuid` for `who` (user or client address).
    pub fn opened(&self, uuid: &str, repo: &str, image: &str, who: &str, now: Instant) {
        let Ok(mut m) = self.uploads.lock() else {
            return;
        };
        if m.len() >= SWEEP_AT {
            m.retain(|_, o| o.seen + UPLOAD_TTL > now);
        }
        m.insert(
            uuid.to_string(),
            Open {
                repo: repo.into(),
                image: image.into(),
                who: who.into(),
                seen: now,
            },
        );
    }

    /// When read-only began for `scope`, first noticed now if `on` is new;
    /// None (and forgotten) when it is off.
    pub fn since(&self, scope: &str, on: bool, now: Instant) -> Option<Instant> {
        let mut m = self.switched.lock().ok()?;
        if !on {
            m.remove(scope);
            return None;
        }
        Some(*m.entry(scope.to_string()).or_insert(now))
    }

    /// Whether a write may still go through: within `drain` of `since`,
    /// and either to upload `uuid` opened before `since` in this repository,
    /// or (a manifest PUT, `uuid` None) by a client that had an upload of
    /// this image open before `since`.
    #[allow(clippy::too_many_arguments)]
    pub fn draining(
        &self,
        since: Instant,
        drain: Duration,
        now: Instant,
        repo: &str,
        image: &str,
        who: &str,
        uuid: Option<&str>,
    ) -> bool {
        if now >= since + drain {
            return false;
        }
        let Ok(m) = self.uploads.lock() else {
            return false;
        };
        let before = |o: &Open| o.seen < since && o.repo == repo;
        match uuid {
            Some(id) => m.get(id).is_some_and(before),
            None => m
                .values()
                .any(|o| before(o) && o.image == image && o.who == who),
        }
    }
}

/// The upload UUID in a `Location` a backend answered to an upload start:
/// the last path segment, without the query.
pub fn upload_uuid(location: &str) -> Option<&str> {
    let path = location.split(['?', '#']).next()?;
    let (rest, id) = path.trim_end_matches('/').rsplit_once('/')?;
    (rest.ends_with("/blobs/uploads") && !id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_open_before_the_switch_drain() {
        let d = Drain::default();
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        d.opened("u1", "r", "app", "alice", t0);
        assert_eq!(d.since("r", true, s(1)), Some(s(1)));
        assert_eq!(
            d.since("r", true, s(5)),
            Some(s(1)),
            "the first sighting counts"
        );
        d.opened("u2", "r", "app", "alice", s(2));
        let drain = Duration::from_secs(10);
        let cases = [
            (
                "open before the switch",
                s(3),
                "r",
                "app",
                "alice",
                Some("u1"),
                true,
            ),
            (
                "opened after the switch",
                s(3),
                "r",
                "app",
                "alice",
                Some("u2"),
                false,
            ),
            (
                "unknown upload",
                s(3),
                "r",
                "app",
                "alice",
                Some("u3"),
                false,
            ),
            (
                "another repository",
                s(3),
                "q",
                "app",
                "alice",
                Some("u1"),
                false,
            ),
            (
                "after the drain",
                s(11),
                "r",
                "app",
                "alice",
                Some("u1"),
                false,
            ),
            (
                "the manifest of a draining push",
                s(3),
                "r",
                "app",
                "alice",
                None,
                true,
            ),
            (
                "a manifest by someone else",
                s(3),
                "r",
                "app",
                "bob",
                None,
                false,
            ),
            (
                "a manifest of another image",
                s(3),
                "r",
                "web",
                "alice",
                None,
                false,
            ),
        ];
        for (why, now, repo, image, who, uuid, want) in cases {
            assert_eq!(
                d.draining(s(1), drain, now, repo, image, who, uuid),
                want,
                "{why}"
            );
        }
        assert_eq!(d.since("r", false, s(6)), None);
        assert_eq!(
            d.since("r", true, s(7)),
            Some(s(7)),
            "switched on again: a new drain"
        );
    }

    #[test]
    fn uuids_from_locations() {
        let cases = [
            ("/v2/a/b/blobs/uploads/0f3c?_state=x", Some("0f3c")),
            ("https://h:5000/v2/a/blobs/uploads/abc", Some("abc")),
            ("/v2/a/blobs/uploads/", None),
            ("/v2/a/blobs/sha256:x", None),
        ];
        for (loc, want) in cases {
            assert_eq!(upload_uuid(loc), want, "{loc}");
        }
    }
}
