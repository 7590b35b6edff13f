//! The simulated network: per-message delay with jitter (which reorders), loss, duplication,
//! and directed link cuts (one-way and full partitions).

use std::collections::BTreeSet;
use std::fmt;

use fjord_quorum::{NodeId, Prng};

/// The state of the network.
#[derive(Clone, Debug)]
pub(crate) struct Network {
    /// Directed links that deliver nothing: (from, to).
    blocked: BTreeSet<(NodeId, NodeId)>,
    /// Probability that a message is lost.
    pub(crate) drop_rate: f64,
    /// Probability that a message arrives twice.
    pub(crate) duplicate_rate: f64,
    /// Smallest one-way delay, ms.
    pub(crate) delay_min_ms: i64,
    /// Extra delay drawn uniformly from `[0, jitter)`, ms.
    pub(crate) delay_jitter_ms: i64,
}

/// The weather: loss, duplication, delay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Weather {
    /// Loss probability.
    pub(crate) drop_rate: f64,
    /// Duplication probability.
    pub(crate) duplicate_rate: f64,
    /// Minimum delay.
    pub(crate) delay_min_ms: i64,
    /// Jitter.
    pub(crate) delay_jitter_ms: i64,
}

impl fmt::Display for Weather {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "drop {:.0}%, duplicate {:.0}%, delay {}+[0,{}) ms",
            self.drop_rate * 100.0,
            self.duplicate_rate * 100.0,
            self.delay_min_ms,
            self.delay_jitter_ms
        )
    }
}

impl Network {
    /// A healthy network with this delay.
    pub(crate) fn new(delay_min_ms: i64, delay_jitter_ms: i64) -> Network {
        Network { blocked: BTreeSet::new(), drop_rate: 0.0, duplicate_rate: 0.0, delay_min_ms, delay_jitter_ms }
    }

    /// Sets the weather.
    pub(crate) fn set_weather(&mut self, weather: Weather) {
        self.drop_rate = weather.drop_rate;
        self.duplicate_rate = weather.duplicate_rate;
        self.delay_min_ms = weather.delay_min_ms;
        self.delay_jitter_ms = weather.delay_jitter_ms;
    }

    /// Whether `from` can reach `to` now.
    pub(crate) fn connected(&self, from: NodeId, to: NodeId) -> bool {
        !self.blocked.contains(&(from, to))
    }

    /// Cuts the link from `from` to `to`.
    pub(crate) fn block(&mut self, from: NodeId, to: NodeId) {
        if from != to {
            self.blocked.insert((from, to));
        }
    }

    /// Cuts both directions between `a` and every node of `others`.
    pub(crate) fn isolate(&mut self, a: NodeId, others: impl IntoIterator<Item = NodeId>) {
        for b in others {
            self.block(a, b);
            self.block(b, a);
        }
    }

    /// Restores every link.
    pub(crate) fn heal(&mut self) {
        self.blocked.clear();
    }

    /// The delays after which copies of a message sent now arrive: none if lost, two if
    /// duplicated.
    pub(crate) fn delays(&self, rng: &mut Prng, from: NodeId, to: NodeId) -> Vec<i64> {
        if !self.connected(from, to) || rng.chance(self.drop_rate) {
            return Vec::new();
        }
        let copies = if rng.chance(self.duplicate_rate) { 2 } else { 1 };
        (0..copies).map(|_| self.delay_min_ms + rng.range(0, self.delay_jitter_ms.max(1))).collect()
    }
}
