//! DescribeCluster.

use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse};

use super::{text, wire_broker};
use crate::broker::Broker;

pub(super) fn describe_cluster(broker: &Arc<Broker>, _request: DescribeClusterRequest) -> DescribeClusterResponse {
    let image = broker.image();
    let brokers = image
        .brokers
        .values()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(wire_broker(b.broker_id))
                .with_host(text(&b.host))
                .with_port(i32::from(b.port))
                .with_rack(b.rack.as_deref().map(text))
        })
        .collect();
    DescribeClusterResponse::default()
        .with_cluster_id(text(&broker.cluster_id))
        .with_controller_id(wire_broker(broker.node_id))
        .with_endpoint_type(1)
        .with_brokers(brokers)
}
