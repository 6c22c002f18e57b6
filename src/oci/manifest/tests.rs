use super::*;

const S1: &str = r#"{"schemaVersion":1,"name":"a","tag":"t","architecture":"amd64","fsLayers":[{"blobSum":"sha256:aa"}],"history":[{"v1Compatibility":"{}"}]}"#;
const S1_SIGNED: &str = r#"{"schemaVersion":1,"name":"a","tag":"t","fsLayers":[],"history":[],"signatures":[{"header":{},"signature":"x","protected":"y"}]}"#;
const S1_NO_VERSION: &str = r#"{"fsLayers":[{"blobSum":"sha256:aa"}]}"#;
const S2: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{},"layers":[]}"#;
const OCI: &str = r#"{"schemaVersion":2,"config":{},"layers":[]}"#;
const LIST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}"#;
const INDEX: &str = r#"{"schemaVersion":2,"manifests":[]}"#;
const ODD: &str = r#"{"schemaVersion":3,"whatever":true}"#;

#[test]
fn table() {
    let cases: &[(Option<&str>, &str, Result<Kind, ()>)] = &[
        (Some(SCHEMA1), S1, Ok(Kind::Schema1)),
        (Some(SCHEMA1_SIGNED), S1_SIGNED, Ok(Kind::Schema1)),
        (
            Some("application/vnd.docker.distribution.manifest.v1+prettyjws; charset=utf-8"),
            S1_SIGNED,
            Ok(Kind::Schema1),
        ),
        (None, S1, Ok(Kind::Schema1)),
        (Some("application/json"), S1, Ok(Kind::Schema1)),
        (
            Some("application/octet-stream"),
            S1_SIGNED,
            Ok(Kind::Schema1),
        ),
        (None, S1_NO_VERSION, Ok(Kind::Schema1)),
        (Some(SCHEMA2), S1, Err(())),
        (Some(OCI_MANIFEST), S1, Err(())),
        (Some(SCHEMA1), S2, Err(())),
        (Some(SCHEMA2), S2, Ok(Kind::Schema2)),
        (Some(OCI_MANIFEST), OCI, Ok(Kind::OciManifest)),
        (Some(MANIFEST_LIST), LIST, Ok(Kind::ManifestList)),
        (Some(OCI_INDEX), INDEX, Ok(Kind::OciIndex)),
        (Some(OCI_INDEX), LIST, Ok(Kind::OciIndex)),
        (Some(SCHEMA2), INDEX, Err(())),
        (None, S2, Ok(Kind::Schema2)),
        (None, OCI, Ok(Kind::OciManifest)),
        (None, LIST, Ok(Kind::ManifestList)),
        (Some("application/json"), INDEX, Ok(Kind::OciIndex)),
        (Some(SCHEMA2), ODD, Ok(Kind::Schema2)),
        (None, ODD, Ok(Kind::Unknown)),
        (None, "not json", Err(())),
        (None, "[1,2]", Err(())),
        (Some(SCHEMA2), "", Err(())),
    ];
    for (ct, body, want) in cases {
        let got = classify(*ct, body.as_bytes()).map_err(|_| ());
        assert_eq!(got, *want, "{ct:?} {body}");
    }
}

/// Whatever bytes arrive, classification returns, never panics. A small
/// deterministic generator mutates real manifests (no extra crate needed).
#[test]
fn never_panics_on_mutated_input() {
    let seeds = [S1, S1_SIGNED, S2, OCI, LIST, INDEX, ODD];
    let cts = [
        None,
        Some(SCHEMA1),
        Some(SCHEMA2),
        Some("application/json"),
        Some(";;;"),
        Some("\u{0}"),
    ];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..20_000 {
        let mut b = seeds[i % seeds.len()].as_bytes().to_vec();
        for _ in 0..(next() % 8) {
            let pos = (next() as usize) % (b.len() + 1);
            match next() % 4 {
                0 if pos < b.len() => b[pos] = next() as u8,
                1 if pos < b.len() => {
                    b.remove(pos);
                }
                2 => b.insert(pos, next() as u8),
                _ => b.truncate(pos),
            }
        }
        let _ = classify(cts[i % cts.len()], &b);
    }
    let deep = "[".repeat(100_000);
    assert!(classify(None, deep.as_bytes()).is_err());
}
