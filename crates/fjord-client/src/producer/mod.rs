//! Producing: records gather into one batch per partition, batches go to their partition's
//! leader with several requests in flight per broker, and failures that Kafka calls retriable
//! are retried after a metadata refresh.
//!
//! With `enable.idempotence` (the default, as in Kafka since 3.0) the producer takes a
//! producer id from the cluster and numbers each partition's records, so a retried batch that
//! the broker already wrote is answered from the broker's memory instead of written twice,
//! and a partition's batches land in the order they were sent, retries included.
//!
//! The producer does no work in the background: [`Producer::send`], [`Producer::poll`] and
//! [`Producer::flush`] move batches along. A caller that may sit idle (waiting on stdin, say)
//! calls `poll` by [`Producer::next_wakeup`] so lingering batches leave on time.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use fjord_log::{BatchBuilder, Header};
use fjord_types::Timestamp;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::pipeline::Pipeline;
use crate::{Client, Error};

mod config;
mod idempotence;
mod partitioner;
mod routing;
mod settle;

pub use config::ProducerConfig;

use idempotence::Idempotence;
pub use partitioner::murmur2;

/// Produce v13 names topics by id; Fjord's client names them.
const PRODUCE_VERSION_CAP: i16 = 12;
/// A batch header plus the length prefix, the most a record can add besides its fields.
const RECORD_OVERHEAD: usize = 61 + 21;
/// The most requests in flight per connection for which a broker can still recognise every
/// retried batch: it remembers the last five batches of each producer.
const IDEMPOTENT_MAX_IN_FLIGHT: usize = 5;

/// A record to send.
#[derive(Debug, Clone, Copy, Default)]
pub struct Message<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The partition; `None` lets the producer choose (by key hash, as Kafka's default
    /// partitioner does, or a sticky partition for records without a key).
    pub partition: Option<i32>,
    /// The key.
    pub key: Option<&'a [u8]>,
    /// The value (`None` is a tombstone).
    pub value: Option<&'a [u8]>,
    /// The headers.
    pub headers: &'a [Header<'a>],
    /// The timestamp in ms since the epoch; `None` for now.
    pub timestamp: Option<i64>,
}

impl<'a> Message<'a> {
    /// A record with a value and nothing else.
    pub fn new(topic: &'a str, value: &'a [u8]) -> Message<'a> {
        Message { topic, value: Some(value), ..Message::default() }
    }
}

/// The outcome of one batch.
#[derive(Debug)]
pub struct Delivery {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The offset of the batch's first record (-1 with acks=0), or why it failed.
    pub result: Result<i64, Error>,
    /// The number of records in the batch.
    pub records: usize,
    /// When each record was sent (with [`ProducerConfig::record_send_times`]).
    pub send_times: Vec<Instant>,
    /// When the answer arrived.
    pub completed: Instant,
}

#[derive(Debug)]
struct Batch {
    topic: Arc<str>,
    partition: i32,
    /// Creation order: a partition's batches are sent, and retried, in this order.
    serial: u64,
    builder: BatchBuilder,
    encoded: Option<Bytes>,
    /// The producer id and epoch the batch was numbered under, if idempotent.
    stamp: Option<(i64, i16)>,
    /// Whether the broker may have written the batch: it went out, and no answer since said
    /// the broker refused its numbers.
    sent: bool,
    records: usize,
    created: Instant,
    send_times: Vec<Instant>,
    not_before: Option<Instant>,
}

impl Batch {
    fn size(&self) -> usize {
        self.encoded.as_ref().map_or_else(|| self.builder.uncompressed_size(), Bytes::len)
    }
}

#[derive(Debug)]
struct Route {
    /// Each partition's leader.
    leaders: Vec<i32>,
    /// The partition records without a key go to, until its batch is sent.
    sticky: usize,
}

/// A Kafka producer. See the module docs for how work moves.
///
/// ```no_run
/// # async fn demo() -> Result<(), fjord_client::Error> {
/// use fjord_client::{Message, Producer, ProducerConfig};
/// let mut producer = Producer::connect("127.0.0.1:9092", ProducerConfig::default()).await?;
/// producer.send(&Message { key: Some(b"user-1"), ..Message::new("orders", b"created") }).await?;
/// for delivery in producer.flush().await? {
///     println!("{}-{} at {:?}", delivery.topic, delivery.partition, delivery.result);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Producer {
    client: Client,
    config: ProducerConfig,
    routes: HashMap<Arc<str>, Route>,
    open: HashMap<(Arc<str>, i32), Batch>,
    ready: VecDeque<Batch>,
    ready_bytes: usize,
    pipelines: HashMap<i32, Pipeline>,
    in_flight: HashMap<i32, VecDeque<Vec<Batch>>>,
    deliveries: Vec<Delivery>,
    stale_metadata: bool,
    idempotence: Option<Idempotence>,
    next_serial: u64,
}

impl Producer {
    /// Connects to the cluster at `bootstrap` (comma-separated `host:port`s) and, with
    /// `enable.idempotence`, takes a producer id.
    ///
    /// Fails with [`Error::Config`] for idempotence without `acks` -1 or with more than 5
    /// requests in flight.
    pub async fn connect(bootstrap: &str, config: ProducerConfig) -> Result<Producer, Error> {
        if config.enable_idempotence && config.acks != -1 {
            return Err(Error::Config(format!(
                "enable.idempotence needs acks=all (-1), not {}; set enable.idempotence=false to use it",
                config.acks
            )));
        }
        if config.enable_idempotence && !(1..=IDEMPOTENT_MAX_IN_FLIGHT).contains(&config.max_in_flight) {
            return Err(Error::Config(format!(
                "enable.idempotence needs max.in.flight.requests.per.connection between 1 and \
                 {IDEMPOTENT_MAX_IN_FLIGHT}, not {}",
                config.max_in_flight
            )));
        }
        let mut client = Client::with_options(bootstrap, &config.client_id, config.request_timeout).await?;
        let idempotence =
            if config.enable_idempotence { Some(Idempotence::init(&mut client, &config).await?) } else { None };
        Ok(Producer {
            client,
            config,
            routes: HashMap::new(),
            open: HashMap::new(),
            ready: VecDeque::new(),
            ready_bytes: 0,
            pipelines: HashMap::new(),
            in_flight: HashMap::new(),
            deliveries: Vec::new(),
            stale_metadata: false,
            idempotence,
            next_serial: 0,
        })
    }

    /// The settings.
    pub fn config(&self) -> &ProducerConfig {
        &self.config
    }

    /// Adds a record to its partition's batch, sends what is ready, and waits only when more
    /// than `buffer.memory` is waiting or every connection has its maximum in flight.
    ///
    /// Fails for an unknown topic or partition, a record larger than `max.request.size`, or a
    /// broken cluster; a failed batch shows up in [`Producer::take_deliveries`] instead.
    pub async fn send(&mut self, message: &Message<'_>) -> Result<(), Error> {
        let now = Instant::now();
        let size = RECORD_OVERHEAD
            + message.key.map_or(0, <[u8]>::len)
            + message.value.map_or(0, <[u8]>::len)
            + message.headers.iter().map(|h| h.key.len() + h.value.map_or(0, <[u8]>::len) + 10).sum::<usize>();
        if size > self.config.max_request_size {
            return Err(Error::kafka(
                10,
                format!("a record of about {size} bytes exceeds max.request.size {}", self.config.max_request_size),
            ));
        }
        let (topic, partition) = self.partition_for(message).await?;
        let key = (topic.clone(), partition);
        if let Some(batch) = self.open.get(&key)
            && batch.records > 0
            && batch.builder.uncompressed_size() + size > self.config.batch_size
        {
            let batch = self.open.remove(&key).expect("present above");
            self.seal(batch)?;
        }
        let config = &self.config;
        let serial = &mut self.next_serial;
        let batch = self.open.entry(key.clone()).or_insert_with(|| {
            *serial += 1;
            Batch {
                topic,
                partition,
                serial: *serial,
                builder: BatchBuilder::new().compression(config.compression),
                encoded: None,
                stamp: None,
                sent: false,
                records: 0,
                created: now,
                send_times: Vec::new(),
                not_before: None,
            }
        });
        let timestamp = message.timestamp.unwrap_or_else(wall_clock_ms);
        batch.builder.push(Timestamp(timestamp), message.key, message.value, message.headers);
        batch.records += 1;
        if config.record_send_times {
            batch.send_times.push(now);
        }
        if batch.builder.uncompressed_size() >= config.batch_size {
            let batch = self.open.remove(&key).expect("present above");
            self.seal(batch)?;
        }
        self.advance(false).await?;
        // Batches that could not go because their leader has its maximum in flight wait for
        // an answer here: that is the producer's back-pressure.
        while !self.ready.is_empty() && (self.ready_bytes > self.config.buffer_memory || self.saturated()) {
            if !self.wait_for_any().await? {
                break;
            }
            self.collect_arrived().await?;
            self.send_ready().await?;
        }
        Ok(())
    }

    /// Sends batches whose linger time is up and collects answers that have arrived. Waits
    /// for an answer only when a lingered batch's leader has all its requests in flight.
    pub async fn poll(&mut self) -> Result<(), Error> {
        self.advance(true).await
    }

    /// Collects answers, seals lingered batches whose leader can take a request, and sends
    /// what is ready. A batch whose leader has all its requests in flight keeps filling
    /// instead, so with a short linger.ms batches grow under load rather than going out one
    /// record each; with `wait`, an answer is awaited to make room for it.
    async fn advance(&mut self, wait: bool) -> Result<(), Error> {
        self.collect_arrived().await?;
        let now = Instant::now();
        let lingered: Vec<(Arc<str>, i32)> =
            self.open.iter().filter(|(_, b)| b.created + self.config.linger <= now).map(|(k, _)| k.clone()).collect();
        let (mut due, blocked): (Vec<_>, Vec<_>) =
            lingered.into_iter().partition(|(topic, partition)| self.leader_has_room(topic, *partition));
        if due.is_empty() && !blocked.is_empty() && wait && self.wait_for_any().await? {
            due = blocked;
        }
        for key in due {
            let batch = self.open.remove(&key).expect("listed above");
            self.seal(batch)?;
        }
        self.send_ready().await
    }

    /// When [`Producer::poll`] next has something to do (a batch's linger time ends), if ever.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let lingering = self.open.values().map(|b| b.created + self.config.linger).min();
        let backoff = self.ready.iter().filter_map(|b| b.not_before).min();
        match (lingering, backoff) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The outcomes of the batches finished so far, oldest first.
    pub fn take_deliveries(&mut self) -> Vec<Delivery> {
        std::mem::take(&mut self.deliveries)
    }

    /// Records waiting in batches or in flight.
    pub fn pending_records(&self) -> usize {
        self.open.values().chain(self.ready.iter()).map(|b| b.records).sum::<usize>()
            + self.in_flight.values().flatten().flatten().map(|b| b.records).sum::<usize>()
    }

    /// Sends everything and waits for every answer (retrying as needed); returns every
    /// delivery not taken yet.
    pub async fn flush(&mut self) -> Result<Vec<Delivery>, Error> {
        let open: Vec<_> = self.open.drain().map(|(_, b)| b).collect();
        for batch in open {
            self.seal(batch)?;
        }
        loop {
            self.collect_arrived().await?;
            self.send_ready().await?;
            if self.wait_for_any().await? {
                continue;
            }
            if self.ready.is_empty() {
                break;
            }
            // Everything left is backing off, or its leader is unknown.
            let wake = self.next_wakeup().unwrap_or_else(|| Instant::now() + self.config.retry_backoff);
            tokio::time::sleep_until(wake.into()).await;
            self.stale_metadata = true;
        }
        Ok(self.take_deliveries())
    }

    /// Encodes a batch and queues it for sending.
    fn seal(&mut self, mut batch: Batch) -> Result<(), Error> {
        if batch.encoded.is_none() {
            // While a new producer id is pending the batch stays unnumbered; send_ready numbers
            // it once the id has come.
            if let Some(idempotence) = &mut self.idempotence
                && !idempotence.renew
            {
                idempotence.number(&mut batch);
            }
            let bytes = batch.builder.build().map_err(|e| Error::Protocol(format!("cannot build a batch: {e}")))?;
            batch.encoded = Some(Bytes::from(bytes));
            batch.builder = BatchBuilder::new();
        }
        if let Some(route) = self.routes.get_mut(&batch.topic)
            && route.sticky == batch.partition as usize
        {
            route.sticky = (route.sticky + 1) % route.leaders.len().max(1);
        }
        self.ready_bytes += batch.size();
        self.ready.push_back(batch);
        Ok(())
    }

    /// Sends ready batches, one Produce request per leader with at most one batch per
    /// partition, while the leader's connection has room in flight.
    async fn send_ready(&mut self) -> Result<(), Error> {
        if self.stale_metadata {
            self.refresh_metadata().await?;
        }
        if self.idempotence.as_ref().is_some_and(|i| i.renew) {
            // Batches never sent are numbered afresh, in queue order, under the new id; those
            // sent keep their numbers, which the broker may already have.
            let mut renewed = Idempotence::init(&mut self.client, &self.config).await?;
            for batch in self.ready.iter_mut().filter(|b| !b.sent) {
                renewed.renumber(batch)?;
            }
            renewed.draining = self.in_flight.values().any(|q| !q.is_empty());
            self.idempotence = Some(renewed);
        }
        // Until the batches in flight under an older producer id have settled, a partition's
        // later batches wait: one of those may come back refused and be renumbered, and must
        // not land behind batches made after it.
        let mut held: Vec<(Arc<str>, i32, u64)> = Vec::new();
        if let Some(idempotence) = &mut self.idempotence
            && idempotence.draining
        {
            let current = Some((idempotence.producer_id, idempotence.epoch));
            held = self
                .in_flight
                .values()
                .flatten()
                .flatten()
                .filter(|b| b.stamp != current)
                .map(|b| (b.topic.clone(), b.partition, b.serial))
                .collect();
            idempotence.draining = !held.is_empty();
        }
        let now = Instant::now();
        let mut requests: HashMap<i32, Vec<Batch>> = HashMap::new();
        let mut request_bytes: HashMap<i32, usize> = HashMap::new();
        let mut kept = VecDeque::new();
        while let Some(mut batch) = self.ready.pop_front() {
            let leader = self
                .routes
                .get(&batch.topic)
                .and_then(|r| r.leaders.get(batch.partition as usize))
                .copied()
                .unwrap_or(-1);
            let in_flight = self.in_flight.get(&leader).map_or(0, VecDeque::len);
            let request = requests.entry(leader).or_default();
            let bytes = request_bytes.entry(leader).or_default();
            let fits = request.is_empty() || *bytes + batch.size() <= self.config.max_request_size;
            let sendable = leader >= 0
                && batch.not_before.is_none_or(|t| t <= now)
                && in_flight < self.config.max_in_flight
                && fits
                && !request.iter().any(|b| b.topic == batch.topic && b.partition == batch.partition)
                && !kept.iter().any(|b: &Batch| b.topic == batch.topic && b.partition == batch.partition)
                && !held
                    .iter()
                    .any(|(t, p, serial)| *p == batch.partition && *serial < batch.serial && *t == batch.topic);
            if sendable {
                *bytes += batch.size();
                self.ready_bytes -= batch.size();
                batch.sent = true;
                request.push(batch);
            } else if leader < 0 && batch.created + self.config.delivery_timeout <= now {
                self.ready_bytes -= batch.size();
                let error = Error::kafka(5, format!("no leader for {}-{}", batch.topic, batch.partition));
                self.deliver(batch, Err(error), now);
            } else {
                if leader < 0 {
                    self.stale_metadata = true;
                }
                kept.push_back(batch);
            }
        }
        self.ready = kept;
        for (leader, batches) in requests {
            if !batches.is_empty() {
                self.send_request(leader, batches).await?;
            }
        }
        Ok(())
    }

    async fn send_request(&mut self, leader: i32, batches: Vec<Batch>) -> Result<(), Error> {
        let mut topics: Vec<TopicProduceData> = Vec::new();
        for batch in &batches {
            let data = PartitionProduceData::default().with_index(batch.partition).with_records(batch.encoded.clone());
            match topics.iter_mut().find(|t| t.name.0.as_str() == &*batch.topic) {
                Some(topic) => topic.partition_data.push(data),
                None => topics.push(
                    TopicProduceData::default()
                        .with_name(TopicName(StrBytes::from_string(batch.topic.to_string())))
                        .with_partition_data(vec![data]),
                ),
            }
        }
        let request = ProduceRequest::default()
            .with_acks(self.config.acks)
            .with_timeout_ms(i32::try_from(self.config.request_timeout.as_millis()).unwrap_or(i32::MAX))
            .with_topic_data(topics);
        let expect_response = self.config.acks != 0;
        let sent = match self.pipeline(leader).await {
            // No usable Produce version is not retriable: the batches fail with that error.
            Ok(pipeline) => match pipeline.version_for::<ProduceRequest>(Some(PRODUCE_VERSION_CAP)) {
                Ok(version) => pipeline.send(&request, version, expect_response).await,
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match sent {
            Err(e) => {
                self.pipelines.remove(&leader);
                self.fail_in_flight(leader, &e);
                self.retry_or_fail(batches, e);
            }
            Ok(()) if expect_response => self.in_flight.entry(leader).or_default().push_back(batches),
            Ok(()) => {
                let completed = Instant::now();
                for batch in batches {
                    self.deliver(batch, Ok(-1), completed);
                }
            }
        }
        Ok(())
    }

    async fn pipeline(&mut self, node: i32) -> Result<&mut Pipeline, Error> {
        if !self.pipelines.contains_key(&node) {
            let connection = self.client.new_connection(node).await?;
            self.pipelines.insert(node, Pipeline::new(connection));
        }
        Ok(self.pipelines.get_mut(&node).expect("inserted above"))
    }

    /// Handles every response that has already arrived.
    async fn collect_arrived(&mut self) -> Result<(), Error> {
        let ready: Vec<i32> = self.pipelines.iter().filter(|(_, p)| p.has_response()).map(|(n, _)| *n).collect();
        for node in ready {
            while self.pipelines.get(&node).is_some_and(Pipeline::has_response) {
                self.receive(node).await;
            }
        }
        Ok(())
    }

    /// Whether the partition's leader can take another request now.
    fn leader_has_room(&self, topic: &str, partition: i32) -> bool {
        let leader = self.routes.get(topic).and_then(|r| r.leaders.get(partition as usize)).copied().unwrap_or(-1);
        leader < 0 || self.in_flight.get(&leader).is_none_or(|q| q.len() < self.config.max_in_flight)
    }

    /// Whether some broker has `max.in.flight.requests.per.connection` requests outstanding.
    fn saturated(&self) -> bool {
        self.in_flight.values().any(|q| q.len() >= self.config.max_in_flight)
    }

    /// Waits for one response from the broker with the most in flight; false if nothing is.
    async fn wait_for_any(&mut self) -> Result<bool, Error> {
        let busiest =
            self.in_flight.iter().filter(|(_, q)| !q.is_empty()).max_by_key(|(_, q)| q.len()).map(|(n, _)| *n);
        match busiest {
            Some(node) => {
                self.receive(node).await;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Takes the next response from `node` and settles its batches.
    async fn receive(&mut self, node: i32) {
        let Some(pipeline) = self.pipelines.get_mut(&node) else {
            self.fail_in_flight(node, &Error::Protocol(format!("lost the connection to broker {node}")));
            return;
        };
        let received = pipeline.receive::<ProduceRequest>().await;
        let batches = self.in_flight.get_mut(&node).and_then(VecDeque::pop_front).unwrap_or_default();
        match received {
            Ok((response, arrived)) => self.settle(batches, response, arrived),
            Err(e) => {
                self.pipelines.remove(&node);
                self.retry_or_fail(batches, e.clone_lossy());
                self.fail_in_flight(node, &e);
            }
        }
    }
}

/// Milliseconds since the epoch.
fn wall_clock_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
