//! Manifest media types and classification of a manifest body. The
//! Content-Type is trusted only when the body agrees with it; a missing,
//! `application/json` or unknown type is decided by the body alone.

pub const SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const SCHEMA2: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The OCI spec asks registries to accept at least 4 MB manifests.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Schema1,
    Schema2,
    ManifestList,
    OciManifest,
    OciIndex,
    /// Valid JSON, but no known manifest shape (e.g. a future type).
    Unknown,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Schema1 => "Docker manifest V2 schema 1",
            Kind::Schema2 => "Docker manifest V2 schema 2",
            Kind::ManifestList => "Docker manifest list",
            Kind::OciManifest => "OCI image manifest",
            Kind::OciIndex => "OCI image index",
            Kind::Unknown => "unknown manifest type",
        }
    }

    /// Both are "an image" or both are "a list of images".
    fn family(self) -> u8 {
        match self {
            Kind::Schema1 => 1,
            Kind::Schema2 | Kind::OciManifest => 2,
            Kind::ManifestList | Kind::OciIndex => 3,
            Kind::Unknown => 0,
        }
    }
}

/// The media type a Content-Type names, if it is a manifest type.
pub fn kind_of_media_type(content_type: &str) -> Option<Kind> {
    let mt = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mt.as_str() {
        SCHEMA1 | SCHEMA1_SIGNED => Some(Kind::Schema1),
        SCHEMA2 => Some(Kind::Schema2),
        MANIFEST_LIST => Some(Kind::ManifestList),
        OCI_MANIFEST => Some(Kind::OciManifest),
        OCI_INDEX => Some(Kind::OciIndex),
        _ => None,
    }
}

/// Why a manifest body is refused (`MANIFEST_INVALID`).
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("manifest is not a JSON object")]
    NotAnObject,
    #[error("Content-Type says {declared} but the body is a {body}")]
    Mismatch {
        declared: &'static str,
        body: &'static str,
    },
}

/// What the body itself says.
pub fn sniff(body: &[u8]) -> Result<Kind, ManifestError> {
    let v: serde_json::Value = serde_json::from_slice(body)?;
    let obj = v.as_object().ok_or(ManifestError::NotAnObject)?;
    let version = obj.get("schemaVersion").and_then(|x| x.as_i64());
    let has = |k: &str| obj.contains_key(k);
    if version == Some(1) || has("fsLayers") || has("history") || has("signatures") {
        return Ok(Kind::Schema1);
    }
    let media = obj
        .get("mediaType")
        .and_then(|x| x.as_str())
        .and_then(kind_of_media_type);
    if version == Some(2) && has("manifests") {
        return Ok(match media {
            Some(Kind::ManifestList) => Kind::ManifestList,
            _ => Kind::OciIndex,
        });
    }
    if version == Some(2) && (has("config") || has("layers")) {
        return Ok(match media {
            Some(Kind::Schema2) => Kind::Schema2,
            _ => Kind::OciManifest,
        });
    }
    Ok(Kind::Unknown)
}

/// Classifies a manifest PUT. Err is a MANIFEST_INVALID message.
pub fn classify(content_type: Option<&str>, body: &[u8]) -> Result<Kind, ManifestError> {
    let sniffed = sniff(body)?;
    let declared = content_type.and_then(kind_of_media_type);
    match declared {
        None => Ok(sniffed),
        Some(d) if sniffed == Kind::Unknown || d.family() == sniffed.family() => Ok(d),
        Some(d) => Err(ManifestError::Mismatch {
            declared: d.name(),
            body: sniffed.name(),
        }),
    }
}

#[cfg(test)]
mod tests;
