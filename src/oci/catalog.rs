//! `_catalog` paging over names merged from several repositories.

use crate::rewrite::query;

/// `n` and `last` from a catalog query. `n` is capped like distribution's.
pub fn params(query: Option<&str>) -> (Option<usize>, Option<String>) {
    let mut n = None;
    let mut last = None;
    for (k, v) in query::parse(query.unwrap_or("")) {
        match k.as_str() {
            "n" => n = v.parse::<usize>().ok().map(|n| n.min(1000)),
            "last" => last = Some(v),
            _ => {}
        }
    }
    (n, last)
}

/// One page of sorted, de-duplicated names after `last`, and the `Link`
/// header for the next page when more remain.
pub fn page(
    mut names: Vec<String>,
    n: Option<usize>,
    last: Option<&str>,
) -> (Vec<String>, Option<String>) {
    names.sort();
    names.dedup();
    let start = match last {
        Some(l) => names.partition_point(|x| x.as_str() <= l),
        None => 0,
    };
    let rest = &names[start..];
    let take = n.unwrap_or(rest.len()).min(rest.len());
    let page = rest[..take].to_vec();
    let link = match (n, page.last()) {
        (Some(n), Some(last)) if take < rest.len() => Some(format!(
            "</v2/_catalog?last={}&n={n}>; rel=\"next\"",
            query::encode(last)
        )),
        _ => None,
    };
    (page, link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_every_name_once() {
        let names: Vec<String> = ["k/e", "k/a", "j/c", "k/b", "k/d", "k/a"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut seen = Vec::new();
        let mut last: Option<String> = None;
        loop {
            let (page, link) = page(names.clone(), Some(2), last.as_deref());
            seen.extend(page.clone());
            match link {
                Some(l) => {
                    assert!(l.starts_with("</v2/_catalog?last="), "{l}");
                    last = page.last().cloned();
                }
                None => break,
            }
        }
        assert_eq!(seen, vec!["j/c", "k/a", "k/b", "k/d", "k/e"]);
        assert_eq!(
            params(Some("n=2&last=k%2Fb")),
            (Some(2), Some("k/b".into()))
        );
        assert_eq!(params(Some("n=99999")).0, Some(1000));
        let (p, l) = page(vec!["a".into()], Some(0), None);
        assert!(p.is_empty() && l.is_none());
    }
}
