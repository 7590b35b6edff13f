use super::*;
use proptest::prelude::*;

fn arb_record() -> impl Strategy<Value = MetadataRecord> {
    let id = any::<[u8; 16]>().prop_map(TopicId);
    let brokers = prop::collection::vec(any::<i32>().prop_map(BrokerId), 0..5);
    prop_oneof![
        (
            any::<i32>(),
            any::<[u8; 16]>(),
            prop::collection::vec((".*", ".*", any::<u16>()), 0..3),
            prop::option::of(".*"),
            any::<bool>()
        )
            .prop_map(|(b, incarnation_id, listeners, rack, fenced)| MetadataRecord::RegisterBroker {
                broker_id: BrokerId(b),
                incarnation_id,
                listeners: listeners
                    .into_iter()
                    .map(|(listener, host, port)| Endpoint { listener, host, port })
                    .collect(),
                rack,
                fenced,
            }),
        (any::<i32>(), any::<i64>(), prop::option::of(any::<bool>()), prop::option::of(any::<bool>())).prop_map(
            |(b, broker_epoch, fenced, in_controlled_shutdown)| MetadataRecord::BrokerRegistrationChange {
                broker_id: BrokerId(b),
                broker_epoch,
                fenced,
                in_controlled_shutdown,
            }
        ),
        (
            any::<[u8; 16]>(),
            any::<i32>(),
            prop::option::of(any::<i32>()),
            prop::option::of(brokers.clone()),
            prop::option::of(brokers.clone()),
            prop::option::of(brokers.clone()),
            prop::option::of(brokers.clone())
        )
            .prop_map(|(id, partition, leader, isr, replicas, adding, removing)| {
                MetadataRecord::PartitionChange {
                    topic_id: TopicId(id),
                    partition,
                    leader: leader.map(BrokerId),
                    isr,
                    replicas,
                    adding_replicas: adding,
                    removing_replicas: removing,
                }
            }),
        Just(MetadataRecord::NoOp),
        (any::<i32>(), any::<i64>(), any::<bool>(), any::<bool>()).prop_map(|(b, epoch, fenced, shutting)| {
            MetadataRecord::BrokerState {
                broker_id: BrokerId(b),
                incarnation_id: [3; 16],
                broker_epoch: epoch,
                listeners: vec![Endpoint { listener: "L".into(), host: "h".into(), port: 1 }],
                rack: None,
                fenced,
                in_controlled_shutdown: shutting,
            }
        }),
        (".*", id.clone()).prop_map(|(name, topic_id)| MetadataRecord::Topic { name, topic_id }),
        (
            (id.clone(), any::<i32>(), brokers.clone(), brokers.clone()),
            (any::<i32>(), any::<i32>(), any::<i32>(), brokers.clone(), brokers)
        )
            .prop_map(|((topic_id, partition, replicas, isr), (leader, epoch, pe, adding, removing))| {
                MetadataRecord::Partition {
                    topic_id,
                    partition,
                    replicas,
                    isr,
                    leader: BrokerId(leader),
                    leader_epoch: LeaderEpoch(epoch),
                    partition_epoch: pe,
                    adding_replicas: adding,
                    removing_replicas: removing,
                }
            }),
        (".*", ".*", prop::option::of(".*")).prop_map(|(t, name, value)| MetadataRecord::Config {
            resource: ConfigResource::Topic(t),
            name,
            value
        }),
        id.prop_map(|topic_id| MetadataRecord::RemoveTopic { topic_id }),
        (any::<i32>(), any::<i64>())
            .prop_map(|(b, next)| MetadataRecord::ProducerIds { broker_id: BrokerId(b), next_producer_id: next }),
    ]
}

proptest! {
    #[test]
    fn records_round_trip(record in arb_record()) {
        let mut bytes = Vec::new();
        record.encode(&mut bytes);
        prop_assert_eq!(MetadataRecord::decode(&bytes).unwrap(), record);
    }

    #[test]
    fn a_version_0_registration_reads_as_an_unfenced_plaintext_broker(port in any::<u16>()) {
        let mut bytes = vec![REGISTER_BROKER, 0];
        bytes.extend_from_slice(&7i32.to_be_bytes());
        bytes.extend_from_slice(&4u32.to_be_bytes());
        bytes.extend_from_slice(b"host");
        bytes.extend_from_slice(&port.to_be_bytes());
        bytes.push(0);
        let MetadataRecord::RegisterBroker { broker_id, listeners, fenced, .. } = MetadataRecord::decode(&bytes).unwrap() else {
            panic!("not a registration");
        };
        prop_assert_eq!((broker_id, fenced), (BrokerId(7), false));
        prop_assert_eq!(listeners, vec![Endpoint { listener: "PLAINTEXT".into(), host: "host".into(), port }]);
    }

    #[test]
    fn version_0_partition_records_read_without_a_reassignment(partition in any::<i32>(), leader in any::<i32>()) {
        let mut bytes = vec![PARTITION_CHANGE, 0];
        bytes.extend_from_slice(&[7; 16]);
        bytes.extend_from_slice(&partition.to_be_bytes());
        bytes.push(1);
        bytes.extend_from_slice(&leader.to_be_bytes());
        bytes.extend_from_slice(&[0, 0]);
        let MetadataRecord::PartitionChange { adding_replicas, removing_replicas, leader: read, .. } =
            MetadataRecord::decode(&bytes).unwrap()
        else {
            panic!("not a partition change");
        };
        prop_assert_eq!((adding_replicas, removing_replicas, read), (None, None, Some(BrokerId(leader))));
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = MetadataRecord::decode(&bytes);
    }
}
