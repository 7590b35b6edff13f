//! Fjord's operator tools, one verb each as Kafka's `bin/*.sh` scripts: `topics`
//! (kafka-topics.sh), `groups` (kafka-consumer-groups.sh), `produce` and `consume` (the console
//! producer and consumer), `perf` (the producer and consumer perf tests), `quorum`
//! (kafka-metadata-quorum.sh), `cluster` (the brokers and the active controller),
//! `leader-election` (kafka-leader-election.sh), `reassign-partitions`
//! (kafka-reassign-partitions.sh), `dump-log` (kafka-dump-log.sh), and `dev
//! cluster`, which runs a local cluster of `fjord server` processes (the executable this
//! crate is linked into must have a `server` verb, as the `fjord` binary does).
//!
//! Every verb but `dump-log` talks to a cluster through `fjord-client`, like any other Kafka
//! client; `dump-log` reads segment files with `fjord-log`. The `fjord` binary parses
//! [`Command`] next to its `server` verb and hands it to [`run`]. This crate never depends on the
//! broker: the tools work against any Kafka-compatible cluster.

#![warn(missing_docs)]
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod args;
mod cluster;
mod console;
mod dev;
mod groups;
mod perf;
mod reassign;
mod topics;

use std::path::PathBuf;

use anyhow::Result;
use fjord_log::{DumpOptions, dump_file};

pub use args::{
    ClusterCommand, Command, ConsumeArgs, DEFAULT_BOOTSTRAP, DevCommand, GroupsCommand, PerfCommand, PerfConsumeArgs,
    PerfProduceArgs, ProduceArgs, ProducerArgs, QuorumCommand, TopicsCommand,
};

/// Runs one tool verb to completion.
pub fn run(command: Command) -> Result<()> {
    match command {
        Command::DumpLog { files, print_data_log, deep_iteration, verify_index_only } => {
            dump_log(&files, DumpOptions { print_data_log, deep_iteration, verify_index_only })
        }
        Command::Topics { command } => on_runtime(async move {
            match command {
                TopicsCommand::Create { topic, partitions, replication_factor, configs, bootstrap_server } => {
                    topics::create(&bootstrap_server, &topic, partitions, replication_factor, &configs).await
                }
                TopicsCommand::List { exclude_internal, bootstrap_server } => {
                    topics::list(&bootstrap_server, exclude_internal).await
                }
                TopicsCommand::Describe {
                    topic,
                    exclude_internal,
                    unavailable_partitions,
                    under_replicated_partitions,
                    bootstrap_server,
                } => {
                    let only = if unavailable_partitions {
                        topics::Only::Unavailable
                    } else if under_replicated_partitions {
                        topics::Only::UnderReplicated
                    } else {
                        topics::Only::All
                    };
                    topics::describe(&bootstrap_server, topic.as_deref(), exclude_internal, only).await
                }
                TopicsCommand::Alter { topic, partitions, configs, delete_configs, bootstrap_server } => {
                    topics::alter(&bootstrap_server, &topic, partitions, &configs, &delete_configs).await
                }
                TopicsCommand::Delete { topic, bootstrap_server } => topics::delete(&bootstrap_server, &topic).await,
            }
        }),
        Command::Groups { command } => on_runtime(async move {
            match command {
                GroupsCommand::List { state, bootstrap_server } => groups::list(&bootstrap_server, state).await,
                GroupsCommand::Describe { group, members, bootstrap_server } => {
                    groups::describe(&bootstrap_server, &group, members).await
                }
                GroupsCommand::ResetOffsets {
                    group,
                    topics,
                    all_topics,
                    to_earliest,
                    to_latest,
                    to_offset,
                    to_datetime,
                    shift_by,
                    dry_run: _,
                    execute,
                    bootstrap_server,
                } => {
                    use groups::{ResetScope, ResetTo};
                    let scope = if all_topics { ResetScope::AllTopics } else { ResetScope::Topics(topics) };
                    let to = match (to_earliest, to_latest, to_offset, to_datetime, shift_by) {
                        (true, ..) => ResetTo::Earliest,
                        (_, true, ..) => ResetTo::Latest,
                        (_, _, Some(o), ..) => ResetTo::Offset(o),
                        (_, _, _, Some(t), _) => ResetTo::Datetime(groups::parse_datetime(&t)?),
                        (.., Some(n)) => ResetTo::ShiftBy(n),
                        _ => anyhow::bail!("choose where to reset to (--to-earliest, --to-latest, ...)"),
                    };
                    groups::reset_offsets(&bootstrap_server, &group, scope, to, execute).await
                }
                GroupsCommand::Delete { groups: names, bootstrap_server } => {
                    groups::delete(&bootstrap_server, &names).await
                }
            }
        }),
        Command::Produce(args) => on_runtime(console::produce(args)),
        Command::Consume(args) => on_runtime(console::consume(args)),
        Command::Perf { command } => on_runtime(async move {
            match command {
                PerfCommand::Produce(args) => perf::produce(args).await,
                PerfCommand::Consume(args) => perf::consume(args).await,
            }
        }),
        Command::Quorum { command: QuorumCommand::Describe { status: _, replication, bootstrap_server } } => {
            on_runtime(async move {
                if replication {
                    cluster::quorum_replication(&bootstrap_server).await
                } else {
                    cluster::quorum_status(&bootstrap_server).await
                }
            })
        }
        Command::Dev { command: DevCommand::Cluster { nodes, brokers, dir, base_port, overrides } } => {
            let overrides = topics::parse_configs(&overrides)?;
            dev::cluster(dev::Layout { nodes, brokers, dir, base_port, overrides })
        }
        Command::Cluster { command: ClusterCommand::Describe { bootstrap_server } } => {
            on_runtime(async move { cluster::describe(&bootstrap_server).await })
        }
        Command::ReassignPartitions {
            generate,
            execute,
            verify,
            list,
            cancel: _,
            additional,
            topics_to_move_json_file,
            broker_list,
            reassignment_json_file,
            bootstrap_server,
        } => on_runtime(async move {
            let bootstrap = bootstrap_server.as_str();
            match (topics_to_move_json_file, broker_list, reassignment_json_file) {
                (Some(topics), Some(brokers), _) if generate => reassign::generate(bootstrap, &topics, &brokers).await,
                (.., Some(plan)) if execute => reassign::execute(bootstrap, &plan, additional).await,
                (.., Some(plan)) if verify => reassign::verify(bootstrap, &plan).await,
                _ if list => reassign::list_ongoing(bootstrap).await,
                (.., Some(plan)) => reassign::cancel(bootstrap, &plan).await,
                _ => anyhow::bail!("choose one of --generate, --execute, --verify, --list, --cancel"),
            }
        }),
        Command::LeaderElection { election_type, all_topic_partitions, topic, partition, bootstrap_server } => {
            on_runtime(async move {
                let partitions = match (all_topic_partitions, topic, partition) {
                    (true, ..) => None,
                    (false, Some(topic), Some(partition)) => Some(vec![(topic, partition)]),
                    _ => anyhow::bail!("give --all-topic-partitions, or --topic with --partition"),
                };
                cluster::elect(&bootstrap_server, &election_type, partitions).await
            })
        }
    }
}

/// Connects as the tools do: a short timeout, so a broker that is down is reported quickly;
/// `tool` is the client id the brokers see.
pub(crate) async fn connect(bootstrap: &str, tool: &str) -> Result<fjord_client::Client> {
    Ok(fjord_client::Client::with_options(bootstrap, tool, std::time::Duration::from_secs(10)).await?)
}

/// Runs a client tool on a small runtime of its own.
fn on_runtime(run: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    // Two workers: connection readers stamp responses as they arrive while the tool works.
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?.block_on(run)
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
