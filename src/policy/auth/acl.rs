//! The permission decision table: who may pull, push or delete in a
//! repository. Pure: config in, bool out.

use crate::config::{Acl, Auth};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Pull,
    Push,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pull" => Some(Action::Pull),
            "push" => Some(Action::Push),
            "delete" => Some(Action::Delete),
            _ => None,
        }
    }

    /// What an HTTP method on a repository needs.
    pub fn for_method(m: &http::Method) -> Self {
        match m.as_str() {
            "GET" | "HEAD" | "OPTIONS" => Action::Pull,
            "DELETE" => Action::Delete,
            _ => Action::Push,
        }
    }
}

/// True when `list` names the user directly, through a group, or with `*`
/// (any authenticated user).
fn names(list: &[String], user: &str, auth: &Auth) -> bool {
    list.iter().any(|e| {
        e == "*"
            || e == user
            || auth
                .groups
                .get(e)
                .is_some_and(|members| members.iter().any(|m| m == user))
            || auth.memberships.has(user, e)
    })
}

/// Global admins may do everything everywhere.
pub fn is_global_admin(auth: &Auth, user: &str) -> bool {
    names(&auth.admins, user, auth)
}

/// The decision table. `user` is None for anonymous requests.
pub fn may(auth: &Auth, acl: &Acl, user: Option<&str>, action: Action) -> bool {
    let Some(u) = user else {
        return action == Action::Pull && acl.anonymous_read;
    };
    if is_global_admin(auth, u) || names(&acl.admin, u, auth) {
        return true;
    }
    match action {
        Action::Pull => {
            acl.anonymous_read || names(&acl.read, u, auth) || names(&acl.write, u, auth)
        }
        Action::Push => names(&acl.write, u, auth),
        Action::Delete => false,
    }
}

/// May change the repository's settings (the admin API).
pub fn may_administer(auth: &Auth, acl: &Acl, user: &str) -> bool {
    is_global_admin(auth, user) || names(&acl.admin, user, auth)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Challenge;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn auth() -> Auth {
        let mut groups = BTreeMap::new();
        groups.insert("devs".to_string(), vec!["dora".to_string()]);
        Auth {
            htpasswd: "x".into(),
            challenge: Challenge::Bearer,
            service: "dockgate".into(),
            token_ttl: Duration::from_secs(60),
            refresh_ttl: Duration::from_secs(60),
            state_dir: "x".into(),
            admins: vec!["root".into()],
            groups,
            emails: BTreeMap::new(),
            max_failures: 5,
            lockout: Duration::from_secs(60),
            max_users_per_address: 20,
            sso: Vec::new(),
            workloads: Vec::new(),
            memberships: Default::default(),
        }
    }

    #[test]
    fn decision_table() {
        let a = auth();
        let acl = Acl {
            anonymous_read: false,
            read: vec!["rita".into()],
            write: vec!["wendy".into(), "devs".into()],
            admin: vec!["adam".into()],
        };
        let open = Acl {
            anonymous_read: true,
            write: vec!["*".into()],
            ..Acl::default()
        };
        use Action::*;
        let cases: &[(&Acl, Option<&str>, Action, bool)] = &[
            (&acl, None, Pull, false),
            (&acl, None, Push, false),
            (&acl, Some("rita"), Pull, true),
            (&acl, Some("rita"), Push, false),
            (&acl, Some("wendy"), Pull, true),
            (&acl, Some("wendy"), Push, true),
            (&acl, Some("wendy"), Delete, false),
            (&acl, Some("dora"), Push, true),
            (&acl, Some("adam"), Delete, true),
            (&acl, Some("root"), Delete, true),
            (&acl, Some("eve"), Pull, false),
            (&open, None, Pull, true),
            (&open, None, Push, false),
            (&open, Some("eve"), Push, true),
            (&open, Some("eve"), Delete, false),
        ];
        for (acl, user, action, want) in cases {
            assert_eq!(may(&a, acl, *user, *action), *want, "{user:?} {action:?}");
        }
        assert!(may_administer(&a, &acl, "adam"));
        assert!(may_administer(&a, &acl, "root"));
        assert!(!may_administer(&a, &acl, "wendy"));
        assert_eq!(Action::for_method(&http::Method::PATCH), Push);
        assert_eq!(Action::for_method(&http::Method::HEAD), Pull);
        // Groups from single sign-on count like config groups, until removed.
        assert!(!may(&a, &acl, Some("sam"), Push));
        a.memberships.set("sam", ["devs".to_string()].into());
        assert!(may(&a, &acl, Some("sam"), Push));
        a.memberships.set("sam", Default::default());
        assert!(!may(&a, &acl, Some("sam"), Push));
    }
}
