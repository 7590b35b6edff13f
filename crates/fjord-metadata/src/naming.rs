//! Kafka's topic name rules (`org.apache.kafka.common.internals.Topic`).

use crate::error::ControllerError;

/// Topics the broker itself owns; users may not create them.
pub const INTERNAL_TOPICS: &[&str] = &["__consumer_offsets", "__transaction_state"];

/// Names no topic may take: `__cluster_metadata` is the metadata log's, and a topic of that name
/// would share its partition directory.
pub const RESERVED_TOPICS: &[&str] = &["__cluster_metadata"];

/// The longest legal name: 249 characters, so a partition directory name fits in 255 bytes.
const MAX_NAME_LENGTH: usize = 249;

/// Checks a topic name against Kafka's rules, with Kafka's messages.
pub fn validate_topic_name(name: &str) -> Result<(), ControllerError> {
    let invalid = |message: String| Err(ControllerError::InvalidTopic(message));
    if name.is_empty() {
        return invalid("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return invalid("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > MAX_NAME_LENGTH {
        return invalid(format!(
            "Topic name is illegal, it can't be longer than {MAX_NAME_LENGTH} characters, topic name: {name}"
        ));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-') {
        return invalid(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// The form under which two names collide: metrics replace '.' with '_', so Kafka refuses
/// names that differ only there.
pub(crate) fn collision_key(name: &str) -> String {
    name.replace('.', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kafkas_rules() {
        for good in ["orders", "a.b_c-D9", &"x".repeat(249)] {
            assert!(validate_topic_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", &"x".repeat(250), "bad/name", "spaced name", "ünïcode"] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
        assert_eq!(collision_key("a.b"), collision_key("a_b"));
    }
}
