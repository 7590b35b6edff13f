//! `cargo xtask sim [--seeds N] [--seed S] [--bug NAME] [...]`: the quorum simulation in
//! release, with the arguments passed on to `fjord-sim` (see `crates/fjord-sim/src/main.rs`).
//!
//! Without arguments it runs 10,000 seeds of mixed faults, every planted bug's hunt, and the
//! election-time measurement over 1000 seeds.

use anyhow::Result;

pub(crate) fn run(args: &[String]) -> Result<()> {
    let sim = |extra: &[&str]| {
        let mut command =
            vec!["run", "--quiet", "--release", "--locked", "-p", "fjord-sim", "--bin", "fjord-sim", "--"];
        command.extend_from_slice(extra);
        crate::run("cargo", &command, &[])
    };
    if !args.is_empty() {
        let passed: Vec<&str> = args.iter().map(String::as_str).collect();
        return sim(&passed);
    }
    sim(&["--seeds", "10000"])?;
    for bug in [
        "vote-not-persisted",
        "commit-before-flush",
        "hw-past-old-epoch",
        "truncate-below-hw",
        "no-check-quorum",
        "restart-as-leader",
        "reused-correlation-ids",
    ] {
        sim(&["--seeds", "1000", "--bug", bug])?;
        sim(&["--seeds", "1000", "--bug", bug, "--consequences"])?;
    }
    sim(&["--elections", "1000"])
}
