//! The node's metrics are valid Prometheus text exposition (checked by the
//! real `promtool check metrics`) and carry the twins, the alarms, every
//! edge adapter's state and counters, the roll-up and store latencies and
//! the HTTP API's counters; the node's health follows its twins, store and
//! adapters.
//!
//! Needs `promtool` (Debian package `prometheus`) and pymodbus;
//! `./scripts/test.sh` installs both.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

#[path = "../../adapters/tests/fixtures/modbus_harness.rs"]
mod modbus;

use adapters::{
    BindError, ConfigIssue, PointSpec, Registry, SampleSink, SampleSource, SourceEnv, SourceError,
    SourceFactory, SourceFuture,
};
use runtime::health::health;
use runtime::http::ApiMetrics;
use runtime::node::{Node, NodeConfig};
use twins::Clock;
use twins::model::{Model, SourceFile, compile};

fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (apt-get install prometheus; ./scripts/test.sh does)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write metrics to promtool");
    let out = child.wait_with_output().expect("promtool finishes");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_report_twins_alarms_and_adapters() {
    modbus::require_pymodbus();
    let (_server, port) = modbus::start_server(0).await;
    let text = format!(
        r#"
[class.Pump]
tier = "device"
[class.Pump.properties]
flow = {{ unit = "m3/h", period = "200ms" }}
[[class.Pump.alarms]]
name = "high_flow"
when = "flow > 100"
priority = "urgent"
[class.L]
tier = "line"
[class.P]
tier = "plant"
[class.R]
tier = "region"
[class.E]
tier = "enterprise"

[source.plc]
kind = "modbus"
[[source.plc.endpoints]]
name = "unit-plc"
host = "127.0.0.1"
port = {port}
poll_groups = [{{ name = "fast", interval = "100ms" }}]

[enterprise]
name = "acme"
class = "E"
[twin."r1"]
class = "R"
[twin."r1/p1"]
class = "P"
[twin."r1/p1/l1"]
class = "L"
[twin."r1/p1/l1/pump"]
class = "Pump"
source = "plc"
bindings = {{ flow = "holding:96:f32" }}
"#
    );
    let model = compile(&[SourceFile {
        path: "model.toml".into(),
        text,
    }])
    .unwrap_or_else(|e| panic!("{e}"));
    let node = Node::start(
        Arc::new(model),
        NodeConfig::default(),
        Clock::system(),
        None,
    )
    .await
    .expect("node starts");
    let api = ApiMetrics::default();
    for status in [200, 200, 404, 503] {
        api.response(status);
    }
    for counter in [
        &api.auth_failures,
        &api.denials,
        &api.connections_cut,
        &api.sse_events,
        &api.sse_dropped,
        &api.sse_resumed,
    ] {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    api.sse_clients
        .store(2, std::sync::atomic::Ordering::Relaxed);
    // The PLC's 123.456 raises the urgent alarm; wait until HQ counts it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let metrics = loop {
        let m = runtime::metrics::render(&node, Some(&api)).await;
        if m.contains("twinrt_alarms_active{priority=\"urgent\"} 1\n") {
            break m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no urgent alarm counted:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (ok, said) = promtool_check(&metrics);
    assert!(ok, "promtool rejected the metrics: {said}\n{metrics}");

    for line in [
        "twinrt_twins{tier=\"device\"} 1\n",
        "twinrt_twins{tier=\"enterprise\"} 1\n",
        "twinrt_alarms_unacked{priority=\"urgent\"} 1\n",
        "twinrt_adapter_state{source=\"plc\",kind=\"modbus\",state=\"running\"} 1\n",
        "twinrt_adapter_state{source=\"plc\",kind=\"modbus\",state=\"failed\"} 0\n",
        "twinrt_adapter_starts_total{source=\"plc\"} 1\n",
        "# TYPE twinrt_modbus_poll_latency_seconds summary\n",
        "# TYPE twinrt_samples_per_second gauge\n",
        "# TYPE twinrt_rollup_latency_seconds histogram\n",
        "twinrt_rollup_latency_seconds_bucket{tier=\"enterprise\",le=\"+Inf\"} ",
        "# TYPE twinrt_mailbox_depth_max gauge\n",
        "# TYPE twinrt_store_commit_seconds histogram\n",
        "twinrt_store_commit_seconds_bucket{le=\"0.001\"} ",
        "# TYPE twinrt_store_batch_records summary\n",
        "twinrt_http_responses_total{status=\"200\"} 2\n",
        "twinrt_http_responses_total{status=\"503\"} 1\n",
        "twinrt_http_auth_failures_total 1\n",
        "twinrt_http_denials_total 1\n",
        "twinrt_http_connections_cut_total 1\n",
        "twinrt_sse_clients 2\n",
        "twinrt_sse_events_total 1\n",
        "twinrt_sse_dropped_total 1\n",
        "twinrt_sse_resumed_total 1\n",
    ] {
        assert!(
            metrics.contains(line),
            "missing `{}` in:\n{metrics}",
            line.trim_end()
        );
    }
    for family in [
        "twinrt_rollup_latency_seconds",
        "twinrt_store_commit_seconds",
    ] {
        check_histogram(&metrics, family);
    }
    // Without the HTTP API, no HTTP families.
    let bare = runtime::metrics::render(&node, None).await;
    assert!(!bare.contains("twinrt_http_"), "{bare}");
    let (ok, said) = promtool_check(&bare);
    assert!(ok, "promtool rejected the metrics: {said}\n{bare}");
    let polls = metrics
        .lines()
        .find(|l| l.starts_with("twinrt_modbus_polls_total{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .expect("a modbus_polls counter");
    assert!(polls >= 1.0, "{polls}");

    // promtool is a real judge: it rejects a broken exposition.
    let (ok, _) = promtool_check("# TYPE twinrt_x counter\ntwinrt_x_total{a=\"1\" 3\n");
    assert!(!ok, "promtool accepted a malformed line");
    node.shutdown().await.expect("clean shutdown");
}

/// The value of the line of `text` that starts with `prefix` (name and labels).
fn value_of(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
}

/// Every series of histogram `family` in `text` has cumulative buckets
/// ending in `+Inf`, and its `_count` equals the `+Inf` bucket. Returns the
/// `_count` of each series, by its labels.
fn check_histogram(text: &str, family: &str) -> Vec<(String, f64)> {
    let bucket = format!("{family}_bucket{{");
    // Series labels (without `le`) → bucket values in order.
    let mut series: Vec<(String, Vec<(String, f64)>)> = Vec::new();
    for line in text.lines().filter(|l| l.starts_with(&bucket)) {
        let (labels, value) = line[bucket.len()..]
            .rsplit_once("} ")
            .unwrap_or_else(|| panic!("malformed bucket line `{line}`"));
        let (rest, le) = labels
            .rsplit_once("le=\"")
            .unwrap_or_else(|| panic!("bucket without le: `{line}`"));
        let le = le.trim_end_matches('"').to_string();
        let key = rest.trim_end_matches(',').to_string();
        let value: f64 = value.parse().expect("a number");
        match series.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push((le, value)),
            None => series.push((key, vec![(le, value)])),
        }
    }
    assert!(!series.is_empty(), "no buckets of {family} in:\n{text}");
    let mut counts = Vec::new();
    for (key, buckets) in series {
        assert!(
            buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "{family}{{{key}}} buckets are not cumulative: {buckets:?}"
        );
        let bounds: Vec<f64> = buckets
            .iter()
            .filter(|(le, _)| le != "+Inf")
            .map(|(le, _)| le.parse().expect("a numeric le"))
            .collect();
        assert!(
            bounds.windows(2).all(|w| w[0] < w[1]),
            "{family}{{{key}}} bounds not ascending: {bounds:?}"
        );
        let (last_le, inf) = buckets.last().cloned().expect("a bucket");
        assert_eq!(last_le, "+Inf", "{family}{{{key}}} must end with +Inf");
        let count_prefix = if key.is_empty() {
            format!("{family}_count ")
        } else {
            format!("{family}_count{{{key}}} ")
        };
        let count = value_of(text, &count_prefix)
            .unwrap_or_else(|| panic!("no `{count_prefix}` in:\n{text}"));
        assert_eq!(
            count, inf,
            "{family}{{{key}}}: _count is not the +Inf bucket"
        );
        let sum_prefix = count_prefix.replacen("_count", "_sum", 1);
        assert!(
            value_of(text, &sum_prefix).is_some_and(|s| s >= 0.0),
            "no `{sum_prefix}`"
        );
        counts.push((key, count));
    }
    counts
}

const SIMULATED: &str = r#"
[class.Pump]
tier = "device"
[class.Pump.properties]
flow = { unit = "m3/h", period = "100ms" }
[class.L]
tier = "line"
[class.L.rollups]
flow = "sum(flow)"
[class.P]
tier = "plant"
[class.P.rollups]
flow = "sum(flow)"
[class.R]
tier = "region"
[class.R.rollups]
flow = "sum(flow)"
[class.E]
tier = "enterprise"
[class.E.rollups]
flow = "sum(flow)"

[enterprise]
name = "acme"
class = "E"
[twin."r1"]
class = "R"
[twin."r1/p1"]
class = "P"
[twin."r1/p1/l1"]
class = "L"
[twin."r1/p1/l1/pump-{n}"]
class = "Pump"
count = 4
"#;

fn compile_one(text: &str) -> Model {
    compile(&[SourceFile {
        path: "model.toml".into(),
        text: text.into(),
    }])
    .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn samples_reach_hq_and_the_store_and_the_histograms_count_them() {
    let node = Node::start(
        Arc::new(compile_one(SIMULATED)),
        NodeConfig::default(),
        Clock::system(),
        None,
    )
    .await
    .expect("node starts");
    // The simulator feeds the pumps; wait until a roll-up carrying their
    // samples reached HQ and a store batch was committed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let m = runtime::metrics::render(&node, None).await;
        let hq = value_of(
            &m,
            "twinrt_rollup_latency_seconds_count{tier=\"enterprise\"} ",
        )
        .unwrap_or(0.0);
        let commits = value_of(&m, "twinrt_store_commit_seconds_count ").unwrap_or(0.0);
        let samples = value_of(&m, "twinrt_samples_total ").unwrap_or(0.0);
        if hq > 0.0 && commits > 0.0 && samples > 0.0 {
            break m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no roll-up at HQ or no store commit counted:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (ok, said) = promtool_check(&metrics);
    assert!(ok, "promtool rejected the metrics: {said}\n{metrics}");
    let latency = check_histogram(&metrics, "twinrt_rollup_latency_seconds");
    let mut tiers: Vec<&str> = latency.iter().map(|(k, _)| k.as_str()).collect();
    tiers.sort_unstable();
    assert_eq!(
        tiers,
        ["tier=\"enterprise\"", "tier=\"plant\"", "tier=\"region\""],
        "one series per tier above the lines"
    );
    // Every tier on the way to HQ applied a roll-up with new samples.
    assert!(latency.iter().all(|(_, n)| *n > 0.0), "{latency:?}");
    let commits = check_histogram(&metrics, "twinrt_store_commit_seconds");
    assert!(commits[0].1 > 0.0);
    assert!(
        value_of(&metrics, "twinrt_store_batch_records_sum ").is_some_and(|n| n > 0.0),
        "{metrics}"
    );
    assert!(
        value_of(&metrics, "twinrt_samples_per_second ").is_some_and(|r| r >= 0.0),
        "{metrics}"
    );
    assert!(
        value_of(&metrics, "twinrt_mailbox_depth_max ").is_some(),
        "{metrics}"
    );
    node.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_node_is_live_and_ready() {
    let node = Node::start(
        Arc::new(compile_one(SIMULATED)),
        NodeConfig::default(),
        Clock::system(),
        None,
    )
    .await
    .expect("node starts");
    let h = health(&node);
    assert!(h.live && h.ready, "{h:?}");
    assert!(h.reasons.is_empty(), "{h:?}");
    node.shutdown().await.expect("clean shutdown");
}

// ----- an adapter that fails on every start -----

#[derive(Debug)]
struct Broken {
    name: String,
}

#[derive(Debug)]
struct BrokenFactory;

impl SourceFactory for BrokenFactory {
    fn kind(&self) -> &'static str {
        "broken"
    }

    fn build(
        &self,
        name: &str,
        _config: &toml::Table,
        _env: &SourceEnv,
    ) -> Result<Box<dyn SampleSource>, Vec<ConfigIssue>> {
        Ok(Box::new(Broken { name: name.into() }))
    }
}

impl SampleSource for Broken {
    fn name(&self) -> &str {
        &self.name
    }

    fn bind(&mut self, _points: Vec<PointSpec>) -> Result<(), Vec<BindError>> {
        Ok(())
    }

    fn run(
        self: Box<Self>,
        _sink: Arc<dyn SampleSink>,
        _shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> SourceFuture {
        Box::pin(async move {
            Err(SourceError::Failed {
                source_name: self.name.clone(),
                message: "the device refuses every connection".into(),
            })
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_adapter_keeps_failing_is_live_but_not_ready() {
    let text = format!(
        "{SIMULATED}\n[source.line]\nkind = \"broken\"\n[twin.\"r1/p1/l1/meter\"]\nclass = \"Pump\"\nsource = \"line\"\nbindings = {{ flow = \"anything\" }}\n"
    );
    let mut registry = Registry::builtin();
    registry.register(BrokenFactory);
    let config = NodeConfig {
        registry: Arc::new(registry),
        ..NodeConfig::default()
    };
    let node = Node::start(Arc::new(compile_one(&text)), config, Clock::system(), None)
        .await
        .expect("node starts");
    // It fails at once and after every restart (1 s, 2 s, …): once it has
    // been failed for longer than the first restart delay, the node is not
    // ready.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let h = loop {
        let h = health(&node);
        if !h.ready {
            break h;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still ready with a failing adapter: {h:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(h.live, "{h:?}");
    assert_eq!(h.reasons.len(), 1, "{h:?}");
    assert!(
        h.reasons[0].contains("edge adapter `line` (broken)")
            && h.reasons[0].contains("the device refuses every connection"),
        "{h:?}"
    );
    let metrics = runtime::metrics::render(&node, None).await;
    assert!(
        metrics
            .contains("twinrt_adapter_state{source=\"line\",kind=\"broken\",state=\"failed\"} 1\n"),
        "{metrics}"
    );
    node.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailbox_depth_counts_balance_once_every_batch_is_handled() {
    use twins::actor::{SampleBatch, TwinMsg};
    use twins::{PropSample, Quality, Value};
    let config = NodeConfig {
        simulate: false,
        ..NodeConfig::default()
    };
    let node = Node::start(
        Arc::new(compile_one(SIMULATED)),
        config,
        Clock::system(),
        None,
    )
    .await
    .expect("node starts");
    let pumps: Vec<usize> = (0..node.ctx.model.twins.len())
        .filter(|&i| node.ctx.model.twins[i].path.name().starts_with("pump-"))
        .collect();
    assert_eq!(pumps.len(), 4);
    const BATCHES: u64 = 500;
    for k in 0..BATCHES {
        for &p in &pumps {
            let now = node.ctx.clock.now();
            node.ctx
                .cast(
                    p,
                    TwinMsg::Samples(SampleBatch {
                        samples: vec![PropSample {
                            prop: 0,
                            value: Value::F64(k as f64),
                            source_ts: now,
                            quality: Quality::Good,
                        }],
                        arrival: now,
                    }),
                )
                .expect("the pump runs");
        }
    }
    // Every batch and every child update they caused is handled in the
    // end: the counts come back to zero.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let samples = node
            .ctx
            .metrics
            .samples
            .load(std::sync::atomic::Ordering::Relaxed);
        let deepest = node.ctx.deepest_mailbox().map(|(_, n)| n);
        if samples == BATCHES * pumps.len() as u64 && deepest == Some(0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{samples} samples applied, deepest mailbox {deepest:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = runtime::metrics::render(&node, None).await;
    assert!(
        metrics.contains("\ntwinrt_mailbox_depth_max 0\n"),
        "{metrics}"
    );
    node.shutdown().await.expect("clean shutdown");
}
