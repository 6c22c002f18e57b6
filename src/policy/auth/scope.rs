//! Token scopes (`repository:<name>:pull,push`) and the `access` claim.

use serde::{Deserialize, Serialize};

/// One entry of a token's `access` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

/// A requested scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

/// Parses space-separated scopes; malformed ones are skipped (the spec
/// says to grant what can be granted).
pub fn parse(scopes: &str) -> Vec<Scope> {
    scopes
        .split(' ')
        .filter(|s| !s.is_empty())
        .filter_map(|s| {
            let (kind, rest) = s.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            if kind.is_empty() || name.is_empty() {
                return None;
            }
            let kind = kind.split('(').next().unwrap_or(kind).to_string();
            let actions = actions
                .split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect();
            Some(Scope {
                kind,
                name: name.to_string(),
                actions,
            })
        })
        .collect()
}

/// `repository:<name>:<actions>` for a challenge.
pub fn format(name: &str, actions: &[&str]) -> String {
    format!("repository:{name}:{}", actions.join(","))
}

/// True when `access` grants `action` on repository `name`.
pub fn grants(access: &[Access], name: &str, action: &str) -> bool {
    access.iter().any(|a| {
        a.kind == "repository"
            && a.name == name
            && a.actions.iter().any(|x| x == action || x == "*")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_scopes() {
        let got = parse("repository:team-a/app:pull,push registry:catalog:* repository(plugin):x/y:pull bad  repository::pull");
        assert_eq!(got.len(), 3);
        assert_eq!(
            got[0],
            Scope {
                kind: "repository".into(),
                name: "team-a/app".into(),
                actions: vec!["pull".into(), "push".into()]
            }
        );
        assert_eq!(got[1].kind, "registry");
        assert_eq!(got[2].kind, "repository");
        assert_eq!(got[2].name, "x/y");
        assert_eq!(format("a/b", &["pull", "push"]), "repository:a/b:pull,push");
        let access = vec![Access {
            kind: "repository".into(),
            name: "a/b".into(),
            actions: vec!["pull".into()],
        }];
        assert!(grants(&access, "a/b", "pull"));
        assert!(!grants(&access, "a/b", "push"));
        assert!(!grants(&access, "a/c", "pull"));
    }
}
