//! Decisions on requests and responses: schema1 refusal (and, with users,
//! who may do what). Pure functions over config and plain values.

pub mod auth;
pub mod schema1;
