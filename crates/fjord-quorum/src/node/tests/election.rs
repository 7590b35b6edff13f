//! Elections: pre-vote, vote, the vote-granting matrix, BeginQuorumEpoch, EndQuorumEpoch,
//! check-quorum (`KafkaRaftClientTest`, `KafkaRaftClientPreVoteTest`).

use super::*;
use crate::ids::DirectoryId;
use crate::record::ControlRecord;

#[test]
fn single_voter_leads_at_once_and_commits_without_a_timer() {
    let mut t = Test::fresh(1, &[1]);
    let effects = t.effects();
    let [Effect::Commit { batches, high_watermark }, Effect::LeaderChange { epoch, leader_id }, Effect::WakeUp { .. }] =
        effects.as_slice()
    else {
        panic!("unexpected effects {effects:?}")
    };
    assert_eq!((*epoch, *leader_id, *high_watermark), (e(1), Some(NodeId(1)), o(1)));
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].kind, BatchKind::Control);
    let ControlRecord::LeaderChange(change) = ControlRecord::decode(&batches[0].records[0]).unwrap();
    assert_eq!((change.leader_id, change.voters.clone()), (NodeId(1), vec![NodeId(1)]));
    assert_eq!(t.stored(), state(1, Some(1), Some(1)));
    // The default linger is 25 ms, but a lone voter does not wait: propose returns committed.
    let last = t.node.propose(t.now, vec![b"a".to_vec(), b"b".to_vec()]).unwrap();
    assert_eq!(last, OffsetAndEpoch::new(o(2), e(1)));
    assert_eq!(
        t.effects(),
        vec![Effect::Commit {
            batches: vec![Batch {
                base_offset: o(1),
                epoch: e(1),
                append_timestamp: t.now,
                kind: BatchKind::Data,
                records: vec![b"a".to_vec(), b"b".to_vec()]
            }],
            high_watermark: o(3)
        }]
    );
    assert_eq!(t.node.log().flushed_end_offset(), o(3));
}

#[test]
fn three_voters_elect_with_pre_votes_first_and_commit_the_leader_change() {
    let mut t = Test::fresh(1, &[1, 2, 3]);
    assert_eq!(t.node.role(), RoleKind::Unattached);
    assert_eq!(t.stored(), state(0, None, None));
    t.effects();
    t.advance(2_000);
    // Pre-votes in the current epoch: nothing is persisted for them.
    let sent = t.sent();
    assert_eq!(sent.len(), 2);
    for (to, m) in &sent {
        assert_eq!(m.body, vote_request(1, 0, 0, 0, true, to.0));
    }
    assert_eq!(t.node.role(), RoleKind::Prospective);
    assert_eq!(t.stored(), state(0, None, None));
    t.deliver(2, sent[0].1.correlation_id, vote_response(e(0), None, true)).unwrap();
    // A majority of pre-votes: a candidate in epoch 1, its vote for itself durable first.
    assert_eq!(t.node.role(), RoleKind::Candidate);
    assert_eq!(t.stored(), state(1, None, Some(1)));
    let effects = t.effects();
    assert!(effects.contains(&Effect::LeaderChange { epoch: e(1), leader_id: None }));
    let votes = sends(effects);
    assert_eq!(
        votes.iter().map(|(to, m)| (to.0, m.body.clone())).collect::<Vec<_>>(),
        vec![(2, vote_request(1, 1, 0, 0, false, 2)), (3, vote_request(1, 1, 0, 0, false, 3))]
    );
    t.deliver(3, votes[1].1.correlation_id, vote_response(e(1), None, true)).unwrap();
    assert_eq!(t.node.role(), RoleKind::Leader);
    assert_eq!(t.stored(), state(1, Some(1), Some(1)));
    assert_eq!(t.node.log().end_offset(), OffsetAndEpoch::new(o(1), e(1)), "the LeaderChange record is appended");
    assert_eq!(t.node.log().flushed_end_offset(), o(1), "and flushed");
    let begins: Vec<(i32, MessageBody)> = t.sent().into_iter().map(|(to, m)| (to.0, m.body)).collect();
    assert_eq!(begins, vec![(2, begin_epoch(1, 1, 2)), (3, begin_epoch(1, 1, 3))]);
    assert_eq!(t.node.high_watermark(), None);
    // KAFKA-12619: a follower at the epoch start has not got the LeaderChange record yet.
    t.deliver(2, 50, fetch(2, 1, 0, 0, 500)).unwrap();
    assert_eq!(t.node.high_watermark(), None);
    let effects = t.effects();
    assert!(!effects.iter().any(|e| matches!(e, Effect::Commit { .. } | Effect::LeaderChange { .. })));
    t.deliver(2, 51, fetch(2, 1, 1, 1, 500)).unwrap();
    assert_eq!(t.node.high_watermark(), Some(o(1)));
    let effects = t.effects();
    let kinds: Vec<&str> = effects
        .iter()
        .map(|e| match e {
            Effect::Send { .. } => "send",
            Effect::Commit { .. } => "commit",
            Effect::LeaderChange { .. } => "leader",
            Effect::LoadSnapshot { .. } => "load",
            Effect::WakeUp { .. } => "wake",
        })
        .collect();
    // The fetch is answered at once (its HW is behind), then the commit, then the leader
    // announces itself: its state machine is now current.
    assert_eq!(kinds, vec!["send", "commit", "leader"]);
    assert!(effects.contains(&Effect::LeaderChange { epoch: e(1), leader_id: Some(NodeId(1)) }));
}

#[test]
fn unattached_grants_one_vote_per_epoch_and_makes_it_durable_first() {
    let mut t = Test::fresh(1, &[1, 2, 3]);
    t.effects();
    t.deliver(2, 7, vote_request(2, 1, 0, 0, false, 1)).unwrap();
    assert_eq!(t.stored(), state(1, None, Some(2)), "the vote is on disk");
    let sent = t.sent();
    assert_eq!(
        sent[0].1,
        message(
            7,
            MessageBody::VoteResponse(VoteResponse {
                error: ErrorCode::None,
                leader_epoch: e(1),
                leader_id: None,
                vote_granted: true
            })
        )
    );
    t.deliver(3, 8, vote_request(3, 1, 0, 0, false, 1)).unwrap();
    assert_eq!(granted(&t.sent()[0].1.body), Some((ErrorCode::None, false)), "already voted for 2 in epoch 1");
    t.deliver(2, 9, vote_request(2, 1, 0, 0, false, 1)).unwrap();
    assert_eq!(granted(&t.sent()[0].1.body), Some((ErrorCode::None, true)), "a retry of the same vote");
    t.deliver(3, 10, vote_request(3, 1, 0, 0, true, 1)).unwrap();
    assert_eq!(granted(&t.sent()[0].1.body), Some((ErrorCode::None, true)), "pre-votes bind nothing");
    assert_eq!(t.stored(), state(1, None, Some(2)));
}

#[test]
fn votes_go_only_to_logs_at_least_as_up_to_date() {
    let log = log_of([data(0, 2, 3)]);
    let mut t = Test::with_state(1, &[1, 2, 3], state(2, None, None), log);
    t.effects();
    for (last_offset, last_epoch, expected) in [(5, 1, false), (2, 2, false), (3, 2, true)] {
        t.deliver(2, 1, vote_request(2, 3, last_offset, last_epoch, true, 1)).unwrap();
        assert_eq!(
            granted(&t.sent()[0].1.body),
            Some((ErrorCode::None, expected)),
            "pre-vote ({last_offset}, {last_epoch})"
        );
    }
    t.deliver(2, 2, vote_request(2, 3, 2, 2, false, 1)).unwrap();
    assert_eq!(granted(&t.sent()[0].1.body), Some((ErrorCode::None, false)));
    assert_eq!(t.stored(), state(3, None, None), "the higher epoch is adopted, no vote cast");
}

#[test]
fn follower_grants_pre_votes_only_until_it_has_fetched() {
    let mut t = Test::with_state(1, &[1, 2, 3], state(2, Some(3), None), MemoryLog::new());
    assert_eq!(t.node.role(), RoleKind::Follower);
    let (fetch_id, body) = t.request_to(3);
    assert!(matches!(body, MessageBody::FetchRequest(_)));
    t.deliver(2, 1, vote_request(2, 2, 0, 0, true, 1)).unwrap();
    assert_eq!(granted(&t.sent()[0].1.body), Some((ErrorCode::None, true)), "the leader may be gone");
    t.deliver(2, 2, vote_request(2, 3, 0, 0, false, 1)).unwrap();
    assert_eq!(t.node.role(), RoleKind::Unattached, "a higher epoch unseats the leader");
    let mut t = Test::with_state(1, &[1, 2, 3], state(2, Some(3), None), MemoryLog::new());
    let (fetch_id_2, _) = t.request_to(3);
    assert_eq!(fetch_id, fetch_id_2);
    t.deliver(3, fetch_id, fetch_response(2, 3, None, vec![])).unwrap();
    t.effects();
    t.deliver(2, 1, vote_request(2, 2, 0, 0, true, 1)).unwrap();
    assert_eq!(granted(&t.sent()[0].1.body), Some((ErrorCode::None, false)), "the leader answered: it is alive");
    t.deliver(2, 1, vote_request(2, 2, 0, 0, false, 1)).unwrap();
    assert_eq!(granted(&t.sent()[0].1.body), Some((ErrorCode::None, false)), "a follower never grants a binding vote");
}

#[test]
fn leaders_and_candidates_refuse_binding_votes() {
    let mut t = Test::fresh(1, &[1, 2, 3]);
    t.elect();
    t.effects();
    for pre_vote in [false, true] {
        t.deliver(2, 1, vote_request(2, 1, 1, 0, pre_vote, 1)).unwrap();
        assert_eq!(granted(&t.sent()[0].1.body), Some((ErrorCode::None, false)), "leader, pre_vote {pre_vote}");
    }
    let mut t = Test::with_state(1, &[1, 2, 3], state(4, None, Some(1)), MemoryLog::new());
    assert_eq!(t.node.role(), RoleKind::Candidate);
    t.effects();
    t.deliver(2, 1, vote_request(2, 4, 0, 0, false, 1)).unwrap();
    assert_eq!(granted(&t.sent()[0].1.body), Some((ErrorCode::None, false)), "a candidate voted for itself");
    t.deliver(2, 1, vote_request(2, 4, 0, 0, true, 1)).unwrap();
    assert_eq!(granted(&t.sent()[0].1.body), Some((ErrorCode::None, true)));
}

#[test]
fn observers_never_vote_nor_stand() {
    let mut t = Test::fresh(4, &[1, 2, 3]);
    assert!(!t.node.is_voter());
    t.effects();
    t.deliver(2, 1, vote_request(2, 1, 0, 0, false, 4)).unwrap();
    assert_eq!(granted(&t.sent()[0].1.body), Some((ErrorCode::None, false)));
    assert_eq!(t.stored(), state(1, None, None));
    for _ in 0..10 {
        t.advance(5_000);
        assert_eq!(t.node.role(), RoleKind::Unattached);
        assert!(t.sent().iter().all(|(_, m)| matches!(m.body, MessageBody::FetchRequest(_))), "only fetches");
    }
}

#[test]
fn vote_requests_are_validated() {
    let mut t = Test::with_state(1, &[1, 2, 3], state(5, None, None), MemoryLog::new());
    t.effects();
    let cases = [
        (vote_request(2, 4, 0, 0, false, 1), ErrorCode::FencedLeaderEpoch),
        (vote_request(2, 6, 0, 6, false, 1), ErrorCode::InvalidRequest),
        (vote_request(2, 6, 0, 7, true, 1), ErrorCode::InvalidRequest),
        (vote_request(2, 6, -1, 0, false, 1), ErrorCode::InvalidRequest),
    ];
    for (request, error) in cases {
        t.deliver(2, 1, request).unwrap();
        assert_eq!(granted(&t.sent()[0].1.body), Some((error, false)));
    }
    assert_eq!(t.stored(), state(5, None, None));
}

#[test]
fn a_replica_key_with_another_directory_is_not_the_voter() {
    // KAFKA-14077: node 2 lost its disk and came back with a new directory id.
    let (d1, d2, d2_new) = (DirectoryId([1; 16]), DirectoryId([2; 16]), DirectoryId([9; 16]));
    let voters =
        VoterSet::from_keys([ReplicaKey::with_directory(1, d1), ReplicaKey::with_directory(2, d2), ReplicaKey::of(3)])
            .unwrap();
    let options = NodeOptions { local: ReplicaKey::with_directory(1, d1), voters, ..options(1, &[1]) };
    let mut t = Test::start(options, MemoryLog::new(), MemoryQuorumStateStore::new());
    t.effects();
    let request = |candidate: ReplicaKey, voter: ReplicaKey| {
        MessageBody::VoteRequest(VoteRequest {
            candidate_epoch: e(1),
            candidate_key: candidate,
            voter_key: voter,
            last_offset_epoch: e(0),
            last_offset: o(0),
            pre_vote: false,
        })
    };
    t.deliver(2, 1, request(ReplicaKey::with_directory(2, d2_new), ReplicaKey::with_directory(1, d1))).unwrap();
    assert_eq!(granted(&t.sent()[0].1.body), Some((ErrorCode::None, false)), "not a voter any more");
    t.deliver(2, 2, request(ReplicaKey::with_directory(2, d2), ReplicaKey::with_directory(1, d2_new))).unwrap();
    assert_eq!(granted(&t.sent()[0].1.body), Some((INVALID_VOTER_KEY, false)), "meant for another replica");
    t.deliver(2, 3, request(ReplicaKey::with_directory(2, d2), ReplicaKey::with_directory(1, d1))).unwrap();
    assert_eq!(granted(&t.sent()[0].1.body), Some((ErrorCode::None, true)));
}

#[test]
fn a_prospective_that_loses_goes_back_to_its_leader() {
    let mut t = Test::with_state(1, &[1, 2, 3], state(2, Some(3), None), MemoryLog::new());
    t.effects();
    t.advance(2_000);
    assert_eq!(t.node.role(), RoleKind::Prospective);
    let sent = t.sent();
    for (to, m) in sent.iter().filter(|(_, m)| matches!(m.body, MessageBody::VoteRequest(_))) {
        t.deliver(to.0, m.correlation_id, vote_response(e(2), Some(3), false)).unwrap();
    }
    assert_eq!((t.node.role(), t.node.epoch(), t.node.leader_id()), (RoleKind::Follower, e(2), Some(NodeId(3))));
    assert_eq!(t.stored(), state(2, Some(3), None), "pre-votes changed nothing on disk");
}

#[test]
fn a_candidate_that_times_out_polls_again_before_a_new_epoch() {
    let mut t = Test::fresh(1, &[1, 2, 3]);
    t.effects();
    t.advance(2_000);
    let (to, m) = t.sent().remove(0);
    t.deliver(to.0, m.correlation_id, vote_response(e(0), None, true)).unwrap();
    assert_eq!((t.node.role(), t.node.epoch()), (RoleKind::Candidate, e(1)));
    t.effects();
    t.advance(2_000);
    assert_eq!((t.node.role(), t.node.epoch()), (RoleKind::Prospective, e(1)));
    assert!(
        t.sent()
            .iter()
            .all(|(_, m)| matches!(&m.body, MessageBody::VoteRequest(r) if r.pre_vote && r.candidate_epoch == e(1)))
    );
}

#[test]
fn stale_responses_are_ignored() {
    let mut t = Test::fresh(1, &[1, 2, 3]);
    t.advance(2_000);
    let pre_votes = t.sent();
    t.deliver(3, 1, begin_epoch(3, 5, 1)).unwrap();
    assert_eq!((t.node.role(), t.node.epoch()), (RoleKind::Follower, e(5)));
    t.effects();
    for (to, m) in pre_votes {
        t.deliver(to.0, m.correlation_id, vote_response(e(0), None, true)).unwrap();
    }
    assert_eq!((t.node.role(), t.node.epoch()), (RoleKind::Follower, e(5)));
    assert!(t.sent().is_empty());
}

#[test]
fn the_cluster_id_is_checked_on_every_message() {
    let mut t = Test::fresh(1, &[1, 2, 3]);
    t.effects();
    let foreign = |body| Message { cluster_id: "other".into(), correlation_id: 3, body };
    for request in
        [vote_request(2, 1, 0, 0, false, 1), begin_epoch(2, 1, 1), end_epoch(2, 1, &[1]), fetch(2, 0, 0, 0, 0)]
    {
        t.node.handle_message(t.now, NodeId(2), foreign(request)).unwrap();
        let response = t.sent().remove(0).1;
        let error = match response.body {
            MessageBody::VoteResponse(r) => r.error,
            MessageBody::BeginQuorumEpochResponse(r) | MessageBody::EndQuorumEpochResponse(r) => r.error,
            MessageBody::FetchResponse(r) => r.error,
            other => panic!("{other:?}"),
        };
        assert_eq!(error, ErrorCode::InconsistentClusterId);
    }
    t.node
        .handle_message(t.now, NodeId(2), foreign(MessageBody::BeginQuorumEpochResponse(epoch_ok(9, Some(2)))))
        .unwrap();
    assert_eq!((t.node.epoch(), t.stored()), (e(0), state(0, None, None)), "nothing from another cluster counts");
}

#[test]
fn begin_quorum_epoch_makes_a_voter_follow() {
    let mut t = Test::fresh(1, &[1, 2, 3]);
    t.effects();
    t.deliver(2, 4, begin_epoch(2, 3, 1)).unwrap();
    assert_eq!(t.stored(), state(3, Some(2), None));
    let sent = t.sent();
    assert_eq!(sent[0].1, message(4, MessageBody::BeginQuorumEpochResponse(epoch_ok(3, Some(2)))));
    assert_eq!(sent[1].0, NodeId(2));
    assert_eq!(
        sent[1].1.body,
        MessageBody::FetchRequest(FetchRequest { high_watermark: None, ..fetch_fields(1, 3, 0, 0) })
    );
    t.deliver(3, 5, begin_epoch(3, 2, 1)).unwrap();
    assert!(
        matches!(&t.sent()[0].1.body, MessageBody::BeginQuorumEpochResponse(r) if r.error == ErrorCode::FencedLeaderEpoch)
    );
}

pub(super) fn fetch_fields(replica: i32, epoch: i32, offset: i64, last_epoch: i32) -> FetchRequest {
    let MessageBody::FetchRequest(mut request) = fetch(replica, epoch, offset, last_epoch, 500) else { unreachable!() };
    request.max_bytes = QuorumConfig::default().fetch_max_bytes;
    request
}

#[test]
fn end_quorum_epoch_backs_off_by_position_among_successors() {
    let mut t = Test::with_state(1, &[1, 2, 3], state(2, Some(3), None), MemoryLog::new());
    t.effects();
    // Second of two successors: (1000 >> 1) << 0 = 500 ms.
    t.deliver(3, 1, end_epoch(3, 2, &[2, 1])).unwrap();
    t.advance(499);
    assert_eq!(t.node.role(), RoleKind::Follower);
    t.advance(1);
    assert_eq!(t.node.role(), RoleKind::Prospective);
    let mut t = Test::with_state(1, &[1, 2, 3], state(2, Some(3), None), MemoryLog::new());
    t.deliver(3, 1, end_epoch(3, 2, &[1, 2])).unwrap();
    assert_eq!(t.node.role(), RoleKind::Prospective, "the first successor stands at once");
}

#[test]
fn a_leader_without_fetches_from_a_majority_resigns() {
    // KAFKA-15489: check-quorum at 1.5 x controller.quorum.fetch.timeout.ms.
    let mut t = Test::fresh(1, &[1, 2, 3]);
    t.elect();
    t.effects();
    t.advance(1_000);
    t.deliver(2, 1, fetch(2, 1, 1, 1, 0)).unwrap();
    t.advance(2_999);
    assert_eq!(t.node.role(), RoleKind::Leader);
    t.effects();
    t.advance(1);
    assert_eq!(t.node.role(), RoleKind::Resigned);
    assert_eq!(t.stored(), state(1, Some(1), Some(1)), "nothing new on disk: it restores as resigned anyway");
    let sent: Vec<(i32, MessageBody)> = t.sent().into_iter().map(|(to, m)| (to.0, m.body)).collect();
    assert_eq!(sent, vec![(2, end_epoch(1, 1, &[2, 3])), (3, end_epoch(1, 1, &[2, 3]))], "the most caught up first");
    // After an election timeout it leaves its epoch, and (its timer long run out) stands.
    t.advance(2_000);
    assert_eq!((t.node.role(), t.node.epoch()), (RoleKind::Prospective, e(2)));
    assert_eq!(t.stored(), state(2, None, None));
}

#[test]
fn a_single_voter_never_resigns_for_check_quorum() {
    // KAFKA-16144.
    let mut t = Test::fresh(1, &[1]);
    for _ in 0..20 {
        t.advance(10_000);
    }
    assert_eq!((t.node.role(), t.node.epoch()), (RoleKind::Leader, e(1)));
}

#[test]
fn begin_quorum_epoch_is_repeated_to_voters_that_do_not_fetch() {
    // KAFKA-16536: every fetch.timeout.ms / 2.
    let mut t = Test::fresh(1, &[1, 2, 3]);
    t.elect();
    for (to, m) in t.sent() {
        t.deliver(to.0, m.correlation_id, MessageBody::BeginQuorumEpochResponse(epoch_ok(1, Some(1)))).unwrap();
    }
    t.advance(500);
    t.deliver(2, 1, fetch(2, 1, 1, 1, 0)).unwrap();
    t.effects();
    t.advance(500);
    let sent: Vec<(i32, MessageBody)> = t.sent().into_iter().map(|(to, m)| (to.0, m.body)).collect();
    assert_eq!(sent, vec![(3, begin_epoch(1, 1, 3))], "voter 2 fetched half a second ago");
}

#[test]
fn graceful_resign_names_successors() {
    let mut t = Test::fresh(1, &[1, 2, 3]);
    t.elect();
    t.deliver(3, 1, fetch(3, 1, 1, 1, 0)).unwrap();
    t.effects();
    t.node.resign(t.now).unwrap();
    assert_eq!(t.node.role(), RoleKind::Resigned);
    let sent = t.sent();
    assert!(sent.iter().all(|(_, m)| m.body == end_epoch(1, 1, &[3, 2])));
    assert!(matches!(t.node.propose(t.now, vec![vec![1]]), Err(Error::NotLeader { leader: Some(NodeId(1)), .. })));
    for (to, m) in sent {
        t.deliver(to.0, m.correlation_id, MessageBody::EndQuorumEpochResponse(epoch_ok(1, Some(1)))).unwrap();
    }
    t.advance(100);
    assert!(t.sent().is_empty(), "every voter acknowledged");
}
