//! Produces a few keyed records, then reads them back as a consumer-group member and commits.
//!
//!     cargo run -p fjord-client --example round_trip -- 127.0.0.1:9092 orders

#![allow(clippy::print_stdout, clippy::print_stderr)]

use fjord_client::{Consumer, ConsumerConfig, Header, Message, OffsetReset, Producer, ProducerConfig};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(bootstrap), Some(topic)) = (args.next(), args.next()) else {
        eprintln!("usage: round_trip <bootstrap host:port> <topic>");
        std::process::exit(2);
    };

    let mut producer = Producer::connect(&bootstrap, ProducerConfig::default()).await?;
    let headers = [Header { key: b"source", value: Some(b"round_trip") }];
    for i in 0..10 {
        let key = format!("user-{}", i % 3);
        let value = format!("event {i}");
        let message =
            Message { key: Some(key.as_bytes()), headers: &headers, ..Message::new(&topic, value.as_bytes()) };
        producer.send(&message).await?;
    }
    for delivery in producer.flush().await? {
        println!(
            "sent {} records to {}-{}: {:?}",
            delivery.records, delivery.topic, delivery.partition, delivery.result
        );
    }

    let config = ConsumerConfig {
        group_id: Some("round-trip-example".into()),
        auto_offset_reset: OffsetReset::Earliest,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::connect(&bootstrap, config).await?;
    consumer.subscribe(&[&topic]).await?;
    let mut seen = 0;
    while seen < 10 {
        seen += consumer
            .poll(|r| {
                let key = r.record.key().map(String::from_utf8_lossy);
                let value = r.record.value().map(String::from_utf8_lossy);
                println!("{}-{}@{}: {key:?} = {value:?}", r.topic, r.partition, r.record.offset().0);
                true
            })
            .await?;
    }
    consumer.close().await?; // commits and leaves the group
    Ok(())
}
