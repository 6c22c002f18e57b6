//! Immutable tags: `immutable_tags = ["v*", "release-*"]`. A manifest PUT
//! to an existing matching tag must carry the digest the tag already has
//! (an idempotent re-push); a DELETE of a matching tag is refused.

/// Why a pattern can match no tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("an empty pattern matches no tag")]
    Empty,
    #[error("{0:?} can match no tag: tags hold only letters, digits, '_', '.' and '-', not {1:?}")]
    Char(String, char),
    #[error("{0:?} can match no tag: tags start with a letter, digit or '_'")]
    Start(String),
    #[error("{0:?} can match no tag: tags are at most 128 characters")]
    Length(String),
}

/// One tag pattern: `*` any run of characters, `?` one character,
/// everything else literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPattern(String);

/// Characters a tag may hold (`[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`).
fn tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

impl TagPattern {
    /// Refuses patterns no tag can match.
    pub fn parse(p: &str) -> Result<Self, PatternError> {
        if p.is_empty() {
            return Err(PatternError::Empty);
        }
        if let Some(c) = p.chars().find(|&c| !tag_char(c) && c != '*' && c != '?') {
            return Err(PatternError::Char(p.to_string(), c));
        }
        if p.starts_with(['.', '-']) {
            return Err(PatternError::Start(p.to_string()));
        }
        let fixed = p.chars().filter(|&c| c != '*').count();
        if fixed > 128 {
            return Err(PatternError::Length(p.to_string()));
        }
        Ok(Self(p.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, tag: &str) -> bool {
        glob(self.0.as_bytes(), tag.as_bytes())
    }
}

/// Iterative wildcard match with backtracking to the last `*`.
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// The first pattern `tag` matches, if any.
pub fn protecting<'a>(patterns: &'a [TagPattern], tag: &str) -> Option<&'a TagPattern> {
    patterns.iter().find(|p| p.matches(tag))
}

/// The digest a registry gives a manifest: sha256 of its exact bytes.
pub fn digest_of(body: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, body);
    let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        let cases = [
            ("v*", "v1.0", true),
            ("v*", "v", true),
            ("v*", "latest", false),
            ("release-*", "release-2024.1", true),
            ("release-*", "pre-release-1", false),
            ("*-stable", "1.2-stable", true),
            ("v?.?", "v1.0", true),
            ("v?.?", "v1.10", false),
            ("*", "anything", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("latest", "latest", true),
            ("latest", "Latest", false),
        ];
        for (p, tag, want) in cases {
            assert_eq!(
                TagPattern::parse(p).unwrap().matches(tag),
                want,
                "{p} {tag}"
            );
        }
    }

    #[test]
    fn patterns_that_cannot_match_are_refused() {
        for bad in [
            "",
            "v1/2",
            "re lease",
            "-x*",
            ".v",
            "sha256:*",
            &"a".repeat(129),
        ] {
            assert!(TagPattern::parse(bad).is_err(), "{bad}");
        }
        assert!(TagPattern::parse(&format!("{}*", "a".repeat(128))).is_ok());
    }

    #[test]
    fn digests() {
        assert_eq!(
            digest_of(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
