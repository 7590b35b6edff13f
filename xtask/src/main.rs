//! `cargo xtask`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! - `ci`: everything CI checks — `lint`, `bench --test`, then `test`.
//! - `lint`: rustfmt --check, clippy -D warnings, rustdoc -D warnings, `tidy`.
//! - `test`: the whole test suite (the README's test command): Rust tests, doc tests, the
//!   examples, then the real-client suite in `tests/clients` against the `fjord` binary.
//! - `tidy`: the dependency rules of DESIGN.md and the house rules of STYLE.md.
//! - `sim [--seeds N] [--seed S] [--bug NAME] ...`: the deterministic simulation of the quorum
//!   (`fjord-sim`) in release; without arguments, 10,000 seeds, every planted bug's hunt and the
//!   election-time measurement.
//! - `jepsen [--runs N] [--seed S] [--time SECONDS] [--nemesis NAME,...]`: faults (kill -9,
//!   SIGSTOP, restarts) against a real cluster under real clients, every history checked
//!   (`tests/clients/jepsen_harness.py`); results under `target/jepsen/`.
//! - `fuzz [TARGET] [SECONDS]`: runs a cargo-fuzz target (`decode_request`, `decode_batch`) with
//!   nightly, bounded in time and memory.
//! - `bench [log|e2e] [--full] [--test]`: criterion benches next to the machine's own bounds
//!   (`dd`), with ratios (`log`), then the end-to-end run with `rdkafka_performance`, `fjord
//!   perf` and tansu side by side (`e2e`; `--full` adds the 10M-record matrix). `--test` only
//!   checks that every bench and the end-to-end harness still run.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod e2e;
mod jepsen;
mod sim;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = project_root();
    std::env::set_current_dir(&root)?;
    match args.first().map(String::as_str) {
        Some("ci") => {
            lint()?;
            bench::run(&root, true)?;
            e2e::run(&root, true, false)?;
            test()
        }
        Some("lint") => lint(),
        Some("test") => test(),
        Some("tidy") => tidy::run(&root),
        Some("bench") => {
            let has = |flag: &str| args.iter().any(|a| a == flag);
            let (log, e2e) = (!has("e2e"), !has("log"));
            if log {
                bench::run(&root, has("--test"))?;
            }
            if e2e {
                e2e::run(&root, has("--test"), has("--full"))?;
            }
            Ok(())
        }
        Some("fuzz") => fuzz(&args[1..]),
        Some("sim") => sim::run(&args[1..]),
        Some("jepsen") => jepsen::run(&root, &args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci|lint|test|tidy|bench [log|e2e] [--full] [--test]|sim [ARGS]|jepsen [ARGS]|fuzz [TARGET] [SECONDS]>"
            );
            bail!("unknown or missing task");
        }
    }
}

fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace root").to_path_buf()
}

/// Runs a command, echoing it, and fails if it fails.
pub(crate) fn run(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result<()> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .status()
        .with_context(|| format!("cannot run {program}"))?;
    if !status.success() {
        bail!("`{program} {}` failed with {status}", args.join(" "));
    }
    Ok(())
}

fn lint() -> Result<()> {
    run("cargo", &["fmt", "--all", "--check"], &[])?;
    run("cargo", &["clippy", "--workspace", "--all-targets", "--locked", "--", "-D", "warnings"], &[])?;
    run("cargo", &["doc", "--workspace", "--no-deps", "--locked"], &[("RUSTDOCFLAGS", "-D warnings")])?;
    tidy::run(&project_root())
}

/// The examples `cargo xtask test` runs (package, example); each asserts what it demonstrates.
/// Examples that need a running broker (fjord-client's) are only built.
const EXAMPLES: &[(&str, &str)] =
    &[("fjord-examples", "log_as_wal"), ("fjord-examples", "quorum_in_process"), ("fjord-retention", "expire_wal")];

fn test() -> Result<()> {
    // Doc tests and the examples (which assert what they show) first: nextest runs neither,
    // and its summary should be the last word.
    run("cargo", &["test", "--workspace", "--doc", "--locked"], &[])?;
    for (package, example) in EXAMPLES {
        run("cargo", &["run", "--quiet", "--locked", "-p", package, "--example", example], &[])?;
    }
    let profile = if std::env::var_os("CI").is_some() { "ci" } else { "default" };
    run("cargo", &["nextest", "run", "--workspace", "--locked", "--profile", profile], &[])?;
    // Real Kafka clients (kafka-python, confluent-kafka, kcat, kafkajs) against the fjord
    // binary; the script installs them (cached under ~/.cache/fjord) and runs pytest.
    run("cargo", &["build", "--locked", "-p", "fjord", "--bin", "fjord"], &[])?;
    run("bash", &["tests/clients/run.sh"], &[])
}

/// Runs a fuzz target for a bounded time. Needs the nightly toolchain and cargo-fuzz.
fn fuzz(args: &[String]) -> Result<()> {
    let target = args.first().map_or("decode_request", String::as_str);
    let seconds = args.get(1).map_or("60", String::as_str);
    if Command::new("cargo").args(["fuzz", "--version"]).output().map(|o| !o.status.success()).unwrap_or(true) {
        run("cargo", &["install", "cargo-fuzz", "--locked"], &[])?;
    }
    let max_time = format!("-max_total_time={seconds}");
    std::env::set_current_dir(project_root().join("fuzz"))?;
    run(
        "cargo",
        &["+nightly", "fuzz", "run", target, "--", &max_time, "-malloc_limit_mb=512", "-rss_limit_mb=2048"],
        &[],
    )
}
