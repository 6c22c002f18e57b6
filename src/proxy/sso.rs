//! Thin glue for single sign-on: hands `/login`, `/user`, `/logout` to
//! `sso::handlers`, and gives `/v2/token` the workload-token and
//! membership-recheck steps. The logic lives in `crate::sso`.

use super::{respond, Ctx, Gateway};
use crate::observe::metrics::NO_REPO;
use crate::observe::Operation;
use crate::policy::auth::{Authenticator, Failure};
use crate::sso::handlers::{self, Request};
use bytes::Bytes;
use pingora::proxy::Session;
use pingora::Result;
use std::sync::Arc;

/// Who a token request is for, beyond the user name: a workload token
/// brings its own groups and lifetime and never a refresh token.
#[derive(Debug, Default)]
pub(super) struct TokenFor {
    pub user: Option<String>,
    pub workload: Option<crate::sso::workload::WorkloadUser>,
}

impl Gateway {
    /// The sign-in pages; None when `path` is not one or SSO is off.
    pub(super) async fn sso_endpoint(
        &self,
        s: &mut Session,
        ctx: &mut Ctx,
        path: &str,
    ) -> Result<Option<bool>> {
        if !handlers::owns(path) {
            return Ok(None);
        }
        let Some(auth) = ctx.rt.as_ref().and_then(|r| r.auth.clone()) else {
            return Ok(None);
        };
        let Some(sso) = auth.sso.clone().filter(|s| !s.providers.is_empty()) else {
            return Ok(None);
        };
        ctx.operation = Some(Operation::Other);
        ctx.repo_label = NO_REPO.into();
        let method = s.req_header().method.clone();
        let body = if method == http::Method::POST {
            match self.read_small_body(s).await? {
                Some(b) => b,
                None => return Ok(Some(true)),
            }
        } else {
            Vec::new()
        };
        let h = s.req_header();
        let cookie = h
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join("; ");
        let query = h.uri.query().unwrap_or("").to_string();
        let host = ctx.client_host.clone();
        let resp = handlers::handle(
            &auth,
            &sso,
            Request {
                method: &method,
                path,
                query: &query,
                host: &host,
                cookie: Some(cookie.as_str()).filter(|c| !c.is_empty()),
                body: &body,
            },
        )
        .await;
        respond::send_raw(s, resp.status, &resp.headers, Bytes::from(resp.body)).await?;
        Ok(Some(true))
    }
}

/// A workload token presented as the password: verified here, or refused.
/// None when the password is not a JWT or no workloads are configured.
pub(super) async fn workload(
    auth: &Authenticator,
    password: Option<&str>,
) -> Option<Result<TokenFor, Failure>> {
    let sso = auth.sso.as_ref().filter(|s| !s.workloads.is_empty())?;
    let jwt = password.filter(|p| crate::sso::jwt::looks_like_jwt(p))?;
    Some(
        match sso
            .workloads
            .verify(&sso.client, jwt, crate::sso::now())
            .await
        {
            Ok(w) => {
                tracing::info!(workload = %w.workload, user = %w.user, "workload token accepted");
                Ok(TokenFor {
                    user: Some(w.user.clone()),
                    workload: Some(w),
                })
            }
            Err(e) => Err(Failure::BadToken(e.to_string())),
        },
    )
}

/// Single sign-on users: `max_key_age` and the membership re-check.
pub(super) async fn recheck(auth: &Arc<Authenticator>, user: Option<&str>) -> Result<(), Failure> {
    match (&auth.sso, user) {
        (Some(sso), Some(u)) => sso.on_token(u).await.map_err(Failure::BadToken),
        _ => Ok(()),
    }
}
