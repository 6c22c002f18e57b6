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
    let start: Value =
        match super::http::json(c.post(format!("{base}/login/{provider}/device"))).await {
            Ok(v) => v,
            Err(e) if e.oauth_error() == Some("unsupported_grant_type") => {
                let (user, token) = loopback(&c, &base, &provider).await?;
                return finish(&host, &user, &token);
            }
            Err(e) => return Err(e.into()),
        };
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
                let (user, token) = token_of(&v)?;
                return finish(&host, &user, &token);
            }
            Err(e) => match e.oauth_error() {
                Some("authorization_pending") => continue,
                Some("slow_down") => interval += 5,
                _ => return Err(LoginError::Refused(e.to_string())),
            },
        }
    }
}

fn token_of(v: &Value) -> Result<(String, String), LoginError> {
    let token = v.get("refresh_token").and_then(Value::as_str).unwrap_or("");
    let user = v.get("user").and_then(Value::as_str).unwrap_or("");
    if token.is_empty() {
        return Err(LoginError::Refused("the gateway returned no token".into()));
    }
    Ok((user.to_string(), token.to_string()))
}

/// Stores the refresh token for the helper and says how to use it.
fn finish(host: &str, user: &str, token: &str) -> Result<(), LoginError> {
    let path = helper::store_path();
    helper::store(
        &path,
        helper::Creds {
            server_url: host.to_string(),
            username: helper::TOKEN_USER.into(),
            secret: token.to_string(),
        },
    )?;
    eprintln!(
        "Signed in to {host} as {user}; the token is in {}.",
        path.display()
    );
    eprintln!(
        "Let docker, podman and skopeo use it: in ~/.docker/config.json (or the containers auth.json) set\n  \"credHelpers\": {{ \"{host}\": \"dockgate\" }}\nwith docker-credential-dockgate (a link to dockgate) on the PATH."
    );
    Ok(())
}

/// The browser sign-in ends with a redirect to this listener carrying a
/// one-time code, which the gateway exchanges for a refresh token.
async fn loopback(
    c: &reqwest::Client,
    base: &str,
    provider: &str,
) -> Result<(String, String), LoginError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let io = |e: std::io::Error| LoginError::Runtime(format!("loopback listener: {e}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(io)?;
    let port = listener.local_addr().map_err(io)?.port();
    let state = super::seal::random_token();
    eprintln!(
        "The provider has no device flow. To sign in, open this in a browser on this machine:\n  {base}/login/{provider}?cli_port={port}&cli_state={state}"
    );
    let wait = async {
        loop {
            let (mut sock, _) = listener.accept().await.map_err(io)?;
            let mut buf = vec![0u8; 16 << 10];
            let n = sock.read(&mut buf).await.map_err(io)?;
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            let target = head.split_whitespace().nth(1).unwrap_or("").to_string();
            let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
            let q: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
            let get = |k: &str| q.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
            let ok = get("state").is_some_and(|s| super::seal::same(&s, &state));
            let body = if ok {
                "Signed in: you can close this window and go back to the terminal."
            } else {
                "This is dockgate login's listener; it waits for the sign-in to finish."
            };
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            if let (true, Some(code)) = (ok, get("code")) {
                return Ok::<String, LoginError>(code);
            }
        }
    };
    let code = tokio::time::timeout(Duration::from_secs(600), wait)
        .await
        .map_err(|_| LoginError::Refused("no sign-in within 10 minutes".into()))??;
    let v: Value = super::http::json(
        c.post(format!("{base}/login/cli/token"))
            .form(&[("code", code.as_str())]),
    )
    .await?;
    token_of(&v)
}
