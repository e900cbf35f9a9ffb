//! gridlink-server's integration tests: one binary. The harness (a real server on
//! 127.0.0.1:0 and enrolled phone stores) is in `common.rs`; sync behaviour (convergence,
//! faults, restarts, failed commits) in `sync.rs`, refusals and scope in `security.rs`,
//! HTTP-level bad input in `http.rs`, the merge engine's batches in `merge.rs`, the server's
//! own writes in `authored.rs`, the `demo` binary as a child process in `demo.rs`, and the
//! `ServerStore` conformance suite in `store.rs`. New tests go in the file of their topic.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

mod actions;
mod authored;
mod backup;
mod citizen;
mod common;
mod demo;
mod field_day;
mod http;
#[path = "../support/link.rs"]
mod link;
mod merge;
mod nodes;
mod open311;
mod overdue;
mod photos;
mod push_ops;
mod records;
mod rules;
mod scores;
mod security;
mod store;
mod sync;
mod web;
