//! Examples of embedding Fjord's crates in your own systems. Run one with
//! `cargo run -p fjord-examples --example NAME`.
//!
//! - `log_as_wal`: `fjord-log` as the write-ahead log of a small key-value store: append
//!   commands, flush for durability, rebuild state by replaying after a crash, and drop the
//!   prefix a snapshot has made redundant.
//!
//! The other examples of DESIGN.md (a 3-node quorum in one process, a custom retention policy,
//! a real Kafka client against the broker) arrive with their crates.

#![warn(missing_docs)]
