//! The realm route in passthrough mode: a backend's own token endpoint,
//! reached through dockgate. Only the realm paths the backend advertised,
//! only GET and POST, only the token request's own parameters (rebuilt
//! from decoded values), scopes mapped to backend names the client could
//! address on this listener. With `[auth]` dockgate is the token service
//! and the route does not exist.

use super::{Env, Request};
use crate::oci::{ErrorCode, RegistryError};
use crate::pipeline::{Body, Forward, Local, Step};
use crate::rewrite::{query, realm, request};
use crate::route;
use bytes::Bytes;
use http::StatusCode;

pub fn handle(env: &Env<'_>, req: &Request<'_>, rest: &str) -> Step {
    let rt = env.rt;
    let (name, path) = realm::split(rest);
    let m = &req.head.method;
    let refusal = if rt.auth.is_some() {
        Some(RegistryError::unsupported(
            "no realm route: dockgate is the token service here (/v2/token)",
        ))
    } else if !rt.cfg.backends.contains_key(name) || !env.shared.realms.knows(name, &path) {
        Some(RegistryError::unsupported(format!(
            "{path} is not a token realm that backend {name:?} advertised"
        )))
    } else {
        (m != http::Method::GET && m != http::Method::POST).then(|| {
            RegistryError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::Unsupported,
                "a token realm takes GET or POST",
            )
        })
    };
    let backend = match (refusal, rt.cfg.backends.get(name)) {
        (None, Some(b)) => b.clone(),
        (Some(e), _) if e.status == StatusCode::METHOD_NOT_ALLOWED => {
            return Step::Respond(Local::error_with(
                e,
                vec![("Allow", "GET, POST".to_string())],
            ))
        }
        (Some(e), _) => return Step::error(e),
        (None, None) => return Step::error(RegistryError::unsupported("unknown backend")),
    };
    let names = |n: &str| {
        route::backend_name_of(&rt.cfg, &req.listen, Some(&req.client_host), n)
            .map(|(r, b)| (r.key.clone(), b))
    };
    let params = request::token_params(&query::parse(req.query().unwrap_or("")), &names);
    let uri = if params.is_empty() {
        path
    } else {
        format!("{path}?{}", query::build(&params))
    };
    let mut fwd = Forward::new(backend, uri);
    if m == http::Method::POST {
        let body = req.body.clone().unwrap_or_default();
        let form = query::parse(&String::from_utf8_lossy(&body));
        let form = query::build(&request::token_params(&form, &names));
        fwd.set_headers = vec![
            ("Content-Type", "application/x-www-form-urlencoded".into()),
            ("Content-Length", form.len().to_string()),
        ];
        fwd.body = Body::Held(Bytes::from(form));
    }
    Step::Forward(Box::new(fwd))
}
