use proptest::prelude::*;

use super::*;

const T0: Timestamp = Timestamp(1_000_000);

fn config() -> CoordinatorConfig {
    CoordinatorConfig { group_initial_rebalance_delay_ms: 0, ..CoordinatorConfig::default() }
}

fn join(member_id: &str, instance: Option<&str>) -> JoinRequest {
    JoinRequest {
        group_id: "g".into(),
        member_id: member_id.into(),
        group_instance_id: instance.map(str::to_owned),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), b"sub".to_vec()), ("roundrobin".into(), b"sub".to_vec())],
        require_known_member_id: true,
        supports_skip_assignment: false,
    }
}

fn join_response(effects: &[Effect], request: RequestId) -> Option<JoinResponse> {
    effects.iter().find_map(|e| match e {
        Effect::Respond(id, Response::Join(r)) if *id == request => Some(r.clone()),
        _ => None,
    })
}

fn sync_response(effects: &[Effect], request: RequestId) -> Option<SyncResponse> {
    effects.iter().find_map(|e| match e {
        Effect::Respond(id, Response::Sync(r)) if *id == request => Some(r.clone()),
        _ => None,
    })
}

/// Joins a member from scratch (through MEMBER_ID_REQUIRED); returns its id.
fn new_member(c: &mut GroupCoordinator, now: Timestamp, id: &str, request: RequestId) -> (String, Vec<Effect>) {
    let first = c.handle_join(now, request, join("", None), id.into());
    assert_eq!(join_response(&first, request).unwrap().error, ErrorCode::MemberIdRequired);
    (id.to_owned(), c.handle_join(now, request + 1, join(id, None), "unused".into()))
}

fn sync(
    c: &mut GroupCoordinator,
    now: Timestamp,
    request: RequestId,
    member: &str,
    generation: i32,
    assignments: Vec<(String, Vec<u8>)>,
) -> Vec<Effect> {
    c.handle_sync(
        now,
        request,
        SyncRequest {
            group_id: "g".into(),
            generation_id: generation,
            member_id: member.into(),
            assignments,
            ..SyncRequest::default()
        },
    )
}

fn member_commit(member: &str, generation: i32) -> CommitRequest {
    CommitRequest {
        group_id: "g".into(),
        generation_id: generation,
        member_id: member.into(),
        offsets: vec![("t".into(), 0, 5, -1, None)],
        ..CommitRequest::default()
    }
}

#[test]
fn a_rebalance_gives_the_leader_all_subscriptions_and_relays_its_assignment() {
    let mut c = GroupCoordinator::new(config());
    let (a, effects) = new_member(&mut c, T0, "a", 1);
    let joined = join_response(&effects, 2).expect("a lone member completes the join at once");
    assert_eq!((joined.error, joined.generation_id, joined.leader.as_str()), (ErrorCode::None, 1, "a"));
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(joined.members.len(), 1);
    let effects = sync(&mut c, T0, 3, &a, 1, vec![(a.clone(), b"p0,p1".to_vec())]);
    assert!(matches!(effects[0], Effect::Append(_)), "the generation is persisted first");
    assert_eq!(sync_response(&effects, 3).unwrap().assignment, b"p0,p1");

    // A second member triggers a rebalance; the first learns from its heartbeat.
    let (b, effects) = new_member(&mut c, T0, "b", 10);
    assert!(join_response(&effects, 11).is_none(), "b waits for a to rejoin");
    let heartbeat =
        HeartbeatRequest { group_id: "g".into(), generation_id: 1, member_id: a.clone(), group_instance_id: None };
    assert_eq!(c.handle_heartbeat(T0, heartbeat), ErrorCode::RebalanceInProgress);
    // Before rejoining, a may still commit what it read under generation 1 (as in Kafka).
    let (_, errors) = c.handle_commit(T0, member_commit(&a, 1));
    assert_eq!(errors, vec![ErrorCode::None]);
    let effects = c.handle_join(T0, 12, join(&a, None), "unused".into());
    let (for_a, for_b) = (join_response(&effects, 12).unwrap(), join_response(&effects, 11).unwrap());
    assert_eq!((for_a.generation_id, for_b.generation_id), (2, 2));
    // Between JoinGroup and SyncGroup the assignment is about to change: no commits.
    let (_, errors) = c.handle_commit(T0, member_commit(&a, 2));
    assert_eq!(errors, vec![ErrorCode::RebalanceInProgress]);
    let (_, errors) = c.handle_commit(T0, member_commit(&a, 1));
    assert_eq!(errors, vec![ErrorCode::IllegalGeneration]);
    assert_eq!(for_a.members.len(), 2, "the leader sees everyone");
    assert!(for_b.members.is_empty(), "followers see no one");
    // The follower's sync waits for the leader's.
    assert!(sync(&mut c, T0, 13, &b, 2, vec![]).is_empty());
    let effects = sync(&mut c, T0, 14, &a, 2, vec![(a.clone(), b"p0".to_vec()), (b.clone(), b"p1".to_vec())]);
    assert_eq!(sync_response(&effects, 13).unwrap().assignment, b"p1");
    assert_eq!(sync_response(&effects, 14).unwrap().assignment, b"p0");
    assert_eq!(c.describe_group("g").unwrap().state, GroupState::Stable);
    c.validate().unwrap();
}

#[test]
fn silent_members_expire_and_stale_generations_are_refused() {
    let mut c = GroupCoordinator::new(config());
    let (a, _) = new_member(&mut c, T0, "a", 1);
    sync(&mut c, T0, 3, &a, 1, vec![(a.clone(), vec![])]);
    let (b, _) = new_member(&mut c, T0, "b", 10);
    c.handle_join(T0, 12, join(&a, None), "unused".into());
    sync(&mut c, T0, 13, &a, 2, vec![]);
    // b never heartbeats; after its session timeout it is removed and a must rejoin.
    let later = Timestamp(T0.0 + 10_001);
    let hb = |member: &str, generation| HeartbeatRequest {
        group_id: "g".into(),
        generation_id: generation,
        member_id: member.into(),
        group_instance_id: None,
    };
    assert_eq!(c.handle_heartbeat(Timestamp(T0.0 + 5_000), hb(&a, 2)), ErrorCode::None);
    c.tick(later);
    assert_eq!(c.handle_heartbeat(later, hb(&b, 2)), ErrorCode::UnknownMemberId);
    assert_eq!(c.handle_heartbeat(later, hb(&a, 2)), ErrorCode::RebalanceInProgress);
    let effects = c.handle_join(later, 20, join(&a, None), "unused".into());
    assert_eq!(join_response(&effects, 20).unwrap().generation_id, 3);
    assert_eq!(c.handle_heartbeat(later, hb(&a, 2)), ErrorCode::IllegalGeneration);
    c.validate().unwrap();
}

#[test]
fn a_static_member_rejoins_without_a_rebalance_and_fences_its_old_self() {
    let mut c = GroupCoordinator::new(config());
    let effects = c.handle_join(T0, 1, join("", Some("i1")), "m1".into());
    let joined = join_response(&effects, 1).unwrap();
    assert_eq!(
        (joined.error, joined.member_id.as_str()),
        (ErrorCode::None, "m1"),
        "static members skip MEMBER_ID_REQUIRED"
    );
    sync(&mut c, T0, 2, "m1", 1, vec![("m1".into(), b"mine".to_vec())]);
    // Restarted: same instance id, no member id, and a subscription that differs in its bytes
    // (a restarted consumer owns no partitions yet) but not in its protocols.
    let mut restarted = join("", Some("i1"));
    for (_, metadata) in &mut restarted.protocols {
        metadata.extend_from_slice(b" without owned partitions");
    }
    let effects = c.handle_join(T0, 3, restarted, "m2".into());
    assert!(
        effects.iter().any(|e| matches!(e, Effect::Append(records) if records.len() == 1)),
        "the new member id is persisted"
    );
    let rejoined = join_response(&effects, 3).unwrap();
    assert_eq!((rejoined.error, rejoined.generation_id, rejoined.member_id.as_str()), (ErrorCode::None, 1, "m2"));
    // It was the leader: a pre-v9 client is shown the old leader id so that it computes no
    // assignment the stable group would ignore.
    assert_eq!((rejoined.leader.as_str(), rejoined.members.len(), rejoined.skip_assignment), ("m1", 0, false));
    let effects = sync(&mut c, T0, 4, "m2", 1, vec![]);
    assert_eq!(sync_response(&effects, 4).unwrap().assignment, b"mine", "keeps its assignment");
    let old = HeartbeatRequest {
        group_id: "g".into(),
        generation_id: 1,
        member_id: "m1".into(),
        group_instance_id: Some("i1".into()),
    };
    assert_eq!(c.handle_heartbeat(T0, old), ErrorCode::FencedInstanceId);
    assert_eq!(c.describe_group("g").unwrap().generation, 1);
    // A v9 client is told it leads, with the members, and to skip the assignment.
    let mut v9 = join("", Some("i1"));
    v9.supports_skip_assignment = true;
    let effects = c.handle_join(T0, 5, v9, "m3".into());
    let rejoined = join_response(&effects, 5).unwrap();
    assert_eq!((rejoined.leader.as_str(), rejoined.members.len(), rejoined.skip_assignment), ("m3", 1, true));
    assert_eq!(rejoined.generation_id, 1);
    c.validate().unwrap();
}

#[test]
fn offsets_take_effect_on_replay_and_expire_for_empty_groups() {
    let mut c = GroupCoordinator::new(config());
    let commit = CommitRequest {
        group_id: "g".into(),
        generation_id: -1,
        offsets: vec![("t".into(), 0, 42, 3, Some("meta".into())), ("t".into(), 1, 7, -1, None)],
        ..CommitRequest::default()
    };
    let (records, errors) = c.handle_commit(T0, commit);
    assert_eq!(errors, vec![ErrorCode::None; 2]);
    assert_eq!(c.fetch_offsets("g", Some(&[("t".into(), 0)]))[0].offset, -1, "not before replay");
    for record in &records {
        c.replay(record, T0);
    }
    let fetched = c.fetch_offsets("g", Some(&[("t".into(), 0), ("t".into(), 9)]));
    assert_eq!((fetched[0].offset, fetched[0].leader_epoch, fetched[0].metadata.as_deref()), (42, 3, Some("meta")));
    assert_eq!(fetched[1].offset, -1);
    // A fresh coordinator replaying the same records has the same offsets.
    let mut reloaded = GroupCoordinator::new(config());
    for record in &records {
        reloaded.replay(record, T0);
    }
    assert_eq!(reloaded.fetch_offsets("g", None), c.fetch_offsets("g", None));
    // Past offsets.retention.minutes an empty group's offsets go.
    assert!(c.expire_offsets(Timestamp(T0.0 + c.config().offsets_retention_ms)).is_empty(), "not yet");
    let tombstones = c.expire_offsets(Timestamp(T0.0 + c.config().offsets_retention_ms + 1));
    assert_eq!(tombstones.len(), 2, "both partitions' offsets");
    for record in &tombstones {
        c.replay(record, T0);
    }
    assert!(c.fetch_offsets("g", None).is_empty());
}

#[test]
fn the_initial_delay_waits_for_more_members() {
    let mut c = GroupCoordinator::new(CoordinatorConfig {
        group_initial_rebalance_delay_ms: 3_000,
        ..CoordinatorConfig::default()
    });
    let (_, effects) = new_member(&mut c, T0, "a", 1);
    assert!(join_response(&effects, 2).is_none());
    let (_, effects) = new_member(&mut c, Timestamp(T0.0 + 1_000), "b", 3);
    assert!(join_response(&effects, 4).is_none());
    assert!(c.tick(Timestamp(T0.0 + 3_500)).is_empty(), "b's arrival extended the delay");
    let effects = c.tick(Timestamp(T0.0 + 4_001));
    assert_eq!(join_response(&effects, 2).unwrap().generation_id, 1);
    assert_eq!(join_response(&effects, 4).unwrap().generation_id, 1);
}

#[derive(Debug, Clone)]
enum Op {
    Join(usize),
    Sync(usize),
    Heartbeat(usize),
    Leave(usize),
    Advance(i64),
    Commit(usize, i64),
    /// A member process restarting: it joins again with no member id.
    Restart(usize),
}

/// Members 2 and 3 are static.
fn instance(i: usize) -> Option<String> {
    (i >= 2).then(|| format!("instance-{i}"))
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0usize..4).prop_map(Op::Join),
        3 => (0usize..4).prop_map(Op::Sync),
        2 => (0usize..4).prop_map(Op::Heartbeat),
        1 => (0usize..4).prop_map(Op::Leave),
        1 => (0i64..15_000).prop_map(Op::Advance),
        2 => (0usize..4, 0i64..1_000).prop_map(|(i, o)| Op::Commit(i, o)),
        1 => (0usize..4).prop_map(Op::Restart),
    ]
}

proptest! {
    /// Random joins, syncs, heartbeats, leaves, commits, restarts of dynamic and static members,
    /// and time: generations only increase, no generation hands a partition to two members,
    /// committed offsets are the last accepted commit, and the invariants hold after every step.
    #[test]
    fn random_membership_keeps_its_invariants(ops in prop::collection::vec(arb_op(), 1..80)) {
        let mut c = GroupCoordinator::new(config());
        let mut now = T0;
        let mut ids: Vec<String> = vec![String::new(); 4];
        let mut generations: Vec<i32> = vec![-1; 4];
        let mut next_request = 0u64;
        let mut last_generation = 0;
        let mut assigned: BTreeMap<i32, BTreeMap<u8, String>> = BTreeMap::new();
        let mut committed: Option<i64> = None;
        for op in ops {
            next_request += 1;
            let effects = match op {
                Op::Join(i) | Op::Restart(i) => {
                    if matches!(op, Op::Restart(_)) {
                        ids[i].clear();
                    }
                    let mut request = join(&ids[i], None);
                    request.group_instance_id = instance(i);
                    let effects = c.handle_join(now, next_request, request, format!("m{i}-{next_request}"));
                    if let Some(r) = join_response(&effects, next_request) {
                        if r.error == ErrorCode::MemberIdRequired || r.error == ErrorCode::None {
                            ids[i] = r.member_id.clone();
                        }
                        if r.error == ErrorCode::UnknownMemberId {
                            ids[i].clear();
                        }
                    }
                    effects
                }
                Op::Sync(i) => {
                    // The leader assigns partitions 0..8 round-robin over the members it knows.
                    let members: Vec<String> = c.describe_group("g").map(|g| g.members.iter().map(|m| m.member_id.clone()).collect()).unwrap_or_default();
                    let assignments = members.iter().enumerate().map(|(n, m)| {
                        let parts: Vec<u8> = (0..8u8).filter(|p| usize::from(*p) % members.len() == n).collect();
                        (m.clone(), parts)
                    }).collect();
                    sync(&mut c, now, next_request, &ids[i], generations[i], assignments)
                }
                Op::Heartbeat(i) => {
                    c.handle_heartbeat(now, HeartbeatRequest { group_id: "g".into(), generation_id: generations[i], member_id: ids[i].clone(), group_instance_id: instance(i) });
                    Vec::new()
                }
                Op::Leave(i) => {
                    let (_, _, effects) = c.handle_leave(now, LeaveRequest { group_id: "g".into(), members: vec![(ids[i].clone(), instance(i))] });
                    ids[i].clear();
                    effects
                }
                Op::Commit(i, offset) => {
                    let request = CommitRequest {
                        group_id: "g".into(),
                        generation_id: generations[i],
                        member_id: ids[i].clone(),
                        group_instance_id: instance(i),
                        offsets: vec![("t".into(), 0, offset, -1, None)],
                    };
                    let (records, errors) = c.handle_commit(now, request);
                    if errors == vec![ErrorCode::None] {
                        committed = Some(offset);
                    } else {
                        prop_assert!(records.is_empty(), "a refused commit writes nothing");
                    }
                    vec![Effect::Append(records)]
                }
                Op::Advance(ms) => {
                    now = Timestamp(now.0 + ms);
                    c.tick(now)
                }
            };
            for effect in &effects {
                match effect {
                    Effect::Respond(_, Response::Join(r)) if r.error == ErrorCode::None => {
                        prop_assert!(r.generation_id >= last_generation, "generation went back");
                        last_generation = r.generation_id;
                        if let Some(i) = ids.iter().position(|id| *id == r.member_id) {
                            generations[i] = r.generation_id;
                        }
                    }
                    Effect::Respond(_, Response::Sync(r)) if r.error == ErrorCode::None => {
                        let generation = c.describe_group("g").map_or(-1, |g| g.generation);
                        // A static member keeps its identity (its instance id) across member ids.
                        let owner = c.describe_group("g").and_then(|g| g.members.iter().find(|m| m.assignment == r.assignment).map(|m| m.group_instance_id.clone().unwrap_or_else(|| m.member_id.clone())));
                        for partition in &r.assignment {
                            let holders = assigned.entry(generation).or_default();
                            if let (Some(owner), Some(previous)) = (&owner, holders.get(partition)) {
                                prop_assert_eq!(previous, owner, "partition {} given to two members in generation {}", partition, generation);
                            }
                            if let Some(owner) = &owner {
                                holders.insert(*partition, owner.clone());
                            }
                        }
                    }
                    Effect::Append(records) => {
                        for record in records {
                            c.replay(record, now);
                        }
                    }
                    _ => {}
                }
            }
            c.validate().map_err(TestCaseError::fail)?;
            let fetched = c.fetch_offsets("g", Some(&[("t".into(), 0)]));
            prop_assert_eq!(fetched[0].offset, committed.unwrap_or(-1), "the committed offset is the last accepted");
        }
    }
}
