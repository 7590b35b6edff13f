//! The tools' command line: every verb and flag, with the help text `fjord --help` prints.

use std::path::PathBuf;

use clap::Subcommand;

/// Where the tools connect unless told otherwise.
pub const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:9092";

/// The operator tools: every `fjord` verb but `server`.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print log segments and index files as kafka-dump-log.sh does.
    ///
    /// Example: fjord dump-log --print-data-log fjord-data/orders-0/00000000000000000000.log
    #[command(verbatim_doc_comment)]
    DumpLog {
        /// Files to dump (.log, .index, .timeindex).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print each record's key and payload.
        #[arg(long)]
        print_data_log: bool,
        /// Print a line per record.
        #[arg(long)]
        deep_iteration: bool,
        /// Check index entries against the log without printing them.
        #[arg(long)]
        verify_index_only: bool,
    },
    /// Create, list, describe, alter and delete topics, as kafka-topics.sh does.
    Topics {
        /// The verb.
        #[command(subcommand)]
        command: TopicsCommand,
    },
    /// Consumer groups: list, describe, reset offsets, delete, as kafka-consumer-groups.sh does.
    Groups {
        /// The verb.
        #[command(subcommand)]
        command: GroupsCommand,
    },
    /// Send each line of stdin as a record, as kafka-console-producer.sh does.
    ///
    /// Examples:
    ///   echo hello | fjord produce --topic orders
    ///   printf 'user-1:created\n' | fjord produce --topic orders --key-separator :
    ///   fjord produce --topic orders --header source=cli --acks 1 --compression zstd < lines.txt
    ///   printf 'trace:abc,team:x\tuser-1:created\n' | fjord produce --topic orders --parse-headers --key-separator :
    #[command(verbatim_doc_comment)]
    Produce(ProduceArgs),
    /// Print records, as kafka-console-consumer.sh does (value only, unless asked for more).
    ///
    /// Examples:
    ///   fjord consume --topic orders --from-beginning
    ///   fjord consume --topic orders --group orders-app --max-messages 10
    ///   fjord consume --topic orders --partition 0 --offset 42 --print-key --print-offset
    ///   fjord consume --topic orders --from-beginning --timeout-ms 5000 --print-timestamp --print-headers
    #[command(verbatim_doc_comment)]
    Consume(ConsumeArgs),
    /// Load generators, as kafka-producer-perf-test.sh and kafka-consumer-perf-test.sh.
    Perf {
        /// The verb.
        #[command(subcommand)]
        command: PerfCommand,
    },
    /// The metadata quorum, as kafka-metadata-quorum.sh shows it.
    Quorum {
        /// The verb.
        #[command(subcommand)]
        command: QuorumCommand,
    },
    /// The cluster's brokers and its active controller.
    Cluster {
        /// The verb.
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Local development helpers.
    Dev {
        /// The verb.
        #[command(subcommand)]
        command: DevCommand,
    },
    /// Move partitions to other brokers, as kafka-reassign-partitions.sh does.
    ///
    /// Examples:
    ///   echo '{"version":1,"topics":[{"topic":"orders"}]}' > topics.json
    ///   fjord reassign-partitions --topics-to-move-json-file topics.json --broker-list 1,2,3 --generate
    ///   fjord reassign-partitions --reassignment-json-file plan.json --execute
    ///   fjord reassign-partitions --reassignment-json-file plan.json --verify
    ///   fjord reassign-partitions --list
    ///   fjord reassign-partitions --reassignment-json-file plan.json --cancel
    #[command(verbatim_doc_comment)]
    #[command(group(clap::ArgGroup::new("action").required(true)
        .args(["generate", "execute", "verify", "list", "cancel"])))]
    ReassignPartitions {
        /// Propose a plan moving the topics of --topics-to-move-json-file onto --broker-list.
        #[arg(long, requires_all = ["topics_to_move_json_file", "broker_list"])]
        generate: bool,
        /// Start the plan in --reassignment-json-file.
        #[arg(long, requires = "reassignment_json_file")]
        execute: bool,
        /// Report how far the plan in --reassignment-json-file has got.
        #[arg(long, requires = "reassignment_json_file")]
        verify: bool,
        /// List the reassignments under way.
        #[arg(long)]
        list: bool,
        /// Cancel the moves of the plan in --reassignment-json-file that are under way.
        #[arg(long, requires = "reassignment_json_file")]
        cancel: bool,
        /// With --execute: go ahead although other reassignments are under way.
        #[arg(long)]
        additional: bool,
        /// `{"version":1,"topics":[{"topic":"..."}]}`: the topics --generate moves.
        #[arg(long)]
        topics_to_move_json_file: Option<PathBuf>,
        /// The brokers --generate places replicas on, e.g. 1,2,3.
        #[arg(long)]
        broker_list: Option<String>,
        /// A plan: `{"version":1,"partitions":[{"topic":"...","partition":0,"replicas":[1,2]}]}`.
        #[arg(long)]
        reassignment_json_file: Option<PathBuf>,
        /// The brokers to bootstrap from (host:port, comma-separated).
        #[arg(long, default_value = DEFAULT_BOOTSTRAP)]
        bootstrap_server: String,
    },
    /// Elect partition leaders, as kafka-leader-election.sh does.
    ///
    /// Examples:
    ///   fjord leader-election --election-type preferred --all-topic-partitions
    ///   fjord leader-election --election-type preferred --topic orders --partition 0
    ///   fjord leader-election --election-type unclean --topic orders --partition 3
    #[command(verbatim_doc_comment)]
    LeaderElection {
        /// preferred (the first replica leads again) or unclean (a leaderless partition takes
        /// any live replica, possibly losing acknowledged records).
        #[arg(long, value_parser = ["preferred", "unclean", "PREFERRED", "UNCLEAN"])]
        election_type: String,
        /// Every partition of every topic.
        #[arg(long, conflicts_with_all = ["topic", "partition"])]
        all_topic_partitions: bool,
        /// One topic (with --partition).
        #[arg(long, requires = "partition")]
        topic: Option<String>,
        /// Its partition.
        #[arg(long, requires = "topic")]
        partition: Option<i32>,
        /// The brokers to bootstrap from (host:port, comma-separated).
        #[arg(long, default_value = DEFAULT_BOOTSTRAP)]
        bootstrap_server: String,
    },
}

/// `fjord dev` verbs.
#[derive(Subcommand, Debug)]
pub enum DevCommand {
    /// Start a local cluster on 127.0.0.1 and keep it running until Ctrl-C: one `fjord server`
    /// process per node, node i at client port base+2(i-1) and controller port base+2(i-1)+1.
    ///
    /// Examples:
    ///   fjord dev cluster --nodes 3
    ///   fjord dev cluster --nodes 3 --brokers 2 --dir /tmp/fjord-split
    ///   fjord dev cluster --nodes 3 --override broker.session.timeout.ms=3000
    #[command(verbatim_doc_comment)]
    Cluster {
        /// Controller nodes: combined broker+controller, or controllers only with --brokers.
        #[arg(long, default_value_t = 3)]
        nodes: u16,
        /// Broker-only nodes, after the controllers.
        #[arg(long, default_value_t = 0)]
        brokers: u16,
        /// The working directory: each node's properties, data and log.
        #[arg(long, default_value = "./fjord-dev-cluster")]
        dir: PathBuf,
        /// Node 1's client port.
        #[arg(long, default_value_t = 9092)]
        base_port: u16,
        /// A property for every node: --override key=value.
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
}

/// `fjord quorum` verbs.
#[derive(Subcommand, Debug)]
pub enum QuorumCommand {
    /// The quorum's leader, epoch, high watermark, lag and members (--status), or a line per
    /// replica with its log end, lag and last fetch (--replication).
    ///
    /// Examples:
    ///   fjord quorum describe --status
    ///   fjord quorum describe --replication --bootstrap-server 127.0.0.1:9094
    #[command(verbatim_doc_comment)]
    Describe {
        /// The summary.
        #[arg(long, required_unless_present = "replication", conflicts_with = "replication")]
        status: bool,
        /// A line per replica.
        #[arg(long)]
        replication: bool,
        /// The brokers to bootstrap from (host:port, comma-separated).
        #[arg(long, default_value = DEFAULT_BOOTSTRAP)]
        bootstrap_server: String,
    },
}

/// `fjord cluster` verbs.
#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// The cluster id, the active controller, and every broker with its endpoint, rack, broker
    /// epoch and whether it is fenced.
    ///
    /// Example: fjord cluster describe --bootstrap-server 127.0.0.1:9092
    #[command(verbatim_doc_comment)]
    Describe {
        /// The brokers to bootstrap from (host:port, comma-separated).
        #[arg(long, default_value = DEFAULT_BOOTSTRAP)]
        bootstrap_server: String,
    },
}

/// The producer settings `produce` and `perf produce` share.
#[derive(clap::Args, Debug)]
pub struct ProducerArgs {
    /// Acknowledgements to wait for: all (-1), 1 or 0.
    #[arg(long, default_value = "all", allow_hyphen_values = true)]
    pub(crate) acks: String,
    /// Codec: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    pub(crate) compression: String,
    /// batch.size in bytes.
    #[arg(long, default_value_t = 16384)]
    pub(crate) batch_size: usize,
    /// linger.ms: how long a batch that is not full waits for more records.
    #[arg(long, default_value_t = 5)]
    pub(crate) linger_ms: u64,
    /// A producer property, key=value, as Kafka's tools take them (repeatable): acks,
    /// batch.size, buffer.memory, client.id, compression.type, delivery.timeout.ms,
    /// enable.idempotence, linger.ms, max.in.flight.requests.per.connection,
    /// max.request.size, request.timeout.ms, retry.backoff.ms. Idempotence is on when
    /// acks is all, unless set here.
    #[arg(long = "producer-property", visible_alias = "producer-props", num_args = 1.., value_name = "KEY=VALUE")]
    pub(crate) properties: Vec<String>,
}

/// `fjord perf` verbs.
#[derive(Subcommand, Debug)]
pub enum PerfCommand {
    /// Send records as fast as allowed, printing throughput and latency every few seconds and
    /// a final line with records/s, MB/s and latency avg, max and percentiles.
    ///
    /// Examples:
    ///   fjord perf produce --topic perf --num-records 1000000 --record-size 100 --throughput -1
    ///   fjord perf produce --topic perf --num-records 100000 --record-size 1024 --throughput 20000 --acks 1
    ///   fjord perf produce --topic perf --num-records 100000 --record-size 100 --producer-props enable.idempotence=false
    #[command(verbatim_doc_comment)]
    Produce(PerfProduceArgs),
    /// Read records from the start of every partition and print kafka-consumer-perf-test's
    /// summary (MB and records, per second).
    ///
    /// Example: fjord perf consume --topic perf --messages 1000000
    #[command(verbatim_doc_comment)]
    Consume(PerfConsumeArgs),
}

/// `fjord topics` verbs.
#[derive(Subcommand, Debug)]
pub enum TopicsCommand {
    /// Create a topic. Partitions and replication factor default to the broker's
    /// num.partitions and default.replication.factor.
    ///
    /// Examples:
    ///   fjord topics create --topic orders --partitions 3
    ///   fjord topics create --topic users --config cleanup.policy=compact --config segment.bytes=1048576
    #[command(verbatim_doc_comment)]
    Create {
        /// The topic.
        #[arg(long)]
        topic: String,
        /// Number of partitions.
        #[arg(long)]
        partitions: Option<i32>,
        /// Number of replicas per partition.
        #[arg(long)]
        replication_factor: Option<i16>,
        /// A topic config override, key=value (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
        /// The brokers to bootstrap from (host:port, comma-separated).
        #[arg(long, default_value = DEFAULT_BOOTSTRAP)]
        bootstrap_server: String,
    },
    /// List the topics.
    ///
    /// Example: fjord topics list --exclude-internal
    #[command(verbatim_doc_comment)]
    List {
        /// Leave out internal topics (__consumer_offsets).
        #[arg(long)]
        exclude_internal: bool,
        /// The brokers to bootstrap from (host:port, comma-separated).
        #[arg(long, default_value = DEFAULT_BOOTSTRAP)]
        bootstrap_server: String,
    },
    /// Show a topic's (or every topic's) partitions, leaders, replicas, ISR and overridden configs.
    ///
    /// Examples:
    ///   fjord topics describe --topic orders
    ///   fjord topics describe
    ///   fjord topics describe --unavailable-partitions
    #[command(verbatim_doc_comment)]
    Describe {
        /// The topic (default: all).
        #[arg(long)]
        topic: Option<String>,
        /// Leave out internal topics.
        #[arg(long)]
        exclude_internal: bool,
        /// Only partitions without a leader (or whose leader is not a live broker).
        #[arg(long)]
        unavailable_partitions: bool,
        /// Only partitions whose ISR is smaller than their replica set.
        #[arg(long, conflicts_with = "unavailable_partitions")]
        under_replicated_partitions: bool,
        /// The brokers to bootstrap from (host:port, comma-separated).
        #[arg(long, default_value = DEFAULT_BOOTSTRAP)]
        bootstrap_server: String,
    },
    /// Add partitions, or set and remove config overrides.
    ///
    /// Examples:
    ///   fjord topics alter --topic orders --partitions 6
    ///   fjord topics alter --topic orders --config retention.ms=3600000 --delete-config segment.bytes
    #[command(verbatim_doc_comment)]
    Alter {
        /// The topic.
        #[arg(long)]
        topic: String,
        /// The new (larger) partition count.
        #[arg(long)]
        partitions: Option<i32>,
        /// Set a config override, key=value (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
        /// Remove a config override, back to the broker default (repeatable).
        #[arg(long = "delete-config", value_name = "KEY")]
        delete_configs: Vec<String>,
        /// The brokers to bootstrap from (host:port, comma-separated).
        #[arg(long, default_value = DEFAULT_BOOTSTRAP)]
        bootstrap_server: String,
    },
    /// Delete a topic and its data.
    ///
    /// Example: fjord topics delete --topic orders
    #[command(verbatim_doc_comment)]
    Delete {
        /// The topic.
        #[arg(long)]
        topic: String,
        /// The brokers to bootstrap from (host:port, comma-separated).
        #[arg(long, default_value = DEFAULT_BOOTSTRAP)]
        bootstrap_server: String,
    },
}

/// `fjord groups` verbs.
#[derive(Subcommand, Debug)]
pub enum GroupsCommand {
    /// List the groups.
    ///
    /// Examples:
    ///   fjord groups list
    ///   fjord groups list --state --bootstrap-server 127.0.0.1:9092
    #[command(verbatim_doc_comment)]
    List {
        /// Also show each group's state.
        #[arg(long)]
        state: bool,
        /// The brokers to bootstrap from (host:port, comma-separated).
        #[arg(long, default_value = DEFAULT_BOOTSTRAP)]
        bootstrap_server: String,
    },
    /// Show a group's committed offsets, log end offsets and lag per partition, with the member
    /// that owns each partition (or, with --members, the members).
    ///
    /// Examples:
    ///   fjord groups describe --group orders-app
    ///   fjord groups describe --group orders-app --members
    #[command(verbatim_doc_comment)]
    Describe {
        /// The group.
        #[arg(long)]
        group: String,
        /// List the members instead of the partitions.
        #[arg(long)]
        members: bool,
        /// The brokers to bootstrap from (host:port, comma-separated).
        #[arg(long, default_value = DEFAULT_BOOTSTRAP)]
        bootstrap_server: String,
    },
    /// Move a group's committed offsets. The group must have no members. Shows the new
    /// offsets and changes nothing unless --execute is given.
    ///
    /// Examples:
    ///   fjord groups reset-offsets --group orders-app --topic orders --to-earliest
    ///   fjord groups reset-offsets --group orders-app --topic orders:0,1 --to-offset 100 --execute
    ///   fjord groups reset-offsets --group orders-app --all-topics --to-datetime 2026-11-01T00:00:00.000Z --execute
    ///   fjord groups reset-offsets --group orders-app --all-topics --shift-by -10 --execute
    #[command(verbatim_doc_comment)]
    #[command(group(clap::ArgGroup::new("scope").required(true).args(["topics", "all_topics"])))]
    #[command(group(clap::ArgGroup::new("target").required(true)
        .args(["to_earliest", "to_latest", "to_offset", "to_datetime", "shift_by"])))]
    ResetOffsets {
        /// The group.
        #[arg(long)]
        group: String,
        /// A topic, or topic:partition,partition (repeatable).
        #[arg(long = "topic", value_name = "TOPIC[:PARTITIONS]")]
        topics: Vec<String>,
        /// Every partition the group has committed offsets for.
        #[arg(long)]
        all_topics: bool,
        /// To each partition's log start.
        #[arg(long)]
        to_earliest: bool,
        /// To each partition's log end.
        #[arg(long)]
        to_latest: bool,
        /// To this offset (clamped to the partition's range).
        #[arg(long)]
        to_offset: Option<i64>,
        /// To the first record at or after this time: YYYY-MM-DDTHH:mm:SS.sss[Z|±hh:mm].
        #[arg(long)]
        to_datetime: Option<String>,
        /// Move the committed offset by this many records (negative: back).
        #[arg(long, allow_hyphen_values = true)]
        shift_by: Option<i64>,
        /// Only show the new offsets (the default).
        #[arg(long, conflicts_with = "execute")]
        dry_run: bool,
        /// Commit the new offsets.
        #[arg(long)]
        execute: bool,
        /// The brokers to bootstrap from (host:port, comma-separated).
        #[arg(long, default_value = DEFAULT_BOOTSTRAP)]
        bootstrap_server: String,
    },
    /// Delete groups that have no members, with their committed offsets.
    ///
    /// Example: fjord groups delete --group orders-app
    #[command(verbatim_doc_comment)]
    Delete {
        /// The group (repeatable).
        #[arg(long = "group", required = true)]
        groups: Vec<String>,
        /// The brokers to bootstrap from (host:port, comma-separated).
        #[arg(long, default_value = DEFAULT_BOOTSTRAP)]
        bootstrap_server: String,
    },
}

/// The flags of `fjord produce`.
#[derive(clap::Args, Debug)]
pub struct ProduceArgs {
    /// The topic (created on first use if the broker auto-creates topics).
    #[arg(long)]
    pub(crate) topic: String,
    /// Send every record to this partition (default: by key hash, or spread).
    #[arg(long)]
    pub(crate) partition: Option<i32>,
    /// Split each line into key and value at the first occurrence of this string.
    #[arg(long)]
    pub(crate) key_separator: Option<String>,
    /// Add a header to every record, key=value (repeatable).
    #[arg(long = "header", value_name = "KEY=VALUE")]
    pub(crate) headers: Vec<String>,
    /// Each line starts with headers, key:value pairs separated by commas, then a tab.
    #[arg(long)]
    pub(crate) parse_headers: bool,
    /// A key or value equal to this string is sent as null (a tombstone, for values).
    #[arg(long)]
    pub(crate) null_marker: Option<String>,
    #[command(flatten)]
    pub(crate) producer: ProducerArgs,
    /// max.block.ms: how long to wait for the topic's metadata.
    #[arg(long, default_value_t = 60_000)]
    pub(crate) max_block_ms: u64,
    /// The brokers to bootstrap from (host:port, comma-separated).
    #[arg(long, default_value = DEFAULT_BOOTSTRAP)]
    pub(crate) bootstrap_server: String,
}

/// The flags of `fjord consume`.
#[derive(clap::Args, Debug)]
pub struct ConsumeArgs {
    /// The topic.
    #[arg(long)]
    pub(crate) topic: String,
    /// Consume as a member of this group, from its committed offsets (committing as it goes).
    #[arg(long)]
    pub(crate) group: Option<String>,
    /// Only this partition.
    #[arg(long)]
    pub(crate) partition: Option<i32>,
    /// Start at the log start instead of its end (with --group: when nothing is committed).
    #[arg(long)]
    pub(crate) from_beginning: bool,
    /// Start at earliest, latest or this offset (needs --partition).
    #[arg(long)]
    pub(crate) offset: Option<String>,
    /// Exit after this many records.
    #[arg(long)]
    pub(crate) max_messages: Option<u64>,
    /// Exit when no record arrives for this many milliseconds.
    #[arg(long)]
    pub(crate) timeout_ms: Option<u64>,
    /// Print each record's key before its value.
    #[arg(long)]
    pub(crate) print_key: bool,
    /// Print each record's timestamp and its type (CreateTime or LogAppendTime).
    #[arg(long)]
    pub(crate) print_timestamp: bool,
    /// Print each record's headers (k:v,k2:v2, or NO_HEADERS).
    #[arg(long)]
    pub(crate) print_headers: bool,
    /// Print each record's partition.
    #[arg(long)]
    pub(crate) print_partition: bool,
    /// Print each record's offset.
    #[arg(long)]
    pub(crate) print_offset: bool,
    /// What separates the key from the value.
    #[arg(long, default_value = "\t")]
    pub(crate) key_separator: String,
    /// The brokers to bootstrap from (host:port, comma-separated).
    #[arg(long, default_value = DEFAULT_BOOTSTRAP)]
    pub(crate) bootstrap_server: String,
}

/// The flags of `fjord perf produce`.
#[derive(clap::Args, Debug)]
pub struct PerfProduceArgs {
    /// The topic (created on first use if the broker auto-creates topics).
    #[arg(long)]
    pub(crate) topic: String,
    /// How many records to send.
    #[arg(long)]
    pub(crate) num_records: u64,
    /// Each record's value size in bytes.
    #[arg(long)]
    pub(crate) record_size: usize,
    /// The most records per second; -1 for no limit.
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) throughput: f64,
    #[command(flatten)]
    pub(crate) producer: ProducerArgs,
    /// Milliseconds between progress lines.
    #[arg(long, default_value_t = 5000)]
    pub(crate) reporting_interval: u64,
    /// The brokers to bootstrap from (host:port, comma-separated).
    #[arg(long, default_value = DEFAULT_BOOTSTRAP)]
    pub(crate) bootstrap_server: String,
}

/// The flags of `fjord perf consume`.
#[derive(clap::Args, Debug)]
pub struct PerfConsumeArgs {
    /// The topic.
    #[arg(long)]
    pub(crate) topic: String,
    /// How many records to read.
    #[arg(long)]
    pub(crate) messages: u64,
    /// Consume as a member of this group (default: no group, every partition from its start).
    #[arg(long)]
    pub(crate) group: Option<String>,
    /// Give up when no record arrives for this many milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) timeout_ms: u64,
    /// fetch.max.wait.ms.
    #[arg(long, default_value_t = 500)]
    pub(crate) fetch_max_wait_ms: u64,
    /// The brokers to bootstrap from (host:port, comma-separated).
    #[arg(long, default_value = DEFAULT_BOOTSTRAP)]
    pub(crate) bootstrap_server: String,
}
