//! `fjord produce` and `fjord consume`: kafka-console-producer.sh and kafka-console-consumer.sh,
//! over fjord-client.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fjord_client::{
    Compression, ConsumedRecord, Consumer, ConsumerConfig, Header, Message, OffsetReset, Producer, ProducerConfig,
    StartOffset, TimestampType,
};
use tokio::io::AsyncBufReadExt;

use crate::args::{ConsumeArgs, ProduceArgs, ProducerArgs};

/// The producer settings of `produce` and `perf produce`: the flags, then any
/// `--producer-property`. As in Kafka, idempotence follows acks=all unless it is set.
pub(crate) fn producer_config(args: &ProducerArgs, client_id: &str) -> Result<ProducerConfig> {
    let mut config = ProducerConfig {
        client_id: client_id.to_owned(),
        acks: parse_acks(&args.acks)?,
        compression: parse_compression(&args.compression)?,
        batch_size: args.batch_size,
        linger: Duration::from_millis(args.linger_ms),
        ..ProducerConfig::default()
    };
    let mut idempotence = None;
    for property in &args.properties {
        let (key, value) =
            property.split_once('=').with_context(|| format!("--producer-property {property}: expected key=value"))?;
        let number =
            || value.parse::<u64>().with_context(|| format!("--producer-property {key}: not a number: {value}"));
        let millis = || number().map(Duration::from_millis);
        let size = || number().and_then(|n| usize::try_from(n).context("too large"));
        match key {
            "acks" => config.acks = parse_acks(value)?,
            "batch.size" => config.batch_size = size()?,
            "buffer.memory" => config.buffer_memory = size()?,
            "client.id" => config.client_id = value.to_owned(),
            "compression.type" => config.compression = parse_compression(value)?,
            "delivery.timeout.ms" => config.delivery_timeout = millis()?,
            "enable.idempotence" => {
                idempotence = Some(value.parse::<bool>().with_context(|| {
                    format!("--producer-property enable.idempotence: expected true or false, not {value}")
                })?);
            }
            "linger.ms" => config.linger = millis()?,
            "max.in.flight.requests.per.connection" => config.max_in_flight = size()?,
            "max.request.size" => config.max_request_size = size()?,
            "request.timeout.ms" => config.request_timeout = millis()?,
            "retry.backoff.ms" => config.retry_backoff = millis()?,
            other => bail!("--producer-property: unknown or unsupported producer property {other}"),
        }
    }
    config.enable_idempotence = idempotence.unwrap_or(config.acks == -1);
    Ok(config)
}

/// Parses `--acks`: all, -1, 0 or 1.
pub(crate) fn parse_acks(acks: &str) -> Result<i16> {
    match acks {
        "all" | "-1" => Ok(-1),
        "0" => Ok(0),
        "1" => Ok(1),
        other => bail!("--acks must be all, -1, 0 or 1, not {other}"),
    }
}

/// Parses `--compression` (Kafka's `compression.type` names).
pub(crate) fn parse_compression(name: &str) -> Result<Compression> {
    Ok(match name {
        "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        other => bail!("--compression must be none, gzip, snappy, lz4 or zstd, not {other}"),
    })
}

/// How stdin lines split into headers, key and value.
#[derive(Debug, Clone, Copy)]
struct LineFormat<'a> {
    /// Split each line into key and value at the first occurrence of this.
    key_separator: Option<&'a str>,
    /// Each line starts with `k1:v1,k2:v2` and a tab.
    parse_headers: bool,
    /// A value (or key) equal to this is sent as null.
    null_marker: Option<&'a str>,
}

/// One stdin line as a record's parts.
struct Line<'a> {
    headers: Vec<(&'a str, Option<&'a str>)>,
    key: Option<&'a str>,
    value: Option<&'a str>,
}

fn parse_line<'a>(line: &'a str, number: usize, format: LineFormat<'_>) -> Result<Line<'a>> {
    let null = |field: &'a str| if format.null_marker == Some(field) { None } else { Some(field) };
    let mut rest = line;
    let mut headers = Vec::new();
    if format.parse_headers {
        let (header_text, body) =
            rest.split_once('\t').with_context(|| format!("line {number}: no tab after the headers"))?;
        rest = body;
        if header_text != "NO_HEADERS" && !header_text.is_empty() {
            for pair in header_text.split(',') {
                let (k, v) =
                    pair.split_once(':').with_context(|| format!("line {number}: header {pair:?} is not key:value"))?;
                headers.push((k, null(v)));
            }
        }
    }
    let (key, value) = match format.key_separator {
        Some(separator) => {
            let (k, v) =
                rest.split_once(separator).with_context(|| format!("line {number}: no key separator {separator:?}"))?;
            (null(k), null(v))
        }
        None => (None, null(rest)),
    };
    Ok(Line { headers, key, value })
}

/// `fjord produce`: each stdin line becomes a record; exits non-zero if any failed.
pub(crate) async fn produce(options: ProduceArgs) -> Result<()> {
    let format = LineFormat {
        key_separator: options.key_separator.as_deref(),
        parse_headers: options.parse_headers,
        null_marker: options.null_marker.as_deref(),
    };
    let static_headers: Vec<(String, String)> = options
        .headers
        .iter()
        .map(|h| {
            h.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("--header {h}: expected key=value"))
        })
        .collect::<Result<_>>()?;
    let config = ProducerConfig {
        max_block: Duration::from_millis(options.max_block_ms),
        ..producer_config(&options.producer, "fjord-console-producer")?
    };
    let mut producer = Producer::connect(&options.bootstrap_server, config).await?;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut number = 0;
    let mut failed = 0usize;
    let mut sent = 0usize;
    loop {
        let wake = producer.next_wakeup();
        let line = tokio::select! {
            line = lines.next_line() => line.context("reading stdin")?,
            () = sleep_until(wake) => {
                producer.poll().await?;
                failed += report(producer.take_deliveries());
                continue;
            }
        };
        let Some(line) = line else { break };
        number += 1;
        let parsed = parse_line(&line, number, format)?;
        let mut headers: Vec<Header<'_>> =
            static_headers.iter().map(|(k, v)| Header { key: k.as_bytes(), value: Some(v.as_bytes()) }).collect();
        headers.extend(parsed.headers.iter().map(|(k, v)| Header { key: k.as_bytes(), value: v.map(str::as_bytes) }));
        let message = Message {
            topic: &options.topic,
            partition: options.partition,
            key: parsed.key.map(str::as_bytes),
            value: parsed.value.map(str::as_bytes),
            headers: &headers,
            timestamp: None,
        };
        producer.send(&message).await?;
        sent += 1;
        failed += report(producer.take_deliveries());
    }
    failed += report(producer.flush().await?);
    if failed > 0 {
        bail!("{failed} of {sent} records were not delivered");
    }
    Ok(())
}

async fn sleep_until(wake: Option<Instant>) {
    match wake {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// Prints failed deliveries; returns the number of records lost.
fn report(deliveries: Vec<fjord_client::Delivery>) -> usize {
    let mut lost = 0;
    for delivery in deliveries {
        if let Err(e) = &delivery.result {
            eprintln!("error: {} records to {}-{} failed: {e}", delivery.records, delivery.topic, delivery.partition);
            lost += delivery.records;
        }
    }
    lost
}

/// `fjord consume`: prints records as kafka-console-consumer's default formatter does.
pub(crate) async fn consume(mut options: ConsumeArgs) -> Result<()> {
    options.key_separator = unescape(&options.key_separator);
    if options.offset.is_some() && options.partition.is_none() {
        bail!("--offset needs --partition");
    }
    if options.offset.is_some() && options.group.is_some() {
        bail!("--offset cannot be used with --group (reset the group's offsets with fjord groups reset-offsets)");
    }
    if options.partition.is_some() && options.group.is_some() {
        bail!("--partition cannot be used with --group");
    }
    let start = match options.offset.as_deref() {
        Some("earliest") => StartOffset::Earliest,
        Some("latest") => StartOffset::Latest,
        Some(n) => {
            let offset: i64 =
                n.parse().with_context(|| format!("--offset {n}: expected earliest, latest or a number"))?;
            if offset < 0 {
                bail!("--offset {n}: must not be negative");
            }
            StartOffset::At(offset)
        }
        None if options.from_beginning => StartOffset::Earliest,
        None => StartOffset::Latest,
    };
    let config = ConsumerConfig {
        client_id: "fjord-console-consumer".into(),
        group_id: options.group.clone(),
        auto_offset_reset: if options.from_beginning { OffsetReset::Earliest } else { OffsetReset::Latest },
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::connect(&options.bootstrap_server, config).await?;
    match (&options.group, options.partition) {
        (Some(_), _) => consumer.subscribe(&[&options.topic]).await?,
        (None, Some(p)) => consumer.assign(&[(options.topic.clone(), p)], start).await?,
        (None, None) => {
            let partitions = consumer.partitions_of(&options.topic).await?;
            consumer.assign(&partitions, start).await?;
        }
    }
    let limit = options.max_messages.unwrap_or(u64::MAX);
    let idle_limit = options.timeout_ms.map(Duration::from_millis);
    let mut consumed = 0u64;
    let mut last_record = Instant::now();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut write_error = None;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    while consumed < limit {
        let round = tokio::select! {
            round = consumer.poll(|r| {
                if let Err(e) = print_record(&mut out, r, &options) {
                    write_error = Some(e);
                    return false;
                }
                consumed += 1;
                consumed < limit
            }) => round?,
            _ = &mut interrupted => break,
        };
        if let Some(e) = write_error.take() {
            // A closed pipe (`| head`) ends the run quietly, as it does for Kafka's tool.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                break;
            }
            return Err(e).context("writing to stdout");
        }
        out.flush().context("writing to stdout")?;
        if round > 0 {
            last_record = Instant::now();
        } else if idle_limit.is_some_and(|idle| last_record.elapsed() >= idle) {
            break;
        }
    }
    drop(out);
    consumer.close().await?;
    eprintln!("Processed a total of {consumed} messages");
    Ok(())
}

/// `\t` and `\n` in a separator argument, as the shell cannot easily pass a tab.
fn unescape(text: &str) -> String {
    text.replace("\\t", "\t").replace("\\n", "\n")
}

/// Writes one record as Kafka's `DefaultMessageFormatter` does: timestamp, partition, offset,
/// headers, key (each on request, tab-separated), then the value.
fn print_record(out: &mut impl Write, r: &ConsumedRecord<'_>, options: &ConsumeArgs) -> std::io::Result<()> {
    let record = r.record;
    if options.print_timestamp {
        let ts = record.timestamp().0;
        if ts < 0 {
            write!(out, "NO_TIMESTAMP\t")?;
        } else {
            let kind = match r.timestamp_type {
                TimestampType::CreateTime => "CreateTime",
                TimestampType::LogAppendTime => "LogAppendTime",
            };
            write!(out, "{kind}:{ts}\t")?;
        }
    }
    if options.print_partition {
        write!(out, "Partition:{}\t", r.partition)?;
    }
    if options.print_offset {
        write!(out, "Offset:{}\t", record.offset().0)?;
    }
    if options.print_headers {
        let mut any = false;
        for header in record.headers().flatten() {
            if any {
                out.write_all(b",")?;
            }
            any = true;
            out.write_all(header.key)?;
            out.write_all(b":")?;
            out.write_all(header.value.unwrap_or(b"null"))?;
        }
        if !any {
            out.write_all(b"NO_HEADERS")?;
        }
        out.write_all(b"\t")?;
    }
    if options.print_key {
        out.write_all(record.key().unwrap_or(b"null"))?;
        out.write_all(options.key_separator.as_bytes())?;
    }
    out.write_all(record.value().unwrap_or(b"null"))?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORMAT: LineFormat<'static> =
        LineFormat { key_separator: Some(":"), parse_headers: true, null_marker: Some("NULL") };

    #[test]
    fn lines_split_into_headers_key_and_value() {
        let line = parse_line("h1:v1,h2:NULL\tuser-1:created:now", 1, FORMAT).unwrap();
        assert_eq!(line.headers, vec![("h1", Some("v1")), ("h2", None)]);
        assert_eq!((line.key, line.value), (Some("user-1"), Some("created:now")));
        let tombstone = parse_line("NO_HEADERS\tuser-1:NULL", 2, FORMAT).unwrap();
        assert_eq!((tombstone.key, tombstone.value), (Some("user-1"), None));
        let error = parse_line("NO_HEADERS\tno-separator", 3, FORMAT).err().unwrap();
        assert!(error.to_string().contains("line 3"), "{error}");
    }
}
