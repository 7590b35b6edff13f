//! A broker's life in the cluster (Kafka's `BrokerLifecycleManager`): it registers this process
//! with the active controller, heartbeats every `broker.heartbeat.interval.ms` (quickly while
//! it is fenced, so it is unfenced as soon as its metadata has caught up), is ready to serve
//! once unfenced, and on a controlled shutdown asks to leave and waits until the controller has
//! moved its leaderships.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use fjord_protocol::cluster as pb;
use fjord_types::ErrorCode;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::cluster::channel::ChannelError;

/// How long a call to the controller may take before the broker tries again.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Heartbeats while fenced or shutting down: quick, so the state moves on at once.
const QUICK_HEARTBEAT: Duration = Duration::from_millis(50);

/// What the lifecycle tells the rest of the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Registering or catching up: not serving yet.
    Starting,
    /// Unfenced: serving clients.
    Running,
    /// The controller has moved this broker's leaderships: it may stop now.
    ShutDown,
    /// It may not join this cluster (its data belongs to another).
    Refused,
}

/// Registers, then heartbeats until told to shut down. `stage` reports the broker's stage;
/// `leave` asks for a controlled shutdown.
pub(crate) async fn run(broker: Arc<Broker>, stage: watch::Sender<Stage>, mut leave: watch::Receiver<bool>) {
    let id = broker.node_id.0;
    'register: loop {
        let request = pb::BrokerRegistrationRequest {
            cluster_id: broker.cluster_id.clone(),
            broker_id: id,
            incarnation_id: broker.incarnation_id.to_vec(),
            listeners: broker
                .config
                .advertised_listeners
                .iter()
                .map(|l| pb::Endpoint { listener: l.name.clone(), host: l.host.clone(), port: u32::from(l.port) })
                .collect(),
            rack: broker.config.rack.clone(),
        };
        let epoch = match broker.channel().register(request, CALL_TIMEOUT).await {
            Ok(answer) if answer.error_code == 0 => answer.broker_epoch,
            Ok(answer) if answer.error_code == i32::from(ErrorCode::InconsistentClusterId.code()) => {
                tracing::error!(
                    cluster_id = %broker.cluster_id,
                    "this node's meta.properties belongs to another cluster than its controllers': it refuses to join ({})",
                    answer.error_message
                );
                stage.send_replace(Stage::Refused);
                return;
            }
            Ok(answer) => {
                tracing::warn!(code = answer.error_code, message = %answer.error_message, "registration refused; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(ChannelError::ShuttingDown) => return,
            Err(e) => {
                tracing::info!(error = %e, "waiting for an active controller to register with");
                continue;
            }
        };
        broker.broker_epoch.store(epoch, Ordering::Release);
        tracing::info!(broker_epoch = epoch, "registered with the controller");
        let mut fenced = true;
        let interval = Duration::from_millis(broker.config.broker_heartbeat_interval_ms.max(1));
        loop {
            let leaving = *leave.borrow();
            let request = pb::BrokerHeartbeatRequest {
                broker_id: id,
                broker_epoch: epoch,
                current_metadata_offset: broker.metadata_offset().0,
                want_fence: false,
                want_shut_down: leaving,
            };
            match broker.channel().heartbeat(request, CALL_TIMEOUT).await {
                Ok(answer) if answer.error_code == 0 => {
                    if answer.should_shut_down {
                        stage.send_replace(Stage::ShutDown);
                        return;
                    }
                    // Serve once this broker's own metadata shows it unfenced: then the
                    // leaderships its unfencing gave it are in the image too (one batch).
                    let unfenced_here = broker
                        .image()
                        .brokers
                        .get(&broker.node_id)
                        .is_some_and(|r| r.broker_epoch == epoch && !r.fenced);
                    let now_fenced = answer.is_fenced || !unfenced_here;
                    if fenced && !now_fenced {
                        tracing::info!(broker_epoch = epoch, "unfenced: serving");
                        stage.send_if_modified(|s| {
                            let starting = *s == Stage::Starting;
                            if starting {
                                *s = Stage::Running;
                            }
                            starting
                        });
                    } else if !fenced && answer.is_fenced && !leaving {
                        tracing::warn!("fenced by the controller");
                    }
                    fenced = now_fenced;
                }
                Ok(answer)
                    if answer.error_code == i32::from(ErrorCode::StaleBrokerEpoch.code())
                        || answer.error_code == i32::from(ErrorCode::BrokerIdNotRegistered.code()) =>
                {
                    tracing::warn!(
                        code = answer.error_code,
                        "the controller does not know this registration; registering again"
                    );
                    continue 'register;
                }
                Ok(answer) => tracing::warn!(code = answer.error_code, "heartbeat refused"),
                Err(ChannelError::ShuttingDown) => return,
                Err(e) => tracing::warn!(error = %e, "no heartbeat answer"),
            }
            let pause = if fenced || leaving { QUICK_HEARTBEAT } else { interval };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = leave.changed() => {}
            }
        }
    }
}
