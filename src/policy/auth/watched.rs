//! A file parsed into `T` and re-parsed when its mtime or size changes, so
//! `dockgate user add` and `revoke-keys` take effect without a reload. A
//! file that fails to parse keeps the last good value.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

type Stamp = Option<(SystemTime, u64)>;

pub struct Watched<T> {
    path: PathBuf,
    parse: fn(&str) -> Result<T, String>,
    state: RwLock<(Stamp, Arc<T>)>,
}

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

impl<T: Default> Watched<T> {
    /// Loads now; a missing file is an empty `T`, a bad one an error.
    pub fn open(path: PathBuf, parse: fn(&str) -> Result<T, String>) -> Result<Self, String> {
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

fn load<T: Default>(path: &Path, parse: fn(&str) -> Result<T, String>) -> Result<T, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}
