//! How a node reaches the active controller (Kafka's `NodeToControllerChannelManager`):
//! registration, heartbeats, producer-id blocks and forwarded admin requests go to whichever
//! node leads the metadata quorum — this node's own controller in process, or another over
//! gRPC — and are retried on the next leader while the quorum elects one, so an election is a
//! pause, not an error.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use fjord_protocol::cluster as pb;
use fjord_protocol::cluster::controller_server::Controller as ControllerRpc;
use fjord_quorum::{NodeId, VoterSet};
use fjord_types::ErrorCode;
use parking_lot::Mutex;
use tokio::sync::watch;
use tonic::transport::Channel;

use crate::metadata::raft::QuorumLeader;

type Client = pb::controller_client::ControllerClient<Channel>;

/// Where a call goes.
enum Target {
    Local(Arc<dyn ControllerRpc>),
    Remote(Client),
}

/// A call that the controller could not answer in time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ChannelError {
    /// No active controller answered before the deadline.
    #[error("no active controller answered within {0:?}")]
    TimedOut(Duration),
    /// This node's quorum has stopped: it is shutting down.
    #[error("this node is shutting down")]
    ShuttingDown,
}

impl ChannelError {
    /// The code a client gets for it.
    pub(crate) fn code(&self) -> ErrorCode {
        match self {
            ChannelError::TimedOut(_) => ErrorCode::RequestTimedOut,
            ChannelError::ShuttingDown => ErrorCode::NotController,
        }
    }
}

/// The route to the active controller.
pub(crate) struct ControllerChannel {
    local_id: NodeId,
    leader: watch::Receiver<QuorumLeader>,
    voters: VoterSet,
    clients: Mutex<HashMap<NodeId, Client>>,
    /// This node's own controller service, on controller nodes.
    local: OnceLock<Arc<dyn ControllerRpc>>,
}

impl std::fmt::Debug for ControllerChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerChannel")
            .field("local_id", &self.local_id)
            .field("leader", &*self.leader.borrow())
            .field("local", &self.local.get().is_some())
            .finish_non_exhaustive()
    }
}

/// An answer's error code, for the retry decision.
trait Coded {
    fn error_code(&self) -> i32;
}

macro_rules! coded {
    ($($t:ty),*) => {$(impl Coded for $t { fn error_code(&self) -> i32 { self.error_code } })*};
}
coded!(
    pb::BrokerRegistrationResponse,
    pb::BrokerHeartbeatResponse,
    pb::AllocateProducerIdsResponse,
    pb::AlterPartitionResponse,
    pb::ForwardResponse
);

impl ControllerChannel {
    /// A route from `local_id` to whichever voter leads.
    pub(crate) fn new(local_id: NodeId, leader: watch::Receiver<QuorumLeader>, voters: VoterSet) -> ControllerChannel {
        ControllerChannel { local_id, leader, voters, clients: Mutex::new(HashMap::new()), local: OnceLock::new() }
    }

    /// Makes this node's own controller service reachable without the network.
    pub(crate) fn set_local(&self, service: Arc<dyn ControllerRpc>) {
        let _ = self.local.set(service);
    }

    fn target(&self, leader: NodeId) -> Option<Target> {
        if leader == self.local_id {
            return self.local.get().map(|l| Target::Local(Arc::clone(l)));
        }
        let mut clients = self.clients.lock();
        if let Some(client) = clients.get(&leader) {
            return Some(Target::Remote(client.clone()));
        }
        let channel = super::connect(self.voters.get(leader)?.endpoint.as_ref()?)?;
        let client = Client::new(channel)
            .max_decoding_message_size(super::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(super::MAX_MESSAGE_BYTES);
        clients.insert(leader, client.clone());
        Some(Target::Remote(client))
    }

    /// Sends a request to the active controller, retrying through elections and on
    /// NOT_CONTROLLER until `timeout`.
    async fn call<Req, Resp, F, Fut>(&self, request: Req, timeout: Duration, send: F) -> Result<Resp, ChannelError>
    where
        Req: Clone,
        Resp: Coded,
        F: Fn(Target, Req) -> Fut,
        Fut: std::future::Future<Output = Result<Resp, tonic::Status>>,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut leader = self.leader.clone();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(ChannelError::TimedOut(timeout));
            }
            let current = *leader.borrow_and_update();
            let target = current.leader.and_then(|l| self.target(l));
            if let Some(target) = target {
                // A controller that stops answering (a paused process, a partition) is
                // replaced by an election: the call then goes to the new one.
                let attempt = tokio::time::timeout(left, send(target, request.clone()));
                tokio::select! {
                    answered = attempt => match answered {
                        Ok(Ok(response)) if response.error_code() != i32::from(ErrorCode::NotController.code()) => {
                            return Ok(response);
                        }
                        Ok(Ok(_)) => tracing::debug!(leader = ?current.leader, "not the controller; waiting for the next"),
                        Ok(Err(status)) => tracing::debug!(leader = ?current.leader, %status, "controller call failed"),
                        Err(_) => return Err(ChannelError::TimedOut(timeout)),
                    },
                    changed = leader.wait_for(|l| l.leader != current.leader) => {
                        if changed.is_err() {
                            return Err(ChannelError::ShuttingDown);
                        }
                        tracing::debug!(from = ?current.leader, "the controller changed during a call; calling the new one");
                        continue;
                    }
                }
            }
            // Wait for a leader change, or a short while (the leader may come back, or its
            // controller may just be catching up).
            let pause = left.min(Duration::from_millis(100));
            if let Ok(Err(_)) = tokio::time::timeout(pause, leader.changed()).await {
                return Err(ChannelError::ShuttingDown);
            }
        }
    }

    /// BrokerRegistration.
    pub(crate) async fn register(
        &self,
        request: pb::BrokerRegistrationRequest,
        timeout: Duration,
    ) -> Result<pb::BrokerRegistrationResponse, ChannelError> {
        self.call(request, timeout, |target, request| async move {
            match target {
                Target::Local(l) => l.register_broker(tonic::Request::new(request)).await.map(|r| r.into_inner()),
                Target::Remote(mut c) => c.register_broker(request).await.map(|r| r.into_inner()),
            }
        })
        .await
    }

    /// BrokerHeartbeat.
    pub(crate) async fn heartbeat(
        &self,
        request: pb::BrokerHeartbeatRequest,
        timeout: Duration,
    ) -> Result<pb::BrokerHeartbeatResponse, ChannelError> {
        self.call(request, timeout, |target, request| async move {
            match target {
                Target::Local(l) => l.broker_heartbeat(tonic::Request::new(request)).await.map(|r| r.into_inner()),
                Target::Remote(mut c) => c.broker_heartbeat(request).await.map(|r| r.into_inner()),
            }
        })
        .await
    }

    /// AllocateProducerIds.
    pub(crate) async fn allocate_producer_ids(
        &self,
        request: pb::AllocateProducerIdsRequest,
        timeout: Duration,
    ) -> Result<pb::AllocateProducerIdsResponse, ChannelError> {
        self.call(request, timeout, |target, request| async move {
            match target {
                Target::Local(l) => l.allocate_producer_ids(tonic::Request::new(request)).await.map(|r| r.into_inner()),
                Target::Remote(mut c) => c.allocate_producer_ids(request).await.map(|r| r.into_inner()),
            }
        })
        .await
    }

    /// AlterPartition: a leader's ISR change.
    pub(crate) async fn alter_partition(
        &self,
        request: pb::AlterPartitionRequest,
        timeout: Duration,
    ) -> Result<pb::AlterPartitionResponse, ChannelError> {
        self.call(request, timeout, |target, request| async move {
            match target {
                Target::Local(l) => l.alter_partition(tonic::Request::new(request)).await.map(|r| r.into_inner()),
                Target::Remote(mut c) => c.alter_partition(request).await.map(|r| r.into_inner()),
            }
        })
        .await
    }

    /// A client's admin request, to be run by the active controller.
    pub(crate) async fn forward(
        &self,
        request: pb::ForwardRequest,
        timeout: Duration,
    ) -> Result<pb::ForwardResponse, ChannelError> {
        self.call(request, timeout, |target, request| async move {
            match target {
                Target::Local(l) => l.forward(tonic::Request::new(request)).await.map(|r| r.into_inner()),
                Target::Remote(mut c) => c.forward(request).await.map(|r| r.into_inner()),
            }
        })
        .await
    }
}
