//! The node's metrics are valid Prometheus text exposition (checked by the
//! real `promtool check metrics`) and carry the twins, the alarms and every
//! edge adapter's state and counters.
//!
//! Needs `promtool` (Debian package `prometheus`) and pymodbus;
//! `./scripts/test.sh` installs both.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

#[path = "../../adapters/tests/fixtures/modbus_harness.rs"]
mod modbus;

use runtime::node::{Node, NodeConfig};
use twins::Clock;
use twins::model::{SourceFile, compile};

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
    // The PLC's 123.456 raises the urgent alarm; wait until HQ counts it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let metrics = loop {
        let m = runtime::metrics::render(&node).await;
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
    ] {
        assert!(
            metrics.contains(line),
            "missing `{}` in:\n{metrics}",
            line.trim_end()
        );
    }
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
