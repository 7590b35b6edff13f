//! Outbound requests per destination (Kafka's `RequestManager`): at most one in flight to each
//! node, a timeout on it, a backoff after a failure, and the correlation id that tells a current
//! answer from a stale one.

use std::collections::BTreeMap;

use fjord_types::Timestamp;

use crate::ids::NodeId;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Connection {
    Awaiting { correlation_id: u64, deadline: Timestamp },
    BackingOff { until: Timestamp },
}

#[derive(Clone, Debug, Default)]
pub(crate) struct RequestManager {
    connections: BTreeMap<NodeId, Connection>,
}

impl RequestManager {
    /// Whether a request may go to `to` now: nothing in flight (or it timed out) and no backoff.
    pub(crate) fn is_ready(&self, to: NodeId, now: Timestamp) -> bool {
        match self.connections.get(&to) {
            None => true,
            Some(Connection::Awaiting { deadline, .. }) => now >= *deadline,
            Some(Connection::BackingOff { until }) => now >= *until,
        }
    }

    /// Whether the request to `to` has gone unanswered past its timeout.
    pub(crate) fn has_timed_out(&self, to: NodeId, now: Timestamp) -> bool {
        matches!(self.connections.get(&to), Some(Connection::Awaiting { deadline, .. }) if now >= *deadline)
    }

    /// Whether `to` is backing off after a failed request.
    pub(crate) fn is_backing_off(&self, to: NodeId, now: Timestamp) -> bool {
        matches!(self.connections.get(&to), Some(Connection::BackingOff { until }) if now < *until)
    }

    /// Whether any request is in flight and not yet timed out.
    pub(crate) fn has_inflight(&self, now: Timestamp) -> bool {
        self.connections.values().any(|c| matches!(c, Connection::Awaiting { deadline, .. } if now < *deadline))
    }

    pub(crate) fn on_sent(&mut self, to: NodeId, correlation_id: u64, deadline: Timestamp) {
        self.connections.insert(to, Connection::Awaiting { correlation_id, deadline });
    }

    /// Whether an answer from `from` with this correlation id is the one we wait for.
    pub(crate) fn is_expected(&self, from: NodeId, correlation_id: u64) -> bool {
        matches!(self.connections.get(&from), Some(Connection::Awaiting { correlation_id: c, .. }) if *c == correlation_id)
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
                Connection::Awaiting { deadline, .. } => *deadline,
                Connection::BackingOff { until } => *until,
            })
            .filter(|t| *t > now)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_in_flight_per_destination() {
        let mut requests = RequestManager::default();
        let n = NodeId(2);
        assert!(requests.is_ready(n, Timestamp(0)));
        requests.on_sent(n, 7, Timestamp(100));
        assert!(!requests.is_ready(n, Timestamp(50)));
        assert!(requests.is_expected(n, 7));
        assert!(!requests.is_expected(n, 6), "an older request's answer is stale");
        assert!(requests.has_timed_out(n, Timestamp(100)));
        assert!(requests.is_ready(n, Timestamp(100)));
        requests.on_response(n, false, Timestamp(120));
        assert!(requests.is_backing_off(n, Timestamp(110)));
        assert!(!requests.is_expected(n, 7), "answered once");
        assert_eq!(requests.next_deadline(Timestamp(110)), Some(Timestamp(120)));
        assert!(requests.is_ready(n, Timestamp(120)));
    }
}
