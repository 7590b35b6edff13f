//! The observer path (Kafka's `MetadataLoader` and its publishers): committed batches, in log
//! order, become a new image and a delta; the publishers react to the delta; then the image is
//! published, with the offset it contains, to everyone who reads metadata.
//!
//! Every broker-local reaction to metadata happens here, by a publisher applying a delta —
//! partitions opened, led, followed or deleted, coordinators loaded — never as a side effect
//! of the request that asked for the change. The loader runs on a thread of its own, since
//! opening or deleting partitions touches the disk.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use fjord_metadata::{MetadataBatch, MetadataDelta, MetadataImage};
use fjord_types::Offset;
use parking_lot::RwLock;
use tokio::sync::watch;

/// Something that reacts to metadata changes.
pub(crate) trait MetadataPublisher: Send {
    /// Its name, for the log.
    fn name(&self) -> &'static str;
    /// `image` is the state after the batch that `delta` describes.
    fn publish(&mut self, delta: &MetadataDelta, image: &MetadataImage);
}

/// A publisher slower than this is reported: metadata waits for it.
const SLOW_PUBLISH: std::time::Duration = std::time::Duration::from_secs(1);

/// Committed batches waiting for the loader.
const BATCHES_QUEUED: usize = 256;

/// The published image and how far it goes, shared by everyone who reads metadata.
#[derive(Debug, Clone)]
pub(crate) struct Published {
    image: Arc<RwLock<Arc<MetadataImage>>>,
    offset: watch::Receiver<Offset>,
}

impl Published {
    /// The newest published image.
    pub(crate) fn image(&self) -> Arc<MetadataImage> {
        Arc::clone(&self.image.read())
    }

    /// Waits until the published image contains `offset`. False if the loader stopped first.
    pub(crate) async fn wait_for(&self, offset: Offset) -> bool {
        self.offset.clone().wait_for(|published| *published >= offset).await.is_ok()
    }
}

/// The running loader: where the quorum sends committed batches.
#[derive(Debug)]
pub(crate) struct Loader {
    pub(crate) committed: SyncSender<MetadataBatch>,
    pub(crate) published: Published,
    pub(crate) thread: std::thread::JoinHandle<()>,
}

/// Starts the loader thread with `publishers`, which are called in order for every batch.
pub(crate) fn start(publishers: Vec<Box<dyn MetadataPublisher>>) -> std::io::Result<Loader> {
    let (committed, batches) = sync_channel(BATCHES_QUEUED);
    let image = Arc::new(RwLock::new(Arc::new(MetadataImage::default())));
    let (offset_tx, offset) = watch::channel(Offset::NONE);
    let shared = Arc::clone(&image);
    let thread = std::thread::Builder::new()
        .name("fjord-metadata-loader".into())
        .spawn(move || load(batches, shared, offset_tx, publishers))?;
    Ok(Loader { committed, published: Published { image, offset }, thread })
}

fn load(
    batches: Receiver<MetadataBatch>,
    image: Arc<RwLock<Arc<MetadataImage>>>,
    offset: watch::Sender<Offset>,
    mut publishers: Vec<Box<dyn MetadataPublisher>>,
) {
    let mut current = Arc::clone(&image.read());
    for batch in batches {
        let last = batch.last();
        match current.apply_batch(&batch) {
            Ok((next, delta)) => {
                for publisher in &mut publishers {
                    let started = std::time::Instant::now();
                    publisher.publish(&delta, &next);
                    if started.elapsed() > SLOW_PUBLISH {
                        let elapsed_ms = started.elapsed().as_millis() as u64;
                        tracing::warn!(
                            publisher = publisher.name(),
                            offset = last.offset.0,
                            elapsed_ms,
                            "slow metadata publisher"
                        );
                    }
                }
                current = Arc::new(next);
                *image.write() = Arc::clone(&current);
            }
            Err(e) => {
                // The controller checks every batch against its image before proposing it, so
                // this is a bug; the image stays as it was rather than take half a batch.
                tracing::error!(offset = batch.base_offset.0, error = %e, "cannot apply a committed metadata batch");
            }
        }
        offset.send_replace(last.offset);
    }
}
