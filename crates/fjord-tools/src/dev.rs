//! `fjord dev cluster`: a local cluster on 127.0.0.1 for trying Fjord out and for tests — one
//! `fjord server` child process per node, each with its own property file and data directory
//! under one working directory, stopped together on Ctrl-C or SIGTERM.
//!
//! Node `i` (from 1) listens for clients on `base_port + 2(i-1)` and for the controllers on
//! the port after it, so with the default base port the first node is at 127.0.0.1:9092,
//! where every `fjord` tool connects by default.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How `fjord dev cluster` lays the cluster out.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// Controller nodes (combined broker+controller unless `brokers` > 0).
    pub(crate) nodes: u16,
    /// Broker-only nodes; with any, the first `nodes` nodes are controllers only.
    pub(crate) brokers: u16,
    /// The working directory (property files, data, logs).
    pub(crate) dir: PathBuf,
    /// Node 1's client port.
    pub(crate) base_port: u16,
    /// Properties added to every node.
    pub(crate) overrides: Vec<(String, String)>,
}

/// One node of the layout.
#[derive(Debug, Clone)]
struct Node {
    id: u16,
    controller: bool,
    broker: bool,
    client_port: u16,
    controller_port: u16,
}

impl Layout {
    fn nodes(&self) -> Vec<Node> {
        let split = self.brokers > 0;
        (1..=self.nodes + self.brokers)
            .map(|id| {
                let client_port = self.base_port + 2 * (id - 1);
                Node {
                    id,
                    controller: id <= self.nodes,
                    broker: !split || id > self.nodes,
                    client_port,
                    controller_port: client_port + 1,
                }
            })
            .collect()
    }

    /// Each node's `server.properties`.
    fn properties(&self, node: &Node, all: &[Node]) -> String {
        let voters: Vec<String> =
            all.iter().filter(|n| n.controller).map(|n| format!("{}@127.0.0.1:{}", n.id, n.controller_port)).collect();
        let roles = match (node.broker, node.controller) {
            (true, true) => "broker,controller",
            (true, false) => "broker",
            _ => "controller",
        };
        let mut listeners = Vec::new();
        if node.broker {
            listeners.push(format!("PLAINTEXT://127.0.0.1:{}", node.client_port));
        }
        if node.controller {
            listeners.push(format!("CONTROLLER://127.0.0.1:{}", node.controller_port));
        }
        let mut text = format!(
            "# Written by `fjord dev cluster`: node {} of {}.\n\
             process.roles={roles}\nnode.id={}\ncontroller.quorum.voters={}\n\
             controller.listener.names=CONTROLLER\nlisteners={}\nlog.dirs={}\n",
            node.id,
            all.len(),
            node.id,
            voters.join(","),
            listeners.join(","),
            self.node_dir(node.id).join("data").display(),
        );
        if node.broker {
            text.push_str(&format!("advertised.listeners=PLAINTEXT://127.0.0.1:{}\n", node.client_port));
            text.push_str("inter.broker.listener.name=PLAINTEXT\n");
        }
        for (k, v) in &self.overrides {
            text.push_str(&format!("{k}={v}\n"));
        }
        text
    }

    fn node_dir(&self, id: u16) -> PathBuf {
        self.dir.join(format!("node-{id}"))
    }

    /// The client bootstrap list.
    fn bootstrap(&self) -> String {
        self.nodes()
            .iter()
            .filter(|n| n.broker)
            .map(|n| format!("127.0.0.1:{}", n.client_port))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Starts the cluster and supervises it until Ctrl-C or SIGTERM.
pub(crate) fn cluster(layout: Layout) -> Result<()> {
    if layout.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    let nodes = layout.nodes();
    if u32::from(layout.base_port) + 2 * nodes.len() as u32 > u32::from(u16::MAX) {
        bail!("--base-port {} leaves no room for {} nodes", layout.base_port, nodes.len());
    }
    let exe = std::env::current_exe().context("cannot find the fjord executable")?;
    let mut children: Vec<(u16, Child)> = Vec::new();
    let started = (|| -> Result<()> {
        for node in &nodes {
            let dir = layout.node_dir(node.id);
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
            let props = dir.join("server.properties");
            std::fs::write(&props, layout.properties(node, &nodes))
                .with_context(|| format!("cannot write {}", props.display()))?;
            let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("server.log"))?;
            let child = Command::new(&exe)
                .arg("server")
                .arg(&props)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("cannot start node {}", node.id))?;
            eprintln!("node {} started (pid {}, {})", node.id, child.id(), dir.display());
            children.push((node.id, child));
        }
        wait_until_ready(&layout, &mut children)
    })();
    if let Err(e) = started {
        stop_all(&mut children);
        return Err(e);
    }
    println!("cluster ready: --bootstrap-server {}", layout.bootstrap());
    println!("logs: {}/node-*/server.log; Ctrl-C stops every node", layout.dir.display());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut check = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = check.tick() => {
                    for (id, child) in &mut children {
                        if let Ok(Some(status)) = child.try_wait() {
                            eprintln!("node {id} exited ({status}); see its server.log");
                        }
                    }
                    children.retain_mut(|(_, c)| matches!(c.try_wait(), Ok(None)));
                    if children.is_empty() {
                        bail!("every node has exited");
                    }
                }
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    stop_all(&mut children);
    Ok(())
}

/// Waits until every broker answers Metadata listing every broker.
fn wait_until_ready(layout: &Layout, children: &mut [(u16, Child)]) -> Result<()> {
    let brokers: Vec<String> =
        layout.nodes().iter().filter(|n| n.broker).map(|n| format!("127.0.0.1:{}", n.client_port)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    for address in &brokers {
        loop {
            for (id, child) in children.iter_mut() {
                if let Some(status) = child.try_wait()? {
                    let log = layout.node_dir(*id).join("server.log");
                    bail!("node {id} exited during start-up ({status}):\n{}", tail(&log));
                }
            }
            let seen = runtime.block_on(async {
                let client =
                    fjord_client::Client::with_options(address, "fjord-dev-cluster", Duration::from_secs(2)).await;
                client.map(|c| c.known_brokers().len()).unwrap_or(0)
            });
            if seen == brokers.len() {
                break;
            }
            if Instant::now() > deadline {
                bail!("{address} did not see all {} brokers within 60 s", brokers.len());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// SIGTERM to every node (each makes its controlled shutdown), then SIGKILL after 30 s.
fn stop_all(children: &mut Vec<(u16, Child)>) {
    for (_, child) in children.iter() {
        // std can only SIGKILL a child; kill(1) sends the SIGTERM that starts a clean stop.
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for (id, child) in children.iter_mut() {
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    eprintln!("node {id} stopped ({status})");
                    break;
                }
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    eprintln!("node {id} killed after 30 s");
                    break;
                }
            }
        }
    }
    children.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(nodes: u16, brokers: u16) -> Layout {
        Layout { nodes, brokers, dir: PathBuf::from("/tmp/x"), base_port: 9092, overrides: Vec::new() }
    }

    #[test]
    fn combined_and_split_layouts_name_their_voters_and_listeners() {
        let combined = layout(3, 0);
        let nodes = combined.nodes();
        let second = combined.properties(&nodes[1], &nodes);
        assert!(second.contains("process.roles=broker,controller\nnode.id=2\n"), "{second}");
        assert!(second.contains("controller.quorum.voters=1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097"));
        assert!(second.contains("listeners=PLAINTEXT://127.0.0.1:9094,CONTROLLER://127.0.0.1:9095"));
        assert_eq!(combined.bootstrap(), "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096");
        let split = layout(3, 2);
        let nodes = split.nodes();
        let controller = split.properties(&nodes[0], &nodes);
        assert!(controller.contains("process.roles=controller\n") && !controller.contains("PLAINTEXT"));
        let broker = split.properties(&nodes[4], &nodes);
        assert!(broker.contains("process.roles=broker\nnode.id=5\n"), "{broker}");
        assert!(broker.contains("listeners=PLAINTEXT://127.0.0.1:9100\n"));
        assert_eq!(split.bootstrap(), "127.0.0.1:9098,127.0.0.1:9100");
    }
}
