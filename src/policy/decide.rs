//! `decide`: every decision dockgate makes on a repository request, in one
//! pure function over plain values. The proxy asks it at three moments
//! (`Stage`): on the request head, on a manifest PUT's body, and on the
//! backend's answer to a manifest GET/HEAD. State (rate buckets, when
//! read-only began, open uploads, a tag's current digest) is looked up
//! by the pipeline and handed in as facts.
//!
//! Order on the head: networks, rate limit, roles, push networks,
//! read-only, immutable tags. Networks and limits come first (cheap, and
//! they protect the rest); roles before read-only and tags, so settings
//! are not shown to clients who may not write anyway.

use super::auth::{self, acl::Action, scope, Principal, Target};
use super::{immutable, schema1};
use crate::config::policy::GlobalPolicy;
use crate::config::Auth;
use crate::oci::{Endpoint, ErrorCode, RegistryError};
use http::StatusCode;
use std::net::IpAddr;
use std::time::Duration;

/// What is known about the request when deciding.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub method: &'a http::Method,
    /// None for `/v2/` extension paths that name no image.
    pub endpoint: Option<&'a Endpoint>,
    /// The name the client used (messages and challenge scopes).
    pub name: &'a str,
    pub stage: Stage<'a>,
    /// The client's address (behind trusted proxies: the first untrusted hop).
    pub client: Option<IpAddr>,
    /// Set when a rate limit is exceeded: how long until the next request fits.
    pub over_limit: Option<Duration>,
    /// Set while the repository (or the gateway) is read-only.
    pub read_only: Option<ReadOnlyNow>,
}

/// Read-only as it stands for this request.
#[derive(Debug, Clone)]
pub struct ReadOnlyNow {
    /// What the admin gave as the reason.
    pub reason: String,
    /// "repository <key>" or "this registry".
    pub scope: String,
    /// This write belongs to an upload open before the switch, within
    /// `drain_seconds`: it may finish.
    pub draining: bool,
}

#[derive(Debug, Clone, Copy)]
pub enum Stage<'a> {
    /// The request head, before anything reaches the backend.
    Head,
    /// A manifest PUT body, read whole.
    Manifest {
        content_type: Option<&'a str>,
        body: &'a [u8],
        /// The digest the tag points to now, when it matches an
        /// immutable pattern and exists (asked of the backend just before).
        current: Option<&'a str>,
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
    pub global: &'a GlobalPolicy,
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
    Network,
    ReadOnly,
    ImmutableTag,
    RateLimit,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Roles => "roles",
            Rule::Schema1Push => "schema1_push",
            Rule::Schema1Pull => "schema1_pull",
            Rule::BadManifest => "bad_manifest",
            Rule::Network => "network",
            Rule::ReadOnly => "read_only",
            Rule::ImmutableTag => "immutable_tag",
            Rule::RateLimit => "rate_limit",
        }
    }
}

/// The decision for one request at one stage.
pub fn decide(facts: &Facts, p: &Principal, t: &Target, pol: &Policies) -> Verdict {
    let action = Action::for_method(facts.method);
    match facts.stage {
        Stage::Head => network(facts, t, pol, action)
            .or_else(|| limit(facts))
            .or_else(|| refusal_of(roles(facts, p, t, pol, action)))
            .or_else(|| push_network(facts, t, action))
            .or_else(|| read_only(facts, action))
            .or_else(|| immutable_delete(facts, t))
            .unwrap_or(Verdict::Allow),
        Stage::Manifest {
            content_type,
            body,
            current,
        } => {
            if let Err(e) = schema1::check_push(&t.repo, content_type, body) {
                let rule = if e.code == ErrorCode::Denied {
                    Rule::Schema1Push
                } else {
                    Rule::BadManifest
                };
                return deny(rule, e);
            }
            immutable_put(facts, t, body, current).unwrap_or(Verdict::Allow)
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
                Err(e) => deny(Rule::Schema1Pull, e),
            }
        }
    }
}

fn deny(rule: Rule, error: RegistryError) -> Verdict {
    Verdict::Deny(Refusal { rule, error })
}

fn refusal_of(v: Verdict) -> Option<Verdict> {
    (v != Verdict::Allow).then_some(v)
}

fn denied(msg: String) -> RegistryError {
    RegistryError::new(StatusCode::FORBIDDEN, ErrorCode::Denied, msg)
}

fn shown(ip: Option<IpAddr>) -> String {
    ip.map_or_else(|| "unknown".into(), |i| i.to_string())
}

/// The gateway-wide `allow_networks`, for every request (own endpoints
/// too): a refusal, or None.
pub fn admit(client: Option<IpAddr>, global: &GlobalPolicy) -> Option<Refusal> {
    (!global.allow_networks.allows(client)).then(|| Refusal {
        rule: Rule::Network,
        error: denied(format!(
            "client address {} is not in [policy] allow_networks",
            shown(client)
        )),
    })
}

/// `allow_networks`, gateway-wide then per repository.
fn network(facts: &Facts, t: &Target, pol: &Policies, _action: Action) -> Option<Verdict> {
    let key = &t.repo.key;
    if let Some(r) = admit(facts.client, pol.global) {
        return Some(Verdict::Deny(r));
    }
    (!t.repo.policy.allow_networks.allows(facts.client)).then(|| {
        let who = shown(facts.client);
        deny(
            Rule::Network,
            denied(format!(
                "client address {who} may not reach repository {key} (allow_networks)"
            )),
        )
    })
}

/// `push_networks`: where pushes and deletes may come from.
fn push_network(facts: &Facts, t: &Target, action: Action) -> Option<Verdict> {
    let nets = &t.repo.policy.push_networks;
    (action != Action::Pull && !nets.allows(facts.client)).then(|| {
        deny(
            Rule::Network,
            denied(format!(
                "client address {} may not {} to repository {} (push_networks)",
                shown(facts.client),
                action.as_str(),
                t.repo.key
            )),
        )
    })
}

/// 429 with `Retry-After`, as Docker Hub answers.
fn limit(facts: &Facts) -> Option<Verdict> {
    let wait = facts.over_limit?;
    let secs = super::rate::retry_after_secs(wait);
    Some(Verdict::Limit {
        retry_after: secs,
        message: format!("rate limit exceeded for {}: retry in {secs} s", facts.name),
    })
}

/// Read-only refuses every write but the draining ones, with 405
/// UNSUPPORTED: the answer distribution's own read-only mode gives, which
/// clients show and stop on (a 503 would make them retry through a
/// maintenance window of unknown length).
fn read_only(facts: &Facts, action: Action) -> Option<Verdict> {
    let ro = facts.read_only.as_ref()?;
    if action == Action::Pull || ro.draining {
        return None;
    }
    Some(deny(
        Rule::ReadOnly,
        RegistryError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Unsupported,
            format!(
                "{} is read-only: {}; pulls still work, pushes and deletes are refused",
                ro.scope, ro.reason
            ),
        ),
    ))
}

/// The tag a manifest reference names, if it is a tag (not a digest).
fn tag_of(endpoint: Option<&Endpoint>) -> Option<&str> {
    match endpoint {
        Some(Endpoint::Manifest(r)) if !r.contains(':') => Some(r),
        _ => None,
    }
}

/// Whether a manifest PUT needs the tag's current digest (the pipeline
/// asks the backend only then).
pub fn needs_current(t: &Target, endpoint: Option<&Endpoint>) -> bool {
    tag_of(endpoint)
        .is_some_and(|tag| immutable::protecting(&t.repo.policy.immutable_tags, tag).is_some())
}

fn immutable_delete(facts: &Facts, t: &Target) -> Option<Verdict> {
    if facts.method != http::Method::DELETE {
        return None;
    }
    let tag = tag_of(facts.endpoint)?;
    let p = immutable::protecting(&t.repo.policy.immutable_tags, tag)?;
    Some(deny(
        Rule::ImmutableTag,
        denied(format!(
            "tag {tag} of {} is immutable (immutable_tags {:?}) and cannot be deleted",
            facts.name,
            p.as_str()
        )),
    ))
}

/// A different digest to an existing protected tag is refused; the same
/// digest again (an idempotent re-push) and a new tag are allowed.
fn immutable_put(facts: &Facts, t: &Target, body: &[u8], current: Option<&str>) -> Option<Verdict> {
    let tag = tag_of(facts.endpoint)?;
    let p = immutable::protecting(&t.repo.policy.immutable_tags, tag)?;
    let current = current?;
    (immutable::digest_of(body) != current).then(|| {
        deny(
            Rule::ImmutableTag,
            denied(format!(
                "tag {tag} of {} is immutable (immutable_tags {:?}) and already points to {current}; push a new tag instead",
                facts.name,
                p.as_str()
            )),
        )
    })
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
