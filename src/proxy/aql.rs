//! `POST /api/search/aql` glue: admins only (with `[auth]`; without it
//! the endpoint is refused, since anyone could start full scans). The
//! query itself lives in `migrate::aql`.

use super::{respond, Ctx, Gateway};
use crate::migrate::aql::{self, AqlError};
use crate::oci::{ErrorCode, RegistryError};
use crate::policy::auth::acl;
use http::StatusCode;
use pingora::proxy::Session;
use pingora::Result;

impl Gateway {
    pub(super) async fn aql(&self, s: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        let Some(rt) = ctx.rt.clone() else {
            return Ok(false);
        };
        let Some(auth) = rt.auth.clone() else {
            let e = RegistryError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Denied,
                "the AQL endpoint is for admins and needs [auth]; use `dockgate schema1 scan`",
            );
            respond::error(s, &e).await?;
            return Ok(true);
        };
        let principal = match self.principal(s, ctx).await {
            Ok(p) => p,
            Err(f) => return self.refuse_credentials(s, ctx, f).await,
        };
        ctx.user = principal.user().map(str::to_string);
        let Some(user) = principal.user() else {
            let e = RegistryError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "an admin credential is required",
            );
            let ch = ("WWW-Authenticate", "Basic realm=\"dockgate\"".to_string());
            respond::error_with(s, &e, &[ch]).await?;
            return Ok(true);
        };
        if !acl::is_global_admin(&auth.cfg, user) {
            let e = RegistryError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::Denied,
                format!("user {user:?} is not an admin"),
            );
            respond::error(s, &e).await?;
            return Ok(true);
        }
        if s.req_header().method != http::Method::POST {
            let e = RegistryError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::Unsupported,
                "POST the AQL text",
            );
            respond::error(s, &e).await?;
            return Ok(true);
        }
        let Some(body) = self.read_small_body(s).await? else {
            return Ok(true);
        };
        match aql::answer(&rt.cfg, &rt.peers, &body).await {
            Ok(b) => respond::json(s, 200, &[], b).await?,
            Err(e) => {
                let (status, code) = match &e {
                    AqlError::Unsupported(_) => (StatusCode::BAD_REQUEST, ErrorCode::Unsupported),
                    AqlError::Busy => (StatusCode::TOO_MANY_REQUESTS, ErrorCode::Toomanyrequests),
                    AqlError::Timeout(_) | AqlError::Scan(_) => {
                        (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable)
                    }
                };
                respond::error(s, &RegistryError::new(status, code, e.to_string())).await?;
            }
        }
        Ok(true)
    }
}
