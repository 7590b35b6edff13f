//! `fjord-log` as a write-ahead log: a tiny key-value store that survives crashes.
//!
//! Every `put`/`delete` is appended as a record (key = the key, value = the new value, or null
//! for a delete) before it is applied in memory; `flush` makes it durable. Restarting replays
//! the log to rebuild the map. A snapshot of the map lets the log drop the segments it covers:
//! it is written to a temporary file, synced, renamed into place and the directory synced, so a
//! crash leaves either the old snapshot or the new one.
//!
//! Run: `cargo run -p fjord-examples --example log_as_wal [DIR]`

#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use fjord_log::{AppendMode, BatchBuilder, Batches, Log, LogConfig, OpenOptions};
use fjord_types::{Clock, LeaderEpoch, Offset, SystemClock};

/// Keys to values.
type State = BTreeMap<Vec<u8>, Vec<u8>>;

/// The store: its state, and the log that makes the state durable.
struct Store {
    state: State,
    log: Log,
    dir: std::path::PathBuf,
}

const SNAPSHOT: &str = "snapshot";

/// Snapshot file: the offset it covers up to, then (key length, key, value length, value)*.
fn write_snapshot(dir: &Path, covered: Offset, state: &State) -> Result<()> {
    use std::io::Write;
    let mut bytes = covered.0.to_be_bytes().to_vec();
    for (key, value) in state {
        for field in [key, value] {
            bytes.extend_from_slice(&(field.len() as u32).to_be_bytes());
            bytes.extend_from_slice(field);
        }
    }
    let tmp = dir.join("snapshot.tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(SNAPSHOT))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

fn read_snapshot(dir: &Path) -> Result<(Offset, State)> {
    let Ok(bytes) = std::fs::read(dir.join(SNAPSHOT)) else { return Ok((Offset(0), BTreeMap::new())) };
    let (covered, mut rest) = bytes.split_first_chunk::<8>().ok_or_else(|| anyhow::anyhow!("short snapshot"))?;
    fn field(rest: &mut &[u8]) -> Result<Vec<u8>> {
        let (len, tail) = rest.split_first_chunk::<4>().ok_or_else(|| anyhow::anyhow!("short snapshot"))?;
        let len = u32::from_be_bytes(*len) as usize;
        anyhow::ensure!(len <= tail.len(), "short snapshot");
        let (value, tail) = tail.split_at(len);
        *rest = tail;
        Ok(value.to_vec())
    }
    let mut state = BTreeMap::new();
    while !rest.is_empty() {
        let key = field(&mut rest)?;
        state.insert(key, field(&mut rest)?);
    }
    Ok((Offset(i64::from_be_bytes(*covered)), state))
}

impl Store {
    /// Opens the store, recovering the log and replaying it into memory.
    fn open(dir: &Path) -> Result<Store> {
        // Small segments, so that dropping old ones is visible in a short run.
        let config = LogConfig { segment_bytes: 4096, ..LogConfig::default() };
        let log = Log::open(dir, config, OpenOptions::default(), SystemClock.now())?;
        let report = log.open_report();
        println!(
            "opened: clean shutdown {}, {} segment(s) checked, {} torn byte(s) cut",
            report.clean_shutdown,
            report.recovered_segments.len(),
            report.truncated_bytes
        );
        let (covered, state) = read_snapshot(dir)?;
        let mut store = Store { state, log, dir: dir.to_path_buf() };
        store.replay(covered)?;
        Ok(store)
    }

    /// Applies the log from where the snapshot ends.
    fn replay(&mut self, covered: Offset) -> Result<()> {
        let mut next = self.log.log_start_offset().max(covered);
        while next < self.log.log_end_offset() {
            let bytes = self.log.read_bytes(next, 1 << 20, None)?;
            for batch in Batches::new(&bytes) {
                let batch = batch?;
                for record in batch.records()? {
                    let record = record?;
                    if record.offset() < next {
                        continue; // a read starts at the batch holding `next`
                    }
                    let key = record.key().unwrap_or_default().to_vec();
                    match record.value() {
                        Some(value) => self.state.insert(key, value.to_vec()),
                        None => self.state.remove(&key),
                    };
                }
                next = batch.next_offset();
            }
        }
        println!("snapshot up to {covered}, replayed the log up to {next}: {} key(s)", self.state.len());
        Ok(())
    }

    fn write(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<Offset> {
        let mut batch = BatchBuilder::new();
        batch.push(SystemClock.now(), Some(key), value, &[]);
        let bytes = batch.build()?;
        let info = self.log.append(&bytes, AppendMode::Leader { leader_epoch: LeaderEpoch(0) }, SystemClock.now())?;
        match value {
            Some(value) => self.state.insert(key.to_vec(), value.to_vec()),
            None => self.state.remove(key),
        };
        Ok(info.first_offset)
    }

    fn put(&mut self, key: &str, value: &str) -> Result<Offset> {
        self.write(key.as_bytes(), Some(value.as_bytes()))
    }

    fn delete(&mut self, key: &str) -> Result<Offset> {
        self.write(key.as_bytes(), None)
    }

    /// Makes every write so far durable.
    fn flush(&mut self) -> Result<()> {
        self.log.flush(SystemClock.now())?;
        Ok(())
    }

    /// Snapshots the state, then drops the whole segments the snapshot covers.
    fn snapshot(&mut self) -> Result<usize> {
        self.flush()?;
        let covered = self.log.log_end_offset();
        write_snapshot(&self.dir, covered, &self.state)?;
        let deleted = self.log.delete_segments_before(covered)?;
        let count = deleted.len();
        for segment in deleted {
            segment.remove()?;
        }
        Ok(count)
    }
}

fn main() -> Result<()> {
    let dir = match std::env::args().nth(1) {
        Some(dir) => dir.into(),
        None => std::env::temp_dir().join(format!("fjord-wal-example-{}", std::process::id())),
    };
    println!("WAL in {}", dir.display());

    let mut store = Store::open(&dir)?;
    for i in 0..200 {
        store.put(&format!("user-{}", i % 50), &format!("visits={i}"))?;
    }
    store.delete("user-7")?;
    store.flush()?;
    let expected = store.state.clone();
    // A crash: the store is dropped without closing the log.
    drop(store);

    let mut store = Store::open(&dir)?;
    assert_eq!(store.state, expected, "replay rebuilds exactly the flushed state");
    println!("user-42 => {}", String::from_utf8_lossy(&store.state[b"user-42".as_slice()]));
    let dropped = store.snapshot()?;
    println!(
        "dropped {dropped} segment(s) covered by the snapshot; log now starts at {}",
        store.log.log_start_offset()
    );
    store.put("user-1", "after-snapshot")?;
    store.flush()?;
    let expected = store.state.clone();
    store.log.close()?;

    let store = Store::open(&dir)?;
    assert_eq!(store.state, expected, "snapshot + log tail rebuild the state");
    store.log.close()?;

    if std::env::args().nth(1).is_none() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}
