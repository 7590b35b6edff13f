//! The listeners: the client listeners accept connections under `max.connections`, the
//! controller listener serves the node-to-node gRPC services; plus the background tasks, the
//! broker's lifecycle in the cluster, and a graceful shutdown (mini-redis's `server.rs`
//! choreography, with Kafka's controlled shutdown in front).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fjord_protocol::cluster as pb;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::cleaner::LogCleaner;
use crate::cluster::{self, lifecycle, lifecycle::Stage};
use crate::config::BrokerConfig;
use crate::connection;
use crate::error::{Error, Result};
use crate::replication;

/// How often `flush.ms` and rolled segments are checked.
const FLUSH_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// `replica.high.watermark.checkpoint.interval.ms`.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);
/// How often group timers (rebalance, session and initial-delay timeouts) are checked: the
/// resolution of those timeouts.
const GROUP_TICK_INTERVAL: Duration = Duration::from_millis(100);

/// A broker serving on the current tokio runtime (see [`Server::spawn`]): for embedding a
/// broker in an application or a test.
#[derive(Debug)]
pub struct RunningServer {
    /// The broker.
    pub broker: Arc<Broker>,
    addrs: Vec<SocketAddr>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<()>>,
}

impl RunningServer {
    /// The bound addresses (the first is the first of `listeners`).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Stops the broker as a SIGTERM would and waits until its logs are closed.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(());
        self.task.await?
    }
}

/// A started broker: its state and the addresses it listens on.
#[derive(Debug)]
pub struct Server {
    /// The broker.
    pub broker: Arc<Broker>,
    /// Each client listener's name and socket.
    listeners: Vec<(String, TcpListener)>,
    /// The controller listener's address, if this node has one.
    controller_addr: Option<SocketAddr>,
    cluster: ClusterTasks,
}

/// The tasks that keep a node in its cluster.
#[derive(Debug)]
struct ClusterTasks {
    /// Stops the gRPC server of the controller listener.
    stop_rpc: watch::Sender<bool>,
    rpc: Option<tokio::task::JoinHandle<()>>,
    /// The broker's stage, from its lifecycle (`Running` at once on a controller-only node).
    stage: watch::Receiver<Stage>,
    /// Asks the lifecycle for a controlled shutdown.
    leave: watch::Sender<bool>,
    lifecycle: Option<tokio::task::JoinHandle<()>>,
}

/// How long a single node waits to register with its own controller before giving up.
const SINGLE_NODE_READY: Duration = Duration::from_secs(30);

impl Server {
    /// Opens the data (recovering it if needed) and binds the listeners.
    pub async fn start(config: BrokerConfig) -> Result<Server> {
        let started = Instant::now();
        let unused = config.unused_properties();
        if !unused.is_empty() {
            tracing::warn!(properties = ?unused, "these properties were supplied but are not used by this build");
        }
        let mut config = config;
        let roles = config.cluster.roles;
        let mut listeners = Vec::new();
        if roles.broker {
            for listener in &config.listeners {
                listeners.push((listener.name.clone(), bind(&listener.host, listener.port).await?));
            }
        }
        let controller_listener = match &config.cluster.controller_listener {
            Some(l) if roles.controller => Some(bind(&l.host, l.port).await?),
            _ => None,
        };
        // A listener on port 0 gets an ephemeral port; advertise the one it got.
        for advertised in &mut config.advertised_listeners {
            if advertised.port == 0
                && let Some(port) = listeners
                    .iter()
                    .find(|(name, _)| *name == advertised.name)
                    .and_then(|(_, socket)| socket.local_addr().ok())
                    .map(|a| a.port())
            {
                advertised.port = port;
            }
        }

        let multi_node = config.cluster.is_multi_node(config.node_id);
        let broker = Broker::start(config).await?;
        let controller_addr = controller_listener.as_ref().and_then(|l| l.local_addr().ok());
        let (stop_rpc, rpc_stopped) = watch::channel(false);
        let rpc = controller_listener.map(|listener| {
            let serving = Arc::clone(&broker);
            tokio::spawn(async move {
                let mut stopped = rpc_stopped;
                let shutdown = async move {
                    let _ = stopped.wait_for(|s| *s).await;
                };
                if let Err(e) = cluster::serve(&serving, listener, shutdown).await {
                    tracing::error!(error = %e, "the controller listener failed");
                }
            })
        });
        let (stage_tx, mut stage) = watch::channel(if roles.broker { Stage::Starting } else { Stage::Running });
        let (leave, leaving) = watch::channel(false);
        let lifecycle = roles.broker.then(|| tokio::spawn(lifecycle::run(Arc::clone(&broker), stage_tx, leaving)));
        let cluster = ClusterTasks { stop_rpc, rpc, stage: stage.clone(), leave, lifecycle };
        let server = Server { broker, listeners, controller_addr, cluster };
        if !multi_node {
            // Its own controller answers at once: be ready to serve before returning.
            let ready = tokio::time::timeout(SINGLE_NODE_READY, stage.wait_for(|s| *s != Stage::Starting))
                .await
                .ok()
                .and_then(|staged| staged.ok().map(|s| *s));
            if ready != Some(Stage::Running) {
                let reason =
                    format!("the node did not become ready within {SINGLE_NODE_READY:?} ({:?})", *stage.borrow());
                server.abandon().await;
                return Err(Error::Controller(reason));
            }
        }
        let broker = &server.broker;
        let addresses: Vec<String> = server.local_addrs().iter().map(|a| a.to_string()).collect();
        tracing::info!(
            node_id = broker.node_id.0,
            cluster_id = %broker.cluster_id,
            roles = %broker.config.cluster.roles,
            listeners = ?addresses,
            controller_listener = ?server.controller_addr.map(|a| a.to_string()),
            data = %broker.config.data_dir().display(),
            topics = broker.image().topics.len(),
            startup_ms = started.elapsed().as_millis() as u64,
            "fjord started"
        );
        Ok(server)
    }

    /// Stops a node that never served: its cluster tasks, then its logs and quorum.
    async fn abandon(self) {
        let Server { broker, cluster, .. } = self;
        cluster.stop().await;
        let _ = tokio::task::spawn_blocking(move || broker.shutdown()).await;
    }

    /// The controller listener's address, on a node with the controller role that binds one.
    pub fn controller_addr(&self) -> Option<SocketAddr> {
        self.controller_addr
    }

    /// The bound addresses.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().filter_map(|(_, l)| l.local_addr().ok()).collect()
    }

    /// Serves on a task of the current runtime until [`RunningServer::shutdown`].
    pub fn spawn(self) -> RunningServer {
        let broker = Arc::clone(&self.broker);
        let addrs = self.local_addrs();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(self.run(async {
            let _ = stopped.await;
        }));
        RunningServer { broker, addrs, stop, task }
    }

    /// Serves until `shutdown` completes, then shuts down in Kafka's order: a controlled
    /// shutdown first (the controller moves this broker's leaderships away), then it stops
    /// accepting, lets connections finish their current request (up to the grace period),
    /// flushes every log, writes checkpoints, and stops the quorum (resigning if it leads).
    ///
    /// In a cluster, clients are accepted once the controller has unfenced this broker; until
    /// then they wait in the listen backlog.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let Server { broker, listeners, cluster, .. } = self;
        tokio::pin!(shutdown);
        let mut stage = cluster.stage.clone();
        let mut refused = broker.quorum().refused();
        let refusal = async move {
            if refused.wait_for(Option::is_some).await.is_err() {
                // The quorum stopped without refusing: nothing to report, ever.
                std::future::pending::<()>().await;
            }
            let reason = refused.borrow().clone();
            reason.unwrap_or_default()
        };
        tokio::pin!(refusal);
        let ready = tokio::select! {
            () = &mut shutdown => None,
            staged = stage.wait_for(|s| *s != Stage::Starting) => Some(staged.map_or(Stage::ShutDown, |s| *s)),
            reason = &mut refusal => {
                tracing::error!("{reason}");
                Some(Stage::Refused)
            }
        };
        match ready {
            Some(Stage::Running) => {}
            None => {
                tracing::info!("shutting down before serving");
                return stop_node(broker, cluster).await;
            }
            Some(other) => {
                stop_node(Arc::clone(&broker), cluster).await?;
                return Err(Error::Controller(format!(
                    "node {} cannot join the cluster ({other:?}); see the log above",
                    broker.node_id.0
                )));
            }
        }
        let permits = Arc::new(Semaphore::new(broker.config.max_connections.min(Semaphore::MAX_PERMITS)));
        let (stop_tx, stop_rx) = watch::channel(false);
        let grace = Duration::from_millis(broker.config.shutdown_grace_ms);
        let background = tokio::spawn(background_tasks(Arc::clone(&broker), stop_rx.clone()));
        let cleaners = LogCleaner::start(&broker.cleaner_context());
        let (replica_rpc, replica_connections) = replication_server(&broker, stop_rx.clone());
        let mut accepts = JoinSet::new();
        for (name, listener) in listeners {
            let broker = Arc::clone(&broker);
            let permits = Arc::clone(&permits);
            let stop = stop_rx.clone();
            // Other brokers' replica fetches arrive on the inter-broker listener.
            let grpc = (name == broker.config.cluster.inter_broker_listener_name).then(|| replica_connections.clone());
            let name: Arc<str> = Arc::from(name);
            accepts.spawn(async move { accept_loop(listener, name, broker, permits, stop, grace, grpc).await });
        }
        drop(replica_connections);
        let mut refused_later = None;
        tokio::select! {
            () = &mut shutdown => tracing::info!("shutting down"),
            Some(result) = accepts.join_next() => {
                if let Ok(Err(e)) = result {
                    tracing::error!(error = %e, "listener failed");
                }
            }
            reason = &mut refusal => refused_later = Some(reason),
        }
        cluster.controlled_shutdown(&broker).await;
        let _ = stop_tx.send(true);
        // Each accept loop waits for its connections to finish their current request.
        let drained = tokio::time::timeout(grace + Duration::from_secs(1), async {
            while accepts.join_next().await.is_some() {}
        });
        if drained.await.is_err() {
            accepts.shutdown().await;
        }
        let _ = background.await;
        if tokio::time::timeout(Duration::from_secs(5), replica_rpc).await.is_err() {
            tracing::warn!("the replica fetch service did not stop within 5 s");
        }
        tokio::task::spawn_blocking(move || cleaners.stop()).await?;
        stop_node(broker, cluster).await?;
        match refused_later {
            Some(reason) => Err(Error::Controller(reason)),
            None => Ok(()),
        }
    }
}

/// Binds one listener.
async fn bind(host: &str, port: u16) -> Result<TcpListener> {
    let address = format!("{host}:{port}");
    TcpListener::bind(&address).await.map_err(|source| Error::Listen { address, source })
}

/// Closes the logs and stops the quorum, then the cluster tasks.
async fn stop_node(broker: Arc<Broker>, cluster: ClusterTasks) -> Result<()> {
    if let Some(lifecycle) = &cluster.lifecycle {
        lifecycle.abort();
    }
    let closing = Arc::clone(&broker);
    tokio::task::spawn_blocking(move || closing.shutdown()).await?;
    cluster.stop().await;
    tracing::info!("fjord stopped cleanly");
    Ok(())
}

impl ClusterTasks {
    /// Kafka's controlled shutdown (`controlled.shutdown.enable`): the broker asks through its
    /// heartbeat to leave, and waits until the controller has moved its leaderships and the
    /// other brokers know it, or until a session timeout has passed (a controller that does
    /// not answer fences it then anyway).
    async fn controlled_shutdown(&self, broker: &Broker) {
        if self.lifecycle.is_none() || !broker.config.cluster.controlled_shutdown_enable {
            return;
        }
        let started = Instant::now();
        self.leave.send_replace(true);
        let limit = Duration::from_millis(broker.config.broker_session_timeout_ms.max(1) as u64);
        let mut stage = self.stage.clone();
        match tokio::time::timeout(limit, stage.wait_for(|s| *s == Stage::ShutDown)).await {
            Ok(Ok(_)) => tracing::info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "controlled shutdown: the controller has moved this broker's leaderships"
            ),
            _ => tracing::warn!(?limit, "controlled shutdown did not complete; stopping anyway"),
        }
    }

    /// Stops the lifecycle and the gRPC server.
    async fn stop(self) {
        if let Some(lifecycle) = self.lifecycle {
            lifecycle.abort();
            let _ = lifecycle.await;
        }
        let _ = self.stop_rpc.send(true);
        if let Some(rpc) = self.rpc {
            // Connections from other nodes are closed after their current call.
            if tokio::time::timeout(Duration::from_secs(5), rpc).await.is_err() {
                tracing::warn!("the controller listener did not stop within 5 s");
            }
        }
    }
}

/// Connections handed to the replica fetch service.
type GrpcConnections = mpsc::UnboundedSender<std::io::Result<TcpStream>>;

/// Starts the `Replica` gRPC service, fed with the connections the inter-broker listener
/// finds speaking HTTP/2, until `stop`.
fn replication_server(
    broker: &Arc<Broker>,
    mut stop: watch::Receiver<bool>,
) -> (tokio::task::JoinHandle<()>, GrpcConnections) {
    let (connections, incoming) = mpsc::unbounded_channel();
    let service =
        pb::replica_server::ReplicaServer::new(replication::leader::ReplicaService { broker: Arc::downgrade(broker) })
            .max_decoding_message_size(cluster::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(cluster::MAX_MESSAGE_BYTES);
    let task = tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::UnboundedReceiverStream::new(incoming);
        let shutdown = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let served = tonic::transport::Server::builder()
            .initial_stream_window_size(Some(replication::fetcher::REPLICA_WINDOW))
            .initial_connection_window_size(Some(replication::fetcher::REPLICA_WINDOW))
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, shutdown);
        if let Err(e) = served.await {
            tracing::error!(error = %e, "the replica fetch service failed");
        }
    });
    (task, connections)
}

async fn accept_loop(
    listener: TcpListener,
    name: Arc<str>,
    broker: Arc<Broker>,
    permits: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
    grpc: Option<GrpcConnections>,
) -> Result<()> {
    let mut connections = JoinSet::new();
    loop {
        // At max.connections, stop accepting until one closes: new clients wait in the
        // kernel's backlog, as they do with Kafka.
        let accepted = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => {
                let Ok(permit) = permit else { break };
                tokio::select! {
                    accepted = listener.accept() => Some((permit, accepted)),
                    _ = stop.changed() => None,
                }
            }
            _ = stop.changed() => None,
        };
        let Some((permit, accepted)) = accepted else { break };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let broker = Arc::clone(&broker);
        let stop = stop.clone();
        let name = Arc::clone(&name);
        let grpc = grpc.clone();
        connections.spawn(async move {
            if let Some(grpc) = grpc
                && let Err(stream) = hand_over_grpc(stream, &grpc).await
            {
                connection::serve(broker, stream, name, stop).await;
            }
            drop(permit);
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let drained = tokio::time::timeout(grace, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        connections.shutdown().await;
    }
    Ok(())
}

/// Gives a connection that speaks HTTP/2 to the replica fetch service; any other comes back.
async fn hand_over_grpc(stream: TcpStream, grpc: &GrpcConnections) -> std::result::Result<(), TcpStream> {
    if !replication::speaks_grpc(&stream).await {
        return Err(stream);
    }
    // Replica fetches are small answers on the acks=all path: Nagle's delay with the peer's
    // delayed ACK would add tens of milliseconds to each.
    let _ = stream.set_nodelay(true);
    let _ = grpc.send(Ok(stream));
    Ok(())
}

async fn background_tasks(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let mut flush = tokio::time::interval(FLUSH_CHECK_INTERVAL);
    let mut checkpoint = tokio::time::interval(CHECKPOINT_INTERVAL);
    let mut groups = tokio::time::interval(GROUP_TICK_INTERVAL);
    groups.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut expire_offsets =
        tokio::time::interval(Duration::from_millis(broker.config.offsets_retention_check_interval_ms.max(1)));
    let mut retention =
        tokio::time::interval(Duration::from_millis(broker.config.log_retention_check_interval_ms.max(1)));
    // Kafka's isr-expiration task: every half of replica.lag.time.max.ms.
    let mut isr_expiration =
        tokio::time::interval(Duration::from_millis((broker.config.replication.lag_time_max_ms / 2).max(10) as u64));
    isr_expiration.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = isr_expiration.tick() => replication::isr::shrink_lagging(&broker),
            _ = flush.tick() => {
                let broker = Arc::clone(&broker);
                let _ = tokio::task::spawn_blocking(move || broker.flush_due()).await;
            }
            _ = checkpoint.tick() => {
                let broker = Arc::clone(&broker);
                let _ = tokio::task::spawn_blocking(move || broker.write_checkpoints()).await;
            }
            _ = groups.tick() => broker.groups.tick(),
            _ = expire_offsets.tick() => {
                let broker = Arc::clone(&broker);
                let _ = tokio::task::spawn_blocking(move || broker.groups.expire_offsets()).await;
            }
            _ = retention.tick() => {
                let checking = Arc::clone(&broker);
                let doomed = tokio::task::spawn_blocking(move || checking.enforce_retention()).await.unwrap_or_default();
                for (segment, delay_ms) in doomed {
                    // Renamed *.deleted already; the files go after file.delete.delay.ms so reads
                    // in flight finish (a restart removes any left over).
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                        let _ = tokio::task::spawn_blocking(move || {
                            if let Err(e) = segment.remove() {
                                tracing::warn!(error = %e, "cannot remove deleted segment");
                            }
                        })
                        .await;
                    });
                }
            }
            _ = stop.changed() => return,
        }
    }
}
