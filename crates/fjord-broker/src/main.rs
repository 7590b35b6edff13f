//! `fjord`: the broker and its tools in one binary.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use fjord_broker::{BrokerConfig, Server, properties};
use fjord_log::{DumpOptions, dump_file};

mod args;
mod console;
mod groups_cli;
mod perf;
mod topics_cli;

use args::{Cli, Command, GroupsCommand, PerfCommand, TopicsCommand};

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
                    use groups_cli::{ResetScope, ResetTo};
                    let scope = if all_topics { ResetScope::AllTopics } else { ResetScope::Topics(topics) };
                    let to = match (to_earliest, to_latest, to_offset, to_datetime, shift_by) {
                        (true, ..) => ResetTo::Earliest,
                        (_, true, ..) => ResetTo::Latest,
                        (_, _, Some(o), ..) => ResetTo::Offset(o),
                        (_, _, _, Some(t), _) => ResetTo::Datetime(groups_cli::parse_datetime(&t)?),
                        (.., Some(n)) => ResetTo::ShiftBy(n),
                        _ => anyhow::bail!("choose where to reset to (--to-earliest, --to-latest, ...)"),
                    };
                    groups_cli::reset_offsets(&bootstrap_server, &group, scope, to, execute).await
                }
                GroupsCommand::Delete { groups, bootstrap_server } => {
                    groups_cli::delete(&bootstrap_server, &groups).await
                }
            }
        }),
        Command::Produce(args) => tool(console::produce(args)),
        Command::Consume(args) => tool(console::consume(args)),
        Command::Perf { command } => tool(async move {
            match command {
                PerfCommand::Produce(args) => perf::produce(args).await,
                PerfCommand::Consume(args) => perf::consume(args).await,
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
    // Two workers: connection readers stamp responses as they arrive while the tool works.
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?.block_on(run)
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
