//! Dockgate's own endpoints beside the registry API: the
//! Artifactory-compatible repository settings API and docker credentials.

pub mod dockercfg;
pub mod repositories;
pub mod users;
