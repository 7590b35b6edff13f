//! Topic-level configs: names, types, defaults and the broker properties they default from
//! (Kafka's `LogConfig`/`TopicConfig`).

use crate::error::ControllerError;

/// A config value's type, as DescribeConfigs v3+ reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    /// `true`/`false`.
    Boolean,
    /// A string from a fixed set, or free text.
    String,
    /// A 32-bit integer.
    Int,
    /// A 16-bit integer.
    Short,
    /// A 64-bit integer.
    Long,
    /// A floating-point number.
    Double,
    /// A comma-separated list.
    List,
}

impl ConfigType {
    /// The code DescribeConfigs uses (Kafka's `ConfigType`).
    pub fn code(self) -> i8 {
        match self {
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Short => 4,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
        }
    }
}

/// One topic config.
#[derive(Debug, Clone, Copy)]
pub struct TopicConfigDef {
    /// The topic-level name.
    pub name: &'static str,
    /// The broker property it defaults from (its "synonym").
    pub broker_name: &'static str,
    /// Kafka's default.
    pub default: &'static str,
    /// The type.
    pub ty: ConfigType,
    /// The smallest accepted number, for numeric types.
    pub min: Option<f64>,
    /// The accepted values, for enumerations and lists.
    pub one_of: &'static [&'static str],
    /// One line of documentation.
    pub doc: &'static str,
}

const NONE: &[&str] = &[];

macro_rules! def {
    ($name:expr, $broker:expr, $default:expr, $ty:ident, $min:expr, $one_of:expr, $doc:expr) => {
        TopicConfigDef {
            name: $name,
            broker_name: $broker,
            default: $default,
            ty: ConfigType::$ty,
            min: $min,
            one_of: $one_of,
            doc: $doc,
        }
    };
}

/// Every topic config Fjord accepts, with Kafka 4.x's defaults.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def!(
        "cleanup.policy",
        "log.cleanup.policy",
        "delete",
        List,
        None,
        &["delete", "compact"],
        "Retention policy: delete old segments, compact to the latest value per key, or both."
    ),
    def!(
        "compression.type",
        "compression.type",
        "producer",
        String,
        None,
        &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"],
        "Final compression of the topic; 'producer' keeps what the producer sent."
    ),
    def!(
        "delete.retention.ms",
        "log.cleaner.delete.retention.ms",
        "86400000",
        Long,
        Some(0.0),
        NONE,
        "How long tombstones are kept on compacted topics."
    ),
    def!(
        "file.delete.delay.ms",
        "log.segment.delete.delay.ms",
        "60000",
        Long,
        Some(0.0),
        NONE,
        "Time to wait before deleting a file from the filesystem."
    ),
    def!(
        "flush.messages",
        "log.flush.interval.messages",
        "9223372036854775807",
        Long,
        Some(1.0),
        NONE,
        "Force an fsync after this many records."
    ),
    def!(
        "flush.ms",
        "log.flush.interval.ms",
        "9223372036854775807",
        Long,
        Some(0.0),
        NONE,
        "Force an fsync after this much time."
    ),
    def!(
        "index.interval.bytes",
        "log.index.interval.bytes",
        "4096",
        Int,
        Some(0.0),
        NONE,
        "Log bytes between offset index entries."
    ),
    def!(
        "max.compaction.lag.ms",
        "log.cleaner.max.compaction.lag.ms",
        "9223372036854775807",
        Long,
        Some(1.0),
        NONE,
        "The longest a record stays uncompacted."
    ),
    def!(
        "max.message.bytes",
        "message.max.bytes",
        "1048588",
        Int,
        Some(0.0),
        NONE,
        "The largest record batch accepted."
    ),
    def!(
        "message.timestamp.after.max.ms",
        "log.message.timestamp.after.max.ms",
        "3600000",
        Long,
        Some(0.0),
        NONE,
        "How far in the future a CreateTime timestamp may be."
    ),
    def!(
        "message.timestamp.before.max.ms",
        "log.message.timestamp.before.max.ms",
        "9223372036854775807",
        Long,
        Some(0.0),
        NONE,
        "How far in the past a CreateTime timestamp may be."
    ),
    def!(
        "message.timestamp.type",
        "log.message.timestamp.type",
        "CreateTime",
        String,
        None,
        &["CreateTime", "LogAppendTime"],
        "Whether record timestamps are the producer's or the broker's."
    ),
    def!(
        "min.cleanable.dirty.ratio",
        "log.cleaner.min.cleanable.ratio",
        "0.5",
        Double,
        Some(0.0),
        NONE,
        "Dirty share of the log above which it is cleaned."
    ),
    def!(
        "min.compaction.lag.ms",
        "log.cleaner.min.compaction.lag.ms",
        "0",
        Long,
        Some(0.0),
        NONE,
        "The shortest a record stays uncompacted."
    ),
    def!(
        "min.insync.replicas",
        "min.insync.replicas",
        "1",
        Int,
        Some(1.0),
        NONE,
        "In-sync replicas required for acks=all."
    ),
    def!("preallocate", "log.preallocate", "false", Boolean, None, NONE, "Preallocate segment files."),
    def!(
        "retention.bytes",
        "log.retention.bytes",
        "-1",
        Long,
        None,
        NONE,
        "Largest size of a partition before old segments go; -1 for no limit."
    ),
    def!(
        "retention.ms",
        "log.retention.ms",
        "604800000",
        Long,
        Some(-1.0),
        NONE,
        "How long records are kept; -1 for ever."
    ),
    def!("segment.bytes", "log.segment.bytes", "1073741824", Int, Some(14.0), NONE, "Segment file size."),
    def!(
        "segment.index.bytes",
        "log.index.size.max.bytes",
        "10485760",
        Int,
        Some(4.0),
        NONE,
        "Preallocated size of each index file."
    ),
    def!(
        "segment.jitter.ms",
        "log.roll.jitter.ms",
        "0",
        Long,
        Some(0.0),
        NONE,
        "Random jitter subtracted from segment.ms."
    ),
    def!(
        "segment.ms",
        "log.roll.ms",
        "604800000",
        Long,
        Some(1.0),
        NONE,
        "Roll a segment after this long even if not full."
    ),
    def!(
        "unclean.leader.election.enable",
        "unclean.leader.election.enable",
        "false",
        Boolean,
        None,
        NONE,
        "Allow out-of-sync replicas to become leader."
    ),
];

/// The definition of `name`, if it is a topic config.
pub fn definition(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks a topic config value, with Kafka's messages.
pub fn validate(name: &str, value: &str) -> Result<(), ControllerError> {
    let Some(def) = definition(name) else {
        return Err(ControllerError::InvalidConfig(format!("Unknown topic config name: {name}")));
    };
    let invalid = |why: &str| {
        Err(ControllerError::InvalidConfig(format!("Invalid value {value} for configuration {name}: {why}")))
    };
    let trimmed = value.trim();
    let number = match def.ty {
        ConfigType::Int => match trimmed.parse::<i32>() {
            Ok(v) => Some(f64::from(v)),
            Err(_) => return invalid("Not a number of type INT"),
        },
        ConfigType::Short => match trimmed.parse::<i16>() {
            Ok(v) => Some(f64::from(v)),
            Err(_) => return invalid("Not a number of type SHORT"),
        },
        ConfigType::Long => match trimmed.parse::<i64>() {
            Ok(v) => Some(v as f64),
            Err(_) => return invalid("Not a number of type LONG"),
        },
        ConfigType::Double => match trimmed.parse::<f64>() {
            Ok(v) if v.is_finite() => Some(v),
            _ => return invalid("Not a number of type DOUBLE"),
        },
        ConfigType::Boolean => {
            if !trimmed.eq_ignore_ascii_case("true") && !trimmed.eq_ignore_ascii_case("false") {
                return invalid("Expected value to be either true or false");
            }
            None
        }
        ConfigType::String => {
            if !def.one_of.is_empty() && !def.one_of.contains(&trimmed) {
                return invalid(&format!("String must be one of: {}", def.one_of.join(", ")));
            }
            None
        }
        ConfigType::List => {
            let items: Vec<&str> = trimmed.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
            if items.is_empty() || items.iter().any(|i| !def.one_of.contains(i)) {
                return invalid(&format!("Invalid value; valid values are {}", def.one_of.join(", ")));
            }
            None
        }
    };
    if let (Some(number), Some(min)) = (number, def.min)
        && number < min
    {
        return invalid(&format!("Value must be at least {min}"));
    }
    if name == "min.cleanable.dirty.ratio" && number.is_some_and(|v| v > 1.0) {
        return invalid("Value must be no more than 1");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_by_type() {
        assert!(validate("retention.ms", "1000").is_ok());
        assert!(validate("retention.ms", "-1").is_ok());
        assert!(validate("retention.ms", "-2").is_err());
        assert!(validate("retention.ms", "soon").is_err());
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        assert!(validate("cleanup.policy", "shred").is_err());
        assert!(validate("message.timestamp.type", "LogAppendTime").is_ok());
        assert!(validate("unclean.leader.election.enable", "yes").is_err());
        assert!(validate("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(
            matches!(validate("no.such.config", "1"), Err(ControllerError::InvalidConfig(m)) if m.contains("Unknown"))
        );
    }
}
