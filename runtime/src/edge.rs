//! The edge layer of a node: the adapters built from the topology's
//! `[source.NAME]` tables, each an actor supervised by the plant twin that
//! owns it.
//!
//! [`plan`] checks every source against the adapter [`Registry`] and binds
//! its points, reporting each problem at the place it is written. [`Edge`]
//! then spawns the adapters when their plant twins start (it is the twins'
//! [`EdgeHost`]), routes their samples, and keeps their status and setpoint
//! writers for the rest of the node.
//!
//! A source belongs to the plant whose twins it feeds. A source feeding
//! twins of two plants is an error: one adapter connection per plant keeps
//! a plant's equipment with the plant's twins.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use adapters::{PointSpec, PointWriter, Registry, SampleSink, SourceEnv, SourceStats, WriteError};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SpawnErr};
use tokio::sync::{Notify, watch};
use twins::actor::{EdgeHost, TwinContext};
use twins::model::{Diagnostic, Diagnostics, Model, PropKind, Tier, did_you_mean, one_of};
use twins::{PointId, Timestamp, TwinPath, Value};

use crate::router::Router;

/// The kind of the built-in simulator, which is not an edge adapter.
pub const SIM_KIND: &str = "sim";

/// One adapter to run: a source of the topology and the points bound to it.
#[derive(Debug, Clone)]
pub struct AdapterPlan {
    /// Index in `Model::sources`.
    pub source: usize,
    pub name: String,
    pub kind: String,
    /// The twin that supervises the adapter (index in `Model::twins`).
    pub owner: usize,
    /// The points, in `PointId` order.
    pub points: Vec<PointSpec>,
    /// `(twin, slot)` of each point, in `PointId` order.
    pub routes: Vec<(usize, u16)>,
}

/// Every adapter of a topology, checked and bound.
#[derive(Debug, Clone, Default)]
pub struct EdgePlan {
    pub adapters: Vec<AdapterPlan>,
    /// Problems that do not stop the node (a source nothing is bound to).
    pub warnings: Vec<String>,
}

/// The point a sourced property of a twin is read from.
pub fn point_spec(model: &Model, twin: usize, prop: usize, address: String) -> PointSpec {
    let t = &model.twins[twin];
    let class = &model.classes[t.class];
    let p = &class.props[prop];
    PointSpec {
        twin: t.path.clone(),
        prop: p.name.clone(),
        class: class.name.clone(),
        sim: class.sim.clone(),
        address,
        ty: p.ty,
        unit: p.unit.as_ref().map(|u| u.symbol().to_string()),
        range: p.range,
        period: p.period,
        states: p.states.clone(),
    }
}

/// Checks every non-simulated source of `model`: its kind is registered,
/// its table builds, each bound address binds, and its twins belong to one
/// plant. Returns every problem, located in the model files.
pub fn plan(model: &Model, registry: &Registry, env: &SourceEnv) -> Result<EdgePlan, Diagnostics> {
    let mut errors: Vec<Diagnostic> = Vec::new();
    let mut out = EdgePlan::default();
    // Bindings per source: (twin, index in the twin's bindings).
    let mut bound: Vec<Vec<(usize, usize)>> = vec![Vec::new(); model.sources.len()];
    for (ti, t) in model.twins.iter().enumerate() {
        for (bi, b) in t.bindings.iter().enumerate() {
            bound[b.source].push((ti, bi));
        }
    }
    for (si, source) in model.sources.iter().enumerate() {
        if source.kind == SIM_KIND {
            continue;
        }
        let Some(factory) = registry.get(&source.kind) else {
            let kinds: Vec<&str> = registry.kinds().chain([SIM_KIND]).collect();
            errors.push(source.kind_at.error(
                format!(
                    "unknown source kind `{}`: expected {}",
                    source.kind,
                    one_of(&kinds)
                ),
                did_you_mean(&source.kind, kinds.iter().copied()),
            ));
            continue;
        };
        let mut built = match factory.build(&source.name, &source.config, env) {
            Ok(s) => s,
            Err(issues) => {
                for issue in issues {
                    let path: Vec<String> = issue
                        .path
                        .iter()
                        .map(|seg| match seg {
                            adapters::KeySeg::Key(k) => k.clone(),
                            adapters::KeySeg::Index(i) => i.to_string(),
                        })
                        .collect();
                    let at = source.locate(&path.join("."));
                    errors.push(at.error(format!("source `{}`: {issue}", source.name), None));
                }
                continue;
            }
        };
        let bindings = &bound[si];
        if bindings.is_empty() {
            out.warnings.push(format!(
                "{}:{}:{}: source `{}` has no bound points; it is not started",
                source.at.file.display(),
                source.at.line,
                source.at.col,
                source.name
            ));
            continue;
        }
        let mut points = Vec::with_capacity(bindings.len());
        let mut routes = Vec::with_capacity(bindings.len());
        for &(ti, bi) in bindings {
            let b = &model.twins[ti].bindings[bi];
            points.push(point_spec(model, ti, b.prop as usize, b.address.clone()));
            routes.push((ti, b.prop));
        }
        if let Err(bind_errors) = built.bind(points.clone()) {
            for e in bind_errors {
                // Points are in binding order: find the binding by twin and property.
                let at = bindings.iter().find_map(|&(ti, bi)| {
                    let b = &model.twins[ti].bindings[bi];
                    let prop = &model.classes[model.twins[ti].class].props[b.prop as usize];
                    (model.twins[ti].path == e.twin && prop.name == e.prop)
                        .then(|| b.at.clone())
                        .flatten()
                });
                let message = format!(
                    "source `{}`: `{}.{}`: address `{}`: {}",
                    e.source_name, e.twin, e.prop, e.address, e.message
                );
                errors.push(match at {
                    Some(at) => at.error(message, None),
                    None => source.at.error(message, None),
                });
            }
            continue;
        }
        match owner(model, bindings.iter().map(|&(ti, _)| ti)) {
            Ok(owner) => out.adapters.push(AdapterPlan {
                source: si,
                name: source.name.clone(),
                kind: source.kind.clone(),
                owner,
                points,
                routes,
            }),
            Err((a, b)) => errors.push(source.at.error(
                format!(
                    "source `{}` feeds twins of two plants, `{}` and `{}`: an adapter belongs to one plant",
                    source.name, model.twins[a].path, model.twins[b].path
                ),
                Some("declare one source per plant".into()),
            )),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        errors.sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
        Err(Diagnostics(errors))
    }
}

/// The twin that supervises an adapter feeding `twins`: their plant if they
/// share one; without a plant tier, their nearest common container.
/// `Err` names two plants when the twins span more than one.
fn owner(model: &Model, twins: impl Iterator<Item = usize>) -> Result<usize, (usize, usize)> {
    let chain = |mut t: usize| {
        let mut v = vec![t];
        while let Some(p) = model.twins[t].parent {
            v.push(p);
            t = p;
        }
        v.reverse(); // root first
        v
    };
    let plant_of = |t: usize| {
        chain(t)
            .into_iter()
            .find(|&a| model.classes[model.twins[a].class].tier == Tier::Plant)
    };
    let mut common: Option<Vec<usize>> = None;
    let mut plant: Option<usize> = None;
    for t in twins {
        match (plant, plant_of(t)) {
            (Some(p), Some(q)) if p != q => return Err((p, q)),
            (None, Some(q)) => plant = Some(q),
            _ => {}
        }
        let c = chain(t);
        common = Some(match common {
            None => c,
            Some(prev) => prev
                .into_iter()
                .zip(c)
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| a)
                .collect(),
        });
    }
    if let Some(p) = plant {
        return Ok(p);
    }
    let common = common.unwrap_or_default();
    // The deepest common ancestor that has children (a leaf cannot supervise).
    Ok(common
        .iter()
        .rev()
        .copied()
        .find(|&a| !model.twins[a].children.is_empty())
        .or_else(|| common.last().copied())
        .unwrap_or(0))
}

/// Where an adapter is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterState {
    /// Not started yet (its plant twin has not started).
    Pending,
    Running,
    /// Failed; its plant twin restarts it after a delay.
    Failed,
    /// Stopped with the node.
    Stopped,
}

impl AdapterState {
    pub fn as_str(self) -> &'static str {
        match self {
            AdapterState::Pending => "pending",
            AdapterState::Running => "running",
            AdapterState::Failed => "failed",
            AdapterState::Stopped => "stopped",
        }
    }
}

/// What the node knows of one adapter.
#[derive(Debug, Clone)]
pub struct AdapterStatus {
    pub name: String,
    pub kind: String,
    /// Path of the supervising twin.
    pub owner: TwinPath,
    pub state: AdapterState,
    /// Instances started (1 after the first start).
    pub starts: u64,
    pub last_error: Option<String>,
    pub since: Timestamp,
    /// The running instance's counters.
    pub stats: Option<Arc<dyn SourceStats>>,
    /// The running instance's setpoint writer.
    pub writer: Option<Arc<dyn PointWriter>>,
    /// The running instance's router (its undeliverable count).
    pub router: Option<Arc<Router>>,
}

/// Why [`Edge::write`] did nothing.
#[derive(Debug, thiserror::Error)]
pub enum EdgeWriteError {
    #[error("no twin `{0}` in the model")]
    UnknownTwin(String),
    #[error("twin `{twin}` has no property `{prop}`")]
    UnknownProp { twin: String, prop: String },
    #[error("`{twin}.{prop}` is not bound to an edge adapter")]
    NotBound { twin: String, prop: String },
    #[error("adapter `{0}` is not running")]
    NotRunning(String),
    #[error("adapter `{0}` has no writable points")]
    NoWriter(String),
    #[error("adapter `{adapter}`: {error}")]
    Write { adapter: String, error: WriteError },
}

/// The edge adapters of a node. Install it in the twins' context
/// ([`TwinContext::with_edge`]); plant twins then spawn their adapters.
#[derive(Debug, Clone)]
pub struct Edge {
    inner: Arc<EdgeInner>,
}

#[derive(Debug)]
struct EdgeInner {
    me: Weak<EdgeInner>,
    plan: EdgePlan,
    registry: Arc<Registry>,
    env: SourceEnv,
    by_owner: HashMap<usize, Vec<u32>>,
    /// `(twin, slot)` → `(adapter, point)`.
    points: HashMap<(usize, u16), (usize, PointId)>,
    ctx: OnceLock<Weak<TwinContext>>,
    status: Vec<Mutex<AdapterStatus>>,
    /// Stop signals of the running instances.
    stops: Mutex<HashMap<u32, watch::Sender<bool>>>,
    stopping: AtomicBool,
    live: AtomicUsize,
    idle: Notify,
}

impl Edge {
    pub fn new(plan: EdgePlan, registry: Arc<Registry>, env: SourceEnv) -> Edge {
        let mut by_owner: HashMap<usize, Vec<u32>> = HashMap::new();
        let mut points = HashMap::new();
        let now = env.clock.now();
        let mut status = Vec::with_capacity(plan.adapters.len());
        for (i, a) in plan.adapters.iter().enumerate() {
            by_owner.entry(a.owner).or_default().push(i as u32);
            for (p, &route) in a.routes.iter().enumerate() {
                points.insert(route, (i, PointId(p as u32)));
            }
            status.push(Mutex::new(AdapterStatus {
                name: a.name.clone(),
                kind: a.kind.clone(),
                owner: env.model.twins[a.owner].path.clone(),
                state: AdapterState::Pending,
                starts: 0,
                last_error: None,
                since: now,
                stats: None,
                writer: None,
                router: None,
            }));
        }
        Edge {
            inner: Arc::new_cyclic(|me| EdgeInner {
                me: me.clone(),
                plan,
                registry,
                env,
                by_owner,
                points,
                ctx: OnceLock::new(),
                status,
                stops: Mutex::new(HashMap::new()),
                stopping: AtomicBool::new(false),
                live: AtomicUsize::new(0),
                idle: Notify::new(),
            }),
        }
    }

    /// The host twins call; install it with [`TwinContext::with_edge`].
    pub fn host(&self) -> Arc<dyn EdgeHost> {
        self.inner.clone()
    }

    /// Must be called once the context exists, before the root twin starts.
    pub fn attach(&self, ctx: &Arc<TwinContext>) {
        let _ = self.inner.ctx.set(Arc::downgrade(ctx));
    }

    pub fn plan(&self) -> &EdgePlan {
        &self.inner.plan
    }

    /// The status of every adapter, in plan order.
    pub fn status(&self) -> Vec<AdapterStatus> {
        self.inner.status.iter().map(|s| lock(s).clone()).collect()
    }

    /// Writes `value` to the point that feeds `twin.prop`, through its
    /// adapter; only points the adapter allows (its allow-list) accept it.
    pub async fn write(&self, twin: &str, prop: &str, value: Value) -> Result<(), EdgeWriteError> {
        let model = &self.inner.env.model;
        let ti = model
            .twins
            .iter()
            .position(|t| t.path.as_str() == twin)
            .ok_or_else(|| EdgeWriteError::UnknownTwin(twin.into()))?;
        let class = &model.classes[model.twins[ti].class];
        let slot = class
            .props
            .iter()
            .position(|p| p.name == prop && matches!(p.kind, PropKind::Sourced))
            .ok_or_else(|| EdgeWriteError::UnknownProp {
                twin: twin.into(),
                prop: prop.into(),
            })?;
        let &(adapter, point) =
            self.inner
                .points
                .get(&(ti, slot as u16))
                .ok_or_else(|| EdgeWriteError::NotBound {
                    twin: twin.into(),
                    prop: prop.into(),
                })?;
        let (name, state, writer) = {
            let s = lock(&self.inner.status[adapter]);
            (s.name.clone(), s.state, s.writer.clone())
        };
        if state != AdapterState::Running {
            return Err(EdgeWriteError::NotRunning(name));
        }
        let writer = writer.ok_or_else(|| EdgeWriteError::NoWriter(name.clone()))?;
        writer
            .write(point, value)
            .await
            .map_err(|error| EdgeWriteError::Write {
                adapter: name,
                error,
            })
    }

    /// Stops every adapter and waits (up to `timeout`) until they have.
    pub async fn shutdown(&self, timeout: Duration) {
        self.inner.stopping.store(true, Ordering::SeqCst);
        for tx in lock(&self.inner.stops).values() {
            let _ = tx.send(true);
        }
        let wait = async {
            loop {
                let notified = self.inner.idle.notified();
                if self.inner.live.load(Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(timeout, wait).await.is_err() {
            tracing::warn!(
                live = self.inner.live.load(Ordering::SeqCst),
                "edge adapters did not stop in time"
            );
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl EdgeHost for EdgeInner {
    fn adapters_of(&self, twin: usize) -> &[u32] {
        self.by_owner.get(&twin).map_or(&[], Vec::as_slice)
    }

    fn spawn_adapter(
        &self,
        adapter: u32,
        supervisor: ActorCell,
        restart: Option<String>,
    ) -> Pin<Box<dyn Future<Output = Result<ActorCell, SpawnErr>> + Send + '_>> {
        Box::pin(async move {
            if self.stopping.load(Ordering::SeqCst) {
                return Err(SpawnErr::StartupFailed("the node is stopping".into()));
            }
            let inner = self.me.upgrade().ok_or_else(|| {
                SpawnErr::StartupFailed("the edge is not attached to a node".into())
            })?;
            if let Some(reason) = &restart {
                tracing::info!(adapter = %self.plan.adapters[adapter as usize].name, %reason, "restarting edge adapter");
            }
            let (actor, _) = Actor::spawn_linked(
                None,
                AdapterActor,
                AdapterArgs {
                    edge: inner,
                    index: adapter,
                },
                supervisor,
            )
            .await?;
            Ok(actor.get_cell())
        })
    }
}

struct AdapterActor;

struct AdapterArgs {
    edge: Arc<EdgeInner>,
    index: u32,
}

/// Messages of an adapter actor.
#[derive(Debug)]
enum AdapterMsg {
    /// The source's task ended.
    Exited(Result<(), String>),
}

struct AdapterActorState {
    edge: Arc<EdgeInner>,
    index: u32,
    running: Running,
}

/// The source's task; stopped when the actor goes away, however it goes.
struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        self.task.abort();
    }
}

impl Actor for AdapterActor {
    type Msg = AdapterMsg;
    type State = AdapterActorState;
    type Arguments = AdapterArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<AdapterMsg>,
        args: AdapterArgs,
    ) -> Result<AdapterActorState, ActorProcessingErr> {
        let edge = args.edge;
        let plan = &edge.plan.adapters[args.index as usize];
        let ctx = edge
            .ctx
            .get()
            .and_then(Weak::upgrade)
            .ok_or("the node is gone")?;
        let factory = edge
            .registry
            .get(&plan.kind)
            .ok_or_else(|| format!("no `{}` adapter in this build", plan.kind))?;
        let source_def = &edge.env.model.sources[plan.source];
        let mut source = factory
            .build(&plan.name, &source_def.config, &edge.env)
            .map_err(|issues| {
                let text: Vec<String> = issues.iter().map(ToString::to_string).collect();
                format!("source `{}`: {}", plan.name, text.join("; "))
            })?;
        source.bind(plan.points.clone()).map_err(|errors| {
            let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
            text.join("; ")
        })?;
        let router = Arc::new(Router::new(plan.name.clone(), plan.routes.clone(), ctx));
        let (stop, stop_rx) = watch::channel(edge.stopping.load(Ordering::SeqCst));
        lock(&edge.stops).insert(args.index, stop.clone());
        {
            let mut s = lock(&edge.status[args.index as usize]);
            s.state = AdapterState::Running;
            s.starts += 1;
            s.since = edge.env.clock.now();
            s.stats = source.stats();
            s.writer = source.writer();
            s.router = Some(router.clone());
        }
        edge.live.fetch_add(1, Ordering::SeqCst);
        let sink: Arc<dyn SampleSink> = router;
        let me = myself.clone();
        let task = tokio::spawn(async move {
            let result = source.run(sink, stop_rx).await;
            let _ = me.cast(AdapterMsg::Exited(result.map_err(|e| e.to_string())));
        });
        Ok(AdapterActorState {
            edge: edge.clone(),
            index: args.index,
            running: Running { stop, task },
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<AdapterMsg>,
        msg: AdapterMsg,
        state: &mut AdapterActorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AdapterMsg::Exited(Ok(())) if *state.running.stop.borrow() => {
                myself.stop(Some("stopped".into()));
                Ok(())
            }
            AdapterMsg::Exited(result) => {
                let error = result
                    .err()
                    .unwrap_or_else(|| "the source stopped by itself".into());
                lock(&state.edge.status[state.index as usize]).last_error = Some(error.clone());
                Err(error.into())
            }
        }
    }
}

impl Drop for AdapterActorState {
    fn drop(&mut self) {
        let edge = &self.edge;
        lock(&edge.stops).remove(&self.index);
        {
            let mut s = lock(&edge.status[self.index as usize]);
            s.state = if edge.stopping.load(Ordering::SeqCst) {
                AdapterState::Stopped
            } else {
                AdapterState::Failed
            };
            s.since = edge.env.clock.now();
            s.writer = None;
        }
        if edge.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            edge.idle.notify_waiters();
        }
    }
}
