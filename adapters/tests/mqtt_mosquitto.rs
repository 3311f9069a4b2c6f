//! [`MqttSource`] against a real Mosquitto broker, fed by the real
//! `mosquitto_pub`: delivery, rejected messages, broker restart.
//!
//! Needs the `mosquitto` and `mosquitto_pub` binaries (Debian packages
//! `mosquitto` and `mosquitto-clients`); `./scripts/test.sh` installs them.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use adapters::mqtt::{MqttConfig, MqttMetrics, MqttSource, MqttStatus};
use adapters::{PointSpec, SampleSink, SampleSource, SinkClosed};
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;
use twins::{Clock, PointId, Quality, Sample, Timestamp, TwinPath, Value, ValueType};

const WAIT: Duration = Duration::from_secs(15);

/// Finds a binary on `PATH` or in the system directories Debian puts it in.
fn binary(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"].map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "`{name}` not found on PATH or in /usr/sbin: run `./scripts/test.sh`, which installs \
         the `mosquitto` and `mosquitto-clients` packages"
    );
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// A Mosquitto process, killed on drop.
struct Broker {
    child: Child,
    port: u16,
    conf: PathBuf,
}

impl Broker {
    fn start(dir: &Path, port: u16) -> Broker {
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 log_dest stderr\nlog_type error\nlog_type warning\n"
            ),
        )
        .unwrap();
        Broker::spawn(conf, port)
    }

    fn spawn(conf: PathBuf, port: u16) -> Broker {
        let child = Command::new(binary("mosquitto"))
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        let broker = Broker { child, port, conf };
        broker.await_listening();
        broker
    }

    fn await_listening(&self) {
        // Mosquitto signals readiness only by accepting connections.
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!(
            "mosquitto did not listen on 127.0.0.1:{} within 5 s",
            self.port
        );
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(mut self) -> Broker {
        self.kill();
        Broker::spawn(self.conf.clone(), self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Publishes with the real `mosquitto_pub`, QoS 1, and waits for it to finish.
async fn publish(port: u16, topic: &str, payload: &str) {
    let out = tokio::process::Command::new(binary("mosquitto_pub"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", topic, "-m", payload])
        .output()
        .await
        .expect("run mosquitto_pub");
    assert!(
        out.status.success(),
        "mosquitto_pub to `{topic}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[derive(Debug)]
struct ChannelSink(mpsc::UnboundedSender<Vec<Sample>>);

impl SampleSink for ChannelSink {
    fn deliver(&self, samples: Vec<Sample>, _arrival: Timestamp) -> Result<(), SinkClosed> {
        self.0.send(samples).map_err(|_| SinkClosed)
    }
}

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
    PointSpec {
        twin: TwinPath::parse("plant/s1/p1").unwrap(),
        prop: address.rsplit('#').next().unwrap().to_owned(),
        class: "Pump".to_owned(),
        sim: None,
        address: address.to_owned(),
        ty: ValueType::F64,
        unit: None,
        range: None,
        period: None,
        states: Vec::new(),
    }
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
