//! Brokers in the cluster (Kafka's `ClusterControlManager` and `BrokerHeartbeatManager`):
//! registration, heartbeats, fencing a broker whose session expired, unfencing one that has
//! caught up, and controlled shutdown.
//!
//! A broker registers with a new incarnation each time its process starts and gets a broker
//! epoch (the offset of its registration record). It starts fenced: it leads nothing and
//! Metadata does not list it. Its heartbeats (every `broker.heartbeat.interval.ms`) keep its
//! session; once its metadata has caught up to its registration it is unfenced. A broker
//! silent for `broker.session.timeout.ms` is fenced, and its leaderships move. A broker that
//! asks to shut down is put in controlled shutdown, its leaderships move first, and it is told
//! to shut down once it leads nothing and the other brokers have seen the moves.
//!
//! Sessions are the active controller's soft state ([`BrokerHeartbeatManager`]), not metadata:
//! a new active controller starts every session afresh, as Kafka's does.

use std::collections::BTreeMap;

use fjord_types::{BrokerId, Offset, Timestamp};

use super::election::{self, Placed};
use crate::error::ControllerError;
use crate::image::MetadataImage;
use crate::record::{Endpoint, MetadataRecord};

/// A broker's registration request (Kafka's BrokerRegistration, API 62).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationRequest {
    /// Its `node.id`.
    pub broker_id: BrokerId,
    /// A random id of this process.
    pub incarnation_id: [u8; 16],
    /// Its advertised listeners.
    pub listeners: Vec<Endpoint>,
    /// `broker.rack`.
    pub rack: Option<String>,
}

/// Registers a broker. A retry from the same process changes nothing; a new process of a
/// broker whose session is still alive is refused (DUPLICATE_BROKER_REGISTRATION), since two
/// processes would share an id; otherwise the broker is registered fenced, and any
/// leaderships the old process held move. The broker epoch is the registration record's offset.
pub fn register_broker(
    image: &MetadataImage,
    request: &RegistrationRequest,
    session_alive: bool,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    if let Some(existing) = image.brokers.get(&request.broker_id) {
        if existing.incarnation_id == request.incarnation_id {
            return Ok(Vec::new());
        }
        if session_alive && !existing.fenced {
            return Err(ControllerError::DuplicateBrokerRegistration(request.broker_id));
        }
    }
    let mut records = vec![MetadataRecord::RegisterBroker {
        broker_id: request.broker_id,
        incarnation_id: request.incarnation_id,
        listeners: request.listeners.clone(),
        rack: request.rack.clone(),
        fenced: true,
    }];
    records.extend(election::move_off(image, request.broker_id));
    Ok(records)
}

/// A broker's heartbeat (Kafka's BrokerHeartbeat, API 63).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatRequest {
    /// The broker.
    pub broker_id: BrokerId,
    /// Its registration's epoch.
    pub broker_epoch: i64,
    /// The last metadata offset it has applied.
    pub current_metadata_offset: Offset,
    /// It wants to be (or stay) fenced: not ready to serve.
    pub want_fence: bool,
    /// It wants to shut down (controlled shutdown).
    pub want_shut_down: bool,
}

/// What the controller answers a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatAnswer {
    /// Its metadata has reached its registration.
    pub is_caught_up: bool,
    /// It is fenced (after this heartbeat's records).
    pub is_fenced: bool,
    /// It may shut down now.
    pub should_shut_down: bool,
}

/// What the active controller remembers of each broker's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Session {
    last_contact: Timestamp,
    /// Heard from since this controller became active (not only assumed alive then).
    contacted: bool,
    metadata_offset: Offset,
    /// Set once, when its controlled shutdown moved its leaderships (KAFKA-14292): it may go
    /// when every other active broker has applied up to here.
    controlled_shutdown_offset: Option<Offset>,
}

/// The brokers' sessions on the active controller.
#[derive(Debug, Clone, Default)]
pub struct BrokerHeartbeatManager {
    sessions: BTreeMap<BrokerId, Session>,
}

impl BrokerHeartbeatManager {
    /// Every broker of `image` gets a fresh session at `now`: a controller that just became
    /// active has heard from nobody yet and must not fence everyone at once.
    pub fn new(image: &MetadataImage, now: Timestamp) -> BrokerHeartbeatManager {
        let sessions = image
            .brokers
            .keys()
            .map(|&b| {
                let session = Session {
                    last_contact: now,
                    contacted: false,
                    metadata_offset: Offset::NONE,
                    controlled_shutdown_offset: None,
                };
                (b, session)
            })
            .collect();
        BrokerHeartbeatManager { sessions }
    }

    /// Whether `broker` has been heard from within `session_timeout_ms` (a session this
    /// controller only assumed at its activation does not count: a broker that restarted
    /// meanwhile may register again at once).
    pub fn is_alive(&self, broker: BrokerId, now: Timestamp, session_timeout_ms: i64) -> bool {
        self.sessions.get(&broker).is_some_and(|s| s.contacted && now.0 - s.last_contact.0 <= session_timeout_ms)
    }

    /// Records a contact from `broker` (a registration or a heartbeat).
    pub fn touch(&mut self, broker: BrokerId, now: Timestamp, metadata_offset: Offset) {
        let session = self.sessions.entry(broker).or_insert(Session {
            last_contact: now,
            contacted: true,
            metadata_offset,
            controlled_shutdown_offset: None,
        });
        session.contacted = true;
        session.last_contact = session.last_contact.max(now);
        session.metadata_offset = session.metadata_offset.max(metadata_offset);
    }

    /// A new process of `broker` registered: its old controlled shutdown is over.
    pub fn registered(&mut self, broker: BrokerId, now: Timestamp) {
        let session = Session {
            last_contact: now,
            contacted: true,
            metadata_offset: Offset::NONE,
            controlled_shutdown_offset: None,
        };
        self.sessions.insert(broker, session);
    }

    /// The unfenced broker whose session expired longest ago, if any: the controller fences
    /// one broker per step (KAFKA-13173), so a burst of expiries cannot starve heartbeats.
    pub fn next_stale(&self, image: &MetadataImage, now: Timestamp, session_timeout_ms: i64) -> Option<BrokerId> {
        self.sessions
            .iter()
            .filter(|(b, s)| {
                now.0 - s.last_contact.0 > session_timeout_ms && image.brokers.get(b).is_some_and(|r| !r.fenced)
            })
            .min_by_key(|(_, s)| s.last_contact)
            .map(|(&b, _)| b)
    }

    /// Unfenced brokers not heard from for more than `after_ms`, or not at all since this
    /// controller became active: the ones worth asking whether their process is still there.
    /// (A new controller often takes over because the old one's node died, and the brokers on
    /// that node with it.)
    pub fn overdue(&self, image: &MetadataImage, now: Timestamp, after_ms: i64) -> Vec<(BrokerId, Timestamp)> {
        self.sessions
            .iter()
            .filter(|(b, s)| {
                let silent_for = if s.contacted { after_ms } else { 0 };
                now.0 - s.last_contact.0 > silent_for && image.brokers.get(b).is_some_and(|r| !r.fenced)
            })
            .map(|(&b, s)| (b, s.last_contact))
            .collect()
    }

    /// When `broker` was last heard from.
    pub fn last_contact(&self, broker: BrokerId) -> Option<Timestamp> {
        self.sessions.get(&broker).map(|s| s.last_contact)
    }

    fn others_reached(&self, image: &MetadataImage, broker: BrokerId, offset: Offset) -> bool {
        image
            .active_brokers()
            .filter(|b| b.broker_id != broker)
            .all(|b| self.sessions.get(&b.broker_id).is_some_and(|s| s.metadata_offset >= offset))
    }
}

fn leads_anything(image: &MetadataImage, broker: BrokerId) -> bool {
    election::all_partitions(image).any(|p: Placed<'_>| p.registration.leader == broker)
}

fn change(broker: BrokerId, epoch: i64, fenced: Option<bool>, shutting_down: Option<bool>) -> MetadataRecord {
    MetadataRecord::BrokerRegistrationChange {
        broker_id: broker,
        broker_epoch: epoch,
        fenced,
        in_controlled_shutdown: shutting_down,
    }
}

/// Fences `broker`: it leaves the ISRs and its leaderships move (Kafka's `handleBrokerFenced`).
pub fn fence_broker(image: &MetadataImage, broker: BrokerId) -> Vec<MetadataRecord> {
    let Some(registration) = image.brokers.get(&broker) else { return Vec::new() };
    if registration.fenced {
        return Vec::new();
    }
    let mut records = vec![change(broker, registration.broker_epoch, Some(true), Some(false))];
    records.extend(election::move_off(image, broker));
    records
}

/// Runs one heartbeat through Kafka's broker state machine (FENCED, UNFENCED,
/// CONTROLLED_SHUTDOWN): the records it causes and the answer. `next_offset` is where the
/// records will start, for a controlled shutdown's wait. The caller has already touched the
/// broker's session.
pub fn heartbeat(
    image: &MetadataImage,
    sessions: &mut BrokerHeartbeatManager,
    request: &HeartbeatRequest,
    next_offset: Offset,
) -> Result<(Vec<MetadataRecord>, HeartbeatAnswer), ControllerError> {
    let broker = request.broker_id;
    let registration = image.brokers.get(&broker).ok_or(ControllerError::BrokerNotRegistered(broker))?;
    if registration.broker_epoch != request.broker_epoch {
        return Err(ControllerError::StaleBrokerEpoch { broker, epoch: request.broker_epoch });
    }
    let epoch = registration.broker_epoch;
    let is_caught_up = request.current_metadata_offset.0 >= epoch;
    let shut_down_now = |records: Vec<MetadataRecord>| {
        let answer = HeartbeatAnswer { is_caught_up, is_fenced: true, should_shut_down: true };
        Ok((records, answer))
    };
    if registration.fenced {
        if request.want_shut_down {
            return shut_down_now(Vec::new());
        }
        if !request.want_fence && is_caught_up {
            let mut records = vec![change(broker, epoch, Some(false), Some(false))];
            records.extend(election::elect_offline(image, broker));
            return Ok((records, HeartbeatAnswer { is_caught_up, is_fenced: false, should_shut_down: false }));
        }
        return Ok((Vec::new(), HeartbeatAnswer { is_caught_up, is_fenced: true, should_shut_down: false }));
    }
    if request.want_shut_down {
        if !registration.in_controlled_shutdown {
            if !leads_anything(image, broker) && sessions.others_reached(image, broker, next_offset) {
                return shut_down_now(fence_broker(image, broker));
            }
            let mut records = vec![change(broker, epoch, None, Some(true))];
            records.extend(election::move_off(image, broker));
            if let Some(session) = sessions.sessions.get_mut(&broker) {
                // The offset of the last record of the moves.
                let moved_by = next_offset.plus(records.len() as i64 - 1);
                session.controlled_shutdown_offset.get_or_insert(moved_by);
            }
            return Ok((records, HeartbeatAnswer { is_caught_up, is_fenced: false, should_shut_down: false }));
        }
        let wait_for = sessions.sessions.get(&broker).and_then(|s| s.controlled_shutdown_offset).unwrap_or(next_offset);
        if !leads_anything(image, broker) && sessions.others_reached(image, broker, wait_for) {
            return shut_down_now(fence_broker(image, broker));
        }
        return Ok((Vec::new(), HeartbeatAnswer { is_caught_up, is_fenced: false, should_shut_down: false }));
    }
    if request.want_fence {
        let records = fence_broker(image, broker);
        return Ok((records, HeartbeatAnswer { is_caught_up, is_fenced: true, should_shut_down: false }));
    }
    Ok((Vec::new(), HeartbeatAnswer { is_caught_up, is_fenced: false, should_shut_down: false }))
}

/// One partition's outcome in an ElectLeaders request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionOutcome {
    /// A new leader was elected.
    Elected,
    /// The preferred replica leads already.
    NotNeeded,
    /// The preferred replica cannot lead now.
    PreferredNotAvailable,
    /// No replica can lead (unclean election: none is on an active broker).
    EligibleLeadersNotAvailable,
    /// No such partition.
    Unknown,
}

/// ElectLeaders' election types (`ElectionType`: 0 preferred, 1 unclean).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// The first replica leads if it is in the ISR and active.
    Preferred,
    /// A partition without a leader takes any replica on an active broker, even one outside
    /// the ISR (it may lack acknowledged records: the operator's explicit choice to lose them
    /// rather than stay offline).
    Unclean,
}

/// Each partition ElectLeaders named (or found), with its outcome.
pub type ElectionAnswers = Vec<((String, i32), ElectionOutcome)>;

/// ElectLeaders: runs `election` on each named partition, or with `None` on every partition
/// (then, as Kafka does, partitions that needed nothing are left out of the answer).
pub fn elect_leaders(
    image: &MetadataImage,
    election: ElectionType,
    partitions: Option<&[(String, i32)]>,
) -> (Vec<MetadataRecord>, ElectionAnswers) {
    let all = partitions.is_none();
    let asked: Vec<(String, i32)> = match partitions {
        Some(p) => p.to_vec(),
        None => image.topics.values().flat_map(|t| t.partitions.keys().map(move |&p| (t.name.clone(), p))).collect(),
    };
    let (records, outcomes) = match election {
        ElectionType::Preferred => elect_preferred(image, &asked),
        ElectionType::Unclean => elect_unclean(image, &asked),
    };
    let answers = asked
        .into_iter()
        .zip(outcomes)
        .filter(|(_, outcome)| !(all && *outcome == ElectionOutcome::NotNeeded))
        .collect();
    (records, answers)
}

/// Unclean elections for `partitions`: each one without a leader gets its first replica on
/// an active broker, which becomes its whole ISR.
fn elect_unclean(image: &MetadataImage, partitions: &[(String, i32)]) -> (Vec<MetadataRecord>, Vec<ElectionOutcome>) {
    let valid = |b: BrokerId| image.brokers.get(&b).is_some_and(|r| r.is_active());
    let mut records = Vec::new();
    let outcomes = partitions
        .iter()
        .map(|(topic, partition)| {
            let Some(t) = image.topics.get(topic) else { return ElectionOutcome::Unknown };
            let Some(registration) = t.partitions.get(partition) else { return ElectionOutcome::Unknown };
            if !registration.leader.is_none() {
                return ElectionOutcome::NotNeeded;
            }
            let placed = Placed { topic_id: t.id, partition: *partition, registration };
            match election::unclean(&placed, &valid) {
                Some(record) => {
                    records.push(record);
                    ElectionOutcome::Elected
                }
                None => ElectionOutcome::EligibleLeadersNotAvailable,
            }
        })
        .collect();
    (records, outcomes)
}

/// The automatic unclean elections (Kafka's, with `unclean.leader.election.enable`): every
/// partition without a leader whose topic allows it (its override, else `default_enabled`,
/// the controller's own setting) and that has a replica on an active broker gets that replica
/// as leader and sole ISR member. Returns the partitions elected and the records.
pub fn elect_unclean_where_allowed(
    image: &MetadataImage,
    default_enabled: bool,
) -> (Vec<(String, i32)>, Vec<MetadataRecord>) {
    let allowed = |configs: &std::collections::BTreeMap<String, String>| {
        configs.get(UNCLEAN_ELECTION).map_or(default_enabled, |v| v.trim().eq_ignore_ascii_case("true"))
    };
    let leaderless: Vec<(String, i32)> = image
        .topics
        .values()
        .filter(|t| allowed(&t.configs))
        .flat_map(|t| t.partitions.iter().filter(|(_, p)| p.leader.is_none()).map(|(&p, _)| (t.name.clone(), p)))
        .collect();
    let (records, outcomes) = elect_unclean(image, &leaderless);
    let elected =
        leaderless.into_iter().zip(outcomes).filter(|(_, o)| *o == ElectionOutcome::Elected).map(|(tp, _)| tp);
    (elected.collect(), records)
}

/// The topic config that allows unclean elections.
const UNCLEAN_ELECTION: &str = "unclean.leader.election.enable";

/// Preferred leader elections (ElectLeaders with election type PREFERRED, and the periodic
/// auto-rebalance): for each `(topic, partition)`, its first replica leads if it can.
pub fn elect_preferred(
    image: &MetadataImage,
    partitions: &[(String, i32)],
) -> (Vec<MetadataRecord>, Vec<ElectionOutcome>) {
    let valid = |b: BrokerId| image.brokers.get(&b).is_some_and(|r| r.is_active());
    let mut records = Vec::new();
    let outcomes = partitions
        .iter()
        .map(|(topic, partition)| {
            let Some(t) = image.topics.get(topic) else { return ElectionOutcome::Unknown };
            let Some(registration) = t.partitions.get(partition) else { return ElectionOutcome::Unknown };
            let placed = Placed { topic_id: t.id, partition: *partition, registration };
            match election::prefer(&placed, &valid) {
                Ok(Some(record)) => {
                    records.push(record);
                    ElectionOutcome::Elected
                }
                Ok(None) | Err(election::Preferred::NotNeeded) => ElectionOutcome::NotNeeded,
                Err(election::Preferred::NotAvailable) => ElectionOutcome::PreferredNotAvailable,
            }
        })
        .collect();
    (records, outcomes)
}

/// The partitions led by another broker than their first replica while that replica could
/// lead (what `auto.leader.rebalance.enable` moves back).
pub fn imbalanced_partitions(image: &MetadataImage) -> Vec<(String, i32)> {
    let valid = |b: BrokerId| image.brokers.get(&b).is_some_and(|r| r.is_active());
    image
        .topics
        .values()
        .flat_map(|t| {
            t.partitions.iter().filter_map(move |(&p, r)| {
                let preferred = *r.replicas.first()?;
                (r.leader != preferred && r.isr.contains(&preferred) && valid(preferred)).then(|| (t.name.clone(), p))
            })
        })
        .collect()
}
