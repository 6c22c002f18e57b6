//! What an audit question needs from a request, beyond what routing kept:
//! the tag or digest it is about, and the user name a failed login tried.
//! Pure functions over plain types; `proxy/log.rs` calls them.

use crate::oci::path::Endpoint;
use base64::Engine;

/// Longest attempted user name logged; longer ones are cut.
const MAX_USER: usize = 128;

/// The tag or digest of a request: a manifest's reference, a blob's or
/// referrers' digest, or the `digest` that completes an upload. Empty for
/// everything else (uploads in progress, tag lists, catalog).
pub fn reference<'a>(endpoint: Option<&'a Endpoint>, query: Option<&'a str>) -> String {
    match endpoint {
        Some(Endpoint::Manifest(r) | Endpoint::Blob(r) | Endpoint::Referrers(r)) => r.clone(),
        Some(Endpoint::Upload(_)) => query
            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("digest=")))
            .map(|d| d.replace("%3A", ":").replace("%3a", ":"))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// The user name in a Basic `Authorization` header, never the password:
/// who tried, for a failed login. None for other schemes or a header that
/// is not `user:password`.
pub fn basic_user(header: &str) -> Option<String> {
    let (scheme, b64) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, _password) = text.split_once(':')?;
    Some(
        user.chars()
            .filter(|c| !c.is_control())
            .take(MAX_USER)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn reference_table() {
        let d = "sha256:aa";
        let cases: &[(Option<Endpoint>, Option<&str>, &str)] = &[
            (Some(Endpoint::Manifest("1".into())), None, "1"),
            (Some(Endpoint::Manifest(d.into())), None, d),
            (Some(Endpoint::Blob(d.into())), None, d),
            (Some(Endpoint::Referrers(d.into())), None, d),
            (
                Some(Endpoint::Upload("u".into())),
                Some("digest=sha256%3Aaa"),
                d,
            ),
            (
                Some(Endpoint::Upload("u".into())),
                Some("_state=x&digest=sha256:aa"),
                d,
            ),
            (Some(Endpoint::Upload("u".into())), None, ""),
            (Some(Endpoint::UploadStart), Some("mount=sha256:aa"), ""),
            (Some(Endpoint::TagsList), None, ""),
            (None, None, ""),
        ];
        for (e, q, want) in cases {
            assert_eq!(reference(e.as_ref(), *q), *want, "{e:?} {q:?}");
        }
    }

    #[test]
    fn basic_user_table() {
        let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let long = "u".repeat(500);
        let cases: Vec<(String, Option<String>)> = vec![
            (format!("Basic {}", b("alice:secret")), Some("alice".into())),
            (
                format!("basic {}", b("bob:pw:with:colons")),
                Some("bob".into()),
            ),
            (format!("Basic {}", b(":pw")), Some(String::new())),
            (format!("Basic {}", b("no-colon")), None),
            (format!("Basic {}", b("ev\nil:pw")), Some("evil".into())),
            (
                format!("Basic {}", b(&format!("{long}:pw"))),
                Some("u".repeat(128)),
            ),
            ("Basic !!!".into(), None),
            ("Bearer abc.def".into(), None),
            ("Basic".into(), None),
        ];
        for (h, want) in cases {
            assert_eq!(basic_user(&h), want, "{h}");
            if let Some(u) = basic_user(&h) {
                assert!(!u.contains("pw") && !u.contains("secret"), "{u}");
            }
        }
    }
}
