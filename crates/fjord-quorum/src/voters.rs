//! The voter set: Kafka's `VoterSet` for a static quorum (`controller.quorum.voters`,
//! kraft.version 0), keyed so that KIP-853's directory ids fit without a change of shape.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::ConfigError;
use crate::ids::{DirectoryId, NodeId, ReplicaKey};

/// A host and port a node listens on for quorum traffic.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Endpoint {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Endpoint {
    /// Parses `host:port`, `[v6-address]:port`.
    pub fn parse(text: &str) -> Result<Endpoint, ConfigError> {
        let invalid = |reason: &str| ConfigError::InvalidEndpoint { text: text.to_owned(), reason: reason.to_owned() };
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, port) = rest.split_once("]:").ok_or_else(|| invalid("expected [address]:port"))?;
            (host, port)
        } else {
            text.rsplit_once(':').ok_or_else(|| invalid("expected host:port"))?
        };
        if host.is_empty() {
            return Err(invalid("empty host"));
        }
        let port = port.parse::<u16>().map_err(|_| invalid("port is not a number from 0 to 65535"))?;
        Ok(Endpoint { host: host.to_owned(), port })
    }
}

/// One voter: its key and where to reach it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Voter {
    /// Node id and (when the voter set records it) directory id.
    pub key: ReplicaKey,
    /// The controller listener's address, when configured (tests and the simulator route by id).
    pub endpoint: Option<Endpoint>,
}

/// The voters of the quorum. Everything else that fetches is an observer.
///
/// **Invariant:** never empty; ids are unique (a map by id).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VoterSet {
    voters: BTreeMap<NodeId, Voter>,
}

impl VoterSet {
    /// A voter set of these voters.
    pub fn new(voters: impl IntoIterator<Item = Voter>) -> Result<VoterSet, ConfigError> {
        let mut map = BTreeMap::new();
        for voter in voters {
            if voter.key.id.0 < 0 {
                return Err(ConfigError::InvalidVoters(format!("negative node id {}", voter.key.id)));
            }
            if map.insert(voter.key.id, voter.clone()).is_some() {
                return Err(ConfigError::InvalidVoters(format!("node id {} appears twice", voter.key.id)));
            }
        }
        if map.is_empty() {
            return Err(ConfigError::InvalidVoters("no voters".into()));
        }
        Ok(VoterSet { voters: map })
    }

    /// Voters with these ids, no directory ids and no endpoints (tests, the simulator).
    pub fn from_ids(ids: impl IntoIterator<Item = i32>) -> Result<VoterSet, ConfigError> {
        VoterSet::new(ids.into_iter().map(|id| Voter { key: ReplicaKey::of(id), endpoint: None }))
    }

    /// Voters with these keys and no endpoints.
    pub fn from_keys(keys: impl IntoIterator<Item = ReplicaKey>) -> Result<VoterSet, ConfigError> {
        VoterSet::new(keys.into_iter().map(|key| Voter { key, endpoint: None }))
    }

    /// Parses `controller.quorum.voters`: `id@host:port` separated by commas. Each entry may end
    /// in `:directory-id` (the form of `kafka-storage.sh format --initial-controllers`), which
    /// binds that voter to one log directory.
    pub fn parse(text: &str) -> Result<VoterSet, ConfigError> {
        let mut voters = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let invalid = |reason: &str| ConfigError::InvalidVoters(format!("{entry:?}: {reason}"));
            let (id, address) = entry.split_once('@').ok_or_else(|| invalid("expected id@host:port"))?;
            let id: i32 = id.trim().parse().map_err(|_| invalid("the id is not a number"))?;
            // host:port or host:port:directory-id; a directory id is 22 base64 characters and
            // never a valid port, so the last field tells which form this is.
            let (address, directory_id) = match address.rsplit_once(':') {
                Some((rest, last)) if last.len() == 22 && last.parse::<u16>().is_err() => {
                    let directory: DirectoryId = last.parse().map_err(|_| invalid("bad directory id"))?;
                    (rest, Some(directory))
                }
                _ => (address, None),
            };
            let endpoint = Endpoint::parse(address).map_err(|e| invalid(&e.to_string()))?;
            voters.push(Voter { key: ReplicaKey { id: NodeId(id), directory_id }, endpoint: Some(endpoint) });
        }
        VoterSet::new(voters)
    }

    /// The number of voters.
    pub fn len(&self) -> usize {
        self.voters.len()
    }

    /// Never true (a voter set has at least one voter); here for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.voters.is_empty()
    }

    /// How many voters make a majority.
    pub fn majority(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// The voter with this id, if any.
    pub fn get(&self, id: NodeId) -> Option<&Voter> {
        self.voters.get(&id)
    }

    /// Whether a node with this id is in the set (whatever its directory).
    pub fn contains_id(&self, id: NodeId) -> bool {
        self.voters.contains_key(&id)
    }

    /// Whether `key` is a voter: its id is in the set and its directory matches.
    pub fn is_voter(&self, key: &ReplicaKey) -> bool {
        self.voters.get(&key.id).is_some_and(|v| v.key.matches(key))
    }

    /// Whether `key` is the only voter.
    pub fn is_only_voter(&self, key: &ReplicaKey) -> bool {
        self.voters.len() == 1 && self.is_voter(key)
    }

    /// The voters' ids, ascending.
    pub fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.keys().copied()
    }

    /// The voters' keys, by ascending id.
    pub fn keys(&self) -> impl Iterator<Item = ReplicaKey> + '_ {
        self.voters.values().map(|v| v.key)
    }

    /// The voters, by ascending id.
    pub fn voters(&self) -> impl Iterator<Item = &Voter> + '_ {
        self.voters.values()
    }
}

/// Parses `controller.quorum.bootstrap.servers`: `host:port` separated by commas.
pub fn parse_bootstrap_servers(text: &str) -> Result<Vec<Endpoint>, ConfigError> {
    text.split(',').map(str::trim).filter(|e| !e.is_empty()).map(Endpoint::parse).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_controller_quorum_voters() {
        let voters = VoterSet::parse("1@localhost:9093, 2@10.0.0.2:9093,3@[::1]:9094").unwrap();
        assert_eq!(voters.len(), 3);
        assert_eq!(voters.majority(), 2);
        let third = voters.get(NodeId(3)).unwrap();
        assert_eq!(third.endpoint, Some(Endpoint { host: "::1".into(), port: 9094 }));
        assert_eq!(third.endpoint.as_ref().unwrap().to_string(), "[::1]:9094");
        assert!(voters.is_voter(&ReplicaKey::of(2)));
        assert!(!voters.is_voter(&ReplicaKey::of(4)));
    }

    #[test]
    fn a_voter_with_a_directory_id_is_bound_to_it() {
        let dir = DirectoryId([7; 16]);
        let voters = VoterSet::parse(&format!("1@h:1:{dir},2@h:2")).unwrap();
        assert!(voters.is_voter(&ReplicaKey::with_directory(1, dir)));
        assert!(!voters.is_voter(&ReplicaKey::with_directory(1, DirectoryId([8; 16]))));
        // Voter 2 has no directory id: any directory of node 2 is that voter.
        assert!(voters.is_voter(&ReplicaKey::with_directory(2, DirectoryId([8; 16]))));
    }

    #[test]
    fn rejects_bad_voter_lists() {
        for bad in ["", "1@h", "x@h:1", "1@h:99999", "1@h:1,1@h:2", "1h:1", "1@:1", "-1@h:1"] {
            assert!(VoterSet::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn parses_bootstrap_servers() {
        let servers = parse_bootstrap_servers("a:1,b:2").unwrap();
        assert_eq!(servers, vec![Endpoint { host: "a".into(), port: 1 }, Endpoint { host: "b".into(), port: 2 }]);
        assert!(parse_bootstrap_servers("a").is_err());
    }
}
