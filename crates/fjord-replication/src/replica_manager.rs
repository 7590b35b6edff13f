//! The partitions this broker hosts (Kafka's `ReplicaManager`): which to open, lead, follow or
//! remove is decided by a pure function of the metadata's changes ([`local_changes`]), and the
//! manager carries the decisions out and completes the requests waiting on a partition when
//! it changes.

use std::collections::HashMap;
use std::sync::Arc;

use fjord_types::{BrokerId, PartitionRegistration, Timestamp, TopicId, TopicPartition};
use parking_lot::{Mutex, RwLock};

use crate::error::AppendError;
use crate::partition::{AppendResult, Partition, PartitionConfig};
use crate::purgatory::Purgatory;
use crate::replica_state::StateError;

/// One change the metadata log made to a partition, as the replica manager needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionChange {
    /// A partition was created or its registration changed.
    Registered {
        /// The partition.
        tp: TopicPartition,
        /// Its topic's id.
        topic_id: TopicId,
        /// The registration before; `None` for a new partition.
        previous: Option<PartitionRegistration>,
        /// The registration now.
        current: PartitionRegistration,
    },
    /// The partition's topic configs changed.
    Reconfigured {
        /// The partition.
        tp: TopicPartition,
        /// Its registration.
        registration: PartitionRegistration,
    },
    /// The partition's topic was deleted.
    Removed {
        /// The partition.
        tp: TopicPartition,
        /// Its registration when the topic was deleted.
        registration: PartitionRegistration,
    },
}

/// What this broker must do to one of its replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaChange {
    /// Open the replica if needed and lead it under `registration`.
    BecomeLeader {
        /// The partition.
        tp: TopicPartition,
        /// Its topic's id.
        topic_id: TopicId,
        /// The registration that makes this broker the leader.
        registration: PartitionRegistration,
    },
    /// Open the replica if needed and follow the leader of `registration`.
    BecomeFollower {
        /// The partition.
        tp: TopicPartition,
        /// Its topic's id.
        topic_id: TopicId,
        /// The registration naming the leader.
        registration: PartitionRegistration,
    },
    /// Stop hosting the replica; `delete` its log too (topic deleted, or replica moved away).
    Stop {
        /// The partition.
        tp: TopicPartition,
        /// Whether its log goes.
        delete: bool,
    },
    /// Reread the partition's configs.
    UpdateConfig {
        /// The partition.
        tp: TopicPartition,
    },
}

/// The local replica changes that `changes` imply for broker `local` (Kafka's
/// `TopicsDelta.localChanges`): stops first (so a topic deleted and created again under the
/// same name is removed before it is opened), then leaderships, followers, config updates.
pub fn local_changes(changes: &[PartitionChange], local: BrokerId) -> Vec<ReplicaChange> {
    let (mut stops, mut leaders, mut followers, mut configs) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for change in changes {
        match change {
            PartitionChange::Registered { tp, topic_id, previous, current } => {
                if current.has_replica(local) {
                    let (tp, topic_id, registration) = (tp.clone(), *topic_id, current.clone());
                    if current.leader == local {
                        leaders.push(ReplicaChange::BecomeLeader { tp, topic_id, registration });
                    } else {
                        followers.push(ReplicaChange::BecomeFollower { tp, topic_id, registration });
                    }
                } else if previous.as_ref().is_some_and(|p| p.has_replica(local)) {
                    stops.push(ReplicaChange::Stop { tp: tp.clone(), delete: true });
                }
            }
            PartitionChange::Reconfigured { tp, registration } if registration.has_replica(local) => {
                configs.push(ReplicaChange::UpdateConfig { tp: tp.clone() });
            }
            PartitionChange::Removed { tp, registration } if registration.has_replica(local) => {
                stops.push(ReplicaChange::Stop { tp: tp.clone(), delete: true });
            }
            PartitionChange::Reconfigured { .. } | PartitionChange::Removed { .. } => {}
        }
    }
    stops.into_iter().chain(leaders).chain(followers).chain(configs).collect()
}

/// A hosted partition: its state behind a short lock, never held across an `.await`.
#[derive(Debug)]
pub struct PartitionHandle {
    /// The replica.
    pub state: Mutex<Partition>,
    /// The topic's id.
    pub topic_id: TopicId,
}

/// Why a replica change could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// The partition's log cannot be opened.
    #[error("cannot open {tp}: {source}")]
    Open {
        /// The partition.
        tp: TopicPartition,
        /// Why.
        source: fjord_log::Error,
    },
    /// The registration cannot apply (stale epoch, wrong role).
    #[error("{tp}: {source}")]
    State {
        /// The partition.
        tp: TopicPartition,
        /// Why.
        source: StateError,
    },
}

/// The replicas this broker hosts, and the requests waiting on them.
#[derive(Debug)]
pub struct ReplicaManager {
    local: BrokerId,
    partitions: RwLock<HashMap<TopicPartition, Arc<PartitionHandle>>>,
    produce_purgatory: Purgatory,
    fetch_purgatory: Purgatory,
}

impl ReplicaManager {
    /// No replicas yet, on broker `local`.
    pub fn new(local: BrokerId) -> ReplicaManager {
        ReplicaManager {
            local,
            partitions: RwLock::new(HashMap::new()),
            produce_purgatory: Purgatory::new(),
            fetch_purgatory: Purgatory::new(),
        }
    }

    /// This broker.
    pub fn local_broker(&self) -> BrokerId {
        self.local
    }

    /// A hosted replica.
    pub fn partition(&self, tp: &TopicPartition) -> Option<Arc<PartitionHandle>> {
        self.partitions.read().get(tp).cloned()
    }

    /// Every hosted replica.
    pub fn partitions(&self) -> Vec<(TopicPartition, Arc<PartitionHandle>)> {
        self.partitions.read().iter().map(|(tp, h)| (tp.clone(), Arc::clone(h))).collect()
    }

    /// Where `acks=all` produces wait for the high watermark.
    pub fn produce_purgatory(&self) -> &Purgatory {
        &self.produce_purgatory
    }

    /// Where long-poll fetches wait for data.
    pub fn fetch_purgatory(&self) -> &Purgatory {
        &self.fetch_purgatory
    }

    /// A partition changed (an append, a high watermark move, a leadership change): the
    /// requests waiting on it check again.
    pub fn complete_delayed(&self, tp: &TopicPartition) {
        self.fetch_purgatory.check_and_complete(tp);
        self.produce_purgatory.check_and_complete(tp);
    }

    /// Appends a produce request's records to a partition this broker leads, then completes
    /// the requests waiting on it. `None` if the partition is not hosted.
    pub fn append_records(
        &self,
        tp: &TopicPartition,
        records: &[u8],
        acks: i16,
        now: Timestamp,
    ) -> Option<Result<AppendResult, AppendError>> {
        let handle = self.partition(tp)?;
        let result = handle.state.lock().append_as_leader(records, acks, now);
        if matches!(result, Ok(AppendResult { duplicate: false, .. })) {
            self.complete_delayed(tp);
        }
        Some(result)
    }

    /// Leads `tp` under `registration`, opening its replica with `open` if it is not hosted.
    pub fn become_leader(
        &self,
        tp: &TopicPartition,
        topic_id: TopicId,
        registration: &PartitionRegistration,
        now: Timestamp,
        open: impl FnOnce() -> Result<Partition, fjord_log::Error>,
    ) -> Result<(), ReplicaError> {
        self.change_role(tp, topic_id, open, |partition| partition.make_leader(registration, now).map(|_| ()))
    }

    /// Follows the leader of `registration` on `tp`, opening its replica with `open` if it is
    /// not hosted. (Fetching from the leader arrives with follower replication.)
    pub fn become_follower(
        &self,
        tp: &TopicPartition,
        topic_id: TopicId,
        registration: &PartitionRegistration,
        open: impl FnOnce() -> Result<Partition, fjord_log::Error>,
    ) -> Result<(), ReplicaError> {
        self.change_role(tp, topic_id, open, |partition| partition.make_follower(registration).map(|_| ()))
    }

    fn change_role(
        &self,
        tp: &TopicPartition,
        topic_id: TopicId,
        open: impl FnOnce() -> Result<Partition, fjord_log::Error>,
        change: impl FnOnce(&mut Partition) -> Result<(), StateError>,
    ) -> Result<(), ReplicaError> {
        let state_error = |source| ReplicaError::State { tp: tp.clone(), source };
        match self.partition(tp).filter(|h| h.topic_id == topic_id) {
            Some(handle) => change(&mut handle.state.lock()).map_err(state_error)?,
            None => {
                let mut partition = open().map_err(|source| ReplicaError::Open { tp: tp.clone(), source })?;
                change(&mut partition).map_err(state_error)?;
                let handle = PartitionHandle { state: Mutex::new(partition), topic_id };
                self.partitions.write().insert(tp.clone(), Arc::new(handle));
            }
        }
        self.complete_delayed(tp);
        Ok(())
    }

    /// Stops hosting `tp` and returns its replica, for the caller to close or delete. Requests
    /// waiting on it are woken (and find it gone).
    pub fn stop_replica(&self, tp: &TopicPartition) -> Option<Arc<PartitionHandle>> {
        let removed = self.partitions.write().remove(tp);
        self.complete_delayed(tp);
        removed
    }

    /// Applies new settings to a hosted replica.
    pub fn update_config(&self, tp: &TopicPartition, config: PartitionConfig) {
        if let Some(handle) = self.partition(tp) {
            handle.state.lock().set_config(config);
        }
    }

    /// Removes every replica, for a clean shutdown: waiting requests are woken first.
    pub fn drain(&self) -> Vec<(TopicPartition, Arc<PartitionHandle>)> {
        let drained: Vec<_> = self.partitions.write().drain().collect();
        self.fetch_purgatory.complete_all();
        self.produce_purgatory.complete_all();
        drained
    }
}

#[cfg(test)]
mod tests {
    use fjord_types::LeaderEpoch;

    use super::*;

    fn reg(leader: i32, replicas: &[i32]) -> PartitionRegistration {
        let mut registration = PartitionRegistration::new(replicas.iter().copied().map(BrokerId).collect());
        registration.leader = BrokerId(leader);
        registration.leader_epoch = LeaderEpoch(1);
        registration
    }

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    const ID: TopicId = TopicId([1; 16]);

    #[test]
    fn local_changes_follow_kafkas_rules() {
        let local = BrokerId(1);
        let changes = vec![
            PartitionChange::Registered { tp: tp(0), topic_id: ID, previous: None, current: reg(1, &[1, 2]) },
            PartitionChange::Registered { tp: tp(1), topic_id: ID, previous: None, current: reg(2, &[2, 1]) },
            PartitionChange::Registered { tp: tp(2), topic_id: ID, previous: None, current: reg(2, &[2, 3]) },
            // Reassigned away from this broker: its log goes.
            PartitionChange::Registered {
                tp: tp(3),
                topic_id: ID,
                previous: Some(reg(1, &[1, 2])),
                current: reg(2, &[2, 3]),
            },
            PartitionChange::Reconfigured { tp: tp(4), registration: reg(1, &[1]) },
            PartitionChange::Reconfigured { tp: tp(5), registration: reg(2, &[2]) },
            PartitionChange::Removed { tp: tp(6), registration: reg(3, &[3, 1]) },
        ];
        let local_changes = local_changes(&changes, local);
        assert_eq!(
            local_changes,
            vec![
                ReplicaChange::Stop { tp: tp(3), delete: true },
                ReplicaChange::Stop { tp: tp(6), delete: true },
                ReplicaChange::BecomeLeader { tp: tp(0), topic_id: ID, registration: reg(1, &[1, 2]) },
                ReplicaChange::BecomeFollower { tp: tp(1), topic_id: ID, registration: reg(2, &[2, 1]) },
                ReplicaChange::UpdateConfig { tp: tp(4) },
            ]
        );
    }

    #[test]
    fn a_partition_is_opened_once_and_its_waiters_are_woken_on_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let manager = ReplicaManager::new(BrokerId(1));
        let open = || {
            Partition::open(
                dir.path(),
                tp(0),
                PartitionConfig::default(),
                Default::default(),
                BrokerId(1),
                fjord_types::Offset(0),
                Timestamp(0),
            )
        };
        let watch = manager.fetch_purgatory().watch([tp(0)]);
        manager.become_leader(&tp(0), ID, &reg(1, &[1]), Timestamp(0), open).unwrap();
        assert_eq!(manager.fetch_purgatory().completions(), 1);
        drop(watch);
        let mut moved = reg(2, &[1, 2]);
        moved.leader_epoch = LeaderEpoch(2);
        manager.become_follower(&tp(0), ID, &moved, || panic!("already open")).unwrap();
        assert!(!manager.partition(&tp(0)).unwrap().state.lock().state().is_leader());
        let stale = reg(1, &[1]);
        assert!(matches!(
            manager.become_leader(&tp(0), ID, &stale, Timestamp(0), || panic!("already open")),
            Err(ReplicaError::State { .. })
        ));
        assert!(manager.stop_replica(&tp(0)).is_some());
        assert!(manager.partition(&tp(0)).is_none());
    }
}
