//! Restoring a node from its stored state, and storage failures (`KafkaRaftClientTest`'s
//! `testInitializeAs*FromStateStore`).

use super::*;
use crate::error::StorageError;
use crate::log::{RaftLog, SnapshotChunk};
use crate::store::FileQuorumStateStore;

#[test]
fn a_restarted_leader_comes_back_resigned_never_leading_its_epoch_again() {
    // KAFKA-10527.
    let mut t = Test::with_state(1, &[1, 2, 3], state(5, Some(1), Some(1)), log_of([data(0, 5, 2)]));
    assert_eq!((t.node.role(), t.node.epoch()), (RoleKind::Resigned, e(5)));
    let sent: Vec<(i32, MessageBody)> = t.sent().into_iter().map(|(to, m)| (to.0, m.body)).collect();
    assert_eq!(sent, vec![(2, end_epoch(1, 5, &[])), (3, end_epoch(1, 5, &[]))]);
    t.deliver(2, 1, vote_request(2, 5, 2, 4, false, 1)).unwrap();
    assert_eq!(granted(&t.sent()[0].1.body), Some((ErrorCode::None, false)), "it voted for itself in epoch 5");
    t.deliver(2, 2, fetch(2, 5, 0, 0, 0)).unwrap();
    assert!(matches!(&t.sent()[0].1.body, MessageBody::FetchResponse(r) if r.error == ErrorCode::NotLeaderOrFollower));
    t.advance(2_000);
    assert_eq!((t.node.role(), t.node.epoch()), (RoleKind::Prospective, e(6)), "a new epoch, then an election");
    assert_eq!(t.stored(), state(6, None, None));
}

#[test]
fn a_restarted_candidate_keeps_its_vote_and_asks_again() {
    let mut t = Test::with_state(1, &[1, 2, 3], state(3, None, Some(1)), MemoryLog::new());
    assert_eq!((t.node.role(), t.node.epoch()), (RoleKind::Candidate, e(3)));
    let bodies: Vec<MessageBody> = t.sent().into_iter().map(|(_, m)| m.body).collect();
    assert_eq!(bodies, vec![vote_request(1, 3, 0, 0, false, 2), vote_request(1, 3, 0, 0, false, 3)]);
}

#[test]
fn a_restarted_follower_fetches_from_its_leader() {
    let mut t = Test::with_state(1, &[1, 2, 3], state(4, Some(2), Some(2)), MemoryLog::new());
    assert_eq!((t.node.role(), t.node.leader_id()), (RoleKind::Follower, Some(NodeId(2))));
    let (_, body) = t.request_to(2);
    assert!(matches!(body, MessageBody::FetchRequest(r) if r.current_leader_epoch == e(4)));
    t.deliver(3, 1, vote_request(3, 4, 0, 0, false, 1)).unwrap();
    assert_eq!(granted(&t.sent()[0].1.body), Some((ErrorCode::None, false)));
}

#[test]
fn a_restarted_voter_remembers_whom_it_voted_for() {
    let mut t = Test::with_state(1, &[1, 2, 3], state(3, None, Some(2)), MemoryLog::new());
    assert_eq!(t.node.role(), RoleKind::Unattached);
    t.effects();
    t.deliver(3, 1, vote_request(3, 3, 0, 0, false, 1)).unwrap();
    assert_eq!(granted(&t.sent()[0].1.body), Some((ErrorCode::None, false)), "never two votes in one epoch");
    t.deliver(2, 2, vote_request(2, 3, 0, 0, false, 1)).unwrap();
    assert_eq!(granted(&t.sent()[0].1.body), Some((ErrorCode::None, true)));
}

#[test]
fn a_log_ahead_of_the_stored_epoch_wins() {
    let t = Test::with_state(1, &[1, 2, 3], state(1, None, None), log_of([data(0, 3, 1)]));
    assert_eq!((t.node.role(), t.node.epoch()), (RoleKind::Unattached, e(3)));
    assert_eq!(t.stored(), state(3, None, None));
}

#[test]
fn a_single_voter_restarts_into_a_new_epoch() {
    let t = Test::with_state(1, &[1], state(4, Some(1), Some(1)), log_of([data(0, 4, 2)]));
    assert_eq!((t.node.role(), t.node.epoch()), (RoleKind::Leader, e(5)));
    assert_eq!(t.node.high_watermark(), Some(o(3)));
}

#[test]
fn an_unknown_quorum_state_version_refuses_to_start() {
    // KAFKA-15412.
    let dir = tempfile::tempdir().unwrap();
    let store = FileQuorumStateStore::new(dir.path()).unwrap();
    std::fs::write(store.path(), r#"{"leaderId":1,"leaderEpoch":5,"votedId":-1,"data_version":9}"#).unwrap();
    let result = RaftNode::new(options(1, &[1, 2, 3]), MemoryLog::new(), store, Timestamp(0));
    assert!(matches!(result, Err(Error::Storage(StorageError::UnknownDataVersion { version: 9, .. }))));
}

#[test]
fn the_file_store_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileQuorumStateStore::new(dir.path()).unwrap();
    let mut node = RaftNode::new(options(1, &[1, 2, 3]), MemoryLog::new(), store, Timestamp(0)).unwrap();
    node.handle_message(Timestamp(0), NodeId(2), message(1, vote_request(2, 7, 0, 0, false, 1))).unwrap();
    let (log, _) = node.into_storage();
    let store = FileQuorumStateStore::new(dir.path()).unwrap();
    assert_eq!(store.read().unwrap(), Some(state(7, None, Some(2))));
    let node = RaftNode::new(options(1, &[1, 2, 3]), log, store, Timestamp(0)).unwrap();
    assert_eq!(node.election_state(), state(7, None, Some(2)));
}

/// A log whose flushes fail once `fail` is set.
#[derive(Debug, Default)]
struct FailingLog {
    inner: MemoryLog,
    fail: bool,
}

impl RaftLog for FailingLog {
    fn log_start_offset(&self) -> Offset {
        self.inner.log_start_offset()
    }
    fn log_end_offset(&self) -> Offset {
        self.inner.log_end_offset()
    }
    fn flushed_end_offset(&self) -> Offset {
        self.inner.flushed_end_offset()
    }
    fn last_fetched_epoch(&self) -> LeaderEpoch {
        self.inner.last_fetched_epoch()
    }
    fn epoch_of(&self, offset: Offset) -> Option<LeaderEpoch> {
        self.inner.epoch_of(offset)
    }
    fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> OffsetAndEpoch {
        self.inner.end_offset_for_epoch(epoch)
    }
    fn append(&mut self, batch: Batch) -> Result<(), StorageError> {
        self.inner.append(batch)
    }
    fn read(&self, from: Offset, max_bytes: usize) -> Result<Vec<Batch>, StorageError> {
        self.inner.read(from, max_bytes)
    }
    fn truncate_to(&mut self, offset: Offset) -> Result<(), StorageError> {
        self.inner.truncate_to(offset)
    }
    fn flush(&mut self) -> Result<(), StorageError> {
        if self.fail { Err(StorageError::Injected("fsync failed".into())) } else { self.inner.flush() }
    }
    fn latest_snapshot_id(&self) -> Option<SnapshotId> {
        self.inner.latest_snapshot_id()
    }
    fn earliest_snapshot_id(&self) -> Option<SnapshotId> {
        self.inner.earliest_snapshot_id()
    }
    fn read_snapshot(
        &self,
        id: SnapshotId,
        position: u64,
        max_bytes: usize,
    ) -> Result<Option<SnapshotChunk>, StorageError> {
        self.inner.read_snapshot(id, position, max_bytes)
    }
    fn write_partial_snapshot(&mut self, id: SnapshotId, position: u64, bytes: &[u8]) -> Result<u64, StorageError> {
        self.inner.write_partial_snapshot(id, position, bytes)
    }
    fn freeze_snapshot(&mut self, id: SnapshotId) -> Result<(), StorageError> {
        self.inner.freeze_snapshot(id)
    }
    fn discard_partial_snapshot(&mut self, id: SnapshotId) -> Result<(), StorageError> {
        self.inner.discard_partial_snapshot(id)
    }
    fn delete_before_snapshot(&mut self, id: SnapshotId) -> Result<(), StorageError> {
        self.inner.delete_before_snapshot(id)
    }
    fn truncate_to_snapshot(&mut self, id: SnapshotId) -> Result<(), StorageError> {
        self.inner.truncate_to_snapshot(id)
    }
}

#[test]
fn a_failed_flush_stops_the_node_without_a_word() {
    let mut node =
        RaftNode::new(options(1, &[1]), FailingLog::default(), MemoryQuorumStateStore::new(), Timestamp(0)).unwrap();
    node.take_effects();
    // The disk fails under the node.
    node.log.fail = true;
    let error = node.propose(Timestamp(1), vec![b"x".to_vec()]).unwrap_err();
    assert!(error.is_fatal(), "{error}");
    assert!(node.take_effects().is_empty(), "no commit of what may not be on disk");
    assert!(matches!(node.tick(Timestamp(2)), Err(Error::Failed(_))));
    assert!(node.failure().is_some());
}

/// Options for node `local` of `voters` with its own seed (a restart gets a new one).
fn seeded(local: i32, voters: &[i32], seed: u64) -> NodeOptions {
    NodeOptions { seed, ..options(local, voters) }
}

/// A follower of 2 in epoch 4 sends a fetch, restarts (a new seed, as every caller gives a
/// restart), and fetches again; returns the log end after the first incarnation's answer
/// arrives, and the log end after the current one's.
fn stale_fetch_answer(bugs: BTreeSet<crate::bugs::Bug>) -> (Offset, Offset) {
    let mut store = MemoryQuorumStateStore::new();
    store.write(&state(4, Some(2), None)).unwrap();
    let mut first = Test::start_with_bugs(seeded(1, &[1, 2, 3], 1), MemoryLog::new(), store, bugs.clone());
    let (stale, _) = first.request_to(2);
    let (log, store) = first.node.into_storage();
    let mut second = Test::start_with_bugs(seeded(1, &[1, 2, 3], 2), log, store, bugs);
    let (current, _) = second.request_to(2);
    // The leader's answer to the first incarnation's fetch arrives late: by then the leader may
    // have moved on (truncated, or told other fetchers other things), so it must not count.
    second.deliver(2, stale, fetch_response(4, 2, Some(2), vec![data(0, 4, 2)])).unwrap();
    let after_stale = second.node.log().log_end_offset();
    second.deliver(2, current, fetch_response(4, 2, Some(2), vec![data(0, 4, 2)])).unwrap();
    (after_stale, second.node.log().log_end_offset())
}

#[test]
fn a_stale_answer_after_a_restart_is_ignored() {
    assert_eq!(stale_fetch_answer(BTreeSet::new()), (o(0), o(2)), "only the current fetch's answer is appended");
    // With ids starting at 1 in every incarnation, the stale answer passes for the new one.
    let reused = BTreeSet::from([crate::bugs::Bug::ReusedCorrelationIds]);
    assert_eq!(stale_fetch_answer(reused).0, o(2), "the planted bug takes the stale answer");
}

#[test]
fn correlation_ids_of_two_incarnations_do_not_meet() {
    let first = Test::fresh(1, &[1, 2, 3]).node.next_correlation_id;
    let second = Test::start(seeded(1, &[1, 2, 3], 43), MemoryLog::new(), MemoryQuorumStateStore::new())
        .node
        .next_correlation_id;
    assert!(first.abs_diff(second) > 1 << 32, "{first} and {second}");
    assert!(first < 1 << 62 && second < 1 << 62, "room to count up without wrapping");
}

/// The two-leaders case: a candidate of epoch 3 (restored from its vote for itself) runs out of
/// time and polls again as a prospective of epoch 3; voters that voted for someone else in
/// epoch 3 still grant its pre-votes. It crashes, restarts as the candidate of epoch 3, its
/// first vote requests fail and are sent again. Returns its role once the grants of the
/// previous incarnation's pre-votes have arrived.
fn stale_pre_vote_grants(bugs: BTreeSet<crate::bugs::Bug>) -> RoleKind {
    let voters = [1, 2, 3, 4, 5];
    let mut store = MemoryQuorumStateStore::new();
    store.write(&state(3, None, Some(1))).unwrap();
    let mut first = Test::start_with_bugs(seeded(1, &voters, 1), MemoryLog::new(), store, bugs.clone());
    assert_eq!(first.node.role(), RoleKind::Candidate);
    first.effects();
    first.advance(2_000);
    assert_eq!((first.node.role(), first.node.epoch()), (RoleKind::Prospective, e(3)));
    let pre_votes: Vec<(NodeId, u64)> = first
        .sent()
        .into_iter()
        .filter(|(_, m)| matches!(&m.body, MessageBody::VoteRequest(r) if r.pre_vote))
        .map(|(to, m)| (to, m.correlation_id))
        .collect();
    assert_eq!(pre_votes.len(), 4);
    let (log, store) = first.node.into_storage();
    let mut second = Test::start_with_bugs(seeded(1, &voters, 2), log, store, bugs);
    assert_eq!((second.node.role(), second.node.epoch()), (RoleKind::Candidate, e(3)));
    for (to, message) in second.sent() {
        second.node.request_failed(second.now, to, message.correlation_id).unwrap();
    }
    second.advance(QuorumConfig::default().retry_backoff_ms);
    let votes = second.sent();
    assert!(votes.iter().all(|(_, m)| matches!(&m.body, MessageBody::VoteRequest(r) if !r.pre_vote)));
    assert_eq!(votes.len(), 4, "asked again after the failures");
    for (to, correlation_id) in pre_votes.into_iter().take(2) {
        second.deliver(to.0, correlation_id, vote_response(e(3), None, true)).unwrap();
    }
    second.node.role()
}

#[test]
fn a_pre_vote_answer_is_never_counted_as_a_vote() {
    assert_eq!(stale_pre_vote_grants(BTreeSet::new()), RoleKind::Candidate);
    let reused = BTreeSet::from([crate::bugs::Bug::ReusedCorrelationIds]);
    assert_eq!(stale_pre_vote_grants(reused), RoleKind::Leader, "the planted bug counts pre-votes as votes");
}
