//! The checkers of the replication simulation: the invariants tested after every step, and
//! the liveness check once every fault has healed.

use std::collections::BTreeMap;

use fjord_types::BrokerId;

use super::{BROKERS, Sim, contents};
use crate::replica_state::Role;

impl Sim {
    /// Tests every invariant against the brokers' current state.
    pub(super) fn check(&mut self) -> Result<(), String> {
        if let Some(violation) = self.violation.take() {
            return Err(violation);
        }
        let mut logs = BTreeMap::new();
        for broker in &self.brokers {
            let Some(partition) = broker.partition.as_ref() else { continue };
            partition.validate()?;
            logs.insert(broker.id, (contents(partition), partition.high_watermark(), partition.log_start_offset()));
        }
        // Everything below a leader's high watermark is committed: a consumer may have read it.
        for broker in &self.brokers {
            let Some(partition) = broker.partition.as_ref() else { continue };
            if partition.role() != Role::Leader {
                continue;
            }
            let (log, hw, _) = &logs[&broker.id];
            for (&offset, &crc) in log.range(..*hw) {
                if let Some(&seen) = self.committed.get(&offset)
                    && seen != crc
                {
                    return Err(format!(
                        "broker {} leads (epoch {}) with a different batch at committed offset {offset}",
                        broker.id,
                        partition.leader_epoch()
                    ));
                }
                self.committed.insert(offset, crc);
            }
            let key = (broker.id, broker.incarnation, partition.leader_epoch());
            if let Some(&before) = self.leader_hw.get(&key) {
                if *hw < before {
                    return Err(format!("leader {} moved its high watermark back from {before} to {hw}", broker.id));
                }
                if *hw > before && partition.state().isr().len() < partition.state().effective_min_isr() {
                    return Err(format!(
                        "leader {} advanced its high watermark to {hw} with ISR {:?} below min.insync.replicas",
                        broker.id,
                        partition.state().isr()
                    ));
                }
            }
            self.leader_hw.insert(key, *hw);
        }
        // Leader completeness: the leader the controller elected holds every committed batch.
        let leader = self.registration.leader;
        if let Some((log, _, start)) = logs.get(&leader) {
            let leads = self.brokers[(leader.0 - 1) as usize]
                .partition
                .as_ref()
                .is_some_and(|p| p.role() == Role::Leader && p.leader_epoch() == self.registration.leader_epoch);
            if leads {
                for (&offset, &crc) in self.committed.range(*start..) {
                    if log.get(&offset) != Some(&crc) {
                        return Err(format!(
                            "leader {leader} (epoch {}) lacks committed batch at offset {offset}",
                            self.registration.leader_epoch
                        ));
                    }
                }
            }
        }
        // What the leader counts of each follower is true: a follower's log matches the
        // leader's below the log end offset the leader recorded for it (StrongIsr: every
        // acknowledged write is on every ISR member at the time it is acknowledged).
        for broker in &self.brokers {
            let Some(partition) = broker.partition.as_ref().filter(|p| p.role() == Role::Leader) else { continue };
            let (leader_log, _, leader_start) = &logs[&broker.id];
            for &follower in partition.state().replicas() {
                let Some(remote) = partition.state().remote(follower) else { continue };
                let Some((log, _, start)) = logs.get(&follower) else { continue };
                if remote.log_end_offset.is_none() {
                    continue;
                }
                let from = (*start).max(*leader_start);
                let theirs: Vec<_> = log.range(from..remote.log_end_offset).collect();
                let ours: Vec<_> = leader_log.range(from..remote.log_end_offset).collect();
                if theirs != ours {
                    return Err(format!(
                        "leader {} counts follower {follower} up to {} but their logs differ below it",
                        broker.id, remote.log_end_offset
                    ));
                }
            }
        }
        // Log matching below the high watermarks.
        let ids: Vec<BrokerId> = logs.keys().copied().collect();
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                let (log_a, hw_a, start_a) = &logs[a];
                let (log_b, hw_b, start_b) = &logs[b];
                let (from, below) = ((*start_a).max(*start_b), (*hw_a).min(*hw_b));
                let left: Vec<_> = log_a.range(from..below).collect();
                let right: Vec<_> = log_b.range(from..below).collect();
                if left != right {
                    return Err(format!("brokers {a} and {b} disagree below their high watermarks ({below})"));
                }
            }
        }
        Ok(())
    }

    /// Restarts every broker and lets the cluster settle, so the final state is checked with
    /// everyone caught up.
    pub(super) fn heal(&mut self) -> Result<(), String> {
        while self.alive.len() < BROKERS.len() {
            self.restart();
        }
        for _ in 0..400 {
            match self.rng.below(4) {
                0 => self.send_fetches(),
                1 => self.deliver(),
                2 => self.apply_metadata(),
                _ => {
                    self.send_fetches();
                    while !self.network.is_empty() {
                        self.deliver();
                    }
                }
            }
            self.check()?;
        }
        // Liveness: with everyone up and the network drained, every replica holds the leader's
        // log (a follower stuck on a divergence it cannot resolve shows up here).
        let leader = self.registration.leader;
        let Some(led) = self.brokers[(leader.0 - 1) as usize].partition.as_ref() else {
            return Err(format!("no leader after healing ({leader})"));
        };
        let end = led.log_end_offset();
        for broker in &self.brokers {
            let partition = broker.partition.as_ref().expect("all restarted");
            if partition.log_end_offset() != end {
                return Err(format!(
                    "broker {} ends at {} after healing, the leader {leader} at {end}",
                    broker.id,
                    partition.log_end_offset()
                ));
            }
        }
        Ok(())
    }
}
