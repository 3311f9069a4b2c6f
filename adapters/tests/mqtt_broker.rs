//! The embedded broker ([`EmbeddedBroker`], on rumqttd) with real clients:
//! the real `mosquitto_pub` publishes to it and an [`MqttSource`] configured
//! with `embedded_broker = true` delivers the values; a port in use is a
//! clear error.
//!
//! Needs `mosquitto_pub` (Debian package `mosquitto-clients`).

#[path = "fixtures/mosquitto_harness.rs"]
mod harness;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use adapters::mqtt::{
    BrokerConfig, BrokerError, EmbeddedBroker, MqttConfig, MqttMetrics, MqttSource, MqttStatus,
    embedded_broker_config,
};
use adapters::{PointSpec, SampleSource};
use harness::{ChannelSink, free_port, publish};
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;
use twins::{Clock, PointId, Quality, Timestamp, Value, ValueType};

const WAIT: Duration = Duration::from_secs(15);

fn point(address: &str) -> PointSpec {
    harness::point(address, ValueType::F64, None)
}

async fn start(config: BrokerConfig) -> Result<EmbeddedBroker, BrokerError> {
    tokio::task::spawn_blocking(move || EmbeddedBroker::start(config))
        .await
        .expect("start does not panic")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_pub_through_the_embedded_broker_reaches_a_source() {
    let port = free_port();
    let config: MqttConfig = toml::from_str(&format!(
        r#"
        host = "127.0.0.1"
        port = {port}
        client_id = "twinrt-embedded-{port}"
        embedded_broker = true

        [[subscriptions]]
        topic = "plant/{{site}}/{{device}}/telemetry"
        qos = 1
        payload = {{ format = "json", timestamp = "/ts", points = {{ temp = "/t", flow = "/f" }} }}
        "#
    ))
    .unwrap();
    let broker_config = embedded_broker_config(&config).expect("the source asks for a broker");
    assert_eq!(
        broker_config.listen,
        SocketAddr::from(([127, 0, 0, 1], port))
    );
    let broker = start(broker_config.clone()).await.expect("broker starts");
    assert_eq!(broker.local_addr(), broker_config.listen);
    assert!(broker.is_running());

    let mut source = MqttSource::new("mqtt", config.validate().unwrap(), Clock::system());
    source
        .bind(vec![
            point("plant/s1/p1/telemetry#temp"),
            point("plant/s1/p1/telemetry#flow"),
        ])
        .unwrap();
    let metrics = source.metrics();
    let mut status = source.status();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(Box::new(source).run(Arc::new(ChannelSink(tx)), stop_rx));
    timeout(WAIT, status.wait_for(|s: &MqttStatus| s.subscribed >= 1))
        .await
        .expect("subscribed to the embedded broker within 15 s")
        .unwrap();

    publish(
        port,
        "plant/s1/p1/telemetry",
        r#"{"ts": 1700000000123, "t": 71.5, "f": 3.25}"#,
    )
    .await;
    publish(
        port,
        "plant/s1/p1/telemetry",
        r#"{"ts": 1700000000124, "t": 72}"#,
    )
    .await;
    let batch = timeout(WAIT, rx.recv()).await.expect("a batch").unwrap();
    let values: Vec<_> = batch.iter().map(|s| (s.point, s.value.clone())).collect();
    assert_eq!(
        values,
        [
            (PointId(1), Value::F64(3.25)),
            (PointId(0), Value::F64(71.5))
        ]
    );
    assert!(
        batch.iter().all(|s| s.quality == Quality::Good
            && s.source_ts == Timestamp::from_millis(1_700_000_000_123))
    );
    let batch = timeout(WAIT, rx.recv()).await.expect("a batch").unwrap();
    assert_eq!(batch[0].value, Value::F64(72.0));
    assert_eq!(MqttMetrics::get(&metrics.messages), 2);

    // The node starts the broker once: a second start on its address fails.
    let e = start(broker_config.clone()).await.unwrap_err();
    assert!(matches!(e, BrokerError::AddrInUse { addr } if addr == broker_config.listen));
    assert!(
        broker.is_running(),
        "a failed second start leaves the first running"
    );

    stop_tx.send(true).unwrap();
    timeout(WAIT, task).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn a_port_in_use_is_an_error_naming_the_address() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let e = start(BrokerConfig {
        listen: addr,
        ..BrokerConfig::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(e, BrokerError::AddrInUse { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!("embedded mqtt broker: address {addr} is already in use: expected a free port")
    );
}

#[tokio::test]
async fn port_zero_picks_a_free_port() {
    let broker = start(BrokerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..BrokerConfig::default()
    })
    .await
    .expect("broker starts");
    assert_ne!(broker.local_addr().port(), 0);
    // Accepts an MQTT client: mosquitto_pub connects, publishes, disconnects.
    publish(broker.local_addr().port(), "probe", "1").await;
}
