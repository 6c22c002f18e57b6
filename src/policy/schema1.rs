//! Refusing Docker manifest V2 schema 1, per repository: pushes to
//! `block_schema1_push` repositories, pulls from `block_schema1_pull` ones.
//! The refusal says what happened and how to convert, and uses DENIED (a
//! policy), never UNAUTHORIZED (which users read as a password problem).

use crate::config::Repository;
use crate::oci::manifest::{self, Kind};
use crate::oci::{ErrorCode, RegistryError};
use http::StatusCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Push,
    Pull,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Push => "push",
            Direction::Pull => "pull",
        }
    }
}

/// Decides a manifest PUT whose body was read whole.
pub fn check_push(
    repo: &Repository,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Kind, RegistryError> {
    let kind = manifest::classify(content_type, body).map_err(|e| {
        RegistryError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::ManifestInvalid,
            e.to_string(),
        )
    })?;
    if kind == Kind::Schema1 && repo.block_schema1_push {
        return Err(refusal(repo, Direction::Push));
    }
    Ok(kind)
}

/// Decides a manifest GET/HEAD answer by the backend's Content-Type.
pub fn check_pull(repo: &Repository, content_type: Option<&str>) -> Result<(), RegistryError> {
    let kind = content_type.and_then(manifest::kind_of_media_type);
    if kind == Some(Kind::Schema1) && repo.block_schema1_pull {
        return Err(refusal(repo, Direction::Pull));
    }
    Ok(())
}

/// Manifest bodies above the inspection limit.
pub fn too_large(len: usize) -> RegistryError {
    RegistryError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::SizeInvalid,
        format!(
            "manifest of {len} bytes is larger than the {} byte limit",
            manifest::MAX_MANIFEST_BYTES
        ),
    )
}

pub fn refusal(repo: &Repository, dir: Direction) -> RegistryError {
    let msg = match dir {
        Direction::Push => format!(
            "repository {key:?} blocks pushing Docker manifest V2 schema 1 (block_schema1_push); \
             schema 1 is deprecated and current clients cannot pull it. Convert the image and push \
             schema 2 or OCI instead: skopeo copy --format v2s2 (or --format oci) docker://SOURCE docker://DESTINATION",
            key = repo.key
        ),
        Direction::Pull => format!(
            "repository {key:?} blocks pulling Docker manifest V2 schema 1 (block_schema1_pull); \
             this tag is stored as schema 1. Ask for it to be converted upstream \
             (skopeo copy --format v2s2 docker://SOURCE docker://DESTINATION) or pull a schema 2/OCI tag",
            key = repo.key
        ),
    };
    RegistryError::new(StatusCode::FORBIDDEN, ErrorCode::Denied, msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::manifest::{SCHEMA1_SIGNED, SCHEMA2};

    fn repo(push: bool, pull: bool) -> Repository {
        let cfg = crate::route::tests::cfg();
        let mut r = (*cfg.repositories["docker-local"]).clone();
        r.block_schema1_push = push;
        r.block_schema1_pull = pull;
        r
    }

    #[test]
    fn decisions() {
        let s1 = br#"{"schemaVersion":1,"fsLayers":[],"history":[]}"#;
        let s2 = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
        let e = check_push(&repo(true, false), Some(SCHEMA1_SIGNED), s1).unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::FORBIDDEN, ErrorCode::Denied)
        );
        assert!(e.message.contains("docker-local") && e.message.contains("--format v2s2"));
        assert_eq!(
            check_push(&repo(false, false), None, s1).unwrap(),
            Kind::Schema1
        );
        assert_eq!(
            check_push(&repo(true, false), Some(SCHEMA2), s2).unwrap(),
            Kind::Schema2
        );
        let e = check_push(&repo(false, false), Some(SCHEMA2), s1).unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::BAD_REQUEST, ErrorCode::ManifestInvalid)
        );
        assert!(check_pull(&repo(false, true), Some(SCHEMA1_SIGNED)).is_err());
        assert!(check_pull(&repo(false, true), Some(SCHEMA2)).is_ok());
        assert!(check_pull(&repo(false, false), Some(SCHEMA1_SIGNED)).is_ok());
        assert_eq!(too_large(5 << 20).status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
