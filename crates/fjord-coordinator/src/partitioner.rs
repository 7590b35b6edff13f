//! Which `__consumer_offsets` partition owns a group (Kafka's
//! `Utils.abs(groupId.hashCode()) % offsets.topic.num.partitions`).

/// Java's `String.hashCode` over UTF-16 code units, as Kafka computes it.
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |hash, unit| hash.wrapping_mul(31).wrapping_add(i32::from(unit)))
}

/// The partition of `__consumer_offsets` that holds `group_id`'s state.
pub fn partition_for_group(group_id: &str, partitions: i32) -> i32 {
    assert!(partitions > 0, "offsets.topic.num.partitions must be positive");
    // Kafka's Utils.abs masks the sign bit rather than negating (abs(MIN_VALUE) is 0).
    (java_string_hash(group_id) & 0x7fff_ffff) % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_javas_string_hash() {
        // Values of "...".hashCode() in Java.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash("my-consumer-group"), 1_513_705_513);
        assert_eq!(partition_for_group("my-consumer-group", 50), 13);
        // A negative hash is masked, not negated.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for_group("polygenelubricants", 50), 0);
        assert!((0..50).contains(&partition_for_group("ünïcødé", 50)));
    }
}
