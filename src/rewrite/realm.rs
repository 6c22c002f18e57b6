//! The realm route (`/_dockgate/realm/<backend>/<path>`) in passthrough
//! mode: a backend's own token endpoint, reachable only at the realm paths
//! that backend advertised in a `WWW-Authenticate` challenge.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// Realm paths a backend may advertise (one per token service is usual).
const MAX_PER_BACKEND: usize = 16;

/// The realm paths each backend advertised, learned from its challenges
/// (proxied 401s and health checks).
#[derive(Default)]
pub struct Realms(Mutex<HashMap<String, HashSet<String>>>);

impl Realms {
    pub fn learn(&self, backend: &str, path: String) {
        let Ok(mut m) = self.0.lock() else { return };
        let set = m.entry(backend.to_string()).or_default();
        if set.len() < MAX_PER_BACKEND || set.contains(&path) {
            set.insert(path);
        }
    }

    pub fn knows(&self, backend: &str, path: &str) -> bool {
        self.0
            .lock()
            .map(|m| m.get(backend).is_some_and(|s| s.contains(path)))
            .unwrap_or(false)
    }
}

/// `<backend>/<path>` (what follows the realm prefix) → (backend, `/path`).
pub fn split(rest: &str) -> (&str, String) {
    let (name, path) = rest.split_once('/').unwrap_or((rest, ""));
    (name, format!("/{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_learned_paths_are_known() {
        let r = Realms::default();
        r.learn("hub", "/token".into());
        let cases: &[(&str, &str, bool)] = &[
            ("hub", "/token", true),
            ("hub", "/token/", false),
            ("hub", "/v2/x/manifests/1", false),
            ("hub", "/", false),
            ("other", "/token", false),
        ];
        for (b, p, want) in cases {
            assert_eq!(r.knows(b, p), *want, "{b} {p}");
        }
        for i in 0..100 {
            r.learn("many", format!("/t{i}"));
        }
        assert!(r.knows("many", "/t0") && !r.knows("many", "/t99"));
        assert_eq!(split("hub/service/token"), ("hub", "/service/token".into()));
        assert_eq!(split("hub"), ("hub", "/".into()));
    }
}
