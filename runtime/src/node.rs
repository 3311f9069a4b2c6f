//! The node: the composition root that wires model, store, twins and sources.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adapters::{PointSpec, Registry, SampleSink, SampleSource, SourceEnv};
use anyhow::{Context, bail};
use cluster::LocalDirectory;
use ractor::ActorRef;
use twins::actor::{ChangeFeed, RootObserver, TwinContext, TwinMsg, spawn_root};
use twins::model::{Model, PropKind};
use twins::store::{MemoryStore, Store, StoreWriter, WriterConfig, WriterHandle};
use twins::{Clock, TwinPath};

use crate::audit::{AuditEntry, AuditHandle, AuditLog, Category};
use crate::edge::{Edge, SIM_KIND};
use crate::metrics::RateWindow;
use crate::router::Router;
use crate::sim_source::SimSource;

/// How a node runs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Where the embedded store lives; `None`: in memory, nothing survives a restart.
    pub data_dir: Option<PathBuf>,
    /// Seed of the simulator.
    pub seed: u64,
    /// How often the root is ticked (staleness, alarm delays, shelve expiry).
    pub tick: Duration,
    pub writer: WriterConfig,
    /// Whether to start the simulator for unbound points.
    pub simulate: bool,
    /// Whether devices append every sample to history.
    pub persist_history: bool,
    /// The adapter kinds `[source.NAME]` tables may use.
    pub registry: Arc<Registry>,
    /// How many twin changes a slow subscriber of the change feed may fall
    /// behind before it loses the oldest.
    pub change_feed_capacity: usize,
    /// A fingerprint of the model's source (`model_dir::fingerprint`): when
    /// it differs from the one of the previous start on this store, the
    /// audit log gets a `model`/`changed` record (`model`/`loaded` on the
    /// first start). `None`: no model records.
    pub model_fingerprint: Option<String>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            data_dir: None,
            seed: 1,
            tick: Duration::from_millis(250),
            writer: WriterConfig::default(),
            simulate: true,
            persist_history: true,
            registry: Arc::new(Registry::builtin()),
            change_feed_capacity: 16_384,
            model_fingerprint: None,
        }
    }
}

/// A running node.
#[derive(Debug)]
pub struct Node {
    pub ctx: Arc<TwinContext>,
    pub directory: Arc<LocalDirectory>,
    pub writer: Option<StoreWriter>,
    pub routers: Vec<Arc<Router>>,
    /// The edge adapters built from the topology's sources.
    pub edge: Edge,
    /// Every change of every twin (northbound publishers, live streams).
    pub changes: ChangeFeed,
    /// MQTT brokers started for sources with `embedded_broker = true`; they
    /// run until the process exits.
    pub brokers: Vec<adapters::mqtt::EmbeddedBroker>,
    /// The tamper-evident audit log, in the node's store.
    pub audit: AuditLog,
    audit_handle: Option<AuditHandle>,
    /// Samples applied, read by the ticker (for `/metrics`).
    sample_rate: Arc<Mutex<RateWindow>>,
    root: ActorRef<TwinMsg>,
    root_join: tokio::task::JoinHandle<()>,
    writer_handle: Option<WriterHandle>,
    shutdown_tx: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Node {
    /// Starts a node hosting the whole topology of `model`. Returns once
    /// every twin has started.
    pub async fn start(
        model: Arc<Model>,
        config: NodeConfig,
        clock: Clock,
        observer: Option<Arc<dyn RootObserver>>,
    ) -> anyhow::Result<Node> {
        if model.twins.is_empty() {
            bail!("the model has no twins: the topology must declare an enterprise");
        }
        let store: Arc<dyn Store> = match &config.data_dir {
            Some(dir) => Arc::new(
                crate::store::open_default(dir)
                    .with_context(|| format!("cannot open the store in `{}`", dir.display()))?,
            ),
            None => Arc::new(MemoryStore::new()),
        };
        // Before anything runs: a start that fails from here on leaves no
        // task behind (dropping the log stops its appender).
        let (audit, audit_handle) = AuditLog::open(store.clone(), clock.clone())
            .with_context(|| format!("cannot open the audit log in {}", store_name(&config)))?;
        if let Some(fp) = &config.model_fingerprint {
            record_model(&audit, store.clone(), fp)
                .await
                .with_context(|| format!("cannot record the model in {}", store_name(&config)))?;
        }
        let changes = ChangeFeed::new(config.change_feed_capacity);
        let env = SourceEnv {
            clock: clock.clone(),
            model: model.clone(),
            changes: changes.clone(),
        };
        let plan = crate::edge::plan(&model, &config.registry, &env)
            .map_err(|d| anyhow::anyhow!("the model's sources are invalid:\n{d}"))?;
        for w in &plan.warnings {
            tracing::warn!("{w}");
        }
        let brokers = start_embedded_brokers(&model).await?;
        let edge = Edge::new(plan, config.registry.clone(), env);
        let (writer, writer_handle) = StoreWriter::spawn(store.clone(), config.writer.clone());
        let mut ctx = TwinContext::new(model.clone(), clock.clone())
            .with_store(store, writer.clone())
            .with_changes(changes.clone())
            .with_edge(edge.host());
        ctx.persist_history = config.persist_history;
        if let Some(o) = observer {
            ctx = ctx.with_root_observer(o);
        }
        let ctx = Arc::new(ctx);
        edge.attach(&ctx);
        let total = model.twins.len() as u64;

        let (root, root_join) = spawn_root(ctx.clone())
            .await
            .context("the root twin failed to start")?;
        wait_started(&ctx, total).await;

        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        let mut routers = Vec::new();
        if config.simulate {
            let (points, routes) = unbound_points(&model);
            let mut sim = SimSource::new("sim", config.seed, clock.clone());
            if let Err(errors) = sim.bind(points) {
                let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                bail!("cannot bind the simulator:\n{}", text.join("\n"));
            }
            let router = Arc::new(Router::new("sim".into(), routes, ctx.clone()));
            routers.push(router.clone());
            let sink: Arc<dyn SampleSink> = router;
            let rx = shutdown_rx.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = Box::new(sim).run(sink, rx).await {
                    tracing::warn!(error = %e, "simulator stopped");
                }
            }));
        }
        let sample_rate = Arc::new(Mutex::new(RateWindow::new(SAMPLE_RATE_WINDOW)));
        tasks.push(spawn_ticker(
            ctx.clone(),
            config.tick,
            sample_rate.clone(),
            shutdown_rx,
        ));
        let root_path = model.twins[0].path.to_string();
        audit.record(
            AuditEntry::new(Category::Node, "start").target(format!("{root_path} ({total} twins)")),
        );
        Ok(Node {
            directory: Arc::new(LocalDirectory::new(ctx.clone())),
            ctx,
            writer: Some(writer),
            routers,
            edge,
            changes,
            brokers,
            audit,
            audit_handle: Some(audit_handle),
            sample_rate,
            root,
            root_join,
            writer_handle: Some(writer_handle),
            shutdown_tx,
            tasks,
        })
    }

    /// The root (enterprise) twin's path.
    pub fn root_path(&self) -> &TwinPath {
        &self.ctx.model.twins[0].path
    }

    /// Samples applied per second over the last [`SAMPLE_RATE_WINDOW`]
    /// (as of the ticker's latest reading and now).
    pub fn samples_per_second(&self) -> f64 {
        let total = self.ctx.metrics.samples.load(Ordering::Relaxed);
        self.sample_rate
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .rate(tokio::time::Instant::now(), total)
    }

    /// Whether the root twin has stopped (it escalated a failure).
    pub fn root_failed(&self) -> bool {
        self.root_join.is_finished()
    }

    /// Records `node`/`stop`, stops the sources, then the twins, then
    /// flushes the audit log and the store.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.audit
            .record(AuditEntry::new(Category::Node, "stop").target(self.root_path().to_string()));
        let _ = self.shutdown_tx.send(true);
        self.edge.shutdown(Duration::from_secs(10)).await;
        for r in &self.routers {
            r.close();
        }
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        let _ = self
            .root
            .stop_and_wait(Some("node shutdown".into()), Some(Duration::from_secs(30)))
            .await;
        // Before the store writer stops, so that the store is still open for
        // the audit log's last write whatever happens to the writer.
        let audited = match self.audit_handle.take() {
            Some(h) => h.shutdown().await,
            None => Ok(()),
        };
        if let Some(w) = self.writer.take() {
            w.flush().await.context("final flush of the store failed")?;
        }
        if let Some(h) = self.writer_handle.take() {
            h.shutdown()
                .await
                .context("the store writer failed to stop")?;
        }
        audited.context("the final flush of the audit log failed")?;
        Ok(())
    }
}

/// The meta key of the model fingerprint of the last start.
pub const MODEL_FINGERPRINT_KEY: &str = "model.fingerprint";

fn store_name(config: &NodeConfig) -> String {
    match &config.data_dir {
        Some(d) => format!("`{}`", d.display()),
        None => "the in-memory store".into(),
    }
}

/// Appends `model`/`loaded` (no fingerprint stored yet) or `model`/`changed`
/// (a different one) and, once that is durable, stores the new fingerprint.
async fn record_model(audit: &AuditLog, store: Arc<dyn Store>, fp: &str) -> anyhow::Result<()> {
    let short = |f: &str| f.chars().take(16).collect::<String>();
    let fp = fp.to_string();
    let read = store.clone();
    let previous = tokio::task::spawn_blocking(move || read.get_meta(MODEL_FINGERPRINT_KEY))
        .await
        .context("the store read task failed")??
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let entry = match previous {
        Some(p) if p == fp => return Ok(()),
        Some(p) => AuditEntry::new(Category::Model, "changed").target(format!(
            "{} (was {})",
            short(&fp),
            short(&p)
        )),
        None => AuditEntry::new(Category::Model, "loaded").target(short(&fp)),
    };
    audit.record(entry);
    audit.flush().await?;
    tokio::task::spawn_blocking(move || {
        store.write(&twins::store::WriteBatch {
            meta: vec![(MODEL_FINGERPRINT_KEY.to_string(), fp.into_bytes())],
            ..Default::default()
        })
    })
    .await
    .context("the store write task failed")??;
    Ok(())
}

/// Starts one embedded MQTT broker per address that an `mqtt` source with
/// `embedded_broker = true` asks for, before any adapter connects.
async fn start_embedded_brokers(
    model: &Model,
) -> anyhow::Result<Vec<adapters::mqtt::EmbeddedBroker>> {
    let mut brokers: Vec<adapters::mqtt::EmbeddedBroker> = Vec::new();
    for source in model.sources.iter().filter(|s| s.kind == "mqtt") {
        // The edge plan validated the table already.
        let Ok(config) =
            adapters::registry::deserialize::<adapters::mqtt::MqttConfig>(&source.config)
        else {
            continue;
        };
        let Some(broker) = adapters::mqtt::embedded_broker_config(&config) else {
            continue;
        };
        if brokers.iter().any(|b| b.local_addr() == broker.listen) {
            continue;
        }
        let listen = broker.listen;
        let started =
            tokio::task::spawn_blocking(move || adapters::mqtt::EmbeddedBroker::start(broker))
                .await
                .context("the embedded broker's start task failed")?
                .with_context(|| {
                    format!(
                        "source `{}`: cannot start the embedded MQTT broker",
                        source.name
                    )
                })?;
        tracing::info!(source = %source.name, %listen, "embedded MQTT broker listening");
        brokers.push(started);
    }
    Ok(brokers)
}

/// The window of [`Node::samples_per_second`].
pub const SAMPLE_RATE_WINDOW: Duration = Duration::from_secs(10);

/// Waits until `total` twins have started (initial spawn of the tree).
async fn wait_started(ctx: &TwinContext, total: u64) {
    let mut delay = Duration::from_micros(200);
    while ctx.metrics.twins_started.load(Ordering::Relaxed) < total {
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(20));
    }
}

fn spawn_ticker(
    ctx: Arc<TwinContext>,
    tick: Duration,
    sample_rate: Arc<Mutex<RateWindow>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                at = interval.tick() => {
                    let samples = ctx.metrics.samples.load(Ordering::Relaxed);
                    sample_rate
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .record(at, samples);
                    if let Some(root) = ctx.actor_of(0) {
                        let _ = root.cast(TwinMsg::Tick);
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    })
}

/// Every sourced property of every twin that no edge adapter feeds, as
/// points for the simulator, with their routes `(twin, slot)`. A binding to
/// a `sim` source passes its address to the simulator.
pub fn unbound_points(model: &Model) -> (Vec<PointSpec>, Vec<(usize, u16)>) {
    let mut points = Vec::new();
    let mut routes = Vec::new();
    for (ti, t) in model.twins.iter().enumerate() {
        let class = &model.classes[t.class];
        for (pi, p) in class.props.iter().enumerate() {
            if !matches!(p.kind, PropKind::Sourced) {
                continue;
            }
            let address = match t.bindings.iter().find(|b| b.prop as usize == pi) {
                None => String::new(),
                Some(b) if model.sources[b.source].kind == SIM_KIND => b.address.clone(),
                Some(_) => continue,
            };
            points.push(crate::edge::point_spec(model, ti, pi, address));
            routes.push((ti, pi as u16));
        }
    }
    (points, routes)
}
