//! `/v2/auth` and `/v1/auth`: the caller's docker config entry, with an
//! API key instead of the password (Artifactory's convention).

use base64::Engine;

/// `{"<host>": {"auth", "email"}}`, or with `config_json`
/// `{"auths": {"<host>": {...}}}` for `~/.docker/config.json`.
pub fn entry(
    host: &str,
    user: &str,
    api_key: &str,
    email: &str,
    config_json: bool,
) -> serde_json::Value {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{api_key}"));
    let inner = serde_json::json!({ host: { "auth": auth, "email": email } });
    if config_json {
        serde_json::json!({ "auths": inner })
    } else {
        inner
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn shapes() {
        let e = super::entry("h:5443", "alice", "dgk_x", "", false);
        assert_eq!(e["h:5443"]["auth"], "YWxpY2U6ZGdrX3g=");
        let c = super::entry("h:5443", "alice", "dgk_x", "a@b", true);
        assert_eq!(c["auths"]["h:5443"]["email"], "a@b");
    }
}
