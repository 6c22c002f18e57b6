//! Replacing the small private files the `user` commands and the service
//! share (htpasswd, API-key secret and generations, token key). Run as
//! root against a service that runs as its own user, a plain rewrite would
//! leave a root-owned 0600 file the service can no longer read, so the
//! replacement keeps the owner, group and mode of the file it replaces.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{}: belongs to user {owner}; run this as {owner} (sudo -u {owner} dockgate …) or as \
         root, so that the file stays readable by the service",
        path.display()
    )]
    OtherOwner { path: PathBuf, owner: String },
}

/// Who should own a file and with which permission bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ownership {
    uid: u32,
    gid: u32,
    mode: u32,
}

/// What the replacement of `path` should look like: the existing file's
/// owner and mode; for a new file created by root, the owner and group of
/// its directory (the service's state or config directory), readable by
/// that group unless it is root's; else the caller's, mode 0600.
fn plan(path: &Path, euid: u32) -> Result<Option<Ownership>, SecretFileError> {
    let io = |source| SecretFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    match fs::metadata(path) {
        Ok(m) => {
            if euid != 0 && m.uid() != euid {
                return Err(SecretFileError::OtherOwner {
                    path: path.to_path_buf(),
                    owner: user_name(m.uid()),
                });
            }
            Ok(Some(Ownership {
                uid: m.uid(),
                gid: m.gid(),
                mode: m.mode() & 0o777,
            }))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if euid != 0 {
                return Ok(None);
            }
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            let d = fs::metadata(dir).map_err(io)?;
            let mode = if d.gid() == 0 { 0o600 } else { 0o640 };
            Ok(Some(Ownership {
                uid: d.uid(),
                gid: d.gid(),
                mode,
            }))
        }
        Err(e) => Err(io(e)),
    }
}

fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(uid.into()) {
        Ok(Some(u)) => u.name,
        _ => format!("uid {uid}"),
    }
}

/// Whether this process may replace `path` without taking it over from
/// the user it belongs to; call before reading it for an edit.
pub fn may_replace(path: &Path) -> Result<(), SecretFileError> {
    plan(path, nix::unistd::geteuid().as_raw()).map(|_| ())
}

/// Writes `data` to `path` atomically (a staged file, synced, renamed over
/// it); never readable by others, even for a moment.
pub fn write_private(path: &Path, data: &[u8]) -> Result<(), SecretFileError> {
    let euid = nix::unistd::geteuid().as_raw();
    let owner = plan(path, euid)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp.{}", std::process::id()));
    let res = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        if let Some(o) = owner {
            if euid == 0 {
                std::os::unix::fs::fchown(&f, Some(o.uid), Some(o.gid))?;
            }
            // Exact bits: the umask must not change what the file had.
            f.set_permissions(fs::Permissions::from_mode(o.mode))?;
        }
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(source) = res {
        let _ = fs::remove_file(&tmp);
        return Err(SecretFileError::Io {
            path: path.to_path_buf(),
            source,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("dockgate-secret-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn keeps_mode_of_the_file_it_replaces() {
        let d = temp("mode");
        let f = d.join("htpasswd");
        fs::write(&f, "old").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
        write_private(&f, b"new").unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"new");
        assert_eq!(fs::metadata(&f).unwrap().mode() & 0o777, 0o640);
        let fresh = d.join("fresh");
        write_private(&fresh, b"x").unwrap();
        let m = fs::metadata(&fresh).unwrap().mode() & 0o777;
        assert_eq!(m & 0o007, 0, "never world-readable: {m:o}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn plans_by_owner_table() {
        let d = temp("plan");
        let f = d.join("file");
        fs::write(&f, "x").unwrap();
        let me = fs::metadata(&f).unwrap().uid();
        // Root keeps the existing owner; the owner itself may write.
        assert_eq!(plan(&f, 0).unwrap().unwrap().uid, me);
        assert!(plan(&f, me).is_ok());
        // Anyone else is told whose file it is.
        let other = if me == 0 { 4242 } else { me + 1 };
        match plan(&f, other) {
            Err(SecretFileError::OtherOwner { owner, .. }) => assert!(!owner.is_empty()),
            r => panic!("{r:?}"),
        }
        // A new file, by root: the directory's owner.
        let dir_uid = fs::metadata(&d).unwrap().uid();
        assert_eq!(plan(&d.join("new"), 0).unwrap().unwrap().uid, dir_uid);
        assert_eq!(plan(&d.join("new"), other).unwrap(), None);
        fs::remove_dir_all(&d).unwrap();
    }
}
