//! The registry error envelope: `{"errors":[{"code":..,"message":..}]}`.
//! Every response dockgate writes itself goes through here, so the shape and
//! the `Docker-Distribution-API-Version` header are decided in one place.

use http::StatusCode;
use serde::Serialize;

/// Error codes from the distribution spec (plus UNAVAILABLE, which
/// distribution itself uses for 503s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    TagInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    Toomanyrequests,
    Unavailable,
    Unknown,
}

/// A registry-format error with the HTTP status it is sent with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
}

#[derive(Serialize)]
struct Envelope<'a> {
    errors: [Entry<'a>; 1],
}

#[derive(Serialize)]
struct Entry<'a> {
    code: ErrorCode,
    message: &'a str,
}

impl RegistryError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn name_invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::NameInvalid, message)
    }

    pub fn name_unknown(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NameUnknown, message)
    }

    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::Unsupported, message)
    }

    /// The JSON body. Serialising a fixed struct of strings cannot fail, but
    /// a fallback keeps this total anyway.
    pub fn body(&self) -> Vec<u8> {
        let envelope = Envelope {
            errors: [Entry {
                code: self.code,
                message: &self.message,
            }],
        };
        serde_json::to_vec(&envelope)
            .unwrap_or_else(|_| br#"{"errors":[{"code":"UNKNOWN","message":"error"}]}"#.to_vec())
    }
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {:?}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_shape() {
        let e = RegistryError::name_unknown("repository \"x\" is not configured");
        let v: serde_json::Value = serde_json::from_slice(&e.body()).unwrap();
        assert_eq!(v["errors"][0]["code"], "NAME_UNKNOWN");
        assert_eq!(
            v["errors"][0]["message"],
            "repository \"x\" is not configured"
        );
        let codes = [
            (ErrorCode::Toomanyrequests, "TOOMANYREQUESTS"),
            (ErrorCode::BlobUploadInvalid, "BLOB_UPLOAD_INVALID"),
            (ErrorCode::Unavailable, "UNAVAILABLE"),
        ];
        for (code, want) in codes {
            assert_eq!(serde_json::to_value(code).unwrap(), want);
        }
    }
}
