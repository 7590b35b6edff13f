//! The broker's metadata wiring: the controller path ([`controller`]: decisions become records
//! proposed to the quorum), the quorum ([`quorum`], [`raft`]: `fjord-quorum`'s node on its
//! own thread, its messages over gRPC), and the observer path ([`loader`]: committed records become the image and
//! deltas that publishers act on).

pub(crate) mod controller;
pub(crate) mod loader;
pub(crate) mod quorum;
pub(crate) mod raft;
mod wire;
