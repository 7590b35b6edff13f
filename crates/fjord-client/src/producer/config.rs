//! The producer's settings.

use std::time::Duration;

use fjord_log::Compression;

/// Producer settings, with Kafka's names and defaults.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// `client.id`.
    pub client_id: String,
    /// `acks`: 0 (no answer), 1 (the leader wrote it) or -1 (all in-sync replicas have it).
    pub acks: i16,
    /// `enable.idempotence`: number records so retries neither duplicate nor reorder them.
    /// Needs `acks` -1 and at most 5 requests in flight; [`Producer::connect`](super::Producer::connect) refuses other
    /// combinations, as Kafka's producer does.
    pub enable_idempotence: bool,
    /// `batch.size`: a partition's batch is sent once it holds this many bytes.
    pub batch_size: usize,
    /// `linger.ms`: how long a batch that is not full waits for more records.
    pub linger: Duration,
    /// `compression.type`.
    pub compression: Compression,
    /// `max.in.flight.requests.per.connection`.
    pub max_in_flight: usize,
    /// `max.request.size`: the largest Produce request, and so the largest record.
    pub max_request_size: usize,
    /// `buffer.memory`: bytes of batches waiting to be sent before `send` waits.
    pub buffer_memory: usize,
    /// `request.timeout.ms`.
    pub request_timeout: Duration,
    /// `delivery.timeout.ms`: how long a batch may take, retries included.
    pub delivery_timeout: Duration,
    /// `retry.backoff.ms`.
    pub retry_backoff: Duration,
    /// `max.block.ms`: how long `send` waits for a topic to appear in metadata.
    pub max_block: Duration,
    /// Keep each record's send time in its [`Delivery`](super::Delivery), to measure latency per record.
    pub record_send_times: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            client_id: "fjord-producer".into(),
            acks: -1,
            enable_idempotence: true,
            batch_size: 16 * 1024,
            linger: Duration::from_millis(5),
            compression: Compression::None,
            max_in_flight: 5,
            max_request_size: 1024 * 1024,
            buffer_memory: 32 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            delivery_timeout: Duration::from_secs(120),
            retry_backoff: Duration::from_millis(100),
            max_block: Duration::from_secs(60),
            record_send_times: false,
        }
    }
}
