//! Query strings, decoded once with a real form decoder. Whatever dockgate
//! forwards is rebuilt from the decoded values, never the raw string, so
//! dockgate and a backend can never read one query two ways (`%66rom=`,
//! `;` separators, stray escapes).

/// Decoded `(key, value)` pairs, in order (`+` is a space, as in forms).
pub type Pairs = Vec<(String, String)>;

pub fn parse(query: &str) -> Pairs {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// The canonical encoding of `pairs`.
pub fn build(pairs: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// Every value of `key`.
pub fn values<'a>(pairs: &'a [(String, String)], key: &'a str) -> impl Iterator<Item = &'a str> {
    pairs
        .iter()
        .filter(move |(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// The first value of `key`.
pub fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Percent-encodes one path or query component (RFC 3986 unreserved kept).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Pairs {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn decodes_once_and_rebuilds() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("a=1&b&c=x%2Fy", &[("a", "1"), ("b", ""), ("c", "x/y")]),
            // an encoded key is the key it encodes
            ("%66rom=secret%2Fimg", &[("from", "secret/img")]),
            ("x=a+b", &[("x", "a b")]),
            // `;` is no separator: it stays inside the value
            ("mount=d;from=x", &[("mount", "d;from=x")]),
            ("&&=v&k=", &[("k", "")]),
            ("bad=%zz", &[("bad", "%zz")]),
        ];
        for (q, want) in cases {
            assert_eq!(parse(q), p(want), "{q}");
        }
        let rebuilt = build(&parse("mount=d;from=x&scope=repository:a/b:pull"));
        assert_eq!(
            rebuilt,
            "mount=d%3Bfrom%3Dx&scope=repository%3Aa%2Fb%3Apull"
        );
        assert_eq!(
            parse(&rebuilt),
            parse("mount=d;from=x&scope=repository:a/b:pull")
        );
        let ps = parse("from=a&from=b&n=2");
        assert_eq!(values(&ps, "from").collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(first(&ps, "n"), Some("2"));
        assert_eq!(
            encode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }
}
