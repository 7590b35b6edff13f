//! The state machine the simulated quorum replicates: a small key-value map, written by
//! `key=value` records. Small on purpose: hashing its whole state after every batch is cheap,
//! so every node's state can be compared at every offset.

use std::collections::BTreeMap;

use fjord_quorum::{Batch, BatchKind, StateMachine};
use fjord_types::{LeaderEpoch, Offset};

/// 64-bit FNV-1a: a stable hash for comparing contents across nodes and runs.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The identity of a batch's contents.
pub(crate) fn batch_hash(batch: &Batch) -> u64 {
    let mut hash = fnv1a(&[u8::from(batch.kind == BatchKind::Control)]);
    for record in &batch.records {
        hash = hash.rotate_left(5) ^ fnv1a(record);
    }
    hash
}

/// One batch as a node applied it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AppliedBatch {
    /// First offset.
    pub(crate) base_offset: Offset,
    /// Offset after the last record.
    pub(crate) next_offset: Offset,
    /// Epoch it was written in.
    pub(crate) epoch: LeaderEpoch,
    /// [`batch_hash`] of its contents.
    pub(crate) hash: u64,
    /// The hash of the whole state after applying it.
    pub(crate) state_hash: u64,
}

/// Keys to values, plus what the checkers need to see of each step.
#[derive(Debug, Default)]
pub(crate) struct KvMachine {
    map: BTreeMap<String, String>,
    /// Batches applied since the simulator last looked.
    pub(crate) applied: Vec<AppliedBatch>,
    /// The hashes of the snapshot payloads restored since the simulator last looked.
    pub(crate) restored: Vec<u64>,
}

impl KvMachine {
    /// The serialized state (also the snapshot payload).
    pub(crate) fn serialize(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (key, value) in &self.map {
            out.extend_from_slice(key.as_bytes());
            out.push(b'=');
            out.extend_from_slice(value.as_bytes());
            out.push(b'\n');
        }
        out
    }

    /// A hash of the whole state.
    pub(crate) fn state_hash(&self) -> u64 {
        fnv1a(&self.serialize())
    }
}

impl StateMachine for KvMachine {
    fn apply(&mut self, batch: &Batch) -> Result<(), String> {
        if batch.kind == BatchKind::Data {
            for record in &batch.records {
                let text = std::str::from_utf8(record).map_err(|_| "a record is not UTF-8".to_owned())?;
                let (key, value) = text.split_once('=').ok_or_else(|| format!("not key=value: {text:?}"))?;
                self.map.insert(key.to_owned(), value.to_owned());
            }
        }
        self.applied.push(AppliedBatch {
            base_offset: batch.base_offset,
            next_offset: batch.next_offset(),
            epoch: batch.epoch,
            hash: batch_hash(batch),
            state_hash: self.state_hash(),
        });
        Ok(())
    }

    fn snapshot(&self) -> Vec<u8> {
        self.serialize()
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(snapshot).map_err(|_| "a snapshot is not UTF-8".to_owned())?;
        let mut map = BTreeMap::new();
        for line in text.lines() {
            let (key, value) = line.split_once('=').ok_or_else(|| format!("bad snapshot line {line:?}"))?;
            map.insert(key.to_owned(), value.to_owned());
        }
        self.map = map;
        self.restored.push(fnv1a(snapshot));
        Ok(())
    }
}
