//! The listener: accepts connections under `max.connections`, runs the background tasks, and
//! shuts down gracefully (mini-redis's `server.rs` choreography).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::cleaner::LogCleaner;
use crate::config::BrokerConfig;
use crate::connection;
use crate::error::{Error, Result};

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
}

impl Server {
    /// Opens the data (recovering it if needed) and binds the listeners.
    pub async fn start(config: BrokerConfig) -> Result<Server> {
        let started = Instant::now();
        let unused = config.unused_properties();
        if !unused.is_empty() {
            tracing::warn!(properties = ?unused, "these properties were supplied but are not used by this build");
        }
        let mut config = config;
        let mut listeners = Vec::new();
        for listener in &config.listeners {
            let address = format!("{}:{}", listener.host, listener.port);
            let socket = TcpListener::bind(&address)
                .await
                .map_err(|source| Error::Listen { address: address.clone(), source })?;
            listeners.push((listener.name.clone(), socket));
        }
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

        let broker = Broker::start(config).await?;
        let addresses: Vec<String> =
            listeners.iter().filter_map(|(_, l)| l.local_addr().ok()).map(|a| a.to_string()).collect();
        tracing::info!(
            node_id = broker.node_id.0,
            cluster_id = %broker.cluster_id,
            listeners = ?addresses,
            data = %broker.config.data_dir().display(),
            topics = broker.image().topics.len(),
            startup_ms = started.elapsed().as_millis() as u64,
            "fjord started"
        );
        Ok(Server { broker, listeners })
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

    /// Serves until `shutdown` completes, then stops accepting, lets connections finish their
    /// current request (up to the grace period), flushes every log and writes checkpoints.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let broker = self.broker;
        let permits = Arc::new(Semaphore::new(broker.config.max_connections.min(Semaphore::MAX_PERMITS)));
        let (stop_tx, stop_rx) = watch::channel(false);
        let grace = Duration::from_millis(broker.config.shutdown_grace_ms);
        let background = tokio::spawn(background_tasks(Arc::clone(&broker), stop_rx.clone()));
        let cleaners = LogCleaner::start(&broker.cleaner_context());
        let mut accepts = JoinSet::new();
        for (name, listener) in self.listeners {
            let broker = Arc::clone(&broker);
            let permits = Arc::clone(&permits);
            let stop = stop_rx.clone();
            let name: Arc<str> = Arc::from(name);
            accepts.spawn(async move { accept_loop(listener, name, broker, permits, stop, grace).await });
        }
        tokio::pin!(shutdown);
        tokio::select! {
            () = &mut shutdown => tracing::info!("shutting down"),
            Some(result) = accepts.join_next() => {
                if let Ok(Err(e)) = result {
                    tracing::error!(error = %e, "listener failed");
                }
            }
        }
        let _ = stop_tx.send(true);
        // Each accept loop waits for its connections to finish their current request.
        let drained = tokio::time::timeout(grace + Duration::from_secs(1), async {
            while accepts.join_next().await.is_some() {}
        });
        if drained.await.is_err() {
            accepts.shutdown().await;
        }
        let _ = background.await;
        tokio::task::spawn_blocking(move || cleaners.stop()).await?;
        let closing = Arc::clone(&broker);
        tokio::task::spawn_blocking(move || closing.shutdown()).await?;
        tracing::info!("fjord stopped cleanly");
        Ok(())
    }
}

async fn accept_loop(
    listener: TcpListener,
    name: Arc<str>,
    broker: Arc<Broker>,
    permits: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
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
        connections.spawn(async move {
            connection::serve(broker, stream, name, stop).await;
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

async fn background_tasks(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let mut flush = tokio::time::interval(FLUSH_CHECK_INTERVAL);
    let mut checkpoint = tokio::time::interval(CHECKPOINT_INTERVAL);
    let mut groups = tokio::time::interval(GROUP_TICK_INTERVAL);
    groups.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut expire_offsets =
        tokio::time::interval(Duration::from_millis(broker.config.offsets_retention_check_interval_ms.max(1)));
    let mut retention =
        tokio::time::interval(Duration::from_millis(broker.config.log_retention_check_interval_ms.max(1)));
    loop {
        tokio::select! {
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
