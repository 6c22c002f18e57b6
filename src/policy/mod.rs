//! Decisions on requests and responses: schema1 refusal (and, with users,
//! who may do what). Pure functions over config and plain values.

pub mod auth;
pub mod decide;
pub mod immutable;
pub mod network;
pub mod rate;
pub mod rate_share;
pub mod read_only;
pub mod schema1;
pub use decide::{decide, Facts, Policies, Refusal, Rule, Stage, Verdict};

/// What the edge policies remember between requests (per instance).
#[derive(Default)]
pub struct EdgeState {
    pub limiter: rate::Limiter,
    pub drain: read_only::Drain,
}
