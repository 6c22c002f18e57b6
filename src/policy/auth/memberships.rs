//! Group memberships that come from outside the config file: the groups a
//! single-sign-on provider reported at the user's last sign-in or recheck.
//! `acl` consults them next to `[auth] groups`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

/// User → dockgate groups. Cloning shares the map.
#[derive(Debug, Clone, Default)]
pub struct Memberships(Arc<RwLock<BTreeMap<String, BTreeSet<String>>>>);

impl Memberships {
    pub fn has(&self, user: &str, group: &str) -> bool {
        self.0
            .read()
            .is_ok_and(|m| m.get(user).is_some_and(|g| g.contains(group)))
    }

    pub fn of(&self, user: &str) -> BTreeSet<String> {
        self.0
            .read()
            .ok()
            .and_then(|m| m.get(user).cloned())
            .unwrap_or_default()
    }

    /// Replaces the user's groups (empty: the user has none).
    pub fn set(&self, user: &str, groups: BTreeSet<String>) {
        if let Ok(mut m) = self.0.write() {
            m.insert(user.to_string(), groups);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_replaces_and_clones_share() {
        let m = Memberships::default();
        let shared = m.clone();
        m.set("ann", ["devs".to_string()].into());
        assert!(shared.has("ann", "devs"));
        assert!(!shared.has("ann", "ops"));
        assert!(!shared.has("bob", "devs"));
        m.set("ann", BTreeSet::new());
        assert!(!shared.has("ann", "devs"));
        assert!(shared.of("ann").is_empty());
    }
}
