//! The node's place in the cluster (Kafka's `KRaftConfigs`, `QuorumConfig`): its roles, the
//! controller listener, the quorum's voters and timers, and the controller's duties, with the
//! checks that stop a node that could never join with one clear line.

use fjord_quorum::{NodeId, QuorumConfig, Voter, VoterSet};

use super::{ConfigError, Listener, Props};

/// Which parts of Fjord a process runs (`process.roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// Serves clients and hosts partitions.
    pub broker: bool,
    /// Votes in the metadata quorum and may be the active controller.
    pub controller: bool,
}

impl std::fmt::Display for Roles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match (self.broker, self.controller) {
            (true, true) => "broker,controller",
            (true, false) => "broker",
            _ => "controller",
        })
    }
}

/// How this node takes part in the cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `process.roles` (default `broker,controller`).
    pub roles: Roles,
    /// The listener of `controller.listener.names` this node binds, for the node-to-node
    /// RPCs (quorum, registration, heartbeats, forwarded admin requests); none on a node that
    /// is its own only voter and names none.
    pub controller_listener: Option<Listener>,
    /// `controller.quorum.voters`; a combined node with none configured is its own only voter.
    pub voters: VoterSet,
    /// `controller.quorum.*` timers and limits.
    pub quorum: QuorumConfig,
    /// `metadata.log.max.record.bytes.between.snapshots` (20 MiB).
    pub snapshot_bytes: u64,
    /// `metadata.max.idle.interval.ms` (500): an idle active controller writes a no-op this
    /// often, so the metadata log's end moves and brokers can show they are caught up.
    pub max_idle_interval_ms: u64,
    /// `inter.broker.listener.name` (the first client listener by default).
    pub inter_broker_listener_name: String,
    /// `auto.leader.rebalance.enable` (true).
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds` (300), in ms.
    pub leader_imbalance_check_interval_ms: u64,
    /// `controlled.shutdown.enable` (true).
    pub controlled_shutdown_enable: bool,
    /// `fjord.broker.liveness.probe.enable` (true): the active controller probes the listeners
    /// of a broker that missed a heartbeat and fences it at once if they all refuse (its
    /// process is gone), instead of waiting for `broker.session.timeout.ms`.
    pub broker_liveness_probe: bool,
}

impl ClusterConfig {
    /// Whether the quorum has voters other than this node (a real cluster, not one node).
    pub fn is_multi_node(&self, node_id: i32) -> bool {
        self.voters.ids().any(|id| id != NodeId(node_id)) || !self.roles.controller
    }
}

fn refuse(name: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError { name: name.into(), value: value.into(), reason: reason.into() }
}

/// Reads the cluster properties of node `node_id`, given all its listeners and the names of
/// the controller listeners.
pub(super) fn parse(
    props: &Props<'_>,
    node_id: i32,
    all_listeners: &[Listener],
    controller_names: &[String],
) -> Result<ClusterConfig, ConfigError> {
    let get = |name: &str| props.get(name);
    let roles_text = props.text("process.roles");
    let mut roles = Roles { broker: false, controller: false };
    for role in roles_text.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        match role {
            "broker" => roles.broker = true,
            "controller" => roles.controller = true,
            other => {
                return Err(refuse(
                    "process.roles",
                    &roles_text,
                    format!("unknown role {other:?}; use broker, controller or both"),
                ));
            }
        }
    }
    if !roles.broker && !roles.controller {
        return Err(refuse("process.roles", &roles_text, "give broker, controller or broker,controller"));
    }
    let controller_listener = all_listeners.iter().find(|l| controller_names.contains(&l.name)).cloned();
    let voters_text = get("controller.quorum.voters");
    let voters = match &voters_text {
        Some(text) if !text.is_empty() => {
            VoterSet::parse(text).map_err(|e| refuse("controller.quorum.voters", text, e.to_string()))?
        }
        _ if get("controller.quorum.bootstrap.servers").is_some_and(|b| !b.is_empty()) => {
            let text = get("controller.quorum.bootstrap.servers").unwrap_or_default();
            return Err(refuse(
                "controller.quorum.bootstrap.servers",
                &text,
                "dynamic quorums (KIP-853) are not supported yet: list the voters in controller.quorum.voters (id@host:port,...)",
            ));
        }
        _ => {
            if !roles.controller {
                return Err(refuse(
                    "controller.quorum.voters",
                    "",
                    "a broker without the controller role must name the controllers it reaches (id@host:port,...)",
                ));
            }
            // One combined node: its own only voter, reached at its controller listener if any.
            let endpoint =
                controller_listener.as_ref().map(|l| fjord_quorum::Endpoint { host: l.host.clone(), port: l.port });
            let key = fjord_quorum::ReplicaKey::of(node_id);
            VoterSet::new([Voter { key, endpoint }])
                .map_err(|e| refuse("controller.quorum.voters", "", e.to_string()))?
        }
    };
    let text = voters_text.unwrap_or_default();
    let is_voter = voters.contains_id(NodeId(node_id));
    if roles.controller && !is_voter {
        return Err(refuse(
            "controller.quorum.voters",
            &text,
            format!("node.id {node_id} has the controller role but is not one of the voters"),
        ));
    }
    if !roles.controller && is_voter {
        return Err(refuse(
            "process.roles",
            &roles_text,
            format!("node.id {node_id} is one of controller.quorum.voters, so it needs the controller role"),
        ));
    }
    if roles.controller && voters.len() > 1 {
        let Some(listener) = &controller_listener else {
            return Err(refuse(
                "listeners",
                &get("listeners").unwrap_or_default(),
                format!(
                    "a controller needs a listener named in controller.listener.names ({})",
                    controller_names.join(",")
                ),
            ));
        };
        if let Some(own) = voters.get(NodeId(node_id)).and_then(|v| v.endpoint.as_ref())
            && own.port != listener.port
        {
            return Err(refuse(
                "controller.quorum.voters",
                &text,
                format!(
                    "voter {node_id} is at port {} but its controller listener is on port {}",
                    own.port, listener.port
                ),
            ));
        }
    }
    if (voters.len() > 1 || !roles.controller)
        && let Some(voter) = voters.voters().find(|v| v.endpoint.is_none())
    {
        return Err(refuse("controller.quorum.voters", &text, format!("voter {} has no host:port", voter.key.id)));
    }
    let mut quorum = QuorumConfig::default();
    for name in QuorumConfig::PROPERTIES {
        if let Some(value) = get(name) {
            quorum.set(name, &value).map_err(|e| refuse(name, &value, e.to_string()))?;
        }
    }
    quorum.validate().map_err(|e| refuse("controller.quorum.*", "", e.to_string()))?;
    let client_listener = all_listeners.iter().find(|l| !controller_names.contains(&l.name));
    let inter_broker_listener_name = match get("inter.broker.listener.name") {
        Some(name) => {
            if !all_listeners.iter().any(|l| l.name == name) || controller_names.contains(&name) {
                return Err(refuse("inter.broker.listener.name", &name, "not one of the (non-controller) listeners"));
            }
            name
        }
        None => client_listener.map(|l| l.name.clone()).unwrap_or_default(),
    };
    Ok(ClusterConfig {
        roles,
        controller_listener,
        voters,
        quorum,
        snapshot_bytes: props.setting("metadata.log.max.record.bytes.between.snapshots")?,
        max_idle_interval_ms: props.setting("metadata.max.idle.interval.ms")?,
        inter_broker_listener_name,
        auto_leader_rebalance_enable: props.setting("auto.leader.rebalance.enable")?,
        leader_imbalance_check_interval_ms: props
            .setting::<u64>("leader.imbalance.check.interval.seconds")?
            .saturating_mul(1000),
        controlled_shutdown_enable: props.setting("controlled.shutdown.enable")?,
        broker_liveness_probe: props.setting("fjord.broker.liveness.probe.enable")?,
    })
}

/// Refuses two listeners on the same host and port.
pub(super) fn check_ports(listeners: &[Listener], value: &str) -> Result<(), ConfigError> {
    for (i, a) in listeners.iter().enumerate() {
        if let Some(b) = listeners[i + 1..].iter().find(|b| b.port == a.port && b.port != 0 && (b.host == a.host)) {
            return Err(refuse(
                "listeners",
                value,
                format!("{} and {} both use {}:{}", a.name, b.name, a.host, a.port),
            ));
        }
    }
    Ok(())
}
