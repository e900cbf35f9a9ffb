//! gridlink-core's integration tests: one binary (fast to link), one module per area.
//! New tests go into the module of their area; a new area gets a new module here.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

mod access;
mod checklist;
mod common;
mod deadline;
mod fold;
mod geo;
mod ids;
mod mediation;
mod merge;
mod photo;
mod push_ops;
mod queue;
mod records;
mod scoring;
mod session;
mod store;
