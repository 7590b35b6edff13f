//! `fjord`: the broker and its tools in one binary.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use fjord_broker::{BrokerConfig, Server, properties};
use fjord_log::{DumpOptions, dump_file};

mod groups_cli;
mod topics_cli;

/// Where the tools connect unless told otherwise.
const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:9092";

/// Fjord: a Kafka-compatible commit-log broker.
#[derive(Parser, Debug)]
#[command(name = "fjord", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the broker. With no file: a single node on 127.0.0.1:9092 with data in ./fjord-data.
    ///
    /// Examples:
    ///   fjord server
    ///   fjord server config/server.properties
    ///   fjord server --override log.dirs=/var/lib/fjord --override num.partitions=4
    Server {
        /// A server.properties file (Kafka's property names).
        file: Option<PathBuf>,
        /// Override a property, as kafka-server-start.sh does: --override key=value.
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Print log segments and index files as kafka-dump-log.sh does.
    ///
    /// Example: fjord dump-log --print-data-log fjord-data/orders-0/00000000000000000000.log
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
        #[command(subcommand)]
        command: TopicsCommand,
    },
    /// Consumer groups, as kafka-consumer-groups.sh shows them.
    Groups {
        #[command(subcommand)]
        command: GroupsCommand,
    },
}

#[derive(Subcommand, Debug)]
enum TopicsCommand {
    /// Create a topic. Partitions and replication factor default to the broker's
    /// num.partitions and default.replication.factor.
    ///
    /// Examples:
    ///   fjord topics create --topic orders --partitions 3
    ///   fjord topics create --topic users --config cleanup.policy=compact --config segment.bytes=1048576
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
    Describe {
        /// The topic (default: all).
        #[arg(long)]
        topic: Option<String>,
        /// Leave out internal topics.
        #[arg(long)]
        exclude_internal: bool,
        /// The brokers to bootstrap from (host:port, comma-separated).
        #[arg(long, default_value = DEFAULT_BOOTSTRAP)]
        bootstrap_server: String,
    },
    /// Add partitions, or set and remove config overrides.
    ///
    /// Examples:
    ///   fjord topics alter --topic orders --partitions 6
    ///   fjord topics alter --topic orders --config retention.ms=3600000 --delete-config segment.bytes
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
    Delete {
        /// The topic.
        #[arg(long)]
        topic: String,
        /// The brokers to bootstrap from (host:port, comma-separated).
        #[arg(long, default_value = DEFAULT_BOOTSTRAP)]
        bootstrap_server: String,
    },
}

#[derive(Subcommand, Debug)]
enum GroupsCommand {
    /// List the groups.
    ///
    /// Examples:
    ///   fjord groups list
    ///   fjord groups list --state --bootstrap-server 127.0.0.1:9092
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server { file, overrides } => server(file, overrides),
        Command::DumpLog { files, print_data_log, deep_iteration, verify_index_only } => {
            dump_log(&files, DumpOptions { print_data_log, deep_iteration, verify_index_only })
        }
        Command::Topics { command } => tool(async move {
            match command {
                TopicsCommand::Create { topic, partitions, replication_factor, configs, bootstrap_server } => {
                    topics_cli::create(&bootstrap_server, &topic, partitions, replication_factor, &configs).await
                }
                TopicsCommand::List { exclude_internal, bootstrap_server } => {
                    topics_cli::list(&bootstrap_server, exclude_internal).await
                }
                TopicsCommand::Describe { topic, exclude_internal, bootstrap_server } => {
                    topics_cli::describe(&bootstrap_server, topic.as_deref(), exclude_internal).await
                }
                TopicsCommand::Alter { topic, partitions, configs, delete_configs, bootstrap_server } => {
                    topics_cli::alter(&bootstrap_server, &topic, partitions, &configs, &delete_configs).await
                }
                TopicsCommand::Delete { topic, bootstrap_server } => {
                    topics_cli::delete(&bootstrap_server, &topic).await
                }
            }
        }),
        Command::Groups { command } => tool(async move {
            match command {
                GroupsCommand::List { state, bootstrap_server } => groups_cli::list(&bootstrap_server, state).await,
                GroupsCommand::Describe { group, members, bootstrap_server } => {
                    groups_cli::describe(&bootstrap_server, &group, members).await
                }
            }
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn server(file: Option<PathBuf>, overrides: Vec<String>) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let mut props = match &file {
        Some(path) => properties::parse(
            &std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?,
        ),
        None => Default::default(),
    };
    for entry in overrides {
        let (key, value) =
            entry.split_once('=').with_context(|| format!("--override expects key=value, got {entry}"))?;
        props.insert(key.trim().to_owned(), value.trim().to_owned());
    }
    let config = BrokerConfig::from_properties(props)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let server = Server::start(config).await?;
        server.run(shutdown_signal()).await
    })
}

/// Runs a client tool on a small runtime of its own.
fn tool(run: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(run)
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn dump_log(files: &[PathBuf], options: DumpOptions) -> Result<()> {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut clean = true;
    for file in files {
        let report = dump_file(file, options, &mut stdout.lock(), &mut stderr.lock())?;
        clean &= report.is_clean();
    }
    if !clean {
        anyhow::bail!("the files have problems (see above)");
    }
    Ok(())
}
