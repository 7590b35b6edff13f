//! The vocabulary every Fjord crate shares.
//!
//! Kafka passes bare `long`s and `int`s for offsets, epochs and ids; mixing them up is a classic
//! source of replication bugs. Fjord wraps each in a newtype ([`Offset`], [`LeaderEpoch`],
//! [`BrokerId`], [`ProducerId`], [`ProducerEpoch`], [`Timestamp`]) so the compiler keeps them
//! apart, and names Kafka's wire error codes once, in [`ErrorCode`].
//!
//! Time is read through the [`Clock`] trait so that the state machines built on these types can be
//! run under a simulated clock.
//!
//! This crate depends on no other Fjord crate and on nothing outside `std`.

#![warn(missing_docs)]

mod clock;
mod error_code;
mod ids;
mod partition;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error_code::ErrorCode;
pub use ids::{
    BrokerId, LeaderEpoch, Offset, ProducerEpoch, ProducerId, Timestamp, TopicId, TopicPartition,
    TopicPartitionParseError,
};
pub use partition::{OffsetAndEpoch, PartitionRegistration};
