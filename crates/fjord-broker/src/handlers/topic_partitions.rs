//! DescribeTopicPartitions (KIP-966): Metadata's description of topics, in pages. Topics go in
//! name order from a cursor (a topic and a partition index), a response holds at most
//! `response_partition_limit` partitions, and one cut short says where the next starts (Kafka's
//! `DescribeTopicPartitionsRequestHandler` and `KRaftMetadataCache.describeTopicResponse`).
//! Answered by any broker from its metadata image; never forwarded.

use std::collections::BTreeSet;

use fjord_metadata::{MetadataImage, TopicImage};
use fjord_types::{ErrorCode, TopicId};
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor as WireCursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse};

use super::metadata::{PartitionView, is_internal, missing_topic_error};
use super::{RequestContext, topic_name, wire_broker, wire_uuid};
use crate::broker::Broker;

/// No response describes more partitions than this, whatever the request asks (Kafka's
/// `max.request.partition.size.limit` default, also the request's own default).
const MAX_PARTITIONS_PER_RESPONSE: i32 = 2000;

/// Every operation on a topic as Kafka's bit field (READ 3, WRITE 4, CREATE 5, DELETE 6,
/// ALTER 7, DESCRIBE 8, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11): what Kafka answers when no
/// authorizer is configured, and Fjord has none. Unlike Metadata, this API has no flag asking
/// for them; Kafka always fills them in.
const TOPIC_OPERATIONS: i32 = (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    topic: String,
    partition: i32,
}

/// One topic's part of a page.
#[derive(Debug)]
struct Slice<'a> {
    name: &'a str,
    /// `None`: no such topic.
    topic: Option<&'a TopicImage>,
    /// The partition indexes described, in order.
    partitions: Vec<i32>,
}

/// The page of `names` (sorted, none before the cursor's topic) that starts at `cursor` and
/// holds at most `limit` partitions, and the cursor of the next page if there is more. A topic
/// that does not exist takes no room and is listed unless `skip_missing`; once the page is
/// full, the next cursor points at the start of the next name, existing or not, as Kafka's does.
fn plan<'a>(
    image: &'a MetadataImage,
    names: &[&'a str],
    cursor: Option<&Cursor>,
    limit: usize,
    skip_missing: bool,
) -> (Vec<Slice<'a>>, Option<Cursor>) {
    let mut remaining = limit;
    let mut slices = Vec::new();
    for &name in names {
        if remaining == 0 {
            return (slices, Some(Cursor { topic: name.to_owned(), partition: 0 }));
        }
        let Some(topic) = image.topics.get(name) else {
            if !skip_missing {
                slices.push(Slice { name, topic: None, partitions: Vec::new() });
            }
            continue;
        };
        let first = cursor.filter(|c| c.topic == name).map_or(0, |c| c.partition);
        let mut indexes = topic.partitions.range(first..).map(|(&index, _)| index);
        let partitions: Vec<i32> = indexes.by_ref().take(remaining).collect();
        remaining -= partitions.len();
        slices.push(Slice { name, topic: Some(topic), partitions });
        if let Some(next) = indexes.next() {
            return (slices, Some(Cursor { topic: name.to_owned(), partition: next }));
        }
    }
    (slices, None)
}

pub(super) fn handle(
    broker: &Broker,
    context: &RequestContext,
    request: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let image = broker.image();
    let all = request.topics.is_empty();
    let cursor =
        request.cursor.as_ref().map(|c| Cursor { topic: c.topic_name.0.to_string(), partition: c.partition_index });
    let from = cursor.as_ref().map_or("", |c| c.topic.as_str());
    let names: BTreeSet<&str> = if all {
        image.topics.keys().map(String::as_str).filter(|n| *n >= from).collect()
    } else {
        request.topics.iter().map(|t| t.name.0.as_str()).filter(|n| *n >= from).collect()
    };
    if let Some(c) = &cursor {
        // The cursor's topic must be among those named, and its partition an index.
        if c.partition < 0 || (!all && !names.contains(c.topic.as_str())) {
            return refused(&request, ErrorCode::InvalidRequest);
        }
    }
    let names: Vec<&str> = names.into_iter().collect();
    let limit = request.response_partition_limit.clamp(1, MAX_PARTITIONS_PER_RESPONSE) as usize;
    let (slices, next) = plan(&image, &names, cursor.as_ref(), limit, all);
    let topics = slices.iter().map(|slice| describe(&image, slice, &context.listener)).collect();
    DescribeTopicPartitionsResponse::default().with_topics(topics).with_next_cursor(
        next.map(|c| WireCursor::default().with_topic_name(topic_name(&c.topic)).with_partition_index(c.partition)),
    )
}

fn describe(image: &MetadataImage, slice: &Slice<'_>, listener: &str) -> DescribeTopicPartitionsResponseTopic {
    let described = DescribeTopicPartitionsResponseTopic::default()
        .with_name(Some(topic_name(slice.name)))
        .with_is_internal(is_internal(slice.name))
        .with_topic_authorized_operations(TOPIC_OPERATIONS);
    let Some(topic) = slice.topic else {
        return described
            .with_error_code(missing_topic_error(slice.name).code())
            .with_topic_id(wire_uuid(TopicId::ZERO));
    };
    let partitions = slice
        .partitions
        .iter()
        .filter_map(|index| topic.partitions.get(index).map(|p| (*index, p)))
        .map(|(index, p)| {
            let view = PartitionView::new(image, p, listener);
            // Fjord has no eligible leader replicas (KIP-966's ELR): empty, as Kafka's are
            // with the feature off.
            DescribeTopicPartitionsResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(wire_broker(view.leader))
                .with_leader_epoch(p.leader_epoch.0)
                .with_replica_nodes(view.replicas)
                .with_isr_nodes(view.isr)
                .with_offline_replicas(view.offline)
                .with_eligible_leader_replicas(Some(Vec::new()))
                .with_last_known_elr(Some(Vec::new()))
        })
        .collect();
    described.with_topic_id(wire_uuid(topic.id)).with_partitions(partitions)
}

/// Every named topic with `code` and nothing else (Kafka's `getErrorResponse`).
fn refused(request: &DescribeTopicPartitionsRequest, code: ErrorCode) -> DescribeTopicPartitionsResponse {
    let topics = request
        .topics
        .iter()
        .map(|t| {
            DescribeTopicPartitionsResponseTopic::default().with_name(Some(t.name.clone())).with_error_code(code.code())
        })
        .collect();
    DescribeTopicPartitionsResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use fjord_types::PartitionRegistration;

    use super::*;

    fn image(topics: &[(&str, i32)]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for &(name, partitions) in topics {
            let topic = TopicImage {
                name: name.to_owned(),
                id: TopicId([name.len() as u8; 16]),
                partitions: (0..partitions)
                    .map(|i| (i, PartitionRegistration::new(vec![fjord_types::BrokerId(1)])))
                    .collect(),
                configs: Default::default(),
            };
            image.topics.insert(name.to_owned(), topic);
        }
        image
    }

    fn cursor(topic: &str, partition: i32) -> Cursor {
        Cursor { topic: topic.to_owned(), partition }
    }

    /// Each slice as (name, `None` if missing, else its partition indexes).
    fn shape(slices: &[Slice<'_>]) -> Vec<(String, Option<Vec<i32>>)> {
        slices.iter().map(|s| (s.name.to_owned(), s.topic.map(|_| s.partitions.clone()))).collect()
    }

    #[test]
    fn a_page_cut_inside_a_topic_resumes_at_its_next_partition() {
        let image = image(&[("a", 3), ("b", 4)]);
        let (slices, next) = plan(&image, &["a", "b"], None, 5, true);
        assert_eq!(shape(&slices), [("a".into(), Some(vec![0, 1, 2])), ("b".into(), Some(vec![0, 1]))]);
        assert_eq!(next, Some(cursor("b", 2)));
        let (slices, next) = plan(&image, &["b"], next.as_ref(), 5, true);
        assert_eq!(shape(&slices), [("b".into(), Some(vec![2, 3]))]);
        assert_eq!(next, None, "the last page has no cursor");
    }

    #[test]
    fn a_page_filled_at_a_topics_end_points_at_the_next_topic() {
        let image = image(&[("a", 2), ("b", 1)]);
        let (slices, next) = plan(&image, &["a", "b"], None, 2, true);
        assert_eq!(shape(&slices), [("a".into(), Some(vec![0, 1]))]);
        assert_eq!(next, Some(cursor("b", 0)));
        // Filled exactly by the last topic: nothing more to page through.
        let (_, next) = plan(&image, &["a", "b"], None, 3, true);
        assert_eq!(next, None);
    }

    #[test]
    fn missing_named_topics_take_no_room_and_are_skipped_when_listing_all() {
        let image = image(&[("b", 2)]);
        let (slices, next) = plan(&image, &["a", "b", "c"], None, 2, false);
        assert_eq!(shape(&slices), [("a".into(), None), ("b".into(), Some(vec![0, 1]))]);
        // The page is full, so the next one starts at "c", which Kafka's cursor names although
        // it does not exist.
        assert_eq!(next, Some(cursor("c", 0)));
        let (slices, _) = plan(&image, &["a", "b"], None, 10, true);
        assert_eq!(shape(&slices), [("b".into(), Some(vec![0, 1]))]);
    }

    #[test]
    fn following_the_cursor_visits_every_partition_once() {
        let image = image(&[("a", 5), ("b", 1), ("c", 7), ("d", 2)]);
        let names = ["a", "b", "c", "d"];
        for limit in 1..=16 {
            let mut seen = Vec::new();
            let mut next: Option<Cursor> = None;
            loop {
                let from: Vec<&str> =
                    names.iter().copied().filter(|n| next.as_ref().is_none_or(|c| *n >= c.topic.as_str())).collect();
                let (slices, cursor) = plan(&image, &from, next.as_ref(), limit, true);
                assert!(slices.iter().map(|s| s.partitions.len()).sum::<usize>() <= limit);
                seen.extend(slices.iter().flat_map(|s| s.partitions.iter().map(|&p| (s.name.to_owned(), p))));
                match cursor {
                    Some(c) => next = Some(c),
                    None => break,
                }
            }
            let expected: Vec<(String, i32)> =
                image.topics.values().flat_map(|t| t.partitions.keys().map(|&p| (t.name.clone(), p))).collect();
            assert_eq!(seen, expected, "limit {limit}");
        }
    }
}
