//! The request path as values: `route → endpoint → policy::decide →
//! rewrite`. [`run`] turns a request's facts into a [`Step`]: forward to a
//! backend, or answer locally. `proxy/` takes the facts from the session
//! and applies the step; nothing here sees a pingora `Session`.
//!
//! ```text
//! head checks (size, Host) ─┬─ own endpoint? ── endpoint::handle ─────────────┐
//!                           └─ route ── principal ─┬─ ping / catalog handler ──┤
//!                                                  └─ policy::decide ─ rewrite ─┴─> Step
//! ```

pub mod checks;
mod facts;
mod step;

pub use facts::{client_ip, learn, rate_of};
pub use step::{Body, Forward, Local, Pace, Step};

use crate::endpoint::{self, catalog, credentials, ping, Env, Notes, Own, Request};
use crate::observe::metrics::NO_REPO;
use crate::observe::Operation;
use crate::oci::{Endpoint, RegistryError};
use crate::policy::auth::Principal;
use crate::policy::{self, Facts, Policies, Refusal, Stage, Verdict};
use crate::rewrite::{request, response::ViewOf};
use crate::route::{self, RepoTarget, Routed};

/// Whether the proxy should read a small body before [`run`]: an own
/// endpoint that takes one, behind passing head checks.
pub fn wants_body(env: &Env<'_>, head: &http::request::Parts) -> bool {
    checks::head(head, &env.rt.hosts).is_none()
        && Own::classify(head.uri.path(), env.rt.auth.is_some())
            .is_some_and(|o| o.takes_body(&head.method))
}

/// The step for one request head.
pub async fn run(env: &Env<'_>, req: &Request<'_>, notes: &mut Notes) -> Step {
    if let Some(refused) = gate(env, req, notes) {
        return refused;
    }
    if let Some(own) = Own::classify(req.path(), env.rt.auth.is_some()) {
        return endpoint::handle(own, env, req, notes).await;
    }
    let rt = env.rt;
    let routed = match route::route(&rt.cfg, &req.listen, Some(&req.client_host), req.path()) {
        Ok(Some(r)) => r,
        Err(e) => return Step::error(e),
        Ok(None) => {
            return Step::error(RegistryError::unsupported(format!(
                "{}: dockgate serves the registry API under /v2/",
                req.path()
            )))
        }
    };
    if let Routed::Repo(t) = &routed {
        notes.repo_label = t.repo.key.clone();
    }
    let principal = match principal(env, req, notes).await {
        Ok(p) => p,
        Err(refused) => return refused,
    };
    match routed {
        Routed::Ping => {
            notes.operation = Some(Operation::Ping);
            notes.repo_label = NO_REPO.into();
            ping::handle(env, req, &principal)
        }
        Routed::Catalog { repos, with_key } => {
            notes.operation = Some(Operation::Catalog);
            notes.repo_label = NO_REPO.into();
            catalog::handle(env, req, &principal, repos, with_key).await
        }
        Routed::Repo(t) => repository(env, req, notes, &principal, t),
    }
}

/// What [`run`] gives for a request that `route::route` sends to `t` and
/// that no own endpoint takes (proxy/fast checks both first). A small
/// future: none of the own endpoints' or the catalog's.
pub async fn run_repo(env: &Env<'_>, req: &Request<'_>, notes: &mut Notes, t: RepoTarget) -> Step {
    if let Some(refused) = gate(env, req, notes) {
        return refused;
    }
    notes.repo_label = t.repo.key.clone();
    match principal(env, req, notes).await {
        Ok(p) => repository(env, req, notes, &p, t),
        Err(refused) => refused,
    }
}

/// Head checks and the gateway-wide networks, for every request.
fn gate(env: &Env<'_>, req: &Request<'_>, notes: &mut Notes) -> Option<Step> {
    if let Some(e) = checks::head(req.head, &env.rt.hosts) {
        return Some(Step::error(e));
    }
    let r = policy::decide::admit(req.client_ip, &env.rt.cfg.policy)?;
    notes.refused = Some(r.rule);
    Some(Step::error(r.error))
}

/// Who is asking, or the answer refusing their credentials.
async fn principal(env: &Env<'_>, req: &Request<'_>, notes: &mut Notes) -> Result<Principal, Step> {
    let p = credentials::principal(env, req)
        .await
        .map_err(|f| Step::Respond(credentials::refuse(env, req, notes, &f)))?;
    notes.user = p.user().map(str::to_string);
    Ok(p)
}

/// A repository request: decide, then rewrite it for the backend.
fn repository(
    env: &Env<'_>,
    req: &Request<'_>,
    notes: &mut Notes,
    principal: &Principal,
    t: RepoTarget,
) -> Step {
    let rt = env.rt;
    let method = &req.head.method;
    notes.operation = Some(Operation::of(method, t.endpoint.as_ref(), req.query()));
    let name = if t.image.is_empty() {
        t.repo.key.clone()
    } else {
        route::client_name(&req.listen, &t.repo, &t.image)
    };
    let who = facts::who(principal, req.client_ip);
    let now = std::time::Instant::now();
    let facts = Facts {
        method,
        endpoint: t.endpoint.as_ref(),
        name: &name,
        stage: Stage::Head,
        client: req.client_ip,
        over_limit: facts::over_limit(env, &t, &who, now),
        read_only: facts::read_only(env, &t, &who, now),
    };
    let target = route::auth_target(&rt.cfg, t.repo.clone(), &t.image);
    let verdict = policy::decide(&facts, principal, &target, &policies(env));
    match &verdict {
        Verdict::Deny(r) => notes.refused = Some(r.rule),
        Verdict::Limit { .. } => notes.refused = Some(policy::Rule::RateLimit),
        _ => {}
    }
    if let Some(answer) = credentials::render(env, req, verdict) {
        return Step::Respond(answer);
    }
    let mut f = forward(env, req, t);
    f.pace = facts::pace(env, f.target.as_ref(), method, &who);
    f.who = who;
    Step::Forward(Box::new(f))
}

fn policies<'a>(env: &'a Env<'_>) -> Policies<'a> {
    Policies {
        auth: env.rt.auth.as_ref().map(|a| &a.cfg),
        global: &env.rt.cfg.policy,
    }
}

/// Where a repository request goes and how the answer maps back.
fn forward(env: &Env<'_>, req: &Request<'_>, t: RepoTarget) -> Forward {
    let rt = env.rt;
    let names = |n: &str| {
        route::backend_name_of(&rt.cfg, &req.listen, Some(&req.client_host), n)
            .map(|(r, b)| (r.key.clone(), b))
    };
    let query = request::upstream_query(req.query(), t.endpoint.as_ref(), &t.repo.key, &names);
    let uri = match query {
        Some(q) => format!("{}?{q}", t.backend_path),
        None => t.backend_path.clone(),
    };
    let manifest_put =
        matches!(t.endpoint, Some(Endpoint::Manifest(_))) && req.head.method == http::Method::PUT;
    let mut f = Forward::new(t.repo.backend.clone(), uri);
    f.view = Some(ViewOf::new(&req.client_host, &t.repo, &req.listen));
    f.target = Some(t);
    if manifest_put {
        f.body = Body::Manifest;
    }
    f
}

/// The decision on a manifest PUT's body, read whole. For a tag under
/// `immutable_tags` the backend is asked for the tag's digest just before
/// (a lookup that fails refuses the push: fail closed). The principal was
/// decided on the head already; these stages look at content.
pub async fn on_manifest(
    env: &Env<'_>,
    method: &http::Method,
    t: &RepoTarget,
    content_type: Option<&str>,
    body: &[u8],
) -> Option<Refusal> {
    let target = route::auth_target(&env.rt.cfg, t.repo.clone(), &t.image);
    let current = if policy::decide::needs_current(&target, t.endpoint.as_ref()) {
        match facts::current_digest(env, t).await {
            Ok(d) => d,
            Err(error) => {
                return Some(Refusal {
                    rule: policy::Rule::ImmutableTag,
                    error,
                })
            }
        }
    } else {
        None
    };
    let stage = Stage::Manifest {
        content_type,
        body,
        current: current.as_deref(),
    };
    refusal(env, method, t, stage)
}

/// The decision on the backend's answer (a schema1 manifest from a
/// `block_schema1_pull` repository becomes a refusal).
pub fn on_answer(
    env: &Env<'_>,
    method: &http::Method,
    t: &RepoTarget,
    status: u16,
    content_type: Option<&str>,
) -> Option<Refusal> {
    let stage = Stage::Answer {
        status,
        content_type,
    };
    refusal(env, method, t, stage)
}

fn refusal(env: &Env<'_>, method: &http::Method, t: &RepoTarget, stage: Stage) -> Option<Refusal> {
    let facts = Facts {
        method,
        endpoint: t.endpoint.as_ref(),
        name: &t.image,
        stage,
        client: None,
        over_limit: None,
        read_only: None,
    };
    let target = route::auth_target(&env.rt.cfg, t.repo.clone(), &t.image);
    match policy::decide(&facts, &Principal::Anonymous, &target, &policies(env)) {
        Verdict::Deny(r) => Some(r),
        _ => None,
    }
}
