//! `cargo xtask jepsen [--runs N] [--seed S] [--time SECONDS] [--nemesis NAME,...]`: the fault
//! harness (`tests/clients/jepsen_harness.py`) against the release build, with the real clients
//! the suite installs. Each run's history, verdict and node logs stay in
//! `target/jepsen/<unix time>/`, next to the table it prints; a failed run names its seed.

use std::path::Path;

use anyhow::{Result, bail};

/// Runs the harness with `args` passed through.
pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    crate::run("cargo", &["build", "--locked", "--release", "-p", "fjord", "--bin", "fjord"], &[])?;
    crate::run("bash", &["tests/clients/install.sh"], &[])?;
    let cache = std::env::var("FJORD_CACHE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| Path::new(&std::env::var("HOME").unwrap_or_default()).join(".cache/fjord"));
    let python = cache.join("venv/bin/python");
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let results = root.join("target/jepsen").join(stamp.to_string());
    let bin = root.join("target/release/fjord");
    let mut harness: Vec<String> = vec!["tests/clients/jepsen_harness.py".into()];
    harness.extend(args.iter().cloned());
    harness.extend(["--results".into(), results.display().to_string()]);
    let harness: Vec<&str> = harness.iter().map(String::as_str).collect();
    let python = python.display().to_string();
    let bin = bin.display().to_string();
    if let Err(e) = crate::run(&python, &harness, &[("FJORD_BIN", &bin), ("PYTHONDONTWRITEBYTECODE", "1")]) {
        bail!("{e}; histories and logs are in {}", results.display());
    }
    println!("histories and logs: {}", results.display());
    Ok(())
}
