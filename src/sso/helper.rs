//! The docker credential helper: the dockgate binary called as
//! `docker-credential-dockgate` (a link) answers `get`, `store`, `erase`
//! and `list` per the docker-credential-helpers protocol. Entries live in
//! a 0600 JSON file; `dockgate login` stores its refresh token there with
//! the user name `<token>`, which makes docker, podman and skopeo spend it
//! as an identity token (OAuth2 refresh-token grant at `/v2/token`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub const NOT_FOUND: &str = "credentials not found in native keychain";
/// The user name that marks the secret as an identity (refresh) token.
pub const TOKEN_USER: &str = "<token>";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Creds {
    #[serde(rename = "ServerURL", default)]
    pub server_url: String,
    #[serde(rename = "Username")]
    pub username: String,
    #[serde(rename = "Secret")]
    pub secret: String,
}

#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    #[error("{NOT_FOUND}")]
    NotFound,
    #[error("{0}")]
    Io(String),
    #[error("unknown action {0:?}: expected get, store, erase or list")]
    Usage(String),
}

/// `$DOCKGATE_CREDENTIALS`, else `$XDG_CONFIG_HOME/dockgate/credentials.json`,
/// else `~/.config/dockgate/credentials.json`.
pub fn store_path() -> PathBuf {
    if let Some(p) = std::env::var_os("DOCKGATE_CREDENTIALS") {
        return PathBuf::from(p);
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("dockgate").join("credentials.json")
}

/// `https://host:port/` and `host:port` name the same entry.
pub fn server_key(url: &str) -> String {
    let u = url.trim();
    let u = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .unwrap_or(u);
    u.split('/').next().unwrap_or("").to_ascii_lowercase()
}

fn load(path: &Path) -> Result<BTreeMap<String, Creds>, HelperError> {
    match std::fs::read_to_string(path) {
        Ok(t) => serde_json::from_str(&t)
            .map_err(|e| HelperError::Io(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(HelperError::Io(format!("{}: {e}", path.display()))),
    }
}

fn save(path: &Path, all: &BTreeMap<String, Creds>) -> Result<(), HelperError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| HelperError::Io(format!("{}: {e}", dir.display())))?;
    }
    let text = serde_json::to_string_pretty(all).map_err(|e| HelperError::Io(e.to_string()))?;
    crate::policy::auth::write_private(path, text.as_bytes())
        .map_err(|e| HelperError::Io(e.to_string()))
}

pub fn store(path: &Path, c: Creds) -> Result<(), HelperError> {
    let mut all = load(path)?;
    all.insert(server_key(&c.server_url), c);
    save(path, &all)
}

/// One action: `input` is what docker wrote to stdin; returns stdout.
pub fn run(action: &str, input: &str, path: &Path) -> Result<String, HelperError> {
    match action {
        "get" => {
            let all = load(path)?;
            let c = all.get(&server_key(input)).ok_or(HelperError::NotFound)?;
            serde_json::to_string(c).map_err(|e| HelperError::Io(e.to_string()))
        }
        "store" => {
            let c: Creds =
                serde_json::from_str(input).map_err(|e| HelperError::Io(format!("stdin: {e}")))?;
            store(path, c).map(|_| String::new())
        }
        "erase" => {
            let mut all = load(path)?;
            if all.remove(&server_key(input)).is_none() {
                return Err(HelperError::NotFound);
            }
            save(path, &all).map(|_| String::new())
        }
        "list" => {
            let all = load(path)?;
            let m: BTreeMap<&str, &str> = all
                .values()
                .map(|c| (c.server_url.as_str(), c.username.as_str()))
                .collect();
            serde_json::to_string(&m).map_err(|e| HelperError::Io(e.to_string()))
        }
        other => Err(HelperError::Usage(other.to_string())),
    }
}

/// `docker-credential-dockgate <action>`: exit 0, or 1 with the message
/// on stdout (docker reads it from there).
pub fn main(args: &[String]) -> i32 {
    let action = args.get(1).map(String::as_str).unwrap_or("");
    if action == "version" || action == "--version" {
        println!("docker-credential-dockgate {}", env!("CARGO_PKG_VERSION"));
        return 0;
    }
    let mut input = String::new();
    if action != "list" {
        let _ = std::io::stdin().read_to_string(&mut input);
    }
    match run(action, &input, &store_path()) {
        Ok(out) => {
            let mut o = std::io::stdout();
            let _ = o.write_all(out.as_bytes());
            if !out.is_empty() {
                let _ = o.write_all(b"\n");
            }
            0
        }
        Err(e) => {
            println!("{e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol() {
        let dir = std::env::temp_dir().join(format!("dockgate-helper-{}", std::process::id()));
        let path = dir.join("c.json");
        assert!(matches!(
            run("get", "reg:5000", &path),
            Err(HelperError::NotFound)
        ));
        assert_eq!(HelperError::NotFound.to_string(), NOT_FOUND);
        let c = r#"{"ServerURL":"https://reg:5000","Username":"<token>","Secret":"s1"}"#;
        run("store", c, &path).unwrap();
        let got: Creds = serde_json::from_str(&run("get", "reg:5000\n", &path).unwrap()).unwrap();
        assert_eq!(got.secret, "s1");
        assert_eq!(got.username, TOKEN_USER);
        assert_eq!(
            run("list", "", &path).unwrap(),
            r#"{"https://reg:5000":"<token>"}"#
        );
        run("erase", "https://reg:5000/", &path).unwrap();
        assert!(matches!(
            run("get", "reg:5000", &path),
            Err(HelperError::NotFound)
        ));
        assert!(matches!(
            run("bogus", "", &path),
            Err(HelperError::Usage(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
