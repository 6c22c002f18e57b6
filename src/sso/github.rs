//! GitHub and GitHub Enterprise: OAuth 2.0 (not OpenID Connect). Authorize
//! at `<base>/login/oauth/authorize`, exchange at `/login/oauth/access_token`
//! (JSON with `Accept: application/json`; errors come as 200 with an
//! `error` field), then the REST API: `GET /user`, `/user/orgs`,
//! `/user/teams`. Organisations and `org/team` slugs become groups.

use super::http::{self, HttpError};
use super::identity::Identity;
use super::ProviderError;
use serde::Deserialize;
use serde_json::Value;

const SCOPE: &str = "read:user user:email read:org";

pub struct Github {
    pub base_url: String,
    pub api_url: String,
    pub client_id: String,
    pub secret: Option<String>,
}

#[derive(Deserialize)]
struct User {
    login: String,
    id: u64,
    #[serde(default)]
    email: Option<String>,
}

#[derive(Deserialize)]
struct Org {
    login: String,
}

#[derive(Deserialize)]
struct Team {
    slug: String,
    organization: Org,
}

impl Github {
    pub fn authorize_url(&self, redirect_uri: &str, state: &str, challenge: &str) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", SCOPE)
            .append_pair("state", state)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("allow_signup", "false");
        format!("{}/login/oauth/authorize?{}", self.base_url, q.finish())
    }

    /// POSTs a form to the OAuth endpoint; `error` in a 200 is a refusal.
    async fn oauth(
        &self,
        c: &reqwest::Client,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<Value, HttpError> {
        let url = format!("{}{path}", self.base_url);
        let mut f: Vec<(&str, &str)> = vec![("client_id", &self.client_id)];
        if let Some(s) = &self.secret {
            f.push(("client_secret", s));
        }
        f.extend_from_slice(form);
        let v: Value = http::json(c.post(&url).form(&f)).await?;
        if let Some(e) = v.get("error").and_then(Value::as_str) {
            return Err(HttpError::Status {
                url,
                status: 400,
                error: Some(e.to_string()),
            });
        }
        Ok(v)
    }

    pub async fn exchange(
        &self,
        c: &reqwest::Client,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> Result<Identity, ProviderError> {
        let v = self
            .oauth(
                c,
                "/login/oauth/access_token",
                &[
                    ("code", code),
                    ("redirect_uri", redirect_uri),
                    ("code_verifier", verifier),
                ],
            )
            .await?;
        self.identity(c, access_token(&v)?).await
    }

    /// GitHub's device flow, when the app has it enabled (an Enterprise
    /// host without it answers 404 or `device_flow_disabled`).
    pub async fn device_start(&self, c: &reqwest::Client) -> Result<Value, ProviderError> {
        match self
            .oauth(c, "/login/device/code", &[("scope", SCOPE)])
            .await
        {
            Ok(v) => Ok(v),
            Err(e)
                if matches!(e, HttpError::Status { status: 404, .. })
                    || e.oauth_error() == Some("device_flow_disabled") =>
            {
                Err(ProviderError::NoDeviceFlow)
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn device_poll(
        &self,
        c: &reqwest::Client,
        device_code: &str,
    ) -> Result<Identity, ProviderError> {
        let v = self
            .oauth(
                c,
                "/login/oauth/access_token",
                &[
                    ("device_code", device_code),
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ],
            )
            .await
            .map_err(super::oidc::pending)?;
        self.identity(c, access_token(&v)?).await
    }

    /// The user, their organisations and teams, as of now.
    pub async fn identity(
        &self,
        c: &reqwest::Client,
        token: String,
    ) -> Result<Identity, ProviderError> {
        let get = |p: &str| {
            c.get(format!("{}{p}", self.api_url))
                .bearer_auth(&token)
                .header("X-GitHub-Api-Version", "2022-11-28")
        };
        let user: User = http::json(get("/user")).await?;
        let orgs: Vec<Org> = http::json(get("/user/orgs?per_page=100")).await?;
        let teams: Vec<Team> = http::json(get("/user/teams?per_page=100")).await?;
        let mut groups: Vec<String> = orgs.into_iter().map(|o| o.login).collect();
        groups.extend(
            teams
                .into_iter()
                .map(|t| format!("{}/{}", t.organization.login, t.slug)),
        );
        Ok(Identity {
            subject: user.id.to_string(),
            name: user.login,
            email: user.email.unwrap_or_default(),
            groups,
            credential: Some(token),
        })
    }
}

fn access_token(v: &Value) -> Result<String, ProviderError> {
    v.get("access_token")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ProviderError::BadAnswer("no access_token in the answer".into()))
}
