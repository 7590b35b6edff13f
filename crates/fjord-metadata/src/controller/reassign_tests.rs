//! Partition reassignment, on the controller's images.

use super::*;

fn reassign(topic: &str, partition: i32, target: Option<&[i32]>) -> Reassignment {
    Reassignment { topic: topic.into(), partition, target: target.map(|t| t.iter().copied().map(BrokerId).collect()) }
}

fn brokers(ids: &[BrokerId]) -> Vec<i32> {
    ids.iter().map(|b| b.0).collect()
}

/// The leader of `topic`-`partition` asks for `isr`, as the replica path does when a follower
/// catches up.
fn leader_asks(image: &mut MetadataImage, topic: &str, partition: i32, isr: &[i32]) {
    let current = image.topics[topic].partitions[&partition].clone();
    let request = AlterPartitionRequest {
        broker_id: current.leader,
        broker_epoch: image.brokers[&current.leader].broker_epoch,
        topic: topic.into(),
        partition,
        leader_epoch: current.leader_epoch,
        partition_epoch: current.partition_epoch,
        new_isr: isr.iter().copied().map(BrokerId).collect(),
    };
    let (record, next) = alter_partition(image, &request).unwrap();
    apply(image, &record.into_iter().collect::<Vec<_>>());
    assert_eq!(image.topics[topic].partitions[&partition], next, "the answer is what the record makes");
}

#[test]
fn a_reassignment_adds_replicas_then_completes_when_they_are_in_sync() {
    let mut image = image_with_brokers(4);
    create_assigned(&mut image, "t", &[&[1, 2, 3]]);
    // Move replica 1 (the leader) to 4.
    let (records, outcomes) = alter_reassignments(&image, &[reassign("t", 0, Some(&[4, 2, 3]))], true);
    assert_eq!(outcomes, vec![(("t".to_owned(), 0), Ok(()))]);
    apply(&mut image, &records);
    let p = image.topics["t"].partitions[&0].clone();
    assert_eq!(brokers(&p.replicas), vec![4, 2, 3, 1], "the target first, then the leaving replica");
    assert_eq!((brokers(&p.adding_replicas), brokers(&p.removing_replicas)), (vec![4], vec![1]));
    assert_eq!((p.leader, p.leader_epoch, brokers(&p.isr)), (BrokerId(1), LeaderEpoch(0), vec![1, 2, 3]));
    let listed = list_reassignments(&image, None);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, ("t".to_owned(), 0));

    // Followers in sync but not 4: still under way.
    leader_asks(&mut image, "t", 0, &[1, 2]);
    assert!(image.topics["t"].partitions[&0].is_reassigning());
    leader_asks(&mut image, "t", 0, &[1, 2, 4]);
    assert!(image.topics["t"].partitions[&0].is_reassigning(), "3 is a target replica out of sync");
    // 3 rejoins: every target replica is in sync, so the same change completes the move and
    // the leader, leaving, hands over to the first in-sync target replica.
    leader_asks(&mut image, "t", 0, &[1, 2, 4, 3]);
    let p = image.topics["t"].partitions[&0].clone();
    assert!(!p.is_reassigning());
    assert_eq!(brokers(&p.replicas), vec![4, 2, 3]);
    assert_eq!(brokers(&p.isr), vec![2, 4, 3]);
    assert_eq!((p.leader, p.leader_epoch), (BrokerId(4), LeaderEpoch(1)));
    assert!(list_reassignments(&image, None).is_empty());
}

#[test]
fn a_reassignment_within_the_isr_completes_at_once_and_fences_the_removed() {
    let mut image = image_with_brokers(3);
    create_assigned(&mut image, "t", &[&[1, 2, 3]]);
    create_assigned(&mut image, "u", &[&[2, 3]]);
    let (records, outcomes) =
        alter_reassignments(&image, &[reassign("t", 0, Some(&[1, 2])), reassign("u", 0, Some(&[3, 2]))], true);
    assert!(outcomes.iter().all(|(_, o)| o.is_ok()), "{outcomes:?}");
    apply(&mut image, &records);
    let shrunk = &image.topics["t"].partitions[&0];
    assert_eq!((brokers(&shrunk.replicas), brokers(&shrunk.isr)), (vec![1, 2], vec![1, 2]));
    assert_eq!((shrunk.leader, shrunk.leader_epoch), (BrokerId(1), LeaderEpoch(1)), "a removal bumps the epoch");
    let reordered = &image.topics["u"].partitions[&0];
    assert_eq!(brokers(&reordered.replicas), vec![3, 2], "a new preferred order");
    assert_eq!((reordered.leader, reordered.leader_epoch), (BrokerId(2), LeaderEpoch(0)), "nothing removed");
}

#[test]
fn a_reassignment_can_be_replaced_and_cancelled() {
    let mut image = image_with_brokers(5);
    create_assigned(&mut image, "t", &[&[1, 2]]);
    let (records, _) = alter_reassignments(&image, &[reassign("t", 0, Some(&[3, 4]))], true);
    apply(&mut image, &records);
    // A new target replaces the one under way, measured from the current replicas.
    let (records, _) = alter_reassignments(&image, &[reassign("t", 0, Some(&[1, 3, 5]))], false);
    assert!(records.is_empty(), "the replication factor changes and the request does not allow it");
    let (records, outcomes) = alter_reassignments(&image, &[reassign("t", 0, Some(&[1, 3, 5]))], true);
    assert!(outcomes[0].1.is_ok());
    apply(&mut image, &records);
    let p = image.topics["t"].partitions[&0].clone();
    assert_eq!(brokers(&p.replicas), vec![1, 3, 5, 4, 2]);
    assert_eq!((brokers(&p.adding_replicas), brokers(&p.removing_replicas)), (vec![5], vec![4, 2]));
    // 3 catches up; then the reassignment is cancelled: 5 goes, the rest stay with their ISR.
    leader_asks(&mut image, "t", 0, &[1, 2, 3]);
    assert!(image.topics["t"].partitions[&0].is_reassigning(), "5 is not in sync");
    let (records, outcomes) = alter_reassignments(&image, &[reassign("t", 0, None)], true);
    assert!(outcomes[0].1.is_ok());
    apply(&mut image, &records);
    let p = image.topics["t"].partitions[&0].clone();
    assert_eq!((brokers(&p.replicas), brokers(&p.isr)), (vec![1, 3, 4, 2], vec![1, 2, 3]));
    assert!(!p.is_reassigning());
    assert_eq!((p.leader, p.leader_epoch), (BrokerId(1), LeaderEpoch(1)), "5 was removed: a new epoch");
    let (_, outcomes) = alter_reassignments(&image, &[reassign("t", 0, None)], true);
    assert_eq!(outcomes[0].1, Err(ReassignmentError::NoReassignmentInProgress("t".into(), 0)));
}

#[test]
fn bad_reassignments_get_kafkas_errors() {
    let mut image = image_with_brokers(3);
    create_assigned(&mut image, "t", &[&[1, 2]]);
    let requests = [
        reassign("nope", 0, Some(&[1])),
        reassign("t", 7, Some(&[1])),
        reassign("t", 0, Some(&[])),
        reassign("t", 0, Some(&[1, 1])),
        reassign("t", 0, Some(&[1, 9])),
    ];
    let (records, outcomes) = alter_reassignments(&image, &requests, true);
    assert!(records.is_empty());
    let errors: Vec<_> = outcomes.into_iter().map(|(_, o)| o.unwrap_err()).collect();
    assert!(matches!(errors[0], ReassignmentError::UnknownPartition(..)));
    assert!(matches!(errors[1], ReassignmentError::UnknownPartition(..)));
    for (error, what) in errors[2..].iter().zip(["empty", "more than once", "no such broker"]) {
        assert!(matches!(error, ReassignmentError::InvalidAssignment(m) if m.contains(what)), "{error:?}");
    }
}
