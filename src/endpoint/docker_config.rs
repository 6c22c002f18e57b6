//! `/v2/auth`, `/v1/auth`: Basic credentials in, a docker config entry out.

use super::credentials;
use super::{Env, Notes, Request};
use crate::pipeline::{Local, Step};
use crate::policy::auth::Principal;
use crate::rewrite::query;

pub async fn handle(env: &Env<'_>, req: &Request<'_>, notes: &mut Notes) -> Step {
    let Some(auth) = env.rt.auth.clone() else {
        return Step::Respond(credentials::basic_required("no users without [auth]"));
    };
    let basic = req
        .header(http::header::AUTHORIZATION)
        .is_some_and(credentials::is_basic);
    let user = match credentials::principal(env, req).await {
        Ok(Principal::User(u)) if basic => u,
        Ok(_) => {
            return Step::Respond(credentials::basic_required(
                "Basic credentials (user and password or API key) are required",
            ))
        }
        Err(f) => return Step::Respond(credentials::refuse(env, req, notes, &f)),
    };
    notes.user = Some(user.clone());
    let config_json = req
        .query()
        .is_some_and(|q| query::first(&query::parse(q), "format") == Some("config.json"));
    let body = crate::admin::dockercfg::entry(
        &req.client_host,
        &user,
        &auth.api_key(&user),
        &auth.email(&user),
        config_json,
    );
    Step::Respond(Local::ok_json(&body))
}
