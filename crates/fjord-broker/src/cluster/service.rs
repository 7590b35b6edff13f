//! The active controller's services to brokers (KIP-631's BrokerRegistration and
//! BrokerHeartbeat, AllocateProducerIds, and forwarded admin requests), as the gRPC service of
//! the controller listener. The same service answers this node's own broker in process.

use std::sync::{Arc, Weak};

use fjord_metadata::Endpoint;
use fjord_metadata::controller::{
    self, AlterPartitionError, AlterPartitionRequest, HeartbeatRequest, RegistrationRequest,
};
use fjord_protocol::cluster as pb;
use fjord_types::{BrokerId, ErrorCode, LeaderEpoch, Offset};
use tonic::{Request, Response, Status};

use crate::broker::Broker;
use crate::errors;
use crate::handlers::forward;
use crate::metadata::controller::ControllerFailure;

/// The controller service of a node.
#[derive(Debug, Clone)]
pub(crate) struct ControllerService {
    pub(crate) broker: Weak<Broker>,
}

fn code(error: ErrorCode) -> i32 {
    i32::from(error.code())
}

fn failure(e: &ControllerFailure) -> (i32, String) {
    (code(errors::controller_failure(e)), e.to_string())
}

/// Kafka's codes for AlterPartition's refusals.
fn alter_partition_code(error: &AlterPartitionError) -> ErrorCode {
    match error {
        AlterPartitionError::StaleBrokerEpoch(_) => ErrorCode::StaleBrokerEpoch,
        AlterPartitionError::UnknownPartition(..) => ErrorCode::UnknownTopicOrPartition,
        AlterPartitionError::NewerThanController => ErrorCode::NotController,
        AlterPartitionError::FencedLeaderEpoch { .. } => ErrorCode::FencedLeaderEpoch,
        AlterPartitionError::NotLeader(_) | AlterPartitionError::InvalidIsr(_) => ErrorCode::InvalidRequest,
        AlterPartitionError::StalePartitionEpoch { .. } => ErrorCode::InvalidUpdateVersion,
        AlterPartitionError::IneligibleReplica(_) => ErrorCode::IneligibleReplica,
    }
}

impl ControllerService {
    fn broker(&self) -> Result<Arc<Broker>, Status> {
        self.broker.upgrade().ok_or_else(|| Status::unavailable("this node is shutting down"))
    }
}

#[tonic::async_trait]
impl pb::controller_server::Controller for ControllerService {
    async fn register_broker(
        &self,
        request: Request<pb::BrokerRegistrationRequest>,
    ) -> Result<Response<pb::BrokerRegistrationResponse>, Status> {
        let broker = self.broker()?;
        let request = request.into_inner();
        let refuse = |error: ErrorCode, message: String| {
            Ok(Response::new(pb::BrokerRegistrationResponse {
                error_code: code(error),
                error_message: message,
                broker_epoch: -1,
            }))
        };
        if request.cluster_id != broker.cluster_id {
            let message =
                format!("broker belongs to cluster {}, this controller to {}", request.cluster_id, broker.cluster_id);
            return refuse(ErrorCode::InconsistentClusterId, message);
        }
        let Ok(incarnation_id) = <[u8; 16]>::try_from(request.incarnation_id.as_slice()) else {
            return refuse(ErrorCode::InvalidRequest, "an incarnation id is 16 bytes".into());
        };
        let id = BrokerId(request.broker_id);
        let registration = RegistrationRequest {
            broker_id: id,
            incarnation_id,
            listeners: request
                .listeners
                .into_iter()
                .map(|l| Endpoint { listener: l.listener, host: l.host, port: u16::try_from(l.port).unwrap_or(0) })
                .collect(),
            rack: request.rack,
        };
        let session_timeout_ms = broker.config.broker_session_timeout_ms;
        let registered = broker
            .controller()
            .run(move |state| {
                let now = Broker::now();
                let alive = state.sessions.is_alive(id, now, session_timeout_ms);
                let records = controller::register_broker(&state.image, &registration, alive)?;
                state.sessions.registered(id, now);
                let committed = if records.is_empty() { None } else { Some(state.propose(records)?) };
                Ok((state.image.brokers[&id].broker_epoch, committed))
            })
            .await;
        match registered {
            Ok(epoch) => {
                tracing::info!(broker = id.0, broker_epoch = epoch, "registered a broker");
                Ok(Response::new(pb::BrokerRegistrationResponse {
                    error_code: 0,
                    error_message: String::new(),
                    broker_epoch: epoch,
                }))
            }
            Err(e) => {
                let (error_code, error_message) = failure(&e);
                Ok(Response::new(pb::BrokerRegistrationResponse { error_code, error_message, broker_epoch: -1 }))
            }
        }
    }

    async fn broker_heartbeat(
        &self,
        request: Request<pb::BrokerHeartbeatRequest>,
    ) -> Result<Response<pb::BrokerHeartbeatResponse>, Status> {
        let broker = self.broker()?;
        let request = request.into_inner();
        let beat = HeartbeatRequest {
            broker_id: BrokerId(request.broker_id),
            broker_epoch: request.broker_epoch,
            current_metadata_offset: Offset(request.current_metadata_offset),
            want_fence: request.want_fence,
            want_shut_down: request.want_shut_down,
        };
        let answered = broker
            .controller()
            .run(move |state| {
                state.sessions.touch(beat.broker_id, Broker::now(), beat.current_metadata_offset);
                let next = state.next_offset();
                let (records, answer) = controller::heartbeat(&state.image, &mut state.sessions, &beat, next)?;
                // The answer goes out at once (a heartbeat must not wait for a commit, or a busy
                // controller would fence brokers that did heartbeat, KAFKA-15019); what it
                // changed commits on its own.
                if !records.is_empty() {
                    let committed = state.propose(records)?;
                    tokio::spawn(async move {
                        if let Err(e) = committed.await {
                            tracing::warn!(error = %e, "a heartbeat's records did not commit");
                        }
                    });
                }
                Ok((answer, None))
            })
            .await;
        Ok(Response::new(match answered {
            Ok(a) => pb::BrokerHeartbeatResponse {
                error_code: 0,
                is_caught_up: a.is_caught_up,
                is_fenced: a.is_fenced,
                should_shut_down: a.should_shut_down,
            },
            Err(e) => pb::BrokerHeartbeatResponse {
                error_code: failure(&e).0,
                is_caught_up: false,
                is_fenced: true,
                should_shut_down: false,
            },
        }))
    }

    async fn allocate_producer_ids(
        &self,
        request: Request<pb::AllocateProducerIdsRequest>,
    ) -> Result<Response<pb::AllocateProducerIdsResponse>, Status> {
        let broker = self.broker()?;
        let id = BrokerId(request.into_inner().broker_id);
        let allocated = broker
            .controller()
            .decide(false, move |image| {
                let (record, range) = controller::allocate_producer_ids(image, id);
                (vec![record], range)
            })
            .await;
        Ok(Response::new(match allocated {
            Ok(range) => pb::AllocateProducerIdsResponse {
                error_code: 0,
                producer_id_start: range.start,
                producer_id_len: (range.end - range.start) as i32,
            },
            Err(e) => {
                pb::AllocateProducerIdsResponse { error_code: failure(&e).0, producer_id_start: -1, producer_id_len: 0 }
            }
        }))
    }

    async fn alter_partition(
        &self,
        request: Request<pb::AlterPartitionRequest>,
    ) -> Result<Response<pb::AlterPartitionResponse>, Status> {
        let broker = self.broker()?;
        let request = request.into_inner();
        let alter = AlterPartitionRequest {
            broker_id: BrokerId(request.broker_id),
            broker_epoch: request.broker_epoch,
            topic: request.topic,
            partition: request.partition,
            leader_epoch: LeaderEpoch(request.leader_epoch),
            partition_epoch: request.partition_epoch,
            new_isr: request.new_isr.into_iter().map(BrokerId).collect(),
        };
        let decided = broker
            .controller()
            .decide(false, move |image| match controller::alter_partition(image, &alter) {
                Ok((record, next)) => (record.into_iter().collect(), Ok(next)),
                Err(e) => (Vec::new(), Err(e)),
            })
            .await;
        let refused = |error_code: i32, error_message: String| pb::AlterPartitionResponse {
            error_code,
            error_message,
            leader_id: -1,
            leader_epoch: -1,
            isr: Vec::new(),
            partition_epoch: -1,
        };
        Ok(Response::new(match decided {
            Ok(Ok(next)) => pb::AlterPartitionResponse {
                error_code: 0,
                error_message: String::new(),
                leader_id: next.leader.0,
                leader_epoch: next.leader_epoch.0,
                isr: next.isr.iter().map(|b| b.0).collect(),
                partition_epoch: next.partition_epoch,
            },
            Ok(Err(e)) => refused(code(alter_partition_code(&e)), e.to_string()),
            Err(e) => {
                let (error_code, error_message) = failure(&e);
                refused(error_code, error_message)
            }
        }))
    }

    async fn forward(&self, request: Request<pb::ForwardRequest>) -> Result<Response<pb::ForwardResponse>, Status> {
        let broker = self.broker()?;
        Ok(Response::new(forward::serve(&broker, request.into_inner()).await))
    }
}
