//! A partition's replica state apart from its log (the bookkeeping of Kafka's `Partition` and
//! `Replica`): which broker leads and in what epoch, the replicas and the ISR, the high
//! watermark, and, on the leader, what each follower is known to hold.
//!
//! A pure core: no files, no clock (times are passed in), no locks. [`crate::Partition`] drives
//! it from its log's appends and truncations, so the high watermark moves only here, through
//! Kafka's rule: on a leader, the lowest log end offset over the ISR; on a follower, what the
//! leader says, capped by its own log end. It never moves back.

use std::collections::BTreeMap;

use fjord_types::{BrokerId, LeaderEpoch, Offset, PartitionRegistration, Timestamp};

/// Whether this replica leads the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It leads: it takes produce requests and answers consumers.
    Leader,
    /// It follows `leader` (`BrokerId::NONE` while the partition has no leader).
    Follower {
        /// The leader to fetch from.
        leader: BrokerId,
    },
}

/// What the leader knows of one follower (Kafka's `Replica` state).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteReplica {
    /// The follower's log end offset, from its last fetch; `Offset::NONE` until it fetches.
    pub log_end_offset: Offset,
    /// When it last fetched up to the leader's log end (`replica.lag.time.max.ms` counts from
    /// here).
    pub last_caught_up: Timestamp,
    /// When it last fetched.
    pub last_fetch: Timestamp,
    /// The leader's log end offset when it last fetched: a fetch that reaches it shows the
    /// follower was caught up at that earlier fetch.
    pub last_fetch_leader_log_end: Offset,
    /// Outside the ISR, whether it is about to join: it reached the log end in a fetch while
    /// its broker was eligible (not fenced, not shutting down). Only such a replica holds the
    /// high watermark back (KAFKA-15021); one that left the ISR, or fetched while ineligible,
    /// does not until it catches up again, so a dead or departing broker cannot stall it.
    pub joinable: bool,
}

/// Kafka's default `replica.lag.time.max.ms`.
pub const DEFAULT_REPLICA_LAG_TIME_MAX_MS: i64 = 30_000;

/// A leadership change that must not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// A registration older than the one applied.
    #[error("leader epoch {requested} is older than the current {current}")]
    StaleLeaderEpoch {
        /// The registration's epoch.
        requested: LeaderEpoch,
        /// The current one.
        current: LeaderEpoch,
    },
    /// A registration that does not make this broker what it was asked to become.
    #[error("broker {local} is not {expected} in this registration")]
    WrongRole {
        /// This broker.
        local: BrokerId,
        /// "the leader" or "a follower".
        expected: &'static str,
    },
}

/// One partition's replica state on one broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaState {
    local: BrokerId,
    role: Role,
    leader_epoch: LeaderEpoch,
    partition_epoch: i32,
    replicas: Vec<BrokerId>,
    isr: Vec<BrokerId>,
    high_watermark: Offset,
    log_start_offset: Offset,
    log_end_offset: Offset,
    /// The log end offset when this broker became leader in the current epoch.
    leader_epoch_start_offset: Offset,
    remotes: BTreeMap<BrokerId, RemoteReplica>,
    /// An ISR proposed to the controller (AlterPartition) and not yet committed. The high
    /// watermark counts the maximal ISR: the committed one plus any member being added, so
    /// a shrink takes effect only once it is committed.
    pending_isr: Option<Vec<BrokerId>>,
    /// `min.insync.replicas`: below it (or the replica count, if smaller) in the committed
    /// ISR the high watermark does not move (KAFKA-15583).
    min_insync_replicas: usize,
    /// `replica.lag.time.max.ms`.
    lag_time_max_ms: i64,
    /// The latest time passed in.
    now: Timestamp,
}

impl ReplicaState {
    /// The state of a replica just opened on `local`: a follower of nobody until the metadata
    /// says otherwise, its log holding `[log_start_offset, log_end_offset)`, and the high
    /// watermark it last checkpointed (kept within the log).
    pub fn new(
        local: BrokerId,
        log_start_offset: Offset,
        log_end_offset: Offset,
        high_watermark: Offset,
    ) -> ReplicaState {
        ReplicaState {
            local,
            role: Role::Follower { leader: BrokerId::NONE },
            leader_epoch: LeaderEpoch::NONE,
            partition_epoch: -1,
            replicas: Vec::new(),
            isr: Vec::new(),
            high_watermark: high_watermark.clamp(log_start_offset, log_end_offset),
            log_start_offset,
            log_end_offset,
            leader_epoch_start_offset: Offset::NONE,
            remotes: BTreeMap::new(),
            pending_isr: None,
            min_insync_replicas: 1,
            lag_time_max_ms: DEFAULT_REPLICA_LAG_TIME_MAX_MS,
            now: Timestamp(0),
        }
    }

    /// Sets `min.insync.replicas` (the topic's) and `replica.lag.time.max.ms` (the broker's).
    pub fn configure(&mut self, min_insync_replicas: i32, replica_lag_time_max_ms: i64) {
        self.min_insync_replicas = min_insync_replicas.max(1) as usize;
        self.lag_time_max_ms = replica_lag_time_max_ms.max(0);
        self.maybe_increment_high_watermark();
    }

    /// This broker.
    pub fn local(&self) -> BrokerId {
        self.local
    }

    /// Leader or follower.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether this broker leads.
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    /// The leader epoch of the registration applied last.
    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.leader_epoch
    }

    /// The partition epoch of the registration applied last.
    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    /// The replicas.
    pub fn replicas(&self) -> &[BrokerId] {
        &self.replicas
    }

    /// The in-sync replicas.
    pub fn isr(&self) -> &[BrokerId] {
        &self.isr
    }

    /// The high watermark: consumers read below it.
    pub fn high_watermark(&self) -> Offset {
        self.high_watermark
    }

    /// The local log's end offset.
    pub fn log_end_offset(&self) -> Offset {
        self.log_end_offset
    }

    /// The local log's start offset.
    pub fn log_start_offset(&self) -> Offset {
        self.log_start_offset
    }

    /// Where this broker's leadership of the current epoch began.
    pub fn leader_epoch_start_offset(&self) -> Offset {
        self.leader_epoch_start_offset
    }

    /// What the leader knows of a follower.
    pub fn remote(&self, replica: BrokerId) -> Option<&RemoteReplica> {
        self.remotes.get(&replica)
    }

    /// The ISR change proposed to the controller and not yet committed, if any.
    pub fn pending_isr(&self) -> Option<&[BrokerId]> {
        self.pending_isr.as_deref()
    }

    /// The maximal ISR: the committed one plus members a pending change adds (Kafka's
    /// `maximalIsr`). `acks=all` completes against it.
    pub fn maximal_isr(&self) -> Vec<BrokerId> {
        let mut isr = self.isr.clone();
        for member in self.pending_isr.iter().flatten() {
            if !isr.contains(member) {
                isr.push(*member);
            }
        }
        isr
    }

    /// The ISR size below which the high watermark stands still: `min.insync.replicas`, or
    /// the replica count if that is smaller (Kafka's effective minimum ISR).
    pub fn effective_min_isr(&self) -> usize {
        self.min_insync_replicas.min(self.replicas.len().max(1))
    }

    /// Whether a follower is caught up (Kafka's `isCaughtUp`): it holds the leader's whole log,
    /// or it did within `replica.lag.time.max.ms`.
    pub fn is_caught_up(&self, replica: BrokerId, now: Timestamp) -> bool {
        match self.remotes.get(&replica) {
            Some(remote) => {
                remote.log_end_offset == self.log_end_offset || now.0 - remote.last_caught_up.0 <= self.lag_time_max_ms
            }
            None => replica == self.local,
        }
    }

    /// The ISR the leader should propose once its lagging members are dropped (Kafka's
    /// `maybeShrinkIsr`): every member but the leader that is not caught up goes. `None` when
    /// nothing changes, when this replica does not lead, or while a change is in flight.
    pub fn isr_to_shrink(&self, now: Timestamp) -> Option<Vec<BrokerId>> {
        if !self.is_leader() || self.pending_isr.is_some() {
            return None;
        }
        let kept: Vec<BrokerId> =
            self.isr.iter().copied().filter(|&member| member == self.local || self.is_caught_up(member, now)).collect();
        (kept.len() < self.isr.len()).then_some(kept)
    }

    /// The ISR the leader should propose to add `replica` (Kafka's `maybeExpandIsr`): a
    /// replica outside the ISR whose log reaches both the high watermark and the start of the
    /// leader's epoch (KAFKA-7128: joining earlier could lose committed records). `eligible`
    /// is the caller's word that the broker is neither fenced nor shutting down (KIP-841).
    /// `None` when it does not qualify or a change is in flight.
    pub fn isr_to_expand(&self, replica: BrokerId, eligible: bool) -> Option<Vec<BrokerId>> {
        if !self.is_leader() || self.pending_isr.is_some() || !eligible || self.isr.contains(&replica) {
            return None;
        }
        let remote = self.remotes.get(&replica)?;
        #[cfg(test)]
        let skip_epoch_start = crate::bugs::active(crate::bugs::Bug::ExpandBeforeEpochStart);
        #[cfg(not(test))]
        let skip_epoch_start = false;
        let reaches_epoch =
            !self.leader_epoch_start_offset.is_none() && remote.log_end_offset >= self.leader_epoch_start_offset;
        let joins = !remote.log_end_offset.is_none()
            && remote.log_end_offset >= self.high_watermark
            && (reaches_epoch || skip_epoch_start);
        joins.then(|| {
            let mut isr = self.isr.clone();
            isr.push(replica);
            isr
        })
    }

    /// Records that `isr` was proposed to the controller. Until a registration arrives (or
    /// [`ReplicaState::abort_isr_change`]), no other change is proposed and the high
    /// watermark counts the maximal ISR. Returns whether the high watermark moved.
    pub fn begin_isr_change(&mut self, isr: Vec<BrokerId>) -> bool {
        debug_assert!(self.pending_isr.is_none(), "one ISR change at a time");
        self.pending_isr = Some(isr);
        self.maybe_increment_high_watermark()
    }

    /// The controller refused the proposed change (or it could not be sent): forget it.
    /// Returns whether the high watermark moved (a member that was to join no longer holds
    /// it back).
    pub fn abort_isr_change(&mut self) -> bool {
        self.pending_isr = None;
        self.maybe_increment_high_watermark()
    }

    fn check_epoch(&self, registration: &PartitionRegistration) -> Result<(), StateError> {
        if !self.leader_epoch.is_none() && registration.leader_epoch < self.leader_epoch {
            return Err(StateError::StaleLeaderEpoch {
                requested: registration.leader_epoch,
                current: self.leader_epoch,
            });
        }
        Ok(())
    }

    /// Applies a registration that makes this broker the leader (Kafka's `makeLeader`).
    /// Returns whether it starts a new leader epoch: then every follower's state is forgotten
    /// until it fetches again, and the epoch starts at the current log end. In the same epoch
    /// (an ISR or replica change) only the membership changes.
    pub fn become_leader(&mut self, registration: &PartitionRegistration, now: Timestamp) -> Result<bool, StateError> {
        if registration.leader != self.local || !registration.isr.contains(&self.local) {
            return Err(StateError::WrongRole { local: self.local, expected: "the leader" });
        }
        self.check_epoch(registration)?;
        self.now = self.now.max(now);
        let new_epoch = self.role != Role::Leader || registration.leader_epoch != self.leader_epoch;
        if new_epoch {
            self.remotes.clear();
            self.leader_epoch_start_offset = self.log_end_offset;
        }
        self.role = Role::Leader;
        for (replica, remote) in self.remotes.iter_mut() {
            if self.isr.contains(replica) && !registration.isr.contains(replica) {
                // Taken out of the ISR (lagging, fenced, shutting down): not about to rejoin.
                remote.joinable = false;
            }
        }
        self.adopt(registration);
        for &replica in &self.replicas {
            if replica != self.local {
                // A follower in the ISR counts as caught up now: the lag clock starts at the
                // leadership, as Kafka's does.
                let caught_up = if self.isr.contains(&replica) { now } else { Timestamp(0) };
                self.remotes.entry(replica).or_insert(RemoteReplica {
                    log_end_offset: Offset::NONE,
                    last_caught_up: caught_up,
                    last_fetch: Timestamp(0),
                    last_fetch_leader_log_end: Offset::NONE,
                    joinable: false,
                });
            }
        }
        let replicas = &self.replicas;
        self.remotes.retain(|replica, _| replicas.contains(replica));
        self.maybe_increment_high_watermark();
        Ok(new_epoch)
    }

    /// Applies a registration in which another broker (or none) leads (Kafka's `makeFollower`).
    /// Returns whether the leader or its epoch changed, i.e. whether fetching must start over.
    pub fn become_follower(&mut self, registration: &PartitionRegistration) -> Result<bool, StateError> {
        if registration.leader == self.local {
            return Err(StateError::WrongRole { local: self.local, expected: "a follower" });
        }
        self.check_epoch(registration)?;
        let changed = self.role != (Role::Follower { leader: registration.leader })
            || registration.leader_epoch != self.leader_epoch;
        self.role = Role::Follower { leader: registration.leader };
        self.remotes.clear();
        self.leader_epoch_start_offset = Offset::NONE;
        self.adopt(registration);
        Ok(changed)
    }

    fn adopt(&mut self, registration: &PartitionRegistration) {
        // A registration answers (or overtakes) any change in flight.
        self.pending_isr = None;
        self.leader_epoch = registration.leader_epoch;
        self.partition_epoch = registration.partition_epoch;
        self.replicas = registration.replicas.clone();
        self.isr = registration.isr.clone();
    }

    /// The local log grew to `log_end_offset` (an append as leader or as follower). Returns
    /// whether the high watermark moved.
    pub fn on_local_append(&mut self, log_end_offset: Offset) -> bool {
        debug_assert!(log_end_offset >= self.log_end_offset, "a log only grows by appending");
        self.log_end_offset = log_end_offset.max(self.log_end_offset);
        self.maybe_increment_high_watermark()
    }

    /// A follower fetched at `fetch_offset`, which is its log end offset (Kafka's
    /// `updateFollowerFetchState`). Returns whether the high watermark moved. Fetches from
    /// brokers that hold no replica, or while not leading, change nothing.
    pub fn on_follower_fetch(&mut self, replica: BrokerId, fetch_offset: Offset, now: Timestamp) -> bool {
        self.on_follower_fetch_from(replica, fetch_offset, now, true)
    }

    /// [`ReplicaState::on_follower_fetch`] from a broker that is `eligible` for the ISR (active
    /// under the broker epoch it fetched with) or not.
    pub fn on_follower_fetch_from(
        &mut self,
        replica: BrokerId,
        fetch_offset: Offset,
        now: Timestamp,
        eligible: bool,
    ) -> bool {
        if !self.is_leader() {
            return false;
        }
        self.now = self.now.max(now);
        let log_end = self.log_end_offset;
        let Some(remote) = self.remotes.get_mut(&replica) else { return false };
        remote.log_end_offset = fetch_offset.min(log_end);
        if fetch_offset >= log_end {
            remote.last_caught_up = remote.last_caught_up.max(now);
        } else if !remote.last_fetch_leader_log_end.is_none() && fetch_offset >= remote.last_fetch_leader_log_end {
            // It now holds what the leader held at its previous fetch: it was caught up then.
            remote.last_caught_up = remote.last_caught_up.max(remote.last_fetch);
        }
        remote.last_fetch = now;
        remote.last_fetch_leader_log_end = log_end;
        if !eligible {
            remote.joinable = false;
        } else if fetch_offset >= log_end {
            remote.joinable = true;
        }
        self.maybe_increment_high_watermark()
    }

    /// The leader's high watermark reached a follower (Kafka's follower
    /// `maybeUpdateHighWatermark`): the follower's own is that, capped by its log end, and
    /// never lower than before. Returns whether it moved.
    pub fn on_leader_high_watermark(&mut self, leader_high_watermark: Offset) -> bool {
        if self.is_leader() {
            return false;
        }
        let candidate = leader_high_watermark.min(self.log_end_offset);
        if candidate > self.high_watermark {
            self.high_watermark = candidate;
            return true;
        }
        false
    }

    /// The local log was cut back to `log_end_offset` (a follower truncating to the leader's
    /// log). The high watermark follows it down only if it was above.
    pub fn on_truncate(&mut self, log_end_offset: Offset) {
        self.log_end_offset = log_end_offset.max(self.log_start_offset);
        self.high_watermark = self.high_watermark.min(self.log_end_offset);
    }

    /// The local log was emptied and restarted at `offset` (a follower far behind the
    /// leader's log start): start, end and high watermark all restart there (KAFKA-9491).
    pub fn on_reset(&mut self, offset: Offset) {
        self.log_start_offset = offset;
        self.log_end_offset = offset;
        self.high_watermark = offset;
    }

    /// The log start offset moved up to `log_start_offset` (retention, DeleteRecords, or a
    /// follower restarting its log at the leader's start).
    pub fn on_log_start(&mut self, log_start_offset: Offset) {
        self.log_start_offset = log_start_offset.max(self.log_start_offset);
        self.log_end_offset = self.log_end_offset.max(self.log_start_offset);
        self.high_watermark = self.high_watermark.max(self.log_start_offset);
    }

    /// The high watermark a leader's ISR allows now (Kafka's `maybeIncrementLeaderHW`): the
    /// lowest log end offset among the maximal ISR's members (a follower that has not fetched
    /// yet holds nothing known) and among caught-up replicas about to join, so that a follower
    /// catching up under load can ever reach it (KAFKA-15021).
    fn isr_high_watermark(&self) -> Offset {
        let maximal = self.maximal_isr();
        let end_of = |member: BrokerId| {
            if member == self.local {
                self.log_end_offset
            } else {
                self.remotes.get(&member).map_or(Offset::NONE, |r| r.log_end_offset)
            }
        };
        let isr_min = maximal.iter().map(|&member| end_of(member)).min().unwrap_or(Offset::NONE);
        let joining = self
            .remotes
            .iter()
            .filter(|(id, remote)| {
                !maximal.contains(id)
                    && remote.joinable
                    && !remote.log_end_offset.is_none()
                    && self.now.0 - remote.last_caught_up.0 <= self.lag_time_max_ms
            })
            .map(|(_, remote)| remote.log_end_offset)
            .min();
        joining.map_or(isr_min, |j| j.min(isr_min))
    }

    fn maybe_increment_high_watermark(&mut self) -> bool {
        if !self.is_leader() {
            return false;
        }
        #[cfg(test)]
        let ignore_min_isr = crate::bugs::active(crate::bugs::Bug::HwBelowMinIsr);
        #[cfg(not(test))]
        let ignore_min_isr = false;
        if self.isr.len() < self.effective_min_isr() && !ignore_min_isr {
            return false;
        }
        let candidate = self.isr_high_watermark();
        if candidate > self.high_watermark {
            self.high_watermark = candidate;
            return true;
        }
        false
    }

    /// Checks the invariants: log start <= high watermark <= log end; the ISR within the
    /// replicas; a leader is itself a replica in the ISR and tracks exactly the other
    /// replicas; a leader's high watermark is what its ISR holds.
    pub fn validate(&self) -> Result<(), String> {
        let (start, hw, end) = (self.log_start_offset, self.high_watermark, self.log_end_offset);
        if !(start <= hw && hw <= end) {
            return Err(format!("log start {start} <= high watermark {hw} <= log end {end} violated"));
        }
        if let Some(outsider) = self.isr.iter().find(|b| !self.replicas.contains(b)) {
            return Err(format!("ISR member {outsider} is not a replica"));
        }
        match self.role {
            Role::Leader => {
                if !self.isr.contains(&self.local) || !self.replicas.contains(&self.local) {
                    return Err(format!("leader {} is not in its own ISR", self.local));
                }
                let others: Vec<BrokerId> = self.replicas.iter().copied().filter(|&b| b != self.local).collect();
                if self.remotes.keys().copied().collect::<Vec<_>>() != sorted(others) {
                    return Err("the leader tracks other brokers than its followers".into());
                }
                if self.leader_epoch_start_offset > end {
                    return Err("the leader epoch starts past the log end".into());
                }
                if self.isr.len() >= self.effective_min_isr() && hw < self.isr_high_watermark() {
                    return Err(format!("high watermark {hw} lags what the ISR holds ({})", self.isr_high_watermark()));
                }
            }
            Role::Follower { .. } => {
                if !self.remotes.is_empty() {
                    return Err("a follower tracks followers".into());
                }
            }
        }
        Ok(())
    }
}

fn sorted(mut brokers: Vec<BrokerId>) -> Vec<BrokerId> {
    brokers.sort();
    brokers.dedup();
    brokers
}

#[cfg(test)]
#[path = "replica_state_tests.rs"]
mod tests;
