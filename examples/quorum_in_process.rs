//! A three-voter `fjord-quorum` in one process: each voter is a thread with its own log on disk
//! (`FileLog` and a `quorum-state` file in a `__cluster_metadata-0` directory), and the threads
//! talk over std channels. Together they replicate a small key-value map. The example writes a
//! few keys, kills the leader, waits for the others to elect a new one, writes again, reads the
//! same map from the new leader and from its follower, then restarts the old leader from its
//! disk and sees it catch up. It checks every step and exits non-zero if one fails.
//!
//! Run: `cargo run -p fjord-examples --example quorum_in_process`

#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use fjord_log::LogConfig;
use fjord_quorum::{
    Batch, BatchKind, Driver, DriverEvent, FileLog, FileQuorumStateStore, METADATA_PARTITION_DIR, Message, NodeId,
    NodeOptions, OffsetAndEpoch, QuorumConfig, RaftNode, ReplicaKey, RoleKind, SnapshotPolicy, StateMachine, VoterSet,
};
use fjord_types::{Clock, SystemClock};

/// The replicated state: `key=value` records set keys.
#[derive(Debug, Default)]
struct KeyValue(BTreeMap<String, String>);

impl StateMachine for KeyValue {
    fn apply(&mut self, batch: &Batch) -> Result<(), String> {
        if batch.kind == BatchKind::Control {
            return Ok(());
        }
        for record in &batch.records {
            let text = std::str::from_utf8(record).map_err(|e| e.to_string())?;
            let (key, value) = text.split_once('=').ok_or("not key=value")?;
            self.0.insert(key.to_owned(), value.to_owned());
        }
        Ok(())
    }

    fn snapshot(&self) -> Vec<u8> {
        self.0.iter().map(|(k, v)| format!("{k}={v}\n")).collect::<String>().into_bytes()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(snapshot).map_err(|e| e.to_string())?;
        self.0 = text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        Ok(())
    }
}

/// What a node's thread is asked to do.
enum Input {
    /// A message from another node.
    Message(NodeId, Message),
    /// Propose records; the answer comes once they are committed (or leadership is lost).
    Propose(Vec<Vec<u8>>, Sender<Result<(), String>>),
    /// The node's role and its copy of the map.
    Status(Sender<(RoleKind, BTreeMap<String, String>)>),
}

/// Where to send each node's messages; a killed node's entry is `None`.
type Routes = Arc<Mutex<BTreeMap<NodeId, Option<Sender<Input>>>>>;

type NodeDriver = Driver<FileLog, FileQuorumStateStore, KeyValue>;

fn open_node(id: i32, dir: &Path) -> Result<NodeDriver> {
    let partition = dir.join(format!("node-{id}")).join(METADATA_PARTITION_DIR);
    let log = FileLog::open(&partition, LogConfig::default())?;
    let store = FileQuorumStateStore::new(&partition)?;
    let mut config = QuorumConfig::default();
    // Shorter than Kafka's defaults (1000 and 2000 ms) so the example runs quickly.
    config.set("controller.quorum.election.timeout.ms", "300")?;
    config.set("controller.quorum.fetch.timeout.ms", "600")?;
    config.set("controller.quorum.append.linger.ms", "0")?;
    let options = NodeOptions {
        cluster_id: "in-process".into(),
        local: ReplicaKey::of(id),
        voters: VoterSet::parse("1@localhost:9093,2@localhost:9094,3@localhost:9095")?,
        config,
        seed: u64::from(id as u32) * 7919 + SystemClock.now().0 as u64,
    };
    let node = RaftNode::new(options, log, store, SystemClock.now())?;
    Ok(Driver::new(node, KeyValue::default(), SnapshotPolicy::default(), SystemClock.now())?)
}

/// A node's thread: feed it messages, ticks and proposals; send what it says to send.
fn run_node(id: NodeId, mut driver: NodeDriver, inbox: Receiver<Input>, routes: Routes) -> Result<()> {
    let mut waiting: Vec<(OffsetAndEpoch, Sender<Result<(), String>>)> = Vec::new();
    loop {
        let now = SystemClock.now();
        let timeout = driver.next_wake_up().map_or(100, |at| (at.0 - now.0).clamp(0, 100));
        match inbox.recv_timeout(Duration::from_millis(timeout as u64)) {
            Ok(Input::Message(from, message)) => driver.handle_message(SystemClock.now(), from, message)?,
            Ok(Input::Propose(records, answer)) => match driver.propose(SystemClock.now(), records) {
                Ok(proposal) => waiting.push((proposal, answer)),
                Err(e) => drop(answer.send(Err(e.to_string()))),
            },
            Ok(Input::Status(answer)) => drop(answer.send((driver.node().role(), driver.machine().0.clone()))),
            Err(RecvTimeoutError::Timeout) => driver.tick(SystemClock.now())?,
            // Killed: the inbox's sender was dropped.
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        }
        for event in driver.take_events() {
            match event {
                DriverEvent::Applied(applied) => waiting.retain(|(proposal, answer)| {
                    let done = applied.contains(*proposal);
                    if done {
                        let _ = answer.send(Ok(()));
                    }
                    !done
                }),
                // A new epoch: proposals of older epochs will never commit as they were.
                DriverEvent::LeaderChange { epoch, .. } => waiting.retain(|(proposal, answer)| {
                    let stale = proposal.epoch < epoch;
                    if stale {
                        let _ = answer.send(Err("leadership changed".into()));
                    }
                    !stale
                }),
                _ => {}
            }
        }
        let routes = routes.lock().map_err(|_| anyhow::anyhow!("routes poisoned"))?;
        for (to, message) in driver.take_outbox() {
            if let Some(Some(destination)) = routes.get(&to) {
                let _ = destination.send(Input::Message(id, message));
            }
        }
    }
}

struct Cluster {
    dir: PathBuf,
    routes: Routes,
    threads: BTreeMap<NodeId, JoinHandle<Result<()>>>,
}

impl Cluster {
    fn start(&mut self, id: i32) -> Result<()> {
        let driver = open_node(id, &self.dir)?;
        let (sender, inbox) = mpsc::channel();
        self.routes.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.insert(NodeId(id), Some(sender));
        let routes = self.routes.clone();
        self.threads.insert(NodeId(id), thread::spawn(move || run_node(NodeId(id), driver, inbox, routes)));
        Ok(())
    }

    /// Stops a node's thread abruptly: its inbox goes away with every message in it.
    fn kill(&mut self, id: NodeId) -> Result<()> {
        self.routes.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.insert(id, None);
        let thread = self.threads.remove(&id).context("no such node")?;
        thread.join().map_err(|_| anyhow::anyhow!("node thread panicked"))??;
        Ok(())
    }

    fn status(&self, id: NodeId) -> Option<(RoleKind, BTreeMap<String, String>)> {
        let (answer, reply) = mpsc::channel();
        let sender = self.routes.lock().ok()?.get(&id).cloned().flatten()?;
        sender.send(Input::Status(answer)).ok()?;
        reply.recv_timeout(Duration::from_secs(5)).ok()
    }

    /// Waits until one running node leads.
    fn leader(&self) -> Result<NodeId> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            for id in self.threads.keys() {
                if self.status(*id).is_some_and(|(role, _)| role == RoleKind::Leader) {
                    return Ok(*id);
                }
            }
            thread::sleep(Duration::from_millis(20));
        }
        bail!("no leader within 20 s")
    }

    /// Writes records through the leader and waits until they are committed.
    fn write(&self, records: &[&str]) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let leader = self.leader()?;
            let (answer, reply) = mpsc::channel();
            let sender = self.routes.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.get(&leader).cloned().flatten();
            let records = records.iter().map(|r| r.as_bytes().to_vec()).collect();
            if let Some(sender) = sender
                && sender.send(Input::Propose(records, answer)).is_ok()
                && let Ok(Ok(())) = reply.recv_timeout(Duration::from_secs(5))
            {
                return Ok(());
            }
        }
        bail!("could not commit {records:?}")
    }

    /// Waits until `id` holds exactly `expected`.
    fn converges(&self, id: NodeId, expected: &BTreeMap<String, String>) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.status(id).is_some_and(|(_, map)| &map == expected) {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(20));
        }
        bail!("{id:?} did not reach {expected:?}; it has {:?}", self.status(id).map(|(_, m)| m))
    }
}

fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cluster = Cluster { dir: dir.path().to_path_buf(), routes: Arc::default(), threads: BTreeMap::new() };
    for id in 1..=3 {
        cluster.start(id)?;
    }
    let first = cluster.leader()?;
    println!("{first:?} leads");
    cluster.write(&["colour=blue", "shape=round"])?;
    cluster.write(&["size=large"])?;

    cluster.kill(first)?;
    println!("killed {first:?}");
    let second = cluster.leader()?;
    ensure!(second != first, "the dead leader cannot lead");
    println!("{second:?} leads now");
    cluster.write(&["colour=green"])?;

    let expected: BTreeMap<String, String> = [("colour", "green"), ("shape", "round"), ("size", "large")]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    let (_, on_leader) = cluster.status(second).context("the new leader answers")?;
    ensure!(on_leader == expected, "the new leader has {on_leader:?}");
    let follower = *cluster.threads.keys().find(|id| **id != second).context("a follower")?;
    cluster.converges(follower, &expected)?;
    println!("{second:?} and {follower:?} both hold {expected:?}");

    cluster.start(first.0)?;
    cluster.converges(first, &expected)?;
    println!("{first:?} restarted from its disk and caught up");
    for id in [1, 2, 3] {
        cluster.kill(NodeId(id))?;
    }
    Ok(())
}
