//! The MQTT client as a [`SampleSource`]: rumqttc's event loop calling the
//! sans-IO core ([`super::topic`], [`super::payload`]).
//!
//! # Binding
//!
//! A point's [`PointSpec::address`] is `TOPIC#POINT`:
//!
//! - `TOPIC` is a concrete topic (no `+` or `#`) that one of the configured
//!   subscriptions' templates matches; the first matching subscription
//!   decodes it.
//! - `POINT` is a point name of that subscription's payload format: a key of
//!   `payload.points` for `json`, or [`VALUE_POINT`] (`value`) for `number`.
//!
//! For example, with a subscription `plant/{site}/{device}/telemetry` whose
//! JSON points are `temp` and `flow`, the address
//! `plant/s1/pump7/telemetry#temp` binds the `temp` reading of pump 7.
//! Sparkplug B subscriptions cannot be bound yet: binding a point to one is a
//! [`BindError`].
//!
//! # Running
//!
//! The source subscribes every subscription's filter, with its QoS, on every
//! connection acknowledgement, so a restarted broker (or a lost session)
//! gets the subscriptions again. Each publish is decoded with its
//! subscription's format and the bound points are delivered as one batch,
//! quality Good, timestamped by the payload's time field when configured and
//! by the clock otherwise. Topics nobody bound, points nobody bound, payloads
//! that do not decode and QoS 1 redeliveries already applied are counted in
//! [`MqttMetrics`] and logged with the topic; none stops the source.
//! Connection errors are retried with a backoff doubling from 100 ms to 5 s.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS};
use tokio::sync::watch;
use twins::{Clock, PointId, Quality, Sample};

use super::config::{PayloadFormat, Qos, ValidConfig};
use super::payload::{DEFAULT_MAX_PAYLOAD, Decoded, VALUE_POINT, decode_json, decode_number};
use crate::source::{BindError, PointSpec, SampleSink, SampleSource, SourceError, SourceFuture};

/// First pause after a connection error.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest pause between connection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How many QoS 1 packet ids of the current connection are remembered to
/// recognise redeliveries.
const RECENT_PKIDS: usize = 256;

/// Counters of an MQTT source, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct MqttMetrics {
    /// Publish packets received.
    pub messages: AtomicU64,
    /// Samples delivered to the sink.
    pub samples: AtomicU64,
    /// Publishes on a topic no subscription template matches.
    pub rejected_unknown_topic: AtomicU64,
    /// Publishes on a subscribed topic no point is bound to.
    pub rejected_unbound_topic: AtomicU64,
    /// Decoded points no binding asked for.
    pub rejected_unbound_point: AtomicU64,
    /// Payloads that could not be decoded.
    pub rejected_decode: AtomicU64,
    /// QoS 1 redeliveries of a packet already applied.
    pub rejected_duplicate: AtomicU64,
    /// Bound points a decoded payload did not carry (or carried as `null`).
    pub missing_points: AtomicU64,
    /// Connections after the first.
    pub reconnects: AtomicU64,
    /// Connection errors.
    pub connection_errors: AtomicU64,
}

impl MqttMetrics {
    fn bump(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Why a message, or part of one, was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RejectKind {
    UnknownTopic,
    UnboundTopic,
    UnboundPoint,
    Decode,
    Duplicate,
}

/// One rejected message or point: emits the log record and bumps the
/// counter together.
struct Rejected<'a> {
    source: &'a str,
    topic: &'a str,
    kind: RejectKind,
    detail: &'a dyn fmt::Display,
}

impl Rejected<'_> {
    fn emit(self, m: &MqttMetrics) {
        let (counter, what) = match self.kind {
            RejectKind::UnknownTopic => (&m.rejected_unknown_topic, "no subscription matches"),
            RejectKind::UnboundTopic => (&m.rejected_unbound_topic, "no point is bound"),
            RejectKind::UnboundPoint => (&m.rejected_unbound_point, "point not bound"),
            RejectKind::Decode => (&m.rejected_decode, "payload rejected"),
            RejectKind::Duplicate => (&m.rejected_duplicate, "redelivery already applied"),
        };
        MqttMetrics::bump(counter, 1);
        match self.kind {
            RejectKind::UnknownTopic | RejectKind::Decode => tracing::warn!(
                source = self.source,
                topic = self.topic,
                "mqtt message rejected, {what}: {}",
                self.detail
            ),
            _ => tracing::debug!(
                source = self.source,
                topic = self.topic,
                "mqtt message rejected, {what}: {}",
                self.detail
            ),
        }
    }
}

/// Connection state of a running source, observable through
/// [`MqttSource::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MqttStatus {
    /// Whether the broker has acknowledged the current connection.
    pub connected: bool,
    /// Connections on which every subscription was acknowledged.
    pub subscribed: u64,
}

/// The bindings of one concrete topic.
#[derive(Debug, Clone)]
struct TopicBinding {
    subscription: usize,
    points: HashMap<String, PointId>,
}

/// An MQTT subscriber delivering the points bound to it.
pub struct MqttSource {
    name: String,
    config: ValidConfig,
    clock: Clock,
    bindings: HashMap<String, TopicBinding>,
    metrics: Arc<MqttMetrics>,
    status: watch::Sender<MqttStatus>,
}

impl fmt::Debug for MqttSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttSource")
            .field("name", &self.name)
            .field(
                "broker",
                &(&self.config.config.host, self.config.config.port),
            )
            .field("topics", &self.bindings.len())
            .finish()
    }
}

impl MqttSource {
    pub fn new(name: impl Into<String>, config: ValidConfig, clock: Clock) -> Self {
        Self {
            name: name.into(),
            config,
            clock,
            bindings: HashMap::new(),
            metrics: Arc::new(MqttMetrics::default()),
            status: watch::Sender::new(MqttStatus::default()),
        }
    }

    /// The source's counters; they keep counting while it runs.
    pub fn metrics(&self) -> Arc<MqttMetrics> {
        Arc::clone(&self.metrics)
    }

    /// The connection state, updated while the source runs.
    pub fn status(&self) -> watch::Receiver<MqttStatus> {
        self.status.subscribe()
    }

    fn bind_one(&self, spec: &PointSpec) -> Result<(usize, String, String), String> {
        let Some((topic, point)) = spec.address.rsplit_once('#') else {
            return Err("expected `TOPIC#POINT`, found no `#`".to_owned());
        };
        if topic.is_empty() || topic.contains(['+', '#']) {
            return Err(format!(
                "topic `{topic}`: expected a concrete topic without `+` or `#`"
            ));
        }
        let Some(index) = self
            .config
            .topics
            .iter()
            .position(|t| t.match_topic(topic).is_some())
        else {
            return Err(format!(
                "topic `{topic}`: expected a topic a subscription matches, found none"
            ));
        };
        let known = match &self.config.config.subscriptions[index].payload {
            PayloadFormat::Json { points, .. } => points.contains_key(point),
            PayloadFormat::Number {} => point == VALUE_POINT,
            PayloadFormat::SparkplugB {} => {
                return Err(format!(
                    "topic `{topic}`: sparkplug_b subscriptions cannot be bound yet"
                ));
            }
        };
        if !known {
            return Err(format!(
                "topic `{topic}`: point `{point}` is not among the points of subscription `{}`",
                self.config.topics[index].as_str()
            ));
        }
        Ok((index, topic.to_owned(), point.to_owned()))
    }
}

impl SampleSource for MqttSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn bind(&mut self, points: Vec<PointSpec>) -> Result<(), Vec<BindError>> {
        let mut errors = Vec::new();
        let mut bindings: HashMap<String, TopicBinding> = HashMap::new();
        for (i, spec) in points.iter().enumerate() {
            let error = |message: String| BindError {
                source_name: self.name.clone(),
                twin: spec.twin.clone(),
                prop: spec.prop.clone(),
                address: spec.address.clone(),
                message,
            };
            match self.bind_one(spec) {
                Ok((subscription, topic, point)) => {
                    let entry = bindings.entry(topic).or_insert_with(|| TopicBinding {
                        subscription,
                        points: HashMap::new(),
                    });
                    let id = PointId(i as u32);
                    if entry.points.insert(point.clone(), id).is_some() {
                        errors.push(error(format!(
                            "point `{point}` is bound twice: expected one binding per address"
                        )));
                    }
                }
                Err(message) => errors.push(error(message)),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        self.bindings = bindings;
        Ok(())
    }

    fn run(
        self: Box<Self>,
        sink: Arc<dyn SampleSink>,
        shutdown: watch::Receiver<bool>,
    ) -> SourceFuture {
        Box::pin(self.run_loop(sink, shutdown))
    }
}

/// Packet ids of QoS 1 publishes applied on the current connection, bounded.
#[derive(Debug, Default)]
struct RecentPkids {
    order: VecDeque<u16>,
    set: HashSet<u16>,
}

impl RecentPkids {
    fn clear(&mut self) {
        self.order.clear();
        self.set.clear();
    }

    /// Records `pkid`; false if it was already there.
    fn insert(&mut self, pkid: u16) -> bool {
        if !self.set.insert(pkid) {
            return false;
        }
        self.order.push_back(pkid);
        if self.order.len() > RECENT_PKIDS
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

fn qos(q: Qos) -> QoS {
    match q {
        Qos::AtMostOnce => QoS::AtMostOnce,
        Qos::AtLeastOnce => QoS::AtLeastOnce,
    }
}

struct Running {
    source: MqttSource,
    sink: Arc<dyn SampleSink>,
    client: AsyncClient,
    seq: u64,
    pkids: RecentPkids,
    pending_subacks: usize,
    connections: u64,
}

impl MqttSource {
    fn options(&self) -> MqttOptions {
        let c = &self.config.config;
        let mut o = MqttOptions::new(c.client_id.clone(), c.host.clone(), c.port);
        o.set_keep_alive(c.keep_alive);
        o.set_clean_session(c.clean_session);
        if let Some(user) = &c.username {
            o.set_credentials(user.clone(), c.password.clone().unwrap_or_default());
        }
        o
    }

    async fn run_loop(
        self: Box<Self>,
        sink: Arc<dyn SampleSink>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), SourceError> {
        let mut options = self.options();
        match super::tls::transport(&self.config.config) {
            Ok(Some(transport)) => {
                options.set_transport(transport);
            }
            Ok(None) => {}
            Err(e) => {
                return Err(SourceError::Failed {
                    source_name: self.name.clone(),
                    message: e.to_string(),
                });
            }
        }
        let capacity = self.config.config.subscriptions.len() * 2 + 16;
        let (client, mut eventloop): (AsyncClient, EventLoop) = AsyncClient::new(options, capacity);
        let mut run = Running::new(*self, sink, client);
        let mut backoff = BACKOFF_MIN;
        loop {
            if *shutdown.borrow() {
                break;
            }
            let event = tokio::select! {
                _ = shutdown.changed() => break,
                event = eventloop.poll() => event,
            };
            match event {
                Ok(Event::Incoming(packet)) => {
                    backoff = BACKOFF_MIN;
                    run.incoming(packet)?;
                }
                Ok(Event::Outgoing(_)) => {}
                Err(e) => {
                    let src = &run.source;
                    MqttMetrics::bump(&src.metrics.connection_errors, 1);
                    src.status.send_modify(|s| s.connected = false);
                    tracing::warn!(
                        source = %src.name,
                        broker = %format_args!("{}:{}", src.config.config.host, src.config.config.port),
                        retry_in = ?backoff,
                        "mqtt connection error: {e}"
                    );
                    tokio::select! {
                        _ = shutdown.changed() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        // Best effort: the broker drops the session either way.
        let _ = run.client.try_disconnect();
        Ok(())
    }
}

impl Running {
    fn new(source: MqttSource, sink: Arc<dyn SampleSink>, client: AsyncClient) -> Self {
        Self {
            source,
            sink,
            client,
            seq: 0,
            pkids: RecentPkids::default(),
            pending_subacks: 0,
            connections: 0,
        }
    }

    fn incoming(&mut self, packet: Packet) -> Result<(), SourceError> {
        match packet {
            Packet::ConnAck(_) => self.connected(),
            Packet::SubAck(_) => {
                if self.pending_subacks > 0 {
                    self.pending_subacks -= 1;
                    if self.pending_subacks == 0 {
                        self.source.status.send_modify(|s| s.subscribed += 1);
                    }
                }
                Ok(())
            }
            Packet::Publish(publish) => self.publish(publish),
            _ => Ok(()),
        }
    }

    fn connected(&mut self) -> Result<(), SourceError> {
        let src = &self.source;
        self.connections += 1;
        if self.connections > 1 {
            MqttMetrics::bump(&src.metrics.reconnects, 1);
        }
        self.pkids.clear();
        tracing::info!(source = %src.name, connections = self.connections, "mqtt connected");
        self.pending_subacks = 0;
        for (sub, template) in src
            .config
            .config
            .subscriptions
            .iter()
            .zip(&src.config.topics)
        {
            let filter = template.to_filter();
            if let Err(e) = self.client.try_subscribe(filter.clone(), qos(sub.qos)) {
                return Err(SourceError::Failed {
                    source_name: src.name.clone(),
                    message: format!("topic `{filter}`: subscribe failed: {e}"),
                });
            }
            self.pending_subacks += 1;
        }
        src.status.send_modify(|s| s.connected = true);
        if self.pending_subacks == 0 {
            src.status.send_modify(|s| s.subscribed += 1);
        }
        Ok(())
    }

    fn publish(&mut self, publish: Publish) -> Result<(), SourceError> {
        let src = &self.source;
        let m = &src.metrics;
        MqttMetrics::bump(&m.messages, 1);
        let topic = publish.topic.as_str();
        let reject = |kind, detail: &dyn fmt::Display| {
            Rejected {
                source: &src.name,
                topic,
                kind,
                detail,
            }
            .emit(m)
        };
        if publish.qos == QoS::AtLeastOnce && !self.pkids.insert(publish.pkid) && publish.dup {
            reject(
                RejectKind::Duplicate,
                &format_args!("packet id {}", publish.pkid),
            );
            return Ok(());
        }
        let Some(binding) = src.bindings.get(topic) else {
            if src
                .config
                .topics
                .iter()
                .any(|t| t.match_topic(topic).is_some())
            {
                reject(RejectKind::UnboundTopic, &"no binding names this topic");
            } else {
                reject(
                    RejectKind::UnknownTopic,
                    &"no subscription template matches",
                );
            }
            return Ok(());
        };
        let decoded = match &src.config.config.subscriptions[binding.subscription].payload {
            PayloadFormat::Json { points, timestamp } => decode_json(
                topic,
                &publish.payload,
                points,
                timestamp.as_deref(),
                DEFAULT_MAX_PAYLOAD,
            ),
            PayloadFormat::Number {} => decode_number(topic, &publish.payload, DEFAULT_MAX_PAYLOAD),
            // Bind refuses Sparkplug B topics, so none has a binding.
            PayloadFormat::SparkplugB {} => Ok(Decoded::default()),
        };
        let decoded = match decoded {
            Ok(d) => d,
            Err(e) => {
                reject(RejectKind::Decode, &e);
                return Ok(());
            }
        };
        let missing = decoded
            .missing
            .iter()
            .filter(|p| binding.points.contains_key(*p))
            .count();
        MqttMetrics::bump(&m.missing_points, missing as u64);
        let arrival = src.clock.now();
        let mut batch = Vec::with_capacity(decoded.points.len());
        for (point, value, ts) in decoded.points {
            let Some(&id) = binding.points.get(&point) else {
                reject(RejectKind::UnboundPoint, &format_args!("point `{point}`"));
                continue;
            };
            self.seq += 1;
            batch.push(Sample {
                point: id,
                value,
                source_ts: ts.unwrap_or(arrival),
                quality: Quality::Good,
                seq: self.seq,
            });
        }
        if batch.is_empty() {
            return Ok(());
        }
        let n = batch.len() as u64;
        self.sink
            .deliver(batch, arrival)
            .map_err(|_| SourceError::SinkClosed(src.name.clone()))?;
        MqttMetrics::bump(&m.samples, n);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use twins::{Timestamp, TwinPath, Value, ValueType};

    use super::*;
    use crate::SinkClosed;
    use crate::mqtt::MqttConfig;

    fn source() -> MqttSource {
        let config: MqttConfig = toml::from_str(
            r#"
            host = "127.0.0.1"
            client_id = "unit"
            [[subscriptions]]
            topic = "plant/{site}/{device}/telemetry"
            qos = 1
            payload = { format = "json", points = { temp = "/t", flow = "/f" } }
            [[subscriptions]]
            topic = "plant/{site}/{device}/level"
            payload = { format = "number" }
            [[subscriptions]]
            topic = "spBv1.0/{group}/+/{node}"
            payload = { format = "sparkplug_b" }
            "#,
        )
        .unwrap();
        MqttSource::new(
            "mqtt",
            config.validate().unwrap(),
            Clock::manual(Timestamp::from_millis(1000)),
        )
    }

    fn spec(address: &str) -> PointSpec {
        PointSpec {
            twin: TwinPath::parse("plant/s1/p1").unwrap(),
            prop: "p".to_owned(),
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

    #[derive(Debug, Default)]
    struct VecSink(Mutex<Vec<Sample>>);

    impl SampleSink for VecSink {
        fn deliver(&self, samples: Vec<Sample>, _arrival: Timestamp) -> Result<(), SinkClosed> {
            self.0.lock().unwrap().extend(samples);
            Ok(())
        }
    }

    #[test]
    fn bind_reports_every_bad_address() {
        let mut s = source();
        let errors = s
            .bind(vec![
                spec("plant/s1/p1/telemetry#temp"),
                spec("plant/s1/p1/telemetry"),
                spec("plant/+/p1/telemetry#temp"),
                spec("other/s1/p1#temp"),
                spec("plant/s1/p1/telemetry#pressure"),
                spec("plant/s1/p1/level#temp"),
                spec("spBv1.0/g/NDATA/n#temp"),
                spec("plant/s1/p1/telemetry#temp"),
            ])
            .unwrap_err();
        let messages: Vec<String> = errors.iter().map(|e| e.message.clone()).collect();
        assert_eq!(messages.len(), 7, "{messages:#?}");
        assert!(messages[0].contains("no `#`"));
        assert!(messages[1].contains("concrete topic"));
        assert!(messages[2].contains("topic `other/s1/p1`"));
        assert!(messages[3].contains("point `pressure`"));
        assert!(messages[4].contains("point `temp`"));
        assert!(messages[5].contains("sparkplug_b"));
        assert!(messages[6].contains("bound twice"));
    }

    #[test]
    fn publishes_apply_once_and_strangers_are_counted() {
        let mut s = source();
        s.bind(vec![
            spec("plant/s1/p1/telemetry#temp"),
            spec("plant/s1/p1/level#value"),
        ])
        .unwrap();
        let metrics = s.metrics();
        let (client, _eventloop) = AsyncClient::new(s.options(), 16);
        let sink = Arc::new(VecSink::default());
        let mut run = Running::new(s, sink.clone(), client);
        run.incoming(Packet::ConnAck(rumqttc::ConnAck::new(
            rumqttc::ConnectReturnCode::Success,
            false,
        )))
        .unwrap();
        let mut p = Publish::new(
            "plant/s1/p1/telemetry",
            QoS::AtLeastOnce,
            r#"{"t": 2, "f": 3}"#,
        );
        p.pkid = 7;
        run.incoming(Packet::Publish(p.clone())).unwrap();
        p.dup = true;
        run.incoming(Packet::Publish(p.clone())).unwrap();
        // The broker may reuse an id once acknowledged: not a redelivery.
        p.dup = false;
        run.incoming(Packet::Publish(p.clone())).unwrap();
        run.incoming(Packet::Publish(Publish::new(
            "elsewhere",
            QoS::AtMostOnce,
            "1",
        )))
        .unwrap();
        run.incoming(Packet::Publish(Publish::new(
            "plant/s1/p1/level",
            QoS::AtMostOnce,
            "not a number",
        )))
        .unwrap();
        run.incoming(Packet::Publish(Publish::new(
            "plant/s1/p1/telemetry",
            QoS::AtMostOnce,
            r#"{"f": 3}"#,
        )))
        .unwrap();
        // A new connection forgets the ids: a redelivery of 7 applies again.
        run.incoming(Packet::ConnAck(rumqttc::ConnAck::new(
            rumqttc::ConnectReturnCode::Success,
            false,
        )))
        .unwrap();
        p.dup = true;
        run.incoming(Packet::Publish(p)).unwrap();

        let samples = sink.0.lock().unwrap();
        assert_eq!(samples.len(), 3);
        assert!(samples.iter().all(|x| x.point == PointId(0)
            && x.value == Value::F64(2.0)
            && x.quality == Quality::Good
            && x.source_ts == Timestamp::from_millis(1000)));
        assert_eq!(samples.iter().map(|x| x.seq).collect::<Vec<_>>(), [1, 2, 3]);
        let get = MqttMetrics::get;
        assert_eq!(get(&metrics.messages), 7);
        assert_eq!(get(&metrics.samples), 3);
        assert_eq!(get(&metrics.rejected_duplicate), 1);
        assert_eq!(get(&metrics.rejected_unknown_topic), 1);
        assert_eq!(get(&metrics.rejected_decode), 1);
        assert_eq!(get(&metrics.rejected_unbound_point), 4);
        assert_eq!(get(&metrics.missing_points), 1);
        assert_eq!(get(&metrics.reconnects), 1);
    }

    #[test]
    fn recent_pkids_are_bounded_and_forget_the_oldest() {
        let mut r = RecentPkids::default();
        assert!(r.insert(1));
        assert!(!r.insert(1));
        for p in 2..=(RECENT_PKIDS as u16 + 1) {
            assert!(r.insert(p));
        }
        assert_eq!(r.set.len(), RECENT_PKIDS);
        assert!(r.insert(1), "the oldest id was forgotten");
        r.clear();
        assert!(r.insert(5));
    }
}
