//! The edge policies' config: `[policy]` (global) and the per-repository
//! keys (`read_only`, `immutable_tags`, `allow_networks`, `push_networks`,
//! `rate_limit`). Serde mirror and validation side by side; every error
//! names its key.

use crate::policy::immutable::{PatternError, TagPattern};
use crate::policy::network::{NetworkError, Networks};
use crate::policy::rate::Rate;
use serde::Deserialize;
use std::time::Duration;

/// `[policy]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Every repository read-only (maintenance).
    #[serde(default)]
    pub read_only: bool,
    pub read_only_reason: Option<String>,
    /// How long uploads open when read-only was switched on may finish.
    pub drain_seconds: Option<u64>,
    #[serde(default)]
    pub allow_networks: Vec<String>,
    /// Peers whose `X-Forwarded-For` (and PROXY protocol v2 header) is
    /// believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Per client (user, or address when anonymous), over all repositories.
    pub rate_limit: Option<RateFile>,
}

/// `rate_limit = { requests_per_second = 10, burst = 20, pull_bytes_per_second = 10485760 }`
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct RateFile {
    pub requests_per_second: f64,
    pub burst: Option<u32>,
    pub pull_bytes_per_second: Option<u64>,
}

/// The per-repository keys, as read from `[repositories.<key>]`.
#[derive(Debug, Default)]
pub struct RepoPolicyFile<'a> {
    pub read_only: bool,
    pub read_only_reason: Option<&'a str>,
    pub immutable_tags: &'a [String],
    pub allow_networks: &'a [String],
    pub push_networks: &'a [String],
    pub rate_limit: Option<RateFile>,
}

/// Global edge policies.
#[derive(Debug, Clone, Default)]
pub struct GlobalPolicy {
    /// Some(reason) while every repository is read-only.
    pub read_only: Option<String>,
    pub drain: Duration,
    pub allow_networks: Networks,
    pub trusted_proxies: Networks,
    pub rate_limit: Option<Rate>,
}

/// One repository's edge policies.
#[derive(Debug, Clone, Default)]
pub struct RepoPolicy {
    /// Some(reason) while the repository is read-only.
    pub read_only: Option<String>,
    pub immutable_tags: Vec<TagPattern>,
    /// Who may reach the repository at all (empty: anyone).
    pub allow_networks: Networks,
    /// Who may push or delete (empty: anyone allowed above).
    pub push_networks: Networks,
    /// Per client within this repository.
    pub rate_limit: Option<Rate>,
}

pub const DEFAULT_DRAIN: Duration = Duration::from_secs(300);
pub const DEFAULT_REASON: &str = "maintenance";

/// A policy key that does not validate.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error(transparent)]
    TagPattern(#[from] PatternError),
    #[error("must be a number above 0 (leave rate_limit out for no limit)")]
    RequestsPerSecond,
    #[error("must be at least 1")]
    Burst,
    #[error("must be above 0 (leave it out for no limit)")]
    PullBytesPerSecond,
}

/// The failing key (relative to `[policy]` or `[repositories.<key>]`) and why.
pub type Problem = (String, PolicyError);

pub fn global(p: &PolicyFile) -> Result<GlobalPolicy, Problem> {
    Ok(GlobalPolicy {
        read_only: read_only(p.read_only, p.read_only_reason.as_deref()),
        drain: p.drain_seconds.map_or(DEFAULT_DRAIN, Duration::from_secs),
        allow_networks: Networks::parse(&p.allow_networks)
            .map_err(|e| ("policy.allow_networks".into(), e.into()))?,
        trusted_proxies: Networks::parse(&p.trusted_proxies)
            .map_err(|e| ("policy.trusted_proxies".into(), e.into()))?,
        rate_limit: p
            .rate_limit
            .map(|r| rate(&r))
            .transpose()
            .map_err(|(k, e)| (format!("policy.{k}"), e))?,
    })
}

/// Validates one repository's keys; the problem's key is relative to
/// `repositories.<key>`.
pub fn repository(p: &RepoPolicyFile) -> Result<RepoPolicy, Problem> {
    let immutable_tags = p
        .immutable_tags
        .iter()
        .map(|t| TagPattern::parse(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ("immutable_tags".into(), e.into()))?;
    Ok(RepoPolicy {
        read_only: read_only(p.read_only, p.read_only_reason),
        immutable_tags,
        allow_networks: Networks::parse(p.allow_networks)
            .map_err(|e| ("allow_networks".into(), e.into()))?,
        push_networks: Networks::parse(p.push_networks)
            .map_err(|e| ("push_networks".into(), e.into()))?,
        rate_limit: p.rate_limit.map(|r| rate(&r)).transpose()?,
    })
}

fn read_only(on: bool, reason: Option<&str>) -> Option<String> {
    on.then(|| reason.unwrap_or(DEFAULT_REASON).to_string())
}

/// The key is `rate_limit.<field>`.
fn rate(r: &RateFile) -> Result<Rate, Problem> {
    if !(r.requests_per_second.is_finite() && r.requests_per_second > 0.0) {
        return Err((
            "rate_limit.requests_per_second".into(),
            PolicyError::RequestsPerSecond,
        ));
    }
    let burst = r
        .burst
        .unwrap_or_else(|| r.requests_per_second.ceil() as u32);
    if burst == 0 {
        return Err(("rate_limit.burst".into(), PolicyError::Burst));
    }
    if r.pull_bytes_per_second == Some(0) {
        return Err((
            "rate_limit.pull_bytes_per_second".into(),
            PolicyError::PullBytesPerSecond,
        ));
    }
    Ok(Rate {
        requests_per_second: r.requests_per_second,
        burst: burst.max(1),
        pull_bytes_per_second: r.pull_bytes_per_second,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn check(
        extra_global: &str,
        extra_repo: &str,
    ) -> Result<crate::config::Config, crate::config::ConfigError> {
        let text = format!(
            r#"
[tls]
cert = "c.pem"
key = "k.pem"
[[listen]]
address = "127.0.0.1:5443"
method = "path"
{extra_global}
[backends.local]
url = "http://127.0.0.1:5000"
[repositories.r]
backend = "local"
{extra_repo}
"#
        );
        crate::config::parse(&text, Path::new("/x/d.toml"))
    }

    #[test]
    fn keys_are_validated_and_named() {
        let cases = [
            (
                "[policy]\nallow_networks = [\"10.0.0.0/33\"]",
                "",
                "/x/d.toml: policy.allow_networks:",
            ),
            (
                "[policy]\ntrusted_proxies = [\"proxy\"]",
                "",
                "/x/d.toml: policy.trusted_proxies:",
            ),
            (
                "[policy]\nrate_limit = { requests_per_second = 0 }",
                "",
                "policy.rate_limit.requests_per_second:",
            ),
            (
                "[policy]\nrate_limit = { requests_per_second = 5, burst = 0 }",
                "",
                "policy.rate_limit.burst:",
            ),
            (
                "",
                "immutable_tags = [\"v1/*\"]",
                "/x/d.toml: repositories.r.immutable_tags:",
            ),
            (
                "",
                "push_networks = [\"10.0.0.1/8x\"]",
                "repositories.r.push_networks:",
            ),
            (
                "",
                "rate_limit = { requests_per_second = 1, pull_bytes_per_second = 0 }",
                "repositories.r.rate_limit.pull_bytes_per_second:",
            ),
            ("", "read_only = \"yes\"", "repositories.r.read_only (line"),
            ("[policy]\nread_onyl = true", "", "policy.read_onyl (line"),
        ];
        for (g, r, want) in cases {
            let e = check(g, r).unwrap_err().to_string();
            assert!(e.contains(want), "{g} {r}: {e}");
        }
    }

    #[test]
    fn defaults_and_values() {
        let c = check(
            "[policy]\nread_only = true\ndrain_seconds = 30\ntrusted_proxies = [\"127.0.0.1\"]\nrate_limit = { requests_per_second = 2.5 }",
            "immutable_tags = [\"v*\"]\nread_only = true\nread_only_reason = \"gc\"\nallow_networks = [\"127.0.0.0/8\"]",
        )
        .unwrap();
        assert_eq!(c.policy.read_only.as_deref(), Some("maintenance"));
        assert_eq!(c.policy.drain.as_secs(), 30);
        assert_eq!(c.policy.rate_limit.map(|r| r.burst), Some(3));
        let r = &c.repositories["r"].policy;
        assert_eq!(r.read_only.as_deref(), Some("gc"));
        assert!(r.immutable_tags[0].matches("v1.0"));
        assert!(r.allow_networks.contains("127.0.0.2".parse().unwrap()));
        let plain = check("", "").unwrap();
        assert!(
            plain.policy.read_only.is_none() && plain.repositories["r"].policy.read_only.is_none()
        );
        assert_eq!(plain.policy.drain, super::DEFAULT_DRAIN);
    }
}
