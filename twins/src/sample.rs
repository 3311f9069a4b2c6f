//! Samples: what sources deliver, and the slots twins keep them in.

use serde::{Deserialize, Serialize};

use crate::quality::Quality;
use crate::time::Timestamp;
use crate::value::Value;

/// Index of a point within the list a source was bound to
/// (see `adapters::SampleSource`): sources never carry names on the hot path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PointId(pub u32);

/// One reading of one point, as a source delivers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub point: PointId,
    pub value: Value,
    /// When the device measured it.
    pub source_ts: Timestamp,
    pub quality: Quality,
    /// The source's sequence number, increasing per point.
    pub seq: u64,
}

/// One reading addressed to a property of a twin (the point already resolved).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PropSample {
    /// Slot index of the property in the twin's class.
    pub prop: u16,
    pub value: Value,
    pub source_ts: Timestamp,
    pub quality: Quality,
}

/// The current value of one property of a twin.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Slot {
    pub value: Value,
    pub quality: Quality,
    /// Source timestamp of the value (for derived and aggregate values: when computed).
    pub ts: Timestamp,
}

impl Slot {
    pub fn new(value: Value, quality: Quality, ts: Timestamp) -> Self {
        Self { value, quality, ts }
    }
}
