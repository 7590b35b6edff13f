//! DescribeCluster.

use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse};

use super::{RequestContext, text, wire_broker};
use crate::broker::Broker;

pub(super) fn describe_cluster(
    broker: &Arc<Broker>,
    context: &RequestContext,
    _request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let image = broker.image();
    let brokers = image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .filter_map(|b| {
            let endpoint = b.endpoint(&context.listener)?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(wire_broker(b.broker_id))
                    .with_host(text(&endpoint.host))
                    .with_port(i32::from(endpoint.port))
                    .with_rack(b.rack.as_deref().map(text)),
            )
        })
        .collect();
    DescribeClusterResponse::default()
        .with_cluster_id(text(&broker.cluster_id))
        .with_controller_id(wire_broker(broker.node_id))
        .with_endpoint_type(1)
        .with_brokers(brokers)
}
