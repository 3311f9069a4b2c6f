//! MQTT end to end through a node: a topology binds pump properties to
//! topics of a real Mosquitto broker; what `mosquitto_pub` publishes reaches
//! the twins and rolls up; malformed payloads are counted and the other
//! points keep flowing.
//!
//! Needs `mosquitto` and `mosquitto_pub` (`./scripts/test.sh` installs them).

#[path = "../../adapters/tests/fixtures/mosquitto_harness.rs"]
mod mosquitto;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use cluster::TwinDirectory;
use runtime::node::{Node, NodeConfig};
use twins::model::{SourceFile, compile};
use twins::{Clock, Quality, Value};

const MODEL: &str = r#"
[class.Pump]
tier = "device"
[class.Pump.properties]
flow = { unit = "m3/h", range = [0, 1000], period = "1m" }
temp = { unit = "degC", period = "1m" }
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
"#;

async fn prop(node: &Node, path: &str, name: &str) -> (Value, Quality) {
    let v = node
        .directory
        .get(path)
        .expect("twin")
        .view()
        .await
        .expect("view");
    let p = v.props.iter().find(|p| p.name == name).expect("property");
    (p.value.clone(), p.quality)
}

async fn wait_value(node: &Node, path: &str, name: &str, want: f64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (v, q) = prop(node, path, name).await;
        if v == Value::F64(want) && q == Quality::Good {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path}.{name} is {v:?} {q:?}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_mosquitto_pub_publishes_reaches_the_twins_and_rolls_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = mosquitto::free_port();
    let _broker = mosquitto::Broker::start(dir.path(), port);
    let topology = format!(
        r#"
[source.site]
kind = "mqtt"
host = "127.0.0.1"
port = {port}
client_id = "twinrt-edge-test"
[[source.site.subscriptions]]
topic = "plant/{{device}}/telemetry"
qos = 1
payload = {{ format = "json", points = {{ flow = "/flow", temp = "/t" }} }}

[enterprise]
name = "acme"
class = "E"
[twin."r1"]
class = "R"
[twin."r1/p1"]
class = "P"
[twin."r1/p1/l1"]
class = "L"
[twin."r1/p1/l1/pump-{{n}}"]
class = "Pump"
count = 2
source = "site"
bindings = {{ flow = "plant/pump-{{n}}/telemetry#flow", temp = "plant/pump-{{n}}/telemetry#temp" }}
"#
    );
    let model = compile(&[SourceFile {
        path: "model.toml".into(),
        text: format!("{MODEL}{topology}"),
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
    assert_eq!(node.edge.status()[0].owner.as_str(), "acme/r1/p1");
    // The subscription may not be in place yet: publish until it lands.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        mosquitto::publish(port, "plant/pump-1/telemetry", r#"{"flow": 12.5, "t": 40}"#).await;
        if prop(&node, "acme/r1/p1/l1/pump-1", "flow").await.0 == Value::F64(12.5) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no value arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    mosquitto::publish(port, "plant/pump-2/telemetry", r#"{"flow": 7.5, "t": 41}"#).await;
    wait_value(&node, "acme/r1/p1/l1/pump-2", "temp", 41.0).await;
    wait_value(&node, "acme", "flow", 20.0).await;

    // A malformed payload is counted; the next good one still flows.
    mosquitto::publish(port, "plant/pump-2/telemetry", "{not json").await;
    mosquitto::publish(port, "plant/pump-2/telemetry", r#"{"flow": 8.5, "t": 42}"#).await;
    wait_value(&node, "acme/r1/p1/l1/pump-2", "flow", 8.5).await;
    wait_value(&node, "acme", "flow", 21.0).await;
    node.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_broker_takes_device_data_and_twins_are_published_northbound() {
    let port = mosquitto::free_port();
    let topology = format!(
        r#"
[source.site]
kind = "mqtt"
# no host: the broker listens on 127.0.0.1, the default
port = {port}
client_id = "twinrt-embedded-test"
embedded_broker = true
[[source.site.subscriptions]]
topic = "plant/{{device}}/telemetry"
qos = 1
payload = {{ format = "json", points = {{ flow = "/flow" }} }}
[source.site.northbound]
prefix = "twinrt/state"
retain = true
interval = "100ms"

[enterprise]
name = "acme"
class = "E"
[twin."r1"]
class = "R"
[twin."r1/p1"]
class = "P"
[twin."r1/p1/l1"]
class = "L"
[twin."r1/p1/l1/pump-1"]
class = "Pump"
source = "site"
bindings = {{ flow = "plant/pump-1/telemetry#flow" }}
"#
    );
    let model = compile(&[SourceFile {
        path: "model.toml".into(),
        text: format!("{MODEL}{topology}"),
    }])
    .unwrap_or_else(|e| panic!("{e}"));
    let node = Node::start(
        Arc::new(model),
        NodeConfig::default(),
        Clock::system(),
        None,
    )
    .await
    .expect("node starts with its embedded broker");
    assert_eq!(node.brokers.len(), 1);
    assert_eq!(node.brokers[0].local_addr().port(), port);

    // A real client publishes to the broker inside the node.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        mosquitto::publish(port, "plant/pump-1/telemetry", r#"{"flow": 33.25}"#).await;
        if prop(&node, "acme/r1/p1/l1/pump-1", "flow").await.0 == Value::F64(33.25) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no value arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A real subscriber gets the retained twin state from the same broker.
    let out = Command::new(mosquitto::binary("mosquitto_sub"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "twinrt/state/acme/r1/p1/l1/pump-1",
            "-C",
            "1",
            "-W",
            "10",
        ])
        .output()
        .expect("run mosquitto_sub");
    assert!(
        out.status.success(),
        "mosquitto_sub got nothing: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the state is JSON");
    assert_eq!(state["path"], "acme/r1/p1/l1/pump-1");
    assert_eq!(state["props"]["flow"]["value"], 33.25);
    assert_eq!(state["props"]["flow"]["quality"], "good");
    node.shutdown().await.expect("clean shutdown");
}
