//! The broker's metadata wiring: the controller path ([`controller`]: decisions become records
//! proposed to the quorum), the quorum ([`quorum`]: today a single voter over the local
//! metadata log), and the observer path ([`loader`]: committed records become the image and
//! deltas that publishers act on).

pub(crate) mod controller;
pub(crate) mod loader;
pub(crate) mod quorum;
