use fjord_log::{BatchBuilder, Compression, RecordBatchMut};
use fjord_types::{ProducerEpoch, ProducerId};

use super::*;

const NOW: Timestamp = Timestamp(1_700_000_000_000);

fn open(dir: &Path) -> Partition {
    open_with(dir, PartitionConfig::default())
}

fn open_with(dir: &Path, config: PartitionConfig) -> Partition {
    let mut partition =
        Partition::open(dir, TopicPartition::new("t", 0), config, OpenOptions::default(), BrokerId(1), Offset(0), NOW)
            .unwrap();
    partition.make_leader(&leadership(2), NOW).unwrap();
    partition
}

/// Broker 1 leads alone in `epoch`.
fn leadership(epoch: i32) -> PartitionRegistration {
    PartitionRegistration { leader_epoch: LeaderEpoch(epoch), ..PartitionRegistration::new(vec![BrokerId(1)]) }
}

fn batch(count: usize, producer: Option<(i64, i16, i32)>) -> Vec<u8> {
    let mut builder = BatchBuilder::new();
    if let Some((id, epoch, seq)) = producer {
        builder = builder.producer(ProducerId(id), ProducerEpoch(epoch), seq);
    }
    for i in 0..count {
        builder.push(NOW, Some(format!("k{i}").as_bytes()), Some(b"v"), &[]);
    }
    builder.build().unwrap()
}

#[test]
fn appends_move_the_high_watermark_and_reads_stop_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut partition = open(dir.path());
    let result = partition.append_as_leader(&batch(3, None), 1, NOW).unwrap();
    assert_eq!(result.base_offset, Offset(0));
    assert_eq!(partition.high_watermark(), Offset(3));
    let read = partition.read(Offset(0), 1 << 20, true, None).unwrap();
    assert!(read.range.is_some());
    assert!(partition.read(Offset(3), 1 << 20, true, None).unwrap().range.is_none());
    assert!(matches!(partition.read(Offset(4), 1, true, None), Err(ReadError::OffsetOutOfRange { .. })));
    assert!(matches!(
        partition.read(Offset(0), 1, true, Some(LeaderEpoch(1))),
        Err(ReadError::FencedLeaderEpoch { .. })
    ));
    assert!(matches!(
        partition.read(Offset(0), 1, true, Some(LeaderEpoch(3))),
        Err(ReadError::UnknownLeaderEpoch { .. })
    ));
    partition.validate().unwrap();
}

#[test]
fn idempotent_retries_get_their_original_offsets_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut partition = open(dir.path());
    let first = batch(5, Some((9, 0, 0)));
    partition.append_as_leader(&first.clone(), -1, NOW).unwrap();
    partition.append_as_leader(&batch(2, None), 1, NOW).unwrap();
    let retry = partition.append_as_leader(&first.clone(), -1, NOW).unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.base_offset, Offset(0));
    assert_eq!(partition.log_end_offset(), Offset(7));
    assert!(matches!(
        partition.append_as_leader(&batch(1, Some((9, 0, 7))), -1, NOW),
        Err(AppendError::OutOfOrderSequence { expected: 5, .. })
    ));
    drop(partition); // crash
    let mut partition = open(dir.path());
    let retry = partition.append_as_leader(&first.clone(), -1, NOW).unwrap();
    assert!(retry.duplicate, "producer state is rebuilt from the log");
    let next = partition.append_as_leader(&batch(1, Some((9, 0, 5))), -1, NOW).unwrap();
    assert_eq!(next.base_offset, Offset(7));
}

/// Kafka's known duplicate bug: once retention or DeleteRecords removes the segments holding a
/// producer's batches, a rebuild from the log forgets the producer and a retry is appended
/// twice. The snapshot written at each roll (and at close) keeps its state.
#[test]
fn producer_state_survives_the_deletion_of_its_segments() {
    for clean_close in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let config = PartitionConfig {
            log: LogConfig { segment_bytes: 300, ..LogConfig::default() },
            ..PartitionConfig::default()
        };
        let mut partition = open_with(dir.path(), config.clone());
        let first = batch(5, Some((9, 0, 0)));
        partition.append_as_leader(&first.clone(), -1, NOW).unwrap();
        for _ in 0..4 {
            partition.append_as_leader(&batch(5, None), 1, NOW).unwrap(); // rolls
        }
        assert!(partition.log().segment_count() > 2);
        let active = partition.log().active_segment_base();
        partition.delete_records(active).unwrap();
        for d in partition.maintain(|log| log.delete_segments_before(active)).unwrap() {
            d.remove().unwrap();
        }
        assert!(!dir.path().join("00000000000000000000.log").exists(), "the producer's segment is gone");
        if clean_close {
            partition.close().unwrap();
        } else {
            std::mem::forget(partition); // kill -9: only the snapshot taken at the roll remains
        }
        let mut partition = open_with(dir.path(), config);
        let retry = partition.append_as_leader(&first.clone(), -1, NOW).unwrap();
        assert!(retry.duplicate, "clean close {clean_close}: the retry was appended again");
        assert_eq!(retry.base_offset, Offset(0));
        assert!(matches!(
            partition.append_as_leader(&batch(1, Some((9, 0, 7))), -1, NOW),
            Err(AppendError::OutOfOrderSequence { expected: 5, .. })
        ));
    }
}

#[test]
fn bad_batches_get_the_right_errors_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut partition = open(dir.path());
    let mut corrupt = batch(2, None);
    let at = corrupt.len() - 2;
    corrupt[at] ^= 0xff;
    assert!(matches!(partition.append_as_leader(&corrupt, 1, NOW), Err(AppendError::Corrupt(_))));
    let mut old = batch(1, None);
    old[16] = 1;
    assert!(matches!(partition.append_as_leader(&old, 1, NOW), Err(AppendError::UnsupportedMagic(1))));
    let mut future = BatchBuilder::new();
    future.push(Timestamp(NOW.0 + 7_200_000), None, Some(b"v"), &[]);
    assert!(matches!(
        partition.append_as_leader(&future.build().unwrap(), 1, NOW),
        Err(AppendError::InvalidTimestamp { .. })
    ));
    let mut txn = BatchBuilder::new().transactional(true).producer(ProducerId(1), ProducerEpoch(0), 0);
    txn.push(NOW, None, Some(b"v"), &[]);
    assert!(matches!(partition.append_as_leader(&txn.build().unwrap(), 1, NOW), Err(AppendError::Transactional)));
    let mut config = PartitionConfig { min_insync_replicas: 2, ..PartitionConfig::default() };
    partition.set_config(config.clone());
    assert!(matches!(partition.append_as_leader(&batch(1, None), -1, NOW), Err(AppendError::NotEnoughReplicas { .. })));
    config.min_insync_replicas = 1;
    config.log.max_message_bytes = 100;
    partition.set_config(config);
    assert!(matches!(partition.append_as_leader(&batch(50, None), 1, NOW), Err(AppendError::TooLarge { .. })));
    assert_eq!(partition.log_end_offset(), Offset(0));

    // A compacted topic refuses records without a key (one keyless record spoils the batch).
    partition.set_config(PartitionConfig { compacted: true, ..PartitionConfig::default() });
    let mut mixed = BatchBuilder::new();
    mixed.push(NOW, Some(b"k"), Some(b"v"), &[]).push(NOW, None, Some(b"v"), &[]);
    let refused = partition.append_as_leader(&mixed.build().unwrap(), 1, NOW).unwrap_err();
    assert!(matches!(refused, AppendError::InvalidRecord { .. }), "{refused:?}");
    let named: Vec<_> =
        refused.record_errors().iter().map(|e| (e.batch_index, e.message.contains("without key"))).collect();
    assert_eq!(named, vec![(1, true)], "only the keyless record is at fault");
    let mut keyed = BatchBuilder::new();
    keyed.push(NOW, Some(b"k"), None, &[]);
    partition.append_as_leader(&keyed.build().unwrap(), 1, NOW).unwrap();
    assert_eq!(partition.log_end_offset(), Offset(1), "tombstones have keys and are welcome");
}

#[test]
fn compressed_batches_are_validated_record_by_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut partition = open(dir.path());
    for codec in Compression::ALL {
        let mut builder = BatchBuilder::new().compression(codec);
        for i in 0..100 {
            builder.push(NOW, Some(format!("k{i}").as_bytes()), Some(b"value"), &[]);
        }
        partition.append_as_leader(&builder.build().unwrap(), 1, NOW).unwrap();
    }
    assert_eq!(partition.log_end_offset(), Offset(500));
}

#[test]
fn list_offsets_delete_records_and_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let mut partition = open(dir.path());
    for i in 0..10 {
        let mut builder = BatchBuilder::new();
        builder.push(Timestamp(NOW.0 - 1000 + i * 10), None, Some(b"v"), &[]);
        partition.append_as_leader(&builder.build().unwrap(), 1, NOW).unwrap();
    }
    fn at(partition: &Partition, ts: i64) -> Option<(i64, i64)> {
        partition.list_offset(Timestamp(ts), None).unwrap().map(|(t, o, _)| (t.0, o.0))
    }
    assert_eq!(at(&partition, -1), Some((-1, 10)));
    assert_eq!(at(&partition, -2), Some((-1, 0)));
    assert_eq!(at(&partition, -3), Some((NOW.0 - 910, 9)));
    assert_eq!(at(&partition, NOW.0 - 955), Some((NOW.0 - 950, 5)));
    assert_eq!(at(&partition, NOW.0), None);
    assert_eq!(partition.end_offset_for_epoch(LeaderEpoch(2), None).unwrap(), Some((LeaderEpoch(2), Offset(10))));
    // Older than every epoch here: Kafka answers that epoch, ending where the first one starts.
    assert_eq!(partition.end_offset_for_epoch(LeaderEpoch(1), None).unwrap(), Some((LeaderEpoch(1), Offset(0))));
    assert_eq!(partition.delete_records(Offset(4)).unwrap(), Offset(4));
    assert!(partition.delete_records(Offset(11)).is_err());
    assert_eq!(at(&partition, -2), Some((-1, 4)));
    assert!(matches!(partition.read(Offset(3), 1, true, None), Err(ReadError::OffsetOutOfRange { .. })));
    partition.checkpoint_epochs().unwrap();
    let saved = read_epoch_checkpoint(&dir.path().join(LEADER_EPOCH_CHECKPOINT)).unwrap();
    assert_eq!(saved.len(), 1);
}

#[test]
fn records_at_fault_are_named_and_a_miscounted_batch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut partition = open(dir.path());
    let mut batch = BatchBuilder::new();
    batch
        .push(NOW, None, Some(b"ok"), &[])
        .push(Timestamp(NOW.0 + 7_200_000), None, Some(b"late"), &[])
        .push(NOW, None, Some(b"ok"), &[])
        .push(Timestamp(NOW.0 + 9_000_000), None, Some(b"later"), &[]);
    let refused = partition.append_as_leader(&batch.build().unwrap(), 1, NOW).unwrap_err();
    assert!(matches!(refused, AppendError::InvalidTimestamp { .. }), "{refused:?}");
    assert_eq!(refused.record_errors().iter().map(|e| e.batch_index).collect::<Vec<_>>(), vec![1, 3]);

    // A header whose lastOffsetDelta disagrees with its record count (Kafka's validator
    // refuses it; stored as sent, it would hand out offsets no record holds).
    let mut bytes = self::batch(3, None);
    // lastOffsetDelta is at byte 23 of the header; the CRC covers it, so recompute that.
    bytes[23..27].copy_from_slice(&5i32.to_be_bytes());
    RecordBatchMut::parse(&mut bytes).unwrap().update_crc();
    let refused = partition.append_as_leader(&bytes, 1, NOW).unwrap_err();
    assert!(matches!(refused, AppendError::InvalidRecord { .. }), "{refused:?}");
    assert!(refused.to_string().contains("Inconsistent batch offset range"), "{refused}");
    assert_eq!(partition.log_end_offset(), Offset(0));
}

#[test]
fn a_follower_takes_no_produce_and_serves_no_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let mut partition = open(dir.path());
    partition.append_as_leader(&batch(2, None), 1, NOW).unwrap();
    let follow = PartitionRegistration {
        leader: BrokerId(2),
        leader_epoch: LeaderEpoch(3),
        ..PartitionRegistration::new(vec![BrokerId(2), BrokerId(1)])
    };
    assert!(partition.make_follower(&follow).unwrap());
    assert!(matches!(
        partition.append_as_leader(&batch(1, None), 1, NOW),
        Err(AppendError::NotLeader { leader: BrokerId(2) })
    ));
    assert!(matches!(partition.read(Offset(0), 1 << 20, true, None), Err(ReadError::NotLeader { .. })));
    assert_eq!(partition.high_watermark(), Offset(2), "what was committed stays committed");
    partition.validate().unwrap();
    // Leading again opens a new epoch at the log end.
    let lead = PartitionRegistration { leader: BrokerId(1), leader_epoch: LeaderEpoch(4), ..follow };
    assert!(partition.make_leader(&lead, NOW).unwrap());
    assert_eq!(partition.end_offset_for_epoch(LeaderEpoch(3), None).unwrap(), Some((LeaderEpoch(2), Offset(2))));
    assert_eq!(partition.end_offset_for_epoch(LeaderEpoch(4), None).unwrap(), Some((LeaderEpoch(4), Offset(2))));
}

fn follower_registration(leader: i32, epoch: i32, isr: &[i32]) -> PartitionRegistration {
    PartitionRegistration {
        replicas: vec![BrokerId(1), BrokerId(2)],
        isr: isr.iter().copied().map(BrokerId).collect(),
        leader: BrokerId(leader),
        leader_epoch: LeaderEpoch(epoch),
        partition_epoch: epoch,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    }
}

fn open_as(dir: &Path, local: i32) -> Partition {
    Partition::open(
        dir,
        TopicPartition::new("t", 0),
        PartitionConfig::default(),
        OpenOptions::default(),
        BrokerId(local),
        Offset(0),
        NOW,
    )
    .unwrap()
}

/// Copies what the leader answers into the follower, as a fetcher does; returns the answer.
fn replicate(leader: &mut Partition, follower: &mut Partition) -> crate::ReplicaAnswer {
    let read = leader
        .read_for_replica(
            BrokerId(2),
            follower.log_end_offset(),
            follower.last_fetched_epoch(),
            Some(leader.leader_epoch()),
            1 << 20,
            true,
            NOW,
        )
        .unwrap();
    match &read.answer {
        crate::ReplicaAnswer::Records(Some(range)) => {
            let mut bytes = vec![0; range.len as usize];
            range.read_into(&mut bytes).unwrap();
            follower.append_as_follower(&bytes, NOW).unwrap();
            follower.apply_leader_offsets(read.high_watermark, read.log_start_offset);
        }
        crate::ReplicaAnswer::Records(None) => {
            follower.apply_leader_offsets(read.high_watermark, read.log_start_offset);
        }
        crate::ReplicaAnswer::Diverging { epoch, end_offset } => {
            let cut = follower.divergence_truncation_offset(*epoch, *end_offset);
            follower.truncate_to(cut, NOW).unwrap();
        }
    }
    read.answer
}

#[test]
fn a_follower_copies_the_leader_and_the_high_watermark_waits_for_it() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut leader, mut follower) = (open_as(a.path(), 1), open_as(b.path(), 2));
    leader.make_leader(&follower_registration(1, 1, &[1, 2]), NOW).unwrap();
    follower.make_follower(&follower_registration(1, 1, &[1, 2])).unwrap();
    leader.append_as_leader(&batch(3, Some((7, 0, 0))), -1, NOW).unwrap();
    assert_eq!(leader.high_watermark(), Offset(0), "the follower holds nothing yet");
    replicate(&mut leader, &mut follower);
    assert_eq!(follower.log_end_offset(), Offset(3));
    assert_eq!(follower.high_watermark(), Offset(0), "the leader's high watermark before this fetch");
    replicate(&mut leader, &mut follower);
    assert_eq!(leader.high_watermark(), Offset(3));
    assert_eq!(follower.high_watermark(), Offset(3));
    leader.validate().unwrap();
    follower.validate().unwrap();
    // The follower takes over: the producer's retry is recognised from the replicated state.
    follower.make_leader(&follower_registration(2, 2, &[2]), NOW).unwrap();
    let retry = follower.append_as_leader(&batch(3, Some((7, 0, 0))), -1, NOW).unwrap();
    assert!(retry.duplicate, "a retried batch after failover is written twice");
    assert_eq!(retry.base_offset, Offset(0));
}

#[test]
fn a_diverging_follower_truncates_to_the_leaders_epoch_end_and_catches_up() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut old, mut new) = (open_as(a.path(), 1), open_as(b.path(), 2));
    // Broker 1 leads epoch 1; broker 2 copies the first 2 records, not the last 3.
    old.make_leader(&follower_registration(1, 1, &[1, 2]), NOW).unwrap();
    new.make_follower(&follower_registration(1, 1, &[1, 2])).unwrap();
    old.append_as_leader(&batch(2, None), 1, NOW).unwrap();
    replicate(&mut old, &mut new);
    old.append_as_leader(&batch(3, None), 1, NOW).unwrap();
    // Broker 2 takes over in epoch 2 and writes its own record at offset 2.
    new.make_leader(&follower_registration(2, 2, &[2]), NOW).unwrap();
    new.append_as_leader(&batch(1, None), 1, NOW).unwrap();
    old.make_follower(&follower_registration(2, 2, &[2])).unwrap();
    // The old leader names epoch 1 at offset 5; the new one holds epoch 1 only up to 2.
    let read =
        new.read_for_replica(BrokerId(1), old.log_end_offset(), old.last_fetched_epoch(), None, 1 << 20, true, NOW);
    assert!(matches!(
        read.as_ref().unwrap().answer,
        crate::ReplicaAnswer::Diverging { epoch: LeaderEpoch(1), end_offset: Offset(2) }
    ));
    assert_eq!(
        new.state().remote(BrokerId(1)).map(|r| r.log_end_offset),
        Some(Offset::NONE),
        "a diverging fetch is not progress"
    );
    let cut = old.divergence_truncation_offset(LeaderEpoch(1), Offset(2));
    assert_eq!(cut, Offset(2));
    old.truncate_to(cut, NOW).unwrap();
    assert_eq!((old.log_end_offset(), old.last_fetched_epoch()), (Offset(2), Some(LeaderEpoch(1))));
    old.validate().unwrap();
}

#[test]
fn a_follower_below_the_leaders_log_start_restarts_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut follower = open_as(dir.path(), 2);
    follower.make_follower(&follower_registration(1, 1, &[1, 2])).unwrap();
    follower.truncate_fully_and_start_at(Offset(40), NOW).unwrap();
    assert_eq!(
        (follower.log_start_offset(), follower.log_end_offset(), follower.high_watermark()),
        (Offset(40), Offset(40), Offset(40))
    );
    follower.validate().unwrap();
}

#[test]
fn a_new_leader_answers_offset_not_available_until_its_high_watermark_reaches_its_epoch() {
    // Broker 2 led epoch 1 and wrote 3 records; broker 1 copied them but never learned a high
    // watermark above 0.
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut old = open_as(a.path(), 2);
    old.make_leader(&follower_registration(2, 1, &[2]), NOW).unwrap();
    old.append_as_leader(&batch(3, None), 1, NOW).unwrap();
    let mut new = open_as(b.path(), 1);
    new.make_follower(&follower_registration(2, 1, &[1, 2])).unwrap();
    new.append_as_follower(&old.log().read_bytes(Offset(0), 1 << 20, None).unwrap(), NOW).unwrap();
    assert_eq!(new.high_watermark(), Offset(0));
    // Broker 1 takes over in epoch 2: until broker 2 fetches, its answer could go backwards.
    new.make_leader(&follower_registration(1, 2, &[1, 2]), NOW).unwrap();
    assert!(matches!(new.list_offset(Timestamp::LATEST, None), Err(ReadError::OffsetNotAvailable { .. })));
    new.read_for_replica(BrokerId(2), Offset(3), Some(LeaderEpoch(1)), None, 1 << 20, true, NOW).unwrap();
    assert_eq!(new.high_watermark(), Offset(3));
    assert_eq!(new.list_offset(Timestamp::LATEST, None).unwrap().map(|(_, o, _)| o), Some(Offset(3)));
}

#[test]
fn epochs_written_after_the_last_checkpoint_survive_a_crash() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut leader = open_as(a.path(), 1);
    leader.make_leader(&follower_registration(1, 1, &[1, 2]), NOW).unwrap();
    leader.append_as_leader(&batch(2, None), 1, NOW).unwrap();
    let mut follower = open_as(b.path(), 2);
    follower.make_follower(&follower_registration(1, 1, &[1, 2])).unwrap();
    replicate(&mut leader, &mut follower);
    follower.checkpoint_epochs().unwrap();
    // A new epoch's records arrive and the follower is killed before the next checkpoint.
    leader.make_leader(&follower_registration(1, 4, &[1, 2]), NOW).unwrap();
    leader.append_as_leader(&batch(3, None), 1, NOW).unwrap();
    follower.make_follower(&follower_registration(1, 4, &[1, 2])).unwrap();
    replicate(&mut leader, &mut follower);
    assert_eq!(follower.last_fetched_epoch(), Some(LeaderEpoch(4)));
    std::mem::forget(follower);
    let reopened = open_as(b.path(), 2);
    assert_eq!(reopened.last_fetched_epoch(), Some(LeaderEpoch(4)), "the epoch after the checkpoint was forgotten");
    assert_eq!(reopened.log_end_offset(), Offset(5));
}
