//! The distribution spec grammar for repository names, tags and digests.
//! Validating here means nothing odd (`..`, `%2F`, upper case) ever reaches a
//! backend path.

/// Longest repository name the spec allows (including any key prefix).
pub const MAX_NAME_LEN: usize = 255;

/// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`
pub fn is_valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or any number of "-".
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Components joined by single slashes.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && name.split('/').all(is_valid_component)
}

/// `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`
pub fn is_valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    let first = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    let rest = |x: u8| first(x) || x == b'.' || x == b'-';
    !b.is_empty() && b.len() <= 128 && first(b[0]) && b[1..].iter().all(|&x| rest(x))
}

/// `algorithm:encoded`; sha256/sha512 must be lowercase hex of the right length.
pub fn is_valid_digest(d: &str) -> bool {
    let Some((alg, enc)) = d.split_once(':') else {
        return false;
    };
    let alg_ok = !alg.is_empty()
        && alg.split(['+', '.', '_', '-']).all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|x| x.is_ascii_lowercase() || x.is_ascii_digit())
        });
    let hex =
        |n: usize| enc.len() == n && enc.bytes().all(|x| matches!(x, b'0'..=b'9' | b'a'..=b'f'));
    let enc_ok = match alg {
        "sha256" => hex(64),
        "sha512" => hex(128),
        _ => {
            !enc.is_empty()
                && enc
                    .bytes()
                    .all(|x| x.is_ascii_alphanumeric() || matches!(x, b'=' | b'_' | b'-'))
        }
    };
    alg_ok && enc_ok
}

/// A manifest reference is a tag or a digest.
pub fn is_valid_reference(r: &str) -> bool {
    if r.contains(':') {
        is_valid_digest(r)
    } else {
        is_valid_tag(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let cases = [
            ("library/ubuntu", true),
            ("a", true),
            ("a0.b_c__d---e", true),
            ("team-a/sub/app", true),
            ("", false),
            ("A", false),
            ("a//b", false),
            ("/a", false),
            ("a/", false),
            ("..", false),
            ("a/../b", false),
            ("a/./b", false),
            ("a%2Fb", false),
            ("a___b", false),
            ("a._b", false),
            ("-a", false),
            ("a-", false),
            ("a b", false),
        ];
        for (n, want) in cases {
            assert_eq!(is_valid_name(n), want, "{n:?}");
        }
        assert!(!is_valid_name(&"a".repeat(256)));
    }

    #[test]
    fn tags_and_digests() {
        let sha = format!("sha256:{}", "a".repeat(64));
        let cases = [
            ("latest", true),
            ("v1.2.3-rc_1", true),
            ("_x", true),
            (".x", false),
            ("-x", false),
            ("", false),
            ("a/b", false),
            (sha.as_str(), true),
            ("sha256:abc", false),
            ("sha256:", false),
            (":abc", false),
            ("sha256+b64:abc=", true),
        ];
        for (r, want) in cases {
            assert_eq!(is_valid_reference(r), want, "{r:?}");
        }
        assert!(is_valid_tag(&"a".repeat(128)));
        assert!(!is_valid_tag(&"a".repeat(129)));
        assert!(!is_valid_digest(&format!("sha256:{}", "A".repeat(64))));
    }
}
