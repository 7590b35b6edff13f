//! Examples of embedding Fjord's crates in your own systems. Run one with
//! `cargo run -p fjord-examples --example NAME`.
//!
//! - `log_as_wal`: `fjord-log` as the write-ahead log of a small key-value store: append
//!   commands, flush for durability, rebuild state by replaying after a crash, and drop the
//!   prefix a snapshot has made redundant.
//! - `quorum_in_process`: a three-voter `fjord-quorum` on threads and std channels, each voter
//!   with its log on disk, replicating a key-value map; the leader is killed, the others elect a
//!   new one, every node ends with the same map.
//!
//! The other examples of DESIGN.md (a custom retention policy, a real Kafka client against the
//! broker) arrive with their crates.

#![warn(missing_docs)]
