//! A KRaft-style Raft quorum: the replicated log that Fjord's controllers keep, as an embeddable,
//! sans-IO state machine.
//!
//! It mirrors Kafka's `raft` module (KIP-595, KIP-630, KIP-996): [`RaftNode`] is
//! `KafkaRaftClient` with `QuorumState` and its `*State` classes, without threads, sockets or a
//! clock. Replication is pull-based as in KRaft: followers and observers Fetch from the leader
//! with their log end offset and last fetched epoch, and are answered with records, a diverging
//! epoch to truncate to, or a snapshot to download (FetchSnapshot). Elections use Vote with
//! pre-vote first; a new leader announces itself with BeginQuorumEpoch (repeated as a
//! heartbeat), writes a LeaderChange control record, and commits once a majority of voters has
//! that record on disk. A leader that loses touch with a majority resigns (check-quorum); a
//! leader that shuts down says EndQuorumEpoch.
//!
//! The pieces:
//! - [`RaftNode`]: inputs `handle_message(now, from, message)`, `tick(now)`,
//!   `propose(now, records)`, `resign(now)`, `create_snapshot(now, offset, bytes)`; outputs
//!   [`Effect`]s from `take_effects()`, executed in order.
//! - [`RaftLog`]: the log and its snapshots, written synchronously by the node. [`FileLog`]
//!   keeps them in a `__cluster_metadata-0` directory on `fjord-log`; [`MemoryLog`] in memory,
//!   with a crash model for the simulator.
//! - [`QuorumStateStore`]: the `quorum-state` file ([`FileQuorumStateStore`]) or memory.
//! - [`Message`]: the RPCs as plain structs, ready to map onto protobuf.
//! - [`StateMachine`] and [`Driver`]: the replicated application and a loop-free harness that
//!   runs a node's effects against it (no async runtime needed).
//!
//! A single voter, the broker's default, commits inside `propose`:
//!
//! ```
//! use fjord_quorum::{
//!     BatchKind, Effect, MemoryLog, MemoryQuorumStateStore, NodeOptions, QuorumConfig, RaftNode, ReplicaKey, VoterSet,
//! };
//! use fjord_types::Timestamp;
//!
//! let options = NodeOptions {
//!     cluster_id: "my-cluster".into(),
//!     local: ReplicaKey::of(1),
//!     voters: VoterSet::parse("1@localhost:9093").unwrap(),
//!     config: QuorumConfig::default(),
//!     seed: 7,
//! };
//! let mut node = RaftNode::new(options, MemoryLog::new(), MemoryQuorumStateStore::new(), Timestamp(0)).unwrap();
//! // It elected itself at once: the LeaderChange record of epoch 1 is committed.
//! let effects = node.take_effects();
//! assert!(effects.iter().any(|e| matches!(e, Effect::LeaderChange { leader_id: Some(_), .. })));
//! let last = node.propose(Timestamp(1), vec![b"hello".to_vec()]).unwrap();
//! let committed: Vec<_> = node
//!     .take_effects()
//!     .into_iter()
//!     .filter_map(|e| match e {
//!         Effect::Commit { batches, .. } => Some(batches),
//!         _ => None,
//!     })
//!     .flatten()
//!     .collect();
//! assert_eq!(committed[0].kind, BatchKind::Data);
//! assert_eq!((committed[0].base_offset, committed[0].epoch), (last.offset, last.epoch));
//! assert_eq!(committed[0].records, vec![b"hello".to_vec()]);
//! ```
//!
//! This crate reads no clock, opens no socket, starts no thread and draws no ambient randomness:
//! time is an argument, and the only randomness is a [`Prng`] seeded by the caller. It depends
//! only on `fjord-types` and `fjord-log` among Fjord's crates, and never on tokio.

#![warn(missing_docs)]

#[cfg(any(test, feature = "sim-bugs"))]
mod bugs;
mod config;
mod driver;
mod effect;
mod error;
mod ids;
mod json;
mod log;
mod message;
mod node;
mod prng;
mod record;
mod requests;
mod state;
mod store;
mod voters;

#[cfg(any(test, feature = "sim-bugs"))]
pub use bugs::Bug;
pub use config::QuorumConfig;
pub use driver::{Applied, Driver, DriverEvent, SnapshotPolicy, StateMachine};
pub use effect::Effect;
pub use error::{ConfigError, Error, Result, StorageError};
pub use ids::{DirectoryId, DirectoryIdParseError, NodeId, OffsetAndEpoch, ReplicaKey, SnapshotId};
pub use log::{
    CrashReport, FileLog, MemoryLog, RaftLog, SNAPSHOT_PARTIAL_SUFFIX, SNAPSHOT_SUFFIX, SnapshotChunk,
    SnapshotFileError, ValidOffsetAndEpoch, decode_snapshot, encode_snapshot, snapshot_file_name,
};
pub use message::{
    BeginQuorumEpochRequest, EndQuorumEpochRequest, EpochResponse, FetchRequest, FetchResponse, FetchSnapshotRequest,
    FetchSnapshotResponse, INVALID_VOTER_KEY, Message, MessageBody, VoteRequest, VoteResponse,
};
pub use node::{NodeOptions, QuorumDescription, RaftNode, ReplicaDescription};
pub use prng::Prng;
pub use record::{Batch, BatchKind, ControlRecord, ControlRecordError, LEADER_CHANGE_TYPE, LeaderChangeMessage};
pub use state::RoleKind;
pub use store::{ElectionState, FileQuorumStateStore, MemoryQuorumStateStore, QUORUM_STATE_FILE, QuorumStateStore};
pub use voters::{Endpoint, Voter, VoterSet, parse_bootstrap_servers};

/// Kafka's directory name for the metadata partition (`__cluster_metadata-0`), where
/// [`FileLog`] and [`FileQuorumStateStore`] keep their files.
pub const METADATA_PARTITION_DIR: &str = "__cluster_metadata-0";
