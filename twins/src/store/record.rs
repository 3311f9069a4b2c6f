//! The records a store keeps.
//!
//! Their serde shape is their persisted shape (postcard, inside the envelope
//! of [`super::codec`]): reordering fields or enum variants, or inserting a
//! field, changes the bytes on disk and needs a new record version. The
//! golden fixtures under `twins/tests/fixtures/golden/` catch that, including
//! changes to the shared types these records contain (`Value`, `Quality`,
//! `Slot`, `AlarmRecord`, `AlarmState`, `AlarmMode`).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::alarm::{AlarmMode, AlarmRecord, AlarmState};
use crate::id::TwinId;
use crate::quality::Quality;
use crate::sample::Slot;
use crate::time::Timestamp;
use crate::value::Value;

/// The latest state of one twin: what a restarted twin recovers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TwinRecord {
    /// The twin's class name.
    pub class: Arc<str>,
    /// The twin's processed-batch counter when this state was taken.
    pub seq: u64,
    /// When this state was taken (the runtime clock).
    pub updated: Timestamp,
    /// Current value of each property, by property name.
    pub props: Vec<(Arc<str>, Slot)>,
    /// State of each alarm, by alarm name.
    pub alarms: Vec<(Arc<str>, AlarmRecord)>,
}

/// One stored value of one property, with what orders it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryPoint {
    /// Source timestamp of the value.
    pub ts: Timestamp,
    /// Tie-breaker for equal timestamps (the twin's sample or batch seq):
    /// points are keyed by `(ts, seq)`, so equal timestamps do not collide.
    pub seq: u64,
    pub value: Value,
    pub quality: Quality,
}

/// A history point addressed to a twin's property.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRecord {
    pub twin: TwinId,
    /// Property name; must not contain a NUL byte.
    pub prop: Arc<str>,
    pub point: HistoryPoint,
}

/// One entry of a twin's event journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub twin: TwinId,
    /// Position in the twin's journal, increasing per twin.
    pub seq: u64,
    /// When it happened (the runtime clock).
    pub at: Timestamp,
    pub event: Event,
}

/// What a journal entry records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// An alarm changed state or mode.
    Alarm {
        alarm: String,
        transition: AlarmTransitionRecord,
    },
    /// The twin's operating mode changed (for example running → stopped).
    Mode {
        from: String,
        to: String,
        /// Why: the property or operator that changed it.
        reason: String,
    },
    /// An operator did something to the twin (acknowledge, shelve, set a value).
    OperatorAction { who: String, action: String },
    /// The twin's actor was restarted by its supervisor.
    Restarted { reason: String },
    /// Free text.
    Note(String),
}

/// The persisted form of one alarm transition. The cause is kept as text so
/// that this record does not depend on the alarm state machine's own types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmTransitionRecord {
    pub from_state: AlarmState,
    pub to_state: AlarmState,
    pub from_mode: AlarmMode,
    pub to_mode: AlarmMode,
    /// What caused it, e.g. `condition`, `acknowledged by alice`, `shelve expired`.
    pub cause: String,
}
