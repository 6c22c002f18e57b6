//! A file parsed into `T` and re-parsed when its mtime or size changes, so
//! `dockgate user add` and `revoke-keys` take effect without a reload. A
//! file that fails to parse keeps the last good value.

use super::AuthError;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

type Stamp = Option<(SystemTime, u64)>;

/// Parses a file's text; the error is reported with the file's path.
pub type Parse<T, E> = fn(&str) -> Result<T, E>;

pub struct Watched<T, E = AuthError> {
    path: PathBuf,
    parse: Parse<T, E>,
    state: RwLock<(Stamp, Arc<T>)>,
}

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl<T: Default, E: std::error::Error + Send + Sync + 'static> Watched<T, E> {
    /// Loads now; a missing file is an empty `T`, a bad one an error.
    pub fn open(path: PathBuf, parse: Parse<T, E>) -> Result<Self, AuthError> {
        let value = load(&path, parse)?;
        Ok(Self {
            state: RwLock::new((stamp(&path), Arc::new(value))),
            path,
            parse,
        })
    }

    pub fn get(&self) -> Arc<T> {
        let now = stamp(&self.path);
        if let Ok(s) = self.state.read() {
            if s.0 == now {
                return s.1.clone();
            }
        }
        let Ok(mut s) = self.state.write() else {
            return Arc::new(T::default());
        };
        match load(&self.path, self.parse) {
            Ok(v) => *s = (now, Arc::new(v)),
            Err(e) => {
                tracing::error!(error = %e, "keeping the previous contents");
                s.0 = now;
            }
        }
        s.1.clone()
    }
}

fn load<T: Default, E: std::error::Error + Send + Sync + 'static>(
    path: &Path,
    parse: Parse<T, E>,
) -> Result<T, AuthError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text).map_err(|e| AuthError::Parse {
            path: path.to_path_buf(),
            source: Box::new(e),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(source) => Err(AuthError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}
