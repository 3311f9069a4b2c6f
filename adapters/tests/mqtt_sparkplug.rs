//! [`MqttSource`] as a Sparkplug B host against a real edge node
//! (pysparkplug, `tests/fixtures/sparkplug_edge.py`) through a real
//! Mosquitto broker: births, data by name and by alias, a forced seq gap
//! answered by a rebirth request, a stale NDEATH, data before a birth, a
//! DDEATH, and the will NDEATH of a killed edge node.
//!
//! Needs `mosquitto`, `mosquitto_sub`, `mosquitto_pub` and Python with
//! `pysparkplug`; `./scripts/test.sh` installs them.

#[path = "fixtures/mosquitto_harness.rs"]
mod harness;

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use adapters::mqtt::sparkplug::{self, MetricValue, REBIRTH_METRIC};
use adapters::mqtt::{MqttConfig, MqttMetrics, MqttSource, MqttStatus};
use adapters::{PointSpec, SampleSource};
use harness::{Broker, ChannelSink, binary, free_port};
use prost::Message as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;
use twins::{Clock, PointId, Quality, Reason, Sample, Value, ValueType};

const WAIT: Duration = Duration::from_secs(15);
const GROUP: &str = "plant1";
const EDGE: &str = "edge7";
const DEVICE: &str = "pump";

/// Receives samples until one satisfies `pred`; returns all received.
async fn samples_until(
    rx: &mut mpsc::UnboundedReceiver<Vec<Sample>>,
    what: &str,
    pred: impl Fn(&Sample) -> bool,
) -> Vec<Sample> {
    let mut seen = Vec::new();
    loop {
        let batch = timeout(WAIT, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no {what} within 15 s; received {seen:#?}"))
            .expect("source stopped");
        let done = batch.iter().any(&pred);
        seen.extend(batch);
        if done {
            return seen;
        }
    }
}

fn point(address: &str, ty: ValueType) -> PointSpec {
    harness::point(address, ty, None)
}

fn get(m: &MqttMetrics, f: impl Fn(&MqttMetrics) -> &std::sync::atomic::AtomicU64) -> u64 {
    MqttMetrics::get(f(m))
}

/// The pysparkplug edge node, driven over stdin and reporting on stdout.
struct Edge {
    child: tokio::process::Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Edge {
    fn start(port: u16) -> Edge {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sparkplug_edge.py");
        let mut child = tokio::process::Command::new("python3")
            .arg(script)
            .args(["--port", &port.to_string()])
            .args(["--group", GROUP, "--edge", EDGE, "--device", DEVICE])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start python3 sparkplug_edge.py");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Edge {
            child,
            stdin,
            lines,
        }
    }

    /// Reads lines until `want`, failing on an `error` line.
    async fn expect(&mut self, want: &str) {
        loop {
            let line = timeout(WAIT, self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("edge node did not say `{want}` within 15 s"))
                .expect("read edge node stdout")
                .unwrap_or_else(|| {
                    panic!("edge node exited before `{want}` (is pysparkplug installed?)")
                });
            assert!(!line.starts_with("error"), "edge node: {line}");
            if line == want {
                return;
            }
        }
    }

    async fn send(&mut self, command: &str) {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
        let word = command.split_whitespace().next().unwrap();
        self.expect(&format!("ok {word}")).await;
    }
}

/// `mosquitto_sub` printing every NCMD as `TOPIC HEX`.
struct NcmdWatch {
    _child: tokio::process::Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl NcmdWatch {
    async fn start(port: u16) -> NcmdWatch {
        let mut child = tokio::process::Command::new(binary("mosquitto_sub"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-t", "spBv1.0/+/NCMD/#", "-F", "%t %x"])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start mosquitto_sub");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut w = NcmdWatch {
            _child: child,
            lines,
        };
        // Subscribed once a probe comes back; repeat until it does.
        loop {
            publish(port, "spBv1.0/probe/NCMD/probe", &[]).await;
            if let Ok(line) = timeout(Duration::from_millis(300), w.lines.next_line()).await {
                assert_eq!(
                    line.unwrap().as_deref(),
                    Some("spBv1.0/probe/NCMD/probe "),
                    "probe"
                );
                return w;
            }
        }
    }

    /// The next NCMD: its topic and decoded payload.
    async fn next(&mut self) -> (String, sparkplug::Payload) {
        let line = timeout(WAIT, self.lines.next_line())
            .await
            .expect("no NCMD within 15 s")
            .unwrap()
            .expect("mosquitto_sub exited");
        let (topic, hex) = line.split_once(' ').unwrap();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        (
            topic.to_owned(),
            sparkplug::Payload::decode(bytes.as_slice()).expect("NCMD decodes"),
        )
    }
}

/// Publishes raw bytes with the real `mosquitto_pub`, QoS 1.
async fn publish(port: u16, topic: &str, payload: &[u8]) {
    let mut child = tokio::process::Command::new(binary("mosquitto_pub"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", topic])
        .arg(if payload.is_empty() { "-n" } else { "-s" })
        .stdin(Stdio::piped())
        .spawn()
        .expect("run mosquitto_pub");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(payload).await.unwrap();
    drop(stdin);
    let status = child.wait().await.unwrap();
    assert!(status.success(), "mosquitto_pub to `{topic}` failed");
}

fn is_rebirth_request(payload: &sparkplug::Payload) -> bool {
    payload.metrics.iter().any(|m| {
        m.name.as_deref() == Some(REBIRTH_METRIC)
            && m.value == Some(MetricValue::BooleanValue(true))
    })
}

fn good(s: &Sample, point: u32, value: Value) -> bool {
    s.point == PointId(point) && s.value == value && s.quality == Quality::Good
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_follows_a_pysparkplug_edge_node() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = Broker::start(dir.path(), port);

    let config: MqttConfig = toml::from_str(&format!(
        r#"
        host = "127.0.0.1"
        port = {port}
        client_id = "twinrt-sparkplug-{port}"
        keep_alive = "5s"

        [[subscriptions]]
        topic = "spBv1.0/{{group}}/+/{{edge}}/#"
        payload = {{ format = "sparkplug_b" }}
        "#
    ))
    .unwrap();
    let mut source = MqttSource::new("mqtt", config.validate().unwrap(), Clock::system());
    source
        .bind(vec![
            point("spBv1.0/plant1/edge7#temp", ValueType::F64),
            point("spBv1.0/plant1/edge7/pump#speed", ValueType::F64),
            point("spBv1.0/plant1/edge7/pump#running", ValueType::Bool),
        ])
        .unwrap();
    let metrics = source.metrics();
    let mut status = source.status();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(Box::new(source).run(Arc::new(ChannelSink(tx)), stop_rx));
    timeout(WAIT, status.wait_for(|s: &MqttStatus| s.subscribed >= 1))
        .await
        .expect("not subscribed within 15 s")
        .unwrap();
    let mut ncmd = NcmdWatch::start(port).await;

    // Data from a node never born: not applied, and a rebirth request.
    let ghost = sparkplug::Payload {
        timestamp: Some(1),
        metrics: vec![],
        seq: Some(3),
    };
    publish(port, "spBv1.0/plant1/NDATA/ghost", &ghost.encode_to_vec()).await;
    let (topic, payload) = ncmd.next().await;
    assert_eq!(topic, "spBv1.0/plant1/NCMD/ghost");
    assert!(is_rebirth_request(&payload), "{payload:?}");
    assert_eq!(get(&metrics, |m| &m.sparkplug_not_born), 1);

    // Births: NBIRTH's and DBIRTH's values arrive.
    let mut edge = Edge::start(port);
    edge.expect("born").await;
    let seen = samples_until(&mut rx, "birth values", |s| good(s, 2, Value::Bool(false))).await;
    assert!(
        seen.iter().any(|s| good(s, 0, Value::F64(20.0))),
        "{seen:?}"
    );
    assert!(seen.iter().any(|s| good(s, 1, Value::F64(0.0))), "{seen:?}");
    assert_eq!(get(&metrics, |m| &m.sparkplug_births), 2);

    // Data by name and by alias, timestamped by the metric.
    edge.send("ndata temp 21.5 1700000000001").await;
    edge.send("ddata speed 3.5 1700000000002").await;
    edge.send("ndata_alias 1 22.5 1700000000003").await;
    edge.send("ddata_alias 3 true 1700000000004").await;
    let seen = samples_until(&mut rx, "alias data", |s| good(s, 2, Value::Bool(true))).await;
    let got: Vec<(PointId, Value, i64)> = seen
        .iter()
        .map(|s| (s.point, s.value.clone(), s.source_ts.as_millis()))
        .collect();
    assert_eq!(
        got,
        [
            (PointId(0), Value::F64(21.5), 1_700_000_000_001),
            (PointId(1), Value::F64(3.5), 1_700_000_000_002),
            (PointId(0), Value::F64(22.5), 1_700_000_000_003),
            (PointId(2), Value::Bool(true), 1_700_000_000_004),
        ]
    );

    // An NDEATH of an earlier session (bdSeq 99) is ignored.
    let stale = sparkplug::Payload {
        timestamp: Some(1),
        metrics: vec![sparkplug::Metric {
            name: Some(sparkplug::BD_SEQ.to_owned()),
            datatype: Some(sparkplug::datatype::INT64),
            value: Some(MetricValue::LongValue(99)),
            ..sparkplug::Metric::default()
        }],
        seq: None,
    };
    publish(port, "spBv1.0/plant1/NDEATH/edge7", &stale.encode_to_vec()).await;
    edge.send("ndata temp 23 1700000000005").await;
    let seen = samples_until(&mut rx, "data after the stale death", |s| {
        good(s, 0, Value::F64(23.0))
    })
    .await;
    assert_eq!(seen.len(), 1, "no bad marks: {seen:?}");
    assert_eq!(get(&metrics, |m| &m.sparkplug_stale_deaths), 1);

    // A forced seq gap: the points go bad, twinrt asks for a rebirth, the
    // edge node rebirths and values flow again.
    edge.send("skip").await;
    edge.send("ndata temp 24 1700000000006").await;
    let (topic, payload) = ncmd.next().await;
    assert_eq!(topic, "spBv1.0/plant1/NCMD/edge7");
    assert!(is_rebirth_request(&payload), "{payload:?}");
    edge.expect("rebirth").await;
    edge.send("ndata temp 25 1700000000007").await;
    let seen = samples_until(&mut rx, "data after the rebirth", |s| {
        good(s, 0, Value::F64(25.0))
    })
    .await;
    // The gapped NDATA is not applied; its value comes back with the
    // rebirth's NBIRTH, after the bad marks.
    let bad_at = seen
        .iter()
        .position(|s| s.point == PointId(0) && s.quality == Quality::Bad(Reason::CommFailure))
        .unwrap_or_else(|| panic!("no bad mark: {seen:?}"));
    let value_at = seen
        .iter()
        .position(|s| good(s, 0, Value::F64(24.0)))
        .unwrap_or_else(|| panic!("no birth value: {seen:?}"));
    assert!(bad_at < value_at, "{seen:?}");
    assert_eq!(get(&metrics, |m| &m.sparkplug_seq_gaps), 1);
    assert_eq!(get(&metrics, |m| &m.sparkplug_rebirth_requests), 2);
    assert_eq!(get(&metrics, |m| &m.sparkplug_births), 4);

    // DDEATH: the device's points go bad, the node's stay good.
    edge.send("ddeath").await;
    let seen = samples_until(&mut rx, "device bad marks", |s| {
        s.quality == Quality::Bad(Reason::CommFailure)
    })
    .await;
    let mut bad: Vec<u32> = seen
        .iter()
        .filter(|s| s.quality == Quality::Bad(Reason::CommFailure))
        .map(|s| s.point.0)
        .collect();
    bad.sort_unstable();
    assert_eq!(bad, [1, 2], "{seen:?}");
    assert_eq!(get(&metrics, |m| &m.sparkplug_deaths), 1);

    // SIGKILL: the broker publishes the will NDEATH; every point goes bad.
    edge.child.start_kill().unwrap();
    edge.child.wait().await.unwrap();
    let seen = samples_until(&mut rx, "bad marks", |s| {
        s.point == PointId(2) && s.quality == Quality::Bad(Reason::CommFailure)
    })
    .await;
    let mut bad: Vec<u32> = seen
        .iter()
        .filter(|s| s.quality == Quality::Bad(Reason::CommFailure) && s.value == Value::Null)
        .map(|s| s.point.0)
        .collect();
    bad.sort_unstable();
    assert_eq!(bad, [0, 1, 2], "{seen:?}");
    assert_eq!(get(&metrics, |m| &m.sparkplug_deaths), 2);
    assert_eq!(get(&metrics, |m| &m.sparkplug_unknown_metrics), 0);
    assert_eq!(get(&metrics, |m| &m.rejected_decode), 0);

    stop_tx.send(true).unwrap();
    timeout(WAIT, task)
        .await
        .expect("source did not stop within 15 s")
        .unwrap()
        .unwrap();
}
