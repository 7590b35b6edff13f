//! One module per Kafka API, as franz-go's kfake lays them out: each takes the decoded request
//! and returns the response (or nothing, for `acks=0`).

mod api_versions;
mod cluster;
mod configs;
mod fetch;
pub(crate) mod forward;
mod groups;
mod list_offsets;
mod log_dirs;
mod metadata;
mod produce;
mod quorum;
mod reassign;
mod records;
mod topic_partitions;
mod topics;

use std::sync::Arc;

use fjord_protocol::Request;
use fjord_replication::{DelayedOperation, Purgatory};
use kafka_protocol::messages::{BrokerId as WireBrokerId, RequestKind, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

pub(crate) use api_versions::unsupported_version_response;

/// What to do after a request.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Send this response.
    Respond(Box<ResponseKind>),
    /// Send nothing (produce with `acks=0`).
    Silent,
    /// Close the connection (an `acks=0` produce that failed, as Kafka does).
    Close,
}

/// Where a request came from.
#[derive(Debug, Clone)]
pub(crate) struct RequestContext {
    /// The client's address.
    pub(crate) peer: String,
    /// The listener it connected to: brokers are described to it by their endpoints on the
    /// same listener, as Kafka does.
    pub(crate) listener: Arc<str>,
}

/// Routes a request to its handler.
pub(crate) async fn handle(broker: &Arc<Broker>, request: Request, context: &RequestContext) -> Outcome {
    if forward::FORWARDED.contains(&request.api_key) {
        return forward::forward_or_error(broker, request).await;
    }
    let peer = context.peer.as_str();
    let version = request.header.request_api_version;
    let client_id = request.header.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default();
    let response = match request.body {
        RequestKind::ApiVersions(r) => ResponseKind::ApiVersions(api_versions::handle(broker, version, r)),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(broker, context, version, r).await),
        RequestKind::Produce(r) => return produce::handle(broker, context, version, r).await,
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::handle(broker, version, r).await),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(list_offsets::handle(broker, version, r)),
        RequestKind::InitProducerId(r) => ResponseKind::InitProducerId(records::init_producer_id(broker, r).await),
        RequestKind::DeleteRecords(r) => ResponseKind::DeleteRecords(records::delete_records(broker, r)),
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(records::offset_for_leader_epoch(broker, r))
        }
        RequestKind::DescribeConfigs(r) => ResponseKind::DescribeConfigs(configs::describe(broker, version, r)),
        RequestKind::DescribeCluster(r) => ResponseKind::DescribeCluster(cluster::describe_cluster(broker, context, r)),
        RequestKind::DescribeLogDirs(r) => ResponseKind::DescribeLogDirs(log_dirs::handle(broker, r)),
        RequestKind::DescribeTopicPartitions(r) => {
            ResponseKind::DescribeTopicPartitions(topic_partitions::handle(broker, context, r))
        }
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(groups::find_coordinator(broker, context, version, r).await)
        }
        RequestKind::JoinGroup(r) => {
            ResponseKind::JoinGroup(groups::join_group(broker, version, &client_id, peer, r).await)
        }
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(groups::sync_group(broker, r).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(groups::heartbeat(broker, r)),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(groups::leave_group(broker, version, r)),
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(groups::offset_commit(broker, r).await),
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(groups::offset_fetch(broker, version, r)),
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(groups::list_groups(broker, version, r)),
        RequestKind::DescribeGroups(r) => ResponseKind::DescribeGroups(groups::describe_groups(broker, version, r)),
        RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(groups::delete_groups(broker, r)),
        RequestKind::OffsetDelete(r) => ResponseKind::OffsetDelete(groups::offset_delete(broker, r)),
        other => {
            // decode_request refuses APIs the version table does not enable.
            tracing::error!(request = ?std::mem::discriminant(&other), "request for an API without a handler");
            return Outcome::Close;
        }
    };
    Outcome::Respond(Box::new(response))
}

/// Waits until `operation` can complete or `timeout` has passed, watching its partitions in
/// `purgatory`: only changes to those partitions wake it. Returns whether it completed.
pub(crate) async fn complete_within(
    replicas: &fjord_replication::ReplicaManager,
    purgatory: &Purgatory,
    operation: &mut impl DelayedOperation,
    timeout: std::time::Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        // Watch before checking, so a change in between still wakes this request.
        let watch = purgatory.watch(operation.keys());
        if operation.try_complete(replicas) {
            return true;
        }
        tokio::select! {
            () = watch => {}
            () = tokio::time::sleep_until(deadline) => return false,
        }
    }
}

pub(crate) fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

pub(crate) fn topic_name(s: &str) -> TopicName {
    TopicName(text(s))
}

pub(crate) fn wire_broker(id: fjord_types::BrokerId) -> WireBrokerId {
    WireBrokerId(id.0)
}

pub(crate) fn wire_uuid(id: fjord_types::TopicId) -> uuid::Uuid {
    uuid::Uuid::from_bytes(id.0)
}
