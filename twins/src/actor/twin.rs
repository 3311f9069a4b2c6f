//! `TwinActor`: one actor per twin, devices and containers alike.
//!
//! A device twin takes sample batches, evaluates its derived values and
//! alarms, persists write-behind and hands its contribution to its parent.
//! A container twin spawns its children linked (it is their supervisor),
//! folds their contributions into its roll-ups incrementally and publishes
//! upward at most once per its tier's interval. See `docs/architecture.md`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use serde::{Deserialize, Serialize};

use crate::alarm::{
    AlarmMachine, AlarmMode, AlarmRecord, AlarmState, AlarmTiming, Priority, Transition,
};
use crate::id::{TwinId, TwinPath};
use crate::model::{Class, PropKind, RestartStrategy, SupervisionPolicy, Tier};
use crate::quality::{Quality, Reason};
use crate::rollup::{AlarmCounts, Contribution, Counts, Input, RollupSet};
use crate::sample::{PropSample, Slot};
use crate::store::{
    AlarmTransitionRecord, Event, EventRecord, HistoryPoint, HistoryRecord, TwinRecord, WriteOp,
};
use crate::time::Timestamp;
use crate::value::{Value, ValueType};

use super::context::{TwinContext, inc};
use super::feed::TwinChange;
use super::plan::Plan;

/// A batch of samples for one twin (sources batch at the edge).
#[derive(Debug, Clone)]
pub struct SampleBatch {
    pub samples: Vec<PropSample>,
    /// When the batch reached the node (the start of sample-to-HQ latency).
    pub arrival: Timestamp,
}

/// An operator command on one alarm.
#[derive(Debug, Clone, PartialEq)]
pub enum AlarmCommand {
    Acknowledge,
    Shelve { until: Timestamp },
    Unshelve,
    OutOfService(bool),
}

/// Why a request to a twin failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TwinError {
    #[error("twin `{twin}` has no alarm `{alarm}`")]
    UnknownAlarm { twin: TwinPath, alarm: String },
    #[error("alarm `{alarm}` of twin `{twin}`: {source}")]
    Alarm {
        twin: TwinPath,
        alarm: String,
        source: crate::alarm::AlarmError,
    },
    #[error("twin `{0}` is not running")]
    NotRunning(TwinPath),
}

/// The whole protocol of a twin.
#[derive(Debug)]
pub enum TwinMsg {
    /// Samples for this twin's sourced properties.
    Samples(SampleBatch),
    /// A child's latest contribution (replaces its previous one).
    ChildUpdate(ChildUpdate),
    /// Periodic tick from the parent (or, at the root, the node): check
    /// staleness, alarm delays and shelve expiry of due twins.
    Tick,
    /// A coalesced publish is due (from the shared scheduler).
    Flush,
    /// The parent's current slots, for suppression conditions.
    ParentState(Arc<[Slot]>),
    /// Read the twin's current state.
    Get(RpcReplyPort<TwinView>),
    /// An operator command on an alarm; `who` is recorded in the journal.
    Alarm {
        alarm: String,
        command: AlarmCommand,
        who: String,
        reply: RpcReplyPort<Result<(), TwinError>>,
    },
    /// Start edge adapter `n` (index among this twin's adapters) again,
    /// after the delay that followed its failure.
    RestartAdapter(u32),
}

impl TwinMsg {
    /// Whether the message counts in the twin's mailbox depth: the kinds
    /// that can pile up (sample batches from the edge, updates from
    /// children). See [`TwinContext::cast_to`].
    pub fn is_counted(&self) -> bool {
        matches!(self, TwinMsg::Samples(_) | TwinMsg::ChildUpdate(_))
    }
}

/// A child's contribution as it travels to its parent.
#[derive(Debug, Clone)]
pub struct ChildUpdate {
    /// The child's index among its parent's children.
    pub child: u32,
    pub contribution: Contribution,
    /// Earliest time the child's subtree needs a tick.
    pub wake: Timestamp,
    /// Arrival time of the oldest sample first included by this update
    /// (`Timestamp::MAX` when none).
    pub oldest_arrival: Timestamp,
}

/// A snapshot of a twin for readers (API, CLI, tests).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TwinView {
    pub path: TwinPath,
    pub id: TwinId,
    pub class: String,
    pub tier: Tier,
    pub seq: u64,
    pub props: Vec<PropView>,
    pub alarms: Vec<AlarmView>,
    /// Active alarms of this twin and its whole subtree, by priority.
    pub subtree_alarms: AlarmCounts,
    pub children: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PropView {
    pub name: String,
    pub value: Value,
    pub quality: Quality,
    pub ts: Timestamp,
    pub unit: Option<String>,
    /// For roll-ups: how many children contributed, by quality.
    pub counts: Option<Counts>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmView {
    pub name: String,
    pub priority: Priority,
    pub state: AlarmState,
    pub mode: AlarmMode,
    pub since: Timestamp,
    pub guidance: String,
}

/// Spawn arguments of a twin.
#[derive(Debug)]
pub struct TwinArgs {
    pub ctx: Arc<TwinContext>,
    /// Index of the twin in `ctx.model.twins`.
    pub def: usize,
    pub parent: Option<ParentLink>,
    /// Why the twin is being (re)started, for its journal; `None` at node start.
    pub restart_reason: Option<String>,
}

/// A twin's link to its parent.
#[derive(Debug, Clone)]
pub struct ParentLink {
    pub actor: ActorRef<TwinMsg>,
    /// The parent's index in `model.twins` (its mailbox count).
    pub twin: usize,
    pub index: u32,
    pub plan: Arc<Plan>,
}

/// Spawns the root twin of `ctx.model` (index 0). It is unsupervised: its
/// owner watches the join handle. Its subtree spawns itself below it.
pub async fn spawn_root(
    ctx: Arc<TwinContext>,
) -> Result<(ActorRef<TwinMsg>, tokio::task::JoinHandle<()>), ractor::SpawnErr> {
    Actor::spawn(
        None,
        TwinActor,
        TwinArgs {
            ctx,
            def: 0,
            parent: None,
            restart_reason: None,
        },
    )
    .await
}

/// The twin actor. Stateless; everything lives in [`TwinState`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TwinActor;

#[derive(Debug)]
struct AlarmInst {
    machine: AlarmMachine,
    priority: Priority,
    deadband: f64,
    enabled: bool,
}

#[derive(Debug)]
struct Child {
    def: u32,
    actor: Option<ActorId>,
    wake: Timestamp,
    restarts: VecDeque<Timestamp>,
    suppressible: bool,
}

/// An edge adapter this twin supervises.
#[derive(Debug)]
struct AdapterChild {
    /// The adapter's index for the [`EdgeHost`].
    index: u32,
    actor: Option<ActorId>,
    /// Failures in a row (reset when an instance ran for a while).
    failures: u32,
    started: Timestamp,
    /// Why the last instance stopped, handed to the next one.
    last_error: Option<String>,
}

/// First delay before restarting a failed adapter; doubles per failure in a row.
pub const ADAPTER_RESTART_MIN: Duration = Duration::from_secs(1);
/// Longest delay before restarting a failed adapter.
const ADAPTER_RESTART_MAX: Duration = Duration::from_secs(30);
/// An adapter that ran this long before failing starts over at the first delay.
const ADAPTER_HEALTHY_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Container {
    children: Vec<Child>,
    adapters: Vec<AdapterChild>,
    rollups: RollupSet,
    dirty: bool,
    flush_scheduled: bool,
    last_publish: Option<tokio::time::Instant>,
    interval: Duration,
    oldest_arrival: Timestamp,
    policy: SupervisionPolicy,
    last_history: Timestamp,
    any_suppressible: bool,
}

/// Everything a twin holds.
#[derive(Debug)]
pub struct TwinState {
    ctx: Arc<TwinContext>,
    def: usize,
    /// Index of the twin's class in `ctx.model.classes`.
    def_class: usize,
    path: TwinPath,
    id: TwinId,
    class: Arc<Class>,
    slots: Vec<Slot>,
    /// When each slot last received a sample (staleness clock).
    arrived: Vec<Timestamp>,
    alarms: Vec<AlarmInst>,
    seq: u64,
    events_in_seq: u32,
    parent: Option<ParentLink>,
    /// Fingerprint of the last contribution and wake time sent to the parent
    /// (a 64-bit hash: keeping the contribution itself would cost every twin
    /// a heap allocation).
    last_sent: Option<u64>,
    container: Option<Box<Container>>,
    parent_slots: Option<Arc<[Slot]>>,
    /// Writes produced while handling the current message.
    pending: Vec<WriteOp>,
    /// Whether the current message changed the twin's state (for the change feed).
    changed: bool,
}

/// Journal sequence numbers are `state seq × EVENTS_PER_SEQ + n`.
pub const EVENTS_PER_SEQ: u64 = 1024;

/// A container persists the history of its roll-ups at most this often.
const CONTAINER_HISTORY_EVERY: Duration = Duration::from_secs(1);

impl Actor for TwinActor {
    type Msg = TwinMsg;
    type State = TwinState;
    type Arguments = TwinArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<TwinMsg>,
        args: TwinArgs,
    ) -> Result<TwinState, ActorProcessingErr> {
        let mut state = TwinState::init(args.ctx, args.def, args.parent)?;
        if let Some(reason) = args.restart_reason {
            state.seq += 1;
            state.journal(Event::Restarted { reason });
            state.persist_state();
            state.flush_writes().await;
        }
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<TwinMsg>,
        state: &mut TwinState,
    ) -> Result<(), ActorProcessingErr> {
        state.ctx.reset_mailbox(state.def);
        state.ctx.register(state.def, Some(myself.clone()));
        inc(&state.ctx.metrics.twins_started, 1);
        if state.container.is_some() {
            let children: Vec<usize> = state.ctx.model.twins[state.def].children.clone();
            for (i, child) in children.into_iter().enumerate() {
                state.spawn_child(&myself, i, child, None).await?;
            }
            let adapters = state.container.as_ref().map_or(0, |c| c.adapters.len());
            for n in 0..adapters {
                state.spawn_adapter(&myself, n).await;
            }
        }
        // Report in: the parent replaces whatever it held for this child.
        let now = state.ctx.clock.now();
        state.evaluate(now);
        state.publish(Timestamp::MAX, true);
        state.flush_writes().await;
        Ok(())
    }

    async fn post_stop(
        &self,
        myself: ActorRef<TwinMsg>,
        state: &mut TwinState,
    ) -> Result<(), ActorProcessingErr> {
        state.ctx.unregister(state.def, &myself);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<TwinMsg>,
        msg: TwinMsg,
        state: &mut TwinState,
    ) -> Result<(), ActorProcessingErr> {
        if msg.is_counted() {
            state.ctx.dequeued(state.def);
        }
        if let Some(faults) = &state.ctx.faults
            && faults.should_panic(state.def)
        {
            panic!(
                "fault injected: twin `{}` panics on every message",
                state.path
            );
        }
        match msg {
            TwinMsg::Samples(batch) => state.on_samples(batch),
            TwinMsg::ChildUpdate(update) => state.on_child_update(&myself, update),
            TwinMsg::Tick => state.on_tick(&myself),
            TwinMsg::Flush => {
                if let Some(c) = state.container.as_mut() {
                    c.flush_scheduled = false;
                }
                state.maybe_publish(&myself);
            }
            TwinMsg::ParentState(slots) => state.on_parent_state(slots),
            TwinMsg::RestartAdapter(n) => state.spawn_adapter(&myself, n as usize).await,
            TwinMsg::Get(reply) => {
                let _ = reply.send(state.view());
            }
            TwinMsg::Alarm {
                alarm,
                command,
                who,
                reply,
            } => {
                let result = state.on_alarm_command(&myself, &alarm, command, &who);
                let _ = reply.send(result);
            }
        }
        Box::pin(state.flush_writes()).await;
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<TwinMsg>,
        event: SupervisionEvent,
        state: &mut TwinState,
    ) -> Result<(), ActorProcessingErr> {
        // Never ractor's default (stop the supervisor when a child exits):
        // apply this twin's restart policy instead.
        match event {
            SupervisionEvent::ActorFailed(cell, err) if state.is_adapter(cell.get_id()) => {
                state.on_adapter_stopped(&myself, cell.get_id(), Some(err.to_string()));
                Ok(())
            }
            SupervisionEvent::ActorTerminated(cell, _, _) if state.is_adapter(cell.get_id()) => {
                // Stopped on purpose (node shutdown): not restarted.
                state.on_adapter_stopped(&myself, cell.get_id(), None);
                Ok(())
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                // Boxed: restarting spawns a child, a large future that would
                // otherwise be part of every twin's task allocation.
                let result = Box::pin(state.on_child_failed(&myself, cell, err.to_string())).await;
                state.flush_writes().await;
                result
            }
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                state.on_child_gone(cell.get_id());
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

impl TwinState {
    fn init(
        ctx: Arc<TwinContext>,
        def: usize,
        parent: Option<ParentLink>,
    ) -> Result<Self, ActorProcessingErr> {
        let model = &ctx.model;
        let tdef = &model.twins[def];
        let class = model.classes[tdef.class].clone();
        let mut slots: Vec<Slot> = class
            .props
            .iter()
            .map(|p| match &p.kind {
                PropKind::Param { default } => {
                    Slot::new(default.clone(), Quality::Good, Timestamp::ZERO)
                }
                _ => Slot::default(),
            })
            .collect();
        for (slot, value) in &tdef.params {
            if let Some(s) = slots.get_mut(*slot as usize) {
                s.value = value.clone();
                s.quality = Quality::Good;
            }
        }
        let mut alarms: Vec<AlarmInst> = class
            .alarms
            .iter()
            .map(|a| AlarmInst {
                machine: AlarmMachine::new(),
                priority: a.priority,
                deadband: a.deadband,
                enabled: true,
            })
            .collect();
        for o in &tdef.alarm_overrides {
            if let Some(a) = alarms.get_mut(o.alarm as usize) {
                a.enabled = o.enabled.unwrap_or(a.enabled);
                a.priority = o.priority.unwrap_or(a.priority);
                a.deadband = o.deadband.unwrap_or(a.deadband);
            }
        }
        let adapters: Vec<AdapterChild> = ctx
            .edge
            .as_ref()
            .map(|e| e.adapters_of(def))
            .unwrap_or_default()
            .iter()
            .map(|&index| AdapterChild {
                index,
                actor: None,
                failures: 0,
                started: Timestamp::ZERO,
                last_error: None,
            })
            .collect();
        let container =
            if tdef.children.is_empty() && class.rollups.is_empty() && adapters.is_empty() {
                None
            } else {
                let settings = &model.settings;
                let children = tdef
                    .children
                    .iter()
                    .map(|&c| Child {
                        def: c as u32,
                        actor: None,
                        wake: Timestamp::MAX,
                        restarts: VecDeque::new(),
                        suppressible: model.twins[c].suppression.is_some(),
                    })
                    .collect::<Vec<_>>();
                let funcs: Vec<_> = class.rollups.iter().map(|r| r.func).collect();
                Some(Box::new(Container {
                    any_suppressible: children.iter().any(|c| c.suppressible),
                    rollups: RollupSet::new(&funcs, children.len()),
                    children,
                    adapters,
                    dirty: false,
                    flush_scheduled: false,
                    last_publish: None,
                    interval: settings.publish_interval.get(class.tier),
                    oldest_arrival: Timestamp::MAX,
                    policy: settings.supervision.get(class.tier),
                    last_history: Timestamp::ZERO,
                }))
            };
        let path = tdef.path.clone();
        let mut state = Self {
            id: path.id(),
            path,
            arrived: vec![Timestamp::ZERO; slots.len()],
            slots: std::mem::take(&mut slots),
            alarms,
            seq: 0,
            events_in_seq: 0,
            parent,
            last_sent: None,
            container,
            parent_slots: None,
            pending: Vec::new(),
            changed: false,
            class,
            def_class: tdef.class,
            def,
            ctx,
        };
        state.recover()?;
        Ok(state)
    }

    /// Restores the last persisted state, matching properties and alarms by name.
    fn recover(&mut self) -> Result<(), ActorProcessingErr> {
        let Some(store) = &self.ctx.store else {
            return Ok(());
        };
        let Some(record) = store.load_state(self.id)? else {
            return Ok(());
        };
        self.seq = record.seq;
        let now = self.ctx.clock.now();
        for (name, slot) in record.props {
            if let Some(i) = self.class.prop_index(&name) {
                let i = i as usize;
                if matches!(self.class.props[i].kind, PropKind::Sourced) {
                    // The staleness clock restarts at recovery: the value is
                    // as old as it is, but the source gets a full period.
                    self.arrived[i] = now;
                    self.slots[i] = slot;
                }
            }
        }
        for (name, rec) in record.alarms {
            if let Some(i) = self.class.alarms.iter().position(|a| *a.name == *name) {
                self.alarms[i].machine = AlarmMachine::from_record(rec);
            }
        }
        Ok(())
    }

    fn tier(&self) -> Tier {
        self.class.tier
    }

    // ----- samples -----

    fn on_samples(&mut self, batch: SampleBatch) {
        let now = self.ctx.clock.now();
        let metrics = self.ctx.metrics.clone();
        inc(&metrics.batches, 1);
        let mut accepted = 0u64;
        let mut history = Vec::with_capacity(batch.samples.len());
        self.seq += 1;
        self.events_in_seq = 0;
        for s in batch.samples {
            match self.accept(s, now) {
                Ok(Some(h)) => {
                    accepted += 1;
                    history.push(h);
                }
                Ok(None) => accepted += 1,
                Err(reason) => {
                    inc(&metrics.samples_rejected, 1);
                    tracing::debug!(twin = %self.path, %reason, "sample rejected");
                }
            }
        }
        inc(&metrics.samples, accepted);
        self.evaluate(now);
        if self.ctx.persist_history {
            self.persist_history(history);
        }
        self.persist_state();
        self.publish(batch.arrival, false);
    }

    /// Stores one sample into its slot; returns its history record.
    fn accept(&mut self, s: PropSample, now: Timestamp) -> Result<Option<HistoryRecord>, String> {
        let i = s.prop as usize;
        let Some(def) = self.class.props.get(i) else {
            return Err(format!(
                "no property with slot {i} in class `{}`",
                self.class.name
            ));
        };
        if !matches!(def.kind, PropKind::Sourced) {
            return Err(format!("property `{}` is not sourced", def.name));
        }
        let value = coerce(s.value, def.ty).ok_or_else(|| {
            format!(
                "property `{}` expects {}, sample has another type",
                def.name, def.ty
            )
        })?;
        let mut quality = s.quality;
        if let (Some((lo, hi)), Some(v)) = (def.range, value.as_f64())
            && (v < lo || v > hi)
        {
            quality = quality.worst(Quality::Uncertain(Reason::OutOfRange));
        }
        self.slots[i] = Slot::new(value.clone(), quality, s.source_ts);
        self.arrived[i] = now;
        Ok(Some(HistoryRecord {
            twin: self.id,
            prop: self.ctx.prop_name(self.def_class, i),
            point: HistoryPoint {
                ts: s.source_ts,
                seq: self.seq,
                value,
                quality,
            },
        }))
    }

    // ----- evaluation -----

    /// Re-derives derived values, marks stale inputs and runs the alarms.
    fn evaluate(&mut self, now: Timestamp) {
        self.mark_stale(now);
        let class = self.class.clone();
        for &i in &class.eval_order {
            if let PropKind::Derived(expr) = &class.props[i as usize].kind {
                let (value, quality) = expr.eval(&self.slots);
                let value = coerce(value, class.props[i as usize].ty).unwrap_or(Value::Null);
                self.slots[i as usize] = Slot::new(value, quality, now);
            }
        }
        self.run_alarms(now);
    }

    fn mark_stale(&mut self, now: Timestamp) {
        for (i, p) in self.class.props.iter().enumerate() {
            let Some(period) = p.period else { continue };
            if !matches!(p.kind, PropKind::Sourced) {
                continue;
            }
            let slot = &mut self.slots[i];
            if slot.value.is_null() || slot.quality.is_bad() {
                continue;
            }
            if now.since(self.arrived[i]) > self.ctx.stale_after(period) {
                slot.quality = slot.quality.worst(Quality::Uncertain(Reason::Stale));
            }
        }
    }

    fn run_alarms(&mut self, now: Timestamp) {
        let class = self.class.clone();
        let suppressed: Vec<bool> = self.suppression_flags();
        for (i, def) in class.alarms.iter().enumerate() {
            if !self.alarms[i].enabled {
                continue;
            }
            let timing = AlarmTiming {
                on_delay: def.on_delay,
                off_delay: def.off_delay,
            };
            let inst = &mut self.alarms[i];
            let (cond, _q) =
                def.condition
                    .eval(&self.slots, inst.deadband, inst.machine.record().condition);
            let mut found: Vec<Transition> = Vec::new();
            found.extend(match cond {
                Some(c) => inst.machine.update(&timing, c, now),
                None => inst.machine.tick(&timing, now),
            });
            // Level-triggered: re-applied on every evaluation (and so after a shelve ends).
            if let Some(&s) = suppressed.get(i) {
                found.extend(inst.machine.set_suppressed(s, now));
            }
            for t in found {
                self.record_transition(i, t);
            }
        }
    }

    /// Suppression of each alarm by the parent's state (empty: none configured).
    fn suppression_flags(&self) -> Vec<bool> {
        let Some(conds) = &self.ctx.model.twins[self.def].suppression else {
            return Vec::new();
        };
        let Some(parent) = &self.parent_slots else {
            return Vec::new();
        };
        conds
            .iter()
            .map(|c| {
                c.as_ref()
                    .map(|e| e.eval(parent).0.as_bool().unwrap_or(false))
                    .unwrap_or(false)
            })
            .collect()
    }

    fn record_transition(&mut self, alarm: usize, t: Transition) {
        inc(&self.ctx.metrics.alarm_transitions, 1);
        if let Some(feed) = &self.ctx.changes
            && feed.has_subscribers()
        {
            feed.send(TwinChange::Alarm {
                twin: self.def as u32,
                alarm: alarm as u16,
                transition: t,
            });
        }
        let name = self.class.alarms[alarm].name.clone();
        tracing::debug!(twin = %self.path, alarm = %name, from = ?t.from, to = ?t.to, "alarm transition");
        self.journal(Event::Alarm {
            alarm: name,
            transition: AlarmTransitionRecord {
                from_state: t.from.0,
                to_state: t.to.0,
                from_mode: t.from.1,
                to_mode: t.to.1,
                cause: t.cause.name().to_string(),
            },
        });
    }

    fn own_alarm_counts(&self) -> AlarmCounts {
        let mut c = AlarmCounts::default();
        for a in &self.alarms {
            if a.machine.is_annunciated() {
                c.active[a.priority.index()] += 1;
            }
            if a.machine.needs_ack() {
                c.unacked[a.priority.index()] += 1;
            }
        }
        c
    }

    /// Earliest time this twin (and, for containers, its subtree) needs a tick.
    fn wake(&self) -> Timestamp {
        let mut wake = Timestamp::MAX;
        for (i, p) in self.class.props.iter().enumerate() {
            if let (Some(period), PropKind::Sourced) = (p.period, &p.kind) {
                let s = &self.slots[i];
                if !s.value.is_null() && s.quality.is_good() {
                    wake = wake.min(self.arrived[i].saturating_add(self.ctx.stale_after(period)));
                }
            }
        }
        for (i, a) in self.alarms.iter().enumerate() {
            let def = &self.class.alarms[i];
            let timing = AlarmTiming {
                on_delay: def.on_delay,
                off_delay: def.off_delay,
            };
            if let Some(d) = a.machine.next_deadline(&timing) {
                wake = wake.min(d);
            }
        }
        if let Some(c) = &self.container {
            for child in &c.children {
                wake = wake.min(child.wake);
            }
        }
        wake
    }

    // ----- publishing -----

    /// Sends this twin's contribution to its parent if it changed (or `force`).
    fn publish(&mut self, oldest_arrival: Timestamp, force: bool) {
        let subtree = self.subtree_alarms();
        let wake = self.wake();
        let Some(parent) = &self.parent else {
            if let Some(obs) = &self.ctx.root_observer
                && oldest_arrival != Timestamp::MAX
            {
                obs.on_root_update(oldest_arrival, self.ctx.clock.now(), &subtree);
            }
            return;
        };
        let contribution = parent.plan.contribution(&self.slots, subtree);
        let fingerprint = fingerprint(&contribution, wake);
        if !force && self.last_sent == Some(fingerprint) {
            return;
        }
        inc(&self.ctx.metrics.publishes, 1);
        let update = ChildUpdate {
            child: parent.index,
            contribution,
            wake,
            oldest_arrival,
        };
        if self
            .ctx
            .cast_to(parent.twin, &parent.actor, TwinMsg::ChildUpdate(update))
            .is_err()
        {
            tracing::debug!(twin = %self.path, "parent gone; update dropped");
        }
        self.last_sent = Some(fingerprint);
    }

    fn subtree_alarms(&self) -> AlarmCounts {
        let mut counts = self.own_alarm_counts();
        if let Some(c) = &self.container {
            counts.add(&c.rollups.alarms());
        }
        counts
    }

    fn on_child_update(&mut self, myself: &ActorRef<TwinMsg>, u: ChildUpdate) {
        let Some(c) = self.container.as_mut() else {
            return;
        };
        let i = u.child as usize;
        if i >= c.children.len() {
            return;
        }
        c.rollups.replace(i, u.contribution);
        c.children[i].wake = u.wake;
        c.oldest_arrival = c.oldest_arrival.min(u.oldest_arrival);
        c.dirty = true;
        self.maybe_publish(myself);
    }

    /// Publishes now if the tier's interval has passed since the last
    /// publish, else makes sure one flush is scheduled.
    fn maybe_publish(&mut self, myself: &ActorRef<TwinMsg>) {
        let is_root = self.parent.is_none();
        let Some(c) = self.container.as_mut() else {
            return;
        };
        if !c.dirty {
            return;
        }
        let now = tokio::time::Instant::now();
        let due = match c.last_publish {
            // The root has nobody above it to protect: it folds every update at once.
            Some(last) if !is_root => last + c.interval,
            _ => now,
        };
        if due > now {
            if !c.flush_scheduled {
                c.flush_scheduled = true;
                self.ctx.scheduler.flush_at(due, myself.clone());
            }
            return;
        }
        c.last_publish = Some(now);
        c.dirty = false;
        let oldest = std::mem::replace(&mut c.oldest_arrival, Timestamp::MAX);
        self.publish_container(oldest);
    }

    fn publish_container(&mut self, oldest_arrival: Timestamp) {
        let now = self.ctx.clock.now();
        // Lines are the most numerous containers: recording theirs would
        // make every worker contend for the same histogram.
        if oldest_arrival != Timestamp::MAX && self.tier() < Tier::Line {
            self.ctx
                .metrics
                .rollup_latency(self.tier())
                .observe(now.since(oldest_arrival));
        }
        // Children with suppression conditions hear of changed values and
        // qualities (not of mere re-computation).
        let suppressible = self.container.as_ref().is_some_and(|c| c.any_suppressible);
        let before: Option<Vec<(Value, Quality)>> = suppressible.then(|| self.value_qualities());
        self.compute_rollups(now);
        self.seq += 1;
        self.events_in_seq = 0;
        self.evaluate(now);
        self.persist_container(now);
        // Roll-ups changed: announced on the change feed (containers keep no
        // state record; their values are recomputed from the children).
        self.changed = true;
        self.publish(oldest_arrival, false);
        if before.is_some_and(|b| b != self.value_qualities()) {
            self.send_parent_state();
        }
    }

    fn value_qualities(&self) -> Vec<(Value, Quality)> {
        self.slots
            .iter()
            .map(|s| (s.value.clone(), s.quality))
            .collect()
    }

    fn compute_rollups(&mut self, now: Timestamp) {
        let Some(c) = self.container.as_mut() else {
            return;
        };
        for (j, r) in self.class.rollups.iter().enumerate() {
            let agg = c.rollups.result(j);
            let ty = self.class.props[r.prop as usize].ty;
            self.slots[r.prop as usize] = Slot::new(
                coerce(agg.value, ty).unwrap_or(Value::Null),
                agg.quality,
                now,
            );
        }
    }

    fn send_parent_state(&self) {
        let Some(c) = &self.container else { return };
        let shared: Arc<[Slot]> = self.slots.clone().into();
        for child in c.children.iter().filter(|c| c.suppressible) {
            if let Some(actor) = self.ctx.actor_of(child.def as usize) {
                let _ = actor.cast(TwinMsg::ParentState(shared.clone()));
            }
        }
    }

    fn on_parent_state(&mut self, slots: Arc<[Slot]>) {
        self.parent_slots = Some(slots);
        let now = self.ctx.clock.now();
        self.seq += 1;
        self.events_in_seq = 0;
        self.run_alarms(now);
        self.persist_state();
        self.publish(Timestamp::MAX, false);
    }

    fn on_tick(&mut self, myself: &ActorRef<TwinMsg>) {
        let now = self.ctx.clock.now();
        if let Some(c) = self.container.as_mut() {
            for child in c.children.iter_mut() {
                if child.wake <= now {
                    // It reports a fresh wake time after its tick.
                    child.wake = Timestamp::MAX;
                    if let Some(actor) = self.ctx.actor_of(child.def as usize) {
                        let _ = actor.cast(TwinMsg::Tick);
                    }
                }
            }
        }
        let before: Vec<(Quality, AlarmRecord)> = self
            .slots
            .iter()
            .map(|s| s.quality)
            .zip(self.alarms.iter().map(|a| a.machine.record()))
            .collect();
        self.seq += 1;
        self.events_in_seq = 0;
        self.evaluate(now);
        let after: Vec<(Quality, AlarmRecord)> = self
            .slots
            .iter()
            .map(|s| s.quality)
            .zip(self.alarms.iter().map(|a| a.machine.record()))
            .collect();
        if before != after {
            self.persist_state();
        } else {
            self.seq -= 1;
        }
        if let Some(c) = self.container.as_mut() {
            c.dirty = true;
            self.maybe_publish(myself);
        } else {
            self.publish(Timestamp::MAX, true);
        }
    }

    // ----- alarms commands -----

    fn on_alarm_command(
        &mut self,
        myself: &ActorRef<TwinMsg>,
        alarm: &str,
        command: AlarmCommand,
        who: &str,
    ) -> Result<(), TwinError> {
        let Some(i) = self.class.alarms.iter().position(|a| a.name == alarm) else {
            return Err(TwinError::UnknownAlarm {
                twin: self.path.clone(),
                alarm: alarm.to_string(),
            });
        };
        let now = self.ctx.clock.now();
        let def = &self.class.alarms[i];
        let timing = AlarmTiming {
            on_delay: def.on_delay,
            off_delay: def.off_delay,
        };
        // Bring the machine up to date before the operator acts on it.
        let due: Vec<Transition> = self.alarms[i]
            .machine
            .tick(&timing, now)
            .into_iter()
            .collect();
        for t in due {
            self.record_transition(i, t);
        }
        let m = &mut self.alarms[i].machine;
        let result = match &command {
            AlarmCommand::Acknowledge => m.acknowledge(now),
            AlarmCommand::Shelve { until } => m.shelve(*until, now),
            AlarmCommand::Unshelve => m.unshelve(now),
            AlarmCommand::OutOfService(on) => m.set_out_of_service(*on, now),
        };
        let t = result.map_err(|source| TwinError::Alarm {
            twin: self.path.clone(),
            alarm: alarm.to_string(),
            source,
        })?;
        self.seq += 1;
        self.events_in_seq = 0;
        self.journal(Event::OperatorAction {
            who: who.to_string(),
            action: format!("{command:?} {alarm}"),
        });
        self.record_transition(i, t);
        self.persist_state();
        if let Some(c) = self.container.as_mut() {
            c.dirty = true;
            self.maybe_publish(myself);
        } else {
            self.publish(Timestamp::MAX, false);
        }
        Ok(())
    }

    // ----- supervision -----

    async fn spawn_child(
        &mut self,
        myself: &ActorRef<TwinMsg>,
        index: usize,
        def: usize,
        restart_reason: Option<String>,
    ) -> Result<(), ActorProcessingErr> {
        let restart_reason_given = restart_reason.is_some();
        let model = &self.ctx.model;
        let plan = self
            .ctx
            .plan(model.twins[self.def].class, model.twins[def].class);
        let args = TwinArgs {
            ctx: self.ctx.clone(),
            def,
            parent: Some(ParentLink {
                actor: myself.clone(),
                twin: self.def,
                index: index as u32,
                plan,
            }),
            restart_reason,
        };
        let (actor, _) = Actor::spawn_linked(None, TwinActor, args, myself.get_cell()).await?;
        if let Some(c) = self.container.as_mut() {
            c.children[index].actor = Some(actor.get_id());
            if c.children[index].suppressible && restart_reason_given {
                // A restarted child learns the parent's state at once.
                let _ = actor.cast(TwinMsg::ParentState(self.slots.clone().into()));
            }
        }
        Ok(())
    }

    // ----- edge adapters -----

    fn is_adapter(&self, id: ActorId) -> bool {
        self.container
            .as_ref()
            .is_some_and(|c| c.adapters.iter().any(|a| a.actor == Some(id)))
    }

    /// Starts adapter `n`; a failure to start counts as a failure of the adapter.
    async fn spawn_adapter(&mut self, myself: &ActorRef<TwinMsg>, n: usize) {
        let Some(edge) = self.ctx.edge.clone() else {
            return;
        };
        let now = self.ctx.clock.now();
        let Some(a) = self.container.as_mut().and_then(|c| c.adapters.get_mut(n)) else {
            return;
        };
        if a.actor.is_some() {
            return;
        }
        let (index, reason) = (a.index, a.last_error.take());
        match edge.spawn_adapter(index, myself.get_cell(), reason).await {
            Ok(cell) => {
                a.actor = Some(cell.get_id());
                a.started = now;
            }
            Err(e) => {
                a.started = now;
                let error = format!("failed to start: {e}");
                self.schedule_adapter_restart(myself, n, error);
            }
        }
    }

    /// Adapter actor `id` stopped: restarted after a delay if it failed.
    fn on_adapter_stopped(
        &mut self,
        myself: &ActorRef<TwinMsg>,
        id: ActorId,
        error: Option<String>,
    ) {
        let Some(n) = self
            .container
            .as_ref()
            .and_then(|c| c.adapters.iter().position(|a| a.actor == Some(id)))
        else {
            return;
        };
        if let Some(a) = self.container.as_mut().map(|c| &mut c.adapters[n]) {
            a.actor = None;
        }
        if let Some(error) = error {
            self.schedule_adapter_restart(myself, n, error);
        }
    }

    fn schedule_adapter_restart(&mut self, myself: &ActorRef<TwinMsg>, n: usize, error: String) {
        let now = self.ctx.clock.now();
        let Some(a) = self.container.as_mut().map(|c| &mut c.adapters[n]) else {
            return;
        };
        if now.since(a.started) >= ADAPTER_HEALTHY_AFTER {
            a.failures = 0;
        }
        let delay = ADAPTER_RESTART_MIN
            .saturating_mul(1u32 << a.failures.min(5))
            .min(ADAPTER_RESTART_MAX);
        a.failures = a.failures.saturating_add(1);
        tracing::warn!(
            twin = %self.path, adapter = a.index, %error, failures = a.failures, ?delay,
            "edge adapter failed; restarting after a delay"
        );
        a.last_error = Some(error);
        inc(&self.ctx.metrics.adapter_restarts, 1);
        // Detached: the timer task sends the restart even if nobody awaits it.
        drop(myself.send_after(delay, move || TwinMsg::RestartAdapter(n as u32)));
    }

    fn child_index(&self, id: ActorId) -> Option<usize> {
        self.container
            .as_ref()?
            .children
            .iter()
            .position(|c| c.actor == Some(id))
    }

    fn on_child_gone(&mut self, id: ActorId) {
        if let Some(i) = self.child_index(id)
            && let Some(c) = self.container.as_mut()
        {
            c.children[i].actor = None;
        }
    }

    async fn on_child_failed(
        &mut self,
        myself: &ActorRef<TwinMsg>,
        cell: ActorCell,
        error: String,
    ) -> Result<(), ActorProcessingErr> {
        let Some(i) = self.child_index(cell.get_id()) else {
            return Ok(());
        };
        let now = self.ctx.clock.now();
        let (def, policy) = {
            let c = self.container.as_mut().ok_or("container vanished")?;
            c.children[i].actor = None;
            (c.children[i].def as usize, c.policy)
        };
        let child_path = self.ctx.model.twins[def].path.clone();
        tracing::warn!(twin = %self.path, child = %child_path, %error, "child twin failed");
        if policy.strategy == RestartStrategy::Temporary {
            self.mark_child_down(myself, i);
            return Ok(());
        }
        loop {
            let c = self.container.as_mut().ok_or("container vanished")?;
            let restarts = &mut c.children[i].restarts;
            while restarts
                .front()
                .is_some_and(|t| now.since(*t) > policy.period)
            {
                restarts.pop_front();
            }
            if restarts.len() as u32 >= policy.max_restarts {
                inc(&self.ctx.metrics.escalations, 1);
                self.mark_child_down(myself, i);
                return Err(format!(
                    "twin `{}` escalates: child `{child_path}` failed {} times within {:?} (last error: {error})",
                    self.path,
                    policy.max_restarts + 1,
                    policy.period
                )
                .into());
            }
            restarts.push_back(now);
            inc(&self.ctx.metrics.restarts, 1);
            match self
                .spawn_child(
                    myself,
                    i,
                    def,
                    Some(format!("restarted after failure: {error}")),
                )
                .await
            {
                Ok(()) => return Ok(()),
                Err(e) => {
                    tracing::warn!(twin = %self.path, child = %child_path, error = %e, "child twin failed to restart");
                }
            }
        }
    }

    /// A child that stays down contributes Bad(comm_failure) values.
    fn mark_child_down(&mut self, myself: &ActorRef<TwinMsg>, i: usize) {
        let Some(c) = self.container.as_mut() else {
            return;
        };
        let old = c.rollups.contribution(i).clone();
        let inputs = old
            .inputs
            .iter()
            .map(|inp| match inp {
                Input::Absent => Input::Absent,
                Input::Present { value, weight, .. } => Input::Present {
                    value: *value,
                    weight: *weight,
                    quality: Quality::Bad(Reason::CommFailure),
                },
            })
            .collect();
        c.rollups.replace(
            i,
            Contribution {
                inputs,
                alarms: AlarmCounts::default(),
            },
        );
        c.children[i].wake = Timestamp::MAX;
        c.dirty = true;
        self.maybe_publish(myself);
    }

    // ----- persistence -----

    fn journal(&mut self, event: Event) {
        let seq = self.seq * EVENTS_PER_SEQ + u64::from(self.events_in_seq);
        self.events_in_seq += 1;
        let record = EventRecord {
            twin: self.id,
            seq,
            at: self.ctx.clock.now(),
            event,
        };
        self.write(WriteOp::Event(record));
    }

    fn record(&self) -> TwinRecord {
        let names = self.ctx.names(self.def_class);
        TwinRecord {
            class: names.class.clone(),
            seq: self.seq,
            updated: self.ctx.clock.now(),
            props: self
                .class
                .props
                .iter()
                .zip(&self.slots)
                .zip(names.props.iter())
                .filter(|((p, _), _)| matches!(p.kind, PropKind::Sourced))
                .map(|((_, s), name)| (name.clone(), s.clone()))
                .collect(),
            alarms: names
                .alarms
                .iter()
                .zip(&self.alarms)
                .map(|(name, a)| (name.clone(), a.machine.record()))
                .collect(),
        }
    }

    fn persist_state(&mut self) {
        self.changed = true;
        if self.ctx.writer.is_some() {
            let record = self.record();
            self.write(WriteOp::State(self.id, record));
        }
    }

    fn persist_history(&mut self, history: Vec<HistoryRecord>) {
        if self.ctx.writer.is_some() && !history.is_empty() {
            self.write(WriteOp::HistoryBatch(history));
        }
    }

    fn persist_container(&mut self, now: Timestamp) {
        if self.ctx.writer.is_none() {
            return;
        }
        let due = self
            .container
            .as_ref()
            .is_some_and(|c| now.since(c.last_history) >= CONTAINER_HISTORY_EVERY);
        if due {
            let history: Vec<HistoryRecord> = self
                .class
                .rollups
                .iter()
                .map(|r| {
                    let p = r.prop as usize;
                    HistoryRecord {
                        twin: self.id,
                        prop: self.ctx.prop_name(self.def_class, p),
                        point: HistoryPoint {
                            ts: now,
                            seq: self.seq,
                            value: self.slots[p].value.clone(),
                            quality: self.slots[p].quality,
                        },
                    }
                })
                .collect();
            if let Some(c) = self.container.as_mut() {
                c.last_history = now;
            }
            self.persist_history(history);
        }
        self.persist_state();
    }

    fn write(&mut self, op: WriteOp) {
        if self.ctx.writer.is_some() {
            self.pending.push(op);
        }
    }

    /// Hands this message's writes to the write-behind queue as one group,
    /// so they land in the same store batch. When the queue is full the
    /// twin waits for room rather than lose data: that wait is the
    /// back-pressure that reaches the sources.
    async fn flush_writes(&mut self) {
        if std::mem::take(&mut self.changed)
            && let Some(feed) = &self.ctx.changes
            && feed.has_subscribers()
        {
            feed.send(TwinChange::State {
                twin: self.def as u32,
                seq: self.seq,
                slots: self.slots.clone().into(),
            });
        }
        let Some(writer) = &self.ctx.writer else {
            return;
        };
        let op = match self.pending.len() {
            0 => return,
            1 => self.pending.pop().expect("one pending write"),
            _ => WriteOp::Group(std::mem::take(&mut self.pending)),
        };
        if writer.send(op).await.is_err() {
            inc(&self.ctx.metrics.writes_dropped, 1);
        }
    }

    // ----- views -----

    fn view(&mut self) -> TwinView {
        let counts: Vec<Option<Counts>> = {
            let mut v = vec![None; self.class.props.len()];
            if let Some(c) = self.container.as_mut() {
                for (j, r) in self.class.rollups.iter().enumerate() {
                    v[r.prop as usize] = Some(c.rollups.result(j).counts);
                }
            }
            v
        };
        TwinView {
            path: self.path.clone(),
            id: self.id,
            class: self.class.name.clone(),
            tier: self.tier(),
            seq: self.seq,
            props: self
                .class
                .props
                .iter()
                .zip(&self.slots)
                .zip(counts)
                .map(|((p, s), counts)| PropView {
                    name: p.name.clone(),
                    value: s.value.clone(),
                    quality: s.quality,
                    ts: s.ts,
                    unit: p.unit.as_ref().map(|u| u.symbol().to_string()),
                    counts,
                })
                .collect(),
            alarms: self
                .class
                .alarms
                .iter()
                .zip(&self.alarms)
                .map(|(d, a)| {
                    let r = a.machine.record();
                    AlarmView {
                        name: d.name.clone(),
                        priority: a.priority,
                        state: r.state,
                        mode: r.mode,
                        since: r.since,
                        guidance: d.guidance.clone(),
                    }
                })
                .collect(),
            subtree_alarms: self.subtree_alarms(),
            children: self.ctx.model.twins[self.def]
                .children
                .iter()
                .map(|&c| self.ctx.model.twins[c].path.name().to_string())
                .collect(),
        }
    }
}

/// A 64-bit fingerprint of what a child last told its parent.
fn fingerprint(c: &Contribution, wake: Timestamp) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for input in &c.inputs {
        match input {
            Input::Absent => 0u8.hash(&mut h),
            Input::Present {
                value,
                weight,
                quality,
            } => {
                1u8.hash(&mut h);
                value.to_bits().hash(&mut h);
                weight.to_bits().hash(&mut h);
                quality.hash(&mut h);
            }
        }
    }
    c.alarms.active.hash(&mut h);
    c.alarms.unacked.hash(&mut h);
    wake.hash(&mut h);
    h.finish()
}

/// Converts a value to a property's type where that is lossless enough
/// (i64 → f64, bool → number, number → bool for 0/1); `None` otherwise.
fn coerce(value: Value, ty: ValueType) -> Option<Value> {
    Some(match (value, ty) {
        (Value::Null, _) => Value::Null,
        (v @ Value::F64(_), ValueType::F64) => v,
        (Value::I64(i), ValueType::F64) => Value::F64(i as f64),
        (Value::Bool(b), ValueType::F64) => Value::F64(if b { 1.0 } else { 0.0 }),
        (v @ Value::I64(_), ValueType::I64) => v,
        (Value::F64(f), ValueType::I64) if f.is_finite() => Value::I64(f.round() as i64),
        (v @ Value::Bool(_), ValueType::Bool) => v,
        (Value::I64(i), ValueType::Bool) if i == 0 || i == 1 => Value::Bool(i == 1),
        (Value::F64(f), ValueType::Bool) if f == 0.0 || f == 1.0 => Value::Bool(f == 1.0),
        (v @ Value::String(_), ValueType::String) => v,
        (v @ Value::Enum(_), ValueType::Enum) => v,
        (Value::I64(i), ValueType::Enum) => Value::Enum(u16::try_from(i).ok()?),
        _ => return None,
    })
}
