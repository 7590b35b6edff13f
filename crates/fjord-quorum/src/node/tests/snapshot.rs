//! Snapshots: redirects, FetchSnapshot, downloads, creation (`KafkaRaftClientSnapshotTest`).

use super::*;
use crate::log::encode_snapshot;

fn snapshot_at(log: &mut MemoryLog, offset: i64, epoch: i32, payload: &[u8]) -> SnapshotId {
    let id = SnapshotId::new(o(offset), e(epoch));
    log.write_snapshot(id, &encode_snapshot(id, payload)).unwrap();
    id
}

/// A leader of epoch 2 whose log was trimmed to a snapshot at (6, 1); the log holds only its
/// LeaderChange record at 6.
fn leader_after_snapshot() -> (Test, SnapshotId) {
    let mut log = log_of([data(0, 1, 3), data(3, 1, 3)]);
    let id = snapshot_at(&mut log, 6, 1, b"six");
    log.delete_before_snapshot(id).unwrap();
    let mut t = Test::with_state(1, &[1, 2, 3], state(1, None, None), log);
    t.elect();
    t.effects();
    (t, id)
}

fn fetch_answer(t: &mut Test) -> FetchResponse {
    match t.sent().remove(0).1.body {
        MessageBody::FetchResponse(r) => r,
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_empty_follower_is_sent_the_latest_snapshot() {
    // KAFKA-15078: at offset 0, a snapshot is cheaper than the log.
    let (mut t, id) = leader_after_snapshot();
    t.deliver(2, 1, fetch(2, 2, 0, 0, 500)).unwrap();
    let r = fetch_answer(&mut t);
    assert_eq!((r.snapshot_id, r.records.len()), (Some(id), 0));
}

#[test]
fn a_fetch_below_the_log_start_is_sent_the_latest_snapshot() {
    // KAFKA-15076: the latest snapshot, not the one at the log start.
    let mut log = log_of([data(0, 1, 3), data(3, 1, 3), data(6, 1, 3)]);
    let first = snapshot_at(&mut log, 3, 1, b"three");
    log.delete_before_snapshot(first).unwrap();
    let latest = snapshot_at(&mut log, 9, 1, b"nine");
    let mut t = Test::with_state(1, &[1, 2, 3], state(1, None, None), log);
    t.elect();
    t.effects();
    for (offset, epoch) in [(2, 1), (3, 0)] {
        t.deliver(2, 1, fetch(2, 2, offset, epoch, 500)).unwrap();
        assert_eq!(fetch_answer(&mut t).snapshot_id, Some(latest), "fetch at ({offset}, {epoch})");
    }
    t.deliver(2, 2, fetch(2, 2, 3, 1, 500)).unwrap();
    let r = fetch_answer(&mut t);
    assert_eq!(
        (r.snapshot_id, r.records.first().map(|b| b.base_offset)),
        (None, Some(o(3))),
        "at the log start it reads"
    );
}

#[test]
fn fetch_snapshot_answers_chunks_and_errors() {
    let (mut t, id) = leader_after_snapshot();
    let whole = encode_snapshot(id, b"six");
    let answer = |t: &mut Test| match t.sent().remove(0).1.body {
        MessageBody::FetchSnapshotResponse(r) => r,
        other => panic!("{other:?}"),
    };
    t.deliver(2, 1, fetch_snapshot(2, 2, id, 0, 10)).unwrap();
    let r = answer(&mut t);
    assert_eq!(
        (r.error, r.size, r.position, r.bytes.as_slice()),
        (ErrorCode::None, whole.len() as u64, 0, &whole[..10])
    );
    t.deliver(2, 2, fetch_snapshot(2, 2, id, 10, 1 << 20)).unwrap();
    assert_eq!(answer(&mut t).bytes.as_slice(), &whole[10..]);
    t.deliver(2, 3, fetch_snapshot(2, 2, id, whole.len() as u64, 10)).unwrap();
    assert_eq!(answer(&mut t).error, ErrorCode::PositionOutOfRange);
    t.deliver(2, 4, fetch_snapshot(2, 2, SnapshotId::new(o(5), e(1)), 0, 10)).unwrap();
    assert_eq!(answer(&mut t).error, ErrorCode::SnapshotNotFound);
    t.deliver(2, 5, fetch_snapshot(2, 1, id, 0, 10)).unwrap();
    assert_eq!(answer(&mut t).error, ErrorCode::FencedLeaderEpoch);
    t.deliver(2, 6, fetch_snapshot(2, 3, id, 0, 10)).unwrap();
    assert_eq!(answer(&mut t).error, ErrorCode::UnknownLeaderEpoch);
}

/// A follower of 3 in epoch 2 that has been redirected to `id`; returns the FetchSnapshot's
/// correlation id.
fn redirected_follower(id: SnapshotId) -> (Test, u64) {
    let mut t = Test::with_state(1, &[1, 2, 3], state(2, Some(3), None), MemoryLog::new());
    let (fetch_id, _) = t.request_to(3);
    let mut answer = fetch_response(2, 3, Some(6), vec![]);
    if let MessageBody::FetchResponse(r) = &mut answer {
        r.snapshot_id = Some(id);
    }
    t.deliver(3, fetch_id, answer).unwrap();
    let (download_id, body) = t.request_to(3);
    assert_eq!(body, fetch_snapshot(1, 2, id, 0, QuorumConfig::default().fetch_snapshot_max_bytes));
    (t, download_id)
}

fn snapshot_part(id: SnapshotId, whole: &[u8], from: usize, to: usize) -> MessageBody {
    MessageBody::FetchSnapshotResponse(FetchSnapshotResponse {
        error: ErrorCode::None,
        leader_epoch: e(2),
        leader_id: Some(NodeId(3)),
        snapshot_id: id,
        size: whole.len() as u64,
        position: from as u64,
        bytes: whole[from..to].to_vec(),
    })
}

#[test]
fn a_follower_downloads_a_snapshot_in_chunks_and_loads_it() {
    let id = SnapshotId::new(o(6), e(1));
    let whole = encode_snapshot(id, b"the state at six");
    let (mut t, download) = redirected_follower(id);
    t.deliver(3, download, snapshot_part(id, &whole, 0, 20)).unwrap();
    let (next, body) = t.request_to(3);
    assert_eq!(body, fetch_snapshot(1, 2, id, 20, QuorumConfig::default().fetch_snapshot_max_bytes));
    assert_eq!(t.node.log().latest_snapshot_id(), None, "nothing on disk before it is whole");
    t.deliver(3, next, snapshot_part(id, &whole, 20, whole.len())).unwrap();
    let effects = t.effects();
    assert!(effects.contains(&Effect::LoadSnapshot { snapshot_id: id }));
    assert_eq!((t.node.log().log_start_offset(), t.node.log().log_end_offset()), (o(6), o(6)));
    assert_eq!((t.node.high_watermark(), t.node.next_commit_offset()), (Some(o(6)), o(6)));
    let fetch = sends(effects).into_iter().find(|(to, _)| *to == NodeId(3)).unwrap().1.body;
    assert!(matches!(fetch, MessageBody::FetchRequest(r) if r.fetch_offset == o(6) && r.last_fetched_epoch == e(1)));
}

#[test]
fn a_corrupt_download_is_dropped_and_fetched_again() {
    let id = SnapshotId::new(o(6), e(1));
    let mut whole = encode_snapshot(id, b"the state at six");
    let last = whole.len() - 1;
    whole[last] ^= 1;
    let (mut t, download) = redirected_follower(id);
    t.deliver(3, download, snapshot_part(id, &whole, 0, whole.len())).unwrap();
    let effects = t.effects();
    assert!(!effects.iter().any(|e| matches!(e, Effect::LoadSnapshot { .. })));
    assert_eq!(t.node.log().latest_snapshot_id(), None);
    let fetch = sends(effects).remove(0).1.body;
    assert!(matches!(fetch, MessageBody::FetchRequest(r) if r.fetch_offset == o(0)));
}

#[test]
fn a_snapshot_that_vanished_at_the_leader_is_looked_up_again() {
    let id = SnapshotId::new(o(6), e(1));
    let (mut t, download) = redirected_follower(id);
    let mut gone = snapshot_part(id, &[], 0, 0);
    if let MessageBody::FetchSnapshotResponse(r) = &mut gone {
        r.error = ErrorCode::SnapshotNotFound;
    }
    t.deliver(3, download, gone).unwrap();
    let (_, body) = t.request_to(3);
    assert!(matches!(body, MessageBody::FetchRequest(_)));
}

#[test]
fn create_snapshot_trims_the_log_below_it() {
    let mut t = Test::fresh(1, &[1]);
    for _ in 0..3 {
        t.node.propose(t.now, vec![b"r".to_vec(); 2]).unwrap();
    }
    assert_eq!(t.node.next_commit_offset(), o(7));
    assert!(
        matches!(t.node.create_snapshot(t.now, o(8), b"s"), Err(Error::InvalidSnapshot(_))),
        "beyond what was applied"
    );
    assert!(matches!(t.node.create_snapshot(t.now, o(2), b"s"), Err(Error::InvalidSnapshot(_))), "inside a batch");
    let id = t.node.create_snapshot(t.now, o(5), b"state at five").unwrap();
    assert_eq!(id, SnapshotId::new(o(5), e(1)));
    assert_eq!(t.node.log().log_start_offset(), o(5));
    t.node.validate().unwrap();
    let (log, store) = t.node.into_storage();
    let restarted = Test::start(options(1, &[1]), log, store);
    let mut restarted = restarted;
    let effects = restarted.effects();
    assert_eq!(effects[0], Effect::LoadSnapshot { snapshot_id: id }, "a restart loads the latest snapshot first");
    let Effect::Commit { batches, .. } = &effects[1] else { panic!("{effects:?}") };
    assert_eq!(batches[0].base_offset, o(5), "then commits from its end");
}

#[test]
fn a_snapshot_install_keeps_a_matching_longer_log() {
    // A late redirect: the follower already holds the snapshot's last record, (5, epoch 1), and
    // records after it that it may have acknowledged.
    let log = log_of([data(0, 1, 3), data(3, 1, 3), data(6, 2, 2)]);
    let mut t = Test::with_state(1, &[1, 2, 3], state(2, Some(3), None), log);
    let (fetch_id, _) = t.request_to(3);
    let id = SnapshotId::new(o(6), e(1));
    let mut answer = fetch_response(2, 3, Some(6), vec![]);
    if let MessageBody::FetchResponse(r) = &mut answer {
        r.snapshot_id = Some(id);
    }
    t.deliver(3, fetch_id, answer).unwrap();
    let (download, body) = t.request_to(3);
    assert!(matches!(body, MessageBody::FetchSnapshotRequest(_)));
    let whole = encode_snapshot(id, b"six");
    t.deliver(3, download, snapshot_part(id, &whole, 0, whole.len())).unwrap();
    assert!(t.effects().contains(&Effect::LoadSnapshot { snapshot_id: id }));
    assert_eq!((t.node.log().log_start_offset(), t.node.log().log_end_offset()), (o(6), o(8)), "only trimmed below");
    assert_eq!(t.node.log().read(o(6), usize::MAX).unwrap(), vec![data(6, 2, 2)]);
    assert_eq!(t.node.log().last_fetched_epoch(), e(2));
}

#[test]
fn a_snapshot_install_empties_a_log_that_does_not_reach_it() {
    let log = log_of([data(0, 1, 3)]);
    let mut t = Test::with_state(1, &[1, 2, 3], state(2, Some(3), None), log);
    let (fetch_id, _) = t.request_to(3);
    let id = SnapshotId::new(o(6), e(1));
    let mut answer = fetch_response(2, 3, Some(6), vec![]);
    if let MessageBody::FetchResponse(r) = &mut answer {
        r.snapshot_id = Some(id);
    }
    t.deliver(3, fetch_id, answer).unwrap();
    let (download, _) = t.request_to(3);
    let whole = encode_snapshot(id, b"six");
    t.deliver(3, download, snapshot_part(id, &whole, 0, whole.len())).unwrap();
    assert_eq!((t.node.log().log_start_offset(), t.node.log().log_end_offset()), (o(6), o(6)));
}
