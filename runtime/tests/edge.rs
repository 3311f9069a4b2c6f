//! The edge layer end to end: sources declared in a topology become adapter
//! actors under their plant twin, feed their twins, and are restarted by it
//! when they fail; their configuration and addresses are checked with
//! `file:line:col` locations.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

#[path = "../../adapters/tests/fixtures/modbus_harness.rs"]
mod modbus;

use adapters::{
    BindError, ConfigIssue, PointSpec, Registry, SampleSink, SampleSource, SourceEnv, SourceError,
    SourceFactory, SourceFuture,
};
use cluster::TwinDirectory;
use runtime::edge::{AdapterState, plan};
use runtime::node::{Node, NodeConfig};
use twins::actor::ChangeFeed;
use twins::model::{Model, SourceFile, compile};
use twins::{Clock, PointId, Quality, Reason, Sample, Value};

const CLASSES: &str = r#"
[class.Pump]
tier = "device"
[class.Pump.properties]
flow = { unit = "m3/h", range = [0, 100000], period = "200ms" }
speed = { unit = "rpm", period = "200ms" }

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
[class.E]
tier = "enterprise"
"#;

fn model(topology: &str) -> Result<Model, twins::model::Diagnostics> {
    compile(&[
        SourceFile {
            path: "classes.toml".into(),
            text: CLASSES.into(),
        },
        SourceFile {
            path: "topology.toml".into(),
            text: topology.into(),
        },
    ])
}

fn env(model: &Arc<Model>) -> SourceEnv {
    SourceEnv {
        clock: Clock::system(),
        model: model.clone(),
        changes: ChangeFeed::new(16),
    }
}

// ----- a registered test adapter: the registry is open to new kinds -----

/// A source that delivers its start count to every point, then fails after
/// `fail_after_ms`, until it has started `stable_from` times.
#[derive(Debug)]
struct Flaky {
    name: String,
    starts: Arc<AtomicU32>,
    stable_from: u32,
    points: usize,
}

#[derive(Debug, Default)]
struct FlakyFactory {
    starts: Arc<AtomicU32>,
}

impl SourceFactory for FlakyFactory {
    fn kind(&self) -> &'static str {
        "flaky"
    }

    fn build(
        &self,
        name: &str,
        config: &toml::Table,
        _env: &SourceEnv,
    ) -> Result<Box<dyn SampleSource>, Vec<ConfigIssue>> {
        let stable_from = match config.get("stable_from") {
            Some(toml::Value::Integer(n)) if *n > 0 => *n as u32,
            Some(_) => {
                return Err(vec![ConfigIssue::at(
                    "stable_from",
                    "expected a positive integer",
                )]);
            }
            None => return Err(vec![ConfigIssue::whole("missing field `stable_from`")]),
        };
        Ok(Box::new(Flaky {
            name: name.into(),
            starts: self.starts.clone(),
            stable_from,
            points: 0,
        }))
    }
}

impl SampleSource for Flaky {
    fn name(&self) -> &str {
        &self.name
    }

    fn bind(&mut self, points: Vec<PointSpec>) -> Result<(), Vec<BindError>> {
        let bad: Vec<BindError> = points
            .iter()
            .filter(|p| p.address != "counter")
            .map(|p| BindError {
                source_name: self.name.clone(),
                twin: p.twin.clone(),
                prop: p.prop.clone(),
                address: p.address.clone(),
                message: "expected `counter`".into(),
            })
            .collect();
        self.points = points.len();
        if bad.is_empty() { Ok(()) } else { Err(bad) }
    }

    fn run(
        self: Box<Self>,
        sink: Arc<dyn SampleSink>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> SourceFuture {
        Box::pin(async move {
            let n = self.starts.fetch_add(1, Ordering::SeqCst) + 1;
            loop {
                let now = twins::Timestamp::from_micros(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .expect("clock after 1970")
                        .as_micros() as i64,
                );
                let samples = (0..self.points)
                    .map(|p| Sample {
                        point: PointId(p as u32),
                        value: Value::F64(f64::from(n)),
                        source_ts: now,
                        quality: Quality::Good,
                        seq: 0,
                    })
                    .collect();
                sink.deliver(samples, now)
                    .map_err(|_| SourceError::SinkClosed(self.name.clone()))?;
                if n < self.stable_from {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    return Err(SourceError::Failed {
                        source_name: self.name.clone(),
                        message: format!("injected failure of start {n}"),
                    });
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
            }
        })
    }
}

const FLAKY_TOPOLOGY: &str = r#"
[source.counter]
kind = "flaky"
stable_from = 3

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
count = 2
source = "counter"
bindings = { flow = "counter" }
[twin."r1/p2"]
class = "P"
"#;

async fn flow_of(node: &Node, path: &str) -> (Value, Quality) {
    let view = node
        .directory
        .get(path)
        .expect("twin running")
        .view()
        .await
        .expect("view");
    let p = view
        .props
        .iter()
        .find(|p| p.name == "flow")
        .expect("flow property");
    (p.value.clone(), p.quality)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_adapter_is_restarted_by_its_plant_twin_with_growing_delays() {
    let factory = FlakyFactory::default();
    let starts = factory.starts.clone();
    let mut registry = Registry::builtin();
    registry.register(factory);
    let model = Arc::new(model(FLAKY_TOPOLOGY).unwrap_or_else(|e| panic!("{e}")));
    let config = NodeConfig {
        registry: Arc::new(registry),
        ..NodeConfig::default()
    };
    let node = Node::start(model, config, Clock::system(), None)
        .await
        .expect("node starts");

    let status = node.edge.status();
    assert_eq!(status.len(), 1);
    assert_eq!(
        status[0].owner.as_str(),
        "acme/r1/p1",
        "the plant owns its adapter"
    );

    // Starts 1 and 2 fail; the plant restarts after 1 s, then 2 s; start 3 stays up.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = &node.edge.status()[0];
        if s.starts == 3 && s.state == AdapterState::Running {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "adapter not running after its third start: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(starts.load(Ordering::SeqCst), 3);
    assert_eq!(
        node.ctx.metrics.adapter_restarts.load(Ordering::Relaxed),
        2,
        "two failures, two restarts"
    );
    let s = &node.edge.status()[0];
    assert!(
        s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("injected failure of start 2")),
        "{s:?}"
    );
    // The twins see the third instance's values.
    loop {
        let (v, q) = flow_of(&node, "acme/r1/p1/l1/pump-2").await;
        if v == Value::F64(3.0) {
            assert_eq!(q, Quality::Good);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "flow is {v:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // No twin restarted: adapter failures never escalate.
    assert_eq!(node.ctx.metrics.restarts.load(Ordering::Relaxed), 0);
    let edge = node.edge.clone();
    node.shutdown().await.expect("clean shutdown");
    assert_eq!(edge.status()[0].state, AdapterState::Stopped);
}

// ----- configuration errors, located -----

fn plan_errors(topology: &str) -> String {
    let model = Arc::new(model(topology).unwrap_or_else(|e| panic!("{e}")));
    let mut registry = Registry::builtin();
    registry.register(FlakyFactory::default());
    match plan(&model, &registry, &env(&model)) {
        Ok(p) => panic!("expected errors, planned {} adapters", p.adapters.len()),
        Err(d) => d.to_string(),
    }
}

const TREE: &str = r#"
[enterprise]
name = "acme"
class = "E"
[twin."r1"]
class = "R"
[twin."r1/p1"]
class = "P"
[twin."r1/p1/l1"]
class = "L"
[twin."r1/p2"]
class = "P"
[twin."r1/p2/l1"]
class = "L"
"#;

#[test]
fn an_unknown_kind_is_reported_where_it_is_written_with_a_suggestion() {
    let text = format!(
        "[source.broker]\nkind = \"mqqt\"\nhost = \"127.0.0.1\"\n{TREE}\n[twin.\"r1/p1/l1/p\"]\nclass = \"Pump\"\nbindings = {{ flow = {{ source = \"broker\", address = \"a#b\" }} }}\n"
    );
    let out = plan_errors(&text);
    assert!(
        out.starts_with(
            "topology.toml:2:8: error: unknown source kind `mqqt`: expected `modbus`, `mqtt`, `flaky` or `sim`"
        ),
        "{out}"
    );
    assert!(out.contains("help: did you mean `mqtt`?"), "{out}");
}

#[test]
fn config_errors_point_at_the_offending_key() {
    let text = format!(
        r#"[source.plc]
kind = "modbus"

[[source.plc.endpoints]]
name = "a"
host = "127.0.0.1"
timeout = "soon"
poll_groups = [{{ name = "fast", interval = "1s" }}]

[source.broker]
kind = "mqtt"
host = "127.0.0.1"
client_id = "twinrt"
keep_alive = "0s"

[source.counter]
kind = "flaky"
stable_from = "three"
{TREE}
[twin."r1/p1/l1/p"]
class = "Pump"
bindings = {{ flow = {{ source = "plc", address = "holding:1" }}, speed = {{ source = "broker", address = "t#v" }} }}
[twin."r1/p1/l1/q"]
class = "Pump"
bindings = {{ flow = {{ source = "counter", address = "counter" }} }}
"#
    );
    let out = plan_errors(&text);
    let heads: Vec<&str> = out.lines().filter(|l| l.contains(": error: ")).collect();
    assert_eq!(heads.len(), 3, "{out}");
    assert!(heads[0].starts_with("topology.toml:7:1: error: source `plc`: `endpoints[0].timeout`: invalid duration `soon`"), "{out}");
    assert!(
        heads[1].starts_with("topology.toml:14:1: error: source `broker`: `keep_alive`"),
        "{out}"
    );
    assert!(heads[2].starts_with("topology.toml:18:1: error: source `counter`: `stable_from`: expected a positive integer"), "{out}");
}

#[test]
fn bad_addresses_and_sources_spanning_plants_are_located() {
    let text = format!(
        r#"[source.counter]
kind = "flaky"
stable_from = 1

[source.plc]
kind = "modbus"
[[source.plc.endpoints]]
name = "a"
host = "127.0.0.1"
poll_groups = [{{ name = "fast", interval = "1s" }}]
{TREE}
[twin."r1/p1/l1/p"]
class = "Pump"
bindings = {{ flow = {{ source = "counter", address = "count" }}, speed = {{ source = "plc", address = "holding:1" }} }}
[twin."r1/p2/l1/q"]
class = "Pump"
bindings = {{ speed = {{ source = "plc", address = "holding:2" }} }}
"#
    );
    let out = plan_errors(&text);
    let heads: Vec<&str> = out.lines().filter(|l| l.contains(": error: ")).collect();
    assert_eq!(heads.len(), 2, "{out}");
    assert!(
        heads[0].starts_with("topology.toml:5:9: error: source `plc` feeds twins of two plants, `acme/r1/p1` and `acme/r1/p2`"),
        "{out}"
    );
    assert!(
        heads[1].starts_with("topology.toml:28:53:"),
        "the bad address is reported on its binding line: {out}"
    );
    assert!(
        heads[1].contains("address `count`: expected `counter`"),
        "{out}"
    );
}

// ----- a real PLC: pymodbus -----

async fn wait_for(node: &Node, path: &str, what: &str, f: impl Fn(&Value, Quality) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (v, q) = flow_of(node, path).await;
        if f(&v, q) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path}.flow never became {what}: last {v:?} {q:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plc_in_the_topology_feeds_its_pumps_goes_bad_when_unplugged_and_recovers() {
    modbus::require_pymodbus();
    let (server, port) = modbus::start_server(0).await;
    // f32 ABCD 123.456 at holding 96 (modbus_server.py's layout), scaled x10.
    let topology = format!(
        r#"[source.plc]
kind = "modbus"
[[source.plc.endpoints]]
name = "unit-plc"
host = "127.0.0.1"
port = {port}
timeout = "300ms"
poll_groups = [{{ name = "fast", interval = "200ms" }}]
{TREE}
[twin."r1/p1/l1/p"]
class = "Pump"
source = "plc"
bindings = {{ flow = "holding:96:f32;scale=10", speed = "holding:300:f32:CDAB;writable" }}
"#
    );
    let model = Arc::new(model(&topology).unwrap_or_else(|e| panic!("{e}")));
    let node = Node::start(model, NodeConfig::default(), Clock::system(), None)
        .await
        .expect("node starts");
    assert_eq!(node.edge.status()[0].owner.as_str(), "acme/r1/p1");
    let path = "acme/r1/p1/l1/p";
    let expected = f64::from(123.456f32) * 10.0;
    wait_for(&node, path, "the scaled PLC value", |v, q| {
        q == Quality::Good && matches!(v, Value::F64(x) if (x - expected).abs() < 1e-6)
    })
    .await;
    // The plant's roll-up carries it too (after its coalescing interval).
    wait_for(&node, "acme/r1/p1", "the plant's roll-up of it", |v, q| {
        q == Quality::Good && matches!(v, Value::F64(x) if (x - expected).abs() < 1e-6)
    })
    .await;

    // A setpoint write goes to the PLC and comes back through polling; a
    // point not on the allow-list refuses writes.
    node.edge
        .write(path, "speed", Value::F64(1450.0))
        .await
        .expect("speed is writable");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let v = node
            .directory
            .get(path)
            .expect("pump")
            .view()
            .await
            .expect("view");
        let speed = v.props.iter().find(|p| p.name == "speed").expect("speed");
        if speed.value == Value::F64(1450.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "speed is {:?}",
            speed.value
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = node.edge.write(path, "flow", Value::F64(1.0)).await;
    assert!(
        matches!(
            refused,
            Err(runtime::edge::EdgeWriteError::Write {
                error: adapters::WriteError::NotWritable(_),
                ..
            })
        ),
        "{refused:?}"
    );

    // Unplug: the point turns Bad(comm_failure).
    drop(server);
    wait_for(&node, path, "Bad(comm_failure)", |_, q| {
        q == Quality::Bad(Reason::CommFailure)
    })
    .await;
    // Plug back on the same port: Good again, without restarting anything.
    let (_server, again) = modbus::start_server(port).await;
    assert_eq!(again, port);
    wait_for(&node, path, "Good again", |_, q| q == Quality::Good).await;
    assert_eq!(
        node.edge.status()[0].starts,
        1,
        "the adapter itself never restarted"
    );
    node.shutdown().await.expect("clean shutdown");
}
