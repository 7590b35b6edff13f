//! `fjord`: the broker and its tools in one binary. `fjord server` runs `fjord-broker`; every
//! other verb is one of `fjord-tools`.

#![allow(clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use fjord_broker::{BrokerConfig, Server, properties};

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
    #[command(flatten)]
    Tool(fjord_tools::Command),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Server { file, overrides } => server(file, overrides),
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
