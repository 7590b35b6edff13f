//! Commit throughput and latency of a three-voter quorum in one process.
//!
//! Each voter runs on its own thread with its own log, as the `quorum_in_process` example does;
//! messages go over std channels. The client (the benchmark thread) proposes batches of
//! 100-byte records to the leader, keeping a fixed number of batches in flight, and a batch's
//! latency runs from the client sending it to the client hearing that the leader applied it:
//! the leader's append and fsync, a follower's fetch, append and fsync, its next fetch, and the
//! commit upcall.
//!
//! Logs: `MemoryLog`, and `FileLog` on disk (fjord-log, one flush per appended batch, which
//! syncs the segment and its two index files). Each benchmark prints its latency percentiles to
//! stderr. `FJORD_BENCH_QUORUM_RECORDS` sets the records per measured iteration (100,000).

#![allow(clippy::print_stderr)]

use std::collections::VecDeque;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fjord_log::LogConfig;
use fjord_quorum::{
    Batch, Driver, DriverEvent, FileLog, MemoryLog, MemoryQuorumStateStore, Message, NodeId, NodeOptions,
    OffsetAndEpoch, QuorumConfig, RaftLog, RaftNode, ReplicaKey, RoleKind, SnapshotPolicy, StateMachine, VoterSet,
};
use fjord_types::{Clock, SystemClock};

const RECORD_BYTES: usize = 100;

/// Counts what it applies.
#[derive(Debug, Default)]
struct Count(u64);

impl StateMachine for Count {
    fn apply(&mut self, batch: &Batch) -> Result<(), String> {
        self.0 += batch.records.len() as u64;
        Ok(())
    }
    fn snapshot(&self) -> Vec<u8> {
        self.0.to_be_bytes().to_vec()
    }
    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        self.0 = u64::from_be_bytes(snapshot.try_into().map_err(|_| "8 bytes")?);
        Ok(())
    }
}

enum Input {
    Message(NodeId, Message),
    /// Records to propose, and where to say when they are applied.
    Propose(Vec<Vec<u8>>, Instant),
    /// Reply whether this node leads.
    IsLeader(Sender<bool>),
    /// Stop the thread (every node holds senders to every inbox, so none disconnects).
    Stop,
}

type Committed = Sender<Instant>;

fn run_node<L: RaftLog>(
    id: NodeId,
    mut driver: Driver<L, MemoryQuorumStateStore, Count>,
    inbox: Receiver<Input>,
    peers: Vec<(NodeId, Sender<Input>)>,
    committed: Committed,
) {
    let mut waiting: VecDeque<(OffsetAndEpoch, Instant)> = VecDeque::new();
    loop {
        let now = SystemClock.now();
        let timeout = driver.next_wake_up().map_or(50, |at| (at.0 - now.0).clamp(0, 50)) as u64;
        let first = match inbox.recv_timeout(Duration::from_millis(timeout)) {
            Ok(input) => Some(input),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // Take everything that is already there before looking at the clock again.
        for input in first.into_iter().chain(std::iter::from_fn(|| inbox.try_recv().ok())) {
            let now = SystemClock.now();
            match input {
                Input::Message(from, message) => driver.handle_message(now, from, message).expect("no errors"),
                Input::Propose(records, sent) => {
                    let proposal = driver.propose(now, records).expect("proposed to the leader");
                    waiting.push_back((proposal, sent));
                }
                Input::IsLeader(answer) => {
                    let leads = driver.node().role() == RoleKind::Leader && driver.node().high_watermark().is_some();
                    let _ = answer.send(leads);
                }
                Input::Stop => return,
            }
        }
        driver.tick(SystemClock.now()).expect("no errors");
        for event in driver.take_events() {
            if let DriverEvent::Applied(applied) = event {
                while waiting.front().is_some_and(|(p, _)| applied.contains(*p) || p.offset < applied.base_offset) {
                    let (_, sent) = waiting.pop_front().expect("checked");
                    let _ = committed.send(sent);
                }
            }
        }
        for (to, message) in driver.take_outbox() {
            if let Some((_, peer)) = peers.iter().find(|(p, _)| *p == to) {
                let _ = peer.send(Input::Message(id, message));
            }
        }
    }
}

struct Cluster {
    inboxes: Vec<Sender<Input>>,
    committed: Receiver<Instant>,
    threads: Vec<JoinHandle<()>>,
    leader: usize,
    _dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    fn start<L: RaftLog + Send + 'static>(open: impl Fn(&Path) -> L) -> Cluster {
        let (committed_tx, committed) = mpsc::channel();
        let channels: Vec<(Sender<Input>, Receiver<Input>)> = (0..3).map(|_| mpsc::channel()).collect();
        let senders: Vec<Sender<Input>> = channels.iter().map(|(s, _)| s.clone()).collect();
        let mut threads = Vec::new();
        let mut dirs = Vec::new();
        for (index, (_, inbox)) in channels.into_iter().enumerate() {
            let id = NodeId(index as i32 + 1);
            let dir = tempfile::tempdir().expect("a temporary directory");
            let config = QuorumConfig { election_timeout_ms: 100, append_linger_ms: 0, ..QuorumConfig::default() };
            let options = NodeOptions {
                cluster_id: "bench".into(),
                local: ReplicaKey::of(id.0),
                voters: VoterSet::from_ids([1, 2, 3]).expect("voters"),
                config,
                seed: index as u64 + 1,
            };
            let now = SystemClock.now();
            let node = RaftNode::new(options, open(dir.path()), MemoryQuorumStateStore::new(), now).expect("a node");
            let driver = Driver::new(node, Count::default(), SnapshotPolicy::default(), now).expect("a driver");
            let peers: Vec<(NodeId, Sender<Input>)> =
                senders.iter().enumerate().map(|(i, s)| (NodeId(i as i32 + 1), s.clone())).collect();
            let committed = committed_tx.clone();
            threads.push(thread::spawn(move || run_node(id, driver, inbox, peers, committed)));
            dirs.push(dir);
        }
        let mut cluster = Cluster { inboxes: senders, committed, threads, leader: 0, _dirs: dirs };
        cluster.leader = cluster.find_leader();
        cluster
    }

    fn find_leader(&self) -> usize {
        loop {
            for (index, inbox) in self.inboxes.iter().enumerate() {
                let (answer, reply) = mpsc::channel();
                inbox.send(Input::IsLeader(answer)).expect("the node runs");
                if reply.recv().unwrap_or(false) {
                    return index;
                }
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Commits `total` records in batches of `per_batch`, `in_flight` batches at a time;
    /// returns each batch's latency.
    fn commit(&self, total: usize, per_batch: usize, in_flight: usize) -> Vec<Duration> {
        let record = vec![b'x'; RECORD_BYTES];
        let mut latencies = Vec::with_capacity(total / per_batch + 1);
        let mut outstanding = 0;
        let mut proposed = 0;
        while proposed < total || outstanding > 0 {
            while proposed < total && outstanding < in_flight {
                let batch = vec![record.clone(); per_batch];
                self.inboxes[self.leader].send(Input::Propose(batch, Instant::now())).expect("the leader runs");
                proposed += per_batch;
                outstanding += 1;
            }
            let sent = self.committed.recv_timeout(Duration::from_secs(10)).expect("a commit within 10 s");
            latencies.push(sent.elapsed());
            outstanding -= 1;
        }
        latencies
    }

    fn stop(self) {
        for inbox in &self.inboxes {
            let _ = inbox.send(Input::Stop);
        }
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn bench_log<L: RaftLog + Send + 'static>(c: &mut Criterion, name: &str, open: impl Fn(&Path) -> L + Copy) {
    let total: usize = std::env::var("FJORD_BENCH_QUORUM_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let mut group = c.benchmark_group(format!("quorum-commit-{name}"));
    group.sample_size(10);
    group.throughput(Throughput::Elements(total as u64));
    for (per_batch, in_flight) in [(100, 1), (1_000, 1), (1_000, 4)] {
        let cluster = Cluster::start(open);
        let mut latencies = Vec::new();
        let id = format!("{per_batch}-records-per-batch-{in_flight}-in-flight");
        group.bench_with_input(BenchmarkId::new("3-voters-100B-records", &id), &per_batch, |b, &per_batch| {
            b.iter_custom(|iterations| {
                let started = Instant::now();
                for _ in 0..iterations {
                    latencies.extend(cluster.commit(total, per_batch, in_flight));
                }
                started.elapsed()
            });
        });
        cluster.stop();
        latencies.sort_unstable();
        eprintln!(
            "quorum-commit-{name}/{id}: commit latency p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms over {} batches",
            percentile(&latencies, 0.5).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3,
            latencies[latencies.len() - 1].as_secs_f64() * 1e3,
            latencies.len()
        );
    }
    group.finish();
}

fn commit(c: &mut Criterion) {
    bench_log(c, "memory", |_| MemoryLog::new());
    bench_log(c, "fjord-log", |dir| {
        let config = LogConfig { segment_bytes: 64 * 1024 * 1024, ..LogConfig::default() };
        FileLog::open(&dir.join("__cluster_metadata-0"), config).expect("a log opens")
    });
}

criterion_group!(benches, commit);
criterion_main!(benches);
