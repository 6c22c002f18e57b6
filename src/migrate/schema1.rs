//! A schema1 manifest: parsing, the digest of a signed one, and the layer
//! validation containers/image and moby apply (fixManifestLayers).

use base64::Engine;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Schema1Error {
    #[error("not a schema1 manifest: {0}")]
    Parse(String),
    #[error("fsLayers has {0} entries and history {1}")]
    Lengths(usize, usize),
    #[error("the manifest has no layers")]
    Empty,
    #[error("history[{0}]: v1Compatibility: {1}")]
    Compat(usize, String),
    #[error("history[{0}]: id {1:?} is not 64 lowercase hex digits")]
    BadId(usize, String),
    #[error("the base layer (history[{0}]) has a parent")]
    BaseHasParent(usize),
    #[error("history[{0}]: id {1} appears twice, not next to each other")]
    DuplicateId(usize, String),
    #[error("history[{0}]: parent {1:?} is not the next entry's id {2}")]
    BrokenChain(usize, String, String),
    #[error("signatures: {0}")]
    Signature(String),
    #[error("fsLayers[{0}]: {1} is not a sha256 digest (legacy tarsum?)")]
    NotSha256(usize, String),
}

/// One history entry with its layer, index 0 = top (newest).
#[derive(Debug, Clone)]
pub struct Entry {
    pub blob_sum: String,
    /// The raw `v1Compatibility` JSON text.
    pub v1: String,
    pub id: String,
    pub parent: String,
    pub created: Option<String>,
    pub author: String,
    pub comment: String,
    pub cmd: Vec<String>,
    pub throwaway: bool,
}

#[derive(Debug, Clone)]
pub struct Manifest {
    /// After validation: duplicates removed; index 0 = top.
    pub entries: Vec<Entry>,
}

#[derive(serde::Deserialize)]
struct Raw {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "fsLayers", default)]
    fs_layers: Vec<FsLayer>,
    #[serde(default)]
    history: Vec<History>,
}

#[derive(serde::Deserialize)]
struct FsLayer {
    #[serde(rename = "blobSum")]
    blob_sum: String,
}

#[derive(serde::Deserialize)]
struct History {
    #[serde(rename = "v1Compatibility")]
    v1: String,
}

/// The fields containers/image reads from each v1Compatibility.
#[derive(serde::Deserialize, Default)]
struct Compat {
    #[serde(default)]
    id: String,
    #[serde(default)]
    parent: String,
    #[serde(default)]
    comment: String,
    created: Option<String>,
    #[serde(default)]
    container_config: Option<CompatConfig>,
    #[serde(default)]
    author: String,
    #[serde(default)]
    throwaway: bool,
}

#[derive(serde::Deserialize, Default)]
struct CompatConfig {
    #[serde(rename = "Cmd", default)]
    cmd: Option<Vec<String>>,
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Parses and validates; entries that repeat the one below them (the
/// duplicated-top bug) are dropped, anything else inconsistent is refused.
/// `name`/`tag` are not checked against where the manifest is stored.
pub fn parse(body: &[u8]) -> Result<Manifest, Schema1Error> {
    let raw: Raw = serde_json::from_slice(body).map_err(|e| Schema1Error::Parse(e.to_string()))?;
    if raw.schema_version != 1 {
        return Err(Schema1Error::Parse(format!(
            "schemaVersion is {}",
            raw.schema_version
        )));
    }
    if raw.fs_layers.len() != raw.history.len() {
        return Err(Schema1Error::Lengths(
            raw.fs_layers.len(),
            raw.history.len(),
        ));
    }
    if raw.history.is_empty() {
        return Err(Schema1Error::Empty);
    }
    let mut entries = Vec::with_capacity(raw.history.len());
    for (i, (l, h)) in raw.fs_layers.into_iter().zip(raw.history).enumerate() {
        let c: Compat =
            serde_json::from_str(&h.v1).map_err(|e| Schema1Error::Compat(i, e.to_string()))?;
        entries.push(Entry {
            blob_sum: l.blob_sum,
            id: c.id,
            parent: c.parent,
            created: c.created,
            author: c.author,
            comment: c.comment,
            cmd: c.container_config.and_then(|c| c.cmd).unwrap_or_default(),
            throwaway: c.throwaway,
            v1: h.v1,
        });
    }
    for (i, e) in entries.iter().enumerate() {
        if !is_hex64(&e.id) {
            return Err(Schema1Error::BadId(i, e.id.clone()));
        }
    }
    let last = entries.len() - 1;
    if !entries[last].parent.is_empty() {
        return Err(Schema1Error::BaseHasParent(last));
    }
    // Non-consecutive repeats are an error (checked before dropping the
    // consecutive ones, as containers/image does).
    let mut seen = std::collections::HashSet::new();
    for (i, e) in entries.iter().enumerate() {
        let follows_itself = i > 0 && entries[i - 1].id == e.id;
        if !seen.insert(e.id.as_str()) && !follows_itself {
            return Err(Schema1Error::DuplicateId(i, e.id.clone()));
        }
    }
    let mut i = last;
    while i > 0 {
        i -= 1;
        if entries[i].id == entries[i + 1].id {
            entries.remove(i);
        } else if entries[i].parent != entries[i + 1].id {
            return Err(Schema1Error::BrokenChain(
                i,
                entries[i].parent.clone(),
                entries[i + 1].id.clone(),
            ));
        }
    }
    for (i, e) in entries.iter().enumerate() {
        let ok = e.blob_sum.strip_prefix("sha256:").is_some_and(is_hex64);
        if !ok {
            return Err(Schema1Error::NotSha256(i, e.blob_sum.clone()));
        }
    }
    Ok(Manifest { entries })
}

fn b64url(s: &str) -> Result<Vec<u8>, Schema1Error> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|e| Schema1Error::Signature(e.to_string()))
}

/// The bytes a schema1 digest is computed over: for a signed manifest the
/// payload without its JWS (`body[..formatLength] + formatTail`, which all
/// signatures must agree on), otherwise the body itself.
pub fn payload(body: &[u8]) -> Result<Vec<u8>, Schema1Error> {
    #[derive(serde::Deserialize)]
    struct Signed {
        #[serde(default)]
        signatures: Vec<Sig>,
    }
    #[derive(serde::Deserialize)]
    struct Sig {
        protected: String,
    }
    #[derive(serde::Deserialize, PartialEq)]
    struct Protected {
        #[serde(rename = "formatLength")]
        format_length: usize,
        #[serde(rename = "formatTail")]
        format_tail: String,
    }
    let s: Signed =
        serde_json::from_slice(body).map_err(|e| Schema1Error::Signature(e.to_string()))?;
    let mut format: Option<Protected> = None;
    for sig in &s.signatures {
        let p: Protected = serde_json::from_slice(&b64url(&sig.protected)?)
            .map_err(|e| Schema1Error::Signature(format!("protected header: {e}")))?;
        match &format {
            Some(f) if *f != p => {
                return Err(Schema1Error::Signature(
                    "the signatures disagree on the payload".into(),
                ))
            }
            _ => format = Some(p),
        }
    }
    let Some(f) = format else {
        return Ok(body.to_vec());
    };
    if f.format_length > body.len() {
        return Err(Schema1Error::Signature(format!(
            "formatLength {} is beyond the body ({} bytes)",
            f.format_length,
            body.len()
        )));
    }
    let mut out = body[..f.format_length].to_vec();
    out.extend_from_slice(&b64url(&f.format_tail)?);
    Ok(out)
}

pub fn sha256_digest(data: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
    )
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The digest of a schema1 manifest body (signed or not).
pub fn digest(body: &[u8]) -> Result<String, Schema1Error> {
    Ok(sha256_digest(&payload(body)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> String {
        format!("{:064x}", n)
    }

    fn manifest(entries: &[(&str, String, Option<String>)]) -> String {
        let fs: Vec<_> = entries
            .iter()
            .map(|(b, _, _)| serde_json::json!({ "blobSum": b }))
            .collect();
        let h: Vec<_> = entries
            .iter()
            .map(|(_, id, parent)| {
                let mut v = serde_json::json!({ "id": id, "created": "2020-01-01T00:00:00Z" });
                if let Some(p) = parent {
                    v["parent"] = serde_json::json!(p);
                }
                serde_json::json!({ "v1Compatibility": v.to_string() })
            })
            .collect();
        serde_json::json!({"schemaVersion": 1, "fsLayers": fs, "history": h}).to_string()
    }

    const B: &str = "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4";

    #[test]
    fn validation_rules() {
        type Case = (
            &'static str,
            Vec<(&'static str, String, Option<String>)>,
            Result<usize, &'static str>,
        );
        let cases: Vec<Case> = vec![
            (
                "chain",
                vec![(B, id(2), Some(id(1))), (B, id(1), None)],
                Ok(2),
            ),
            (
                "duplicated top dropped",
                vec![
                    (B, id(2), Some(id(1))),
                    (B, id(2), Some(id(1))),
                    (B, id(1), None),
                ],
                Ok(2),
            ),
            ("bad id", vec![(B, "abc".into(), None)], Err("BadId")),
            (
                "uppercase id",
                vec![(B, id(1).to_uppercase().replace('0', "A"), None)],
                Err("BadId"),
            ),
            (
                "base with parent",
                vec![(B, id(1), Some(id(9)))],
                Err("BaseHasParent"),
            ),
            (
                "broken chain",
                vec![(B, id(2), Some(id(3))), (B, id(1), None)],
                Err("BrokenChain"),
            ),
            (
                "non-consecutive repeat",
                vec![
                    (B, id(1), Some(id(2))),
                    (B, id(2), Some(id(1))),
                    (B, id(1), None),
                ],
                Err("DuplicateId"),
            ),
            (
                "tarsum",
                vec![("tarsum.v1+sha256:abc", id(1), None)],
                Err("NotSha256"),
            ),
        ];
        for (name, entries, want) in cases {
            let got = parse(manifest(&entries).as_bytes());
            match (got, want) {
                (Ok(m), Ok(n)) => assert_eq!(m.entries.len(), n, "{name}"),
                (Err(e), Err(w)) => assert!(format!("{e:?}").starts_with(w), "{name}: {e:?}"),
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
        assert_eq!(
            parse(br#"{"schemaVersion":1,"fsLayers":[],"history":[]}"#).unwrap_err(),
            Schema1Error::Empty
        );
        assert!(matches!(
            parse(br#"{"schemaVersion":1,"fsLayers":[{"blobSum":"x"}],"history":[]}"#),
            Err(Schema1Error::Lengths(1, 0))
        ));
        assert!(matches!(
            parse(br#"{"schemaVersion":2}"#),
            Err(Schema1Error::Parse(_))
        ));
    }

    fn protected(len: usize, tail: &[u8]) -> String {
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        e.encode(format!(
            r#"{{"formatLength":{len},"formatTail":"{}","time":"2024-01-01T00:00:00Z"}}"#,
            e.encode(tail)
        ))
    }

    #[test]
    fn signed_digests() {
        // A libtrust-shaped body: the payload is the body up to formatLength
        // plus the tail; the signatures block in between is not hashed.
        let payload_text = "{\n   \"schemaVersion\": 1,\n   \"name\": \"x\"\n}";
        let cut = payload_text.len() - 2;
        let tail = &payload_text[cut..];
        let p = protected(cut, tail.as_bytes());
        let body = format!(
            "{},\n   \"signatures\": [{{\"protected\": \"{p}\", \"signature\": \"x\"}}, {{\"protected\": \"{p}\", \"signature\": \"y\"}}]{tail}",
            &payload_text[..cut]
        );
        assert_eq!(
            digest(body.as_bytes()).unwrap(),
            sha256_digest(payload_text.as_bytes())
        );
        // Re-signing (another time, another signature) keeps the digest.
        let body2 = body.replace("\"x\"}", "\"z\"}");
        assert_eq!(
            digest(body2.as_bytes()).unwrap(),
            digest(body.as_bytes()).unwrap()
        );
        // Unsigned: the body itself.
        assert_eq!(
            digest(payload_text.as_bytes()).unwrap(),
            sha256_digest(payload_text.as_bytes())
        );
        // Disagreeing signatures and lengths past the end are refused.
        let q = protected(cut - 1, tail.as_bytes());
        let bad = body.replacen(&p, &q, 1);
        assert!(matches!(
            digest(bad.as_bytes()),
            Err(Schema1Error::Signature(_))
        ));
        let far = body.replace(&p, &protected(10_000, b"}"));
        assert!(matches!(
            digest(far.as_bytes()),
            Err(Schema1Error::Signature(_))
        ));
    }
}
