//! The broker's data directory: `meta.properties`, the `.lock`, partition directories and the
//! offset checkpoints (Kafka's `LogManager` file handling).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use fjord_types::TopicPartition;

use crate::error::{Error, Result};

/// The name of a partition's directory: `<topic>-<partition>`.
pub(crate) fn partition_dir(data_dir: &Path, tp: &TopicPartition) -> PathBuf {
    data_dir.join(format!("{}-{}", tp.topic, tp.partition))
}

/// Takes the data directory's `.lock` so that no second broker opens it.
pub(crate) fn lock(data_dir: &Path) -> Result<File> {
    std::fs::create_dir_all(data_dir).map_err(Error::io(data_dir))?;
    let path = data_dir.join(".lock");
    let file = File::create(&path).map_err(Error::io(&path))?;
    if file.try_lock().is_err() {
        return Err(Error::DataDir(format!(
            "{} is locked: another broker is using this log directory",
            data_dir.display()
        )));
    }
    Ok(file)
}

/// Kafka-style 22-character URL-safe base64 of 16 random bytes (cluster and directory ids).
pub fn random_base64_id() -> String {
    fjord_types::TopicId(*uuid::Uuid::new_v4().as_bytes()).to_string()
}

/// Whether `id` can be a cluster id: a Uuid in Kafka's printed form (22 characters of URL-safe
/// base64).
pub fn is_valid_cluster_id(id: &str) -> bool {
    id.parse::<fjord_quorum::DirectoryId>().is_ok()
}

/// What `meta.properties` says a data directory is (Kafka's `MetaProperties`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    /// The cluster it belongs to.
    pub cluster_id: String,
    /// The node it belongs to.
    pub node_id: i32,
    /// This directory's own id (KIP-853's voter key uses it).
    pub directory_id: String,
}

/// The cluster id a node formats its empty directory with when none is given: derived from the
/// voters, so every node of a cluster configured with the same `controller.quorum.voters`
/// starts with the same id. `fjord storage format --cluster-id` pins another.
pub fn derived_cluster_id(voters: &str) -> String {
    let hash = xxhash_rust::xxh3::xxh3_128(format!("fjord-cluster:{voters}").as_bytes());
    fjord_types::TopicId(hash.to_be_bytes()).to_string()
}

/// Reads `meta.properties`, refusing a directory that belongs to another node.
pub fn read_meta_properties(data_dir: &Path) -> Result<Option<MetaProperties>> {
    let path = data_dir.join("meta.properties");
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(None) };
    let props = crate::properties::parse(&text);
    let invalid = |what: &str| Error::DataDir(format!("{} lacks {what}", path.display()));
    let node_id = props.get("node.id").and_then(|v| v.parse().ok()).ok_or_else(|| invalid("node.id"))?;
    let cluster_id = props.get("cluster.id").cloned().ok_or_else(|| invalid("cluster.id"))?;
    // Directories written before directory ids get one on their next format only.
    let directory_id = props.get("directory.id").cloned().unwrap_or_default();
    Ok(Some(MetaProperties { cluster_id, node_id, directory_id }))
}

/// Writes `meta.properties` (temp file, fsync, rename, fsync of the directory), making the
/// directory if needed. Refuses to change an existing one's cluster or node.
pub fn format(data_dir: &Path, node_id: i32, cluster_id: &str) -> Result<MetaProperties> {
    std::fs::create_dir_all(data_dir).map_err(Error::io(data_dir))?;
    if let Some(existing) = read_meta_properties(data_dir)? {
        if existing.cluster_id == cluster_id && existing.node_id == node_id {
            return Ok(existing);
        }
        return Err(Error::DataDir(format!(
            "{} is already formatted for cluster {} and node {}",
            data_dir.display(),
            existing.cluster_id,
            existing.node_id
        )));
    }
    let meta = MetaProperties { cluster_id: cluster_id.to_owned(), node_id, directory_id: random_base64_id() };
    let text = format!(
        "#\n#Written by Fjord\nversion=1\ncluster.id={}\nnode.id={node_id}\ndirectory.id={}\n",
        meta.cluster_id, meta.directory_id
    );
    let path = data_dir.join("meta.properties");
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        File::open(data_dir)?.sync_all()
    };
    write().map_err(Error::io(&path))?;
    Ok(meta)
}

/// The directory's identity: read, or formatted now with `new_cluster_id` on first start.
/// Refuses a directory that belongs to another node.
pub(crate) fn meta_properties(data_dir: &Path, node_id: i32, new_cluster_id: &str) -> Result<MetaProperties> {
    match read_meta_properties(data_dir)? {
        Some(meta) if meta.node_id != node_id => Err(Error::DataDir(format!(
            "{} belongs to node.id {}, but this node is node.id {node_id}",
            data_dir.display(),
            meta.node_id
        ))),
        Some(meta) => Ok(meta),
        None => format(data_dir, node_id, new_cluster_id),
    }
}

/// Renames a deleted partition's directory `<dir>.<id>-delete`, as Kafka does, and removes it
/// in the background. Reads in flight keep their open files.
pub(crate) fn delete_partition_dir(dir: &Path) {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let doomed = dir.with_file_name(format!("{name}.{suffix}-delete"));
    match std::fs::rename(dir, &doomed) {
        Ok(()) => {
            std::thread::spawn(move || {
                if let Err(e) = std::fs::remove_dir_all(&doomed) {
                    tracing::warn!(dir = %doomed.display(), error = %e, "cannot remove deleted partition directory");
                }
            });
        }
        Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cannot rename deleted partition directory"),
    }
}

/// Removes directories left `*-delete` by a deletion a crash interrupted.
pub(crate) fn remove_deleted_dirs(data_dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(data_dir).map_err(Error::io(data_dir))?;
    for entry in entries {
        let entry = entry.map_err(Error::io(data_dir))?;
        if entry.file_name().to_string_lossy().ends_with("-delete") && entry.path().is_dir() {
            std::fs::remove_dir_all(entry.path()).map_err(Error::io(entry.path()))?;
        }
    }
    Ok(())
}
