//! Newtypes for the numbers Kafka passes around.

use std::fmt;
use std::str::FromStr;

macro_rules! newtype {
    ($(#[$doc:meta])* $name:ident($inner:ty), none = $none:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub $inner);

        impl $name {
            /// Kafka's "absent" value for this quantity on the wire.
            pub const NONE: $name = $name($none);

            /// The raw value, as it goes on the wire.
            #[inline]
            pub const fn get(self) -> $inner {
                self.0
            }

            /// Whether this is Kafka's "absent" value.
            #[inline]
            pub const fn is_none(self) -> bool {
                self.0 == $none
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl From<$inner> for $name {
            #[inline]
            fn from(value: $inner) -> Self {
                $name(value)
            }
        }

        impl From<$name> for $inner {
            #[inline]
            fn from(value: $name) -> Self {
                value.0
            }
        }
    };
}

newtype!(
    /// A record's position in a partition: assigned by the leader, previous + 1, never reused.
    Offset(i64), none = -1
);
newtype!(
    /// The epoch of a partition's leadership; bumped by the controller at each leader change.
    LeaderEpoch(i32), none = -1
);
newtype!(
    /// A broker's `node.id`.
    BrokerId(i32), none = -1
);
newtype!(
    /// The id an idempotent or transactional producer gets from InitProducerId.
    ProducerId(i64), none = -1
);
newtype!(
    /// The epoch of a producer id; bumped to fence a zombie producer.
    ProducerEpoch(i16), none = -1
);
newtype!(
    /// Milliseconds since the Unix epoch, as Kafka stores record timestamps.
    Timestamp(i64), none = -1
);

impl Offset {
    /// The offset `delta` records after this one.
    #[inline]
    pub const fn plus(self, delta: i64) -> Offset {
        Offset(self.0 + delta)
    }

    /// The number of offsets from `earlier` up to this one.
    #[inline]
    pub const fn since(self, earlier: Offset) -> i64 {
        self.0 - earlier.0
    }
}

impl Timestamp {
    /// ListOffsets' sentinel for "the next offset to be written".
    pub const LATEST: Timestamp = Timestamp(-1);
    /// ListOffsets' sentinel for "the log start offset".
    pub const EARLIEST: Timestamp = Timestamp(-2);
    /// ListOffsets' sentinel for "the record with the largest timestamp" (KIP-734).
    pub const MAX_TIMESTAMP: Timestamp = Timestamp(-3);
}

/// A topic's 128-bit id (KIP-516), unique over the cluster's lifetime, so a topic deleted and
/// re-created under the same name is a different topic.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TopicId(pub [u8; 16]);

impl TopicId {
    /// The all-zero id Kafka uses for "no id".
    pub const ZERO: TopicId = TopicId([0; 16]);
}

impl fmt::Debug for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicId({self})")
    }
}

impl fmt::Display for TopicId {
    /// Kafka prints topic ids as URL-safe base64 without padding (22 characters).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut bits = 0u32;
        let mut count = 0;
        for &byte in &self.0 {
            bits = (bits << 8) | u32::from(byte);
            count += 8;
            while count >= 6 {
                count -= 6;
                write!(f, "{}", ALPHABET[((bits >> count) & 63) as usize] as char)?;
            }
        }
        if count > 0 {
            write!(f, "{}", ALPHABET[((bits << (6 - count)) & 63) as usize] as char)?;
        }
        Ok(())
    }
}

/// A topic name and a partition number, printed as Kafka prints it: `name-partition`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct TopicPartition {
    /// The topic's name.
    pub topic: String,
    /// The partition's index within the topic.
    pub partition: i32,
}

impl TopicPartition {
    /// A topic partition from its parts.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition { topic: topic.into(), partition }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// A string that is not `topic-partition`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPartitionParseError(pub String);

impl fmt::Display for TopicPartitionParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not of the form topic-partition", self.0)
    }
}

impl std::error::Error for TopicPartitionParseError {}

impl FromStr for TopicPartition {
    type Err = TopicPartitionParseError;

    /// Parses a partition directory name such as `orders-3` (the topic may itself contain `-`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let error = || TopicPartitionParseError(s.to_owned());
        let (topic, partition) = s.rsplit_once('-').ok_or_else(error)?;
        if topic.is_empty() || partition.starts_with('+') {
            return Err(error());
        }
        let partition: i32 = partition.parse().map_err(|_| error())?;
        if partition < 0 {
            return Err(error());
        }
        Ok(TopicPartition::new(topic, partition))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_partition_round_trips_through_its_directory_name() {
        let tp = TopicPartition::new("my-topic.v2", 12);
        assert_eq!(tp.to_string(), "my-topic.v2-12");
        assert_eq!("my-topic.v2-12".parse::<TopicPartition>().unwrap(), tp);
    }

    #[test]
    fn topic_partition_rejects_names_without_a_partition() {
        for bad in ["topic", "-1", "topic-", "topic-x", "topic-+1"] {
            assert!(bad.parse::<TopicPartition>().is_err(), "{bad}");
        }
    }

    #[test]
    fn topic_ids_print_as_kafka_does() {
        assert_eq!(TopicId::ZERO.to_string(), "AAAAAAAAAAAAAAAAAAAAAA");
        let id = TopicId([0xff; 16]);
        assert_eq!(id.to_string(), "_____________________w");
    }

    #[test]
    fn offsets_count_forward() {
        assert_eq!(Offset(10).plus(5), Offset(15));
        assert_eq!(Offset(15).since(Offset(10)), 5);
        assert!(Offset::NONE.is_none());
    }
}
