use fjord_types::{BrokerId, LeaderEpoch, Offset, Timestamp, TopicId};

use super::*;
use crate::{ControllerError, Endpoint, MetadataBatch};

/// An image with brokers 1..=n registered and unfenced, racks cycling through `racks`.
fn image_with_racks(n: i32, racks: &[&str]) -> MetadataImage {
    let mut image = MetadataImage::default();
    for id in 1..=n {
        let rack = (!racks.is_empty()).then(|| racks[(id as usize - 1) % racks.len()].to_owned());
        let register = MetadataRecord::RegisterBroker {
            broker_id: BrokerId(id),
            incarnation_id: [id as u8; 16],
            listeners: vec![Endpoint { listener: "PLAINTEXT".into(), host: "127.0.0.1".into(), port: 9092 }],
            rack,
            fenced: false,
        };
        apply(&mut image, &[register]);
    }
    image
}

fn image_with_brokers(n: i32) -> MetadataImage {
    image_with_racks(n, &[])
}

fn ids() -> impl FnMut() -> TopicId {
    let mut next = 0u8;
    move || {
        next += 1;
        TopicId([next; 16])
    }
}

fn topic(name: &str, partitions: i32, rf: i16) -> NewTopic {
    NewTopic { name: name.into(), num_partitions: partitions, replication_factor: rf, ..NewTopic::default() }
}

/// Applies `records` as the next batch of the log.
fn apply(image: &mut MetadataImage, records: &[MetadataRecord]) {
    if records.is_empty() {
        return;
    }
    let base = image.provenance.offset.plus(1);
    let batch = MetadataBatch { base_offset: base, epoch: LeaderEpoch(1), records: records.to_vec() };
    let (next, _) = image.apply_batch(&batch).unwrap();
    *image = next;
    image.validate().unwrap();
}

#[test]
fn topics_are_created_with_defaults_and_spread_leaders() {
    let mut image = image_with_brokers(3);
    let defaults = TopicDefaults { num_partitions: 6, default_replication_factor: 3, ..TopicDefaults::default() };
    let (records, results) = create_topics(&image, &[topic("orders", -1, -1)], defaults, Creator::User, ids());
    let created = results[0].clone().unwrap();
    assert_eq!((created.num_partitions, created.replication_factor), (6, 3));
    apply(&mut image, &records);
    let leaders: Vec<_> = image.topics["orders"].partitions.values().map(|p| p.leader).collect();
    for broker in 1..=3 {
        assert_eq!(leaders.iter().filter(|l| **l == BrokerId(broker)).count(), 2, "{leaders:?}");
    }
}

#[test]
fn bad_topics_get_kafkas_errors() {
    let mut image = image_with_brokers(1);
    let (records, _) = create_topics(&image, &[topic("a.b", 1, 1)], TopicDefaults::default(), Creator::User, ids());
    apply(&mut image, &records);
    let requests = [
        topic("a.b", 1, 1),
        topic("a_b", 1, 1),
        topic("", 1, 1),
        topic("..", 1, 1),
        topic("__consumer_offsets", 1, 1),
        topic("__cluster_metadata", 1, 1),
        topic("rf3", 1, 3),
        topic("zero", 0, 1),
        topic("dup", 1, 1),
        topic("dup", 1, 1),
    ];
    let (records, results) = create_topics(&image, &requests, TopicDefaults::default(), Creator::User, ids());
    assert!(records.is_empty());
    let kinds: Vec<_> = results.iter().map(|r| kind(r.as_ref().unwrap_err())).collect();
    assert_eq!(
        kinds,
        vec![
            "exists",
            "invalid topic",
            "invalid topic",
            "invalid topic",
            "invalid request",
            "invalid request",
            "replication factor",
            "partitions",
            "invalid request",
            "invalid request"
        ]
    );
    // The broker itself may create internal topics.
    let (_, results) =
        create_topics(&image, &[topic("__consumer_offsets", 50, 1)], TopicDefaults::default(), Creator::Broker, ids());
    assert!(results[0].is_ok());
    let (_, results) =
        create_topics(&image, &[topic("__cluster_metadata", 1, 1)], TopicDefaults::default(), Creator::Broker, ids());
    assert!(results[0].is_err(), "reserved for the metadata log, even for the broker");
}

#[test]
fn partitions_only_grow() {
    let mut image = image_with_brokers(1);
    let (records, _) = create_topics(&image, &[topic("t", 2, 1)], TopicDefaults::default(), Creator::User, ids());
    apply(&mut image, &records);
    assert_eq!(kind(&create_partitions(&image, "t", 1, None).unwrap_err()), "partitions");
    assert_eq!(kind(&create_partitions(&image, "t", 2, None).unwrap_err()), "partitions");
    let records = create_partitions(&image, "t", 5, None).unwrap();
    apply(&mut image, &records);
    assert_eq!(image.topics["t"].partitions.len(), 5);
}

#[test]
fn configs_are_validated_and_altered() {
    let mut image = image_with_brokers(1);
    let mut new = topic("t", 1, 1);
    new.configs = vec![("retention.ms".into(), Some("1000".into())), ("cleanup.policy".into(), Some("delete".into()))];
    let (records, results) = create_topics(&image, &[new], TopicDefaults::default(), Creator::User, ids());
    assert!(results[0].is_ok());
    apply(&mut image, &records);
    let changes = vec![
        ("retention.ms".into(), ConfigOp::Delete),
        ("cleanup.policy".into(), ConfigOp::Append("compact".into())),
        ("segment.bytes".into(), ConfigOp::Set("1048576".into())),
    ];
    let records = alter_topic_configs(&image, "t", &changes, false).unwrap();
    apply(&mut image, &records);
    let configs = &image.topics["t"].configs;
    assert_eq!(configs.get("retention.ms"), None);
    assert_eq!(configs["cleanup.policy"], "delete,compact");
    assert_eq!(configs["segment.bytes"], "1048576");
    let bad = vec![("segment.bytes".into(), ConfigOp::Set("lots".into()))];
    assert!(alter_topic_configs(&image, "t", &bad, false).is_err());
    let replace = vec![("retention.ms".into(), ConfigOp::Set("5".into()))];
    let records = alter_topic_configs(&image, "t", &replace, true).unwrap();
    apply(&mut image, &records);
    assert_eq!(image.topics["t"].configs.len(), 1);
}

#[test]
fn deleted_topics_leave_the_image_and_producer_ids_move_on() {
    let mut image = image_with_brokers(1);
    let (records, _) = create_topics(&image, &[topic("t", 3, 1)], TopicDefaults::default(), Creator::User, ids());
    apply(&mut image, &records);
    let (records, results) = delete_topics(&image, &["t".into(), "nope".into()]);
    assert!(results[0].is_ok() && results[1].is_err());
    apply(&mut image, &records);
    assert!(image.topics.is_empty());
    let (record, block) = allocate_producer_ids(&image, BrokerId(1));
    apply(&mut image, &[record]);
    let (_, next) = allocate_producer_ids(&image, BrokerId(1));
    assert_eq!(block.end, next.start);
}

fn kind(error: &ControllerError) -> &'static str {
    match error {
        ControllerError::InvalidTopic(_) => "invalid topic",
        ControllerError::TopicExists(_) => "exists",
        ControllerError::UnknownTopic(_) => "unknown",
        ControllerError::InvalidPartitions(_) => "partitions",
        ControllerError::InvalidReplicationFactor(_) => "replication factor",
        ControllerError::InvalidReplicaAssignment(_) => "assignment",
        ControllerError::InvalidConfig(_) => "config",
        ControllerError::InvalidRequest(_) => "invalid request",
        ControllerError::DuplicateBrokerRegistration(_) => "duplicate",
        ControllerError::StaleBrokerEpoch { .. } => "stale epoch",
        ControllerError::BrokerNotRegistered(_) => "not registered",
    }
}

fn registration(id: i32, incarnation: u8) -> RegistrationRequest {
    RegistrationRequest {
        broker_id: BrokerId(id),
        incarnation_id: [incarnation; 16],
        listeners: vec![Endpoint { listener: "PLAINTEXT".into(), host: "127.0.0.1".into(), port: 9000 + id as u16 }],
        rack: None,
    }
}

fn beat(image: &MetadataImage, id: i32, offset: i64) -> HeartbeatRequest {
    HeartbeatRequest {
        broker_id: BrokerId(id),
        broker_epoch: image.brokers[&BrokerId(id)].broker_epoch,
        current_metadata_offset: Offset(offset),
        want_fence: false,
        want_shut_down: false,
    }
}

fn next_offset(image: &MetadataImage) -> Offset {
    image.provenance.offset.plus(1)
}

/// Creates topic `name` with explicit replica assignments.
fn create_assigned(image: &mut MetadataImage, name: &str, assignments: &[&[i32]]) {
    let topic = NewTopic {
        name: name.into(),
        num_partitions: -1,
        replication_factor: -1,
        assignments: assignments
            .iter()
            .enumerate()
            .map(|(p, replicas)| (p as i32, replicas.iter().copied().map(BrokerId).collect()))
            .collect(),
        configs: Vec::new(),
    };
    let id = TopicId([image.topics.len() as u8 + 100; 16]);
    let (records, results) = create_topics(image, &[topic], TopicDefaults::default(), Creator::User, || id);
    results[0].as_ref().unwrap();
    apply(image, &records);
}

/// Changes the ISR of `topic`-`partition` as an accepted AlterPartition would.
fn set_isr(image: &mut MetadataImage, topic: &str, partition: i32, isr: &[i32]) {
    let mut next = image.topics[topic].partitions[&partition].clone();
    next.isr = isr.iter().copied().map(BrokerId).collect();
    let current = &image.topics[topic].partitions[&partition];
    let change = MetadataRecord::partition_change(image.topics[topic].id, partition, current, &next);
    apply(image, &change.into_iter().collect::<Vec<_>>());
}

fn leader(image: &MetadataImage, topic: &str, partition: i32) -> (i32, i32, Vec<i32>) {
    let p = &image.topics[topic].partitions[&partition];
    (p.leader.0, p.leader_epoch.0, p.isr.iter().map(|b| b.0).collect())
}

#[test]
fn a_registered_broker_is_fenced_until_its_metadata_catches_up() {
    let mut image = MetadataImage::default();
    let records = register_broker(&image, &registration(1, 7), false).unwrap();
    apply(&mut image, &records);
    let broker = &image.brokers[&BrokerId(1)];
    assert!(broker.fenced);
    let epoch = broker.broker_epoch;
    assert_eq!(epoch, image.provenance.offset.0, "the broker epoch is the registration's offset");
    assert!(register_broker(&image, &registration(1, 7), true).unwrap().is_empty(), "a retry changes nothing");

    let mut sessions = BrokerHeartbeatManager::new(&image, Timestamp(0));
    let behind = beat(&image, 1, epoch - 1);
    let (records, answer) = heartbeat(&image, &mut sessions, &behind, next_offset(&image)).unwrap();
    assert!(records.is_empty() && answer.is_fenced && !answer.is_caught_up);
    let caught_up = beat(&image, 1, epoch);
    let (records, answer) = heartbeat(&image, &mut sessions, &caught_up, next_offset(&image)).unwrap();
    assert!(!answer.is_fenced && answer.is_caught_up);
    apply(&mut image, &records);
    assert!(image.brokers[&BrokerId(1)].is_active());

    let stale = HeartbeatRequest { broker_epoch: epoch - 1, ..caught_up };
    assert!(matches!(
        heartbeat(&image, &mut sessions, &stale, next_offset(&image)),
        Err(ControllerError::StaleBrokerEpoch { .. })
    ));
    let unknown = HeartbeatRequest { broker_id: BrokerId(9), ..caught_up };
    assert!(matches!(
        heartbeat(&image, &mut sessions, &unknown, next_offset(&image)),
        Err(ControllerError::BrokerNotRegistered(_))
    ));
}

#[test]
fn fencing_moves_leaderships_within_the_isr_and_never_outside_it() {
    let mut image = image_with_brokers(3);
    create_assigned(&mut image, "rf3", &[&[1, 2, 3]]);
    create_assigned(&mut image, "rf1", &[&[1]]);
    assert_eq!(leader(&image, "rf3", 0), (1, 0, vec![1, 2, 3]));

    let mut sessions = BrokerHeartbeatManager::new(&image, Timestamp(0));
    sessions.touch(BrokerId(2), Timestamp(8_000), Offset(0));
    sessions.touch(BrokerId(3), Timestamp(8_000), Offset(0));
    assert_eq!(sessions.next_stale(&image, Timestamp(9_000), 9_000), None, "within the session timeout");
    assert_eq!(sessions.next_stale(&image, Timestamp(9_001), 9_000), Some(BrokerId(1)));
    let records = fence_broker(&image, BrokerId(1));
    apply(&mut image, &records);
    assert!(image.brokers[&BrokerId(1)].fenced);
    assert_eq!(leader(&image, "rf3", 0), (2, 1, vec![2, 3]), "next in replica order, epoch bumped, out of the ISR");
    assert_eq!(leader(&image, "rf1", 0), (-1, 1, vec![1]), "offline: the last ISR member stays, nobody leads");
    assert_eq!(sessions.next_stale(&image, Timestamp(9_001), 9_000), None, "fenced brokers are not fenced again");
    assert!(fence_broker(&image, BrokerId(1)).is_empty());

    // Its new process registers and catches up: it is unfenced, and leads what only it can.
    let records = register_broker(&image, &registration(1, 9), false).unwrap();
    apply(&mut image, &records);
    let epoch = image.brokers[&BrokerId(1)].broker_epoch;
    let (records, answer) = heartbeat(&image, &mut sessions, &beat(&image, 1, epoch), next_offset(&image)).unwrap();
    assert!(!answer.is_fenced);
    apply(&mut image, &records);
    assert_eq!(leader(&image, "rf1", 0), (1, 2, vec![1]));
    assert_eq!(leader(&image, "rf3", 0), (2, 1, vec![2, 3]), "it rejoins ISRs by catching up, not by unfencing");
}

#[test]
fn a_new_process_of_a_live_broker_is_refused_and_a_restart_moves_its_leaderships() {
    let mut image = image_with_brokers(2);
    create_assigned(&mut image, "t", &[&[1, 2]]);
    let mut sessions = BrokerHeartbeatManager::new(&image, Timestamp(0));
    assert!(!sessions.is_alive(BrokerId(1), Timestamp(1), 9_000), "assumed at activation, not heard from");
    sessions.touch(BrokerId(1), Timestamp(1), Offset(0));
    let alive = sessions.is_alive(BrokerId(1), Timestamp(2), 9_000);
    assert!(matches!(
        register_broker(&image, &registration(1, 99), alive),
        Err(ControllerError::DuplicateBrokerRegistration(_))
    ));
    // Its session expired (a crash and restart): the new incarnation is registered fenced,
    // and its old leaderships move before it serves.
    let records = register_broker(&image, &registration(1, 99), false).unwrap();
    apply(&mut image, &records);
    assert!(image.brokers[&BrokerId(1)].fenced);
    assert_eq!(leader(&image, "t", 0), (2, 1, vec![2]));
}

#[test]
fn controlled_shutdown_moves_leaderships_then_lets_the_broker_go() {
    let mut image = image_with_brokers(3);
    create_assigned(&mut image, "t", &[&[1, 2, 3], &[2, 3, 1]]);
    let mut sessions = BrokerHeartbeatManager::new(&image, Timestamp(0));
    for b in 1..=3 {
        sessions.touch(BrokerId(b), Timestamp(1), image.provenance.offset);
    }
    let leaving = HeartbeatRequest { want_shut_down: true, ..beat(&image, 1, image.provenance.offset.0) };
    let (records, answer) = heartbeat(&image, &mut sessions, &leaving, next_offset(&image)).unwrap();
    assert!(!answer.should_shut_down, "it still leads t-0");
    apply(&mut image, &records);
    assert!(image.brokers[&BrokerId(1)].in_controlled_shutdown);
    assert_eq!(leader(&image, "t", 0).0, 2);
    assert!(!image.topics["t"].partitions[&1].isr.contains(&BrokerId(1)), "it left the ISRs too");
    // Until the other brokers have applied the moves, it must stay.
    let again = HeartbeatRequest { want_shut_down: true, ..beat(&image, 1, image.provenance.offset.0) };
    let (records, answer) = heartbeat(&image, &mut sessions, &again, next_offset(&image)).unwrap();
    assert!(records.is_empty() && !answer.should_shut_down);
    for b in 2..=3 {
        sessions.touch(BrokerId(b), Timestamp(2), image.provenance.offset);
    }
    let (records, answer) = heartbeat(&image, &mut sessions, &again, next_offset(&image)).unwrap();
    assert!(answer.should_shut_down);
    apply(&mut image, &records);
    assert!(image.brokers[&BrokerId(1)].fenced, "gone from Metadata at once");
}

#[test]
fn preferred_elections_and_the_imbalance_they_fix() {
    let mut image = image_with_brokers(2);
    create_assigned(&mut image, "t", &[&[1, 2], &[2, 1]]);
    let records = fence_broker(&image, BrokerId(1));
    apply(&mut image, &records);
    assert_eq!(leader(&image, "t", 0).0, 2);
    let asked = [("t".to_owned(), 0), ("t".to_owned(), 1), ("t".to_owned(), 5)];
    let (records, outcomes) = elect_preferred(&image, &asked);
    assert!(records.is_empty());
    assert_eq!(
        outcomes,
        vec![ElectionOutcome::PreferredNotAvailable, ElectionOutcome::NotNeeded, ElectionOutcome::Unknown]
    );
    // Broker 1 comes back and catches up into the ISR of t-0 (as replication will do).
    let records = register_broker(&image, &registration(1, 5), false).unwrap();
    apply(&mut image, &records);
    let epoch = image.brokers[&BrokerId(1)].broker_epoch;
    let mut sessions = BrokerHeartbeatManager::new(&image, Timestamp(0));
    let (records, _) = heartbeat(&image, &mut sessions, &beat(&image, 1, epoch), next_offset(&image)).unwrap();
    apply(&mut image, &records);
    set_isr(&mut image, "t", 0, &[2, 1]);
    assert_eq!(imbalanced_partitions(&image), vec![("t".to_owned(), 0)]);
    let (records, outcomes) = elect_preferred(&image, &asked[..1]);
    assert_eq!(outcomes, vec![ElectionOutcome::Elected]);
    apply(&mut image, &records);
    assert_eq!(leader(&image, "t", 0).0, 1);
    assert!(imbalanced_partitions(&image).is_empty());
}

#[test]
fn unclean_elections_take_any_live_replica_and_all_partitions_omit_the_settled() {
    let mut image = image_with_brokers(3);
    create_assigned(&mut image, "t", &[&[1, 2], &[3, 2], &[2, 3]]);
    // t-0's ISR shrinks to 1 alone, then 1 is fenced: it keeps its ISR of one and goes offline.
    set_isr(&mut image, "t", 0, &[1]);
    let records = fence_broker(&image, BrokerId(1));
    apply(&mut image, &records);
    assert_eq!(leader(&image, "t", 0).0, -1, "no ISR member can lead");
    let (records, answers) = elect_leaders(&image, ElectionType::Preferred, None);
    assert!(records.is_empty());
    assert_eq!(
        answers,
        vec![(("t".to_owned(), 0), ElectionOutcome::PreferredNotAvailable)],
        "settled ones are left out"
    );
    let (records, answers) = elect_leaders(&image, ElectionType::Unclean, None);
    assert_eq!(answers, vec![(("t".to_owned(), 0), ElectionOutcome::Elected)]);
    apply(&mut image, &records);
    assert_eq!(leader(&image, "t", 0).0, 2, "the first live replica, from outside the ISR");
    assert_eq!(image.topics["t"].partitions[&0].isr, vec![BrokerId(2)]);
    let named = [("t".to_owned(), 1), ("u".to_owned(), 0)];
    let (records, answers) = elect_leaders(&image, ElectionType::Unclean, Some(&named));
    assert!(records.is_empty());
    assert_eq!(
        answers.iter().map(|(_, o)| *o).collect::<Vec<_>>(),
        vec![ElectionOutcome::NotNeeded, ElectionOutcome::Unknown]
    );
    // With no replica on an active broker, nothing can lead.
    for b in [2, 3] {
        let records = fence_broker(&image, BrokerId(b));
        apply(&mut image, &records);
    }
    let (_, answers) = elect_leaders(&image, ElectionType::Unclean, Some(&named[..1]));
    assert_eq!(answers[0].1, ElectionOutcome::EligibleLeadersNotAvailable);
}

#[test]
fn replicas_spread_over_racks_and_only_over_active_brokers() {
    let mut image = image_with_racks(6, &["a", "b", "c"]);
    let records = fence_broker(&image, BrokerId(6));
    apply(&mut image, &records);
    let (records, results) =
        create_topics(&image, &[topic("racked", 10, 3)], TopicDefaults::default(), Creator::User, ids());
    results[0].as_ref().unwrap();
    apply(&mut image, &records);
    let rack = |b: &BrokerId| image.brokers[b].rack.clone();
    for (p, registration) in &image.topics["racked"].partitions {
        let racks: std::collections::BTreeSet<_> = registration.replicas.iter().map(rack).collect();
        assert_eq!(racks.len(), 3, "partition {p}: {:?}", registration.replicas);
        assert!(!registration.replicas.contains(&BrokerId(6)), "fenced brokers get no new replicas");
    }
    let limited = TopicDefaults { max_replication_factor: 1, ..TopicDefaults::default() };
    let (_, results) = create_topics(&image, &[topic("three", 1, 3)], limited, Creator::User, ids());
    let error = results[0].clone().unwrap_err();
    assert_eq!(kind(&error), "replication factor");
    assert!(error.to_string().contains("until follower replication lands"), "{error}");
}

#[test]
fn alter_partition_is_a_compare_and_set_on_the_leaders_epochs() {
    let mut image = image_with_brokers(3);
    create_assigned(&mut image, "t", &[&[1, 2, 3]]);
    let current = image.topics["t"].partitions[&0].clone();
    let epoch_of = |image: &MetadataImage, id: i32| image.brokers[&BrokerId(id)].broker_epoch;
    let request = |isr: &[i32]| AlterPartitionRequest {
        broker_id: BrokerId(1),
        broker_epoch: epoch_of(&image, 1),
        topic: "t".into(),
        partition: 0,
        leader_epoch: current.leader_epoch,
        partition_epoch: current.partition_epoch,
        new_isr: isr.iter().copied().map(BrokerId).collect(),
    };
    let shrink = request(&[1, 2]);
    let (record, next) = alter_partition(&image, &shrink).unwrap();
    assert_eq!(next.isr, vec![BrokerId(1), BrokerId(2)]);
    assert_eq!(next.partition_epoch, current.partition_epoch + 1);
    apply(&mut image, &[record.unwrap()]);
    assert_eq!(leader(&image, "t", 0), (1, 0, vec![1, 2]), "an ISR change keeps the leader epoch");

    // The same request again is stale: the partition epoch moved on.
    assert!(matches!(alter_partition(&image, &shrink), Err(AlterPartitionError::StalePartitionEpoch { .. })));
    let fresh = |image: &MetadataImage, isr: &[i32]| AlterPartitionRequest {
        partition_epoch: image.topics["t"].partitions[&0].partition_epoch,
        new_isr: isr.iter().copied().map(BrokerId).collect(),
        ..shrink.clone()
    };
    assert!(matches!(alter_partition(&image, &fresh(&image, &[2, 3])), Err(AlterPartitionError::InvalidIsr(_))));
    assert!(matches!(alter_partition(&image, &fresh(&image, &[1, 4])), Err(AlterPartitionError::InvalidIsr(_))));
    assert!(matches!(
        alter_partition(
            &image,
            &AlterPartitionRequest {
                broker_id: BrokerId(2),
                broker_epoch: epoch_of(&image, 2),
                ..fresh(&image, &[1, 2])
            }
        ),
        Err(AlterPartitionError::NotLeader(BrokerId(2)))
    ));
    assert!(matches!(
        alter_partition(&image, &AlterPartitionRequest { broker_epoch: -5, ..fresh(&image, &[1, 2]) }),
        Err(AlterPartitionError::StaleBrokerEpoch(_))
    ));
    // A fenced broker may not join (KIP-841); after broker 1 is fenced, its own requests are
    // from a deposed leader.
    let fenced = fence_broker(&image, BrokerId(3));
    apply(&mut image, &fenced);
    assert!(matches!(
        alter_partition(&image, &fresh(&image, &[1, 2, 3])),
        Err(AlterPartitionError::IneligibleReplica(BrokerId(3)))
    ));
    let fenced = fence_broker(&image, BrokerId(1));
    apply(&mut image, &fenced);
    assert!(matches!(
        alter_partition(&image, &fresh(&image, &[1])),
        Err(AlterPartitionError::FencedLeaderEpoch { .. })
    ));
}

#[path = "reassign_tests.rs"]
mod reassign_tests;

#[test]
fn automatic_unclean_elections_only_where_the_topic_allows_them() {
    let mut image = image_with_brokers(3);
    create_assigned(&mut image, "t", &[&[1, 2]]);
    create_assigned(&mut image, "u", &[&[1, 2]]);
    let allow = MetadataRecord::Config {
        resource: crate::ConfigResource::Topic("t".into()),
        name: "unclean.leader.election.enable".into(),
        value: Some("true".into()),
    };
    apply(&mut image, &[allow]);
    // Both ISRs shrink to 1, then 1 dies: both partitions are offline.
    for topic in ["t", "u"] {
        set_isr(&mut image, topic, 0, &[1]);
    }
    let records = fence_broker(&image, BrokerId(1));
    apply(&mut image, &records);
    assert_eq!((leader(&image, "t", 0).0, leader(&image, "u", 0).0), (-1, -1));
    let (elected, records) = elect_unclean_where_allowed(&image, false);
    assert_eq!(elected, vec![("t".to_owned(), 0)], "u keeps the default, off");
    apply(&mut image, &records);
    assert_eq!(leader(&image, "t", 0), (2, 2, vec![2]), "the live replica leads alone");
    assert_eq!(leader(&image, "u", 0).0, -1);
    // With the controller's default on, u goes too; t needs nothing more.
    let (elected, records) = elect_unclean_where_allowed(&image, true);
    assert_eq!(elected, vec![("u".to_owned(), 0)]);
    apply(&mut image, &records);
    assert_eq!(leader(&image, "u", 0).0, 2);
    assert_eq!(elect_unclean_where_allowed(&image, true), (Vec::new(), Vec::new()));
}

#[test]
fn a_new_controller_may_probe_every_broker_it_has_not_heard_from() {
    let image = image_with_brokers(3);
    let mut sessions = BrokerHeartbeatManager::new(&image, Timestamp(1000));
    let ids = |overdue: Vec<(BrokerId, Timestamp)>| overdue.into_iter().map(|(b, _)| b.0).collect::<Vec<_>>();
    assert_eq!(ids(sessions.overdue(&image, Timestamp(1001), 2500)), vec![1, 2, 3], "nobody heard from yet");
    sessions.touch(BrokerId(1), Timestamp(1001), Offset(0));
    assert_eq!(ids(sessions.overdue(&image, Timestamp(1002), 2500)), vec![2, 3]);
    assert_eq!(ids(sessions.overdue(&image, Timestamp(3502), 2500)), vec![1, 2, 3], "1 went silent");
    // Probing never expires a session: only the session timeout does.
    assert_eq!(sessions.next_stale(&image, Timestamp(1002), 9000), None);
}
