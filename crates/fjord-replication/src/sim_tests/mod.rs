//! A deterministic simulation of one partition replicated over three brokers: real
//! [`Partition`]s on disk, a model controller that elects leaders from the ISR and applies
//! AlterPartition as a compare-and-set on the leader and partition epochs, a network that
//! delays and reorders messages, brokers that crash (kill -9) and restart, and time that
//! passes so the ISR shrinks and grows. After every step the checkers test the invariants of
//! research §6 rows 9-14: an acknowledged `acks=all` write is in every later leader's log at
//! its offset; nothing a consumer could read is ever replaced; replicas agree below their high
//! watermarks; the high watermark stands still below `min.insync.replicas` and never moves
//! back on a leader; every replica's state is valid. The planted bugs in `bugs.rs` show that
//! the checkers find what they are there for.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;

use fjord_log::{BatchBuilder, Batches, OpenOptions};
use fjord_types::{BrokerId, LeaderEpoch, Offset, PartitionRegistration, Timestamp, TopicPartition};

use crate::bugs::{self, Bug};
use crate::error::{AppendError, ReadError};
use crate::partition::{Partition, PartitionConfig, ReplicaAnswer};
use crate::replica_state::Role;

mod checks;

const BROKERS: [BrokerId; 3] = [BrokerId(1), BrokerId(2), BrokerId(3)];
const LAG_MS: i64 = 1_000;
const MIN_ISR: i32 = 2;

/// xorshift64*: the simulation's only source of choice, so a seed replays exactly.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Debug)]
enum Message {
    Fetch { from: BrokerId, to: BrokerId, fetch_offset: Offset, last_epoch: Option<LeaderEpoch>, epoch: LeaderEpoch },
    FetchAnswer { to: BrokerId, fetch_offset: Offset, epoch: LeaderEpoch, answer: Result<Answer, ReadError> },
    Alter { from: BrokerId, leader_epoch: LeaderEpoch, partition_epoch: i32, isr: Vec<BrokerId> },
    AlterRefused { to: BrokerId, leader_epoch: LeaderEpoch },
}

#[derive(Debug)]
struct Answer {
    diverging: Option<(LeaderEpoch, Offset)>,
    records: Vec<u8>,
    high_watermark: Offset,
    log_start_offset: Offset,
}

struct Broker {
    id: BrokerId,
    dir: PathBuf,
    partition: Option<Partition>,
    /// Registrations published to it and not yet applied, in order.
    metadata: VecDeque<PartitionRegistration>,
    fetching: bool,
    incarnation: u32,
}

/// A produce waiting for the high watermark.
struct PendingAck {
    leader: BrokerId,
    incarnation: u32,
    epoch: LeaderEpoch,
    base_offset: Offset,
    next_offset: Offset,
    crc: u32,
}

struct Sim {
    rng: Rng,
    now: Timestamp,
    brokers: Vec<Broker>,
    registration: PartitionRegistration,
    alive: BTreeSet<BrokerId>,
    network: Vec<Message>,
    pending: Vec<PendingAck>,
    /// Offset -> batch CRC of every batch acknowledged or readable below a leader's high
    /// watermark: what must never change.
    committed: BTreeMap<Offset, u32>,
    acknowledged: usize,
    /// The last high watermark of each (broker, incarnation, epoch) while leading.
    leader_hw: BTreeMap<(BrokerId, u32, LeaderEpoch), Offset>,
    produced: u64,
    /// A violation seen in the middle of a step.
    violation: Option<String>,
    _dirs: tempfile::TempDir,
}

fn config() -> PartitionConfig {
    PartitionConfig { min_insync_replicas: MIN_ISR, replica_lag_time_max_ms: LAG_MS, ..PartitionConfig::default() }
}

fn open(broker: &Broker, now: Timestamp) -> Partition {
    Partition::open(
        &broker.dir,
        TopicPartition::new("sim", 0),
        config(),
        OpenOptions::default(),
        broker.id,
        Offset(0),
        now,
    )
    .expect("open the partition")
}

/// Offset -> CRC of every batch in a replica's log.
fn contents(partition: &Partition) -> BTreeMap<Offset, u32> {
    let log = partition.log();
    let bytes = log.read_bytes(log.log_start_offset(), u64::MAX, None).unwrap_or_default();
    Batches::new(&bytes).filter_map(|b| b.ok()).map(|b| (b.base_offset(), b.crc())).collect()
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let dirs = tempfile::tempdir().unwrap();
        let now = Timestamp(1_000_000);
        let registration = PartitionRegistration::new(BROKERS.to_vec());
        let mut brokers: Vec<Broker> = BROKERS
            .iter()
            .map(|&id| Broker {
                id,
                dir: dirs.path().join(format!("broker-{}", id.0)),
                partition: None,
                metadata: VecDeque::new(),
                fetching: false,
                incarnation: 0,
            })
            .collect();
        for broker in &mut brokers {
            broker.partition = Some(open(broker, now));
            broker.metadata.push_back(registration.clone());
        }
        Sim {
            rng: Rng::new(seed),
            now,
            brokers,
            registration,
            alive: BROKERS.iter().copied().collect(),
            network: Vec::new(),
            pending: Vec::new(),
            committed: BTreeMap::new(),
            acknowledged: 0,
            leader_hw: BTreeMap::new(),
            produced: 0,
            violation: None,
            _dirs: dirs,
        }
    }

    fn broker(&mut self, id: BrokerId) -> &mut Broker {
        &mut self.brokers[(id.0 - 1) as usize]
    }

    /// The controller commits a new registration and publishes it to every live broker.
    fn publish(&mut self, registration: PartitionRegistration) {
        self.registration = registration.clone();
        for broker in &mut self.brokers {
            if self.alive.contains(&broker.id) {
                broker.metadata.push_back(registration.clone());
            }
        }
    }

    /// Elects a leader from the live ISR members (Kafka's clean election), or none.
    fn elect(&mut self) {
        let mut next = self.registration.clone();
        let live_isr: Vec<BrokerId> = next.isr.iter().copied().filter(|b| self.alive.contains(b)).collect();
        let leader = live_isr.first().copied().unwrap_or(BrokerId::NONE);
        if leader == next.leader {
            return;
        }
        next.leader = leader;
        if !live_isr.is_empty() {
            // The fenced members leave the ISR; the last one standing stays in it.
            next.isr = live_isr;
        }
        next.leader_epoch = LeaderEpoch(next.leader_epoch.0 + 1);
        next.partition_epoch += 1;
        self.publish(next);
    }

    fn step(&mut self) -> Result<(), String> {
        match self.rng.below(100) {
            0..=24 => self.produce(),
            25..=49 => self.send_fetches(),
            50..=74 => self.deliver(),
            75..=84 => self.apply_metadata(),
            85..=93 => self.tick(),
            94..=96 => self.crash(),
            _ => self.restart(),
        }
        self.check()
    }

    fn produce(&mut self) {
        let leaders: Vec<BrokerId> = self
            .brokers
            .iter()
            .filter(|b| b.partition.as_ref().is_some_and(|p| p.role() == Role::Leader))
            .map(|b| b.id)
            .collect();
        if leaders.is_empty() {
            return;
        }
        let id = leaders[self.rng.below(leaders.len() as u64) as usize];
        self.produced += 1;
        let value = format!("record-{}", self.produced);
        let mut builder = BatchBuilder::new();
        builder.push(self.now, None, Some(value.as_bytes()), &[]);
        let records = builder.build().unwrap();
        let now = self.now;
        let broker = self.broker(id);
        let incarnation = broker.incarnation;
        let partition = broker.partition.as_mut().unwrap();
        let epoch = partition.leader_epoch();
        match partition.append_as_leader(&records, -1, now) {
            Ok(result) => {
                let crc = Batches::new(&records).next().unwrap().unwrap().crc();
                self.pending.push(PendingAck {
                    leader: id,
                    incarnation,
                    epoch,
                    base_offset: result.base_offset,
                    next_offset: result.next_offset,
                    crc,
                });
            }
            Err(AppendError::NotEnoughReplicas { .. }) => {}
            Err(e) => panic!("produce failed: {e}"),
        }
    }

    fn send_fetches(&mut self) {
        for broker in &mut self.brokers {
            let Some(partition) = broker.partition.as_ref() else { continue };
            let Role::Follower { leader } = partition.role() else { continue };
            if leader.is_none() || broker.fetching {
                continue;
            }
            broker.fetching = true;
            self.network.push(Message::Fetch {
                from: broker.id,
                to: leader,
                fetch_offset: partition.log_end_offset(),
                last_epoch: partition.last_fetched_epoch(),
                epoch: partition.leader_epoch(),
            });
        }
    }

    fn deliver(&mut self) {
        if self.network.is_empty() {
            return;
        }
        let index = self.rng.below(self.network.len() as u64) as usize;
        let message = self.network.swap_remove(index);
        match message {
            Message::Fetch { from, to, fetch_offset, last_epoch, epoch } => {
                self.serve_fetch(from, to, fetch_offset, last_epoch, epoch)
            }
            Message::FetchAnswer { to, fetch_offset, epoch, answer } => {
                self.take_answer(to, fetch_offset, epoch, answer)
            }
            Message::Alter { from, leader_epoch, partition_epoch, isr } => {
                let current = &self.registration;
                let accepted = current.leader == from
                    && current.leader_epoch == leader_epoch
                    && current.partition_epoch == partition_epoch
                    && isr.iter().all(|b| self.alive.contains(b) && current.replicas.contains(b))
                    && isr.contains(&from);
                if accepted {
                    let mut next = current.clone();
                    next.isr = isr;
                    next.partition_epoch += 1;
                    self.publish(next);
                } else {
                    self.network.push(Message::AlterRefused { to: from, leader_epoch });
                }
            }
            Message::AlterRefused { to, leader_epoch } => {
                if let Some(partition) = self.broker(to).partition.as_mut()
                    && partition.leader_epoch() == leader_epoch
                    && partition.state().pending_isr().is_some()
                {
                    partition.abort_isr_change();
                }
                self.complete_acks();
            }
        }
    }

    fn serve_fetch(
        &mut self,
        from: BrokerId,
        to: BrokerId,
        fetch_offset: Offset,
        last_epoch: Option<LeaderEpoch>,
        epoch: LeaderEpoch,
    ) {
        let now = self.now;
        let eligible = self.alive.contains(&from);
        // Small fetches, so a follower catching up spends many round trips behind.
        let max_bytes = 1 + self.rng.below(300);
        let leader = self.broker(to);
        let Some(partition) = leader.partition.as_mut() else {
            // The connection to a dead broker fails: the follower may fetch again.
            self.broker(from).fetching = false;
            return;
        };
        let answer = partition
            .read_for_replica(from, fetch_offset, last_epoch, Some(epoch), max_bytes, eligible, now)
            .map(|read| {
                let (diverging, records) = match read.answer {
                    ReplicaAnswer::Diverging { epoch, end_offset } => (Some((epoch, end_offset)), Vec::new()),
                    ReplicaAnswer::Records(Some(range)) => {
                        let mut bytes = vec![0; range.len as usize];
                        range.read_into(&mut bytes).unwrap();
                        (None, bytes)
                    }
                    ReplicaAnswer::Records(None) => (None, Vec::new()),
                };
                Answer {
                    diverging,
                    records,
                    high_watermark: read.high_watermark,
                    log_start_offset: read.log_start_offset,
                }
            });
        if let Some(isr) = partition.state().isr_to_expand(from, eligible) {
            partition.begin_isr_change(isr.clone());
            let (leader_epoch, partition_epoch) = (partition.leader_epoch(), partition.state().partition_epoch());
            self.network.push(Message::Alter { from: to, leader_epoch, partition_epoch, isr });
        }
        self.network.push(Message::FetchAnswer { to: from, fetch_offset, epoch, answer });
        self.complete_acks();
    }

    fn take_answer(
        &mut self,
        to: BrokerId,
        fetch_offset: Offset,
        epoch: LeaderEpoch,
        answer: Result<Answer, ReadError>,
    ) {
        let now = self.now;
        let broker = self.broker(to);
        broker.fetching = false;
        let Some(partition) = broker.partition.as_mut() else { return };
        // An answer to a fetch from another epoch or another position is stale (KAFKA-7040).
        if partition.leader_epoch() != epoch
            || partition.log_end_offset() != fetch_offset
            || partition.role() == Role::Leader
        {
            return;
        }
        match answer {
            Ok(Answer { diverging: Some((epoch, end_offset)), .. }) => {
                let cut = partition.divergence_truncation_offset(epoch, end_offset);
                let high_watermark = partition.high_watermark();
                partition.truncate_to(cut, now).unwrap();
                // With clean elections only, every leader holds what any replica's high
                // watermark covers, so a follower never cuts below its own.
                if partition.log_end_offset() < high_watermark {
                    let end = partition.log_end_offset();
                    self.violation.get_or_insert(format!(
                        "follower {to} truncated to {end} below its high watermark {high_watermark}"
                    ));
                }
            }
            Ok(Answer { diverging: None, records, high_watermark, log_start_offset }) => {
                if !records.is_empty() {
                    partition.append_as_follower(&records, now).unwrap();
                }
                partition.apply_leader_offsets(high_watermark, log_start_offset);
            }
            Err(ReadError::OffsetOutOfRange { log_start_offset, log_end_offset, .. }) => {
                if fetch_offset > log_end_offset {
                    partition.truncate_to(log_end_offset, now).unwrap();
                } else if fetch_offset < log_start_offset {
                    partition.truncate_fully_and_start_at(log_start_offset, now).unwrap();
                }
            }
            Err(_) => {}
        }
    }

    fn apply_metadata(&mut self) {
        let now = self.now;
        let candidates: Vec<usize> =
            (0..self.brokers.len()).filter(|&i| !self.brokers[i].metadata.is_empty()).collect();
        if candidates.is_empty() {
            return;
        }
        let index = candidates[self.rng.below(candidates.len() as u64) as usize];
        let broker = &mut self.brokers[index];
        let registration = broker.metadata.pop_front().unwrap();
        let Some(partition) = broker.partition.as_mut() else { return };
        let applied = if registration.leader == broker.id {
            partition.make_leader(&registration, now).map(|_| ())
        } else {
            partition.make_follower(&registration).map(|_| ())
        };
        if applied.is_ok() && registration.leader != broker.id {
            broker.fetching = false;
        }
        self.complete_acks();
    }

    fn tick(&mut self) {
        self.now = Timestamp(self.now.0 + self.rng.below(LAG_MS as u64) as i64);
        let now = self.now;
        let mut alters = Vec::new();
        for broker in &mut self.brokers {
            let Some(partition) = broker.partition.as_mut() else { continue };
            if let Some(isr) = partition.state().isr_to_shrink(now) {
                partition.begin_isr_change(isr.clone());
                alters.push(Message::Alter {
                    from: broker.id,
                    leader_epoch: partition.leader_epoch(),
                    partition_epoch: partition.state().partition_epoch(),
                    isr,
                });
            }
        }
        self.network.extend(alters);
        self.complete_acks();
    }

    fn crash(&mut self) {
        let live: Vec<BrokerId> = self.alive.iter().copied().collect();
        if live.len() < 2 {
            return;
        }
        let id = live[self.rng.below(live.len() as u64) as usize];
        let broker = self.broker(id);
        // kill -9: no close, no checkpoint; what the files hold survives (the page cache does).
        drop(broker.partition.take());
        broker.metadata.clear();
        broker.fetching = false;
        self.alive.remove(&id);
        self.network.retain(|m| !matches!(m, Message::FetchAnswer { to, .. } if *to == id));
        // Fencing: the controller drops it from the ISR and moves its leadership.
        let mut next = self.registration.clone();
        if next.isr.len() > 1 && next.isr.contains(&id) && next.leader != id {
            next.isr.retain(|b| *b != id);
            next.partition_epoch += 1;
            self.publish(next);
        }
        if self.registration.leader == id {
            self.elect();
        }
    }

    fn restart(&mut self) {
        let dead: Vec<BrokerId> = BROKERS.iter().copied().filter(|b| !self.alive.contains(b)).collect();
        if dead.is_empty() {
            return;
        }
        let id = dead[self.rng.below(dead.len() as u64) as usize];
        let now = self.now;
        let registration = self.registration.clone();
        let broker = self.broker(id);
        broker.partition = Some(open(broker, now));
        broker.incarnation += 1;
        broker.metadata.push_back(registration);
        self.alive.insert(id);
        if self.registration.leader.is_none() {
            self.elect();
        }
    }

    /// Answers the produces whose batches the high watermark passed, as Kafka's
    /// DelayedProduce does; those whose leader lost its epoch fail.
    fn complete_acks(&mut self) {
        let mut pending = std::mem::take(&mut self.pending);
        pending.retain(|ack| {
            let broker = &self.brokers[(ack.leader.0 - 1) as usize];
            let Some(partition) = broker.partition.as_ref().filter(|_| broker.incarnation == ack.incarnation) else {
                return false;
            };
            if partition.role() != Role::Leader || partition.leader_epoch() != ack.epoch {
                return false;
            }
            if partition.high_watermark() < ack.next_offset {
                return true;
            }
            if partition.state().maximal_isr().len() >= MIN_ISR as usize {
                self.acknowledged += 1;
                self.committed.insert(ack.base_offset, ack.crc);
            }
            false
        });
        self.pending = pending;
    }
}

/// Runs one seed; the error names the step and the violated invariant.
fn run(seed: u64, steps: usize) -> Result<usize, String> {
    let mut sim = Sim::new(seed);
    for step in 0..steps {
        sim.step().map_err(|e| format!("seed {seed}, step {step}: {e}"))?;
    }
    sim.heal().map_err(|e| format!("seed {seed}, after healing: {e}"))?;
    Ok(sim.acknowledged)
}

fn first_failure(bug: Option<Bug>, seeds: std::ops::Range<u64>, steps: usize) -> Option<String> {
    bugs::plant(bug);
    let found = seeds.into_iter().find_map(|seed| run(seed, steps).err());
    bugs::plant(None);
    found
}

#[test]
fn the_correct_core_keeps_every_acknowledged_write() {
    let mut acknowledged = 0;
    for seed in 0..120 {
        acknowledged += run(seed, 300).unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(acknowledged > 500, "the workload acknowledged too little to mean anything ({acknowledged})");
}

#[test]
fn a_follower_joining_the_isr_before_the_leaders_epoch_start_is_caught() {
    let failure = first_failure(Some(Bug::ExpandBeforeEpochStart), 0..400, 300);
    assert!(
        failure.as_ref().is_some_and(|f| f.contains("lacks committed batch")),
        "the planted bug went unseen: {failure:?}"
    );
}

#[test]
fn a_high_watermark_moving_below_min_insync_replicas_is_caught() {
    let failure = first_failure(Some(Bug::HwBelowMinIsr), 0..400, 300);
    assert!(failure.is_some_and(|f| f.contains("min.insync.replicas")), "no seed found the planted bug");
}

#[test]
fn truncating_at_the_start_of_the_diverging_epoch_is_caught() {
    let failure = first_failure(Some(Bug::TruncateAtEpochStart), 0..400, 300);
    assert!(
        failure.as_ref().is_some_and(|f| f.contains("below its high watermark")),
        "the planted bug went unseen: {failure:?}"
    );
}

#[test]
fn a_leader_counting_a_diverging_fetch_is_caught() {
    let failure = first_failure(Some(Bug::CountDivergingFetch), 0..400, 300);
    assert!(
        failure.as_ref().is_some_and(|f| f.contains("counts follower")),
        "the planted bug went unseen: {failure:?}"
    );
}
