//! The load generators and peers: building or finding `rdkafka_performance` and tansu, running
//! them and parsing what they print.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A command line's arguments, split at spaces.
pub(super) fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

/// The number just before `suffix` in `line` (`"12.5 records/sec"` -> 12.5).
pub(super) fn number_before(line: &str, suffix: &str) -> Option<f64> {
    let head = &line[..line.find(suffix)?];
    head.rsplit([' ', '(']).next()?.parse().ok()
}

/// A load generator's run: what it printed, and how busy its busiest thread was.
pub(super) struct ToolRun {
    pub(super) stdout: String,
    /// CPU time of the generator's busiest thread over the wall time of the run's middle part
    /// (from a fifth of the way in to the end), from `/proc/PID/task/*/schedstat`. Near 1.0 the
    /// generator itself set the pace, whatever broker was on the other side.
    pub(super) busiest_thread: f64,
}

/// Runs a load generator to completion, sampling its threads' CPU time every 20 ms.
pub(super) fn run_tool(program: &Path, args: &[String]) -> Result<ToolRun> {
    let mut child = Command::new(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", program.display()))?;
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().context("no stdout")?));
    let stderr = drain(Box::new(child.stderr.take().context("no stderr")?));
    let started = Instant::now();
    let mut samples: Vec<(f64, HashMap<u32, u64>)> = Vec::new();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        samples.push((started.elapsed().as_secs_f64(), thread_cpu_ns(child.id())));
        std::thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = (stdout.join().unwrap_or_default(), stderr.join().unwrap_or_default());
    if !status.success() {
        bail!("{} {} failed: {}", program.display(), args.join(" "), stderr.lines().last().unwrap_or(""));
    }
    Ok(ToolRun { stdout, busiest_thread: busiest_share(&samples) })
}

/// CPU nanoseconds so far of each thread of `pid` (empty once it is gone).
fn thread_cpu_ns(pid: u32) -> HashMap<u32, u64> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return HashMap::new() };
    tasks
        .filter_map(|task| {
            let task = task.ok()?;
            let tid = task.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            Some((tid, stat.split_whitespace().next()?.parse().ok()?))
        })
        .collect()
}

/// The busiest thread's CPU share between the sample a fifth of the way in and the last one
/// (start-up and connection set-up are left out).
fn busiest_share(samples: &[(f64, HashMap<u32, u64>)]) -> f64 {
    let Some((end, last)) = samples.last() else { return 0.0 };
    let Some((start, first)) = samples.iter().find(|(t, _)| *t >= end / 5.0) else { return 0.0 };
    if end <= start {
        return 0.0;
    }
    let busiest = last.iter().map(|(tid, ns)| ns.saturating_sub(first.get(tid).copied().unwrap_or(0))).max();
    busiest.unwrap_or(0) as f64 / 1e9 / (end - start)
}

/// The last row of `rdkafka_performance -u`'s table, as column name -> value.
fn rdkafka_last_row(text: &str) -> Result<HashMap<String, f64>> {
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| l.trim_matches('|').split('|').map(str::trim).collect())
        .collect();
    let header = rows.iter().find(|r| r.first() == Some(&"elapsed")).context("no table header")?;
    let last = rows.iter().rev().find(|r| r.first() != Some(&"elapsed")).context("no table row")?;
    Ok(header.iter().zip(last).filter_map(|(k, v)| Some(((*k).to_owned(), v.parse().ok()?))).collect())
}

/// Runs `rdkafka_performance` and returns its elapsed seconds, after checking that its `count`
/// column (`dr` delivered, `msgs` consumed) reached `records`, and its busiest thread's share.
pub(super) fn rdkafka_seconds(program: &Path, args: &[String], count: &str, records: u64) -> Result<(f64, f64)> {
    let run = run_tool(program, args)?;
    let row = rdkafka_last_row(&run.stdout)?;
    if row.get(count).copied().unwrap_or(0.0) < records as f64 {
        bail!("rdkafka_performance {count} {:?} of {records}", row.get(count));
    }
    Ok((row.get("elapsed").copied().context("no elapsed column")? / 1000.0, run.busiest_thread))
}

/// Builds (once) and returns librdkafka's `rdkafka_performance`.
pub(super) fn rdkafka_performance() -> Result<PathBuf> {
    let cache = home()?.join(".cache/fjord/rdkafka_performance");
    let binary = cache.join("rdkafka_performance");
    if binary.exists() {
        return Ok(binary);
    }
    std::fs::create_dir_all(&cache)?;
    // The librdkafka the Python client tests use (the confluent-kafka wheel bundles one).
    let python = home()?.join(".cache/fjord/venv/bin/python");
    let python = if python.exists() { python } else { PathBuf::from("python3") };
    let output = Command::new(&python)
        .args(["-c", "import confluent_kafka, os; print(os.path.dirname(confluent_kafka.__file__))"])
        .output()
        .context("cannot run python")?;
    if !output.status.success() {
        bail!("confluent-kafka is not installed (run tests/clients/install.sh first)");
    }
    let package = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let libs = package.with_file_name("confluent_kafka.libs");
    let library = std::fs::read_dir(&libs)
        .with_context(|| format!("no {}", libs.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("librdkafka")))
        .context("no librdkafka in the confluent-kafka wheel")?;
    let local_library = cache.join(library.file_name().context("name")?);
    std::fs::copy(&library, &local_library)?;
    // Its sources: the librdkafka tree inside the rdkafka-sys crate.
    let source = match find_rdkafka_sys()? {
        Some(source) => source,
        None => {
            let scratch = cache.join("fetch");
            std::fs::create_dir_all(scratch.join("src"))?;
            std::fs::write(
                scratch.join("Cargo.toml"),
                "[package]\nname = \"fetch-rdkafka-sys\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n\
                 [dependencies]\nrdkafka-sys = \"=4.10.0\"\n\n[workspace]\n",
            )?;
            std::fs::write(scratch.join("src/lib.rs"), "")?;
            let status = Command::new("cargo").arg("fetch").current_dir(&scratch).status()?;
            if !status.success() {
                bail!("cargo fetch of rdkafka-sys failed");
            }
            find_rdkafka_sys()?.context("rdkafka-sys fetched but not found in ~/.cargo/registry")?
        }
    };
    let tree = cache.join("tree");
    let _ = std::fs::remove_dir_all(&tree);
    for part in ["src", "examples"] {
        std::fs::create_dir_all(tree.join(part))?;
        let status = Command::new("cp").arg("-r").arg(source.join(part).join(".")).arg(tree.join(part)).status()?;
        if !status.success() {
            bail!("cannot copy librdkafka's {part} from {}", source.display());
        }
    }
    // The few settings librdkafka's configure script would write that the example's headers read.
    std::fs::write(tree.join("config.h"), include_str!("rdkafka_config.h"))?;
    let library_name = local_library.file_name().context("name")?.to_string_lossy().into_owned();
    let status = Command::new("gcc")
        .args(["-O2", "-w", "-D_GNU_SOURCE"])
        .arg("-I")
        .arg(tree.join("src"))
        .arg("-o")
        .arg(&binary)
        .arg(tree.join("examples/rdkafka_performance.c"))
        .arg("-L")
        .arg(&cache)
        .arg(format!("-l:{library_name}"))
        .args(["-lpthread", "-lm", "-Wl,-rpath,$ORIGIN"])
        .status()
        .context("cannot run gcc")?;
    if !status.success() {
        bail!("building rdkafka_performance failed");
    }
    Ok(binary)
}

fn find_rdkafka_sys() -> Result<Option<PathBuf>> {
    let registry = home()?.join(".cargo/registry/src");
    let Ok(indexes) = std::fs::read_dir(&registry) else { return Ok(None) };
    for index in indexes.flatten() {
        let Ok(crates) = std::fs::read_dir(index.path()) else { continue };
        for krate in crates.flatten() {
            let name = krate.file_name().to_string_lossy().into_owned();
            if name.starts_with("rdkafka-sys-") && krate.path().join("librdkafka/examples").exists() {
                return Ok(Some(krate.path().join("librdkafka")));
            }
        }
    }
    Ok(None)
}

fn home() -> Result<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from).context("HOME is not set")
}

pub(super) fn find_tansu() -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("FJORD_TANSU").map(PathBuf::from).into_iter().collect();
    if let Ok(home) = home() {
        candidates.push(home.join(".cache/fjord/tansu/bin/tansu"));
    }
    candidates.push(PathBuf::from("/tmp/peers/tansu/bin/tansu"));
    candidates.into_iter().find(|p| p.exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdkafka_tables_parse() {
        let text = "% Sending 1000 messages\n\
            |    elapsed |       msgs |      bytes |         dr |\n\
            |        575 |    1000000 |  100000000 |    1000000 |\n";
        let row = rdkafka_last_row(text).unwrap();
        assert_eq!(row["elapsed"], 575.0);
        assert_eq!(row["dr"], 1_000_000.0);
    }

    #[test]
    fn perf_lines_parse() {
        let line = "30000 records sent, 513533.3 records/sec (48.97 MB/sec), 0.33 ms avg latency, 3.31 ms max latency, \
                    0.28 ms 50th, 0.43 ms 95th, 2.21 ms 99th, 3.01 ms 99.9th.";
        assert_eq!(number_before(line, " records/sec"), Some(513_533.3));
        assert_eq!(number_before(line, " ms 99th"), Some(2.21));
        assert_eq!(number_before(line, " ms 99.9th"), Some(3.01));
    }
}
