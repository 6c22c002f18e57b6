//! Checks on the request head before anything else looks at it.

use crate::oci::{ErrorCode, RegistryError};
use crate::route::host::HostNames;
use http::StatusCode;

/// Registry requests carry small headers; refuse big ones in the registry
/// format (pingora itself answers a bare 400 only above 1 MiB).
pub const MAX_REQUEST_HEAD: usize = 64 << 10;

pub fn oversized(req: &http::request::Parts) -> Option<RegistryError> {
    let size: usize = req.uri.path_and_query().map_or(0, |p| p.as_str().len())
        + req
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>();
    (size > MAX_REQUEST_HEAD).then(|| {
        RegistryError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::Unsupported,
            format!(
                "request line and headers of {size} bytes exceed the {MAX_REQUEST_HEAD} byte limit"
            ),
        )
    })
}

/// 421 for a `Host` or `:authority` that is not one of dockgate's names:
/// absolute URLs are built from it, so it must never be the client's
/// choice. 421 (not 400) says "not this server", which clients and h2
/// connection reuse understand.
pub fn misdirected(req: &http::request::Parts, hosts: &HostNames) -> Option<RegistryError> {
    let authority = req.uri.authority().map(|a| a.as_str().to_string());
    let header = req
        .headers
        .get_all("host")
        .iter()
        .map(|h| h.to_str().unwrap_or("\u{0}").to_string());
    let bad = authority
        .into_iter()
        .chain(header)
        .find(|h| !hosts.allows(h))?;
    let shown: String = bad.chars().take(100).collect();
    Some(RegistryError::new(
        StatusCode::MISDIRECTED_REQUEST,
        ErrorCode::Denied,
        format!("host {shown:?} is not served here; use a name of this gateway's certificate or [server] public_hosts"),
    ))
}

/// The first failing check, if any.
pub fn head(req: &http::request::Parts, hosts: &HostNames) -> Option<RegistryError> {
    oversized(req).or_else(|| misdirected(req, hosts))
}
