//! The `operation` label: what a request did, from a fixed list, so
//! metrics stay bounded whatever paths arrive.

use crate::oci::Endpoint;
use http::Method;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Ping,
    Catalog,
    TagsList,
    ManifestGet,
    ManifestHead,
    ManifestPut,
    ManifestDelete,
    BlobGet,
    BlobHead,
    BlobUpload,
    BlobMount,
    Referrers,
    Token,
    Auth,
    Other,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Ping => "ping",
            Operation::Catalog => "catalog",
            Operation::TagsList => "tags_list",
            Operation::ManifestGet => "manifest_get",
            Operation::ManifestHead => "manifest_head",
            Operation::ManifestPut => "manifest_put",
            Operation::ManifestDelete => "manifest_delete",
            Operation::BlobGet => "blob_get",
            Operation::BlobHead => "blob_head",
            Operation::BlobUpload => "blob_upload",
            Operation::BlobMount => "blob_mount",
            Operation::Referrers => "referrers",
            Operation::Token => "token",
            Operation::Auth => "auth",
            Operation::Other => "other",
        }
    }

    /// A repository endpoint's operation.
    pub fn of(method: &Method, endpoint: Option<&Endpoint>, query: Option<&str>) -> Self {
        let m = method.as_str();
        match endpoint {
            Some(Endpoint::Manifest(_)) => match m {
                "GET" => Operation::ManifestGet,
                "HEAD" => Operation::ManifestHead,
                "PUT" => Operation::ManifestPut,
                "DELETE" => Operation::ManifestDelete,
                _ => Operation::Other,
            },
            Some(Endpoint::Blob(_)) => match m {
                "GET" => Operation::BlobGet,
                "HEAD" => Operation::BlobHead,
                _ => Operation::Other,
            },
            Some(Endpoint::UploadStart) if query.is_some_and(|q| q.contains("mount=")) => {
                Operation::BlobMount
            }
            Some(Endpoint::UploadStart) | Some(Endpoint::Upload(_)) => Operation::BlobUpload,
            Some(Endpoint::TagsList) => Operation::TagsList,
            Some(Endpoint::Referrers(_)) => Operation::Referrers,
            None => Operation::Other,
        }
    }
}

/// The `method` label: the methods the registry API uses, or OTHER.
pub fn method_label(m: &Method) -> &'static str {
    match m.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "PUT" => "PUT",
        "POST" => "POST",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let m = |s: &str| Endpoint::Manifest(s.into());
        let cases = [
            (Method::GET, Some(m("t")), None, Operation::ManifestGet),
            (Method::HEAD, Some(m("t")), None, Operation::ManifestHead),
            (Method::PUT, Some(m("t")), None, Operation::ManifestPut),
            (
                Method::DELETE,
                Some(m("t")),
                None,
                Operation::ManifestDelete,
            ),
            (
                Method::GET,
                Some(Endpoint::Blob("d".into())),
                None,
                Operation::BlobGet,
            ),
            (
                Method::POST,
                Some(Endpoint::UploadStart),
                Some("mount=x&from=y"),
                Operation::BlobMount,
            ),
            (
                Method::POST,
                Some(Endpoint::UploadStart),
                None,
                Operation::BlobUpload,
            ),
            (
                Method::PATCH,
                Some(Endpoint::Upload("u".into())),
                None,
                Operation::BlobUpload,
            ),
            (
                Method::GET,
                Some(Endpoint::TagsList),
                None,
                Operation::TagsList,
            ),
            (Method::OPTIONS, Some(m("t")), None, Operation::Other),
            (Method::GET, None, None, Operation::Other),
        ];
        for (method, ep, q, want) in cases {
            assert_eq!(
                Operation::of(&method, ep.as_ref(), q),
                want,
                "{method} {ep:?}"
            );
        }
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "OTHER");
    }
}
