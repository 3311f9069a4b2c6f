//! [`MqttSource`] against a real Mosquitto broker, fed by the real
//! `mosquitto_pub`: delivery, rejected messages, broker restart.
//!
//! Needs the `mosquitto` and `mosquitto_pub` binaries (Debian packages
//! `mosquitto` and `mosquitto-clients`); `./scripts/test.sh` installs them.

#[path = "fixtures/mosquitto_harness.rs"]
mod harness;

use std::sync::Arc;
use std::time::Duration;

use adapters::mqtt::{MqttConfig, MqttMetrics, MqttSource, MqttStatus};
use adapters::{PointSpec, SampleSource};
use harness::{Broker, ChannelSink, free_port, publish};
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;
use twins::{Clock, PointId, Quality, Sample, Timestamp, Value, ValueType};

const WAIT: Duration = Duration::from_secs(15);

async fn next_batch(rx: &mut mpsc::UnboundedReceiver<Vec<Sample>>) -> Vec<Sample> {
    timeout(WAIT, rx.recv())
        .await
        .expect("no batch within 15 s")
        .expect("source stopped")
}

async fn subscribed(status: &mut watch::Receiver<MqttStatus>, sessions: u64) {
    timeout(WAIT, status.wait_for(|s| s.subscribed >= sessions))
        .await
        .unwrap_or_else(|_| panic!("not subscribed {sessions} time(s) within 15 s"))
        .expect("source stopped");
}

fn point(address: &str) -> PointSpec {
    harness::point(address, ValueType::F64, None)
}

fn values(batch: &[Sample]) -> Vec<(PointId, Value)> {
    batch.iter().map(|s| (s.point, s.value.clone())).collect()
}

fn count(m: &MqttMetrics, f: impl Fn(&MqttMetrics) -> &std::sync::atomic::AtomicU64) -> u64 {
    MqttMetrics::get(f(m))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_rejects_and_survives_a_broker_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let broker = Broker::start(dir.path(), port);

    let config: MqttConfig = toml::from_str(&format!(
        r#"
        host = "127.0.0.1"
        port = {port}
        client_id = "twinrt-test-{port}"
        keep_alive = "5s"

        [[subscriptions]]
        topic = "plant/{{site}}/{{device}}/telemetry"
        qos = 1
        payload = {{ format = "json", timestamp = "/ts", points = {{ temp = "/t", flow = "/f" }} }}

        [[subscriptions]]
        topic = "plant/{{site}}/{{device}}/level"
        qos = 1
        payload = {{ format = "number" }}
        "#
    ))
    .unwrap();
    let config = config.validate().unwrap();
    let mut source = MqttSource::new("mqtt", config, Clock::system());
    source
        .bind(vec![
            point("plant/s1/p1/telemetry#temp"),
            point("plant/s1/p1/telemetry#flow"),
            point("plant/s1/p1/level#value"),
        ])
        .unwrap();
    let metrics = source.metrics();
    let mut status = source.status();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(Box::new(source).run(Arc::new(ChannelSink(tx)), stop_rx));
    subscribed(&mut status, 1).await;

    // JSON: both points, timestamped by the payload.
    publish(
        port,
        "plant/s1/p1/telemetry",
        r#"{"ts": 1700000000123, "t": 71.5, "f": 3.25}"#,
    )
    .await;
    let batch = next_batch(&mut rx).await;
    assert_eq!(
        values(&batch),
        vec![
            (PointId(1), Value::F64(3.25)),
            (PointId(0), Value::F64(71.5))
        ]
    );
    for s in &batch {
        assert_eq!(s.quality, Quality::Good);
        assert_eq!(s.source_ts, Timestamp::from_millis(1_700_000_000_123));
    }

    // Malformed JSON, a bound topic's stranger sibling: counted, not fatal.
    publish(port, "plant/s1/p1/telemetry", "{not json").await;
    publish(port, "plant/s1/p9/telemetry", r#"{"t": 1}"#).await;
    publish(port, "plant/s1/p1/level", "42.5").await;
    let batch = next_batch(&mut rx).await;
    assert_eq!(values(&batch), vec![(PointId(2), Value::F64(42.5))]);
    assert_eq!(batch[0].quality, Quality::Good);
    assert_eq!(count(&metrics, |m| &m.rejected_decode), 1);
    assert_eq!(count(&metrics, |m| &m.rejected_unbound_topic), 1);
    assert_eq!(count(&metrics, |m| &m.messages), 4);
    assert_eq!(count(&metrics, |m| &m.samples), 3);
    assert_eq!(count(&metrics, |m| &m.rejected_duplicate), 0);

    // Broker restart on the same port: reconnect, resubscribe, exactly once.
    let broker = broker.restart();
    subscribed(&mut status, 2).await;
    assert!(count(&metrics, |m| &m.reconnects) >= 1);
    publish(port, "plant/s1/p1/level", "7").await;
    publish(port, "plant/s1/p1/telemetry", r#"{"ts": 5, "t": 1.5}"#).await;
    let batch = next_batch(&mut rx).await;
    assert_eq!(values(&batch), vec![(PointId(2), Value::F64(7.0))]);
    let batch = next_batch(&mut rx).await;
    assert_eq!(
        values(&batch),
        vec![(PointId(0), Value::F64(1.5))],
        "the level message arrived once, then the telemetry"
    );
    assert_eq!(batch[0].source_ts, Timestamp::from_millis(5));

    stop_tx.send(true).unwrap();
    timeout(WAIT, task)
        .await
        .expect("source did not stop within 15 s")
        .unwrap()
        .unwrap();
    drop(broker);
}
