//! What a manifest answer is, from its status, Content-Type and (when the
//! type says nothing) its body.

pub const SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Schema1,
    /// Schema2 or OCI image manifest: nothing to do.
    Image,
    /// Docker manifest list or OCI index: children must be looked at.
    List,
    /// Answered, but the type says nothing: the body decides.
    Unknown,
    /// Distribution 3 cannot read stored schema1 and answers 500.
    Schema1Unreadable,
    Missing,
    Failed(u16),
}

/// From a HEAD (or GET) answer's status and Content-Type.
pub fn classify(status: u16, content_type: Option<&str>) -> Kind {
    match status {
        200 => {}
        404 => return Kind::Missing,
        s => return Kind::Failed(s),
    }
    let ct = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match ct.as_str() {
        SCHEMA1 | SCHEMA1_SIGNED => Kind::Schema1,
        DOCKER_V2 | OCI_MANIFEST => Kind::Image,
        DOCKER_LIST | OCI_INDEX => Kind::List,
        _ => Kind::Unknown,
    }
}

/// For an `Unknown` answer (e.g. `application/json`): the body's shape.
pub fn classify_body(body: &[u8]) -> Kind {
    #[derive(serde::Deserialize)]
    struct Peek {
        #[serde(rename = "schemaVersion")]
        schema_version: Option<u32>,
        manifests: Option<serde::de::IgnoredAny>,
    }
    match serde_json::from_slice::<Peek>(body) {
        Ok(p) if p.schema_version == Some(1) => Kind::Schema1,
        Ok(p) if p.manifests.is_some() => Kind::List,
        Ok(_) => Kind::Image,
        Err(_) => Kind::Unknown,
    }
}

/// Distribution 3's answer for a stored schema1 manifest: 500 UNKNOWN
/// "unrecognized manifest schema version 1".
pub fn is_v3_schema1_error(status: u16, body: &[u8]) -> bool {
    status == 500
        && String::from_utf8_lossy(body)
            .to_ascii_lowercase()
            .contains("schema version 1")
}

/// A child of a list/index, from its descriptor.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Child {
    pub digest: String,
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
}

/// The children of a list or index body worth a HEAD: schema1 types and
/// anything whose type is not a known schema2/OCI image.
pub fn suspect_children(body: &[u8]) -> Vec<Child> {
    #[derive(serde::Deserialize)]
    struct List {
        #[serde(default)]
        manifests: Vec<Child>,
    }
    serde_json::from_slice::<List>(body)
        .map(|l| {
            l.manifests
                .into_iter()
                .filter(|c| !matches!(c.media_type.as_str(), DOCKER_V2 | OCI_MANIFEST))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let cases = [
            (200, Some(SCHEMA1_SIGNED), Kind::Schema1),
            (200, Some(SCHEMA1), Kind::Schema1),
            (
                200,
                Some("application/vnd.docker.distribution.manifest.v1+prettyjws; charset=utf-8"),
                Kind::Schema1,
            ),
            (200, Some(DOCKER_V2), Kind::Image),
            (200, Some(OCI_MANIFEST), Kind::Image),
            (200, Some(OCI_INDEX), Kind::List),
            (200, Some(DOCKER_LIST), Kind::List),
            (200, Some("application/json"), Kind::Unknown),
            (200, None, Kind::Unknown),
            (404, Some(SCHEMA1), Kind::Missing),
            (500, None, Kind::Failed(500)),
        ];
        for (status, ct, want) in cases {
            assert_eq!(classify(status, ct), want, "{status} {ct:?}");
        }
    }

    #[test]
    fn bodies() {
        assert_eq!(classify_body(br#"{"schemaVersion":1}"#), Kind::Schema1);
        assert_eq!(
            classify_body(br#"{"schemaVersion":2,"manifests":[]}"#),
            Kind::List
        );
        assert_eq!(
            classify_body(br#"{"schemaVersion":2,"layers":[]}"#),
            Kind::Image
        );
        assert_eq!(classify_body(b"nope"), Kind::Unknown);
        assert!(is_v3_schema1_error(
            500,
            br#"{"errors":[{"code":"UNKNOWN","message":"unknown error","detail":"unrecognized manifest schema version 1"}]}"#
        ));
        assert!(!is_v3_schema1_error(500, b"disk full"));
    }

    #[test]
    fn children() {
        let body = format!(
            r#"{{"manifests":[{{"mediaType":"{SCHEMA1}","digest":"sha256:a"}},{{"mediaType":"{DOCKER_V2}","digest":"sha256:b"}},{{"digest":"sha256:c"}}]}}"#
        );
        let got: Vec<_> = suspect_children(body.as_bytes())
            .into_iter()
            .map(|c| c.digest)
            .collect();
        assert_eq!(got, ["sha256:a", "sha256:c"]);
    }
}
