//! Edits between the client's view (`/v2/<key>/<image>` on dockgate's host)
//! and a backend's view (`<v2_prefix>/<name_prefix><image>` on its host):
//! request paths and queries on the way in; Location, Link and
//! WWW-Authenticate on the way out.

pub mod query;
pub mod realm;
pub mod request;
pub mod response;

/// Where a backend's token realm is reached through dockgate:
/// `/_dockgate/realm/<backend>/<original path>`.
pub const REALM_PREFIX: &str = "/_dockgate/realm/";
