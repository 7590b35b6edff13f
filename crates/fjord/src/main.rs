//! `fjord`: the broker and its tools in one binary. `fjord server` runs `fjord-broker`; every
//! other verb is one of `fjord-tools`.

#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use fjord_broker::{BrokerConfig, Server, properties, storage};

/// Fjord: a Kafka-compatible commit-log broker.
#[derive(Parser, Debug)]
#[command(name = "fjord", version)]
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
    #[command(verbatim_doc_comment)]
    Server {
        /// A server.properties file (Kafka's property names).
        file: Option<PathBuf>,
        /// Override a property, as kafka-server-start.sh does: --override key=value.
        #[arg(long = "override", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Format a node's data directory, as kafka-storage.sh does.
    Storage {
        /// The verb.
        #[command(subcommand)]
        command: StorageCommand,
    },
    #[command(flatten)]
    Tool(fjord_tools::Command),
}

#[derive(Subcommand, Debug)]
enum StorageCommand {
    /// Write meta.properties (cluster id, node id, directory id) into the node's log.dirs.
    /// Optional: a node formats an empty directory itself on first start, with a cluster id
    /// derived from controller.quorum.voters; this pins an id of your choosing instead.
    ///
    /// Example:
    ///   fjord storage format --config config/cluster/node-1.properties --cluster-id "$(fjord storage random-uuid)"
    #[command(verbatim_doc_comment)]
    Format {
        /// The node's server.properties.
        #[arg(long, short = 'c')]
        config: PathBuf,
        /// The cluster id (22 characters of URL-safe base64, as `random-uuid` prints).
        #[arg(long, short = 't')]
        cluster_id: String,
        /// Succeed on a directory already formatted with this cluster and node.
        #[arg(long, short = 'g')]
        ignore_formatted: bool,
    },
    /// Print a new random cluster id.
    ///
    /// Example: fjord storage random-uuid
    #[command(verbatim_doc_comment)]
    RandomUuid,
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Server { file, overrides } => server(file, overrides),
        Command::Storage { command } => storage(command),
        Command::Tool(command) => fjord_tools::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn split_overrides(overrides: Vec<String>) -> Result<Vec<(String, String)>> {
    overrides
        .iter()
        .map(|entry| {
            let (key, value) =
                entry.split_once('=').with_context(|| format!("--override expects key=value, got {entry}"))?;
            Ok((key.trim().to_owned(), value.trim().to_owned()))
        })
        .collect()
}

fn read_properties(path: &std::path::Path) -> Result<std::collections::BTreeMap<String, String>> {
    Ok(properties::parse(&std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?))
}

fn storage(command: StorageCommand) -> Result<()> {
    match command {
        StorageCommand::RandomUuid => {
            println!("{}", storage::random_base64_id());
            Ok(())
        }
        StorageCommand::Format { config, cluster_id, ignore_formatted } => {
            if !storage::is_valid_cluster_id(&cluster_id) {
                anyhow::bail!(
                    "cluster id {cluster_id:?} is not 22 characters of URL-safe base64 (try `fjord storage random-uuid`)"
                );
            }
            let config = BrokerConfig::from_properties(read_properties(&config)?)?;
            let dir = config.data_dir();
            if let Some(existing) = storage::read_meta_properties(dir)? {
                let same = existing.cluster_id == cluster_id && existing.node_id == config.node_id;
                if same && ignore_formatted {
                    println!("{} is already formatted for cluster {cluster_id}; left as it is.", dir.display());
                    return Ok(());
                }
                anyhow::bail!(
                    "log directory {} is already formatted (cluster {}, node {}); use --ignore-formatted to leave it",
                    dir.display(),
                    existing.cluster_id,
                    existing.node_id
                );
            }
            storage::format(dir, config.node_id, &cluster_id)?;
            println!("Formatted {} with cluster id {cluster_id} for node {}.", dir.display(), config.node_id);
            Ok(())
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
        Some(path) => read_properties(path)?,
        None => Default::default(),
    };
    props.extend(split_overrides(overrides)?);
    let config = BrokerConfig::from_properties(props)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let server = Server::start(config).await?;
        server.run(shutdown_signal()).await?;
        Ok(())
    })
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every verb's `--help` shows its examples one per line, as written.
    #[test]
    fn help_examples_keep_their_lines() {
        fn check(command: &mut clap::Command, path: &str, checked: &mut usize) {
            let help = command.render_long_help().to_string();
            if help.contains("Example") {
                let examples =
                    help.lines().filter(|l| l.starts_with("  fjord ") || l.starts_with("Example: fjord ")).count();
                assert!(examples > 0, "{path}: examples run together:\n{help}");
                assert!(
                    !help.lines().any(|l| l.matches(" fjord ").count() > 1),
                    "{path}: two examples on one line:\n{help}"
                );
                *checked += 1;
            }
            for sub in command.get_subcommands_mut() {
                let name = format!("{path} {}", sub.get_name());
                check(sub, &name, checked);
            }
        }
        let mut checked = 0;
        check(&mut super::Cli::command(), "fjord", &mut checked);
        assert!(checked >= 15, "only {checked} verbs have examples");
    }
}
