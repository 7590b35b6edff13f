//! `cargo xtask bench`: every figure next to the machine's own bound measured in the same run.
//!
//! The machine is noisy, so each bound is the median of three `dd` runs over the same number of
//! bytes the benchmark moves, and each result is reported as a ratio to it as well as in GB/s.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

const APPEND_MIB: u64 = 512;
const READ_MIB: u64 = 512;
const RECOVERY_MIB: u64 = 1024;

pub(crate) fn run(root: &Path, test_only: bool) -> Result<()> {
    if test_only {
        // Each bench once, on small inputs: they must keep compiling and running.
        let small = [("FJORD_BENCH_APPEND_MIB", "4"), ("FJORD_BENCH_READ_MIB", "4"), ("FJORD_BENCH_RECOVERY_MIB", "4")];
        return crate::run("cargo", &["bench", "--workspace", "--locked", "--", "--test"], &small);
    }
    let scratch = root.join("target/bench-scratch");
    std::fs::create_dir_all(&scratch)?;
    let dd_file = scratch.join("dd.bin");
    let dd_file = dd_file.to_str().context("UTF-8 path")?;

    eprintln!("measuring the machine: dd buffered write and page-cache read of {APPEND_MIB} MiB, 3 runs each");
    let mut writes = Vec::new();
    let mut reads = Vec::new();
    for _ in 0..3 {
        let _ = std::fs::remove_file(dd_file);
        writes.push(dd(&["if=/dev/zero", &format!("of={dd_file}"), "bs=16k", &format!("count={}", APPEND_MIB * 64)])?);
        reads.push(dd(&[&format!("if={dd_file}"), "of=/dev/null", "bs=1M"])?);
    }
    let _ = std::fs::remove_file(dd_file);
    let dd_write = median(&mut writes);
    let dd_read = median(&mut reads);

    let sizes = [
        ("FJORD_BENCH_APPEND_MIB", APPEND_MIB.to_string()),
        ("FJORD_BENCH_READ_MIB", READ_MIB.to_string()),
        ("FJORD_BENCH_RECOVERY_MIB", RECOVERY_MIB.to_string()),
    ];
    let env: Vec<(&str, &str)> = sizes.iter().map(|(k, v)| (*k, v.as_str())).collect();
    crate::run("cargo", &["bench", "-p", "fjord-log", "--bench", "log", "--locked"], &env)?;

    let criterion = root.join("target/criterion");
    let append = throughput(&criterion, "append", "16KiB-batches")?;
    let read = throughput(&criterion, "read", "file-ranges")?;
    let recovery = throughput(&criterion, "recovery", "full-scan")?;
    let crc = throughput(&criterion, "batch", "validate-crc")?;

    let gb = |bytes_per_second: f64| bytes_per_second / 1e9;
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let mut report = String::new();
    writeln!(report, "# fjord-log benchmarks (GB = 10^9 bytes; medians)\n")?;
    writeln!(
        report,
        "machine, same run: dd buffered write {:.2} GB/s, dd page-cache read {:.2} GB/s\n",
        gb(dd_write),
        gb(dd_read)
    )?;
    writeln!(report, "| benchmark | fjord | ratio to dd | target | verdict |")?;
    writeln!(report, "|---|---|---|---|---|")?;
    writeln!(
        report,
        "| append 16 KiB batches of 100 B records, page cache | {:.2} GB/s | {:.2} x dd write | >= 0.75 x dd write | {} |",
        gb(append),
        append / dd_write,
        verdict(append >= 0.75 * dd_write)
    )?;
    writeln!(
        report,
        "| sequential read through file ranges (pread) | {:.2} GB/s | {:.2} x dd read | >= 4 GB/s | {} |",
        gb(read),
        read / dd_read,
        verdict(read >= 4e9)
    )?;
    writeln!(
        report,
        "| recovery scan (CRC + structure + index rebuild) of {RECOVERY_MIB} MiB | {:.2} GB/s | {:.2} x dd read | >= 2 GB/s | {} |",
        gb(recovery),
        recovery / dd_read,
        verdict(recovery >= 2e9)
    )?;
    writeln!(report, "| batch CRC-32C validation (16 KiB, in memory) | {:.2} GB/s | - | - | - |", gb(crc))?;
    let out_dir = root.join("bench-results");
    std::fs::create_dir_all(&out_dir)?;
    std::fs::write(out_dir.join("log.md"), &report)?;
    println!("{report}");
    println!("written to bench-results/log.md; criterion's reports are in target/criterion");
    Ok(())
}

/// Runs dd and returns bytes per second, from its own summary line.
pub(crate) fn dd(args: &[&str]) -> Result<f64> {
    let output = Command::new("dd").args(args).output().context("cannot run dd")?;
    if !output.status.success() {
        bail!("dd {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
    }
    // "536870912 bytes (537 MB, 512 MiB) copied, 0.41 s, 1.3 GB/s"
    let text = String::from_utf8_lossy(&output.stderr);
    let line = text.lines().find(|l| l.contains("copied")).context("dd printed no summary")?;
    let bytes: f64 = line.split_whitespace().next().context("bytes")?.parse()?;
    let seconds: f64 = line
        .split(", ")
        .find(|part| part.ends_with(" s"))
        .and_then(|part| part.trim_end_matches(" s").replace(',', ".").parse().ok())
        .context("seconds")?;
    Ok(bytes / seconds)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Bytes per second from criterion's saved median and declared throughput.
fn throughput(criterion: &Path, group: &str, name: &str) -> Result<f64> {
    let dir = criterion.join(group).join(name).join("new");
    let estimates: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("estimates.json"))?)?;
    let benchmark: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("benchmark.json"))?)?;
    let nanos = estimates["median"]["point_estimate"].as_f64().context("median")?;
    let bytes = benchmark["throughput"]["Bytes"].as_f64().context("throughput in bytes")?;
    Ok(bytes / (nanos / 1e9))
}
