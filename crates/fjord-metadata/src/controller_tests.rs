use super::*;

fn image_with_brokers(n: i32) -> MetadataImage {
    let mut image = MetadataImage::default();
    for id in 1..=n {
        let registration =
            BrokerRegistration { broker_id: BrokerId(id), host: "127.0.0.1".into(), port: 9092, rack: None };
        image.apply(&register_broker(&image, &registration).unwrap()).unwrap();
    }
    image
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

fn apply(image: &mut MetadataImage, records: &[MetadataRecord]) {
    for record in records {
        image.apply(record).unwrap();
    }
    image.validate().unwrap();
}

#[test]
fn topics_are_created_with_defaults_and_spread_leaders() {
    let mut image = image_with_brokers(3);
    let defaults = TopicDefaults { num_partitions: 6, default_replication_factor: 3 };
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
    }
}
