//! `GET /v2/`. With `[auth]`, anonymous clients get the challenge. In
//! passthrough mode, when the backend behind this listener (on a path
//! listener: any backend) wants credentials, the ping goes there so clients
//! see its challenge; otherwise dockgate answers it, and stays up when a
//! backend is down.

use super::credentials;
use super::{Env, Request};
use crate::pipeline::{Forward, Local, Step};
use crate::policy::auth::Principal;
use crate::rewrite::response::ViewOf;
use crate::route;
use http::StatusCode;

pub fn handle(env: &Env<'_>, req: &Request<'_>, p: &Principal) -> Step {
    if env.rt.auth.is_some() {
        if p.user().is_none() {
            return Step::Respond(credentials::challenge_ping(env, req));
        }
    } else if let Some(f) = to_backend(env, req) {
        return Step::Forward(Box::new(f));
    }
    Step::Respond(Local::json(StatusCode::OK, Vec::new(), b"{}".to_vec()))
}

fn to_backend(env: &Env<'_>, req: &Request<'_>) -> Option<Forward> {
    let rt = env.rt;
    let wants = env
        .shared
        .auth_required
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    let repo = match route::listener_repo(&rt.cfg, &req.listen, Some(&req.client_host)) {
        Ok(Some(r)) if wants.contains(&r.backend.name) => r,
        Ok(None) => rt
            .cfg
            .repositories
            .values()
            .find(|r| wants.contains(&r.backend.name))?
            .clone(),
        _ => return None,
    };
    let b = repo.backend.clone();
    let mut f = Forward::new(b.clone(), format!("{}/", b.v2_prefix_for(&repo.key)));
    f.view = Some(ViewOf::new(&req.client_host, &repo, &req.listen));
    Some(f)
}
