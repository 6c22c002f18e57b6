//! The cache's files. Blocking calls only: callers run them in
//! `spawn_blocking` (or at start, before serving).
//!
//! ```text
//! <dir>/objects/<alg>/<hex>        the verified bytes
//! <dir>/objects/<alg>/<hex>.meta   {"size":…, "content_type":…}
//! <dir>/tmp/                       fills in progress (emptied at start)
//! ```
//! An object is complete once both files exist: the meta is written first
//! and the data renamed in last. The files' mtimes are the LRU order that
//! survives a restart.

use super::rules::Digest;
use super::CacheError;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Serialize, Deserialize)]
pub struct Meta {
    pub size: u64,
    pub content_type: String,
}

/// An object found on disk at start.
#[derive(Debug)]
pub struct Found {
    pub digest: String,
    pub meta: Meta,
    pub mtime: u64,
}

fn io(path: &Path, e: std::io::Error) -> CacheError {
    CacheError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

pub fn data_path(dir: &Path, d: &Digest) -> PathBuf {
    dir.join("objects").join(d.algorithm.as_str()).join(&d.hex)
}

fn meta_path(dir: &Path, d: &Digest) -> PathBuf {
    data_path(dir, d).with_extension("meta")
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Makes the directories, drops unfinished fills and orphans, and lists
/// the complete objects, oldest first.
pub fn prepare(dir: &Path) -> Result<Vec<Found>, CacheError> {
    let tmp = dir.join("tmp");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    }
    fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
    let mut found = Vec::new();
    for alg in ["sha256", "sha512"] {
        let sub = dir.join("objects").join(alg);
        fs::create_dir_all(&sub).map_err(|e| io(&sub, e))?;
        for ent in fs::read_dir(&sub).map_err(|e| io(&sub, e))? {
            let ent = ent.map_err(|e| io(&sub, e))?;
            let name = ent.file_name().to_string_lossy().to_string();
            let path = ent.path();
            let hex = name.strip_suffix(".meta").unwrap_or(&name);
            let Some(d) = Digest::parse(&format!("{alg}:{hex}")) else {
                // Not ours: leave it alone.
                continue;
            };
            if name.ends_with(".meta") {
                if !data_path(dir, &d).exists() {
                    let _ = fs::remove_file(&path);
                }
                continue;
            }
            match read_meta(dir, &d) {
                Some(meta) if ent.metadata().is_ok_and(|m| m.len() == meta.size) => {
                    let mtime = ent
                        .metadata()
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map_or(0, |t| t.as_secs());
                    found.push(Found {
                        digest: d.to_string(),
                        meta,
                        mtime,
                    });
                }
                _ => {
                    // Half-written or truncated: never served.
                    let _ = fs::remove_file(&path);
                    let _ = fs::remove_file(meta_path(dir, &d));
                }
            }
        }
    }
    found.sort_by_key(|f| f.mtime);
    Ok(found)
}

fn read_meta(dir: &Path, d: &Digest) -> Option<Meta> {
    let text = fs::read(meta_path(dir, d)).ok()?;
    serde_json::from_slice(&text).ok()
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// A new file for a fill, open for writing and reading.
pub fn create_tmp(dir: &Path, d: &Digest) -> Result<(PathBuf, File), CacheError> {
    let n = TMP_SEQ.fetch_add(1, Ordering::Relaxed);
    let path = dir
        .join("tmp")
        .join(format!("{}-{}-{n}", d.hex, std::process::id()));
    let f = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| io(&path, e))?;
    Ok((path, f))
}

/// Makes a verified fill an object: data synced, meta written, data renamed in.
pub fn persist(
    dir: &Path,
    d: &Digest,
    tmp: &Path,
    f: &File,
    meta: &Meta,
) -> Result<(), CacheError> {
    f.sync_data().map_err(|e| io(tmp, e))?;
    let mp = meta_path(dir, d);
    let mtmp = tmp.with_extension("meta");
    let body = serde_json::to_vec(meta).map_err(|e| io(&mp, std::io::Error::other(e)))?;
    let mut mf = File::create(&mtmp).map_err(|e| io(&mtmp, e))?;
    mf.write_all(&body).map_err(|e| io(&mtmp, e))?;
    mf.sync_data().map_err(|e| io(&mtmp, e))?;
    fs::rename(&mtmp, &mp).map_err(|e| io(&mp, e))?;
    let dp = data_path(dir, d);
    fs::rename(tmp, &dp).map_err(|e| io(&dp, e))
}

/// Deletes an object; readers that have it open keep reading it.
pub fn remove(dir: &Path, digest: &str) {
    if let Some(d) = Digest::parse(digest) {
        let _ = fs::remove_file(data_path(dir, &d));
        let _ = fs::remove_file(meta_path(dir, &d));
    }
}

pub fn remove_tmp(tmp: &Path) {
    let _ = fs::remove_file(tmp);
}

/// Records a hit in the file's mtime (the LRU order after a restart).
pub fn touch(dir: &Path, d: &Digest) {
    if let Ok(f) = File::options().write(true).open(data_path(dir, d)) {
        let _ = f.set_modified(SystemTime::now());
    }
}

pub fn open(dir: &Path, d: &Digest) -> Result<File, CacheError> {
    let p = data_path(dir, d);
    File::open(&p).map_err(|e| io(&p, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persist_then_prepare_finds_only_complete_objects() {
        let dir = std::env::temp_dir().join(format!("dg-cache-disk-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        assert!(prepare(&dir).unwrap().is_empty());
        let d = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        let (tmp, mut f) = create_tmp(&dir, &d).unwrap();
        f.write_all(b"hello").unwrap();
        let meta = Meta {
            size: 5,
            content_type: "application/octet-stream".into(),
        };
        persist(&dir, &d, &tmp, &f, &meta).unwrap();
        // A fill left behind, a truncated object, an orphan meta.
        let (_t2, _f2) = create_tmp(&dir, &d).unwrap();
        let bad = Digest::parse(&format!("sha256:{}", "b".repeat(64))).unwrap();
        fs::write(data_path(&dir, &bad), b"xy").unwrap();
        fs::write(meta_path(&dir, &bad), br#"{"size":9,"content_type":"x"}"#).unwrap();
        let orphan = Digest::parse(&format!("sha256:{}", "c".repeat(64))).unwrap();
        fs::write(
            meta_path(&dir, &orphan),
            br#"{"size":1,"content_type":"x"}"#,
        )
        .unwrap();
        let found = prepare(&dir).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].digest, d.to_string());
        assert_eq!(found[0].meta.size, 5);
        assert!(!data_path(&dir, &bad).exists() && !meta_path(&dir, &orphan).exists());
        assert_eq!(fs::read_dir(dir.join("tmp")).unwrap().count(), 0);
        remove(&dir, &d.to_string());
        assert!(prepare(&dir).unwrap().is_empty());
        let _ = fs::remove_dir_all(&dir);
    }
}
