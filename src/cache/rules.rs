//! What the cache may answer, as pure functions of plain values: which
//! digests it keeps, which `Range` it honours, and which cached manifest a
//! request's `Accept` allows.

/// A digest the cache can verify: `sha256:<64 hex>` or `sha512:<128 hex>`,
/// lowercase (it becomes a file name, so nothing else gets through).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digest {
    pub algorithm: Algorithm,
    pub hex: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    pub fn ring(self) -> &'static ring::digest::Algorithm {
        match self {
            Algorithm::Sha256 => &ring::digest::SHA256,
            Algorithm::Sha512 => &ring::digest::SHA512,
        }
    }
}

impl Digest {
    pub fn parse(s: &str) -> Option<Self> {
        let (alg, hex) = s.split_once(':')?;
        let (algorithm, len) = match alg {
            "sha256" => (Algorithm::Sha256, 64),
            "sha512" => (Algorithm::Sha512, 128),
            _ => return None,
        };
        let ok = hex.len() == len && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        ok.then(|| Self {
            algorithm,
            hex: hex.to_string(),
        })
    }

    pub fn matches(&self, computed: &[u8]) -> bool {
        hex(computed) == self.hex
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The part of an object to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// No (usable) Range: all of it, 200.
    Whole,
    /// 206 with `Content-Range: bytes start-end/size` (end inclusive).
    Part { start: u64, end: u64 },
    /// 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

/// One `bytes=` range of RFC 9110; anything else (several ranges, other
/// units, bad syntax) is ignored and the whole object is sent, as the RFC
/// allows.
pub fn span(range: Option<&str>, size: u64) -> Span {
    let Some(spec) = range.and_then(|r| r.trim().strip_prefix("bytes=")) else {
        return Span::Whole;
    };
    if spec.contains(',') {
        return Span::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Span::Whole;
    };
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (a.trim(), b.trim()) {
        ("", suffix) => match num(suffix) {
            None => Span::Whole,
            Some(0) => Span::Unsatisfiable,
            Some(_) if size == 0 => Span::Unsatisfiable,
            Some(n) => Span::Part {
                start: size.saturating_sub(n),
                end: size - 1,
            },
        },
        (first, last) => {
            let Some(start) = num(first) else {
                return Span::Whole;
            };
            let end = match last {
                "" => u64::MAX,
                l => match num(l) {
                    Some(e) if e >= start => e,
                    _ => return Span::Whole,
                },
            };
            if start >= size {
                Span::Unsatisfiable
            } else {
                Span::Part {
                    start,
                    end: end.min(size - 1),
                }
            }
        }
    }
}

/// Whether a request with this `Accept` would be answered the cached
/// manifest by distribution: OCI manifests and indexes only when asked for
/// by name (else 404 MANIFEST_UNKNOWN); by digest, Docker types are sent
/// as stored whatever the Accept (conversion is for tags only).
pub fn manifest_acceptable(accept: &[&str], content_type: &str) -> bool {
    if !content_type.starts_with("application/vnd.oci.") {
        return true;
    }
    accept
        .iter()
        .flat_map(|v| v.split(','))
        .map(|m| m.split(';').next().unwrap_or("").trim())
        .any(|m| m.eq_ignore_ascii_case(content_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests() {
        let h64 = "a".repeat(64);
        let cases = [
            (format!("sha256:{h64}"), true),
            (format!("sha512:{}", "0".repeat(128)), true),
            (format!("sha256:{}", "A".repeat(64)), false),
            (format!("sha256:{}", "a".repeat(63)), false),
            (format!("sha384:{}", "a".repeat(96)), false),
            (format!("sha256:../{}", "a".repeat(61)), false),
            ("latest".to_string(), false),
            (format!("sha512:{h64}"), false),
        ];
        for (s, ok) in cases {
            assert_eq!(Digest::parse(&s).is_some(), ok, "{s}");
        }
        let d = Digest::parse(&format!("sha256:{h64}")).unwrap();
        assert_eq!(d.to_string(), format!("sha256:{h64}"));
        let empty = ring::digest::digest(&ring::digest::SHA256, b"");
        let e = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert!(Digest::parse(e).unwrap().matches(empty.as_ref()));
        assert!(!d.matches(empty.as_ref()));
    }

    #[test]
    fn ranges() {
        use Span::*;
        let p = |start, end| Part { start, end };
        let cases = [
            (None, 100, Whole),
            (Some("bytes=0-9"), 100, p(0, 9)),
            (Some("bytes=10-"), 100, p(10, 99)),
            (Some("bytes=90-200"), 100, p(90, 99)),
            (Some("bytes=-10"), 100, p(90, 99)),
            (Some("bytes=-200"), 100, p(0, 99)),
            (Some("bytes=100-"), 100, Unsatisfiable),
            (Some("bytes=-0"), 100, Unsatisfiable),
            (Some("bytes=0-"), 0, Unsatisfiable),
            (Some("bytes=9-3"), 100, Whole),
            (Some("bytes=0-1,5-6"), 100, Whole),
            (Some("items=0-1"), 100, Whole),
            (Some("bytes=a-b"), 100, Whole),
            (Some("bytes=+1-2"), 100, Whole),
            (Some("bytes=-"), 100, Whole),
        ];
        for (r, size, want) in cases {
            assert_eq!(span(r, size), want, "{r:?} of {size}");
        }
    }

    #[test]
    fn accept() {
        const OCI: &str = "application/vnd.oci.image.manifest.v1+json";
        const S2: &str = "application/vnd.docker.distribution.manifest.v2+json";
        let cases: &[(&[&str], &str, bool)] = &[
            (&[], S2, true),
            (&[], OCI, false),
            (&["*/*"], OCI, false),
            (&[OCI], OCI, true),
            (&[S2, "application/vnd.oci.image.manifest.v1+json; q=0.5"], OCI, true),
            (&["application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"], OCI, true),
            (&["application/vnd.oci.image.index.v1+json"], OCI, false),
        ];
        for (accept, ct, want) in cases {
            assert_eq!(manifest_acceptable(accept, ct), *want, "{accept:?} {ct}");
        }
    }
}
