//! `dockgate login HOST`: the device flow through the gateway (which holds
//! the provider's client secret), then the refresh token into the
//! credential helper's store. Nothing to copy; docker, podman and skopeo
//! spend the token at `/v2/token` through `docker-credential-dockgate`.

use super::helper;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("{0}")]
    Http(#[from] super::http::HttpError),
    #[error("{0}: {1}")]
    Ca(String, String),
    #[error("the gateway offers sign-in with {0}; choose one with --provider")]
    Choose(String),
    #[error("the gateway has no sign-in providers")]
    NoProviders,
    #[error("sign-in failed: {0}")]
    Refused(String),
    #[error("{0}")]
    Store(#[from] helper::HelperError),
    #[error("{0}")]
    Runtime(String),
}

pub struct LoginArgs {
    pub host: String,
    pub provider: Option<String>,
    pub ca: Option<PathBuf>,
}

fn client(ca: Option<&PathBuf>) -> Result<reqwest::Client, LoginError> {
    let mut b = reqwest::Client::builder()
        .timeout(super::http::TIMEOUT)
        .user_agent(concat!("dockgate-login/", env!("CARGO_PKG_VERSION")));
    if let Some(p) = ca {
        let pem =
            std::fs::read(p).map_err(|e| LoginError::Ca(p.display().to_string(), e.to_string()))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| LoginError::Ca(p.display().to_string(), e.to_string()))?;
        b = b.add_root_certificate(cert);
    }
    b.build().map_err(|e| LoginError::Runtime(e.to_string()))
}

pub fn run(a: LoginArgs) -> Result<(), LoginError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| LoginError::Runtime(e.to_string()))?;
    rt.block_on(login(a))
}

async fn login(a: LoginArgs) -> Result<(), LoginError> {
    let host = helper::server_key(&a.host);
    let base = format!("https://{host}");
    let c = client(a.ca.as_ref())?;
    let provider = match a.provider {
        Some(p) => p,
        None => {
            let list: Vec<Value> =
                super::http::json(c.get(format!("{base}/login?format=json"))).await?;
            let names: Vec<String> = list
                .iter()
                .filter_map(|p| p.get("name").and_then(Value::as_str).map(str::to_string))
                .collect();
            match names.as_slice() {
                [] => return Err(LoginError::NoProviders),
                [one] => one.clone(),
                many => return Err(LoginError::Choose(many.join(", "))),
            }
        }
    };
    let start: Value = super::http::json(c.post(format!("{base}/login/{provider}/device"))).await?;
    let s = |k: &str| {
        start
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (uri, code) = (s("verification_uri"), s("user_code"));
    eprintln!("To sign in, open {uri} and enter the code {code}");
    if let Some(full) = start
        .get("verification_uri_complete")
        .and_then(Value::as_str)
    {
        eprintln!("(or open {full})");
    }
    let mut interval = start
        .get("interval")
        .and_then(Value::as_u64)
        .unwrap_or(5)
        .max(1);
    let deadline = std::time::Instant::now()
        + Duration::from_secs(
            start
                .get("expires_in")
                .and_then(Value::as_u64)
                .unwrap_or(600),
        );
    let handle = s("handle");
    loop {
        if std::time::Instant::now() > deadline {
            return Err(LoginError::Refused(
                "the code expired; run dockgate login again".into(),
            ));
        }
        tokio::time::sleep(Duration::from_secs(interval)).await;
        let r = super::http::json::<Value>(
            c.post(format!("{base}/login/device/token"))
                .form(&[("handle", handle.as_str())]),
        )
        .await;
        match r {
            Ok(v) => {
                let token = v.get("refresh_token").and_then(Value::as_str).unwrap_or("");
                let user = v.get("user").and_then(Value::as_str).unwrap_or("");
                if token.is_empty() {
                    return Err(LoginError::Refused("the gateway returned no token".into()));
                }
                let path = helper::store_path();
                helper::store(
                    &path,
                    helper::Creds {
                        server_url: host.clone(),
                        username: helper::TOKEN_USER.into(),
                        secret: token.into(),
                    },
                )?;
                eprintln!(
                    "Signed in to {host} as {user}; the token is in {}.",
                    path.display()
                );
                eprintln!(
                    "Let docker, podman and skopeo use it: in ~/.docker/config.json (or the containers auth.json) set\n  \"credHelpers\": {{ \"{host}\": \"dockgate\" }}\nwith docker-credential-dockgate (a link to dockgate) on the PATH."
                );
                return Ok(());
            }
            Err(e) => match e.oauth_error() {
                Some("authorization_pending") => continue,
                Some("slow_down") => interval += 5,
                _ => return Err(LoginError::Refused(e.to_string())),
            },
        }
    }
}
