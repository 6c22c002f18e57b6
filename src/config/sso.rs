//! `[auth.sso.<name>]` (sign-in providers) and `[auth.workload.<name>]`
//! (CI identity tokens): the serde mirror and its validation into the
//! domain types below. Kept apart from `file.rs`/`validate.rs` so single
//! sign-on stays one reading.

use super::validate::Ctx;
use super::ConfigError;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// `kind = "oidc" | "github"`, each with its own keys.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SsoFile {
    Oidc(OidcFile),
    Github(GithubFile),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcFile {
    /// Issuer URL; `<issuer>/.well-known/openid-configuration` is read.
    pub issuer: String,
    pub client_id: String,
    pub client_secret_file: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The ID-token (or userinfo) claim listing the user's groups.
    pub groups_claim: Option<String>,
    pub display_name: Option<String>,
    pub auto_create_users: Option<bool>,
    #[serde(default)]
    pub groups: BTreeMap<String, String>,
    pub max_key_age_seconds: Option<u64>,
    pub recheck_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubFile {
    /// `https://github.com` (default) or a GitHub Enterprise host.
    pub base_url: Option<String>,
    /// REST API root; default `https://api.github.com` for github.com,
    /// `<base_url>/api/v3` for Enterprise.
    pub api_url: Option<String>,
    pub client_id: String,
    pub client_secret_file: Option<String>,
    pub display_name: Option<String>,
    pub auto_create_users: Option<bool>,
    #[serde(default)]
    pub groups: BTreeMap<String, String>,
    pub max_key_age_seconds: Option<u64>,
    pub recheck_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadFile {
    pub issuer: String,
    /// JWKS by URL, or a file for air-gapped sites (exactly one).
    pub jwks_url: Option<String>,
    pub jwks_file: Option<String>,
    pub audience: String,
    pub token_ttl_seconds: Option<u64>,
    #[serde(default)]
    pub rules: Vec<RuleFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// Claim → expected value; a trailing `*` matches a prefix.
    #[serde(default)]
    pub claims: BTreeMap<String, String>,
    /// The user the token acts as; `{claim}` is replaced by the claim.
    pub user: String,
    /// Dockgate groups the user is in for this token.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// One sign-in provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoProvider {
    pub name: String,
    pub display_name: String,
    pub kind: ProviderKind,
    pub client_id: String,
    pub client_secret_file: Option<PathBuf>,
    pub auto_create_users: bool,
    /// Provider group → dockgate group.
    pub groups: BTreeMap<String, String>,
    /// How long a CLI secret or refresh token lives after the last sign-in.
    pub max_key_age: Duration,
    /// Membership is asked of the provider again at most this often.
    pub recheck: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderKind {
    Oidc {
        issuer: String,
        scopes: Vec<String>,
        groups_claim: String,
    },
    Github {
        base_url: String,
        api_url: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub name: String,
    pub issuer: String,
    pub jwks: JwksSource,
    pub audience: String,
    pub token_ttl: Duration,
    pub rules: Vec<ClaimRule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    Url(String),
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRule {
    pub claims: BTreeMap<String, String>,
    pub user: String,
    pub groups: Vec<String>,
}

const DEFAULT_MAX_KEY_AGE: u64 = 30 * 86_400;
const DEFAULT_RECHECK: u64 = 900;

fn http_url(cx: &Ctx, key: &str, url: &str) -> Result<String, ConfigError> {
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.parse::<http::Uri>().is_ok_and(|u| u.host().is_some());
    if !ok {
        return Err(cx.err(key, format!("{url:?}: expected an http(s) URL")));
    }
    Ok(url.trim_end_matches('/').to_string())
}

fn name_ok(cx: &Ctx, key: &str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(cx.err(key, "a name of letters, digits, '-' and '_'"));
    }
    Ok(())
}

pub(super) fn providers(
    cx: &Ctx,
    raw: &BTreeMap<String, SsoFile>,
) -> Result<Vec<SsoProvider>, ConfigError> {
    let mut out = Vec::new();
    for (name, p) in raw {
        let key = format!("auth.sso.{name}");
        name_ok(cx, &key, name)?;
        let (kind, client_id, secret, display, auto, groups, age, recheck) = match p {
            SsoFile::Oidc(o) => (
                ProviderKind::Oidc {
                    issuer: http_url(cx, &format!("{key}.issuer"), &o.issuer)?,
                    scopes: if o.scopes.is_empty() {
                        vec!["openid".into(), "profile".into(), "email".into()]
                    } else {
                        o.scopes.clone()
                    },
                    groups_claim: o.groups_claim.clone().unwrap_or_else(|| "groups".into()),
                },
                &o.client_id,
                &o.client_secret_file,
                &o.display_name,
                o.auto_create_users,
                &o.groups,
                o.max_key_age_seconds,
                o.recheck_seconds,
            ),
            SsoFile::Github(g) => {
                let base = http_url(
                    cx,
                    &format!("{key}.base_url"),
                    g.base_url.as_deref().unwrap_or("https://github.com"),
                )?;
                let api = match &g.api_url {
                    Some(a) => http_url(cx, &format!("{key}.api_url"), a)?,
                    None if base == "https://github.com" => "https://api.github.com".into(),
                    None => format!("{base}/api/v3"),
                };
                (
                    ProviderKind::Github {
                        base_url: base,
                        api_url: api,
                    },
                    &g.client_id,
                    &g.client_secret_file,
                    &g.display_name,
                    g.auto_create_users,
                    &g.groups,
                    g.max_key_age_seconds,
                    g.recheck_seconds,
                )
            }
        };
        if client_id.is_empty() {
            return Err(cx.err(format!("{key}.client_id"), "must not be empty"));
        }
        if let ProviderKind::Oidc { scopes, .. } = &kind {
            if !scopes.iter().any(|s| s == "openid") {
                return Err(cx.err(format!("{key}.scopes"), "must include \"openid\""));
            }
        }
        out.push(SsoProvider {
            name: name.clone(),
            display_name: display.clone().unwrap_or_else(|| name.clone()),
            kind,
            client_id: client_id.clone(),
            client_secret_file: secret.as_deref().map(|s| cx.path(s)),
            auto_create_users: auto.unwrap_or(true),
            groups: groups.clone(),
            max_key_age: Duration::from_secs(age.unwrap_or(DEFAULT_MAX_KEY_AGE).max(60)),
            recheck: Duration::from_secs(recheck.unwrap_or(DEFAULT_RECHECK)),
        });
    }
    Ok(out)
}

pub(super) fn workloads(
    cx: &Ctx,
    raw: &BTreeMap<String, WorkloadFile>,
) -> Result<Vec<Workload>, ConfigError> {
    let mut out = Vec::new();
    for (name, w) in raw {
        let key = format!("auth.workload.{name}");
        name_ok(cx, &key, name)?;
        let jwks = match (&w.jwks_url, &w.jwks_file) {
            (Some(u), None) => JwksSource::Url(http_url(cx, &format!("{key}.jwks_url"), u)?),
            (None, Some(f)) => JwksSource::File(cx.path(f)),
            _ => return Err(cx.err(&key, "set exactly one of jwks_url and jwks_file")),
        };
        if w.audience.is_empty() {
            return Err(cx.err(format!("{key}.audience"), "must not be empty"));
        }
        if w.rules.is_empty() {
            return Err(cx.err(
                format!("{key}.rules"),
                "at least one rule is needed to map a token to a user",
            ));
        }
        for (i, r) in w.rules.iter().enumerate() {
            if r.user.is_empty() {
                return Err(cx.err(format!("{key}.rules[{i}].user"), "must not be empty"));
            }
        }
        out.push(Workload {
            name: name.clone(),
            issuer: w.issuer.trim_end_matches('/').to_string(),
            jwks,
            audience: w.audience.clone(),
            token_ttl: Duration::from_secs(w.token_ttl_seconds.unwrap_or(300).clamp(10, 3600)),
            rules: w
                .rules
                .iter()
                .map(|r| ClaimRule {
                    claims: r.claims.clone(),
                    user: r.user.clone(),
                    groups: r.groups.clone(),
                })
                .collect(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::ConfigError;
    use crate::config::{parse, JwksSource, ProviderKind};
    use std::path::Path;

    const BASE: &str = r#"
[tls]
cert = "c.pem"
key = "k.pem"
[[listen]]
address = "127.0.0.1:5443"
method = "path"
[backends.local]
url = "http://127.0.0.1:5000"
[repositories.docker-local]
backend = "local"
[auth]
htpasswd = "users"
"#;

    fn load(extra: &str) -> Result<crate::config::Config, ConfigError> {
        parse(
            &format!("{BASE}{extra}"),
            Path::new("/etc/dockgate/dockgate.toml"),
        )
    }

    #[test]
    fn providers_and_workloads() {
        let c = load(
            r#"
[auth.sso.corp]
kind = "oidc"
issuer = "https://id.example/realms/x/"
client_id = "dockgate"
client_secret_file = "corp.secret"
groups = { "eng" = "devs" }
recheck_seconds = 60
[auth.sso.ghe]
kind = "github"
base_url = "https://github.acme.example"
client_id = "Iv1"
auto_create_users = false
[auth.sso.gh]
kind = "github"
client_id = "Iv2"
[auth.workload.ci]
issuer = "https://token.actions.example"
jwks_file = "ci.jwks"
audience = "dockgate"
rules = [{ claims = { repository = "acme/*" }, user = "ci-{repository}", groups = ["devs"] }]
"#,
        )
        .unwrap();
        let a = c.auth.unwrap();
        let by = |n: &str| a.sso.iter().find(|p| p.name == n).unwrap().clone();
        let corp = by("corp");
        assert!(
            matches!(&corp.kind, ProviderKind::Oidc { issuer, scopes, groups_claim }
            if issuer == "https://id.example/realms/x" && scopes.len() == 3 && groups_claim == "groups")
        );
        assert_eq!(
            corp.client_secret_file.unwrap(),
            Path::new("/etc/dockgate/corp.secret")
        );
        assert!(corp.auto_create_users);
        assert_eq!(corp.recheck.as_secs(), 60);
        assert!(
            matches!(&by("ghe").kind, ProviderKind::Github { api_url, .. }
            if api_url == "https://github.acme.example/api/v3")
        );
        assert!(!by("ghe").auto_create_users);
        assert!(
            matches!(&by("gh").kind, ProviderKind::Github { api_url, .. }
            if api_url == "https://api.github.com")
        );
        assert_eq!(
            a.workloads[0].jwks,
            JwksSource::File("/etc/dockgate/ci.jwks".into())
        );
    }

    #[test]
    fn bad_sections_name_the_key() {
        let cases = [
            ("[auth.sso.x]\nkind = \"saml\"\nclient_id = \"c\"", "unknown variant `saml`"),
            ("[auth.sso.x]\nkind = \"oidc\"\nissuer = \"https://i\"\nclient_id = \"c\"\ntypo = 1", "typo"),
            ("[auth.sso.x]\nkind = \"oidc\"\nissuer = \"ftp://i\"\nclient_id = \"c\"", "auth.sso.x.issuer"),
            ("[auth.sso.x]\nkind = \"oidc\"\nissuer = \"https://i\"\nclient_id = \"c\"\nscopes = [\"email\"]", "auth.sso.x.scopes"),
            ("[auth.sso.x]\nkind = \"github\"\nclient_id = \"\"", "auth.sso.x.client_id"),
            ("[auth.workload.w]\nissuer = \"i\"\naudience = \"a\"\nrules = [{ user = \"u\" }]", "auth.workload.w"),
            ("[auth.workload.w]\nissuer = \"i\"\njwks_file = \"f\"\naudience = \"a\"", "auth.workload.w.rules"),
        ];
        for (extra, want) in cases {
            let e = load(extra).unwrap_err().to_string();
            assert!(
                e.contains(want) && e.contains("dockgate.toml"),
                "{extra}: {e}"
            );
        }
    }
}
