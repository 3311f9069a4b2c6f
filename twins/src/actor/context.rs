//! What every twin of a node shares: the model, the clock, the store, the
//! scheduler and the metrics.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::model::Model;
use crate::rollup::AlarmCounts;
use crate::store::{Store, StoreWriter};
use crate::time::{Clock, Timestamp};

use ractor::{ActorCell, ActorRef, SpawnErr};

use super::feed::ChangeFeed;
use super::plan::Plan;
use super::scheduler::Scheduler;
use super::twin::TwinMsg;

/// Told whenever the root (HQ) twin folds a child's update into its roll-ups.
pub trait RootObserver: Send + Sync + fmt::Debug {
    /// `oldest_arrival`: arrival time of the oldest sample first included by
    /// this update; `now - oldest_arrival` bounds the sample-to-HQ latency of
    /// every sample the update brings.
    fn on_root_update(&self, oldest_arrival: Timestamp, now: Timestamp, alarms: &AlarmCounts);
}

/// Spawns the edge adapters twins supervise. The runtime implements it; a
/// twin asks for its adapters after its children have started and
/// supervises them: an adapter that fails is restarted after a capped,
/// growing delay and never escalates (restarting the plant twin would not
/// mend a broken adapter, and would interrupt every twin below it).
pub trait EdgeHost: Send + Sync + fmt::Debug {
    /// The adapters twin `twin` (index in `model.twins`) supervises, as
    /// indices this host understands. Empty for most twins.
    fn adapters_of(&self, twin: usize) -> &[u32];

    /// Spawns adapter `adapter` linked to `supervisor`. `restart` is why the
    /// previous instance stopped, `None` on the first start.
    fn spawn_adapter(
        &self,
        adapter: u32,
        supervisor: ActorCell,
        restart: Option<String>,
    ) -> Pin<Box<dyn Future<Output = Result<ActorCell, SpawnErr>> + Send + '_>>;
}

/// Node-wide counters of the twin layer (read by `/metrics` and the terminal summary).
#[derive(Debug, Default)]
pub struct TwinMetrics {
    pub twins_started: AtomicU64,
    pub samples: AtomicU64,
    pub batches: AtomicU64,
    /// Samples rejected (unknown property, wrong type): named in the log, counted here.
    pub samples_rejected: AtomicU64,
    pub publishes: AtomicU64,
    pub restarts: AtomicU64,
    pub escalations: AtomicU64,
    pub alarm_transitions: AtomicU64,
    /// Write-behind operations that could not be queued (store shutting down).
    pub writes_dropped: AtomicU64,
    /// Edge adapters restarted after a failure.
    pub adapter_restarts: AtomicU64,
}

impl TwinMetrics {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

pub(crate) fn inc(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Shared by all twins of a node. Build one per node and hand it to the root.
#[derive(Debug)]
pub struct TwinContext {
    pub model: Arc<Model>,
    pub clock: Clock,
    /// Where twins recover their state on (re)start; `None`: no persistence.
    pub store: Option<Arc<dyn Store>>,
    /// Write-behind queue for state, history and journal; `None`: no persistence.
    pub writer: Option<StoreWriter>,
    pub scheduler: Scheduler,
    pub metrics: Arc<TwinMetrics>,
    pub root_observer: Option<Arc<dyn RootObserver>>,
    /// Whether devices append every accepted sample to history.
    pub persist_history: bool,
    /// Test and chaos-drill hook: twins listed here panic on every message.
    pub faults: Option<Arc<Faults>>,
    /// Where twins announce their changes; `None`: nobody listens.
    pub changes: Option<ChangeFeed>,
    /// Spawns the edge adapters of the twins that own some.
    pub edge: Option<Arc<dyn EdgeHost>>,
    plans: Mutex<HashMap<(usize, usize), Arc<Plan>>>,
    /// Names of every class, its properties and alarms, shared with store records.
    names: Vec<ClassNames>,
    /// The running actor of every twin, by index in `model.twins`; updated on restart.
    refs: Box<[Mutex<Option<ActorRef<TwinMsg>>>]>,
}

/// A class's names as shared strings (no allocation per record).
#[derive(Debug)]
pub(crate) struct ClassNames {
    pub class: Arc<str>,
    pub props: Box<[Arc<str>]>,
    pub alarms: Box<[Arc<str>]>,
}

/// Fault injection for tests and drills: twins that panic on their next
/// messages.
#[derive(Debug, Default)]
pub struct Faults {
    /// Twin index → how many more messages it panics on.
    panics: Mutex<HashMap<usize, u32>>,
}

impl Faults {
    /// Makes twin `twin` (index in the model) panic on every message, or stop doing so.
    pub fn panic_on_message(&self, twin: usize, on: bool) {
        self.panic_times(twin, if on { u32::MAX } else { 0 });
    }

    /// Makes twin `twin` panic on its next `n` messages (across restarts).
    pub fn panic_times(&self, twin: usize, n: u32) {
        let mut map = self.panics.lock().unwrap_or_else(|e| e.into_inner());
        if n == 0 {
            map.remove(&twin);
        } else {
            map.insert(twin, n);
        }
    }

    pub(crate) fn should_panic(&self, twin: usize) -> bool {
        let mut map = self.panics.lock().unwrap_or_else(|e| e.into_inner());
        match map.get_mut(&twin) {
            None => false,
            Some(n) => {
                if *n != u32::MAX {
                    *n -= 1;
                    if *n == 0 {
                        map.remove(&twin);
                    }
                }
                true
            }
        }
    }
}

impl TwinContext {
    /// A context with the given model and clock, no store and no observer.
    /// Must be created inside a tokio runtime (it starts the scheduler).
    pub fn new(model: Arc<Model>, clock: Clock) -> Self {
        let model_len = model.twins.len();
        let names = model
            .classes
            .iter()
            .map(|c| ClassNames {
                class: Arc::from(c.name.as_str()),
                props: c.props.iter().map(|p| Arc::from(p.name.as_str())).collect(),
                alarms: c
                    .alarms
                    .iter()
                    .map(|a| Arc::from(a.name.as_str()))
                    .collect(),
            })
            .collect();
        Self {
            model,
            clock,
            store: None,
            writer: None,
            scheduler: Scheduler::spawn(),
            metrics: Arc::new(TwinMetrics::default()),
            root_observer: None,
            persist_history: true,
            faults: None,
            changes: None,
            edge: None,
            plans: Mutex::new(HashMap::new()),
            names,
            refs: (0..model_len).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// Twins announce every change on `feed`.
    pub fn with_changes(mut self, feed: ChangeFeed) -> Self {
        self.changes = Some(feed);
        self
    }

    /// Twins spawn and supervise the adapters `edge` gives them.
    pub fn with_edge(mut self, edge: Arc<dyn EdgeHost>) -> Self {
        self.edge = Some(edge);
        self
    }

    pub fn with_faults(mut self, faults: Arc<Faults>) -> Self {
        self.faults = Some(faults);
        self
    }

    /// The shared names of class `class` (index in `model.classes`).
    pub(crate) fn names(&self, class: usize) -> &ClassNames {
        &self.names[class]
    }

    /// The shared name of property `prop` of class `class`.
    pub(crate) fn prop_name(&self, class: usize, prop: usize) -> Arc<str> {
        self.names[class].props[prop].clone()
    }

    /// The running actor of twin `index` (in `model.twins`), if it is up.
    pub fn actor_of(&self, index: usize) -> Option<ActorRef<TwinMsg>> {
        self.refs
            .get(index)?
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn register(&self, index: usize, actor: Option<ActorRef<TwinMsg>>) {
        if let Some(slot) = self.refs.get(index) {
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = actor;
        }
    }

    /// Clears the registration of `index` if it is still `actor`.
    pub(crate) fn unregister(&self, index: usize, actor: &ActorRef<TwinMsg>) {
        if let Some(slot) = self.refs.get(index) {
            let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
            if slot.as_ref().is_some_and(|a| a.get_id() == actor.get_id()) {
                *slot = None;
            }
        }
    }

    pub fn with_store(mut self, store: Arc<dyn Store>, writer: StoreWriter) -> Self {
        self.store = Some(store);
        self.writer = Some(writer);
        self
    }

    pub fn with_root_observer(mut self, observer: Arc<dyn RootObserver>) -> Self {
        self.root_observer = Some(observer);
        self
    }

    /// The (shared) contribution plan of a child class under a parent class.
    pub(crate) fn plan(&self, parent_class: usize, child_class: usize) -> Arc<Plan> {
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        plans
            .entry((parent_class, child_class))
            .or_insert_with(|| {
                Plan::new(
                    &self.model.classes[parent_class],
                    &self.model.classes[child_class],
                )
            })
            .clone()
    }

    /// Staleness limit of a property with expected period `period`.
    pub(crate) fn stale_after(&self, period: Duration) -> Duration {
        period.mul_f64(self.model.settings.stale_factor.max(1.0))
    }
}
