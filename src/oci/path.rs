//! Parsing `/v2/...` request paths. Image names may have any number of `/`
//! segments, so the API keyword is found from the right.

use super::error::{ErrorCode, RegistryError};
use super::names::{is_valid_digest, is_valid_name, is_valid_reference};
use http::StatusCode;

/// What a `/v2/<name>/...` request addresses inside one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Manifest(String),
    Blob(String),
    /// `POST .../blobs/uploads/`
    UploadStart,
    /// `.../blobs/uploads/<id>`
    Upload(String),
    TagsList,
    Referrers(String),
}

impl Endpoint {
    /// Appends the path after the name, as the backend expects it.
    pub fn push_suffix(&self, out: &mut String) {
        let (keyword, tail) = match self {
            Endpoint::Manifest(r) => ("/manifests/", r.as_str()),
            Endpoint::Blob(d) => ("/blobs/", d.as_str()),
            Endpoint::UploadStart => ("/blobs/uploads/", ""),
            Endpoint::Upload(id) => ("/blobs/uploads/", id.as_str()),
            Endpoint::TagsList => ("/tags/list", ""),
            Endpoint::Referrers(d) => ("/referrers/", d.as_str()),
        };
        out.push_str(keyword);
        out.push_str(tail);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiPath<'a> {
    /// `/v2/`
    Ping,
    /// `/v2/_catalog`
    Catalog,
    /// A repository endpoint; `name` is validated against the spec grammar.
    Repo { name: &'a str, endpoint: Endpoint },
    /// A `/v2/` path with no known API keyword (extensions); `rest` excludes
    /// the leading `/v2/`. It passes through to the backend untouched.
    Other { rest: &'a str },
}

fn invalid(code: ErrorCode, msg: String) -> RegistryError {
    RegistryError::new(StatusCode::BAD_REQUEST, code, msg)
}

/// Parses the path part of a request URI (still percent-encoded). Returns
/// `Ok(None)` for paths outside `/v2`.
pub fn parse(path: &str) -> Result<Option<ApiPath<'_>>, RegistryError> {
    let rest = match path {
        "/v2" | "/v2/" => return Ok(Some(ApiPath::Ping)),
        p => match p.strip_prefix("/v2/") {
            Some(rest) => rest,
            None => return Ok(None),
        },
    };
    if rest == "_catalog" {
        return Ok(Some(ApiPath::Catalog));
    }
    // Nothing percent-encoded or dot-segmented is ever valid in a name,
    // reference or upload id; refuse it before any splitting.
    if rest.contains('%') || rest.split('/').any(|s| s == ".." || s == ".") {
        return Err(RegistryError::name_invalid(format!(
            "invalid path /v2/{rest}: encoded characters and dot segments are not allowed"
        )));
    }
    // The last three segments and what is before them, from the right:
    // no list of segments is built (every request is parsed).
    let mut right = rest.rsplitn(4, '/');
    let last = right.next().unwrap_or("");
    let (second, third) = (right.next(), right.next());
    // The name is everything before the last `n` segments.
    let name_before = |n: usize| {
        let tail: usize = [Some(last), second, third][..n]
            .iter()
            .map(|s| s.map_or(0, |s| s.len() + 1))
            .sum();
        &rest[..rest.len().saturating_sub(tail)]
    };
    let found = match (third.is_some(), second.unwrap_or(""), last) {
        (true, "tags", "list") => Some((2, Endpoint::TagsList)),
        (true, "uploads", id) if right.next().is_some() && third == Some("blobs") => {
            if id.is_empty() {
                Some((3, Endpoint::UploadStart))
            } else {
                Some((3, Endpoint::Upload(id.to_string())))
            }
        }
        // `.../blobs/uploads` without the trailing slash: treat as start.
        (true, "blobs", "uploads") => Some((2, Endpoint::UploadStart)),
        (true, "blobs", d) => Some((2, Endpoint::Blob(d.to_string()))),
        (true, "manifests", r) => Some((2, Endpoint::Manifest(r.to_string()))),
        (true, "referrers", d) => Some((2, Endpoint::Referrers(d.to_string()))),
        _ => None,
    };
    let Some((k, endpoint)) = found else {
        if rest.split('/').any(str::is_empty) && !rest.ends_with('/') {
            return Err(RegistryError::name_invalid(format!(
                "invalid path /v2/{rest}"
            )));
        }
        return Ok(Some(ApiPath::Other { rest }));
    };
    let name = name_before(k);
    if !is_valid_name(name) {
        return Err(RegistryError::name_invalid(format!(
            "invalid repository name {name:?}"
        )));
    }
    match &endpoint {
        Endpoint::Blob(d) | Endpoint::Referrers(d) if !is_valid_digest(d) => {
            return Err(invalid(
                ErrorCode::DigestInvalid,
                format!("invalid digest {d:?}"),
            ));
        }
        Endpoint::Manifest(r) if !is_valid_reference(r) => {
            let code = if r.contains(':') {
                ErrorCode::DigestInvalid
            } else {
                ErrorCode::TagInvalid
            };
            return Err(invalid(code, format!("invalid manifest reference {r:?}")));
        }
        _ => {}
    }
    Ok(Some(ApiPath::Repo { name, endpoint }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha() -> String {
        format!("sha256:{}", "0123456789abcdef".repeat(4))
    }

    #[test]
    fn parses_endpoints() {
        let d = sha();
        let blob = format!("/v2/a/b/c/blobs/{d}");
        let man = format!("/v2/key/img/manifests/{d}");
        let refs = format!("/v2/key/img/referrers/{d}");
        let tricky = format!("/v2/key/blobs/blobs/{d}");
        let cases: Vec<(&str, ApiPath)> = vec![
            ("/v2/", ApiPath::Ping),
            ("/v2", ApiPath::Ping),
            ("/v2/_catalog", ApiPath::Catalog),
            (
                "/v2/key/img/manifests/latest",
                ApiPath::Repo {
                    name: "key/img",
                    endpoint: Endpoint::Manifest("latest".into()),
                },
            ),
            (
                &man,
                ApiPath::Repo {
                    name: "key/img",
                    endpoint: Endpoint::Manifest(d.clone()),
                },
            ),
            (
                &blob,
                ApiPath::Repo {
                    name: "a/b/c",
                    endpoint: Endpoint::Blob(d.clone()),
                },
            ),
            (
                "/v2/k/i/blobs/uploads/",
                ApiPath::Repo {
                    name: "k/i",
                    endpoint: Endpoint::UploadStart,
                },
            ),
            (
                "/v2/k/i/blobs/uploads",
                ApiPath::Repo {
                    name: "k/i",
                    endpoint: Endpoint::UploadStart,
                },
            ),
            (
                "/v2/k/i/blobs/uploads/abc-123",
                ApiPath::Repo {
                    name: "k/i",
                    endpoint: Endpoint::Upload("abc-123".into()),
                },
            ),
            (
                "/v2/k/x/y/tags/list",
                ApiPath::Repo {
                    name: "k/x/y",
                    endpoint: Endpoint::TagsList,
                },
            ),
            (
                &refs,
                ApiPath::Repo {
                    name: "key/img",
                    endpoint: Endpoint::Referrers(d.clone()),
                },
            ),
            (
                &tricky,
                ApiPath::Repo {
                    name: "key/blobs",
                    endpoint: Endpoint::Blob(d.clone()),
                },
            ),
            (
                "/v2/k/manifests/manifests/v1",
                ApiPath::Repo {
                    name: "k/manifests",
                    endpoint: Endpoint::Manifest("v1".into()),
                },
            ),
            (
                "/v2/k/img/_ext/thing",
                ApiPath::Other {
                    rest: "k/img/_ext/thing",
                },
            ),
            // Keywords without a name before them are no endpoint.
            (
                "/v2/blobs/uploads/x",
                ApiPath::Other {
                    rest: "blobs/uploads/x",
                },
            ),
            ("/v2/tags/list", ApiPath::Other { rest: "tags/list" }),
            (
                "/v2/k/uploads/x",
                ApiPath::Other {
                    rest: "k/uploads/x",
                },
            ),
            (
                "/v2/k/blobs/uploads/",
                ApiPath::Repo {
                    name: "k",
                    endpoint: Endpoint::UploadStart,
                },
            ),
            (
                "/v2/k/tags/list",
                ApiPath::Repo {
                    name: "k",
                    endpoint: Endpoint::TagsList,
                },
            ),
        ];
        for (p, want) in cases {
            assert_eq!(parse(p).unwrap(), Some(want), "{p}");
        }
        assert_eq!(parse("/v1/x").unwrap(), None);
        assert_eq!(parse("/").unwrap(), None);
        assert_eq!(parse("/v2x").unwrap(), None);
    }

    #[test]
    fn rejects_bad_input() {
        let cases = [
            ("/v2/Key/img/manifests/latest", ErrorCode::NameInvalid),
            ("/v2/k/../img/manifests/latest", ErrorCode::NameInvalid),
            ("/v2/k%2Fimg/manifests/latest", ErrorCode::NameInvalid),
            ("/v2/k//img/manifests/latest", ErrorCode::NameInvalid),
            ("/v2/k/img/manifests/-bad", ErrorCode::TagInvalid),
            ("/v2/k/img/manifests/sha256:xyz", ErrorCode::DigestInvalid),
            ("/v2/k/img/blobs/latest", ErrorCode::DigestInvalid),
            ("/v2/k/img/referrers/nope", ErrorCode::DigestInvalid),
            ("/v2/./k/manifests/a", ErrorCode::NameInvalid),
            ("/v2//tags/list", ErrorCode::NameInvalid),
            ("/v2//blobs/uploads/", ErrorCode::NameInvalid),
            ("/v2/k/img/manifests/", ErrorCode::TagInvalid),
            ("/v2/k/img//x", ErrorCode::NameInvalid),
        ];
        for (p, code) in cases {
            let e = parse(p).unwrap_err();
            assert_eq!(e.code, code, "{p}");
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{p}");
        }
    }
}
