//! Who a provider says signed in, and what dockgate makes of it: the user
//! name, the mapped groups, and whether the sign-in creates, updates, links
//! or is refused. Pure.

use super::store::SsoUser;
use crate::config::SsoProvider;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Stable id at the provider.
    pub subject: String,
    /// The dockgate user name (`preferred_username`, GitHub `login`).
    pub name: String,
    pub email: String,
    /// Provider groups (OIDC groups claim; GitHub `org`, `org/team`).
    pub groups: Vec<String>,
    /// What the re-check spends (provider refresh or access token).
    pub credential: Option<String>,
}

/// Provider groups → dockgate groups; unmapped ones give nothing.
pub fn map_groups(mapping: &BTreeMap<String, String>, groups: &[String]) -> BTreeSet<String> {
    groups
        .iter()
        .filter_map(|g| mapping.get(g).cloned())
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Create,
    Update,
    /// An htpasswd user of the same name, signed in through the provider.
    Link,
    Refuse(String),
}

/// Letters, digits and `. _ - @`, as `dockgate user add` accepts.
pub fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 128
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// A name already taken by someone else is never taken over.
pub fn admit(
    p: &SsoProvider,
    id: &Identity,
    existing: Option<&SsoUser>,
    in_htpasswd: bool,
) -> Admission {
    if !valid_name(&id.name) {
        return Admission::Refuse(format!(
            "the provider's user name {:?} is not a valid dockgate user name",
            id.name
        ));
    }
    if let Some(u) = existing {
        return if u.provider == p.name && u.subject == id.subject {
            Admission::Update
        } else {
            Admission::Refuse(format!(
                "the user name {:?} belongs to another account",
                id.name
            ))
        };
    }
    match (in_htpasswd, p.auto_create_users) {
        (true, false) => Admission::Link,
        (true, true) => Admission::Refuse(format!(
            "{:?} is a local user; a provider that creates users cannot sign in as it",
            id.name
        )),
        (false, true) => Admission::Create,
        (false, false) => Admission::Refuse(format!(
            "there is no dockgate user {:?} and this provider does not create users; ask an administrator",
            id.name
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProviderKind;
    use std::time::Duration;

    fn provider(auto: bool) -> SsoProvider {
        SsoProvider {
            name: "idp".into(),
            display_name: "IdP".into(),
            kind: ProviderKind::Github {
                base_url: "https://github.com".into(),
                api_url: "https://api.github.com".into(),
            },
            client_id: "c".into(),
            client_secret_file: None,
            auto_create_users: auto,
            groups: BTreeMap::new(),
            max_key_age: Duration::from_secs(60),
            recheck: Duration::from_secs(60),
        }
    }

    fn user(provider: &str, subject: &str) -> SsoUser {
        SsoUser {
            provider: provider.into(),
            subject: subject.into(),
            email: String::new(),
            groups: BTreeSet::new(),
            created: 0,
            signed_in: 0,
            checked: 0,
            credential: None,
            linked: false,
        }
    }

    #[test]
    fn admission_table() {
        let id = Identity {
            subject: "42".into(),
            name: "ann".into(),
            email: String::new(),
            groups: vec![],
            credential: None,
        };
        let same = user("idp", "42");
        let other_sub = user("idp", "43");
        let other_idp = user("gh", "42");
        let refused = |a: &Admission| matches!(a, Admission::Refuse(_));
        assert_eq!(admit(&provider(true), &id, None, false), Admission::Create);
        assert_eq!(
            admit(&provider(true), &id, Some(&same), false),
            Admission::Update
        );
        assert!(refused(&admit(
            &provider(true),
            &id,
            Some(&other_sub),
            false
        )));
        assert!(refused(&admit(
            &provider(true),
            &id,
            Some(&other_idp),
            false
        )));
        assert!(refused(&admit(&provider(true), &id, None, true)));
        assert_eq!(admit(&provider(false), &id, None, true), Admission::Link);
        assert!(refused(&admit(&provider(false), &id, None, false)));
        let bad = Identity {
            name: "a b".into(),
            ..id.clone()
        };
        assert!(refused(&admit(&provider(true), &bad, None, false)));
    }

    #[test]
    fn groups_map_only_what_is_configured() {
        let m: BTreeMap<String, String> = [
            ("eng".to_string(), "devs".to_string()),
            ("acme/ops".to_string(), "ops".to_string()),
        ]
        .into();
        let got = map_groups(&m, &["eng".into(), "sales".into(), "acme/ops".into()]);
        assert_eq!(got, ["devs".to_string(), "ops".to_string()].into());
        assert!(map_groups(&m, &[]).is_empty());
    }
}
