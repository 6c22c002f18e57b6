//! `GET /_dockgate/health`: what a load balancer's HTTP check asks. 200
//! while serving, 503 from SIGTERM on (the listeners stay open for
//! `[server] drain_delay_seconds`, so the balancer stops sending new
//! connections before they close). Anonymous; says nothing but the state.
//! A backend being down does not fail it: another instance would reach the
//! same backend, and draining this one would not help.

use super::Env;
use crate::oci::{ErrorCode, RegistryError};
use crate::pipeline::{Local, Step};
use http::{Method, StatusCode};
use std::sync::atomic::Ordering;

pub fn handle(env: &Env<'_>, method: &Method) -> Step {
    if method != Method::GET && method != Method::HEAD {
        return Step::error(RegistryError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Unsupported,
            format!("{method} /_dockgate/health: only GET and HEAD"),
        ));
    }
    let (status, body) = if env.shared.draining.load(Ordering::SeqCst) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            &br#"{"status":"draining"}"#[..],
        )
    } else {
        (StatusCode::OK, &br#"{"status":"serving"}"#[..])
    };
    Step::Respond(Local::json(status, Vec::new(), body.to_vec()))
}
