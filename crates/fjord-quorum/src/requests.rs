//! Outbound requests per destination (Kafka's `RequestManager`): at most one in flight to each
//! node, a timeout on it, a backoff after a failure, and what tells a current answer from a
//! stale one: the correlation id, the kind of request it answers and the epoch it was sent in.
//!
//! The transport carries messages, not connections, so an answer can arrive long after its
//! request was abandoned, even after the node restarted. Correlation ids start where the caller's
//! seed says (see `RaftNode::new`), so two incarnations do not reuse them; and an answer is acted
//! on only if it is of the kind the request in flight expects, sent in the node's current epoch.

use std::collections::BTreeMap;

use fjord_types::{LeaderEpoch, Timestamp};

use crate::ids::NodeId;
use crate::message::MessageBody;

/// What a request in flight asked for; its answer must be of the same kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RequestKind {
    /// A Vote request with `pre_vote` set (KIP-996).
    PreVote,
    /// A binding Vote request.
    Vote,
    /// Fetch.
    Fetch,
    /// FetchSnapshot.
    FetchSnapshot,
    /// BeginQuorumEpoch.
    BeginQuorumEpoch,
    /// EndQuorumEpoch.
    EndQuorumEpoch,
}

impl RequestKind {
    /// The kind of a request body; `None` for a response.
    pub(crate) fn of(body: &MessageBody) -> Option<RequestKind> {
        match body {
            MessageBody::VoteRequest(r) if r.pre_vote => Some(RequestKind::PreVote),
            MessageBody::VoteRequest(_) => Some(RequestKind::Vote),
            MessageBody::FetchRequest(_) => Some(RequestKind::Fetch),
            MessageBody::FetchSnapshotRequest(_) => Some(RequestKind::FetchSnapshot),
            MessageBody::BeginQuorumEpochRequest(_) => Some(RequestKind::BeginQuorumEpoch),
            MessageBody::EndQuorumEpochRequest(_) => Some(RequestKind::EndQuorumEpoch),
            _ => None,
        }
    }
}

/// The request in flight to one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InFlight {
    pub(crate) correlation_id: u64,
    pub(crate) kind: RequestKind,
    /// The node's epoch when it sent the request.
    pub(crate) epoch: LeaderEpoch,
    pub(crate) deadline: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Connection {
    Awaiting(InFlight),
    BackingOff { until: Timestamp },
}

#[derive(Clone, Debug, Default)]
pub(crate) struct RequestManager {
    connections: BTreeMap<NodeId, Connection>,
    /// The planted bug `reused-correlation-ids`: match answers by correlation id alone.
    match_by_id_only: bool,
}

impl RequestManager {
    /// A manager that matches answers by correlation id alone, ignoring kind and epoch (the
    /// planted bug `reused-correlation-ids`).
    #[cfg(any(test, feature = "sim-bugs"))]
    pub(crate) fn matching_by_id_only() -> RequestManager {
        RequestManager { connections: BTreeMap::new(), match_by_id_only: true }
    }

    /// Whether a request may go to `to` now: nothing in flight (or it timed out) and no backoff.
    pub(crate) fn is_ready(&self, to: NodeId, now: Timestamp) -> bool {
        match self.connections.get(&to) {
            None => true,
            Some(Connection::Awaiting(request)) => now >= request.deadline,
            Some(Connection::BackingOff { until }) => now >= *until,
        }
    }

    /// Whether the request to `to` has gone unanswered past its timeout.
    pub(crate) fn has_timed_out(&self, to: NodeId, now: Timestamp) -> bool {
        matches!(self.connections.get(&to), Some(Connection::Awaiting(request)) if now >= request.deadline)
    }

    /// Whether `to` is backing off after a failed request.
    pub(crate) fn is_backing_off(&self, to: NodeId, now: Timestamp) -> bool {
        matches!(self.connections.get(&to), Some(Connection::BackingOff { until }) if now < *until)
    }

    /// Whether any request is in flight and not yet timed out.
    pub(crate) fn has_inflight(&self, now: Timestamp) -> bool {
        self.connections.values().any(|c| matches!(c, Connection::Awaiting(request) if now < request.deadline))
    }

    pub(crate) fn on_sent(&mut self, to: NodeId, request: InFlight) {
        self.connections.insert(to, Connection::Awaiting(request));
    }

    /// Whether an answer from `from` with this correlation id answers the request in flight to
    /// it, which must be of `kind` and sent in `epoch` (the node's current one): an answer of
    /// another kind, or to a request of an older epoch, is stale and never acted on.
    pub(crate) fn is_expected(&self, from: NodeId, correlation_id: u64, kind: RequestKind, epoch: LeaderEpoch) -> bool {
        self.in_flight(from, correlation_id)
            .is_some_and(|request| self.match_by_id_only || (request.kind == kind && request.epoch == epoch))
    }

    /// The request in flight to `to` with this correlation id, of whatever kind or epoch (the
    /// transport reports failures by correlation id only).
    pub(crate) fn in_flight(&self, to: NodeId, correlation_id: u64) -> Option<InFlight> {
        match self.connections.get(&to) {
            Some(Connection::Awaiting(request)) if request.correlation_id == correlation_id => Some(*request),
            _ => None,
        }
    }

    /// The answer arrived: ready again, or backing off until `backoff_until` if it failed.
    pub(crate) fn on_response(&mut self, from: NodeId, ok: bool, backoff_until: Timestamp) {
        if ok {
            self.connections.remove(&from);
        } else {
            self.connections.insert(from, Connection::BackingOff { until: backoff_until });
        }
    }

    /// Forgets every request: answers to them are now stale (a change of role or epoch).
    pub(crate) fn reset_all(&mut self) {
        self.connections.clear();
    }

    /// Forgets the request to one node.
    pub(crate) fn reset(&mut self, to: NodeId) {
        self.connections.remove(&to);
    }

    /// The earliest time a connection changes state by itself (timeout or end of backoff).
    pub(crate) fn next_deadline(&self, now: Timestamp) -> Option<Timestamp> {
        self.connections
            .values()
            .map(|c| match c {
                Connection::Awaiting(request) => request.deadline,
                Connection::BackingOff { until } => *until,
            })
            .filter(|t| *t > now)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(correlation_id: u64, kind: RequestKind, epoch: i32, deadline: i64) -> InFlight {
        InFlight { correlation_id, kind, epoch: LeaderEpoch(epoch), deadline: Timestamp(deadline) }
    }

    #[test]
    fn one_request_in_flight_per_destination() {
        let mut requests = RequestManager::default();
        let n = NodeId(2);
        let fetch = |requests: &RequestManager, id| requests.is_expected(n, id, RequestKind::Fetch, LeaderEpoch(3));
        assert!(requests.is_ready(n, Timestamp(0)));
        requests.on_sent(n, request(7, RequestKind::Fetch, 3, 100));
        assert!(!requests.is_ready(n, Timestamp(50)));
        assert!(fetch(&requests, 7));
        assert!(!fetch(&requests, 6), "an older request's answer is stale");
        assert!(requests.has_timed_out(n, Timestamp(100)));
        assert!(requests.is_ready(n, Timestamp(100)));
        requests.on_response(n, false, Timestamp(120));
        assert!(requests.is_backing_off(n, Timestamp(110)));
        assert!(!fetch(&requests, 7), "answered once");
        assert_eq!(requests.next_deadline(Timestamp(110)), Some(Timestamp(120)));
        assert!(requests.is_ready(n, Timestamp(120)));
    }

    #[test]
    fn an_answer_of_another_kind_or_an_older_epoch_is_stale() {
        let mut requests = RequestManager::default();
        let n = NodeId(2);
        requests.on_sent(n, request(7, RequestKind::Vote, 5, 100));
        assert!(requests.is_expected(n, 7, RequestKind::Vote, LeaderEpoch(5)));
        assert!(!requests.is_expected(n, 7, RequestKind::PreVote, LeaderEpoch(5)), "a pre-vote answer is no vote");
        assert!(!requests.is_expected(n, 7, RequestKind::Fetch, LeaderEpoch(5)));
        assert!(!requests.is_expected(n, 7, RequestKind::Vote, LeaderEpoch(6)), "sent in an older epoch");
        assert_eq!(requests.in_flight(n, 7).map(|r| r.kind), Some(RequestKind::Vote));
        requests.on_sent(n, request(8, RequestKind::PreVote, 5, 100));
        assert!(!requests.is_expected(n, 8, RequestKind::Vote, LeaderEpoch(5)), "a vote answer is no pre-vote answer");
        assert!(requests.is_expected(n, 8, RequestKind::PreVote, LeaderEpoch(5)));
        // The planted bug looks at the correlation id only.
        let mut lenient = RequestManager::matching_by_id_only();
        lenient.on_sent(n, request(8, RequestKind::PreVote, 5, 100));
        assert!(lenient.is_expected(n, 8, RequestKind::Vote, LeaderEpoch(6)));
    }
}
