//! Decisions on requests and responses: schema1 refusal (and, with users,
//! who may do what). Pure functions over config and plain values.

pub mod auth;
pub mod decide;
pub mod schema1;
pub use decide::{decide, Facts, Policies, Refusal, Rule, Stage, Verdict};
