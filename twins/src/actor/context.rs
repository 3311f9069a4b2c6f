//! What every twin of a node shares: the model, the clock, the store, the
//! scheduler and the metrics.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::histogram::Histogram;
use crate::model::{Model, Tier};
use crate::rollup::AlarmCounts;
use crate::store::{Store, StoreWriter};
use crate::time::{Clock, Timestamp};

use ractor::{ActorCell, ActorRef, MessagingErr, SpawnErr};

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
    /// Roll-up latency by the tier it reached (index [`Tier::index`]): one
    /// observation each time a plant, region or enterprise twin applies a
    /// roll-up that includes new samples, of the age of the oldest of them
    /// (from its arrival at the node). The enterprise entry is the
    /// sample-to-HQ latency. Lines and devices record nothing.
    pub rollup_latency: [Histogram; 5],
}

impl TwinMetrics {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// The roll-up latency histogram of `tier`.
    pub fn rollup_latency(&self, tier: Tier) -> &Histogram {
        &self.rollup_latency[tier.index()]
    }
}

/// Decrements a mailbox count, never below zero (a message sent with a
/// plain `cast` was never counted).
fn dequeue(n: &AtomicU32) {
    let _ = n.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
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
    /// Sample batches and child updates waiting in each twin's mailbox
    /// (ractor does not expose a queue length): counted by
    /// [`TwinContext::cast_to`], uncounted by the twin as it handles them.
    mailboxes: Box<[AtomicU32]>,
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
            mailboxes: (0..model_len).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// Sends `msg` to twin `twin` (index in `model.twins`) if it is running.
    /// Sample batches and child updates are counted in its mailbox depth.
    pub fn cast(&self, twin: usize, msg: TwinMsg) -> Result<(), MessagingErr<TwinMsg>> {
        match self.actor_of(twin) {
            Some(actor) => self.cast_to(twin, &actor, msg),
            None => Err(MessagingErr::SendErr(msg)),
        }
    }

    /// Sends `msg` to `actor`, the running actor of twin `twin`. Sample
    /// batches and child updates are counted in its mailbox depth: send
    /// them this way rather than with `actor.cast`.
    pub fn cast_to(
        &self,
        twin: usize,
        actor: &ActorRef<TwinMsg>,
        msg: TwinMsg,
    ) -> Result<(), MessagingErr<TwinMsg>> {
        let slot = msg.is_counted().then(|| self.mailboxes.get(twin)).flatten();
        if let Some(n) = slot {
            n.fetch_add(1, Ordering::Relaxed);
        }
        let result = actor.cast(msg);
        if result.is_err()
            && let Some(n) = slot
        {
            dequeue(n);
        }
        result
    }

    /// The deepest mailbox now: `(twin index, sample batches and child
    /// updates waiting)`; `None` for an empty model. Scans every twin.
    pub fn deepest_mailbox(&self) -> Option<(usize, u32)> {
        self.mailboxes
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .enumerate()
            .max_by_key(|&(i, n)| (n, std::cmp::Reverse(i)))
    }

    /// Twin `twin` took a counted message from its mailbox.
    pub(crate) fn dequeued(&self, twin: usize) {
        if let Some(n) = self.mailboxes.get(twin) {
            dequeue(n);
        }
    }

    /// A (re)started twin has an empty mailbox (what its previous instance
    /// left unhandled is gone).
    pub(crate) fn reset_mailbox(&self, twin: usize) {
        if let Some(n) = self.mailboxes.get(twin) {
            n.store(0, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SourceFile, compile};
    use ractor::Actor;

    /// Holds every message it gets: what waits in a twin's mailbox stays
    /// counted until the twin takes it.
    #[derive(Debug)]
    struct Sink;

    impl Actor for Sink {
        type Msg = TwinMsg;
        type State = ();
        type Arguments = ();

        async fn pre_start(
            &self,
            _myself: ActorRef<TwinMsg>,
            _args: (),
        ) -> Result<(), ractor::ActorProcessingErr> {
            Ok(())
        }
    }

    fn samples() -> TwinMsg {
        TwinMsg::Samples(super::super::twin::SampleBatch {
            samples: Vec::new(),
            arrival: Timestamp::ZERO,
        })
    }

    #[tokio::test]
    async fn counted_casts_raise_the_depth_and_failed_ones_do_not() {
        let model = compile(&[SourceFile {
            path: "m.toml".into(),
            text: r#"
[class.E]
tier = "enterprise"
[class.R]
tier = "region"
[class.P]
tier = "plant"
[class.L]
tier = "line"
[class.D]
tier = "device"
[enterprise]
name = "acme"
class = "E"
[twin."r"]
class = "R"
[twin."r/p"]
class = "P"
[twin."r/p/l"]
class = "L"
[twin."r/p/l/d1"]
class = "D"
[twin."r/p/l/d2"]
class = "D"
"#
            .into(),
        }])
        .unwrap_or_else(|e| panic!("{e}"));
        let index = |path: &str| {
            model
                .twins
                .iter()
                .position(|t| t.path.as_str() == path)
                .expect("a twin of the model")
        };
        let (d1, d2) = (index("acme/r/p/l/d1"), index("acme/r/p/l/d2"));
        let ctx = TwinContext::new(Arc::new(model), Clock::system());
        assert_eq!(ctx.deepest_mailbox(), Some((0, 0)));
        let (sink, handle) = Actor::spawn(None, Sink, ()).await.expect("sink starts");
        for _ in 0..3 {
            ctx.cast_to(d2, &sink, samples()).expect("sent");
        }
        ctx.cast_to(d1, &sink, samples()).expect("sent");
        // Ticks are not counted.
        ctx.cast_to(d1, &sink, TwinMsg::Tick).expect("sent");
        assert_eq!(ctx.deepest_mailbox(), Some((d2, 3)));
        ctx.dequeued(d2);
        ctx.dequeued(d2);
        ctx.dequeued(d2);
        assert_eq!(ctx.deepest_mailbox(), Some((d1, 1)));
        // Never below zero: a plain `cast` was never counted.
        ctx.dequeued(d2);
        ctx.dequeued(d1);
        assert_eq!(ctx.deepest_mailbox(), Some((0, 0)));
        sink.stop(None);
        handle.await.expect("sink stops");
        assert!(ctx.cast_to(d2, &sink, samples()).is_err());
        assert_eq!(
            ctx.deepest_mailbox(),
            Some((0, 0)),
            "a failed cast is not counted"
        );
        // No twin is registered: nothing to send to.
        assert!(ctx.cast(d2, samples()).is_err());
    }
}
