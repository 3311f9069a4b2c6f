//! Northbound publication: twin state and alarm transitions from the
//! node's [`ChangeFeed`] to the broker, on a connection of its own (client
//! id `CLIENT_ID-nb`, same broker, credentials and TLS as the source).
//!
//! # Topics and payloads
//!
//! A twin's state goes to `PREFIX/TWIN_PATH` as JSON, retained when
//! `northbound.retain` is set:
//!
//! ```json
//! {"path": "acme/r1/p1/l1/s1", "class": "Sensor", "seq": 42,
//!  "props": {"value": {"value": 71.5, "unit": "kW", "quality": "good",
//!                      "ts": "2026-11-21T07:47:05.123Z"}}}
//! ```
//!
//! - `value` is a JSON number, boolean or string, the state name of an enum
//!   property, or `null` (no value yet, or a non-finite number);
//! - `unit` is the property's unit symbol or `null`;
//! - `quality` is `good`, `uncertain(REASON)` or `bad(REASON)`;
//! - `ts` is the value's source time, RFC 3339 in UTC with milliseconds.
//!
//! States are coalesced: each twin's latest state is kept (one entry per
//! twin, so memory is bounded by the number of twins) and published at most
//! once per `northbound.interval`. While the broker is unreachable, states
//! keep coalescing and go out after the reconnection.
//!
//! An alarm transition goes to `PREFIX/TWIN_PATH/alarms/ALARM_NAME` at once,
//! never coalesced and never retained:
//!
//! ```json
//! {"from": "normal", "to": "active_unacked", "mode": "enabled",
//!  "cause": "condition_raised", "at": "2026-11-21T07:47:05.123Z",
//!  "priority": "high"}
//! ```
//!
//! `from`/`to` are ISA-18.2 states, `mode` the alarm's mode after the
//! transition (`enabled`, `shelved`, `suppressed`, `out_of_service`; a
//! shelved alarm also has `shelved_until`).
//!
//! # Shedding
//!
//! Nothing here stops the node. A publisher that falls behind the feed loses
//! the oldest changes ([`NorthboundMetrics::shed_lagged`]); publishes go
//! through rumqttc's bounded request queue, and an alarm transition that
//! finds it full is dropped ([`NorthboundMetrics::shed_alarms`]) while a
//! state waits for the next attempt ([`NorthboundMetrics::deferred_states`]).
//! Connection errors are retried with a backoff doubling from 100 ms to 5 s.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};
use serde_json::{Map, Value as Json, json};
use tokio::sync::{broadcast, watch};
use twins::Value;
use twins::actor::{ChangeFeed, TwinChange};
use twins::alarm::{AlarmMode, Transition};
use twins::model::Model;
use twins::sample::Slot;

use super::config::{MqttConfig, Northbound, Qos};
use crate::source::{SourceError, Stat, StatKind};

/// First pause after a connection error.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest pause between connection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Pause before retrying states deferred by a full queue.
const RETRY: Duration = Duration::from_millis(10);
/// Largest packet sent or accepted on the northbound connection.
const MAX_PACKET: usize = 1024 * 1024;

/// Counters of a northbound publisher.
#[derive(Debug, Default)]
pub struct NorthboundMetrics {
    /// Twin states handed to the broker connection.
    pub states_published: AtomicU64,
    /// State changes replaced by a newer state of the same twin before
    /// they were published.
    pub states_coalesced: AtomicU64,
    /// Publish attempts of a state that found the queue full (the state is
    /// kept and retried).
    pub deferred_states: AtomicU64,
    /// Alarm transitions handed to the broker connection.
    pub alarms_published: AtomicU64,
    /// Alarm transitions dropped because the queue was full.
    pub shed_alarms: AtomicU64,
    /// Changes lost because the publisher fell behind the change feed.
    pub shed_lagged: AtomicU64,
    /// Connection errors.
    pub connection_errors: AtomicU64,
    /// Connections after the first.
    pub reconnects: AtomicU64,
    /// States and alarm transitions dropped because their message would
    /// exceed the largest packet (1 MiB).
    pub oversize: AtomicU64,
}

impl NorthboundMetrics {
    fn bump(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// The counters as [`Stat`]s labelled with the source's name.
    pub fn stats(&self, source: &str) -> Vec<Stat> {
        let counters: [(&'static str, &'static str, &AtomicU64); 9] = [
            (
                "mqtt_northbound_states_published",
                "Twin states published northbound.",
                &self.states_published,
            ),
            (
                "mqtt_northbound_states_coalesced",
                "Twin states replaced by a newer one before publication.",
                &self.states_coalesced,
            ),
            (
                "mqtt_northbound_states_deferred",
                "Twin state publications deferred by a full queue.",
                &self.deferred_states,
            ),
            (
                "mqtt_northbound_alarms_published",
                "Alarm transitions published northbound.",
                &self.alarms_published,
            ),
            (
                "mqtt_northbound_alarms_shed",
                "Alarm transitions dropped by a full queue.",
                &self.shed_alarms,
            ),
            (
                "mqtt_northbound_lagged_shed",
                "Twin changes lost behind the change feed.",
                &self.shed_lagged,
            ),
            (
                "mqtt_northbound_connection_errors",
                "Northbound connection errors.",
                &self.connection_errors,
            ),
            (
                "mqtt_northbound_reconnects",
                "Northbound connections after the first.",
                &self.reconnects,
            ),
            (
                "mqtt_northbound_oversize",
                "Northbound messages dropped for exceeding the largest packet.",
                &self.oversize,
            ),
        ];
        counters
            .into_iter()
            .map(|(name, help, c)| Stat {
                name,
                help,
                kind: StatKind::Counter,
                labels: vec![("source", source.to_owned())],
                value: Self::get(c) as f64,
            })
            .collect()
    }
}

/// Publishes twin changes to the broker of an MQTT source.
pub struct NorthboundPublisher {
    name: String,
    config: MqttConfig,
    northbound: Northbound,
    model: Arc<Model>,
    changes: ChangeFeed,
    metrics: Arc<NorthboundMetrics>,
    connected: watch::Sender<bool>,
}

impl fmt::Debug for NorthboundPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NorthboundPublisher")
            .field("name", &self.name)
            .field("broker", &(&self.config.host, self.config.port))
            .field("prefix", &self.northbound.prefix)
            .finish()
    }
}

impl NorthboundPublisher {
    /// The publisher of source `name`; `None` when it has no `northbound`.
    /// `config` should be validated.
    pub fn new(
        name: impl Into<String>,
        config: &MqttConfig,
        model: Arc<Model>,
        changes: ChangeFeed,
    ) -> Option<NorthboundPublisher> {
        let northbound = config.northbound.clone()?;
        Some(NorthboundPublisher {
            name: name.into(),
            config: config.clone(),
            northbound,
            model,
            changes,
            metrics: Arc::new(NorthboundMetrics::default()),
            connected: watch::Sender::new(false),
        })
    }

    /// The publisher's counters; they keep counting while it runs.
    pub fn metrics(&self) -> Arc<NorthboundMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Whether the broker has acknowledged the current connection.
    pub fn connected(&self) -> watch::Receiver<bool> {
        self.connected.subscribe()
    }

    fn options(&self) -> Result<MqttOptions, SourceError> {
        let c = &self.config;
        let mut o = MqttOptions::new(format!("{}-nb", c.client_id), c.host.clone(), c.port);
        o.set_keep_alive(c.keep_alive);
        o.set_clean_session(true);
        o.set_max_packet_size(MAX_PACKET, MAX_PACKET);
        if let Some(user) = &c.username {
            o.set_credentials(user.clone(), c.password.clone().unwrap_or_default());
        }
        match super::tls::transport(c) {
            Ok(Some(t)) => {
                o.set_transport(t);
            }
            Ok(None) => {}
            Err(e) => {
                return Err(SourceError::Failed {
                    source_name: self.name.clone(),
                    message: e.to_string(),
                });
            }
        }
        Ok(o)
    }

    /// Subscribes to the change feed and publishes until `shutdown` fires.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), SourceError> {
        let options = self.options()?;
        let twins = self.model.twins.len();
        // The queue toward rumqttc: room for one state of every twin, within reason.
        let capacity = twins.clamp(64, 4096);
        let (client, eventloop) = AsyncClient::new(options, capacity);
        let mut feed = self.changes.subscribe();
        // Aborted when this future ends or is dropped (the composite source
        // drops it when the subscriber fails).
        let mut driver = AbortOnDrop(tokio::spawn(drive(
            eventloop,
            self.name.clone(),
            format!("{}:{}", self.config.host, self.config.port),
            Arc::clone(&self.metrics),
            self.connected.clone(),
        )));
        let mut connected = self.connected.subscribe();
        let mut tick = tokio::time::interval(self.northbound.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut run = Running {
            publisher: &self,
            client: &client,
            qos: match self.northbound.qos {
                Qos::AtMostOnce => QoS::AtMostOnce,
                Qos::AtLeastOnce => QoS::AtLeastOnce,
            },
            pending: vec![None; twins],
            dirty: Vec::new(),
            retry: false,
        };
        let mut feed_open = true;
        loop {
            if *shutdown.borrow() {
                break;
            }
            tokio::select! {
                _ = shutdown.changed() => break,
                change = feed.recv(), if feed_open => match change {
                    Ok(change) => run.change(&change),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        NorthboundMetrics::bump(&self.metrics.shed_lagged, n);
                        tracing::warn!(source = %self.name, lost = n, "northbound publisher fell behind the change feed");
                    }
                    // The node is stopping; publish what is pending and wait.
                    Err(broadcast::error::RecvError::Closed) => feed_open = false,
                },
                _ = tick.tick() => run.flush(*connected.borrow_and_update()),
                _ = tokio::time::sleep(RETRY), if run.retry => run.flush(*connected.borrow_and_update()),
            }
        }
        // Best effort: the driver sends the disconnect, then stops.
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut driver.0).await;
        Ok(())
    }
}

/// A task aborted when its handle is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs rumqttc's event loop: reconnects with backoff, tracks the
/// connection, stops after sending a disconnect.
async fn drive(
    mut eventloop: EventLoop,
    name: String,
    broker: String,
    metrics: Arc<NorthboundMetrics>,
    connected: watch::Sender<bool>,
) {
    let mut backoff = BACKOFF_MIN;
    let mut connections = 0u64;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = BACKOFF_MIN;
                connections += 1;
                if connections > 1 {
                    NorthboundMetrics::bump(&metrics.reconnects, 1);
                }
                tracing::info!(source = %name, %broker, "mqtt northbound connected");
                connected.send_replace(true);
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                connected.send_replace(false);
                return;
            }
            Ok(_) => {}
            Err(e) => {
                NorthboundMetrics::bump(&metrics.connection_errors, 1);
                connected.send_replace(false);
                tracing::warn!(source = %name, %broker, retry_in = ?backoff, "mqtt northbound connection error: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

struct Running<'a> {
    publisher: &'a NorthboundPublisher,
    client: &'a AsyncClient,
    qos: QoS,
    /// The latest unpublished state of each twin, by twin index.
    pending: Vec<Option<(u64, Arc<[Slot]>)>>,
    /// Twins with a pending state, in the order they changed.
    dirty: Vec<u32>,
    /// Whether a flush stopped at a full queue.
    retry: bool,
}

impl Running<'_> {
    fn change(&mut self, change: &TwinChange) {
        let p = self.publisher;
        match change {
            TwinChange::State { twin, seq, slots } => {
                let Some(entry) = self.pending.get_mut(*twin as usize) else {
                    return;
                };
                if entry.is_some() {
                    NorthboundMetrics::bump(&p.metrics.states_coalesced, 1);
                } else {
                    self.dirty.push(*twin);
                }
                *entry = Some((*seq, Arc::clone(slots)));
            }
            TwinChange::Alarm {
                twin,
                alarm,
                transition,
            } => {
                let Some((topic, payload)) = alarm_message(
                    &p.model,
                    &p.northbound.prefix,
                    *twin as usize,
                    *alarm,
                    transition,
                ) else {
                    return;
                };
                if oversize(&p.metrics, &p.name, &topic, &payload) {
                    return;
                }
                match self.client.try_publish(topic, self.qos, false, payload) {
                    Ok(()) => NorthboundMetrics::bump(&p.metrics.alarms_published, 1),
                    Err(e) => {
                        NorthboundMetrics::bump(&p.metrics.shed_alarms, 1);
                        tracing::warn!(source = %p.name, "northbound alarm transition dropped: {e}");
                    }
                }
            }
        }
    }

    /// Publishes the pending states, oldest change first, until the queue
    /// is full. Waits while the broker is not connected.
    fn flush(&mut self, connected: bool) {
        self.retry = false;
        if !connected {
            return;
        }
        let p = self.publisher;
        let mut sent = 0;
        for &twin in &self.dirty {
            let Some((seq, slots)) = &self.pending[twin as usize] else {
                sent += 1;
                continue;
            };
            let Some((topic, payload)) =
                state_message(&p.model, &p.northbound.prefix, twin as usize, *seq, slots)
            else {
                self.pending[twin as usize] = None;
                sent += 1;
                continue;
            };
            if oversize(&p.metrics, &p.name, &topic, &payload) {
                self.pending[twin as usize] = None;
                sent += 1;
                continue;
            }
            match self
                .client
                .try_publish(topic, self.qos, p.northbound.retain, payload)
            {
                Ok(()) => {
                    NorthboundMetrics::bump(&p.metrics.states_published, 1);
                    self.pending[twin as usize] = None;
                    sent += 1;
                }
                Err(_) => {
                    NorthboundMetrics::bump(&p.metrics.deferred_states, 1);
                    self.retry = true;
                    break;
                }
            }
        }
        self.dirty.drain(..sent);
    }
}

/// Whether a message is too large for the connection (rumqttc would fail
/// the connection over it); counts and logs it.
fn oversize(metrics: &NorthboundMetrics, name: &str, topic: &str, payload: &[u8]) -> bool {
    // Fixed header, topic length and packet id.
    if topic.len() + payload.len() + 16 <= MAX_PACKET {
        return false;
    }
    NorthboundMetrics::bump(&metrics.oversize, 1);
    tracing::warn!(
        source = %name,
        topic,
        bytes = payload.len(),
        "northbound message dropped: larger than {MAX_PACKET} bytes"
    );
    true
}

/// Topic and JSON payload of a twin's state; `None` for a twin index or
/// slot count the model does not know.
pub fn state_message(
    model: &Model,
    prefix: &str,
    twin: usize,
    seq: u64,
    slots: &[Slot],
) -> Option<(String, Vec<u8>)> {
    let def = model.twins.get(twin)?;
    let class = model.classes.get(def.class)?;
    if slots.len() != class.props.len() {
        return None;
    }
    let mut props = Map::with_capacity(slots.len());
    for (prop, slot) in class.props.iter().zip(slots) {
        props.insert(
            prop.name.clone(),
            json!({
                "value": value_json(&slot.value, &prop.states),
                "unit": prop.unit.as_ref().map(|u| u.to_string()),
                "quality": slot.quality.to_string(),
                "ts": slot.ts.to_string(),
            }),
        );
    }
    let body = json!({
        "path": def.path.as_str(),
        "class": class.name,
        "seq": seq,
        "props": props,
    });
    let topic = format!("{prefix}/{}", def.path.as_str());
    Some((topic, serde_json::to_vec(&body).ok()?))
}

/// Topic and JSON payload of an alarm transition; `None` for indices the
/// model does not know.
pub fn alarm_message(
    model: &Model,
    prefix: &str,
    twin: usize,
    alarm: u16,
    t: &Transition,
) -> Option<(String, Vec<u8>)> {
    let def = model.twins.get(twin)?;
    let class = model.classes.get(def.class)?;
    let a = class.alarms.get(usize::from(alarm))?;
    let priority = def
        .alarm_overrides
        .iter()
        .find(|o| o.alarm == alarm)
        .and_then(|o| o.priority)
        .unwrap_or(a.priority);
    let (mode, until) = match t.to.1 {
        AlarmMode::Enabled => ("enabled", None),
        AlarmMode::Shelved { until } => ("shelved", Some(until)),
        AlarmMode::Suppressed => ("suppressed", None),
        AlarmMode::OutOfService => ("out_of_service", None),
    };
    let mut body = json!({
        "from": serde_json::to_value(t.from.0).ok()?,
        "to": serde_json::to_value(t.to.0).ok()?,
        "mode": mode,
        "cause": serde_json::to_value(t.cause).ok()?,
        "at": t.at.to_string(),
        "priority": serde_json::to_value(priority).ok()?,
    });
    if let Some(until) = until {
        body["shelved_until"] = Json::String(until.to_string());
    }
    let topic = format!("{prefix}/{}/alarms/{}", def.path.as_str(), a.name);
    Some((topic, serde_json::to_vec(&body).ok()?))
}

fn value_json(v: &Value, states: &[String]) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::F64(x) => serde_json::Number::from_f64(*x).map_or(Json::Null, Json::Number),
        Value::I64(x) => Json::from(*x),
        Value::Bool(b) => Json::Bool(*b),
        Value::String(s) => Json::String(s.to_string()),
        Value::Enum(i) => match states.get(usize::from(*i)) {
            Some(name) => Json::String(name.clone()),
            None => Json::from(*i),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use twins::alarm::{AlarmState, Cause};
    use twins::model::SourceFile;
    use twins::{Quality, Reason, Timestamp};

    use super::*;

    fn model() -> Model {
        let text = r#"
            [class.Pump]
            tier = "device"
            [class.Pump.properties]
            flow = { unit = "m3/h" }
            state = { type = "enum", states = ["off", "on"] }
            [[class.Pump.alarms]]
            name = "dry"
            when = "flow < 1"
            priority = "medium"
            [class.E]
            tier = "enterprise"
            [class.R]
            tier = "region"
            [class.P]
            tier = "plant"
            [class.L]
            tier = "line"
            [enterprise]
            name = "acme"
            class = "E"
            [twin."r"]
            class = "R"
            [twin."r/p"]
            class = "P"
            [twin."r/p/l"]
            class = "L"
            [twin."r/p/l/p1"]
            class = "Pump"
        "#;
        twins::model::compile(&[SourceFile {
            path: PathBuf::from("m.toml"),
            text: text.to_owned(),
        }])
        .unwrap_or_else(|d| panic!("{d}"))
    }

    #[test]
    fn state_json_names_enums_and_nulls_non_finite_numbers() {
        let m = model();
        let twin = m
            .twins
            .iter()
            .position(|t| t.path.as_str() == "acme/r/p/l/p1")
            .unwrap();
        let ts = Timestamp::from_millis(1_700_000_000_000);
        let slots = [
            Slot::new(Value::F64(f64::NAN), Quality::Uncertain(Reason::Stale), ts),
            Slot::new(Value::Enum(1), Quality::Good, ts),
        ];
        let (topic, payload) = state_message(&m, "x/y", twin, 9, &slots).unwrap();
        assert_eq!(topic, "x/y/acme/r/p/l/p1");
        let j: Json = serde_json::from_slice(&payload).unwrap();
        assert_eq!(
            j,
            json!({"path": "acme/r/p/l/p1", "class": "Pump", "seq": 9, "props": {
                "flow": {"value": null, "unit": "m3/h", "quality": "uncertain(stale)",
                         "ts": "2023-11-14T22:13:20.000Z"},
                "state": {"value": "on", "unit": null, "quality": "good",
                          "ts": "2023-11-14T22:13:20.000Z"}}})
        );
        assert!(
            state_message(&m, "x", twin, 9, &slots[..1]).is_none(),
            "wrong slot count"
        );
        assert!(
            state_message(&m, "x", 99, 9, &slots).is_none(),
            "unknown twin"
        );
    }

    #[test]
    fn alarm_json_carries_mode_and_shelve_end() {
        let m = model();
        let twin = m
            .twins
            .iter()
            .position(|t| t.path.as_str() == "acme/r/p/l/p1")
            .unwrap();
        let until = Timestamp::from_millis(1_700_000_060_000);
        let t = Transition {
            from: (AlarmState::ActiveUnacked, AlarmMode::Enabled),
            to: (AlarmState::ActiveUnacked, AlarmMode::Shelved { until }),
            at: Timestamp::from_millis(1_700_000_000_000),
            cause: Cause::Shelved,
        };
        let (topic, payload) = alarm_message(&m, "x", twin, 0, &t).unwrap();
        assert_eq!(topic, "x/acme/r/p/l/p1/alarms/dry");
        let j: Json = serde_json::from_slice(&payload).unwrap();
        assert_eq!(
            j,
            json!({"from": "active_unacked", "to": "active_unacked", "mode": "shelved",
                   "cause": "shelved", "at": "2023-11-14T22:13:20.000Z", "priority": "medium",
                   "shelved_until": "2023-11-14T22:14:20.000Z"})
        );
        assert!(
            alarm_message(&m, "x", twin, 5, &t).is_none(),
            "unknown alarm"
        );
    }

    #[test]
    fn oversize_messages_are_counted() {
        let m = NorthboundMetrics::default();
        assert!(!oversize(&m, "s", "t", &[0; 1000]));
        assert!(oversize(&m, "s", "t", &vec![0; MAX_PACKET]));
        assert_eq!(NorthboundMetrics::get(&m.oversize), 1);
    }
}
