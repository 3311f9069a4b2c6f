//! `twinrt bench`: spawn, ingest, latency and recovery figures on a generated
//! topology, each next to a bare-ractor baseline measured in the same run.
//!
//! Every case runs in a fresh child process (`twinrt bench --case NAME`) so
//! that resident memory is measured from a clean start; the parent collects
//! one JSON line per case and prints a table. See `docs/benchmarks.md`.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::{Deserialize, Serialize};
use twins::actor::{RootObserver, SampleBatch, TwinContext, TwinMsg};
use twins::alarm::Priority;
use twins::expr::{self, Expected};
use twins::model::{
    AggFunc, AlarmDef, Class, Model, PropDef, PropKind, PropsScope, RollupDef, Settings, Tier,
    TwinDef,
};
use twins::rollup::AlarmCounts;
use twins::units::Unit;
use twins::{Clock, PropSample, Quality, Timestamp, TwinPath, Value, ValueType};

use crate::cli::BenchArgs;
use crate::node::{Node, NodeConfig};

mod http;

/// Devices per line in the generated topology.
pub const DEVICES_PER_LINE: usize = 250;
/// Sourced properties per device (one batch carries all of them).
pub const PROPS_PER_DEVICE: usize = 8;

/// One case's result, as the child process prints it.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct CaseResult {
    pub case: String,
    pub twins: usize,
    pub seconds: f64,
    pub rss_bytes_per_twin: Option<f64>,
    pub per_second: Option<f64>,
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub max_us: Option<u64>,
    pub note: String,
}

/// Entry point of `twinrt bench`.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if let Some(case) = &args.case {
        let r = run_case(case, &args).await?;
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    let cases: Vec<&str> = match args.what.as_str() {
        "all" => vec![
            "spawn-baseline",
            "model",
            "spawn",
            "ingest-baseline",
            "ingest",
            "ingest-stored",
            "latency-baseline",
            "latency",
            "recovery-baseline",
            "recovery",
        ],
        "spawn" => vec!["spawn-baseline", "model", "spawn"],
        "ingest" => vec!["ingest-baseline", "ingest", "ingest-stored"],
        "latency" => vec!["latency-baseline", "latency"],
        "recovery" => vec!["recovery-baseline", "recovery"],
        // Not in `all`: it measures the HTTP surface, not the core.
        "http" => vec!["http", "http-sse", "http-paced", "http-sse-paced"],
        other => {
            bail!(
                "unknown --what `{other}`: expected spawn, ingest, latency, recovery, http or all"
            )
        }
    };
    let exe = std::env::current_exe().context("cannot find the twinrt executable")?;
    eprintln!(
        "twinrt bench: {} devices ({} twins), {} s per run, latency at {} samples/s",
        args.devices,
        shape(args.devices).total(),
        args.seconds,
        args.rate
    );
    let mut results = Vec::new();
    for case in cases {
        eprint!("  {case:<18} ... ");
        let _ = std::io::stderr().flush();
        let mut cmd = std::process::Command::new(&exe);
        cmd.arg("bench")
            .arg("--case")
            .arg(case)
            .arg("--devices")
            .arg(args.devices.to_string())
            .arg("--seconds")
            .arg(args.seconds.to_string())
            .arg("--rate")
            .arg(args.rate.to_string());
        let out = cmd
            .output()
            .with_context(|| format!("cannot run bench case {case}"))?;
        if !out.status.success() {
            bail!(
                "bench case {case} failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let line = String::from_utf8_lossy(&out.stdout);
        let r: CaseResult = serde_json::from_str(line.lines().last().unwrap_or(""))
            .with_context(|| format!("bench case {case} printed no result: {line}"))?;
        eprintln!("done in {:.1}s", r.seconds);
        results.push(r);
    }
    println!("{}", table(&results));
    Ok(())
}

fn table(results: &[CaseResult]) -> String {
    let mut s = String::from(
        "| case | twins | RSS/twin | rate /s | p50 | p99 | max | time | note |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map(f).unwrap_or_else(|| "-".into());
    let us = |v: Option<u64>| {
        v.map(|v| format!("{:.2} ms", v as f64 / 1000.0))
            .unwrap_or_else(|| "-".into())
    };
    for r in results {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.2} s | {} |\n",
            r.case,
            r.twins,
            opt(r.rss_bytes_per_twin, &|b| format!("{:.0} B", b)),
            opt(r.per_second, &|v| format!("{v:.0}")),
            us(r.p50_us),
            us(r.p99_us),
            us(r.max_us),
            r.seconds,
            r.note
        ));
    }
    s
}

async fn run_case(case: &str, args: &BenchArgs) -> anyhow::Result<CaseResult> {
    let shape = shape(args.devices);
    let secs = Duration::from_secs(args.seconds);
    match case {
        "spawn-baseline" => {
            let rss0 = rss();
            let t = Instant::now();
            let tree = BareTree::spawn(&shape).await?;
            let seconds = t.elapsed().as_secs_f64();
            let per = (rss().saturating_sub(rss0)) as f64 / shape.total() as f64;
            tree.stop().await;
            Ok(CaseResult {
                case: case.into(),
                twins: shape.total(),
                seconds,
                rss_bytes_per_twin: Some(per),
                note: "bare ractor actor per twin".into(),
                ..Default::default()
            })
        }
        "model" => {
            // What a node holds per twin besides the actors: the compiled
            // model, the actor registry and the directory.
            let rss0 = rss();
            let t = Instant::now();
            let model = Arc::new(bench_model(&shape)?);
            let ctx = Arc::new(TwinContext::new(model, Clock::system()));
            let dir = cluster::LocalDirectory::new(ctx.clone());
            let seconds = t.elapsed().as_secs_f64();
            let per = (rss().saturating_sub(rss0)) as f64 / shape.total() as f64;
            drop((dir, ctx));
            Ok(CaseResult {
                case: case.into(),
                twins: shape.total(),
                seconds,
                rss_bytes_per_twin: Some(per),
                note: "model, registry and directory only, no actors".into(),
                ..Default::default()
            })
        }
        "spawn" => {
            let model = Arc::new(bench_model(&shape)?);
            let rss0 = rss();
            let t = Instant::now();
            let node = Node::start(model, bench_config(None), Clock::system(), None).await?;
            let seconds = t.elapsed().as_secs_f64();
            let per = (rss().saturating_sub(rss0)) as f64 / shape.total() as f64;
            node.shutdown().await?;
            Ok(CaseResult {
                case: case.into(),
                twins: shape.total(),
                seconds,
                rss_bytes_per_twin: Some(per),
                note: "twin actors incl. model, directory, in-memory store".into(),
                ..Default::default()
            })
        }
        "ingest-baseline" => {
            let tree = BareTree::spawn(&shape).await?;
            let t = Instant::now();
            let n = tree.drive(secs, None).await;
            let seconds = t.elapsed().as_secs_f64();
            tree.stop().await;
            Ok(CaseResult {
                case: case.into(),
                twins: shape.total(),
                seconds,
                per_second: Some(n as f64 * PROPS_PER_DEVICE as f64 / seconds),
                note: "8-value update forwarded device→HQ, 5 hops".into(),
                ..Default::default()
            })
        }
        "ingest" | "ingest-stored" => {
            let model = Arc::new(bench_model(&shape)?);
            let dir = tempdir()?;
            let data = (case == "ingest-stored").then(|| dir.path().to_path_buf());
            let node = Node::start(model, bench_config(data), Clock::system(), None).await?;
            let t = Instant::now();
            let samples = drive_node(&node, secs, None).await;
            let seconds = t.elapsed().as_secs_f64();
            node.shutdown().await?;
            Ok(CaseResult {
                case: case.into(),
                twins: shape.total(),
                seconds,
                per_second: Some(samples as f64 / seconds),
                note: if case == "ingest" {
                    "batches of 8, roll-up to HQ, in-memory store".into()
                } else {
                    "batches of 8, roll-up to HQ, fjall store with history".into()
                },
                ..Default::default()
            })
        }
        "latency-baseline" => {
            let tree = BareTree::spawn(&shape).await?;
            let t = Instant::now();
            tree.drive(secs, Some(args.rate)).await;
            let seconds = t.elapsed().as_secs_f64();
            let h = tree
                .latency
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .clone();
            tree.stop().await;
            Ok(latency_result(
                case,
                &shape,
                seconds,
                &h,
                "every update forwarded to HQ",
            ))
        }
        "latency" => {
            let model = Arc::new(bench_model(&shape)?);
            let obs = Arc::new(LatencyObserver::default());
            let node = Node::start(
                model,
                bench_config(None),
                Clock::system(),
                Some(obs.clone() as Arc<dyn RootObserver>),
            )
            .await?;
            obs.reset();
            let t = Instant::now();
            drive_node(&node, secs, Some(args.rate)).await;
            let seconds = t.elapsed().as_secs_f64();
            node.shutdown().await?;
            let h = obs
                .hist
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?
                .clone();
            Ok(latency_result(
                case,
                &shape,
                seconds,
                &h,
                "upper bound per HQ update: now − oldest arrival it includes",
            ))
        }
        "recovery-baseline" => {
            let t = Instant::now();
            let tree = BareTree::spawn(&shape).await?;
            let seconds = t.elapsed().as_secs_f64();
            tree.stop().await;
            Ok(CaseResult {
                case: case.into(),
                twins: shape.total(),
                seconds,
                note: "bare ractor respawn, no state".into(),
                ..Default::default()
            })
        }
        "recovery" => {
            let model = Arc::new(bench_model(&shape)?);
            let dir = tempdir()?;
            let data = Some(dir.path().to_path_buf());
            {
                let node = Node::start(
                    model.clone(),
                    bench_config(data.clone()),
                    Clock::system(),
                    None,
                )
                .await?;
                // One batch per device so every twin has persisted state.
                feed_each_once(&node).await;
                node.shutdown().await?;
            }
            let t = Instant::now();
            let node = Node::start(model, bench_config(data), Clock::system(), None).await?;
            let seconds = t.elapsed().as_secs_f64();
            node.shutdown().await?;
            Ok(CaseResult {
                case: case.into(),
                twins: shape.total(),
                seconds,
                note: "restart: open fjall store, respawn tree, each twin loads its state".into(),
                ..Default::default()
            })
        }
        "http" | "http-sse" | "http-paced" | "http-sse-paced" => {
            http::run(case, &shape, secs, args.rate).await
        }
        other => bail!("unknown bench case `{other}`"),
    }
}

fn bench_config(data_dir: Option<std::path::PathBuf>) -> NodeConfig {
    NodeConfig {
        data_dir,
        simulate: false,
        ..NodeConfig::default()
    }
}

fn tempdir() -> anyhow::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("twinrt-bench-")
        .tempdir()
        .context("cannot create a temporary directory")
}

fn latency_result(
    case: &str,
    shape: &Shape,
    seconds: f64,
    h: &hdrhistogram::Histogram<u64>,
    note: &str,
) -> CaseResult {
    CaseResult {
        case: case.into(),
        twins: shape.total(),
        seconds,
        per_second: Some(h.len() as f64 / seconds),
        p50_us: Some(h.value_at_quantile(0.5)),
        p99_us: Some(h.value_at_quantile(0.99)),
        max_us: Some(h.max()),
        note: format!("{note}; {} HQ updates", h.len()),
        ..Default::default()
    }
}

/// Resident set size of this process, in bytes.
pub fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

// ----- the generated topology -----

/// Sizes of each tier of the generated topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub regions: usize,
    pub plants: usize,
    pub lines: usize,
    pub devices: usize,
}

impl Shape {
    pub fn total(&self) -> usize {
        1 + self.regions + self.plants + self.lines + self.devices
    }
}

/// 1 enterprise, up to 4 regions, up to 40 plants, lines of 250 devices:
/// 1,000,000 devices give 4 regions, 40 plants and 4,000 lines.
pub fn shape(devices: usize) -> Shape {
    let lines = devices.div_ceil(DEVICES_PER_LINE).max(1);
    let plants = lines.min(40);
    let regions = plants.min(4);
    Shape {
        regions,
        plants,
        lines,
        devices,
    }
}

fn prop(name: &str, unit: Option<&str>, kind: PropKind) -> anyhow::Result<PropDef> {
    Ok(PropDef {
        name: name.into(),
        ty: ValueType::F64,
        unit: unit
            .map(Unit::parse)
            .transpose()
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        range: None,
        period: None,
        states: Vec::new(),
        kind,
        description: String::new(),
    })
}

fn container_class(name: &str, tier: Tier, child_power: &str) -> anyhow::Result<Class> {
    let rollups = [
        ("power", AggFunc::Sum, child_power, Some("kW")),
        (
            "temp_avg",
            AggFunc::Avg,
            if tier == Tier::Line { "p1" } else { "temp_avg" },
            None,
        ),
        (
            "temp_max",
            AggFunc::Max,
            if tier == Tier::Line { "p2" } else { "temp_max" },
            None,
        ),
        (
            "reporting",
            if tier == Tier::Line {
                AggFunc::Count
            } else {
                AggFunc::Sum
            },
            if tier == Tier::Line {
                "p0"
            } else {
                "reporting"
            },
            None,
        ),
    ];
    let mut props = Vec::new();
    let mut defs = Vec::new();
    for (j, (pname, func, input, unit)) in rollups.iter().enumerate() {
        props.push(prop(pname, *unit, PropKind::Rollup(j as u16))?);
        defs.push(RollupDef {
            prop: j as u16,
            func: *func,
            input: (*input).into(),
            weight: None,
            class_filter: Vec::new(),
            unit: unit
                .map(Unit::parse)
                .transpose()
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        });
    }
    Ok(Class {
        name: name.into(),
        tier,
        lineage: vec![name.into()],
        props,
        eval_order: Vec::new(),
        alarms: Vec::new(),
        rollups: defs,
        sim: None,
    })
}

fn device_class() -> anyhow::Result<Class> {
    let mut props = Vec::new();
    for i in 0..PROPS_PER_DEVICE {
        let unit = if i == 0 { Some("kW") } else { None };
        props.push(prop(&format!("p{i}"), unit, PropKind::Sourced)?);
    }
    let err = |e: Vec<twins::expr::ExprError>| {
        anyhow::anyhow!(
            "{}",
            e.iter()
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join("; ")
        )
    };
    let derived = expr::compile(
        "p1 * 2 + p3",
        &PropsScope(&props),
        Expected {
            ty: Some(ValueType::F64),
            unit: None,
        },
    )
    .map_err(err)?;
    props.push(prop("derived", None, PropKind::Derived(derived))?);
    let condition = expr::compile_condition("p2 > 95", &PropsScope(&props)).map_err(err)?;
    Ok(Class {
        name: "BenchDevice".into(),
        tier: Tier::Device,
        lineage: vec!["BenchDevice".into()],
        eval_order: vec![PROPS_PER_DEVICE as u16],
        props,
        alarms: vec![AlarmDef {
            name: "high_p2".into(),
            condition,
            priority: Priority::High,
            deadband: 1.0,
            on_delay: Duration::ZERO,
            off_delay: Duration::ZERO,
            guidance: String::new(),
            suppress_when_parent: None,
        }],
        rollups: Vec::new(),
        sim: None,
    })
}

/// The generated model for `shape`.
pub fn bench_model(shape: &Shape) -> anyhow::Result<Model> {
    let classes = vec![
        Arc::new(container_class(
            "BenchEnterprise",
            Tier::Enterprise,
            "power",
        )?),
        Arc::new(container_class("BenchRegion", Tier::Region, "power")?),
        Arc::new(container_class("BenchPlant", Tier::Plant, "power")?),
        Arc::new(container_class("BenchLine", Tier::Line, "p0")?),
        Arc::new(device_class()?),
    ];
    let mut twins: Vec<TwinDef> = Vec::with_capacity(shape.total());
    let add = |twins: &mut Vec<TwinDef>, path: TwinPath, class: usize, parent: Option<usize>| {
        let i = twins.len();
        twins.push(TwinDef {
            path,
            class,
            parent,
            children: Vec::new(),
            params: Vec::new(),
            alarm_overrides: Vec::new(),
            aliases: Vec::new(),
            bindings: Vec::new(),
            suppression: None,
        });
        if let Some(p) = parent {
            twins[p].children.push(i);
        }
        i
    };
    let root = add(&mut twins, TwinPath::parse("bench")?, 0, None);
    let regions: Vec<usize> = (0..shape.regions)
        .map(|r| -> anyhow::Result<usize> {
            let p = twins[root].path.child(&format!("r{r}"))?;
            Ok(add(&mut twins, p, 1, Some(root)))
        })
        .collect::<anyhow::Result<_>>()?;
    let plants: Vec<usize> = (0..shape.plants)
        .map(|p| -> anyhow::Result<usize> {
            let parent = regions[p % regions.len()];
            let path = twins[parent].path.child(&format!("p{p}"))?;
            Ok(add(&mut twins, path, 2, Some(parent)))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut remaining = shape.devices;
    for l in 0..shape.lines {
        let parent = plants[l % plants.len()];
        let path = twins[parent].path.child(&format!("l{l}"))?;
        let line = add(&mut twins, path, 3, Some(parent));
        let n = remaining.min(DEVICES_PER_LINE);
        remaining -= n;
        for d in 0..n {
            let path = twins[line].path.child(&format!("d{d}"))?;
            add(&mut twins, path, 4, Some(line));
        }
    }
    // Pre-order: parents before children, as the model contract requires.
    let model = reorder_preorder(Model {
        classes,
        twins,
        sources: Vec::new(),
        settings: Settings::default(),
    });
    Ok(model)
}

fn reorder_preorder(model: Model) -> Model {
    let n = model.twins.len();
    let mut order = Vec::with_capacity(n);
    let mut stack = vec![0usize];
    while let Some(i) = stack.pop() {
        order.push(i);
        stack.extend(model.twins[i].children.iter().rev().copied());
    }
    let mut new_index = vec![0usize; n];
    for (new, &old) in order.iter().enumerate() {
        new_index[old] = new;
    }
    let mut old: Vec<Option<TwinDef>> = model.twins.into_iter().map(Some).collect();
    let twins = order
        .iter()
        .map(|&o| {
            let mut t = old[o].take().expect("each twin is visited once");
            t.parent = t.parent.map(|p| new_index[p]);
            t.children = t.children.iter().map(|c| new_index[*c]).collect();
            t
        })
        .collect();
    Model { twins, ..model }
}

// ----- load generation against the node -----

fn device_indices(ctx: &TwinContext) -> Vec<usize> {
    ctx.model
        .twins
        .iter()
        .enumerate()
        .filter(|(_, t)| ctx.model.classes[t.class].tier == Tier::Device)
        .map(|(i, _)| i)
        .collect()
}

fn batch(seq: u64, now: Timestamp) -> Vec<PropSample> {
    (0..PROPS_PER_DEVICE)
        .map(|p| PropSample {
            prop: p as u16,
            value: Value::F64(((seq.wrapping_mul(2654435761) >> 7) % 100) as f64 + p as f64),
            source_ts: now,
            quality: Quality::Good,
        })
        .collect()
}

/// Sends one batch to every device and waits until all were processed.
async fn feed_each_once(node: &Node) {
    let devices = device_indices(&node.ctx);
    let before = node.ctx.metrics.batches.load(Ordering::Relaxed);
    for (k, &d) in devices.iter().enumerate() {
        let now = node.ctx.clock.now();
        let _ = node.ctx.cast(
            d,
            TwinMsg::Samples(SampleBatch {
                samples: batch(k as u64, now),
                arrival: now,
            }),
        );
    }
    while node.ctx.metrics.batches.load(Ordering::Relaxed) < before + devices.len() as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Most batches in flight (sent, not yet processed) while driving flat out.
const WINDOW: u64 = 20_000;

/// Drives the node for `dur`, flat out (`rate: None`) or paced at `rate`
/// samples/s. Returns the samples processed in that time.
async fn drive_node(node: &Node, dur: Duration, rate: Option<u64>) -> u64 {
    let devices = device_indices(&node.ctx);
    let refs: Vec<(usize, ActorRef<TwinMsg>)> = devices
        .iter()
        .filter_map(|&d| Some((d, node.ctx.actor_of(d)?)))
        .collect();
    let processed = |ctx: &TwinContext| ctx.metrics.batches.load(Ordering::Relaxed);
    let start_batches = processed(&node.ctx);
    let start_samples = node.ctx.metrics.samples.load(Ordering::Relaxed);
    let t0 = tokio::time::Instant::now();
    let mut sent = 0u64;
    let mut k = 0usize;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    while t0.elapsed() < dur {
        let target = match rate {
            Some(r) => (t0.elapsed().as_secs_f64() * r as f64 / PROPS_PER_DEVICE as f64) as u64,
            None => processed(&node.ctx) - start_batches + WINDOW,
        };
        if sent >= target {
            // Wait without spinning: the driver must not take a core from the twins.
            tokio::time::sleep(Duration::from_micros(500)).await;
            continue;
        }
        let now = node.ctx.clock.now();
        for _ in 0..(target - sent).min(256) {
            // Paced runs pick devices at random; flat-out runs sweep them.
            let i = if rate.is_some() {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                (rng % refs.len() as u64) as usize
            } else {
                k = (k + 1) % refs.len();
                k
            };
            let (twin, actor) = &refs[i];
            let _ = node.ctx.cast_to(
                *twin,
                actor,
                TwinMsg::Samples(SampleBatch {
                    samples: batch(sent, now),
                    arrival: now,
                }),
            );
            sent += 1;
        }
        tokio::task::yield_now().await;
    }
    node.ctx.metrics.samples.load(Ordering::Relaxed) - start_samples
}

/// Records sample-to-HQ latency bounds as the root folds updates.
#[derive(Debug)]
struct LatencyObserver {
    hist: Mutex<hdrhistogram::Histogram<u64>>,
}

impl Default for LatencyObserver {
    fn default() -> Self {
        Self {
            hist: Mutex::new(
                hdrhistogram::Histogram::new_with_bounds(1, 600_000_000, 3)
                    .expect("valid histogram bounds"),
            ),
        }
    }
}

impl LatencyObserver {
    fn reset(&self) {
        if let Ok(mut h) = self.hist.lock() {
            h.reset();
        }
    }
}

impl RootObserver for LatencyObserver {
    fn on_root_update(&self, oldest_arrival: Timestamp, now: Timestamp, _alarms: &AlarmCounts) {
        let us = now
            .as_micros()
            .saturating_sub(oldest_arrival.as_micros())
            .max(1) as u64;
        if let Ok(mut h) = self.hist.lock() {
            let _ = h.record(us);
        }
    }
}

// ----- the bare-ractor baseline -----

/// The baseline: one minimal actor per twin that forwards each update to its parent.
#[derive(Debug, Clone, Copy)]
struct BareActor;

#[derive(Debug)]
enum BareMsg {
    Update {
        values: [f64; PROPS_PER_DEVICE],
        arrival: Instant,
    },
}

#[derive(Debug)]
struct BareState {
    parent: Option<ActorRef<BareMsg>>,
    sum: f64,
    sink: Option<Arc<BareSink>>,
}

#[derive(Debug)]
struct BareSink {
    processed: AtomicU64,
    latency: Mutex<hdrhistogram::Histogram<u64>>,
}

impl Actor for BareActor {
    type Msg = BareMsg;
    type State = BareState;
    type Arguments = (Option<ActorRef<BareMsg>>, Option<Arc<BareSink>>);

    async fn pre_start(
        &self,
        _myself: ActorRef<BareMsg>,
        (parent, sink): Self::Arguments,
    ) -> Result<BareState, ActorProcessingErr> {
        Ok(BareState {
            parent,
            sum: 0.0,
            sink,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<BareMsg>,
        msg: BareMsg,
        state: &mut BareState,
    ) -> Result<(), ActorProcessingErr> {
        let BareMsg::Update { values, arrival } = msg;
        state.sum += values[0];
        match &state.parent {
            Some(p) => {
                let _ = p.cast(BareMsg::Update { values, arrival });
            }
            None => {
                if let Some(sink) = &state.sink {
                    sink.processed.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut h) = sink.latency.lock() {
                        let _ = h.record(arrival.elapsed().as_micros().max(1) as u64);
                    }
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<BareMsg>,
        _event: ractor::SupervisionEvent,
        _state: &mut BareState,
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

struct BareTree {
    root: ActorRef<BareMsg>,
    devices: Vec<ActorRef<BareMsg>>,
    sink: Arc<BareSink>,
    latency: Arc<Mutex<hdrhistogram::Histogram<u64>>>,
}

impl BareTree {
    async fn spawn(shape: &Shape) -> anyhow::Result<Self> {
        let sink = Arc::new(BareSink {
            processed: AtomicU64::new(0),
            latency: Mutex::new(hdrhistogram::Histogram::new_with_bounds(1, 600_000_000, 3)?),
        });
        let (root, _) = Actor::spawn(None, BareActor, (None, Some(sink.clone()))).await?;
        let link = |p: &ActorRef<BareMsg>| (Some(p.clone()), None);
        let mut regions = Vec::new();
        for _ in 0..shape.regions {
            regions.push(
                Actor::spawn_linked(None, BareActor, link(&root), root.get_cell())
                    .await?
                    .0,
            );
        }
        let mut plants = Vec::new();
        for p in 0..shape.plants {
            let parent = &regions[p % regions.len()];
            plants.push(
                Actor::spawn_linked(None, BareActor, link(parent), parent.get_cell())
                    .await?
                    .0,
            );
        }
        let mut devices = Vec::with_capacity(shape.devices);
        let mut remaining = shape.devices;
        for l in 0..shape.lines {
            let parent = &plants[l % plants.len()];
            let line = Actor::spawn_linked(None, BareActor, link(parent), parent.get_cell())
                .await?
                .0;
            let n = remaining.min(DEVICES_PER_LINE);
            remaining -= n;
            for _ in 0..n {
                devices.push(
                    Actor::spawn_linked(None, BareActor, link(&line), line.get_cell())
                        .await?
                        .0,
                );
            }
        }
        Ok(Self {
            root,
            devices,
            latency: Arc::new(Mutex::new(hdrhistogram::Histogram::new_with_bounds(
                1,
                600_000_000,
                3,
            )?)),
            sink,
        })
    }

    /// Drives updates for `dur`; returns updates that reached the root.
    async fn drive(&self, dur: Duration, rate: Option<u64>) -> u64 {
        let t0 = tokio::time::Instant::now();
        let mut sent = 0u64;
        let mut k = 0usize;
        let processed = |s: &BareSink| s.processed.load(Ordering::Relaxed);
        while t0.elapsed() < dur {
            let target = match rate {
                Some(r) => (t0.elapsed().as_secs_f64() * r as f64 / PROPS_PER_DEVICE as f64) as u64,
                None => processed(&self.sink) + WINDOW,
            };
            if sent >= target {
                // Wait without spinning: the driver must not take a core from the twins.
                tokio::time::sleep(Duration::from_micros(500)).await;
                continue;
            }
            for _ in 0..(target - sent).min(256) {
                k = (k + 1) % self.devices.len();
                let _ = self.devices[k].cast(BareMsg::Update {
                    values: [sent as f64; PROPS_PER_DEVICE],
                    arrival: Instant::now(),
                });
                sent += 1;
            }
            tokio::task::yield_now().await;
        }
        if let (Ok(src), Ok(mut dst)) = (self.sink.latency.lock(), self.latency.lock()) {
            *dst = src.clone();
        }
        processed(&self.sink)
    }

    async fn stop(self) {
        let _ = self
            .root
            .stop_and_wait(None, Some(Duration::from_secs(60)))
            .await;
    }
}
