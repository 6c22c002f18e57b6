//! dockgate: a TLS gateway for Docker/OCI registries.
//!
//! A request travels through the modules in this order:
//! 1. `tls`      – certificates (SNI store, hot reload, generation, inspection)
//! 2. `route`    – which repository a `/v2/` path (or Host, or listener) means
//! 3. `policy`   – schema1 refusal and other decisions on the request
//! 4. `upstream` – the backend peer and its timeouts
//! 5. `rewrite`  – backend paths in, client-facing URLs/names out
//! 6. `observe`  – metrics and the access log
//!
//! `proxy` is the thin pingora glue that calls them; `config` loads and
//! validates the TOML; `state` holds the snapshot requests run under and
//! the runtime state; `oci` holds the registry vocabulary.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod admin;
pub mod cache;
pub mod config;
pub mod docs;
pub mod endpoint;
pub mod listen_check;
pub mod migrate;
pub mod observe;
pub mod oci;
pub mod pipeline;
pub mod policy;
pub mod proxy;
pub mod rewrite;
pub mod route;
pub mod server;
pub mod sso;
pub mod state;
pub mod tls;
pub mod upstream;
