//! The brokers under test: starting one on a free port, creating topics, reading its CPU time
//! and RSS from /proc.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::Kind;

/// The broker processes under test (one, or a cluster's nodes); killed, and their data
/// removed, when dropped.
pub(super) struct Broker {
    children: Vec<Child>,
    /// The bootstrap address (every node's, comma-separated, for a cluster).
    pub(super) address: String,
    kind: Kind,
    dir: PathBuf,
}

impl Drop for Broker {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Broker {
    /// User plus system CPU seconds the broker's processes have used.
    pub(super) fn cpu_seconds(&self, ticks_per_second: f64) -> Result<f64> {
        let mut total = 0.0;
        for child in &self.children {
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id()))?;
            // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
            let rest = stat.rsplit_once(')').context("/proc stat")?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields[11].parse()?;
            let stime: f64 = fields[12].parse()?;
            total += (utime + stime) / ticks_per_second;
        }
        Ok(total)
    }

    /// (VmRSS, VmHWM) in KiB, summed over the processes.
    pub(super) fn rss_kib(&self) -> Result<(u64, u64)> {
        let (mut rss, mut peak) = (0, 0);
        for child in &self.children {
            let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()))?;
            let field = |name: &str| -> u64 {
                status
                    .lines()
                    .find(|l| l.starts_with(name))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            rss += field("VmRSS:");
            peak += field("VmHWM:");
        }
        Ok((rss, peak))
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

/// How many combined nodes a `Kind::FjordRf3` cluster has.
const CLUSTER_NODES: usize = 3;

/// Starts three combined broker+controller nodes, as a cluster's quickstart would; returns
/// them and how long until every node accepted connections.
fn start_cluster(programs: &Programs, scratch: &Path) -> Result<(Broker, Duration)> {
    let ports: Vec<(u16, u16)> = (0..CLUSTER_NODES).map(|_| Ok((free_port()?, free_port()?))).collect::<Result<_>>()?;
    let dir = scratch.join(format!("cluster-{}", ports[0].0));
    let voters: Vec<String> =
        ports.iter().enumerate().map(|(i, (_, controller))| format!("{}@127.0.0.1:{controller}", i + 1)).collect();
    let mut children = Vec::new();
    for (i, (client, controller)) in ports.iter().enumerate() {
        let node_dir = dir.join(format!("node-{}", i + 1));
        std::fs::create_dir_all(&node_dir)?;
        let overrides = [
            "process.roles=broker,controller".to_owned(),
            format!("node.id={}", i + 1),
            format!("controller.quorum.voters={}", voters.join(",")),
            "controller.listener.names=CONTROLLER".to_owned(),
            format!("listeners=PLAINTEXT://127.0.0.1:{client},CONTROLLER://127.0.0.1:{controller}"),
            format!("advertised.listeners=PLAINTEXT://127.0.0.1:{client}"),
            "inter.broker.listener.name=PLAINTEXT".to_owned(),
            format!("log.dirs={}", node_dir.join("data").display()),
            "group.initial.rebalance.delay.ms=0".to_owned(),
        ];
        let mut command = Command::new(&programs.fjord);
        command.arg("server");
        for o in &overrides {
            command.args(["--override", o]);
        }
        let child = command
            .current_dir(&node_dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(node_dir.join("broker.log"))?)
            .spawn()
            .context("cannot start a cluster node")?;
        children.push(child);
    }
    let started = Instant::now();
    let addresses: Vec<String> = ports.iter().map(|(client, _)| format!("127.0.0.1:{client}")).collect();
    for (address, child) in addresses.iter().zip(&mut children) {
        wait_for_port(address, child, Duration::from_secs(30))?;
    }
    let broker = Broker { children, address: addresses.join(","), kind: Kind::FjordRf3, dir };
    Ok((broker, started.elapsed()))
}

/// Starts a fresh broker; returns it and how long it took to accept connections.
pub(super) fn start(kind: Kind, programs: &Programs, scratch: &Path) -> Result<(Broker, Duration)> {
    if kind == Kind::FjordRf3 {
        return start_cluster(programs, scratch);
    }
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
        Kind::FjordRf3 => unreachable!("started above"),
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
    Ok((Broker { children: vec![child], address, kind, dir }, startup))
}

pub(super) fn create_topic(broker: &Broker, programs: &Programs, topic: &str, partitions: u32) -> Result<()> {
    let output = match broker.kind {
        Kind::Fjord | Kind::FjordBaseline => Command::new(&programs.fjord)
            .args(["topics", "create", "--topic", topic, "--partitions", &partitions.to_string()])
            .args(["--bootstrap-server", &broker.address])
            .output()?,
        Kind::FjordRf3 => {
            // The nodes accept connections before they have elected a controller and unfenced
            // one another: creating the topic is retried until three brokers can take it.
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let output = Command::new(&programs.fjord)
                    .args(["topics", "create", "--topic", topic, "--partitions", &partitions.to_string()])
                    .args(["--replication-factor", &CLUSTER_NODES.to_string()])
                    .args(["--config", "min.insync.replicas=2"])
                    .args(["--bootstrap-server", &broker.address])
                    .output()?;
                if output.status.success() || Instant::now() > deadline {
                    break output;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
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
