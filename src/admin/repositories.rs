//! `GET/POST /api/repositories/<key>` in Artifactory's shape. The one
//! setting that can change is `blockPushingSchema1`: for a local
//! repository it is `block_schema1_push`, for a remote one
//! `block_schema1_pull`, as in Artifactory. Changes are written into the
//! config file in place (comments kept) and atomically.

use crate::config::{RepoType, Repository};
use crate::oci::{ErrorCode, RegistryError};
use http::StatusCode;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Why a runtime edit of the config file failed.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("cannot parse config: {0}")]
    Parse(#[from] toml_edit::TomlError),
    #[error("repositories.{0} is not a table in the config file")]
    NotATable(String),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The JSON a GET returns.
pub fn describe(r: &Repository) -> serde_json::Value {
    serde_json::json!({
        "key": r.key,
        "rclass": r.kind.as_str(),
        "packageType": "docker",
        "dockerApiVersion": "V2",
        "blockPushingSchema1": blocking(r),
        "blockSchema1Push": r.block_schema1_push,
        "blockSchema1Pull": r.block_schema1_pull,
        "backend": r.backend.name,
        "namePrefix": r.name_prefix,
        "readOnly": r.policy.read_only.is_some(),
        "readOnlyReason": r.policy.read_only.as_deref().unwrap_or(""),
        "immutableTags": r.policy.immutable_tags.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
    })
}

fn blocking(r: &Repository) -> bool {
    match r.kind {
        RepoType::Local => r.block_schema1_push,
        RepoType::Remote => r.block_schema1_pull,
    }
}

/// Fields a POST may carry; anything else is refused so a typo is not
/// silently ignored. `key`/`rclass`/`packageType` may be echoed back but
/// must match.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Update {
    key: Option<String>,
    rclass: Option<String>,
    package_type: Option<String>,
    block_pushing_schema1: Option<bool>,
    block_schema1_push: Option<bool>,
    block_schema1_pull: Option<bool>,
    /// Maintenance: refuse pushes and deletes (uploads already open drain).
    read_only: Option<bool>,
    /// Shown to refused clients; kept in the state store's `read-only` area.
    read_only_reason: Option<String>,
}

/// Read-only as a POST asks for it: None when it does not mention it;
/// Some(None) to switch it off; Some(Some(reason)) to switch it on.
/// It lives in the state store's `read-only` area, not in the config file,
/// so it reaches every instance of a cluster.
pub fn read_only_change(body: &[u8]) -> Option<Option<String>> {
    let u = serde_json::from_slice::<Update>(body).ok()?;
    match u.read_only? {
        false => Some(None),
        true => Some(Some(
            u.read_only_reason
                .map(|r| r.chars().filter(|c| !c.is_control()).take(200).collect())
                .filter(|r: &String| !r.trim().is_empty())
                .unwrap_or_else(|| crate::config::policy::DEFAULT_REASON.to_string()),
        )),
    }
}

fn bad(msg: impl Into<String>) -> RegistryError {
    RegistryError::new(StatusCode::BAD_REQUEST, ErrorCode::Unsupported, msg)
}

/// The config edits (`block_schema1_push`/`_pull` → value) a POST asks for.
pub fn edits(r: &Repository, body: &[u8]) -> Result<Vec<(&'static str, bool)>, RegistryError> {
    let u: Update =
        serde_json::from_slice(body).map_err(|e| bad(format!("invalid repository JSON: {e}")))?;
    if u.key.as_deref().is_some_and(|k| k != r.key) {
        return Err(bad("\"key\" does not match the repository in the path"));
    }
    if u.rclass.as_deref().is_some_and(|c| c != r.kind.as_str()) {
        return Err(bad(format!(
            "\"rclass\" is {:?} for this repository and cannot be changed",
            r.kind.as_str()
        )));
    }
    if u.package_type
        .as_deref()
        .is_some_and(|p| !p.eq_ignore_ascii_case("docker"))
    {
        return Err(bad("\"packageType\" must be docker"));
    }
    let mut out = Vec::new();
    if let Some(v) = u.block_pushing_schema1 {
        out.push((
            if r.kind == RepoType::Local {
                "block_schema1_push"
            } else {
                "block_schema1_pull"
            },
            v,
        ));
    }
    if let Some(v) = u.block_schema1_push {
        out.push(("block_schema1_push", v));
    }
    if let Some(v) = u.block_schema1_pull {
        out.push(("block_schema1_pull", v));
    }
    if u.read_only_reason.is_some() && u.read_only != Some(true) {
        return Err(bad("\"readOnlyReason\" goes with \"readOnly\": true"));
    }
    if out.is_empty() && u.read_only.is_none() {
        return Err(bad(
            "nothing to change: send {\"blockPushingSchema1\": true|false} or {\"readOnly\": true|false, \"readOnlyReason\": \"...\"}",
        ));
    }
    Ok(out)
}

/// Applies edits to the TOML text, keeping comments and layout.
pub fn apply(text: &str, key: &str, edits: &[(&str, bool)]) -> Result<String, EditError> {
    let mut doc: toml_edit::DocumentMut = text.parse()?;
    let repo = doc
        .get_mut("repositories")
        .and_then(|r| r.get_mut(key))
        .and_then(|r| r.as_table_like_mut())
        .ok_or_else(|| EditError::NotATable(key.to_string()))?;
    for (field, value) in edits {
        repo.insert(field, toml_edit::value(*value));
    }
    Ok(doc.to_string())
}

/// Writes `text` beside `path` (same directory, same mode) for checking
/// before it replaces the config; `commit` renames it into place.
pub fn stage(path: &Path, text: &str) -> Result<PathBuf, EditError> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.dockgate-staged.toml"));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| EditError::Io { path, source }
    };
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions())
        .map_err(io(path))?;
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::set_permissions(&tmp, mode)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(&tmp)(e));
    }
    Ok(tmp)
}

pub fn commit(staged: &Path, path: &Path) -> Result<(), EditError> {
    std::fs::rename(staged, path).map_err(|source| {
        let _ = std::fs::remove_file(staged);
        EditError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(kind: RepoType) -> Repository {
        let cfg = crate::route::tests::cfg();
        let mut r = (*cfg.repositories["docker-local"]).clone();
        r.kind = kind;
        r
    }

    #[test]
    fn edits_table() {
        let local = repo(RepoType::Local);
        let remote = repo(RepoType::Remote);
        assert_eq!(
            edits(&local, br#"{"blockPushingSchema1": false}"#).unwrap(),
            vec![("block_schema1_push", false)]
        );
        assert_eq!(
            edits(
                &remote,
                br#"{"rclass":"remote","blockPushingSchema1": true}"#
            )
            .unwrap(),
            vec![("block_schema1_pull", true)]
        );
        for bad_body in [
            &b"{"[..],
            br#"{"blockPushingSchema1": "no"}"#,
            br#"{"nope": 1}"#,
            br#"{}"#,
            br#"{"rclass":"remote","blockPushingSchema1":false}"#,
            br#"{"key":"other","blockPushingSchema1":false}"#,
        ] {
            let e = edits(&local, bad_body).unwrap_err();
            assert_eq!(
                e.status,
                StatusCode::BAD_REQUEST,
                "{}",
                String::from_utf8_lossy(bad_body)
            );
        }
        let d = describe(&local);
        assert_eq!(d["key"], "docker-local");
        assert_eq!(d["rclass"], "local");
        assert_eq!(d["blockPushingSchema1"], true);
    }

    #[test]
    fn apply_keeps_comments() {
        let text = "# top\n[repositories.docker-local]\n# why\nbackend = \"local\" # trailing\n";
        let out = apply(text, "docker-local", &[("block_schema1_push", false)]).unwrap();
        assert!(
            out.contains("# top") && out.contains("# why") && out.contains("# trailing"),
            "{out}"
        );
        assert!(out.contains("block_schema1_push = false"), "{out}");
        let again = apply(&out, "docker-local", &[("block_schema1_push", true)]).unwrap();
        assert!(
            again.contains("block_schema1_push = true") && !again.contains("= false"),
            "{again}"
        );
        assert!(apply(text, "missing", &[("block_schema1_push", true)]).is_err());
    }
}
