//! Fetch on both sides: validation, divergence, parking, the high watermark, flushing, observers
//! and proposals (`KafkaRaftClientTest`).

use super::*;

/// A leader of epoch 3 over a log of epoch 1 [0, 3) and epoch 2 [3, 5); its LeaderChange is at 5.
fn leader_with_history() -> Test {
    let log = log_of([data(0, 1, 3), data(3, 2, 2)]);
    let mut t = Test::with_state(1, &[1, 2, 3], state(2, None, None), log);
    t.elect();
    assert_eq!((t.node.epoch(), t.node.epoch_start_offset()), (e(3), Some(o(5))));
    t.effects();
    t
}

fn response(t: &mut Test) -> FetchResponse {
    let mut sent = t.sent();
    assert_eq!(sent.len(), 1, "one answer: {sent:?}");
    match sent.remove(0).1.body {
        MessageBody::FetchResponse(r) => r,
        other => panic!("{other:?}"),
    }
}

#[test]
fn divergence_is_answered_at_once() {
    // KAFKA-15100: never parked, whatever the fetch's max wait.
    let mut t = leader_with_history();
    t.deliver(2, 1, fetch(2, 3, 4, 1, 500)).unwrap();
    let r = response(&mut t);
    assert_eq!(r.diverging_epoch, Some(OffsetAndEpoch::new(o(3), e(1))));
    assert!(r.records.is_empty());
    // An epoch the leader never had ends where the next one it had begins.
    t.deliver(2, 2, fetch(2, 3, 9, 3, 500)).unwrap();
    assert_eq!(response(&mut t).diverging_epoch, Some(OffsetAndEpoch::new(o(6), e(3))));
}

#[test]
fn fetches_are_validated() {
    let mut t = leader_with_history();
    for (request, error) in [
        (fetch(2, 2, 0, 0, 0), ErrorCode::FencedLeaderEpoch),
        (fetch(2, 4, 0, 0, 0), ErrorCode::UnknownLeaderEpoch),
        (fetch(2, 3, 0, 4, 0), ErrorCode::InvalidRequest),
        (fetch(2, 3, -1, 0, 0), ErrorCode::InvalidRequest),
    ] {
        t.deliver(2, 1, request).unwrap();
        let r = response(&mut t);
        assert_eq!((r.error, r.leader_epoch, r.leader_id), (error, e(3), Some(NodeId(1))));
    }
    let mut follower = Test::with_state(1, &[1, 2, 3], state(2, Some(3), None), MemoryLog::new());
    follower.effects();
    follower.deliver(2, 1, fetch(2, 2, 0, 0, 0)).unwrap();
    let r = response(&mut follower);
    assert_eq!((r.error, r.leader_id), (ErrorCode::NotLeaderOrFollower, Some(NodeId(3))), "tells who leads");
}

#[test]
fn an_empty_fetch_waits_at_the_leader_until_records_arrive() {
    let mut t = leader_with_history();
    t.deliver(2, 1, fetch(2, 3, 6, 3, 500)).unwrap();
    t.deliver(3, 1, fetch(3, 3, 6, 3, 500)).unwrap();
    t.effects();
    assert_eq!(t.node.high_watermark(), Some(o(6)));
    // Caught up, and its high watermark is current: parked.
    let mut request = fetch(2, 3, 6, 3, 500);
    if let MessageBody::FetchRequest(r) = &mut request {
        r.high_watermark = Some(o(6));
    }
    t.deliver(2, 2, request).unwrap();
    assert!(t.sent().is_empty());
    t.node.propose(t.now, vec![b"x".to_vec()]).unwrap();
    assert!(t.sent().is_empty(), "the proposal lingers");
    t.advance(25);
    let r = response(&mut t);
    assert_eq!((r.records.len(), r.records[0].base_offset), (1, o(6)));
    // A parked fetch with nothing to say is answered empty when its wait runs out.
    let mut request = fetch(3, 3, 7, 3, 500);
    if let MessageBody::FetchRequest(r) = &mut request {
        r.high_watermark = Some(o(6));
    }
    t.deliver(3, 3, request).unwrap();
    let r = response(&mut t);
    assert_eq!(r.high_watermark, Some(o(7)), "answered at once: its fetch moved the high watermark");
    let mut request = fetch(3, 3, 7, 3, 500);
    if let MessageBody::FetchRequest(r) = &mut request {
        r.high_watermark = Some(o(7));
    }
    t.deliver(3, 4, request).unwrap();
    t.advance(499);
    assert!(t.sent().is_empty());
    t.advance(1);
    let r = response(&mut t);
    assert!(r.records.is_empty());
}

#[test]
fn losing_leadership_answers_parked_fetches() {
    let mut t = leader_with_history();
    t.deliver(2, 1, fetch(2, 3, 6, 3, 0)).unwrap();
    t.effects();
    let mut request = fetch(2, 3, 6, 3, 500);
    if let MessageBody::FetchRequest(r) = &mut request {
        r.high_watermark = Some(o(6));
    }
    t.deliver(2, 2, request).unwrap();
    assert!(t.sent().is_empty());
    t.deliver(3, 9, begin_epoch(3, 4, 1)).unwrap();
    let sent = t.sent();
    assert!(matches!(&sent[0].1.body, MessageBody::FetchResponse(r) if r.error == ErrorCode::NotLeaderOrFollower));
    assert_eq!(sent[0].1.correlation_id, 2);
}

#[test]
fn proposals_linger_and_share_one_batch() {
    let mut t = leader_with_history();
    commit_leader_change(&mut t);
    let first = t.node.propose(t.now, vec![b"a".to_vec()]).unwrap();
    t.advance(10);
    let second = t.node.propose(t.now, vec![b"b".to_vec(), b"c".to_vec()]).unwrap();
    assert_eq!((first.offset, second.offset, second.epoch), (o(6), o(8), e(3)));
    assert_eq!(t.node.log().log_end_offset(), o(6), "nothing appended yet");
    t.advance(15);
    let appended = t.node.log().read(o(6), usize::MAX).unwrap();
    assert_eq!(appended.len(), 1);
    assert_eq!(appended[0].records, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    assert_eq!(t.node.log().flushed_end_offset(), o(9), "flushed before it counts");
    assert!(matches!(t.node.propose(t.now, vec![]), Err(Error::InvalidProposal(_))));
}

/// A voter's fetch past the LeaderChange record commits it, and the leader announces itself.
fn commit_leader_change(t: &mut Test) {
    t.deliver(2, 1, fetch(2, 3, 6, 3, 0)).unwrap();
    assert_eq!(t.node.high_watermark(), Some(o(6)));
    t.effects();
}

#[test]
fn a_leader_refuses_proposals_until_its_leader_change_is_committed() {
    let mut t = leader_with_history();
    assert_eq!(t.node.log().log_end_offset(), o(6), "the LeaderChange record is at 5");
    let early = t.node.propose(t.now, vec![b"a".to_vec()]);
    assert!(
        matches!(&early, Err(error @ Error::LeaderNotReady { epoch, epoch_start_offset }) if *epoch == e(3) && *epoch_start_offset == o(5) && !error.is_fatal()),
        "{early:?}"
    );
    t.advance(100);
    assert_eq!(t.node.log().log_end_offset(), o(6), "nothing was queued behind the refusal");
    t.deliver(2, 1, fetch(2, 3, 6, 3, 0)).unwrap();
    assert!(t.effects().contains(&Effect::LeaderChange { epoch: e(3), leader_id: Some(NodeId(1)) }));
    assert_eq!(t.node.propose(t.now, vec![b"a".to_vec()]).unwrap(), OffsetAndEpoch::new(o(6), e(3)));
}

#[test]
fn a_follower_refuses_proposals_and_names_its_leader() {
    let mut t = Test::with_state(1, &[1, 2, 3], state(2, Some(3), None), MemoryLog::new());
    assert!(matches!(
        t.node.propose(t.now, vec![vec![1]]),
        Err(Error::NotLeader { leader: Some(NodeId(3)), epoch }) if epoch == e(2)
    ));
    assert!(t.node.describe_quorum(t.now).is_err(), "only the leader describes the quorum");
}

/// A voter following 3 in epoch 3 over `log`, with its first fetch answered by `answer`.
fn follower(log: MemoryLog, voters: &[i32], local: i32) -> (Test, u64) {
    let mut t = Test::with_state(local, voters, state(3, Some(3), None), log);
    let (id, body) = t.request_to(3);
    assert!(matches!(body, MessageBody::FetchRequest(_)));
    (t, id)
}

#[test]
fn a_voter_flushes_before_it_fetches_again_and_an_observer_need_not() {
    for (local, voters, flushes) in [(1, &[1, 2, 3][..], true), (4, &[1, 2, 3][..], false)] {
        let (mut t, id) = follower(MemoryLog::new(), voters, local);
        t.deliver(3, id, fetch_response(3, 3, Some(1), vec![data(0, 1, 2), data(2, 3, 1)])).unwrap();
        assert_eq!(t.node.log().log_end_offset(), o(3));
        assert_eq!(t.node.log().flushed_end_offset() == o(3), flushes, "node {local}");
        assert_eq!(t.node.high_watermark(), Some(o(1)));
        let (_, next) = t.request_to(3);
        assert!(matches!(next, MessageBody::FetchRequest(r) if r.fetch_offset == o(3) && r.last_fetched_epoch == e(3)));
    }
}

#[test]
fn the_follower_high_watermark_is_the_leaders_capped_by_its_log() {
    let (mut t, id) = follower(MemoryLog::new(), &[1, 2, 3], 1);
    t.deliver(3, id, fetch_response(3, 3, Some(100), vec![data(0, 1, 4)])).unwrap();
    assert_eq!(t.node.high_watermark(), Some(o(4)));
    let commits: Vec<Effect> = t.effects().into_iter().filter(|e| matches!(e, Effect::Commit { .. })).collect();
    assert_eq!(commits, vec![Effect::Commit { batches: vec![data(0, 1, 4)], high_watermark: o(4) }]);
}

#[test]
fn answers_that_do_not_continue_the_log_are_dropped() {
    let (mut t, id) = follower(log_of([data(0, 1, 2)]), &[1, 2, 3], 1);
    t.deliver(3, id, fetch_response(3, 3, Some(1), vec![data(5, 3, 1)])).unwrap();
    assert_eq!(t.node.log().log_end_offset(), o(2));
    assert_eq!(t.node.high_watermark(), None, "nothing from a response that was refused");
}

#[test]
fn a_follower_truncates_to_the_diverging_epoch_end() {
    let (mut t, id) = follower(log_of([data(0, 1, 2), data(2, 1, 2), data(4, 1, 1)]), &[1, 2, 3], 1);
    t.deliver(3, id, fetch_response(3, 3, Some(2), vec![])).unwrap();
    assert_eq!(t.node.high_watermark(), Some(o(2)));
    let (id, _) = t.request_to(3);
    let mut answer = fetch_response(3, 3, Some(2), vec![]);
    if let MessageBody::FetchResponse(r) = &mut answer {
        r.diverging_epoch = Some(OffsetAndEpoch::new(o(4), e(1)));
    }
    t.deliver(3, id, answer).unwrap();
    assert_eq!(t.node.log().log_end_offset(), o(4));
    let (_, next) = t.request_to(3);
    assert!(matches!(next, MessageBody::FetchRequest(r) if r.fetch_offset == o(4)), "fetches again at once");
}

#[test]
fn a_follower_refuses_to_truncate_below_its_high_watermark() {
    let (mut t, id) = follower(log_of([data(0, 1, 2), data(2, 1, 2), data(4, 1, 1)]), &[1, 2, 3], 1);
    t.deliver(3, id, fetch_response(3, 3, Some(4), vec![])).unwrap();
    let (id, _) = t.request_to(3);
    let mut answer = fetch_response(3, 3, Some(4), vec![]);
    if let MessageBody::FetchResponse(r) = &mut answer {
        r.diverging_epoch = Some(OffsetAndEpoch::new(o(2), e(1)));
    }
    let error = t.deliver(3, id, answer).unwrap_err();
    assert!(matches!(error, Error::InvariantViolated(_)), "{error}");
    assert!(t.sent().is_empty(), "a failed step emits nothing");
    assert_eq!(t.node.log().log_end_offset(), o(5), "and truncated nothing");
    assert!(matches!(t.node.tick(t.now), Err(Error::Failed(_))), "the node refuses further input");
}

#[test]
fn an_observer_finds_the_leader_through_any_voter() {
    let mut t = Test::fresh(4, &[1, 2, 3]);
    let sent = t.sent();
    let (to, m) = &sent[0];
    let mut answer = fetch_response(2, 3, None, vec![]);
    if let MessageBody::FetchResponse(r) = &mut answer {
        r.error = ErrorCode::NotLeaderOrFollower;
    }
    t.deliver(to.0, m.correlation_id, answer).unwrap();
    assert_eq!((t.node.role(), t.node.epoch(), t.node.leader_id()), (RoleKind::Follower, e(2), Some(NodeId(3))));
    let (_, next) = t.request_to(3);
    assert!(matches!(next, MessageBody::FetchRequest(r) if r.replica_key == ReplicaKey::of(4)));
    // Its fetch timeout takes it back to looking, never to an election.
    t.advance(2_000);
    assert_eq!((t.node.role(), t.node.epoch()), (RoleKind::Unattached, e(2)));
}

#[test]
fn describe_quorum_lists_voters_and_observers() {
    let mut t = leader_with_history();
    t.deliver(2, 1, fetch(2, 3, 6, 3, 0)).unwrap();
    t.advance(10);
    t.deliver(7, 1, fetch(7, 3, 2, 1, 0)).unwrap();
    let description = t.node.describe_quorum(t.now).unwrap();
    assert_eq!(
        (description.leader_id, description.leader_epoch, description.high_watermark),
        (NodeId(1), e(3), Some(o(6)))
    );
    let ends: Vec<(i32, Option<Offset>)> =
        description.voters.iter().map(|v| (v.replica_key.id.0, v.log_end_offset)).collect();
    assert_eq!(ends, vec![(1, Some(o(6))), (2, Some(o(6))), (3, None)]);
    assert_eq!(description.observers.len(), 1);
    let observer = &description.observers[0];
    assert_eq!((observer.replica_key, observer.log_end_offset), (ReplicaKey::of(7), Some(o(2))));
    assert_eq!(observer.last_fetch_timestamp, Some(t.now));
    assert_eq!(description.voters[1].last_caught_up_timestamp, Some(Timestamp(t.now.0 - 10)));
}
