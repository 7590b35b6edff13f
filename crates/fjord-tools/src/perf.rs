//! `fjord perf produce` and `fjord perf consume`: kafka-producer-perf-test.sh and
//! kafka-consumer-perf-test.sh, over fjord-client.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use fjord_client::{Consumer, ConsumerConfig, Delivery, Message, Producer, ProducerConfig, StartOffset};

use crate::args::{PerfConsumeArgs, PerfProduceArgs};
use crate::console::producer_config;

/// The shortest sleep the rate limiter takes.
const MIN_SLEEP: Duration = Duration::from_millis(2);

/// At most this many latencies are kept for percentiles; beyond it, every n-th record is
/// sampled, as kafka-producer-perf-test does.
const MAX_SAMPLES: u64 = 500_000;

/// Latency statistics over a run and over the current reporting window.
struct Stats {
    start: Instant,
    sampling: u64,
    samples: Vec<u32>,
    count: u64,
    bytes: u64,
    latency_sum_us: u128,
    latency_max_us: u64,
    window_start: Instant,
    window_count: u64,
    window_bytes: u64,
    window_latency_sum_us: u128,
    window_latency_max_us: u64,
    record_size: usize,
}

impl Stats {
    fn new(num_records: u64, record_size: usize) -> Stats {
        let now = Instant::now();
        Stats {
            start: now,
            sampling: num_records.div_ceil(MAX_SAMPLES).max(1),
            samples: Vec::with_capacity(num_records.min(MAX_SAMPLES) as usize),
            count: 0,
            bytes: 0,
            latency_sum_us: 0,
            latency_max_us: 0,
            window_start: now,
            window_count: 0,
            window_bytes: 0,
            window_latency_sum_us: 0,
            window_latency_max_us: 0,
            record_size,
        }
    }

    fn record(&mut self, latency: Duration) {
        let us = latency.as_micros() as u64;
        if self.count.is_multiple_of(self.sampling) {
            self.samples.push(u32::try_from(us).unwrap_or(u32::MAX));
        }
        self.count += 1;
        self.bytes += self.record_size as u64;
        self.latency_sum_us += u128::from(us);
        self.latency_max_us = self.latency_max_us.max(us);
        self.window_count += 1;
        self.window_bytes += self.record_size as u64;
        self.window_latency_sum_us += u128::from(us);
        self.window_latency_max_us = self.window_latency_max_us.max(us);
    }

    /// Prints the window's line and starts a new window.
    fn report_window(&mut self) {
        let elapsed = self.window_start.elapsed().as_secs_f64();
        let avg =
            if self.window_count == 0 { 0.0 } else { self.window_latency_sum_us as f64 / self.window_count as f64 };
        println!(
            "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.1} ms avg latency, {:.1} ms max latency.",
            self.window_count,
            self.window_count as f64 / elapsed,
            self.window_bytes as f64 / elapsed / (1024.0 * 1024.0),
            avg / 1000.0,
            self.window_latency_max_us as f64 / 1000.0,
        );
        self.window_start = Instant::now();
        self.window_count = 0;
        self.window_bytes = 0;
        self.window_latency_sum_us = 0;
        self.window_latency_max_us = 0;
    }

    fn report_total(&mut self) {
        let elapsed = self.start.elapsed().as_secs_f64();
        self.samples.sort_unstable();
        let percentile = |p: f64| -> f64 {
            if self.samples.is_empty() {
                return 0.0;
            }
            let index = ((p * self.samples.len() as f64) as usize).min(self.samples.len() - 1);
            f64::from(self.samples[index]) / 1000.0
        };
        let avg = if self.count == 0 { 0.0 } else { self.latency_sum_us as f64 / self.count as f64 };
        println!(
            "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency, \
             {:.2} ms 50th, {:.2} ms 95th, {:.2} ms 99th, {:.2} ms 99.9th.",
            self.count,
            self.count as f64 / elapsed,
            self.bytes as f64 / elapsed / (1024.0 * 1024.0),
            avg / 1000.0,
            self.latency_max_us as f64 / 1000.0,
            percentile(0.5),
            percentile(0.95),
            percentile(0.99),
            percentile(0.999),
        );
    }
}

/// A payload of `size` uppercase letters, as kafka-producer-perf-test makes one.
fn payload(size: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b'A' + (state % 26) as u8
        })
        .collect()
}

/// `fjord perf produce`.
pub(crate) async fn produce(options: PerfProduceArgs) -> Result<()> {
    if options.num_records == 0 {
        bail!("--num-records must be positive");
    }
    let config =
        ProducerConfig { record_send_times: true, ..producer_config(&options.producer, "fjord-producer-perf")? };
    let mut producer = Producer::connect(&options.bootstrap_server, config).await?;
    let value = payload(options.record_size);
    let message = Message::new(&options.topic, &value);
    let mut stats = Stats::new(options.num_records, options.record_size);
    let interval = Duration::from_millis(options.reporting_interval.max(1));
    let mut failures = 0u64;
    let mut first_error = None;
    let mut absorb = |deliveries: Vec<Delivery>, stats: &mut Stats| {
        for delivery in deliveries {
            match delivery.result {
                Ok(_) => {
                    for sent in &delivery.send_times {
                        stats.record(delivery.completed.saturating_duration_since(*sent));
                    }
                }
                Err(e) => {
                    failures += delivery.records as u64;
                    first_error.get_or_insert(e);
                }
            }
        }
    };
    for i in 0..options.num_records {
        if options.throughput > 0.0 {
            // As Kafka's throttler: sleep only when ahead by more than a timer tick, so a high
            // rate is not capped by sleep granularity.
            let due = stats.start + Duration::from_secs_f64(i as f64 / options.throughput);
            if due > Instant::now() + MIN_SLEEP {
                producer.poll().await?;
                tokio::time::sleep_until(due.into()).await;
            }
        }
        producer.send(&message).await?;
        absorb(producer.take_deliveries(), &mut stats);
        if stats.window_start.elapsed() >= interval {
            stats.report_window();
        }
    }
    let rest = producer.flush().await?;
    absorb(rest, &mut stats);
    stats.report_total();
    if let Some(e) = first_error {
        bail!("{failures} records failed; the first: {e}");
    }
    Ok(())
}

/// `fjord perf consume`: reads `--messages` records from the start of every partition (or the
/// group's offsets) and prints kafka-consumer-perf-test's summary.
pub(crate) async fn consume(options: PerfConsumeArgs) -> Result<()> {
    let config = ConsumerConfig {
        client_id: "fjord-consumer-perf".into(),
        group_id: options.group.clone(),
        auto_offset_reset: fjord_client::OffsetReset::Earliest,
        fetch_max_wait: Duration::from_millis(options.fetch_max_wait_ms),
        ..ConsumerConfig::default()
    };
    let start_wall = std::time::SystemTime::now();
    let start = Instant::now();
    let mut consumer = Consumer::connect(&options.bootstrap_server, config).await?;
    if options.group.is_some() {
        consumer.subscribe(&[&options.topic]).await?;
    } else {
        let partitions = consumer.partitions_of(&options.topic).await?;
        consumer.assign(&partitions, StartOffset::Earliest).await?;
    }
    let joined = start.elapsed();
    let fetch_start = Instant::now();
    let mut records = 0u64;
    let mut bytes = 0u64;
    let mut last_record = Instant::now();
    let idle = Duration::from_millis(options.timeout_ms);
    while records < options.messages {
        let round = consumer
            .poll(|r| {
                records += 1;
                bytes += r.record.value().map_or(0, <[u8]>::len) as u64 + r.record.key().map_or(0, <[u8]>::len) as u64;
                records < options.messages
            })
            .await?;
        if round > 0 {
            last_record = Instant::now();
        } else if last_record.elapsed() >= idle {
            eprintln!(
                "WARNING: Exiting before consuming the expected number of messages: timeout ({} ms) exceeded.",
                options.timeout_ms
            );
            break;
        }
    }
    let fetch_time = fetch_start.elapsed().as_secs_f64();
    let total = start.elapsed().as_secs_f64();
    consumer.close().await?;
    let mb = bytes as f64 / (1024.0 * 1024.0);
    let ms = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    println!(
        "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, \
         fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec"
    );
    println!(
        "{}, {}, {:.4}, {:.4}, {}, {:.4}, {}, {}, {:.4}, {:.4}",
        ms(start_wall),
        ms(std::time::SystemTime::now()),
        mb,
        mb / total,
        records,
        records as f64 / total,
        joined.as_millis(),
        (fetch_time * 1000.0) as u64,
        mb / fetch_time,
        records as f64 / fetch_time,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_letters_of_the_asked_size() {
        let p = payload(1000);
        assert_eq!(p.len(), 1000);
        assert!(p.iter().all(u8::is_ascii_uppercase));
        assert!(p.iter().any(|&b| b != p[0]), "not one repeated letter");
    }
}
