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
    /// The path after the name, as the backend expects it.
    pub fn suffix(&self) -> String {
        let mut s = String::new();
        self.push_suffix(&mut s);
        s
    }

    /// Appends `suffix()`.
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
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    let at = |i: usize| segs.get(i).copied().unwrap_or("");
    // Byte offset of the name end: the name is the first `k` segments.
    let name_of = |k: usize| {
        let len: usize = segs[..k].iter().map(|s| s.len()).sum::<usize>() + k.saturating_sub(1);
        &rest[..len]
    };
    let found = if n >= 3 && at(n - 2) == "tags" && at(n - 1) == "list" {
        Some((n - 2, Endpoint::TagsList))
    } else if n >= 4 && at(n - 3) == "blobs" && at(n - 2) == "uploads" {
        if at(n - 1).is_empty() {
            Some((n - 3, Endpoint::UploadStart))
        } else {
            Some((n - 3, Endpoint::Upload(at(n - 1).to_string())))
        }
    } else if n >= 3 && at(n - 2) == "blobs" && at(n - 1) == "uploads" {
        // `.../blobs/uploads` without the trailing slash: treat as start.
        Some((n - 2, Endpoint::UploadStart))
    } else if n >= 3 && at(n - 2) == "blobs" {
        Some((n - 2, Endpoint::Blob(at(n - 1).to_string())))
    } else if n >= 3 && at(n - 2) == "manifests" {
        Some((n - 2, Endpoint::Manifest(at(n - 1).to_string())))
    } else if n >= 3 && at(n - 2) == "referrers" {
        Some((n - 2, Endpoint::Referrers(at(n - 1).to_string())))
    } else {
        None
    };
    let Some((k, endpoint)) = found else {
        if segs.iter().any(|s| s.is_empty()) && !rest.ends_with('/') {
            return Err(RegistryError::name_invalid(format!(
                "invalid path /v2/{rest}"
            )));
        }
        return Ok(Some(ApiPath::Other { rest }));
    };
    let name = name_of(k);
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
        ];
        for (p, code) in cases {
            let e = parse(p).unwrap_err();
            assert_eq!(e.code, code, "{p}");
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{p}");
        }
    }
}
