//! Where a record goes: its topic's partitions and their leaders (learned from Metadata, and
//! refreshed when a leader moves), and the partition a key, an explicit choice or the sticky
//! partitioner picks.

use std::sync::Arc;
use std::time::Instant;

use super::partitioner::murmur2;
use super::{Message, Producer, Route};
use crate::Error;

impl Producer {
    /// The topic's shared name and the partition `message` goes to.
    pub(super) async fn partition_for(&mut self, message: &Message<'_>) -> Result<(Arc<str>, i32), Error> {
        if !self.routes.contains_key(message.topic) {
            self.learn_topic(message.topic).await?;
        }
        let (topic, route) = self.routes.get_key_value(message.topic).expect("learned above");
        let count = route.leaders.len();
        let partition = match (message.partition, message.key) {
            (Some(p), _) => {
                if usize::try_from(p).map_or(true, |p| p >= count) {
                    return Err(Error::kafka(3, format!("partition {}-{p} (the topic has {count})", message.topic)));
                }
                p
            }
            (None, Some(key)) => (murmur2(key) & 0x7fff_ffff) as i32 % count as i32,
            (None, None) => route.sticky as i32,
        };
        Ok((topic.clone(), partition))
    }

    /// Waits for `topic`'s metadata (creating it if the broker auto-creates topics), up to
    /// `max.block.ms`. A topic the broker still calls unknown after a few tries is an error
    /// at once: the broker does not create topics and nobody else has.
    async fn learn_topic(&mut self, topic: &str) -> Result<(), Error> {
        let deadline = Instant::now() + self.config.max_block;
        let mut unknown = 0;
        loop {
            let topics = self.client.metadata_topics(&[topic], true).await?;
            let info = topics.into_iter().find(|t| t.name == topic);
            let failure = match &info {
                None => Error::kafka(3, format!("topic {topic}")),
                Some(info) if info.error_code != 0 => Error::kafka(info.error_code, format!("topic {topic}")),
                Some(info) if info.partitions.iter().any(|p| p.leader < 0) => {
                    Error::kafka(5, format!("topic {topic} has a partition without a leader"))
                }
                Some(info) => {
                    let leaders = info.partitions.iter().map(|p| p.leader).collect();
                    let sticky = self.routes.get(topic).map_or(0, |r| r.sticky);
                    self.routes.insert(Arc::from(topic), Route { leaders, sticky });
                    return Ok(());
                }
            };
            if matches!(failure, Error::Kafka { code: 3, .. }) {
                unknown += 1;
            }
            if !failure.is_retriable() || unknown >= 3 || Instant::now() >= deadline {
                return Err(failure);
            }
            tokio::time::sleep(self.config.retry_backoff).await;
        }
    }

    /// Refreshes every known topic's leaders.
    pub(super) async fn refresh_metadata(&mut self) -> Result<(), Error> {
        let names: Vec<String> = self.routes.keys().map(|t| t.to_string()).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let topics = self.client.metadata_topics(&refs, false).await?;
        for info in topics {
            if let Some(route) = self.routes.get_mut(info.name.as_str())
                && info.error_code == 0
            {
                route.leaders = info.partitions.iter().map(|p| p.leader).collect();
            }
        }
        self.stale_metadata = false;
        Ok(())
    }
}
