//! The durable election state: Kafka's `ElectionState` in a `quorum-state` file
//! (`FileQuorumStateStore`), or in memory for tests and the simulator.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use fjord_types::LeaderEpoch;

use crate::error::StorageError;
use crate::ids::{DirectoryId, NodeId, ReplicaKey};
use crate::json::{self, Json};

/// Kafka's file name for the election state, in the metadata partition's directory.
pub const QUORUM_STATE_FILE: &str = "quorum-state";

/// What a node must remember across a crash to stay safe: its epoch, the leader it knows in that
/// epoch, and whom it voted for in that epoch. It is written before any message that depends on
/// it leaves the node.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ElectionState {
    /// The latest epoch the node has seen.
    pub epoch: LeaderEpoch,
    /// The leader of that epoch, if known.
    pub leader_id: Option<NodeId>,
    /// The candidate the node voted for in that epoch (itself, as a candidate), if any.
    pub voted_key: Option<ReplicaKey>,
}

impl ElectionState {
    /// Kafka's `quorum-state` JSON (data_version 1), one line.
    pub fn to_json(&self) -> String {
        let voted_id = self.voted_key.map_or(-1, |k| k.id.0);
        let voted_directory = self.voted_key.and_then(|k| k.directory_id).unwrap_or(DirectoryId::ZERO);
        format!(
            r#"{{"leaderId":{},"leaderEpoch":{},"votedId":{voted_id},"votedDirectoryId":"{voted_directory}","data_version":1}}"#,
            self.leader_id.map_or(-1, |l| l.0),
            self.epoch.0,
        )
    }

    /// Reads Kafka's `quorum-state` JSON, data_version 0 or 1. Any other version is refused
    /// (KAFKA-15412), as is anything malformed.
    pub fn from_json(text: &str, path: &Path) -> Result<ElectionState, StorageError> {
        let corrupt = |reason: String| StorageError::Corrupt { path: path.to_path_buf(), reason };
        let Json::Object(map) = json::parse(text).map_err(corrupt)? else {
            return Err(corrupt("not a JSON object".into()));
        };
        let integer = |name: &str| -> Result<Option<i64>, StorageError> {
            match map.get(name) {
                None => Ok(None),
                Some(Json::Integer(v)) => Ok(Some(*v)),
                Some(other) => Err(corrupt(format!("{name} is {other:?}, not an integer"))),
            }
        };
        let version = integer("data_version")?.ok_or_else(|| corrupt("no data_version".into()))?;
        if version != 0 && version != 1 {
            return Err(StorageError::UnknownDataVersion { path: path.to_path_buf(), version });
        }
        let id = |name: &str| -> Result<Option<NodeId>, StorageError> {
            match integer(name)? {
                None | Some(-1) => Ok(None),
                Some(v) if (0..=i64::from(i32::MAX)).contains(&v) => Ok(Some(NodeId(v as i32))),
                Some(v) => Err(corrupt(format!("{name} {v} is not a node id"))),
            }
        };
        let epoch = integer("leaderEpoch")?.ok_or_else(|| corrupt("no leaderEpoch".into()))?;
        if !(0..=i64::from(i32::MAX)).contains(&epoch) {
            return Err(corrupt(format!("leaderEpoch {epoch}")));
        }
        let directory_id = match map.get("votedDirectoryId") {
            None | Some(Json::Null) => None,
            Some(Json::String(text)) => {
                let id: DirectoryId =
                    text.parse().map_err(|e: crate::ids::DirectoryIdParseError| corrupt(e.to_string()))?;
                (id != DirectoryId::ZERO).then_some(id)
            }
            Some(other) => return Err(corrupt(format!("votedDirectoryId is {other:?}"))),
        };
        Ok(ElectionState {
            epoch: LeaderEpoch(epoch as i32),
            leader_id: id("leaderId")?,
            voted_key: id("votedId")?.map(|id| ReplicaKey { id, directory_id }),
        })
    }
}

/// Where a node keeps its [`ElectionState`].
pub trait QuorumStateStore {
    /// The stored state; `None` for a node that never wrote one.
    fn read(&self) -> Result<Option<ElectionState>, StorageError>;
    /// Replaces the stored state durably: when this returns, a crash keeps `state`.
    fn write(&mut self, state: &ElectionState) -> Result<(), StorageError>;
}

/// The `quorum-state` file, replaced atomically: written to `quorum-state.tmp`, synced, renamed
/// over the old file, and the directory synced (KAFKA-15312: renaming an unsynced file left
/// empty files on ext4 after a power loss).
#[derive(Debug, Clone)]
pub struct FileQuorumStateStore {
    path: PathBuf,
}

impl FileQuorumStateStore {
    /// The store in `dir` (the metadata partition's directory), created if missing.
    pub fn new(dir: &Path) -> Result<FileQuorumStateStore, StorageError> {
        fs::create_dir_all(dir).map_err(StorageError::io(dir))?;
        Ok(FileQuorumStateStore { path: dir.join(QUORUM_STATE_FILE) })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl QuorumStateStore for FileQuorumStateStore {
    fn read(&self) -> Result<Option<ElectionState>, StorageError> {
        match fs::read_to_string(&self.path) {
            Ok(text) => ElectionState::from_json(text.trim(), &self.path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io(&self.path)(e)),
        }
    }

    fn write(&mut self, state: &ElectionState) -> Result<(), StorageError> {
        let temp = self.path.with_extension("tmp");
        let mut file = File::create(&temp).map_err(StorageError::io(&temp))?;
        file.write_all(state.to_json().as_bytes()).map_err(StorageError::io(&temp))?;
        file.sync_all().map_err(StorageError::io(&temp))?;
        drop(file);
        fs::rename(&temp, &self.path).map_err(StorageError::io(&self.path))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        File::open(dir).and_then(|d| d.sync_all()).map_err(StorageError::io(dir))
    }
}

/// An election state in memory: durable for as long as the value lives (tests, the simulator).
#[derive(Debug, Clone, Default)]
pub struct MemoryQuorumStateStore {
    state: Option<ElectionState>,
    writes: u64,
}

impl MemoryQuorumStateStore {
    /// An empty store.
    pub fn new() -> MemoryQuorumStateStore {
        MemoryQuorumStateStore::default()
    }

    /// The state as last written.
    pub fn state(&self) -> Option<ElectionState> {
        self.state
    }

    /// How many writes there were.
    pub fn writes(&self) -> u64 {
        self.writes
    }
}

impl QuorumStateStore for MemoryQuorumStateStore {
    fn read(&self) -> Result<Option<ElectionState>, StorageError> {
        Ok(self.state)
    }

    fn write(&mut self, state: &ElectionState) -> Result<(), StorageError> {
        self.state = Some(*state);
        self.writes += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_kafkas_v1_json() {
        let dir = DirectoryId([3; 16]);
        let state = ElectionState {
            epoch: LeaderEpoch(5),
            leader_id: Some(NodeId(1)),
            voted_key: Some(ReplicaKey::with_directory(2, dir)),
        };
        assert_eq!(
            state.to_json(),
            format!(r#"{{"leaderId":1,"leaderEpoch":5,"votedId":2,"votedDirectoryId":"{dir}","data_version":1}}"#)
        );
        let none = ElectionState { epoch: LeaderEpoch(0), leader_id: None, voted_key: None };
        assert_eq!(
            none.to_json(),
            r#"{"leaderId":-1,"leaderEpoch":0,"votedId":-1,"votedDirectoryId":"AAAAAAAAAAAAAAAAAAAAAA","data_version":1}"#
        );
        for s in [state, none, ElectionState { voted_key: Some(ReplicaKey::of(3)), ..none }] {
            assert_eq!(ElectionState::from_json(&s.to_json(), Path::new("q")).unwrap(), s);
        }
    }

    #[test]
    fn reads_kafkas_v0_json() {
        let v0 = r#"{"clusterId":"","leaderId":-1,"leaderEpoch":3,"votedId":2,"appliedOffset":0,"currentVoters":[{"voterId":1},{"voterId":2}],"data_version":0}"#;
        let state = ElectionState::from_json(v0, Path::new("q")).unwrap();
        assert_eq!(state, ElectionState { epoch: LeaderEpoch(3), leader_id: None, voted_key: Some(ReplicaKey::of(2)) });
    }

    #[test]
    fn an_unknown_data_version_is_a_hard_error() {
        let v2 = r#"{"leaderId":1,"leaderEpoch":5,"votedId":-1,"data_version":2}"#;
        assert!(matches!(
            ElectionState::from_json(v2, Path::new("q")),
            Err(StorageError::UnknownDataVersion { version: 2, .. })
        ));
        for bad in [
            "",
            "{}",
            r#"{"data_version":1}"#,
            r#"{"leaderEpoch":-4,"data_version":1}"#,
            r#"{"leaderEpoch":"x","data_version":1}"#,
        ] {
            assert!(ElectionState::from_json(bad, Path::new("q")).is_err(), "{bad}");
        }
    }

    /// The contract every store keeps, with `reopen` standing for a restart of the process.
    fn store_contract<S: QuorumStateStore>(mut store: S, reopen: impl Fn(S) -> S) {
        assert_eq!(store.read().unwrap(), None, "a new store holds nothing");
        let states = [
            ElectionState { epoch: LeaderEpoch(1), leader_id: None, voted_key: Some(ReplicaKey::of(1)) },
            ElectionState { epoch: LeaderEpoch(1), leader_id: Some(NodeId(1)), voted_key: Some(ReplicaKey::of(1)) },
            ElectionState {
                epoch: LeaderEpoch(7),
                leader_id: None,
                voted_key: Some(ReplicaKey::with_directory(2, DirectoryId([5; 16]))),
            },
        ];
        for state in states {
            store.write(&state).unwrap();
            assert_eq!(store.read().unwrap(), Some(state), "read back at once");
            store = reopen(store);
            assert_eq!(store.read().unwrap(), Some(state), "and after a restart");
        }
    }

    #[test]
    fn the_memory_store_keeps_the_contract() {
        store_contract(MemoryQuorumStateStore::new(), |s| s);
    }

    #[test]
    fn the_file_store_keeps_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        store_contract(FileQuorumStateStore::new(&path).unwrap(), move |_| FileQuorumStateStore::new(&path).unwrap());
    }

    #[test]
    fn the_file_store_replaces_its_file_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileQuorumStateStore::new(dir.path()).unwrap();
        assert_eq!(store.read().unwrap(), None);
        let first = ElectionState { epoch: LeaderEpoch(1), leader_id: None, voted_key: Some(ReplicaKey::of(1)) };
        store.write(&first).unwrap();
        let second = ElectionState { epoch: LeaderEpoch(2), leader_id: Some(NodeId(3)), voted_key: None };
        store.write(&second).unwrap();
        assert_eq!(FileQuorumStateStore::new(dir.path()).unwrap().read().unwrap(), Some(second));
        assert!(!dir.path().join("quorum-state.tmp").exists());
        std::fs::write(store.path(), "").unwrap();
        assert!(store.read().is_err(), "an empty file is corrupt, not absent");
    }
}
