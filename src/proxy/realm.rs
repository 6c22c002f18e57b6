//! The realm route in passthrough mode: a backend's own token endpoint,
//! reached through dockgate. Only the realm paths the backend advertised,
//! only GET and POST, only the token request's own parameters (rebuilt
//! from decoded values), scopes mapped to backend names the client could
//! address on this listener. With `[auth]` dockgate is the token service
//! and the route does not exist.

use super::{respond, Ctx, Gateway};
use crate::config::ListenMethod;
use crate::oci::{ErrorCode, RegistryError};
use crate::rewrite::{query, realm, request};
use crate::route;
use bytes::Bytes;
use http::header::WWW_AUTHENTICATE;
use http::StatusCode;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

fn not_found(msg: String) -> RegistryError {
    RegistryError::unsupported(msg)
}

impl Gateway {
    /// Ok(false): proxy the prepared GET; Ok(true): answered.
    pub(super) async fn realm(
        &self,
        s: &mut Session,
        ctx: &mut Ctx,
        rest: &str,
        method: &ListenMethod,
    ) -> Result<bool> {
        let Some(rt) = ctx.rt.clone() else {
            return Ok(false);
        };
        let (name, path) = realm::split(rest);
        let refusal = if rt.auth.is_some() {
            Some(not_found(
                "no realm route: dockgate is the token service here (/v2/token)".into(),
            ))
        } else if !rt.cfg.backends.contains_key(name) || !self.shared.realms.knows(name, &path) {
            Some(not_found(format!(
                "{path} is not a token realm that backend {name:?} advertised"
            )))
        } else {
            let m = &s.req_header().method;
            (m != http::Method::GET && m != http::Method::POST).then(|| {
                RegistryError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    ErrorCode::Unsupported,
                    "a token realm takes GET or POST",
                )
            })
        };
        if let Some(e) = refusal {
            let allow = [("Allow", "GET, POST".to_string())];
            let h: &[(&str, String)] = if e.status == StatusCode::METHOD_NOT_ALLOWED {
                &allow
            } else {
                &[]
            };
            respond::error_with(s, &e, h).await?;
            return Ok(true);
        }
        let Some(backend) = rt.cfg.backends.get(name).cloned() else {
            return Ok(false);
        };
        let host = ctx.client_host.clone();
        let names = |n: &str| {
            route::backend_name_of(&rt.cfg, method, Some(&host), n).map(|(r, b)| (r.key.clone(), b))
        };
        let params = query::parse(s.req_header().uri.query().unwrap_or(""));
        let params = request::token_params(&params, &names);
        ctx.upstream_uri = if params.is_empty() {
            path
        } else {
            format!("{path}?{}", query::build(&params))
        };
        ctx.backend = Some(backend);
        if s.req_header().method == http::Method::GET {
            return Ok(false);
        }
        let Some(body) = self.read_small_body(s).await? else {
            return Ok(true);
        };
        let form = query::parse(&String::from_utf8_lossy(&body));
        let form = query::build(&request::token_params(&form, &names));
        let req = s.req_header_mut();
        req.insert_header("Content-Type", "application/x-www-form-urlencoded")?;
        req.insert_header("Content-Length", form.len().to_string())?;
        self.forward_held(s, ctx, Bytes::from(form)).await
    }

    /// Remembers the realm paths a backend's 401 advertised.
    pub(super) fn learn_realms(&self, resp: &ResponseHeader, ctx: &Ctx) {
        let (Some(view), Some(b)) = (&ctx.view, &ctx.backend) else {
            return;
        };
        if resp.status != StatusCode::UNAUTHORIZED {
            return;
        }
        for v in resp.headers.get_all(WWW_AUTHENTICATE) {
            if let Some(p) = v.to_str().ok().and_then(|v| view.backend_realm(v)) {
                self.shared.realms.learn(&b.name, p);
            }
        }
    }
}
