//! Registry vocabulary: API paths, names and references, the error envelope.

pub mod catalog;
pub mod error;
pub mod manifest;
pub mod names;
pub mod path;

pub use error::{ErrorCode, RegistryError};
pub use path::{ApiPath, Endpoint};

/// Sent on every response, as distribution does.
pub const API_VERSION_HEADER: &str = "Docker-Distribution-API-Version";
pub const API_VERSION: &str = "registry/2.0";
