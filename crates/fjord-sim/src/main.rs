//! `fjord-sim`: runs seeds of the quorum simulation (`cargo xtask sim` calls it in release).
//!
//! ```text
//! fjord-sim [--seeds N] [--first S] [--seed S] [--bug NAME] [--trace] [--elections N]
//! ```
//! - `--seeds N` runs N seeds from `--first` (default 0); `--seed S` runs one seed and prints its
//!   trace; `--trace` prints every line of it.
//! - `--bug NAME` switches on a planted bug (`vote-not-persisted`, `commit-before-flush`,
//!   `hw-past-old-epoch`, `truncate-below-hw`, `no-check-quorum`, `restart-as-leader`,
//!   `reused-correlation-ids`) and
//!   stops at the first seed that catches it.
//! - `--consequences` leaves out the two checks that look at a mechanism (a vote on disk when
//!   granted, the high watermark on a majority of disks), to see a bug's consequences caught.
//! - `--elections N` measures the election time after leader loss over N seeds.
//!
//! Exits non-zero when a seed breaks an invariant (unless hunting a bug, where finding one is
//! the point and not finding one is the failure).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use std::time::Instant;

use fjord_sim::checkers::Coverage;
use fjord_sim::{Bug, Outcome, RunOptions, election_after_leader_loss, run};

struct Args {
    seeds: u64,
    first: u64,
    seed: Option<u64>,
    bug: Option<Bug>,
    trace: bool,
    consequences: bool,
    elections: Option<u64>,
}

fn parse() -> Result<Args, String> {
    let mut args =
        Args { seeds: 1_000, first: 0, seed: None, bug: None, trace: false, consequences: false, elections: None };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        let number = |text: String| text.parse::<u64>().map_err(|_| format!("not a number: {text}"));
        match arg.as_str() {
            "--seeds" => args.seeds = number(value("--seeds")?)?,
            "--first" => args.first = number(value("--first")?)?,
            "--seed" => args.seed = Some(number(value("--seed")?)?),
            "--bug" => args.bug = Some(value("--bug")?.parse()?),
            "--trace" => args.trace = true,
            "--consequences" => args.consequences = true,
            "--elections" => args.elections = Some(number(value("--elections")?)?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn report(outcome: &Outcome) {
    println!("seed {} ({}):", outcome.seed, outcome.setup);
    if let Some(violation) = &outcome.violation {
        println!("  VIOLATION {violation}");
    }
    println!(
        "  {} events, {} virtual ms, {} leaders elected, committed up to {}",
        outcome.events, outcome.virtual_ms, outcome.elections, outcome.committed
    );
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("fjord-sim: {message}");
            }
            eprintln!(
                "usage: fjord-sim [--seeds N] [--first S] [--seed S] [--bug NAME] [--consequences] [--trace] [--elections N]"
            );
            return ExitCode::from(2);
        }
    };
    if let Some(count) = args.elections {
        let started = Instant::now();
        let mut times = Vec::new();
        for seed in args.first..args.first + count {
            match election_after_leader_loss(seed) {
                Ok(ms) => times.push(ms),
                Err(violation) => {
                    println!("seed {seed}: {violation}");
                    return ExitCode::FAILURE;
                }
            }
        }
        times.sort_unstable();
        let mean = times.iter().sum::<i64>() as f64 / times.len() as f64;
        println!(
            "election after leader loss, 3 voters, Kafka's default timeouts, {} seeds ({:.1} s real):",
            times.len(),
            started.elapsed().as_secs_f64()
        );
        println!(
            "  virtual ms: min {} p50 {} p90 {} p99 {} max {} mean {mean:.0}",
            times[0],
            percentile(&times, 0.5),
            percentile(&times, 0.9),
            percentile(&times, 0.99),
            times[times.len() - 1]
        );
        return ExitCode::SUCCESS;
    }
    if let Some(seed) = args.seed {
        let outcome =
            run(&RunOptions { seed, bug: args.bug, full_trace: args.trace, consequences_only: args.consequences });
        for line in &outcome.trace {
            println!("{line}");
        }
        report(&outcome);
        return if outcome.violation.is_some() == args.bug.is_some() { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    }
    let started = Instant::now();
    let mut events = 0;
    let mut virtual_ms = 0;
    let mut elections = 0;
    let mut coverage = Coverage::default();
    let mut recoveries = Vec::new();
    for seed in args.first..args.first + args.seeds {
        let outcome = run(&RunOptions { seed, bug: args.bug, full_trace: false, consequences_only: args.consequences });
        events += outcome.events;
        virtual_ms += outcome.virtual_ms;
        elections += outcome.elections;
        coverage += outcome.coverage;
        recoveries.extend(outcome.recovery_ms);
        if let Some(violation) = &outcome.violation {
            if let Some(bug) = args.bug {
                println!(
                    "bug {bug} caught by [{}] at seed {seed} after {} seeds",
                    violation.checker,
                    seed - args.first + 1
                );
                report(&outcome);
                println!("replay: fjord-sim --seed {seed} --bug {bug}");
                return ExitCode::SUCCESS;
            }
            for line in &outcome.trace {
                println!("{line}");
            }
            report(&outcome);
            println!("replay: fjord-sim --seed {seed}");
            return ExitCode::FAILURE;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let seeds = args.seeds as f64;
    println!(
        "{} seeds passed in {elapsed:.1} s ({:.0} seeds/minute; {events} events, {:.0} virtual s)",
        args.seeds,
        seeds / elapsed * 60.0,
        virtual_ms as f64 / 1000.0
    );
    println!(
        "  exercised: {elections} leaders elected, {} votes granted, {} crashes losing {} unflushed batches, \
         {} stops on injected disk faults, {} partitions, {} failed requests, {} stalls, {} disks wiped, \
         {} truncations, {} snapshots created, {} loaded",
        coverage.votes_granted,
        coverage.crashes,
        coverage.lost_batches,
        coverage.storage_failures,
        coverage.partitions,
        coverage.failed_requests,
        coverage.stalls,
        coverage.wipes,
        coverage.truncations,
        coverage.snapshots_created,
        coverage.snapshot_loads
    );
    if !recoveries.is_empty() {
        recoveries.sort_unstable();
        println!(
            "  after healing, a proposal committed within (virtual ms): p50 {} p99 {} max {} (bound {})",
            percentile(&recoveries, 0.5),
            percentile(&recoveries, 0.99),
            recoveries[recoveries.len() - 1],
            fjord_sim::LIVENESS_BOUND_MS
        );
    }
    if let Some(bug) = args.bug {
        println!("bug {bug} was NOT caught");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
