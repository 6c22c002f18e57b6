//! The outbound HTTP the providers need: small JSON (or form) answers with
//! a size cap and a deadline, errors that never carry a secret.

use serde::de::DeserializeOwned;
use std::time::Duration;

/// No provider answer dockgate reads is anywhere near this.
const LIMIT: usize = 1 << 20;
pub const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum HttpError {
    #[error("{url}: {message}")]
    Unreachable { url: String, message: String },
    /// An answer with a status the caller did not expect; `error` is the
    /// OAuth `error` code when the body had one.
    #[error("{url}: HTTP {status}{}", error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default())]
    Status {
        url: String,
        status: u16,
        error: Option<String>,
    },
    #[error("{url}: {message}")]
    BadAnswer { url: String, message: String },
}

impl HttpError {
    /// The OAuth error code (`authorization_pending`, `invalid_grant`, …).
    pub fn oauth_error(&self) -> Option<&str> {
        match self {
            HttpError::Status { error, .. } => error.as_deref(),
            _ => None,
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .user_agent(concat!("dockgate/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// URL without query: what errors and logs may show.
fn shown(url: &str) -> String {
    url.split('?').next().unwrap_or("").to_string()
}

/// Sends and reads a JSON answer of at most 1 MiB; non-2xx → `Status`.
pub async fn json<T: DeserializeOwned>(req: reqwest::RequestBuilder) -> Result<T, HttpError> {
    let (url, status, body) = send(req).await?;
    if !(200..300).contains(&status) {
        let error = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string));
        return Err(HttpError::Status { url, status, error });
    }
    serde_json::from_slice(&body).map_err(|e| HttpError::BadAnswer {
        url,
        message: format!("not the expected JSON: {e}"),
    })
}

async fn send(req: reqwest::RequestBuilder) -> Result<(String, u16, Vec<u8>), HttpError> {
    let req = req.header("Accept", "application/json");
    let mut resp = req.send().await.map_err(|e| {
        let url = e.url().map(|u| shown(u.as_str())).unwrap_or_default();
        HttpError::Unreachable {
            url,
            message: e.without_url().to_string(),
        }
    })?;
    let url = shown(resp.url().as_str());
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if body.len() + c.len() > LIMIT {
                    return Err(HttpError::BadAnswer {
                        url,
                        message: format!("answer larger than {LIMIT} bytes"),
                    });
                }
                body.extend_from_slice(&c);
            }
            Ok(None) => break,
            Err(e) => {
                return Err(HttpError::Unreachable {
                    url,
                    message: e.without_url().to_string(),
                })
            }
        }
    }
    Ok((url, status, body))
}
