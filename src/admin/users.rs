//! `dockgate user add`, `list`, `delete` and `revoke-keys`: editing the
//! htpasswd file and the API-key generations. The password is never echoed
//! or logged. Edits keep comments, other users and the file's owner and mode.

use crate::oci::names::is_valid_component;
use crate::policy::auth::secret_file::{may_replace, write_private, SecretFileError};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{0:?}: user names are letters, digits and . _ - @")]
    BadName(String),
    #[error("empty password")]
    EmptyPassword,
    #[error("cannot hash the password: {0}")]
    Hash(#[from] bcrypt::BcryptError),
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Owner or write problems of the htpasswd file.
    #[error(transparent)]
    File(#[from] SecretFileError),
}

/// Adds or replaces `name` in the htpasswd file with a bcrypt hash.
pub fn add(htpasswd: &Path, name: &str, password: &str) -> Result<bool, UserError> {
    if name.is_empty()
        || name.contains([':', '\n', ' '])
        || !(is_valid_component(name)
            || name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c)))
    {
        return Err(UserError::BadName(name.to_string()));
    }
    if password.is_empty() {
        return Err(UserError::EmptyPassword);
    }
    let hash = bcrypt::hash(password, bcrypt::DEFAULT_COST)?;
    let text = read(htpasswd)?;
    let mut replaced = false;
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| {
            if l.split_once(':').is_some_and(|(u, _)| u == name) {
                replaced = true;
                format!("{name}:{hash}")
            } else {
                l.to_string()
            }
        })
        .collect();
    if !replaced {
        lines.push(format!("{name}:{hash}"));
    }
    let mut out = lines.join("\n");
    out.push('\n');
    write_private(htpasswd, out.as_bytes())?;
    Ok(replaced)
}

/// The htpasswd text; a missing file has no users yet.
fn read(htpasswd: &Path) -> Result<String, UserError> {
    may_replace(htpasswd)?;
    match std::fs::read_to_string(htpasswd) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(UserError::Read {
            path: htpasswd.to_path_buf(),
            source,
        }),
    }
}

fn user_of(line: &str) -> Option<&str> {
    let line = line.trim();
    if line.starts_with('#') {
        return None;
    }
    line.split_once(':').map(|(u, _)| u)
}

/// User names in file order.
pub fn list(htpasswd: &Path) -> Result<Vec<String>, UserError> {
    Ok(read(htpasswd)?
        .lines()
        .filter_map(user_of)
        .map(str::to_string)
        .collect())
}

/// Removes `name`; false when there was no such user (the file is untouched).
pub fn delete(htpasswd: &Path, name: &str) -> Result<bool, UserError> {
    let text = read(htpasswd)?;
    let kept: Vec<&str> = text.lines().filter(|l| user_of(l) != Some(name)).collect();
    if kept.len() == text.lines().count() {
        return Ok(false);
    }
    let mut out = kept.join("\n");
    out.push('\n');
    write_private(htpasswd, out.as_bytes())?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn add_and_replace() {
        let dir = std::env::temp_dir().join(format!("dockgate-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("htpasswd");
        std::fs::write(&f, "# keep me\nbob:$2y$05$abc\n").unwrap();
        assert!(!super::add(&f, "alice", "pw1").unwrap());
        assert!(super::add(&f, "alice", "pw2").unwrap());
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(text.contains("# keep me") && text.contains("bob:"));
        assert_eq!(text.matches("alice:").count(), 1);
        let hash = text
            .lines()
            .find(|l| l.starts_with("alice:"))
            .unwrap()
            .split_once(':')
            .unwrap()
            .1
            .to_string();
        assert!(bcrypt::verify("pw2", &hash).unwrap());
        assert!(super::add(&f, "a:b", "x").is_err());
        assert_eq!(super::list(&f).unwrap(), ["bob", "alice"]);
        assert!(super::delete(&f, "alice").unwrap());
        assert!(!super::delete(&f, "alice").unwrap());
        assert_eq!(super::list(&f).unwrap(), ["bob"]);
        assert!(std::fs::read_to_string(&f).unwrap().contains("# keep me"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
