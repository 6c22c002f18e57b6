//! `decide`: every decision dockgate makes on a repository request, in one
//! pure function over plain values. The proxy asks it at three moments
//! (`Stage`): on the request head, on a manifest PUT's body, and on the
//! backend's answer to a manifest GET/HEAD.

use super::auth::{self, acl::Action, scope, Principal, Target};
use super::schema1;
use crate::config::Auth;
use crate::oci::{Endpoint, ErrorCode, RegistryError};
use http::StatusCode;

/// What is known about the request when deciding.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub method: &'a http::Method,
    /// None for `/v2/` extension paths that name no image.
    pub endpoint: Option<&'a Endpoint>,
    /// The name the client used (messages and challenge scopes).
    pub name: &'a str,
    pub stage: Stage<'a>,
}

#[derive(Debug, Clone, Copy)]
pub enum Stage<'a> {
    /// The request head, before anything reaches the backend.
    Head,
    /// A manifest PUT body, read whole.
    Manifest {
        content_type: Option<&'a str>,
        body: &'a [u8],
    },
    /// The backend's answer to a manifest GET/HEAD.
    Answer {
        status: u16,
        content_type: Option<&'a str>,
    },
}

/// The configured policies a decision reads.
#[derive(Debug, Clone, Copy)]
pub struct Policies<'a> {
    /// None: passthrough mode, the backend decides who may do what.
    pub auth: Option<&'a Auth>,
}

/// What a request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Refused by a rule; the error names the reason.
    Deny(Refusal),
    /// Credentials needed or a wider token: a `WWW-Authenticate` for
    /// `scope`. With `insufficient_scope` the token's user holds the role
    /// but the token lacks the scope (answered 403 plus the challenge).
    Challenge {
        scope: String,
        insufficient_scope: bool,
        message: String,
    },
    /// Over a rate limit: 429 with `Retry-After`.
    Limit {
        retry_after: u64,
        message: String,
    },
}

/// A refusal and the rule that made it (for metrics and the access log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rule: Rule,
    pub error: RegistryError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Roles,
    Schema1Push,
    Schema1Pull,
    BadManifest,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Roles => "roles",
            Rule::Schema1Push => "schema1_push",
            Rule::Schema1Pull => "schema1_pull",
            Rule::BadManifest => "bad_manifest",
        }
    }
}

/// The decision for one request at one stage.
pub fn decide(facts: &Facts, p: &Principal, t: &Target, pol: &Policies) -> Verdict {
    let action = Action::for_method(facts.method);
    match facts.stage {
        Stage::Head => roles(facts, p, t, pol, action),
        Stage::Manifest { content_type, body } => {
            match schema1::check_push(&t.repo, content_type, body) {
                Ok(_) => Verdict::Allow,
                Err(e) => {
                    let rule = if e.code == ErrorCode::Denied {
                        Rule::Schema1Push
                    } else {
                        Rule::BadManifest
                    };
                    Verdict::Deny(Refusal { rule, error: e })
                }
            }
        }
        Stage::Answer {
            status,
            content_type,
        } => {
            let manifest = matches!(facts.endpoint, Some(Endpoint::Manifest(_)));
            if !manifest || status != StatusCode::OK.as_u16() {
                return Verdict::Allow;
            }
            match schema1::check_pull(&t.repo, content_type) {
                Ok(()) => Verdict::Allow,
                Err(e) => Verdict::Deny(Refusal {
                    rule: Rule::Schema1Pull,
                    error: e,
                }),
            }
        }
    }
}

fn roles(facts: &Facts, p: &Principal, t: &Target, pol: &Policies, action: Action) -> Verdict {
    let Some(cfg) = pol.auth else {
        return Verdict::Allow;
    };
    let name = facts.name;
    match auth::decide(cfg, p, t, action) {
        auth::Decision::Allow => Verdict::Allow,
        auth::Decision::Deny => Verdict::Deny(Refusal {
            rule: Rule::Roles,
            error: RegistryError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Denied,
                format!(
                    "user {:?} may not {} repository {name}",
                    p.user().unwrap_or(""),
                    action.as_str()
                ),
            ),
        }),
        auth::Decision::Challenge { insufficient_scope } => {
            let actions: &[&str] = if action == Action::Pull {
                &["pull"]
            } else {
                &["pull", action.as_str()]
            };
            let message = if insufficient_scope {
                format!(
                    "the token does not grant {} on {name}: ask the token service for the scope in WWW-Authenticate",
                    action.as_str()
                )
            } else {
                format!("authentication required to {} {name}", action.as_str())
            };
            Verdict::Challenge {
                scope: scope::format(name, actions),
                insufficient_scope,
                message,
            }
        }
    }
}

#[cfg(test)]
mod tests;
