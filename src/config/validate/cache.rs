//! `[cache]` and the repositories' `cache = true`.

use super::super::file::{CacheFile, RepositoryFile, SizeFile};
use super::super::{CacheSettings, ConfigError};
use super::Ctx;
use std::collections::BTreeMap;

/// Without `max_size`, the cache may take this much disk.
pub const DEFAULT_MAX_SIZE: u64 = 10 << 30;

pub(super) fn settings(
    cx: &Ctx,
    c: Option<&CacheFile>,
    repos: &BTreeMap<String, RepositoryFile>,
) -> Result<Option<CacheSettings>, ConfigError> {
    let Some(c) = c else {
        if let Some((k, _)) = repos.iter().find(|(_, r)| r.cache) {
            return Err(cx.err(
                format!("repositories.{k}.cache"),
                "needs a [cache] section with a dir",
            ));
        }
        return Ok(None);
    };
    if c.dir.trim().is_empty() {
        return Err(cx.err("cache.dir", "must not be empty"));
    }
    let max_size = match &c.max_size {
        None => DEFAULT_MAX_SIZE,
        Some(SizeFile::Bytes(n)) => *n,
        Some(SizeFile::Text(t)) => parse_size(t).ok_or_else(|| {
            cx.err(
                "cache.max_size",
                format!("{t:?}: expected bytes or a size such as \"512MiB\" or \"10GiB\""),
            )
        })?,
    };
    if max_size < 1 << 20 {
        return Err(cx.err("cache.max_size", "must be at least 1MiB"));
    }
    Ok(Some(CacheSettings {
        dir: cx.path(&c.dir),
        max_size,
    }))
}

/// "10GiB", "512 MiB", "1TB", "4096": binary (KiB…TiB) and decimal (KB…TB) units.
pub fn parse_size(t: &str) -> Option<u64> {
    let t = t.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        let cases = [
            ("4096", Some(4096)),
            ("512MiB", Some(512 << 20)),
            ("512 MiB", Some(512 << 20)),
            ("10GiB", Some(10 << 30)),
            ("10g", Some(10 << 30)),
            ("1TB", Some(1_000_000_000_000)),
            ("2kb", Some(2000)),
            ("", None),
            ("MiB", None),
            ("1.5GiB", None),
            ("10 parsecs", None),
            ("99999999999999TiB", None),
        ];
        for (t, want) in cases {
            assert_eq!(parse_size(t), want, "{t}");
        }
    }
}
