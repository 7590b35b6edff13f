//! The per-log settings, under Kafka's topic-level property names and with Kafka's defaults.

use crate::batch::TimestampType;
use crate::error::{Error, Result};

/// How a log segments, indexes and flushes itself.
///
/// Field names follow Kafka's topic configs (`segment.bytes` is `segment_bytes`); [`LogConfig::set`]
/// accepts the property names themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would grow past this (default 1 GiB).
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's records span this long (default 7 days).
    pub segment_ms: i64,
    /// `segment.index.bytes`: preallocated size of each index file (default 10 MiB).
    pub segment_index_bytes: usize,
    /// `index.interval.bytes`: log bytes between offset index entries (default 4096).
    pub index_interval_bytes: u64,
    /// `flush.messages`: fsync after this many records (default: never, rely on replication).
    pub flush_messages: i64,
    /// `flush.ms`: fsync when this long has passed since the last flush (default: never).
    pub flush_ms: i64,
    /// `max.message.bytes`: the largest batch accepted (default 1048588).
    pub max_message_bytes: usize,
    /// `message.timestamp.type`: CreateTime keeps the producer's timestamps; LogAppendTime
    /// stamps each batch with the broker's clock.
    pub message_timestamp_type: TimestampType,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            flush_messages: i64::MAX,
            flush_ms: i64::MAX,
            max_message_bytes: 1024 * 1024 + 12,
            message_timestamp_type: TimestampType::CreateTime,
        }
    }
}

/// The smallest `segment.bytes` Kafka accepts (LegacyRecord.RECORD_OVERHEAD_V0).
const MIN_SEGMENT_BYTES: u64 = 14;

impl LogConfig {
    /// Kafka property names this config understands.
    pub const PROPERTIES: &'static [&'static str] = &[
        "segment.bytes",
        "segment.ms",
        "segment.index.bytes",
        "index.interval.bytes",
        "flush.messages",
        "flush.ms",
        "max.message.bytes",
        "message.timestamp.type",
    ];

    /// Sets one property by its Kafka name, validating it as Kafka does.
    /// Returns `Ok(false)` for a name that is not a log property (the caller may know it).
    pub fn set(&mut self, name: &str, value: &str) -> Result<bool> {
        let invalid = |reason: &str| Error::InvalidConfig {
            name: name.to_owned(),
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let long = || value.trim().parse::<i64>().map_err(|_| invalid("not a number"));
        let at_least = |min: i64| {
            let v = long()?;
            if v < min { Err(invalid(&format!("must be at least {min}"))) } else { Ok(v) }
        };
        match name {
            "segment.bytes" => {
                self.segment_bytes = at_least(MIN_SEGMENT_BYTES as i64)? as u64;
                // The log file's positions are 32-bit in the offset index.
                if self.segment_bytes > i32::MAX as u64 {
                    return Err(invalid("must be at most 2147483647"));
                }
            }
            "segment.ms" => self.segment_ms = at_least(1)?,
            "segment.index.bytes" => {
                let v = at_least(4)?;
                self.segment_index_bytes = usize::try_from(v).map_err(|_| invalid("too large"))?;
            }
            "index.interval.bytes" => self.index_interval_bytes = at_least(0)? as u64,
            "flush.messages" => self.flush_messages = at_least(1)?,
            "flush.ms" => self.flush_ms = at_least(0)?,
            "max.message.bytes" => {
                self.max_message_bytes = usize::try_from(at_least(0)?).map_err(|_| invalid("too large"))?
            }
            "message.timestamp.type" => {
                self.message_timestamp_type = match value.trim() {
                    "CreateTime" => TimestampType::CreateTime,
                    "LogAppendTime" => TimestampType::LogAppendTime,
                    _ => return Err(invalid("must be CreateTime or LogAppendTime")),
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_kafkas() {
        let config = LogConfig::default();
        assert_eq!(config.segment_bytes, 1_073_741_824);
        assert_eq!(config.segment_ms, 604_800_000);
        assert_eq!(config.segment_index_bytes, 10_485_760);
        assert_eq!(config.index_interval_bytes, 4096);
        assert_eq!(config.max_message_bytes, 1_048_588);
        assert_eq!(config.flush_messages, i64::MAX);
    }

    #[test]
    fn properties_parse_by_kafka_name() {
        let mut config = LogConfig::default();
        assert!(config.set("segment.bytes", "1048576").unwrap());
        assert!(config.set("message.timestamp.type", "LogAppendTime").unwrap());
        assert!(config.set("flush.messages", "1").unwrap());
        assert_eq!(config.segment_bytes, 1_048_576);
        assert_eq!(config.message_timestamp_type, TimestampType::LogAppendTime);
        assert!(!config.set("retention.ms", "1").unwrap());
        for (name, value) in [
            ("segment.bytes", "10"),
            ("segment.bytes", "x"),
            ("flush.messages", "0"),
            ("message.timestamp.type", "Now"),
        ] {
            assert!(config.set(name, value).is_err(), "{name}={value}");
        }
    }
}
