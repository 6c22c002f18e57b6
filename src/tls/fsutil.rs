//! Small file helpers: reads with errors that name the file, and atomic
//! writes created with their final mode.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::tls::{Result, TlsError};

/// Mode for private keys: owner read/write only.
pub const KEY_MODE: u32 = 0o600;
/// Mode for certificates: public material.
pub const CERT_MODE: u32 = 0o644;

/// Read a whole file; `what` names it in the error ("certificate", "key").
pub fn read(path: &Path, what: &'static str) -> Result<Vec<u8>> {
    fs::read(path).map_err(|source| io_error(path, what, "read", source))
}

pub fn io_error(path: &Path, what: &'static str, action: &'static str, e: io::Error) -> TlsError {
    if e.kind() == io::ErrorKind::NotFound {
        TlsError::NotFound {
            path: path.to_path_buf(),
            what,
        }
    } else {
        TlsError::Io {
            path: path.to_path_buf(),
            action,
            source: e,
        }
    }
}

/// Whether `path` exists; an error (e.g. permission denied on the
/// directory) is reported rather than taken as "absent", so an existing
/// CA is never mistaken for a missing one.
pub fn exists(path: &Path) -> Result<bool> {
    path.try_exists().map_err(|source| TlsError::Io {
        path: path.to_path_buf(),
        action: "check",
        source,
    })
}

/// Write `bytes` to `path` atomically: a temp file in the same directory,
/// created with `mode` (never chmod-ed later, so a key is never readable
/// by others even for a moment), synced, then renamed over `path`. A
/// server reloading the file sees the old or the new content, never half.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let tmp = temp_path(path);
    let result = write_new(&tmp, bytes, mode).and_then(|()| fs::rename(&tmp, path));
    if let Err(source) = result {
        // Best effort: don't leave a stray temp file (it may hold a key).
        let _ = fs::remove_file(&tmp);
        return Err(TlsError::Io {
            path: path.to_path_buf(),
            action: "write",
            source,
        });
    }
    // Make the rename durable; failure here doesn't undo the write.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

fn write_new(tmp: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Dot-prefixed so globs like certs.d/*.crt never pick it up.
    path.with_file_name(format!(".{name}.tmp.{}.{n}", std::process::id()))
}

/// What identifies a file version for hot reload: mtime, size and inode
/// (a rename-in-place can keep size and, on coarse clocks, mtime).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    modified: Option<std::time::SystemTime>,
    len: u64,
    ino: u64,
}

/// `None` when the file can't be stat-ed (missing, mid-rename).
pub fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(path).ok()?;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
        ino: m.ino(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn write_atomic_sets_mode_and_leaves_no_temp() {
        let dir = crate::tls::testutil::TempDir::new("fsutil");
        for (name, mode) in [("k.key", KEY_MODE), ("c.crt", CERT_MODE)] {
            let p = dir.path().join(name);
            write_atomic(&p, b"one", mode).unwrap();
            write_atomic(&p, b"two", mode).unwrap();
            assert_eq!(fs::read(&p).unwrap(), b"two");
            let got = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            // umask can only remove bits; a key must never gain any.
            assert_eq!(got & !mode, 0, "{name}: mode {got:o}");
            if mode == KEY_MODE {
                assert_eq!(got, 0o600, "{name}");
            }
        }
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp.")), "{names:?}");
    }

    #[test]
    fn read_names_the_file() {
        let dir = crate::tls::testutil::TempDir::new("fsutil-read");
        let p = dir.path().join("absent.pem");
        let e = read(&p, "certificate").unwrap_err();
        assert!(matches!(e, TlsError::NotFound { .. }));
        assert!(e.to_string().contains("absent.pem"), "{e}");
    }
}
