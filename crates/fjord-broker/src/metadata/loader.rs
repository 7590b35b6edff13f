//! The observer path (Kafka's `MetadataLoader` and its publishers): each committed batch (or
//! loaded snapshot) has become a new image and a delta on the quorum's thread; here the
//! publishers react to the delta, then the image is published, with the offset it contains, to
//! everyone who reads metadata.
//!
//! Every broker-local reaction to metadata happens here, by a publisher applying a delta —
//! partitions opened, led, followed or deleted, coordinators loaded — never as a side effect
//! of the request that asked for the change. The loader runs on a thread of its own, since
//! opening or deleting partitions touches the disk.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use fjord_metadata::{MetadataDelta, MetadataImage};
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

    /// The metadata log offset the published image has reached.
    pub(crate) fn offset(&self) -> Offset {
        *self.offset.borrow()
    }

    /// Waits until the published image contains `offset`. False if the loader stopped first.
    pub(crate) async fn wait_for(&self, offset: Offset) -> bool {
        self.offset.clone().wait_for(|published| *published >= offset).await.is_ok()
    }
}

/// A committed change of the metadata: the image after it, what changed, and the metadata
/// log offset it takes the image to.
#[derive(Debug)]
pub(crate) struct Update {
    pub(crate) image: Arc<MetadataImage>,
    pub(crate) delta: MetadataDelta,
    pub(crate) offset: fjord_types::Offset,
}

/// The running loader: where the quorum sends committed updates.
#[derive(Debug)]
pub(crate) struct Loader {
    pub(crate) committed: SyncSender<Update>,
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
    updates: Receiver<Update>,
    image: Arc<RwLock<Arc<MetadataImage>>>,
    offset: watch::Sender<Offset>,
    mut publishers: Vec<Box<dyn MetadataPublisher>>,
) {
    for Update { image: next, delta, offset: at } in updates {
        if !delta.is_empty() {
            for publisher in &mut publishers {
                let started = std::time::Instant::now();
                publisher.publish(&delta, &next);
                if started.elapsed() > SLOW_PUBLISH {
                    let elapsed_ms = started.elapsed().as_millis() as u64;
                    tracing::warn!(publisher = publisher.name(), offset = at.0, elapsed_ms, "slow metadata publisher");
                }
            }
        }
        *image.write() = next;
        offset.send_replace(at);
    }
}
