//! ISA-18.2 / IEC 62682 alarm state machine (sans-IO).
//!
//! An [`AlarmMachine`] is fed the alarm's condition (already evaluated and
//! deadbanded by the caller), operator commands and the passing of time, and
//! returns the [`Transition`]s that happened. It never reads a clock: every
//! call takes `now`, and [`AlarmMachine::next_deadline`] tells the runtime's
//! scheduler when to call [`AlarmMachine::tick`]. It is `Copy` and converts
//! losslessly to and from the persisted [`AlarmRecord`].
//!
//! # Condition, delays and state
//!
//! The machine keeps the *raw* condition (the last value fed to
//! [`update`](AlarmMachine::update), `AlarmRecord::condition`) and the
//! *debounced* condition, which is implied by the state: it is present in
//! `ActiveUnacked` and `ActiveAcked`, absent in `Normal` and `ReturnedUnacked`.
//! When the raw condition differs from the debounced one a delay runs from
//! `pending_since`; the debounced condition follows only when the raw one has
//! held for the whole delay (`on_delay` to raise, `off_delay` to clear).
//!
//! | event (at `t`)                                   | effect |
//! |--------------------------------------------------|--------|
//! | raw condition unchanged                          | nothing (a running delay keeps running) |
//! | raw changes, back to the debounced value         | running delay cancelled, no transition (bouncing inside a delay never raises or clears) |
//! | raw changes away from the debounced value, delay 0 | debounced follows at `t` |
//! | raw changes away from the debounced value, delay > 0 | delay starts: `pending_since = t` |
//! | time reaches `pending_since + delay` (inclusive) | debounced follows, transition stamped with that deadline |
//!
//! When the debounced condition changes, the state moves:
//!
//! | state            | mode        | debounced raised → | debounced cleared → |
//! |------------------|-------------|--------------------|---------------------|
//! | Normal           | Enabled     | ActiveUnacked      | –                   |
//! | ActiveUnacked    | Enabled     | –                  | ReturnedUnacked     |
//! | ActiveAcked      | Enabled     | –                  | Normal              |
//! | ReturnedUnacked  | Enabled     | ActiveUnacked      | –                   |
//! | Normal           | not Enabled | ActiveAcked        | –                   |
//! | ActiveAcked      | not Enabled | –                  | Normal              |
//!
//! (cause `ConditionRaised` / `ConditionCleared`). While the mode is not
//! `Enabled` the state tracks the condition silently as `Normal` /
//! `ActiveAcked`: nothing needs acknowledging and nothing is annunciated.
//!
//! # Acknowledgement
//!
//! | state           | mode        | acknowledge                      |
//! |-----------------|-------------|----------------------------------|
//! | ActiveUnacked   | Enabled     | → ActiveAcked                    |
//! | ReturnedUnacked | Enabled     | → Normal                         |
//! | Normal          | Enabled     | error `NothingToAcknowledge`     |
//! | ActiveAcked     | Enabled     | error `AlreadyAcknowledged`      |
//! | any             | not Enabled | error `NotAnnunciated`           |
//!
//! # Modes
//!
//! One mode at a time, by precedence **OutOfService > Shelved > Suppressed >
//! Enabled** (a command that would lower the precedence is refused or ignored).
//! Leaving `Enabled` resets the acknowledgement state (ISA-18.2 fig. 5: the
//! shelved, suppressed and out-of-service states are entered from any state):
//! `ActiveUnacked` becomes `ActiveAcked`, `ReturnedUnacked` becomes `Normal`.
//! Returning to `Enabled` re-annunciates: an active condition becomes
//! `ActiveUnacked` (even if it had been acknowledged before), otherwise `Normal`.
//! Running delays are not affected by mode changes.
//!
//! | mode        | shelve(until)                | unshelve            | suppress on / off       | out of service on / off       | time reaches `until` |
//! |-------------|------------------------------|---------------------|-------------------------|-------------------------------|----------------------|
//! | Enabled     | → Shelved                    | error `NotShelved`  | → Suppressed / nothing  | → OutOfService / error `NotOutOfService` | –   |
//! | Suppressed  | → Shelved                    | error `NotShelved`  | nothing / → Enabled     | → OutOfService / error `NotOutOfService` | –   |
//! | Shelved     | error `AlreadyShelved`       | → Enabled           | nothing / nothing       | → OutOfService (shelve dropped) / error `NotOutOfService` | → Enabled (`ShelveExpired`) |
//! | OutOfService| error `ShelveOutOfService`   | error `NotShelved`  | nothing / nothing       | error `AlreadyOutOfService` / → Enabled | – |
//!
//! `shelve` also refuses an expiry that is not after `now`
//! (`ShelveExpiryInPast`). Suppression is *level-triggered*: it comes from the
//! parent's state, so the runtime calls [`set_suppressed`](AlarmMachine::set_suppressed)
//! with the parent's current verdict on every evaluation, after `tick` /
//! `update` and after operator commands; a suppression ignored while the alarm
//! was shelved or out of service is then re-applied as soon as that ends.
//!
//! # Time
//!
//! - [`update`](AlarmMachine::update) first lets time pass up to `now` exactly
//!   as [`tick`](AlarmMachine::tick) would (firing a due delay and a due shelve
//!   expiry, in time order; on a tie the condition goes first), then applies
//!   the new value. `update(c, t)` is therefore the same as `tick(t)` followed
//!   by `update(c, t)`; a late sample still yields the transitions in between,
//!   stamped with the times they became due. One call yields at most three
//!   transitions (a due delay, a shelve expiry and a zero-delay change), so
//!   they come back in a fixed-capacity [`Transitions`].
//! - Operator commands (`acknowledge`, `shelve`, `unshelve`, `set_suppressed`,
//!   `set_out_of_service`) act on the machine as it stands and do not let time
//!   pass: the runtime calls `tick(now)` first.
//! - Time never runs backwards inside a machine: a `now` earlier than the
//!   latest time it has recorded (`since`, `pending_since`) is taken as that
//!   time, and a delay that came due before a later transition fires no
//!   earlier than that transition.

use std::fmt;
use std::time::Duration;

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

impl AlarmState {
    pub const ALL: [AlarmState; 4] = [
        AlarmState::Normal,
        AlarmState::ActiveUnacked,
        AlarmState::ActiveAcked,
        AlarmState::ReturnedUnacked,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AlarmState::Normal => "normal",
            AlarmState::ActiveUnacked => "active_unacked",
            AlarmState::ActiveAcked => "active_acked",
            AlarmState::ReturnedUnacked => "returned_unacked",
        }
    }

    /// Whether the debounced condition is present in this state.
    pub fn is_active(self) -> bool {
        matches!(self, AlarmState::ActiveUnacked | AlarmState::ActiveAcked)
    }

    /// Whether this state waits for an acknowledgement.
    pub fn is_unacked(self) -> bool {
        matches!(
            self,
            AlarmState::ActiveUnacked | AlarmState::ReturnedUnacked
        )
    }
}

impl fmt::Display for AlarmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl AlarmMode {
    pub fn name(self) -> &'static str {
        match self {
            AlarmMode::Enabled => "enabled",
            AlarmMode::Shelved { .. } => "shelved",
            AlarmMode::Suppressed => "suppressed",
            AlarmMode::OutOfService => "out_of_service",
        }
    }

    pub fn is_enabled(self) -> bool {
        self == AlarmMode::Enabled
    }
}

impl fmt::Display for AlarmMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AlarmMode::Shelved { until } => write!(f, "shelved until {until}"),
            other => f.write_str(other.name()),
        }
    }
}

/// An alarm's on- and off-delay (ISA-18.2 "alarm on-delay" and "off-delay").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlarmTiming {
    /// How long the condition must hold before the alarm raises.
    pub on_delay: Duration,
    /// How long the condition must stay clear before the alarm clears.
    pub off_delay: Duration,
}

impl AlarmTiming {
    /// No delays: the alarm follows the condition at once.
    pub const IMMEDIATE: AlarmTiming = AlarmTiming {
        on_delay: Duration::ZERO,
        off_delay: Duration::ZERO,
    };
}

/// Why a [`Transition`] happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The debounced condition became present.
    ConditionRaised,
    /// The debounced condition went away.
    ConditionCleared,
    /// An operator acknowledged the alarm.
    Acknowledged,
    /// An operator shelved the alarm.
    Shelved,
    /// An operator unshelved the alarm before its shelve expired.
    Unshelved,
    /// The shelve ran out.
    ShelveExpired,
    /// Suppressed by design (the parent's state).
    Suppressed,
    /// Suppression by design ended.
    Unsuppressed,
    /// Maintenance took the alarm out of service.
    RemovedFromService,
    /// Maintenance returned the alarm to service.
    ReturnedToService,
}

impl Cause {
    pub fn name(self) -> &'static str {
        match self {
            Cause::ConditionRaised => "condition_raised",
            Cause::ConditionCleared => "condition_cleared",
            Cause::Acknowledged => "acknowledged",
            Cause::Shelved => "shelved",
            Cause::Unshelved => "unshelved",
            Cause::ShelveExpired => "shelve_expired",
            Cause::Suppressed => "suppressed",
            Cause::Unsuppressed => "unsuppressed",
            Cause::RemovedFromService => "removed_from_service",
            Cause::ReturnedToService => "returned_to_service",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One change of an alarm's state or mode; what the event journal records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub from: (AlarmState, AlarmMode),
    pub to: (AlarmState, AlarmMode),
    /// When it happened: `now` of the call, or the instant a delay or a
    /// shelve came due if that was earlier.
    pub at: Timestamp,
    pub cause: Cause,
}

/// The transitions of one call, oldest first; at most [`Transitions::CAPACITY`],
/// without allocating. Dereferences to a slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transitions {
    buf: [Transition; Transitions::CAPACITY],
    len: u8,
}

impl Transitions {
    /// The most one call can yield: a due delay, a shelve expiry and a
    /// zero-delay change of the new condition.
    pub const CAPACITY: usize = 3;

    const FILLER: Transition = Transition {
        from: (AlarmState::Normal, AlarmMode::Enabled),
        to: (AlarmState::Normal, AlarmMode::Enabled),
        at: Timestamp::ZERO,
        cause: Cause::ConditionCleared,
    };

    pub const fn new() -> Self {
        Self {
            buf: [Self::FILLER; Self::CAPACITY],
            len: 0,
        }
    }

    pub fn as_slice(&self) -> &[Transition] {
        &self.buf[..usize::from(self.len)]
    }

    fn push(&mut self, t: Transition) {
        // The machine never produces more than CAPACITY per call (see the
        // module docs); the index panics loudly if that reasoning breaks.
        self.buf[usize::from(self.len)] = t;
        self.len += 1;
    }
}

impl Default for Transitions {
    fn default() -> Self {
        Self::new()
    }
}

impl std::ops::Deref for Transitions {
    type Target = [Transition];

    fn deref(&self) -> &[Transition] {
        self.as_slice()
    }
}

impl<'a> IntoIterator for &'a Transitions {
    type Item = &'a Transition;
    type IntoIter = std::slice::Iter<'a, Transition>;

    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl IntoIterator for Transitions {
    type Item = Transition;
    type IntoIter = std::iter::Take<std::array::IntoIter<Transition, { Transitions::CAPACITY }>>;

    fn into_iter(self) -> Self::IntoIter {
        self.buf.into_iter().take(usize::from(self.len))
    }
}

/// A command the alarm's state or mode does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AlarmError {
    #[error(
        "nothing to acknowledge: expected state active_unacked or returned_unacked, found normal"
    )]
    NothingToAcknowledge,
    #[error(
        "already acknowledged: expected state active_unacked or returned_unacked, found active_acked"
    )]
    AlreadyAcknowledged,
    #[error(
        "cannot acknowledge an alarm that is not annunciated: expected mode enabled, found {mode}"
    )]
    NotAnnunciated { mode: AlarmMode },
    #[error("already shelved: expected an unshelved alarm, found shelved until {until}")]
    AlreadyShelved { until: Timestamp },
    #[error(
        "cannot shelve an alarm that is out of service: expected mode enabled or suppressed, found out_of_service"
    )]
    ShelveOutOfService,
    #[error("shelve expiry in the past: expected a time after {now}, found {until}")]
    ShelveExpiryInPast { until: Timestamp, now: Timestamp },
    #[error("not shelved: expected mode shelved, found {mode}")]
    NotShelved { mode: AlarmMode },
    #[error("already out of service: expected an alarm in service, found out_of_service")]
    AlreadyOutOfService,
    #[error("not out of service: expected mode out_of_service, found {mode}")]
    NotOutOfService { mode: AlarmMode },
}

/// One alarm's ISA-18.2 state machine; see the module docs for every rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmMachine {
    state: AlarmState,
    mode: AlarmMode,
    /// The raw condition as last fed to `update`.
    condition: bool,
    /// Set exactly when `condition` differs from the debounced condition
    /// (`state.is_active()`): when that difference began.
    pending_since: Option<Timestamp>,
    /// When `state` or `mode` last changed.
    since: Timestamp,
}

impl Default for AlarmMachine {
    fn default() -> Self {
        Self::new()
    }
}

impl AlarmMachine {
    /// Normal, enabled, condition clear, since [`Timestamp::ZERO`].
    pub fn new() -> Self {
        Self::from_record(AlarmRecord::default())
    }

    /// Restores a machine from its persisted form. A record this module wrote
    /// comes back unchanged; an inconsistent one is normalised: outside
    /// `Enabled`, `ActiveUnacked` reads as `ActiveAcked` and `ReturnedUnacked`
    /// as `Normal`; a raw condition that matches the state has no pending
    /// delay, and one that differs has one, running since `pending_since` or,
    /// if that is missing, since `since`.
    pub fn from_record(r: AlarmRecord) -> Self {
        let state = if r.mode.is_enabled() {
            r.state
        } else {
            silent(r.state)
        };
        let pending_since = if r.condition != state.is_active() {
            Some(r.pending_since.unwrap_or(r.since))
        } else {
            None
        };
        Self {
            state,
            mode: r.mode,
            condition: r.condition,
            pending_since,
            since: r.since,
        }
    }

    /// The persisted form.
    pub fn record(&self) -> AlarmRecord {
        AlarmRecord {
            state: self.state,
            mode: self.mode,
            condition: self.condition,
            pending_since: self.pending_since,
            since: self.since,
        }
    }

    pub fn state(&self) -> AlarmState {
        self.state
    }

    pub fn mode(&self) -> AlarmMode {
        self.mode
    }

    /// The raw condition as last fed to [`update`](Self::update).
    pub fn condition(&self) -> bool {
        self.condition
    }

    /// When the running on- or off-delay started, if one runs.
    pub fn pending_since(&self) -> Option<Timestamp> {
        self.pending_since
    }

    /// When the state or mode last changed.
    pub fn since(&self) -> Timestamp {
        self.since
    }

    /// Counts toward active-alarm roll-ups: active and enabled.
    pub fn is_annunciated(&self) -> bool {
        self.state.is_active() && self.mode.is_enabled()
    }

    /// Waits for an operator: unacknowledged and enabled.
    pub fn needs_ack(&self) -> bool {
        self.state.is_unacked() && self.mode.is_enabled()
    }

    /// Feeds the (already deadbanded) condition value at `now`: first lets time
    /// pass up to `now` as [`tick`](Self::tick) does, then applies the value
    /// with the on- or off-delay. Returns what happened, oldest first.
    pub fn update(&mut self, timing: &AlarmTiming, condition: bool, now: Timestamp) -> Transitions {
        let now = self.clamp(now);
        let mut out = Transitions::new();
        self.advance(timing, now, &mut out);
        if condition != self.condition {
            self.condition = condition;
            if condition == self.state.is_active() {
                // Bounced back inside the delay.
                self.pending_since = None;
            } else {
                self.pending_since = Some(now);
                if delay_for(timing, condition).is_zero() {
                    out.push(self.settle(now));
                }
            }
        }
        out
    }

    /// Time passes without a new condition value: fires a due on- or
    /// off-delay and a due shelve expiry, in time order.
    pub fn tick(&mut self, timing: &AlarmTiming, now: Timestamp) -> Transitions {
        let now = self.clamp(now);
        let mut out = Transitions::new();
        self.advance(timing, now, &mut out);
        out
    }

    /// The earliest time at which [`tick`](Self::tick) would do something (a
    /// running delay's end, the shelve's expiry); may already have passed.
    pub fn next_deadline(&self, timing: &AlarmTiming) -> Option<Timestamp> {
        match (self.delay_deadline(timing), self.shelve_expiry()) {
            (Some(d), Some(u)) => Some(d.min(u)),
            (d, u) => d.or(u),
        }
    }

    pub fn acknowledge(&mut self, now: Timestamp) -> Result<Transition, AlarmError> {
        if !self.mode.is_enabled() {
            return Err(AlarmError::NotAnnunciated { mode: self.mode });
        }
        let to = match self.state {
            AlarmState::Normal => return Err(AlarmError::NothingToAcknowledge),
            AlarmState::ActiveAcked => return Err(AlarmError::AlreadyAcknowledged),
            AlarmState::ActiveUnacked => AlarmState::ActiveAcked,
            AlarmState::ReturnedUnacked => AlarmState::Normal,
        };
        let now = self.clamp(now);
        Ok(self.go(to, self.mode, now, Cause::Acknowledged))
    }

    /// Shelves the alarm until `until`, which must be after `now`.
    pub fn shelve(&mut self, until: Timestamp, now: Timestamp) -> Result<Transition, AlarmError> {
        match self.mode {
            AlarmMode::Shelved { until } => return Err(AlarmError::AlreadyShelved { until }),
            AlarmMode::OutOfService => return Err(AlarmError::ShelveOutOfService),
            AlarmMode::Enabled | AlarmMode::Suppressed => {}
        }
        let now = self.clamp(now);
        if until <= now {
            return Err(AlarmError::ShelveExpiryInPast { until, now });
        }
        Ok(self.leave_enabled(AlarmMode::Shelved { until }, now, Cause::Shelved))
    }

    /// Ends a shelve before it expires.
    pub fn unshelve(&mut self, now: Timestamp) -> Result<Transition, AlarmError> {
        match self.mode {
            AlarmMode::Shelved { .. } => {
                let now = self.clamp(now);
                Ok(self.enter_enabled(now, Cause::Unshelved))
            }
            mode => Err(AlarmError::NotShelved { mode }),
        }
    }

    /// Suppression by design, level-triggered: call it with the parent's
    /// current verdict on every evaluation. Ignored while shelved or out of
    /// service; `None` when nothing changed.
    pub fn set_suppressed(&mut self, suppressed: bool, now: Timestamp) -> Option<Transition> {
        match (suppressed, self.mode) {
            (true, AlarmMode::Enabled) => {
                let now = self.clamp(now);
                Some(self.leave_enabled(AlarmMode::Suppressed, now, Cause::Suppressed))
            }
            (false, AlarmMode::Suppressed) => {
                let now = self.clamp(now);
                Some(self.enter_enabled(now, Cause::Unsuppressed))
            }
            _ => None,
        }
    }

    /// Takes the alarm out of service (dropping a shelve or a suppression)
    /// or returns it to service.
    pub fn set_out_of_service(
        &mut self,
        oos: bool,
        now: Timestamp,
    ) -> Result<Transition, AlarmError> {
        match (oos, self.mode) {
            (true, AlarmMode::OutOfService) => Err(AlarmError::AlreadyOutOfService),
            (true, _) => {
                let now = self.clamp(now);
                Ok(self.leave_enabled(AlarmMode::OutOfService, now, Cause::RemovedFromService))
            }
            (false, AlarmMode::OutOfService) => {
                let now = self.clamp(now);
                Ok(self.enter_enabled(now, Cause::ReturnedToService))
            }
            (false, mode) => Err(AlarmError::NotOutOfService { mode }),
        }
    }

    /// The latest time this machine has recorded; `now` never goes below it.
    fn clamp(&self, now: Timestamp) -> Timestamp {
        let now = now.max(self.since);
        match self.pending_since {
            Some(p) => now.max(p),
            None => now,
        }
    }

    fn delay_deadline(&self, timing: &AlarmTiming) -> Option<Timestamp> {
        self.pending_since
            .map(|p| p.saturating_add(delay_for(timing, self.condition)))
    }

    fn shelve_expiry(&self) -> Option<Timestamp> {
        match self.mode {
            AlarmMode::Shelved { until } => Some(until),
            _ => None,
        }
    }

    /// Fires whatever came due up to `now`, in time order (condition first on a tie).
    fn advance(&mut self, timing: &AlarmTiming, now: Timestamp, out: &mut Transitions) {
        loop {
            let delay = self.delay_deadline(timing).filter(|&d| d <= now);
            let expiry = self.shelve_expiry().filter(|&u| u <= now);
            match (delay, expiry) {
                (Some(d), Some(u)) if d <= u => out.push(self.settle(d.max(self.since))),
                (Some(d), None) => out.push(self.settle(d.max(self.since))),
                (_, Some(u)) => {
                    out.push(self.enter_enabled(u.max(self.since), Cause::ShelveExpired));
                }
                (None, None) => break,
            }
        }
    }

    /// The debounced condition takes the raw value.
    fn settle(&mut self, at: Timestamp) -> Transition {
        self.pending_since = None;
        let enabled = self.mode.is_enabled();
        let (to, cause) = if self.condition {
            let to = if enabled {
                AlarmState::ActiveUnacked
            } else {
                AlarmState::ActiveAcked
            };
            (to, Cause::ConditionRaised)
        } else {
            let to = if self.state == AlarmState::ActiveUnacked {
                AlarmState::ReturnedUnacked
            } else {
                AlarmState::Normal
            };
            (to, Cause::ConditionCleared)
        };
        self.go(to, self.mode, at, cause)
    }

    fn leave_enabled(&mut self, mode: AlarmMode, at: Timestamp, cause: Cause) -> Transition {
        self.go(silent(self.state), mode, at, cause)
    }

    fn enter_enabled(&mut self, at: Timestamp, cause: Cause) -> Transition {
        let to = if self.state.is_active() {
            AlarmState::ActiveUnacked
        } else {
            AlarmState::Normal
        };
        self.go(to, AlarmMode::Enabled, at, cause)
    }

    fn go(
        &mut self,
        state: AlarmState,
        mode: AlarmMode,
        at: Timestamp,
        cause: Cause,
    ) -> Transition {
        let t = Transition {
            from: (self.state, self.mode),
            to: (state, mode),
            at,
            cause,
        };
        self.state = state;
        self.mode = mode;
        self.since = at;
        t
    }
}

/// The state an alarm that is not annunciated shows: no acknowledgement owed.
fn silent(state: AlarmState) -> AlarmState {
    match state {
        AlarmState::ActiveUnacked => AlarmState::ActiveAcked,
        AlarmState::ReturnedUnacked => AlarmState::Normal,
        s => s,
    }
}

fn delay_for(timing: &AlarmTiming, condition: bool) -> Duration {
    if condition {
        timing.on_delay
    } else {
        timing.off_delay
    }
}

#[cfg(test)]
mod tests;
