//! The cleaner's key → latest offset map, in bounded memory (Kafka's `SkimpyOffsetMap`).
//!
//! Keys are not stored: each is reduced to a 128-bit XXH3 hash, so an entry is 24 bytes
//! whatever the key's size, and `log.cleaner.dedupe.buffer.size` bounds the map exactly. Two
//! keys would have to collide on all 128 bits for the cleaner to drop a record it should keep.
//! The table is open-addressed with linear probing and filled to at most 90%, like Kafka's; it
//! starts small and doubles up to its bound, so a cleaner of small logs stays small.

use fjord_types::Offset;
use xxhash_rust::xxh3::xxh3_128;

/// Bytes per entry: the hash's two halves and the offset.
pub(crate) const ENTRY_BYTES: usize = 24;

const EMPTY: i64 = -1;
const MIN_SLOTS: usize = 1 << 12;
/// The smallest table a memory bound can ask for.
const FLOOR_SLOTS: usize = 16;
const LOAD_FACTOR: f64 = 0.9;

/// Hashes of keys mapped to the latest offset seen for each.
#[derive(Debug)]
pub struct OffsetMap {
    hashes: Vec<u128>,
    offsets: Vec<i64>,
    entries: usize,
    max_slots: usize,
}

impl OffsetMap {
    /// A map that will use at most `memory_bytes` (and at least room for 14 keys).
    pub fn new(memory_bytes: usize) -> OffsetMap {
        let max_slots = prev_power_of_two((memory_bytes / ENTRY_BYTES).max(FLOOR_SLOTS));
        OffsetMap { hashes: Vec::new(), offsets: Vec::new(), entries: 0, max_slots }
    }

    /// The most keys the map can hold at its memory bound.
    pub fn capacity(&self) -> usize {
        (self.max_slots as f64 * LOAD_FACTOR) as usize
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Bytes the table occupies now.
    pub fn memory_bytes(&self) -> usize {
        self.hashes.len() * ENTRY_BYTES
    }

    /// Forgets every key, keeping the table.
    pub fn clear(&mut self) {
        self.offsets.fill(EMPTY);
        self.entries = 0;
    }

    /// Records `offset` as the latest for `key` (offsets are put in increasing order). Returns
    /// false, changing nothing, when the map is at capacity and `key` is new.
    pub fn put(&mut self, key: &[u8], offset: Offset) -> bool {
        let hash = xxh3_128(key);
        if self.entries + 1 > self.slot_limit() {
            if self.hashes.len() >= self.max_slots {
                if let Some(slot) = self.find(hash) {
                    self.offsets[slot] = offset.0;
                    return true;
                }
                return false;
            }
            self.grow();
        }
        let mask = self.hashes.len() - 1;
        let mut slot = (hash as usize) & mask;
        loop {
            if self.offsets[slot] == EMPTY {
                self.hashes[slot] = hash;
                self.offsets[slot] = offset.0;
                self.entries += 1;
                return true;
            }
            if self.hashes[slot] == hash {
                self.offsets[slot] = offset.0;
                return true;
            }
            slot = (slot + 1) & mask;
        }
    }

    /// The latest offset recorded for `key`.
    pub fn get(&self, key: &[u8]) -> Option<Offset> {
        if self.entries == 0 {
            return None;
        }
        self.find(xxh3_128(key)).map(|slot| Offset(self.offsets[slot]))
    }

    fn find(&self, hash: u128) -> Option<usize> {
        if self.hashes.is_empty() {
            return None;
        }
        let mask = self.hashes.len() - 1;
        let mut slot = (hash as usize) & mask;
        loop {
            if self.offsets[slot] == EMPTY {
                return None;
            }
            if self.hashes[slot] == hash {
                return Some(slot);
            }
            slot = (slot + 1) & mask;
        }
    }

    fn slot_limit(&self) -> usize {
        (self.hashes.len() as f64 * LOAD_FACTOR) as usize
    }

    fn grow(&mut self) {
        let slots = if self.hashes.is_empty() { MIN_SLOTS.min(self.max_slots) } else { self.hashes.len() * 2 };
        let old_hashes = std::mem::replace(&mut self.hashes, vec![0; slots]);
        let old_offsets = std::mem::replace(&mut self.offsets, vec![EMPTY; slots]);
        let mask = slots - 1;
        for (hash, offset) in old_hashes.into_iter().zip(old_offsets) {
            if offset == EMPTY {
                continue;
            }
            let mut slot = (hash as usize) & mask;
            while self.offsets[slot] != EMPTY {
                slot = (slot + 1) & mask;
            }
            self.hashes[slot] = hash;
            self.offsets[slot] = offset;
        }
    }
}

fn prev_power_of_two(n: usize) -> usize {
    if n.is_power_of_two() { n } else { n.next_power_of_two() / 2 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_offset_and_stops_at_its_bound() {
        let mut map = OffsetMap::new(MIN_SLOTS * ENTRY_BYTES);
        assert!(map.is_empty());
        for i in 0..1000i64 {
            assert!(map.put(format!("key-{}", i % 100).as_bytes(), Offset(i)));
        }
        assert_eq!(map.len(), 100);
        assert_eq!(map.get(b"key-7"), Some(Offset(907)));
        assert_eq!(map.get(b"absent"), None);
        let capacity = map.capacity();
        let mut i = 1000;
        while map.put(format!("fill-{i}").as_bytes(), Offset(i)) {
            i += 1;
        }
        assert_eq!(map.len(), capacity);
        assert!(map.memory_bytes() <= MIN_SLOTS * ENTRY_BYTES);
        // A known key still updates when the map is full.
        assert!(map.put(b"key-7", Offset(i)));
        assert_eq!(map.get(b"key-7"), Some(Offset(i)));
        map.clear();
        assert_eq!(map.get(b"key-7"), None);
    }
}
