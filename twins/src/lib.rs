//! # twins
//!
//! The domain of twinrt and the twin actor. Nothing here touches a network,
//! a disk or HTTP: those live in `adapters`, `cluster` and `runtime`.
//!
//! - [`id`]: twin paths and their stable ids; alias resolution.
//! - [`value`], [`quality`], [`sample`], [`time`]: the data model.
//! - [`units`], [`expr`]: engineering units and compiled expressions.
//! - [`model`]: the TOML model language, validated into a [`model::Model`].
//! - [`alarm`]: the ISA-18.2 alarm state machine.
//! - [`histogram`]: lock-free latency histograms for the metrics.

pub mod actor;
pub mod alarm;
pub mod expr;
pub mod histogram;
pub mod id;
pub mod model;
pub mod quality;
pub mod rollup;
pub mod sample;
pub mod store;
pub mod time;
pub mod units;
pub mod value;

pub use id::{Resolver, TwinId, TwinPath};
pub use quality::{Quality, Reason};
pub use sample::{PointId, PropSample, Sample, Slot};
pub use time::{Clock, Timestamp};
pub use value::{Value, ValueType};
