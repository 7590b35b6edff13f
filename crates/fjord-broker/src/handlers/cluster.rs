//! DescribeCluster: the brokers as this node's metadata has them.

use std::sync::Arc;

use fjord_protocol::extensions::DESCRIBE_CLUSTER_BROKER_EPOCH_TAG;
use fjord_types::ErrorCode;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse};

use super::{RequestContext, text, wire_broker};
use crate::broker::Broker;

/// DescribeCluster's endpoint type for brokers (KIP-919; 2 asks for controllers).
const BROKER_ENDPOINTS: i8 = 1;

/// Every unfenced broker with its endpoint on the listener the client used, and (v2,
/// `IncludeFencedBrokers`) the fenced ones marked so. Each carries its broker epoch in a
/// Fjord tagged field. The controller id is this broker's own, as a KRaft broker answers:
/// clients send controller requests to a broker, which forwards them.
pub(super) fn describe_cluster(
    broker: &Arc<Broker>,
    context: &RequestContext,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    if request.endpoint_type != BROKER_ENDPOINTS {
        return DescribeClusterResponse::default()
            .with_error_code(ErrorCode::MismatchedEndpointType.code())
            .with_error_message(Some(text("this is a broker listener: ask it for brokers (endpoint type 1)")))
            .with_endpoint_type(BROKER_ENDPOINTS);
    }
    let image = broker.image();
    let brokers = image
        .brokers
        .values()
        .filter(|b| !b.fenced || request.include_fenced_brokers)
        .filter_map(|b| {
            let endpoint = b.endpoint(&context.listener)?;
            let mut described = DescribeClusterBroker::default()
                .with_broker_id(wire_broker(b.broker_id))
                .with_host(text(&endpoint.host))
                .with_port(i32::from(endpoint.port))
                .with_rack(b.rack.as_deref().map(text))
                .with_is_fenced(b.fenced);
            described.unknown_tagged_fields.insert(
                DESCRIBE_CLUSTER_BROKER_EPOCH_TAG,
                bytes::Bytes::copy_from_slice(&b.broker_epoch.to_be_bytes()),
            );
            Some(described)
        })
        .collect();
    DescribeClusterResponse::default()
        .with_cluster_id(text(&broker.cluster_id))
        .with_controller_id(wire_broker(broker.node_id))
        .with_endpoint_type(BROKER_ENDPOINTS)
        .with_brokers(brokers)
}
