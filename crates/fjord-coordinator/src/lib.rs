//! The group coordinator (Kafka's `GroupCoordinator`/`GroupMetadataManager` for the classic
//! protocol), as a single-threaded state machine with no I/O.
//!
//! Consumers in a group join, the coordinator waits for every known member (or the rebalance
//! timeout), picks a protocol every member supports, makes the first member the leader and
//! hands it everyone's subscription; the leader computes the assignment and sends it back in
//! SyncGroup, and the coordinator relays each member its part. Heartbeats keep a member alive
//! within its session timeout; a member that stops heartbeating is removed and the group
//! rebalances. Static members (`group.instance.id`, KIP-345) rejoin under a new member id without
//! a rebalance, and fence the old id.
//!
//! Inputs are `handle_*(now, ...)` calls and [`GroupCoordinator::tick`]; outputs are
//! [`Effect`]s: responses to deliver (some requests are answered later, when a rebalance
//! completes) and records to persist. Committed offsets and completed generations are records:
//! [`GroupCoordinator::replay`] applies them, so a new coordinator loads by replaying its
//! `__consumer_offsets` partition. Time is an argument; ids come from the caller.
//!
//! Depends only on `fjord-types`.

#![warn(missing_docs)]

mod config;
mod coordinator;
mod group;
mod messages;
mod partitioner;
mod rebalance;
mod record;

pub use config::CoordinatorConfig;
pub use coordinator::GroupCoordinator;
pub use group::GroupState;
pub use messages::{
    CommitRequest, Effect, GroupSummary, HeartbeatRequest, JoinRequest, JoinResponse, JoinedMember, LeaveRequest,
    MemberSummary, OffsetEntry, RequestId, Response, SyncRequest, SyncResponse,
};
pub use partitioner::partition_for_group;
pub use record::{CommittedOffset, CoordinatorRecord, GroupMetadata};
