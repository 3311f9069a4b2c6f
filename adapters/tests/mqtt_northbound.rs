//! Northbound publication against a real Mosquitto, read by the real
//! `mosquitto_sub`: twins driven by samples publish their state (coalesced
//! per interval, retained) and alarm transitions (at once, not retained).
//!
//! Needs `mosquitto` and `mosquitto_sub` (Debian packages `mosquitto` and
//! `mosquitto-clients`).

#[path = "fixtures/mosquitto_harness.rs"]
mod harness;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use adapters::mqtt::{Factory, MqttConfig, NorthboundMetrics, NorthboundPublisher};
use adapters::{SampleSink, SinkClosed, SourceEnv, SourceFactory};
use harness::{Broker, binary, free_port, publish};
use ractor::ActorRef;
use serde_json::Value as Json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;
use twins::actor::{ChangeFeed, SampleBatch, TwinContext, TwinMetrics, TwinMsg, spawn_root};
use twins::model::{Model, SourceFile};
use twins::{Clock, PropSample, Quality, Sample, Timestamp, Value};

const WAIT: Duration = Duration::from_secs(15);
const SENSOR: &str = "acme/r1/p1/l1/s1";
const PREFIX: &str = "twinrt/state";

const MODEL: &str = r#"
[class.Sensor]
tier = "device"
[class.Sensor.properties]
value = { unit = "kW", range = [0, 1000] }
mode = { type = "enum", states = ["off", "auto"] }
[[class.Sensor.alarms]]
name = "high"
when = "value > 100"
priority = "high"

[class.L]
tier = "line"
[class.P]
tier = "plant"
[class.R]
tier = "region"
[class.E]
tier = "enterprise"

[enterprise]
name = "acme"
class = "E"
[twin."r1"]
class = "R"
[twin."r1/p1"]
class = "P"
[twin."r1/p1/l1"]
class = "L"
[twin."r1/p1/l1/s1"]
class = "Sensor"
"#;

/// One message as `mosquitto_sub -F '%r %t %p'` prints it.
#[derive(Debug, Clone)]
struct Received {
    retained: bool,
    topic: String,
    payload: String,
}

impl Received {
    fn json(&self) -> Json {
        serde_json::from_str(&self.payload)
            .unwrap_or_else(|e| panic!("{} is not JSON ({e}): {}", self.topic, self.payload))
    }
}

/// A running `mosquitto_sub` on `PREFIX/#`, its lines parsed; killed on drop.
struct Sub {
    _child: tokio::process::Child,
    rx: mpsc::UnboundedReceiver<Received>,
    port: u16,
}

impl Sub {
    /// Starts `mosquitto_sub` and returns once it is subscribed (it has seen
    /// a probe published after it started), with what it received before.
    async fn start(port: u16) -> (Sub, Vec<Received>) {
        let mut child = tokio::process::Command::new(binary("mosquitto_sub"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
            .args(["-F", "%r %t %p", "-t", &format!("{PREFIX}/#")])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start mosquitto_sub");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut parts = line.splitn(3, ' ');
                let retained = parts.next() == Some("1");
                let topic = parts.next().unwrap_or_default().to_owned();
                let payload = parts.next().unwrap_or_default().to_owned();
                if tx
                    .send(Received {
                        retained,
                        topic,
                        payload,
                    })
                    .is_err()
                {
                    break;
                }
            }
        });
        let mut sub = Sub {
            _child: child,
            rx,
            port,
        };
        let before = sub.await_probe().await;
        (sub, before)
    }

    /// Publishes probes until one comes back; returns the messages before it.
    async fn await_probe(&mut self) -> Vec<Received> {
        let probe = format!("{PREFIX}/probe");
        let mut before = Vec::new();
        for _ in 0..50 {
            publish(self.port, &probe, "probe").await;
            let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
            while let Ok(Some(m)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
                if m.topic == probe {
                    return before;
                }
                before.push(m);
            }
        }
        panic!("mosquitto_sub never saw a probe within 15 s");
    }

    /// The next message on `topic`, skipping others.
    async fn next_on(&mut self, topic: &str) -> Received {
        timeout(WAIT, async {
            loop {
                let m = self.rx.recv().await.expect("mosquitto_sub exited");
                if m.topic == topic {
                    return m;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("nothing on `{topic}` within 15 s"))
    }
}

#[derive(Debug)]
struct NullSink;

impl SampleSink for NullSink {
    fn deliver(&self, _samples: Vec<Sample>, _arrival: Timestamp) -> Result<(), SinkClosed> {
        Ok(())
    }
}

fn model() -> Arc<Model> {
    let files = [SourceFile {
        path: PathBuf::from("model.toml"),
        text: MODEL.to_owned(),
    }];
    match twins::model::compile(&files) {
        Ok(m) => Arc::new(m),
        Err(d) => panic!("test model does not compile:\n{d}"),
    }
}

struct Twins {
    ctx: Arc<TwinContext>,
    sensor: ActorRef<TwinMsg>,
}

impl Twins {
    async fn start(model: Arc<Model>, feed: ChangeFeed) -> Twins {
        let ctx = Arc::new(TwinContext::new(model, Clock::system()).with_changes(feed));
        spawn_root(ctx.clone()).await.expect("root starts");
        let total = ctx.model.twins.len() as u64;
        for _ in 0..1500 {
            if TwinMetrics::get(&ctx.metrics.twins_started) >= total {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let i = ctx
            .model
            .twins
            .iter()
            .position(|t| t.path.as_str() == SENSOR)
            .unwrap();
        let sensor = ctx.actor_of(i).expect("sensor twin running");
        Twins { ctx, sensor }
    }

    fn send(&self, value: f64) {
        let sensor_class = self.ctx.model.class_by_name("Sensor").unwrap();
        let now = self.ctx.clock.now();
        self.sensor
            .cast(TwinMsg::Samples(SampleBatch {
                samples: vec![
                    PropSample {
                        prop: sensor_class.prop_index("value").unwrap(),
                        value: Value::F64(value),
                        source_ts: Timestamp::from_millis(1_700_000_000_000 + value as i64),
                        quality: Quality::Good,
                    },
                    PropSample {
                        prop: sensor_class.prop_index("mode").unwrap(),
                        value: Value::Enum(1),
                        source_ts: now,
                        quality: Quality::Good,
                    },
                ],
                arrival: now,
            }))
            .expect("twin accepts samples");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twin_state_and_alarms_reach_mosquitto_sub() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = Broker::start(dir.path(), port);
    let model = model();
    let feed = ChangeFeed::new(4096);
    let twins = Twins::start(model.clone(), feed.clone()).await;

    let table: toml::Table = toml::from_str(&format!(
        r#"
        host = "127.0.0.1"
        port = {port}
        client_id = "twinrt-nb-{port}"
        [northbound]
        prefix = "{PREFIX}"
        retain = true
        qos = 1
        interval = "1s"
        "#
    ))
    .unwrap();
    let env = SourceEnv {
        clock: Clock::system(),
        model: model.clone(),
        changes: feed.clone(),
    };
    let mut source = Factory.build("mqtt", &table, &env).expect("valid config");
    source.bind(Vec::new()).unwrap();
    let stats = source.stats().expect("northbound stats");
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(source.run(Arc::new(NullSink), stop_rx));
    for _ in 0..1500 {
        if feed.has_subscribers() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        feed.has_subscribers(),
        "the publisher subscribed to the feed"
    );

    let (mut live, _) = Sub::start(port).await;
    let state_topic = format!("{PREFIX}/{SENSOR}");

    // A state: every property, with unit, quality and RFC 3339 time.
    twins.send(1.0);
    let m = live.next_on(&state_topic).await;
    let j = m.json();
    assert_eq!(j["path"], SENSOR);
    assert_eq!(j["class"], "Sensor");
    assert!(j["seq"].as_u64().is_some(), "{j}");
    assert_eq!(j["props"]["value"]["value"], 1.0);
    assert_eq!(j["props"]["value"]["unit"], "kW");
    assert_eq!(j["props"]["value"]["quality"], "good");
    assert_eq!(j["props"]["value"]["ts"], "2023-11-14T22:13:20.001Z");
    assert_eq!(j["props"]["mode"]["value"], "auto");
    assert_eq!(j["props"]["mode"]["unit"], Json::Null);
    let first_seq = j["seq"].as_u64().unwrap();

    // Many changes within one interval: one message, the latest values.
    // (A flush just happened; 20 casts take far less than the 1 s interval.)
    for v in 2..=21 {
        twins.send(f64::from(v));
    }
    let m = live.next_on(&state_topic).await;
    let j = m.json();
    assert_eq!(
        j["props"]["value"]["value"], 21.0,
        "the next state after a burst carries its last value: {j}"
    );
    assert!(j["seq"].as_u64().unwrap() > first_seq);
    let coalesced = stats
        .stats()
        .iter()
        .find(|s| s.name == "mqtt_northbound_states_coalesced")
        .unwrap()
        .value;
    assert!(coalesced >= 1.0, "coalesced {coalesced}");

    // An alarm transition: at once, with its priority.
    twins.send(150.0);
    let m = live.next_on(&format!("{state_topic}/alarms/high")).await;
    let j = m.json();
    assert_eq!(j["from"], "normal");
    assert_eq!(j["to"], "active_unacked");
    assert_eq!(j["mode"], "enabled");
    assert_eq!(j["cause"], "condition_raised");
    assert_eq!(j["priority"], "high");
    assert!(j["at"].as_str().unwrap().ends_with('Z'), "{j}");
    let m = live.next_on(&state_topic).await;
    assert_eq!(m.json()["props"]["value"]["value"], 150.0);

    // A late subscriber gets the retained state, and no alarm.
    let (_late, retained) = Sub::start(port).await;
    let states: Vec<_> = retained.iter().filter(|m| m.topic == state_topic).collect();
    assert_eq!(states.len(), 1, "{retained:#?}");
    assert!(states[0].retained);
    assert_eq!(states[0].json()["props"]["value"]["value"], 150.0);
    assert!(
        !retained.iter().any(|m| m.topic.contains("/alarms/")),
        "alarms are never retained: {retained:#?}"
    );

    assert!(stat_of(&*stats, "mqtt_northbound_alarms_published") >= 1.0);
    assert!(stat_of(&*stats, "mqtt_northbound_states_published") >= 3.0);
    assert_eq!(stat_of(&*stats, "mqtt_northbound_lagged_shed"), 0.0);
    stop_tx.send(true).unwrap();
    timeout(WAIT, task).await.unwrap().unwrap().unwrap();
}

fn stat_of(stats: &dyn adapters::SourceStats, name: &str) -> f64 {
    stats
        .stats()
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no stat {name}"))
        .value
}

/// The last state on `topic`: retained when `mosquitto_sub` started, or the
/// next one published.
async fn latest_state(port: u16, topic: &str) -> Received {
    let (mut sub, before) = Sub::start(port).await;
    match before.into_iter().rev().find(|m| m.topic == topic) {
        Some(m) => m,
        None => sub.next_on(topic).await,
    }
}

// Current-thread runtime: the twin works through its mailbox before the
// publisher runs, so a burst overflows a feed of capacity 1.
#[tokio::test]
async fn lag_is_shed_and_states_wait_out_a_broker_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let broker = Broker::start(dir.path(), port);
    let model = model();
    let feed = ChangeFeed::new(1);
    let twins = Twins::start(model.clone(), feed.clone()).await;
    let config: MqttConfig = toml::from_str(&format!(
        r#"
        host = "127.0.0.1"
        port = {port}
        client_id = "twinrt-nb-restart-{port}"
        keep_alive = "1s"
        [northbound]
        prefix = "{PREFIX}"
        retain = true
        interval = "100ms"
        "#
    ))
    .unwrap();
    let config = config.validate().unwrap().config;
    let publisher =
        NorthboundPublisher::new("nb", &config, model, feed.clone()).expect("northbound");
    let metrics = publisher.metrics();
    let mut connected = publisher.connected();
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(publisher.run(stop_rx));
    timeout(WAIT, connected.wait_for(|c| *c))
        .await
        .expect("connected within 15 s")
        .unwrap();
    assert!(feed.has_subscribers());
    let state_topic = format!("{PREFIX}/{SENSOR}");

    // A burst beyond the feed's capacity: lost changes are counted, the
    // publisher goes on and publishes the latest state.
    for v in 1..=100 {
        twins.send(f64::from(v));
    }
    let m = latest_state(port, &state_topic).await;
    assert_eq!(m.json()["props"]["value"]["value"], 100.0);
    let lagged = NorthboundMetrics::get(&metrics.shed_lagged);
    assert!(lagged > 0, "a burst of 100 overflows a feed of 1");

    // Broker down: the state waits, and goes out after the reconnection.
    drop(broker);
    timeout(WAIT, connected.wait_for(|c| !*c))
        .await
        .expect("disconnection noticed within 15 s")
        .unwrap();
    twins.send(77.0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _broker = Broker::start(dir.path(), port);
    timeout(WAIT, connected.wait_for(|c| *c))
        .await
        .expect("reconnected within 15 s")
        .unwrap();
    let m = latest_state(port, &state_topic).await;
    assert_eq!(m.json()["props"]["value"]["value"], 77.0);
    assert!(NorthboundMetrics::get(&metrics.connection_errors) >= 1);
    assert_eq!(NorthboundMetrics::get(&metrics.reconnects), 1);

    stop_tx.send(true).unwrap();
    timeout(WAIT, task).await.unwrap().unwrap().unwrap();
}
