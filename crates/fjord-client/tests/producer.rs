//! fjord-client's producer against a broker whose connection breaks after a Produce request
//! reached it: the answer is lost, the producer retries, and only idempotence keeps the
//! retried batch from being written twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

mod common;

use common::{read_frame, start_broker};
use fjord_client::{Consumer, ConsumerConfig, Message, Producer, ProducerConfig, StartOffset};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// Records produced in each scenario.
const RECORDS: usize = 200;

/// A proxy in front of the broker. After forwarding the `cut_after`-th Produce request it
/// waits for the broker to write it, then closes both sides without passing the answer on.
struct Proxy {
    produce_requests: Arc<AtomicUsize>,
}

impl Proxy {
    /// Listens on `listener` and forwards to `broker`.
    fn start(listener: TcpListener, broker: std::net::SocketAddr, cut_after: usize) -> Proxy {
        let produce_requests = Arc::new(AtomicUsize::new(0));
        let counter = produce_requests.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = TcpStream::connect(broker).await.unwrap();
                tokio::spawn(relay(client, upstream, counter.clone(), cut_after));
            }
        });
        Proxy { produce_requests }
    }

    fn produce_requests(&self) -> usize {
        self.produce_requests.load(Ordering::SeqCst)
    }
}

async fn relay(client: TcpStream, upstream: TcpStream, counter: Arc<AtomicUsize>, cut_after: usize) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let cutting = Arc::new(AtomicBool::new(false));
    let cut = cutting.clone();
    let answers = tokio::spawn(async move {
        while let Some(frame) = read_frame(&mut upstream_read).await {
            if cut.load(Ordering::SeqCst) || client_write.write_all(&frame).await.is_err() {
                return;
            }
        }
    });
    while let Some(frame) = read_frame(&mut client_read).await {
        let produce = frame[4..6] == [0, 0];
        let number = if produce { counter.fetch_add(1, Ordering::SeqCst) + 1 } else { 0 };
        if number == cut_after {
            cutting.store(true, Ordering::SeqCst);
        }
        if upstream_write.write_all(&frame).await.is_err() {
            break;
        }
        if number == cut_after {
            // Long enough for the broker to append the batches; then both sides close.
            tokio::time::sleep(Duration::from_millis(300)).await;
            break;
        }
    }
    answers.abort();
}

/// The values in partition 0 of `topic`, from the start to the end.
async fn read_partition_0(bootstrap: &str, topic: &str) -> Vec<String> {
    let mut consumer = Consumer::connect(bootstrap, ConsumerConfig::default()).await.unwrap();
    consumer.assign(&[(topic.to_owned(), 0)], StartOffset::Earliest).await.unwrap();
    let mut values = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while (values.is_empty() || !consumer.caught_up()) && std::time::Instant::now() < deadline {
        consumer
            .poll(|r| {
                values.push(String::from_utf8(r.record.value().unwrap().to_vec()).unwrap());
                true
            })
            .await
            .unwrap();
    }
    values
}

/// Produces `RECORDS` records "0", "1", ... to partition 0 of `topic` through a proxy that
/// loses the answer to the second Produce request; returns the values read back.
async fn produce_through_a_lost_answer(topic: &str, enable_idempotence: bool) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let advertised = format!("PLAINTEXT://{}", listener.local_addr().unwrap());
    let server = start_broker(dir.path(), &[("advertised.listeners", advertised.as_str())]).await;
    let broker = server.local_addrs()[0];
    let proxy = Proxy::start(listener, broker, 2);
    let bootstrap = broker.to_string();

    let config = ProducerConfig {
        enable_idempotence,
        // Small batches, several requests in flight: the lost request has others behind it.
        batch_size: 512,
        linger: Duration::from_millis(1),
        retry_backoff: Duration::from_millis(20),
        // A producer stuck retrying fails within the test's time rather than after 2 minutes.
        delivery_timeout: Duration::from_secs(10),
        ..ProducerConfig::default()
    };
    let mut producer = Producer::connect(&bootstrap, config).await.unwrap();
    for i in 0..RECORDS {
        let value = i.to_string();
        producer.send(&Message { partition: Some(0), ..Message::new(topic, value.as_bytes()) }).await.unwrap();
    }
    let deliveries = producer.flush().await.unwrap();
    for delivery in &deliveries {
        assert!(delivery.result.is_ok(), "{delivery:?}");
    }
    assert_eq!(deliveries.iter().map(|d| d.records).sum::<usize>(), RECORDS);
    assert!(proxy.produce_requests() > 2, "the cut happened, and the producer went on");

    let values = read_partition_0(&bootstrap, topic).await;
    server.shutdown().await.unwrap();
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_producer_writes_a_retried_batch_once_and_in_order() {
    let values = produce_through_a_lost_answer("idempotent", true).await;
    let expected: Vec<String> = (0..RECORDS).map(|i| i.to_string()).collect();
    assert_eq!(values, expected);
}

/// The same scenario without idempotence writes the lost batch twice, so the scenario above
/// does test something.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_idempotence_the_retried_batch_is_written_twice() {
    let values = produce_through_a_lost_answer("plain", false).await;
    assert!(values.len() > RECORDS, "expected duplicates, read {} records", values.len());
    let mut unique = values.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), RECORDS, "every record arrived");
}

#[tokio::test]
async fn idempotence_refuses_settings_that_would_break_it() {
    // Checked before connecting: no broker is needed to refuse these.
    let acks_one = ProducerConfig { acks: 1, ..ProducerConfig::default() };
    let error = Producer::connect("127.0.0.1:1", acks_one).await.unwrap_err();
    assert!(matches!(error, fjord_client::Error::Config(_)), "{error}");
    let too_many = ProducerConfig { max_in_flight: 6, ..ProducerConfig::default() };
    let error = Producer::connect("127.0.0.1:1", too_many).await.unwrap_err();
    assert!(error.to_string().contains("max.in.flight.requests.per.connection"), "{error}");
}

/// A batch the broker refuses for good (MESSAGE_TOO_LARGE) leaves a gap in the partition's
/// sequences; the batches numbered after it, some already in flight, move to a new producer
/// id and are written, in order, instead of failing with OUT_OF_ORDER_SEQUENCE_NUMBER.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_does_not_take_the_following_ones_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_broker(dir.path(), &[("message.max.bytes", "2000")]).await;
    let broker = server.local_addrs()[0];
    let config = ProducerConfig {
        batch_size: 256,
        linger: Duration::from_millis(1),
        retry_backoff: Duration::from_millis(20),
        delivery_timeout: Duration::from_secs(10),
        ..ProducerConfig::default()
    };
    let bootstrap = broker.to_string();
    let mut producer = Producer::connect(&bootstrap, config).await.unwrap();
    let big = vec![b'x'; 3000];
    for i in 0..RECORDS {
        let value = i.to_string();
        producer.send(&Message { partition: Some(0), ..Message::new("gaps", value.as_bytes()) }).await.unwrap();
        if i == RECORDS / 2 {
            producer.send(&Message { partition: Some(0), ..Message::new("gaps", &big) }).await.unwrap();
        }
    }
    let deliveries = producer.flush().await.unwrap();
    let failed: Vec<_> = deliveries.iter().filter(|d| d.result.is_err()).collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].records, 1);
    assert_eq!(failed[0].result.as_ref().unwrap_err().code(), Some(10), "MESSAGE_TOO_LARGE");

    let values = read_partition_0(&bootstrap, "gaps").await;
    server.shutdown().await.unwrap();
    assert_eq!(values, (0..RECORDS).map(|i| i.to_string()).collect::<Vec<_>>());
}
