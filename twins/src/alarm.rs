//! ISA-18.2 / IEC 62682 alarm state machine (sans-IO).

use serde::{Deserialize, Serialize};

/// Alarm priority, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Medium,
    High,
    Urgent,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Medium,
        Priority::High,
        Priority::Urgent,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

use crate::time::Timestamp;

/// The ISA-18.2 alarm states driven by the condition and by acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmState {
    /// Condition clear, nothing to acknowledge.
    Normal,
    /// Condition present, not acknowledged.
    ActiveUnacked,
    /// Condition present, acknowledged.
    ActiveAcked,
    /// Condition cleared before it was acknowledged.
    ReturnedUnacked,
}

/// Modes that take an alarm out of annunciation, on top of its [`AlarmState`]
/// (ISA-18.2 states shelved, suppressed by design, out of service).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmMode {
    /// Annunciated normally.
    Enabled,
    /// Shelved by an operator until the given time.
    Shelved { until: Timestamp },
    /// Suppressed by design: the parent's state says the alarm is meaningless now.
    Suppressed,
    /// Taken out of service by maintenance.
    OutOfService,
}

/// The persisted form of one alarm's state; what the store keeps and the
/// API shows. The state machine (`AlarmMachine`) converts to and from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmRecord {
    pub state: AlarmState,
    pub mode: AlarmMode,
    /// The (debounced, deadbanded) condition as last evaluated.
    pub condition: bool,
    /// When the condition last changed and an on- or off-delay started running.
    pub pending_since: Option<Timestamp>,
    /// When `state` or `mode` last changed.
    pub since: Timestamp,
}

impl Default for AlarmRecord {
    fn default() -> Self {
        Self {
            state: AlarmState::Normal,
            mode: AlarmMode::Enabled,
            condition: false,
            pending_since: None,
            since: Timestamp::ZERO,
        }
    }
}
