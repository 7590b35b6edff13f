//! Fjord's tests that need more than one process: a real process killed with SIGKILL, and
//! (as the broker lands) clusters on loopback and real Kafka clients.
//!
//! The helper programs live in `src/bin`; the tests in `tests/`. Shared test vocabulary lives
//! here.

#![warn(missing_docs)]

/// The value the log writer stores for sequence number `n`, so a reader can check that the
/// records it finds are exactly the ones written, in order.
pub fn record_value(n: u64) -> Vec<u8> {
    format!("record-{n:012}").into_bytes()
}

/// Parses a value written by [`record_value`].
pub fn parse_record_value(value: &[u8]) -> Option<u64> {
    std::str::from_utf8(value).ok()?.strip_prefix("record-")?.parse().ok()
}
