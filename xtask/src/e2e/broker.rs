//! The brokers under test: starting one on a free port, creating topics, reading its CPU time
//! and RSS from /proc.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::Kind;

/// A broker process under test; killed, and its data removed, when dropped.
pub(super) struct Broker {
    child: Child,
    pub(super) address: String,
    kind: Kind,
    dir: PathBuf,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Broker {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// User plus system CPU seconds the broker has used.
    pub(super) fn cpu_seconds(&self, ticks_per_second: f64) -> Result<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
        let rest = stat.rsplit_once(')').context("/proc stat")?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields[11].parse()?;
        let stime: f64 = fields[12].parse()?;
        Ok((utime + stime) / ticks_per_second)
    }

    /// (VmRSS, VmHWM) in KiB.
    pub(super) fn rss_kib(&self) -> Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok((field("VmRSS:"), field("VmHWM:")))
    }
}

/// Paths to the programs a run needs.
pub(super) struct Programs {
    pub(super) fjord: PathBuf,
    pub(super) rdkafka: Option<PathBuf>,
    pub(super) tansu: Option<PathBuf>,
    /// Another fjord binary to compare with (`$FJORD_BASELINE`).
    pub(super) baseline: Option<PathBuf>,
}

impl Programs {
    fn baseline(&self) -> Result<&PathBuf> {
        self.baseline.as_ref().context("no baseline binary ($FJORD_BASELINE)")
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_for_port(address: &str, child: &mut Child, limit: Duration) -> Result<Duration> {
    let start = Instant::now();
    loop {
        if TcpStream::connect(address).is_ok() {
            return Ok(start.elapsed());
        }
        if let Some(status) = child.try_wait()? {
            bail!("the broker exited with {status} before listening on {address}");
        }
        if start.elapsed() > limit {
            bail!("nothing listens on {address} after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Starts a fresh broker; returns it and how long it took to accept connections.
pub(super) fn start(kind: Kind, programs: &Programs, scratch: &Path) -> Result<(Broker, Duration)> {
    let port = free_port()?;
    let address = format!("127.0.0.1:{port}");
    let dir = scratch.join(format!("broker-{port}"));
    std::fs::create_dir_all(&dir)?;
    let mut command = match kind {
        Kind::Fjord | Kind::FjordBaseline => {
            let binary = if kind == Kind::Fjord { &programs.fjord } else { programs.baseline()? };
            let mut c = Command::new(binary);
            c.arg("server")
                .args(["--override", &format!("listeners=PLAINTEXT://{address}")])
                .args(["--override", &format!("log.dirs={}", dir.join("data").display())])
                .args(["--override", "group.initial.rebalance.delay.ms=0"]);
            c
        }
        Kind::TansuMemory => {
            let mut c = Command::new(programs.tansu.as_ref().context("no tansu binary")?);
            let url = format!("tcp://{address}");
            c.arg("broker")
                .args(["--listener-url", &url, "--advertised-listener-url", &url])
                .args(["--storage-engine", "memory://tansu/"]);
            c
        }
    };
    let mut child = command
        .current_dir(&dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("broker.log"))?)
        .spawn()
        .with_context(|| format!("cannot start {}", kind.name()))?;
    let startup = wait_for_port(&address, &mut child, Duration::from_secs(20))?;
    Ok((Broker { child, address, kind, dir }, startup))
}

pub(super) fn create_topic(broker: &Broker, programs: &Programs, topic: &str, partitions: u32) -> Result<()> {
    let output = match broker.kind {
        Kind::Fjord | Kind::FjordBaseline => Command::new(&programs.fjord)
            .args(["topics", "create", "--topic", topic, "--partitions", &partitions.to_string()])
            .args(["--bootstrap-server", &broker.address])
            .output()?,
        Kind::TansuMemory => Command::new(programs.tansu.as_ref().context("no tansu binary")?)
            .args(["topic", "create", "--broker", &format!("tcp://{}", broker.address)])
            .args(["--partitions", &partitions.to_string(), topic])
            .current_dir(&broker.dir)
            .output()?,
    };
    if !output.status.success() {
        bail!("creating {topic} on {}: {}", broker.kind.name(), String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}

pub(super) fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}
