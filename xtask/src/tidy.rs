//! The rules a reviewer would otherwise have to remember (DESIGN.md, STYLE.md).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Which Fjord crates each crate may depend on (normal dependencies). A new crate must be
/// added here, which makes its place in the layering a reviewed decision.
const ALLOWED: &[(&str, &[&str])] = &[
    ("fjord-types", &[]),
    ("fjord-protocol", &["fjord-types"]),
    ("fjord-log", &["fjord-types"]),
    ("fjord-retention", &["fjord-types", "fjord-log"]),
    ("fjord-replication", &["fjord-types", "fjord-log", "fjord-protocol"]),
    ("fjord-quorum", &["fjord-types", "fjord-log"]),
    ("fjord-metadata", &["fjord-types"]),
    ("fjord-coordinator", &["fjord-types", "fjord-protocol"]),
    ("fjord-client", &["fjord-types", "fjord-protocol", "fjord-log"]),
    (
        "fjord-sim",
        &["fjord-types", "fjord-log", "fjord-quorum", "fjord-replication", "fjord-metadata", "fjord-coordinator"],
    ),
    (
        "fjord-broker",
        &[
            "fjord-types",
            "fjord-protocol",
            "fjord-log",
            "fjord-retention",
            "fjord-replication",
            "fjord-quorum",
            "fjord-metadata",
            "fjord-coordinator",
        ],
    ),
    ("fjord-tools", &["fjord-types", "fjord-log", "fjord-client"]),
    ("fjord", &["fjord-broker", "fjord-tools"]),
    ("fjord-examples", &["*"]),
    ("fjord-tests", &["*"]),
    ("xtask", &[]),
];

/// The state machines: no async runtime, no network, no wall clock, no ambient randomness.
const CORES: &[&str] =
    &["fjord-log", "fjord-retention", "fjord-replication", "fjord-quorum", "fjord-metadata", "fjord-coordinator"];

/// The broker is a library that embedders link: no command-line parsing, no client, no
/// `anyhow` (its errors are typed).
const FORBIDDEN_IN_BROKER: &[&str] = &["clap", "anyhow", "fjord-client"];

/// Crates a core may not depend on, directly.
const FORBIDDEN_IN_CORES: &[&str] = &["tokio", "tonic", "rand", "mio", "hyper"];

/// Source patterns a core may not contain outside its tests.
const FORBIDDEN_PATTERNS: &[&str] =
    &["SystemTime::now", "Instant::now", "SystemClock", "thread::sleep", "thread_rng", "rand::random", "tokio::"];

/// Crates held to more: no hash maps, whose iteration
/// order would make a simulated run unrepeatable. The simulator's library is held to the cores'
/// rules as well (its binary, `main.rs`, times the run and is exempt).
const STRICT: &[&str] = &["fjord-quorum", "fjord-sim"];
const STRICT_PATTERNS: &[&str] = &["HashMap", "HashSet"];

pub(crate) fn run(root: &Path) -> Result<()> {
    let output = Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--no-deps", "--locked"])
        .output()
        .context("cannot run cargo metadata")?;
    if !output.status.success() {
        bail!("cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let metadata: Value = serde_json::from_slice(&output.stdout)?;
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut problems = Vec::new();
    let packages = metadata["packages"].as_array().context("no packages")?;
    for package in packages {
        let name = package["name"].as_str().unwrap_or_default();
        let Some(rules) = allowed.get(name) else {
            problems.push(format!("{name}: not in xtask/src/tidy.rs ALLOWED; decide where it sits in the layering"));
            continue;
        };
        for dependency in package["dependencies"].as_array().into_iter().flatten() {
            let dep = dependency["name"].as_str().unwrap_or_default();
            let normal = dependency["kind"].is_null();
            if dep == "fjord-broker" && normal && name != "fjord" {
                problems.push(format!("{name} depends on fjord-broker: nothing but the fjord binary may"));
            }
            if normal && dep.starts_with("fjord-") && !rules.contains(&"*") && !rules.contains(&dep) {
                problems.push(format!("{name} may not depend on {dep} (DESIGN.md's dependency direction)"));
            }
            if normal && name == "fjord-broker" && FORBIDDEN_IN_BROKER.contains(&dep) {
                problems.push(format!("fjord-broker may not depend on {dep}: it is a library for embedders"));
            }
            if normal && CORES.contains(&name) && FORBIDDEN_IN_CORES.contains(&dep) {
                problems.push(format!("{name} is a core and may not depend on {dep}"));
            }
        }
        let manifest = Path::new(package["manifest_path"].as_str().unwrap_or_default());
        let crate_dir = manifest.parent().context("manifest has a directory")?;
        if CORES.contains(&name) || STRICT.contains(&name) {
            let mut patterns = FORBIDDEN_PATTERNS.to_vec();
            if STRICT.contains(&name) {
                patterns.extend_from_slice(STRICT_PATTERNS);
            }
            check_sources(&crate_dir.join("src"), &patterns, &mut problems)?;
        }
        let lib = crate_dir.join("src/lib.rs");
        if name.starts_with("fjord-") && lib.exists() && crate_dir.starts_with(root.join("crates")) {
            let text = std::fs::read_to_string(&lib)?;
            if !text.contains("#![warn(missing_docs)]") {
                problems.push(format!("{}: library crates warn on missing docs", lib.display()));
            }
        }
    }
    report_long_files(root)?;
    if problems.is_empty() {
        eprintln!("tidy: ok");
        return Ok(());
    }
    for problem in &problems {
        eprintln!("tidy: {problem}");
    }
    bail!("tidy found {} problem(s)", problems.len())
}

fn check_sources(dir: &Path, patterns: &[&str], problems: &mut Vec<String>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            check_sources(&path, patterns, problems)?;
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") || path.file_name().is_some_and(|n| n == "main.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        // Inline test modules may use the real clock; only the code above them counts.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for pattern in patterns {
            if code.contains(pattern) {
                problems.push(format!("{}: a core may not use {pattern}; take it as input", path.display()));
            }
        }
    }
    Ok(())
}

/// STYLE.md: files past ~600 lines are a smell. Reported, not failed.
fn report_long_files(root: &Path) -> Result<()> {
    fn walk(dir: &Path, out: &mut Vec<(usize, String)>) -> Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if path.is_dir() && !name.starts_with('.') && name != "target" {
                walk(&path, out)?;
            } else if path.extension().is_some_and(|e| e == "rs") {
                let lines = std::fs::read_to_string(&path)?.lines().count();
                if lines > 600 {
                    out.push((lines, path.display().to_string()));
                }
            }
        }
        Ok(())
    }
    let mut long = Vec::new();
    walk(root, &mut long)?;
    for (lines, path) in long {
        eprintln!("tidy: note: {path} has {lines} lines (STYLE.md: past ~600 is a smell)");
    }
    Ok(())
}
