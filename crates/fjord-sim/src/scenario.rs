//! One simulated run: a cluster drawn from the seed, a client writing to it, a chaos phase of
//! mixed faults, then healing and the liveness checks. Also the leader-loss scenario whose
//! election time the sim tool measures.

use std::collections::BTreeSet;

use fjord_quorum::{Bug, NodeId, OffsetAndEpoch, Prng, QuorumConfig, RoleKind, SnapshotPolicy};
use fjord_types::Timestamp;

use crate::checkers::{Coverage, Violation};
use crate::network::Weather;
use crate::world::{Event, Input, World};

/// How long after healing a proposal must commit (virtual ms). Kafka's bound for electing a
/// leader is fetch timeout + 2 election timeouts + backoff (6 s); this leaves room for split
/// votes and for nodes that restart at the heal.
pub const LIVENESS_BOUND_MS: i64 = 20_000;
/// How long after that commit every node must have applied it.
pub const CATCH_UP_BOUND_MS: i64 = 15_000;

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOptions {
    /// The seed: the whole run follows from it.
    pub seed: u64,
    /// A planted bug to switch on in every node.
    pub bug: Option<Bug>,
    /// Keep every trace line, not only the last ones.
    pub full_trace: bool,
    /// Only the checkers of consequences (see [`crate::checkers::Checkers::consequences_only`]).
    pub consequences_only: bool,
}

impl RunOptions {
    /// Seed `seed`, everything else by default.
    pub fn seed(seed: u64) -> RunOptions {
        RunOptions { seed, bug: None, full_trace: false, consequences_only: false }
    }
}

/// What a run found.
#[derive(Debug)]
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// The first violation, if any.
    pub violation: Option<Violation>,
    /// The trace (its tail unless a full trace was asked for).
    pub trace: Vec<String>,
    /// Events processed.
    pub events: u64,
    /// Virtual time at the end.
    pub virtual_ms: i64,
    /// Leaders elected.
    pub elections: u64,
    /// The committed end of the log at the end.
    pub committed: i64,
    /// A one-line description of the cluster and the faults chosen.
    pub setup: String,
    /// What the run exercised.
    pub coverage: Coverage,
    /// How long after healing the first proposal committed (virtual ms).
    pub recovery_ms: Option<i64>,
}

struct Plan {
    chaos_end: Timestamp,
    wiped: bool,
    healed_at: Option<Timestamp>,
    marker: Option<OffsetAndEpoch>,
    marker_committed_at: Option<Timestamp>,
    done: bool,
}

fn weather(rng: &mut Prng) -> Weather {
    Weather {
        drop_rate: [0.0, 0.0, 0.02, 0.1, 0.3][rng.below(5) as usize],
        duplicate_rate: [0.0, 0.02, 0.1][rng.below(3) as usize],
        delay_min_ms: rng.range(1, 20),
        delay_jitter_ms: [1, 10, 50, 300][rng.below(4) as usize],
    }
}

/// Runs one seed of mixed faults.
pub fn run(options: &RunOptions) -> Outcome {
    let mut rng = Prng::new(options.seed);
    let voters = [1, 3, 3, 3, 3, 5, 5][rng.below(7) as usize];
    let observers = rng.below(3) as usize;
    let config = QuorumConfig {
        append_linger_ms: [0, 5, 25][rng.below(3) as usize],
        fetch_max_bytes: [400, 2_000, 8 * 1024 * 1024][rng.below(3) as usize],
        fetch_snapshot_max_bytes: [64, 100_000][rng.below(2) as usize],
        ..QuorumConfig::default()
    };
    let policy = SnapshotPolicy { max_bytes_between_snapshots: [300, 3_000, u64::MAX][rng.below(3) as usize] };
    let chaos_ms = rng.range(15_000, 30_000);
    let crash_after_vote = [0.0, 0.05, 0.3][rng.below(3) as usize];
    let bugs: BTreeSet<Bug> = options.bug.into_iter().collect();
    let setup = format!(
        "{voters} voters, {observers} observers, linger {} ms, fetch max {} B, snapshot every {} B, chaos {chaos_ms} ms, \
         crash after a vote {crash_after_vote}{}",
        config.append_linger_ms,
        config.fetch_max_bytes,
        policy.max_bytes_between_snapshots,
        options.bug.map_or(String::new(), |b| format!(", bug {b}"))
    );
    let world_rng = rng.fork();
    let mut world = World::new(world_rng, voters, observers, config, policy, bugs, options.full_trace);
    world.checkers.consequences_only = options.consequences_only;
    world.crash_after_vote = crash_after_vote;
    let initial = weather(&mut world.rng);
    world.network.set_weather(Weather { drop_rate: 0.0, duplicate_rate: 0.0, ..initial });
    world.trace.line(world.now, format!("SETUP seed {}: {setup}", options.seed));
    for index in 0..world.nodes.len() {
        world.start(index);
    }
    world.schedule(Timestamp(rng.range(500, 3_000)), Event::Chaos);
    world.schedule(Timestamp(100), Event::Propose);
    world.schedule(Timestamp(500), Event::Audit);
    world.schedule(Timestamp(chaos_ms), Event::Heal);
    let mut plan = Plan {
        chaos_end: Timestamp(chaos_ms),
        wiped: false,
        healed_at: None,
        marker: None,
        marker_committed_at: None,
        done: false,
    };
    while let Some((at, event)) = world.pop() {
        world.now = at;
        world.events += 1;
        handle(&mut world, &mut plan, event);
        if world.violation.is_some() || plan.done {
            break;
        }
        if let Err(violation) = world.checkers.global(&world.nodes) {
            world.fail(violation);
            break;
        }
        if at.0 > chaos_ms + LIVENESS_BOUND_MS + CATCH_UP_BOUND_MS + 10_000 {
            world.fail(Violation { checker: "liveness", at, message: "the run did not finish".into() });
            break;
        }
    }
    Outcome {
        seed: options.seed,
        violation: world.violation.take(),
        trace: world.trace.lines(),
        events: world.events,
        virtual_ms: world.now.0,
        elections: world.elections,
        committed: world.checkers.committed_end().0,
        setup,
        coverage: world.checkers.coverage,
        recovery_ms: plan.healed_at.zip(plan.marker_committed_at).map(|(h, c)| c.0 - h.0),
    }
}

fn handle(world: &mut World, plan: &mut Plan, event: Event) {
    match event {
        Event::Deliver { from, to, message } => world.deliver(from, to, message),
        Event::Wake { node, incarnation } => {
            let n = &world.nodes[node];
            if n.incarnation == incarnation && n.wake_at.is_some_and(|at| at <= world.now) {
                world.step(node, Input::Tick);
            }
        }
        Event::Restart { node } => {
            if !world.nodes[node].is_running() {
                world.start(node);
            }
        }
        Event::Resume { node, incarnation } => world.resume(node, incarnation),
        Event::Crash { node } => {
            if world.now < plan.chaos_end {
                world.crash(node, "flapping");
            }
        }
        Event::SendFailed { node, incarnation, to, correlation_id } => {
            let n = &world.nodes[node];
            if n.incarnation == incarnation && n.is_running() {
                world.checkers.coverage.failed_requests += 1;
                world.trace.line(world.now, format!("{:?}: its request #{correlation_id} to {to:?} failed", n.id));
                world.step(node, Input::RequestFailed(to, correlation_id));
            }
        }
        Event::HealNetwork => {
            if world.now < plan.chaos_end {
                world.network.heal();
                world.trace.line(world.now, "HEAL the network");
            }
        }
        Event::Chaos => {
            if world.now < plan.chaos_end {
                chaos(world, plan);
                let next = Timestamp(world.now.0 + world.rng.range(200, 2_500));
                world.schedule(next, Event::Chaos);
            }
        }
        Event::Propose => propose(world, plan),
        Event::Heal => heal(world, plan),
        Event::Audit => {
            world.check_quorum_liveness();
            audit_liveness(world, plan);
            let next = Timestamp(world.now.0 + 250);
            world.schedule(next, Event::Audit);
        }
    }
}

/// The client: a few `key=value` records at a time, to whoever it believes leads.
fn propose(world: &mut World, plan: &mut Plan) {
    let running = world.running_nodes();
    if running.is_empty() {
        world.schedule(Timestamp(world.now.0 + 100), Event::Propose);
        return;
    }
    let target = world
        .leader_hint
        .and_then(|id| world.index_of(id))
        .filter(|i| world.nodes[*i].is_running())
        .unwrap_or_else(|| running[world.rng.below(running.len() as u64) as usize]);
    let records = if plan.healed_at.is_some() && plan.marker_committed_at.is_none() {
        vec![format!("marker={}", world.now.0).into_bytes()]
    } else {
        (0..world.rng.range(1, 4)).map(|_| format!("k{}=v{}", world.rng.below(20), world.now.0).into_bytes()).collect()
    };
    let before = world.proposals.len();
    world.step(target, Input::Propose(records));
    if plan.healed_at.is_some() && plan.marker_committed_at.is_none() && world.proposals.len() > before {
        plan.marker = world.proposals.last().copied();
    }
    let pause = if plan.healed_at.is_some() { 200 } else { world.rng.range(30, 300) };
    world.schedule(Timestamp(world.now.0 + pause), Event::Propose);
}

/// Picks one fault.
fn chaos(world: &mut World, plan: &mut Plan) {
    let roll = world.rng.below(110);
    let running = world.running_nodes();
    let all: Vec<NodeId> = world.nodes.iter().map(|n| n.id).collect();
    let random_node = |world: &mut World| world.rng.below(world.nodes.len() as u64) as usize;
    let heal_later = |world: &mut World| {
        let at = Timestamp(world.now.0 + world.rng.range(1_000, 12_000));
        world.schedule(at, Event::HealNetwork);
    };
    match roll {
        0..=21 => {
            let index = random_node(world);
            crash_for_a_while(world, index);
        }
        22..=36 => {
            if let Some(index) = world.leader() {
                crash_for_a_while(world, index);
            }
        }
        37..=48 => {
            let index = random_node(world);
            let id = world.nodes[index].id;
            world.network.isolate(id, all.iter().copied());
            world.trace.line(world.now, format!("PARTITION {id:?} from everyone"));
            world.checkers.coverage.partitions += 1;
            heal_later(world);
        }
        49..=56 => {
            let group: BTreeSet<NodeId> = all.iter().copied().filter(|_| world.rng.chance(0.5)).collect();
            for a in &group {
                world.network.isolate(*a, all.iter().copied().filter(|b| !group.contains(b)));
            }
            world.trace.line(world.now, format!("PARTITION {group:?} | the rest"));
            world.checkers.coverage.partitions += 1;
            heal_later(world);
        }
        57..=62 => {
            // KAFKA-15489's split brain: the leader loses the voters but keeps the observers.
            if let Some(index) = world.leader() {
                let id = world.nodes[index].id;
                let voters: Vec<NodeId> = world.voters.ids().filter(|v| *v != id).collect();
                world.network.isolate(id, voters);
                world.trace.line(world.now, format!("PARTITION leader {id:?} from the other voters only"));
                world.checkers.coverage.partitions += 1;
                heal_later(world);
            }
        }
        63..=70 => {
            let a = all[world.rng.below(all.len() as u64) as usize];
            if world.rng.chance(0.5) {
                for b in &all {
                    world.network.block(*b, a);
                }
                world.trace.line(world.now, format!("PARTITION one way: nothing reaches {a:?}"));
            } else {
                let b = all[world.rng.below(all.len() as u64) as usize];
                world.network.block(a, b);
                world.trace.line(world.now, format!("PARTITION one way: {a:?} -> {b:?} cut"));
            }
            world.checkers.coverage.partitions += 1;
            heal_later(world);
        }
        71..=80 => {
            world.network.heal();
            world.trace.line(world.now, "HEAL the network");
        }
        81..=88 => {
            let weather = weather(&mut world.rng);
            world.network.set_weather(weather);
            world.trace.line(world.now, format!("WEATHER {weather}"));
        }
        89..=93 => {
            if let Some(&index) = running.get(world.rng.below(running.len().max(1) as u64) as usize) {
                world.nodes[index].probe.borrow_mut().fail_flush = true;
                world.trace.line(world.now, format!("DISK {:?}: its next fsync fails", world.nodes[index].id));
            }
        }
        94..=96 => {
            if let Some(&index) = running.get(world.rng.below(running.len().max(1) as u64) as usize) {
                world.nodes[index].probe.borrow_mut().fail_store_write = true;
                world
                    .trace
                    .line(world.now, format!("DISK {:?}: its next quorum-state write fails", world.nodes[index].id));
            }
        }
        97..=98 => {
            if let Some(index) = world.leader() {
                world.trace.line(world.now, format!("RESIGN leader {:?}", world.nodes[index].id));
                world.step(index, Input::Resign);
            }
        }
        100..=104 => {
            // SIGSTOP for 3 to 5 s, then SIGCONT: the node resumes with its old memory (a
            // leader that still thinks it leads, timers long past, answers long stale).
            let index = if world.rng.chance(0.5) { world.leader() } else { Some(random_node(world)) };
            if let Some(index) = index {
                let millis = world.rng.range(3_000, 5_001);
                world.stall(index, millis);
            }
        }
        105..=108 => {
            // A node that flaps: short lives, restarts at once, answers to its previous lives
            // still on the wire.
            let index = random_node(world);
            flap(world, index);
        }
        _ => {
            if !plan.wiped && world.voters.len() >= 3 {
                plan.wiped = true;
                let index = random_node(world);
                world.wipe(index);
                let at = Timestamp(world.now.0 + world.rng.range(100, 3_000));
                world.schedule(at, Event::Restart { node: index });
            }
        }
    }
}

fn flap(world: &mut World, index: usize) {
    if !world.nodes[index].is_running() {
        return;
    }
    let mut at = world.now.0;
    world.crash(index, "flapping");
    for _ in 0..world.rng.range(2, 5) {
        at += world.rng.range(0, 30);
        world.schedule(Timestamp(at), Event::Restart { node: index });
        at += world.rng.range(30, 400);
        world.schedule(Timestamp(at), Event::Crash { node: index });
    }
    let last = Timestamp(at + world.rng.range(0, 30));
    world.schedule(last, Event::Restart { node: index });
}

fn crash_for_a_while(world: &mut World, index: usize) {
    if !world.nodes[index].is_running() {
        return;
    }
    world.crash(index, "killed");
    let downtime = if world.rng.chance(0.3) { world.rng.range(0, 50) } else { world.rng.range(100, 6_000) };
    world.schedule(Timestamp(world.now.0 + downtime), Event::Restart { node: index });
}

/// The end of the chaos: every link up, calm weather, every node running.
fn heal(world: &mut World, plan: &mut Plan) {
    world.network.heal();
    world.network.set_weather(Weather { drop_rate: 0.0, duplicate_rate: 0.0, delay_min_ms: 2, delay_jitter_ms: 10 });
    for node in &world.nodes {
        *node.probe.borrow_mut() = Default::default();
    }
    world.trace.line(world.now, "HEAL everything: network, weather, disks; restart every node");
    for index in 0..world.nodes.len() {
        if !world.nodes[index].is_running() {
            world.start(index);
        }
    }
    plan.healed_at = Some(world.now);
}

/// After healing: a proposal commits within the bound, then every node catches up with it.
fn audit_liveness(world: &mut World, plan: &mut Plan) {
    let Some(healed) = plan.healed_at else { return };
    if plan.marker_committed_at.is_none() {
        if let Some(marker) = plan.marker
            && world.checkers.is_committed(marker)
        {
            plan.marker_committed_at = Some(world.now);
            world.trace.line(
                world.now,
                format!("LIVE: the proposal {marker:?} committed {} ms after healing", world.now.0 - healed.0),
            );
        } else if world.now.0 > healed.0 + LIVENESS_BOUND_MS {
            let leader = world.leader().map(|i| world.nodes[i].id);
            world.fail(Violation {
                checker: "liveness",
                at: world.now,
                message: format!("no proposal committed within {LIVENESS_BOUND_MS} ms of healing (leader {leader:?})"),
            });
        }
        return;
    }
    let (Some(committed_at), Some(marker)) = (plan.marker_committed_at, plan.marker) else { return };
    let behind: Vec<NodeId> = world
        .nodes
        .iter()
        .filter(|n| n.driver().is_none_or(|d| d.applied_offset() <= marker.offset))
        .map(|n| n.id)
        .collect();
    if behind.is_empty() {
        world.trace.line(world.now, "LIVE: every node applied it");
        plan.done = true;
    } else if world.now.0 > committed_at.0 + CATCH_UP_BOUND_MS {
        world.fail(Violation {
            checker: "liveness",
            at: world.now,
            message: format!("{behind:?} did not apply the committed proposal within {CATCH_UP_BOUND_MS} ms"),
        });
    }
}

/// The leader-loss scenario: three voters on a calm network elect a leader and commit; the
/// leader is killed at 5 s; returns how long (virtual ms) until another voter leads, or the
/// violation that stopped the run.
pub fn election_after_leader_loss(seed: u64) -> Result<i64, Violation> {
    let rng = Prng::new(seed);
    let policy = SnapshotPolicy { max_bytes_between_snapshots: u64::MAX };
    let mut world = World::new(rng, 3, 0, QuorumConfig::default(), policy, BTreeSet::new(), false);
    world.network.set_weather(Weather { drop_rate: 0.0, duplicate_rate: 0.0, delay_min_ms: 1, delay_jitter_ms: 5 });
    for index in 0..3 {
        world.start(index);
    }
    world.schedule(Timestamp(100), Event::Propose);
    let kill_at = Timestamp(5_000);
    let mut killed: Option<(NodeId, fjord_types::LeaderEpoch)> = None;
    let mut plan = Plan {
        chaos_end: Timestamp(0),
        wiped: false,
        healed_at: None,
        marker: None,
        marker_committed_at: None,
        done: false,
    };
    while let Some((at, event)) = world.pop() {
        if killed.is_none() && at >= kill_at {
            world.now = kill_at;
            let Some(index) = world.leader() else {
                return Err(Violation { checker: "liveness", at, message: "no leader before the kill".into() });
            };
            let epoch = world.nodes[index].driver().map(|d| d.node().epoch()).unwrap_or_default();
            killed = Some((world.nodes[index].id, epoch));
            world.crash(index, "killed for the measurement");
        }
        world.now = at;
        handle(&mut world, &mut plan, event);
        if let Some(violation) = world.violation.take() {
            return Err(violation);
        }
        if let Some((dead, epoch)) = killed
            && let Some(index) = world.leader()
        {
            let node = &world.nodes[index];
            if node.id != dead
                && node.driver().is_some_and(|d| d.node().epoch() > epoch && d.node().role() == RoleKind::Leader)
            {
                return Ok(world.now.0 - kill_at.0);
            }
        }
        if at.0 > 120_000 {
            return Err(Violation { checker: "liveness", at, message: "no new leader within 115 s".into() });
        }
    }
    Err(Violation { checker: "liveness", at: world.now, message: "the world ran out of events".into() })
}
