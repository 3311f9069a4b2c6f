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
//!
//! A point fed by a Sparkplug B edge node binds by
//! `spBv1.0/GROUP/EDGE#METRIC` (a metric of the node itself) or
//! `spBv1.0/GROUP/EDGE/DEVICE#METRIC` (a metric of one of its devices).
//! `METRIC` is the metric's name as the births declare it and runs to the
//! end of the address, so it may hold `/` (`Node Control/Rebirth`). The
//! first subscription matching the node's (or device's) data topic
//! (`spBv1.0/GROUP/NDATA/EDGE`, `spBv1.0/GROUP/DDATA/EDGE/DEVICE`) must be a
//! `sparkplug_b` one and must also match its birth and death topics, as
//! `spBv1.0/{group}/#` or `spBv1.0/plant1/+/{edge}/#` do.
//!
//! Every value is checked against its point before delivery: it must fit the
//! point's type (numbers and `true`/`false` convert where nothing is lost:
//! an integral number to `i64`, 0 or 1 to `bool`, a state name or index to
//! `enum`) and lie within its `range`, bounds included. A value that does not
//! is counted in [`MqttMetrics::rejected_type`] or
//! [`MqttMetrics::rejected_out_of_range`] and logged with the topic; the
//! other points of the message are still delivered.
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
//!
//! A QoS 1 redelivery (DUP set) is dropped when its topic and payload match
//! one of the last 4,096 QoS 1 publishes, on this connection or an earlier
//! one: rumqttc acknowledges on
//! receipt, so an acknowledgement lost with a connection brings an applied
//! message back on the next one. A DUP=0 publish is always applied. The
//! price: a DUP=1 redelivery of a message never received, identical in
//! topic and payload to a recent one, is dropped too; for values without
//! their own timestamp that loses nothing but an arrival time.
//!
//! # Sparkplug B
//!
//! Messages on a `sparkplug_b` subscription go through the host state
//! machine ([`super::sparkplug::Host`]): NBIRTH and DBIRTH declare metric
//! names, aliases and types and deliver their values; NDATA and DDATA
//! deliver values, by name or by alias, timestamped by the metric's (or
//! else the payload's) timestamp. A message from a node or device not born,
//! a sequence number that is not the previous one plus 1, or an alias no
//! birth declared is not applied: the source publishes a rebirth request
//! (`spBv1.0/GROUP/NCMD/EDGE` with `Node Control/Rebirth` = true, at most one
//! per node every [`REBIRTH_HOLDOFF`] until the node rebirths) and ignores
//! the node's data until its NBIRTH. A seq gap also marks the node's points
//! bad, as its state is unknown. An NDEATH whose `bdSeq` matches the node's
//! current birth, or a DDEATH, delivers every point bound to the node (and
//! its devices) or device as `Bad(comm_failure)`; an NDEATH of an earlier
//! session is ignored.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prost::Message as _;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS};
use tokio::sync::watch;
use twins::{Clock, PointId, Quality, Reason, Sample, Timestamp, Value, ValueType};

use super::config::{PayloadFormat, Qos, ValidConfig};
use super::payload::{DEFAULT_MAX_PAYLOAD, VALUE_POINT, decode_json, decode_number};
use super::sparkplug::{
    self, Action, BD_SEQ, Host, MessageType, NAMESPACE, NodeKey, RebirthReason, SparkplugError,
    SparkplugTopic,
};
use crate::source::{
    BindError, PointSpec, SampleSink, SampleSource, SourceError, SourceFuture, SourceStats, Stat,
    StatKind,
};

/// First pause after a connection error.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest pause between connection attempts.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How many digests of QoS 1 publishes are remembered across connections
/// to recognise redeliveries after a reconnect (a broker redelivers at most
/// what it had in flight, plus what it sent but had not yet seen acked).
const RECENT_DIGESTS: usize = 4096;
/// Largest MQTT packet taken from the broker; payloads between
/// [`DEFAULT_MAX_PAYLOAD`] and this are rejected one by one.
const MAX_PACKET: usize = 4 * DEFAULT_MAX_PAYLOAD;
/// Shortest pause between two rebirth requests to one edge node that has
/// not rebirthed in between.
pub const REBIRTH_HOLDOFF: Duration = Duration::from_secs(2);

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
    /// Values outside their point's `range`, not delivered.
    pub rejected_out_of_range: AtomicU64,
    /// Values of a type their point cannot take (a string or an object for
    /// a number, 7 for a bool), not delivered.
    pub rejected_type: AtomicU64,
    /// Sparkplug NBIRTH and DBIRTH messages taken in.
    pub sparkplug_births: AtomicU64,
    /// Sparkplug NDEATH and DDEATH messages that took a node or device
    /// offline.
    pub sparkplug_deaths: AtomicU64,
    /// Sparkplug NDEATH messages of an earlier session (their `bdSeq` does
    /// not match the current birth) and DDEATH of devices not born, ignored.
    pub sparkplug_stale_deaths: AtomicU64,
    /// Sparkplug rebirth requests (NCMD `Node Control/Rebirth`) published.
    pub sparkplug_rebirth_requests: AtomicU64,
    /// Sparkplug messages whose `seq` was not the previous one plus 1.
    pub sparkplug_seq_gaps: AtomicU64,
    /// Sparkplug data naming an alias or metric no birth declared.
    pub sparkplug_unknown_metrics: AtomicU64,
    /// Sparkplug messages from a node or device not born (before its birth,
    /// or after a gap until its rebirth), not applied.
    pub sparkplug_not_born: AtomicU64,
    /// Sparkplug metrics whose value could not be read (datasets, bytes,
    /// unsigned 64-bit values beyond `i64`), skipped.
    pub sparkplug_unreadable_metrics: AtomicU64,
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
    OutOfRange,
    Type,
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
            RejectKind::OutOfRange => (&m.rejected_out_of_range, "value out of range"),
            RejectKind::Type => (&m.rejected_type, "value of the wrong type"),
        };
        MqttMetrics::bump(counter, 1);
        match self.kind {
            RejectKind::UnknownTopic
            | RejectKind::Decode
            | RejectKind::OutOfRange
            | RejectKind::Type => tracing::warn!(
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

/// The Sparkplug bindings of one edge node: metric name → point, for the
/// node itself (`None`) and each of its devices.
type NodeBindings = BTreeMap<Option<String>, HashMap<String, PointId>>;

/// Where an address points.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Binding {
    Topic {
        subscription: usize,
        topic: String,
        point: String,
    },
    Sparkplug {
        node: NodeKey,
        device: Option<String>,
        metric: String,
    },
}

/// What a bound point accepts: its type, range and enum states.
#[derive(Debug, Clone)]
struct PointCheck {
    ty: ValueType,
    range: Option<(f64, f64)>,
    states: Vec<String>,
}

/// Why a value does not fit its point.
#[derive(Debug, Clone, PartialEq)]
enum Misfit {
    Type(String),
    Range { value: f64, lo: f64, hi: f64 },
}

impl fmt::Display for Misfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Misfit::Type(m) => f.write_str(m),
            Misfit::Range { value, lo, hi } => {
                write!(f, "expected a value from {lo} to {hi}, found {value}")
            }
        }
    }
}

/// Largest magnitude an `f64` holds as an exact `i64` conversion bound
/// (2^63, exclusive).
const I64_BOUND: f64 = 9_223_372_036_854_775_808.0;

impl PointCheck {
    fn of(spec: &PointSpec) -> Self {
        Self {
            ty: spec.ty,
            range: spec.range,
            states: spec.states.clone(),
        }
    }

    /// The value converted to the point's type, if that loses nothing, and
    /// within its range.
    fn admit(&self, value: Value) -> Result<Value, Misfit> {
        let wrong = |v: &Value| {
            Misfit::Type(format!(
                "expected {}, found {} `{v}`",
                self.ty,
                v.value_type().map_or("null", ValueType::name)
            ))
        };
        let v = match (self.ty, value) {
            (_, Value::Null) => return Ok(Value::Null),
            (ValueType::F64, Value::F64(f)) => Value::F64(f),
            (ValueType::F64, Value::I64(i)) => Value::F64(i as f64),
            (ValueType::F64, Value::Bool(b)) => Value::F64(f64::from(u8::from(b))),
            (ValueType::I64, Value::I64(i)) => Value::I64(i),
            (ValueType::I64, Value::F64(f))
                if f.fract() == 0.0 && (-I64_BOUND..I64_BOUND).contains(&f) =>
            {
                Value::I64(f as i64)
            }
            (ValueType::I64, Value::Bool(b)) => Value::I64(i64::from(b)),
            (ValueType::Bool, Value::Bool(b)) => Value::Bool(b),
            (ValueType::Bool, v @ (Value::F64(_) | Value::I64(_))) => match v.as_f64() {
                Some(0.0) => Value::Bool(false),
                Some(1.0) => Value::Bool(true),
                _ => return Err(wrong(&v)),
            },
            (ValueType::String, Value::String(s)) => Value::String(s),
            (ValueType::Enum, Value::Enum(e)) => Value::Enum(e),
            (ValueType::Enum, Value::String(s)) => {
                match self.states.iter().position(|st| **st == *s) {
                    Some(i) => Value::Enum(i as u16),
                    None => return Err(wrong(&Value::String(s))),
                }
            }
            (ValueType::Enum, v @ (Value::F64(_) | Value::I64(_))) => {
                let states = if self.states.is_empty() {
                    usize::from(u16::MAX) + 1
                } else {
                    self.states.len()
                };
                match v.as_f64() {
                    Some(x) if x.fract() == 0.0 && x >= 0.0 && x < states as f64 => {
                        Value::Enum(x as u16)
                    }
                    _ => return Err(wrong(&v)),
                }
            }
            (_, v) => return Err(wrong(&v)),
        };
        if let (Some((lo, hi)), Value::F64(_) | Value::I64(_)) = (self.range, &v)
            && let Some(x) = v.as_f64()
            && !(lo..=hi).contains(&x)
        {
            return Err(Misfit::Range { value: x, lo, hi });
        }
        Ok(v)
    }
}

/// An MQTT subscriber delivering the points bound to it.
pub struct MqttSource {
    name: String,
    config: ValidConfig,
    clock: Clock,
    bindings: HashMap<String, TopicBinding>,
    /// Sparkplug bindings by edge node.
    sparkplug: HashMap<NodeKey, NodeBindings>,
    /// Each bound point's type and range, by [`PointId`].
    checks: Vec<PointCheck>,
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
            sparkplug: HashMap::new(),
            checks: Vec::new(),
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

    /// The index of the first subscription whose template matches `topic`.
    fn subscription_of(&self, topic: &str) -> Option<usize> {
        self.config
            .topics
            .iter()
            .position(|t| t.match_topic(topic).is_some())
    }

    fn bind_one(&self, spec: &PointSpec) -> Result<Binding, String> {
        if spec
            .address
            .strip_prefix(NAMESPACE)
            .is_some_and(|rest| rest.starts_with('/'))
        {
            return self.bind_sparkplug(&spec.address);
        }
        let Some((topic, point)) = spec.address.rsplit_once('#') else {
            return Err("expected `TOPIC#POINT`, found no `#`".to_owned());
        };
        if topic.is_empty() || topic.contains(['+', '#']) {
            return Err(format!(
                "topic `{topic}`: expected a concrete topic without `+` or `#`"
            ));
        }
        let Some(index) = self.subscription_of(topic) else {
            return Err(format!(
                "topic `{topic}`: expected a topic a subscription matches, found none"
            ));
        };
        let known = match &self.config.config.subscriptions[index].payload {
            PayloadFormat::Json { points, .. } => points.contains_key(point),
            PayloadFormat::Number {} => point == VALUE_POINT,
            PayloadFormat::SparkplugB {} => {
                return Err(format!(
                    "topic `{topic}`: a sparkplug_b subscription matches it: expected an address \
                     `spBv1.0/GROUP/EDGE[/DEVICE]#METRIC`"
                ));
            }
        };
        if !known {
            return Err(format!(
                "topic `{topic}`: point `{point}` is not among the points of subscription `{}`",
                self.config.topics[index].as_str()
            ));
        }
        Ok(Binding::Topic {
            subscription: index,
            topic: topic.to_owned(),
            point: point.to_owned(),
        })
    }

    /// Binds `spBv1.0/GROUP/EDGE[/DEVICE]#METRIC`.
    fn bind_sparkplug(&self, address: &str) -> Result<Binding, String> {
        const FORM: &str = "`spBv1.0/GROUP/EDGE#METRIC` or `spBv1.0/GROUP/EDGE/DEVICE#METRIC`";
        let Some((path, metric)) = address.split_once('#') else {
            return Err(format!("expected {FORM}, found no `#`"));
        };
        let levels: Vec<&str> = path.split('/').collect();
        let (group, edge, device) = match levels.as_slice() {
            [_, g, e] => (*g, *e, None),
            [_, g, e, d] => (*g, *e, Some(*d)),
            _ => {
                return Err(format!(
                    "`{path}`: expected {FORM}, found {} topic levels",
                    levels.len()
                ));
            }
        };
        if [group, edge]
            .into_iter()
            .chain(device)
            .any(|l| l.is_empty() || l.contains('+'))
        {
            return Err(format!(
                "`{path}`: expected {FORM} with non-empty levels without `+` or `#`"
            ));
        }
        if metric.is_empty() {
            return Err(format!(
                "`{path}`: expected a metric name after `#`, found none"
            ));
        }
        let node_topic = |kind: &str| format!("{NAMESPACE}/{group}/{kind}/{edge}");
        let mut needed = vec![node_topic("NBIRTH"), node_topic("NDEATH")];
        let data = match device {
            None => node_topic("NDATA"),
            Some(d) => {
                needed.extend(["DBIRTH", "DDEATH"].map(|k| format!("{}/{d}", node_topic(k))));
                format!("{}/{d}", node_topic("DDATA"))
            }
        };
        let Some(index) = self.subscription_of(&data) else {
            return Err(format!(
                "expected a sparkplug_b subscription matching `{data}`, found none"
            ));
        };
        let template = self.config.topics[index].as_str();
        if !matches!(
            self.config.config.subscriptions[index].payload,
            PayloadFormat::SparkplugB {}
        ) {
            return Err(format!(
                "`{data}` is first matched by subscription `{template}`: expected a sparkplug_b one"
            ));
        }
        if let Some(missed) = needed
            .iter()
            .find(|t| self.subscription_of(t) != Some(index))
        {
            return Err(format!(
                "subscription `{template}` does not receive `{missed}`: expected a topic that \
                 matches births and deaths too, e.g. `spBv1.0/{{group}}/#`"
            ));
        }
        Ok(Binding::Sparkplug {
            node: NodeKey {
                group: group.to_owned(),
                node: edge.to_owned(),
            },
            device: device.map(str::to_owned),
            metric: metric.to_owned(),
        })
    }
}

/// [`MqttMetrics`] of one source as labelled counters (`mqtt_*`, label `source`).
#[derive(Debug)]
struct MqttStats {
    source: String,
    metrics: Arc<MqttMetrics>,
    status: watch::Receiver<MqttStatus>,
}

impl SourceStats for MqttStats {
    fn stats(&self) -> Vec<Stat> {
        let m = &self.metrics;
        let counters: [(&'static str, &'static str, &AtomicU64); 22] = [
            ("mqtt_messages", "publish packets received", &m.messages),
            ("mqtt_samples", "samples delivered to twins", &m.samples),
            (
                "mqtt_rejected_unknown_topic",
                "publishes no subscription matches",
                &m.rejected_unknown_topic,
            ),
            (
                "mqtt_rejected_unbound_topic",
                "publishes on a topic no point is bound to",
                &m.rejected_unbound_topic,
            ),
            (
                "mqtt_rejected_unbound_point",
                "decoded points no binding asked for",
                &m.rejected_unbound_point,
            ),
            (
                "mqtt_rejected_decode",
                "payloads that did not decode",
                &m.rejected_decode,
            ),
            (
                "mqtt_rejected_duplicate",
                "QoS 1 redeliveries already applied",
                &m.rejected_duplicate,
            ),
            (
                "mqtt_missing_points",
                "bound points a payload did not carry",
                &m.missing_points,
            ),
            (
                "mqtt_rejected_out_of_range",
                "values outside their point's range",
                &m.rejected_out_of_range,
            ),
            (
                "mqtt_rejected_type",
                "values of a type their point cannot take",
                &m.rejected_type,
            ),
            (
                "mqtt_sparkplug_births",
                "Sparkplug births taken in",
                &m.sparkplug_births,
            ),
            (
                "mqtt_sparkplug_deaths",
                "Sparkplug deaths that took a node or device offline",
                &m.sparkplug_deaths,
            ),
            (
                "mqtt_sparkplug_stale_deaths",
                "Sparkplug deaths of an earlier session, ignored",
                &m.sparkplug_stale_deaths,
            ),
            (
                "mqtt_sparkplug_rebirth_requests",
                "Sparkplug rebirth requests published",
                &m.sparkplug_rebirth_requests,
            ),
            (
                "mqtt_sparkplug_seq_gaps",
                "Sparkplug messages whose seq did not follow",
                &m.sparkplug_seq_gaps,
            ),
            (
                "mqtt_sparkplug_unknown_metrics",
                "Sparkplug data naming an undeclared metric",
                &m.sparkplug_unknown_metrics,
            ),
            (
                "mqtt_sparkplug_not_born",
                "Sparkplug messages from a node or device not born",
                &m.sparkplug_not_born,
            ),
            (
                "mqtt_sparkplug_unreadable_metrics",
                "Sparkplug metrics that could not be read",
                &m.sparkplug_unreadable_metrics,
            ),
            (
                "mqtt_reconnects",
                "connections after the first",
                &m.reconnects,
            ),
            (
                "mqtt_connection_errors",
                "connection errors",
                &m.connection_errors,
            ),
            (
                "mqtt_subscribed",
                "connections on which every subscription was acknowledged",
                &AtomicU64::new(self.status.borrow().subscribed),
            ),
            (
                "mqtt_connected",
                "whether the broker acknowledged the current connection",
                &AtomicU64::new(u64::from(self.status.borrow().connected)),
            ),
        ];
        counters
            .into_iter()
            .map(|(name, help, c)| Stat {
                name,
                help,
                kind: if name == "mqtt_connected" {
                    StatKind::Gauge
                } else {
                    StatKind::Counter
                },
                labels: vec![("source", self.source.clone())],
                value: MqttMetrics::get(c) as f64,
            })
            .collect()
    }
}

impl SampleSource for MqttSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn stats(&self) -> Option<Arc<dyn SourceStats>> {
        Some(Arc::new(MqttStats {
            source: self.name.clone(),
            metrics: self.metrics.clone(),
            status: self.status.subscribe(),
        }))
    }

    fn bind(&mut self, points: Vec<PointSpec>) -> Result<(), Vec<BindError>> {
        let mut errors = Vec::new();
        let mut bindings: HashMap<String, TopicBinding> = HashMap::new();
        let mut sparkplug: HashMap<NodeKey, NodeBindings> = HashMap::new();
        for (i, spec) in points.iter().enumerate() {
            let error = |message: String| BindError {
                source_name: self.name.clone(),
                twin: spec.twin.clone(),
                prop: spec.prop.clone(),
                address: spec.address.clone(),
                message,
            };
            let id = PointId(i as u32);
            let (points, point) = match self.bind_one(spec) {
                Ok(Binding::Topic {
                    subscription,
                    topic,
                    point,
                }) => {
                    let entry = bindings.entry(topic).or_insert_with(|| TopicBinding {
                        subscription,
                        points: HashMap::new(),
                    });
                    (&mut entry.points, point)
                }
                Ok(Binding::Sparkplug {
                    node,
                    device,
                    metric,
                }) => (
                    sparkplug
                        .entry(node)
                        .or_default()
                        .entry(device)
                        .or_default(),
                    metric,
                ),
                Err(message) => {
                    errors.push(error(message));
                    continue;
                }
            };
            if points.insert(point.clone(), id).is_some() {
                errors.push(error(format!(
                    "point `{point}` is bound twice: expected one binding per address"
                )));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        self.bindings = bindings;
        self.sparkplug = sparkplug;
        self.checks = points.iter().map(PointCheck::of).collect();
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

/// The last `capacity` distinct keys recorded, oldest forgotten first.
#[derive(Debug)]
struct Recent<T> {
    capacity: usize,
    order: VecDeque<T>,
    set: HashSet<T>,
}

impl<T: Copy + Eq + Hash> Recent<T> {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            order: VecDeque::with_capacity(capacity + 1),
            set: HashSet::with_capacity(capacity + 1),
        }
    }

    /// Records `key`; false if it was already there.
    fn insert(&mut self, key: T) -> bool {
        if !self.set.insert(key) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

/// A 64-bit digest of a publish's topic and payload, to recognise a
/// redelivery on a later connection, where packet ids start afresh.
fn digest(topic: &str, payload: &[u8]) -> u64 {
    // SipHash with fixed keys: the same on every run, and collisions among
    // a few thousand recent messages are out of reach (about 2^-40).
    let mut h = std::hash::DefaultHasher::new();
    topic.hash(&mut h);
    payload.hash(&mut h);
    h.finish()
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
    /// Digests of recent QoS 1 publishes, kept across connections.
    digests: Recent<u64>,
    pending_subacks: usize,
    connections: u64,
    /// Sparkplug host state of every edge node heard from.
    host: Host,
    /// When a rebirth was last requested of a node that has not rebirthed
    /// since.
    rebirths: HashMap<NodeKey, Timestamp>,
}

/// Where a publish goes.
enum Route {
    Topic,
    Sparkplug,
    Unbound,
    Unknown,
}

impl MqttSource {
    fn options(&self) -> MqttOptions {
        let c = &self.config.config;
        let mut o = MqttOptions::new(c.client_id.clone(), c.host.clone(), c.port);
        o.set_keep_alive(c.keep_alive);
        o.set_clean_session(c.clean_session);
        // rumqttc drops the connection on a packet over its limit (10 KiB
        // unless set): take packets well past the payload limit, so an
        // oversized payload is counted and skipped, not fatal.
        o.set_max_packet_size(MAX_PACKET, MAX_PACKET);
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
            digests: Recent::new(RECENT_DIGESTS),
            pending_subacks: 0,
            connections: 0,
            host: Host::new(),
            rebirths: HashMap::new(),
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
        if publish.qos == QoS::AtLeastOnce {
            // A redelivery (DUP set) is dropped if its topic and payload
            // came recently, on this connection or an earlier one: rumqttc
            // acknowledges on receipt, so an ack lost with the connection
            // brings the message back on the next one. Packet ids do not
            // tell: publishes of the old connection still buffered in
            // rumqttc are handled after the new ConnAck, and the broker
            // reuses their ids for other messages. A DUP=0 publish is always
            // applied.
            let new = self.digests.insert(digest(topic, &publish.payload));
            if publish.dup && !new {
                reject(
                    RejectKind::Duplicate,
                    &format_args!("packet id {}", publish.pkid),
                );
                return Ok(());
            }
        }
        let route = if src.bindings.contains_key(topic) {
            Route::Topic
        } else {
            match src.subscription_of(topic) {
                Some(i) => match src.config.config.subscriptions[i].payload {
                    PayloadFormat::SparkplugB {} => Route::Sparkplug,
                    _ => Route::Unbound,
                },
                None => Route::Unknown,
            }
        };
        match route {
            Route::Topic => self.topic_publish(&publish),
            Route::Sparkplug => self.sparkplug_publish(&publish),
            Route::Unbound => {
                reject(RejectKind::UnboundTopic, &"no binding names this topic");
                Ok(())
            }
            Route::Unknown => {
                reject(
                    RejectKind::UnknownTopic,
                    &"no subscription template matches",
                );
                Ok(())
            }
        }
    }

    /// A JSON or number publish on a bound topic.
    fn topic_publish(&mut self, publish: &Publish) -> Result<(), SourceError> {
        let src = &self.source;
        let m = &src.metrics;
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
        let Some(binding) = src.bindings.get(topic) else {
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
            // A Sparkplug topic has no topic binding: `publish` routes it.
            PayloadFormat::SparkplugB {} => return Ok(()),
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
        for (point, found) in &decoded.wrong_type {
            match binding.points.get(point) {
                Some(&id) => reject(
                    RejectKind::Type,
                    &format_args!(
                        "point `{point}`: expected {}, found {found}",
                        src.checks[id.0 as usize].ty
                    ),
                ),
                None => reject(RejectKind::UnboundPoint, &format_args!("point `{point}`")),
            }
        }
        let arrival = src.clock.now();
        let mut batch = Vec::with_capacity(decoded.points.len());
        for (point, value, ts) in decoded.points {
            let Some(&id) = binding.points.get(&point) else {
                reject(RejectKind::UnboundPoint, &format_args!("point `{point}`"));
                continue;
            };
            let value = match src.checks[id.0 as usize].admit(value) {
                Ok(v) => v,
                Err(misfit) => {
                    let kind = match misfit {
                        Misfit::Type(_) => RejectKind::Type,
                        Misfit::Range { .. } => RejectKind::OutOfRange,
                    };
                    reject(kind, &format_args!("point `{point}`: {misfit}"));
                    continue;
                }
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
        self.deliver(batch, arrival)
    }

    fn deliver(&mut self, batch: Vec<Sample>, arrival: Timestamp) -> Result<(), SourceError> {
        if batch.is_empty() {
            return Ok(());
        }
        let src = &self.source;
        let n = batch.len() as u64;
        self.sink
            .deliver(batch, arrival)
            .map_err(|_| SourceError::SinkClosed(src.name.clone()))?;
        MqttMetrics::bump(&src.metrics.samples, n);
        Ok(())
    }

    /// A publish on a Sparkplug B subscription: through the host state
    /// machine, then samples, bad marks and rebirth requests.
    fn sparkplug_publish(&mut self, publish: &Publish) -> Result<(), SourceError> {
        let topic = publish.topic.as_str();
        let decoded = if publish.payload.len() > DEFAULT_MAX_PAYLOAD {
            Err(SparkplugError::Decode {
                topic: topic.to_owned(),
                reason: format!(
                    "{} bytes: expected at most {DEFAULT_MAX_PAYLOAD}",
                    publish.payload.len()
                ),
            })
        } else {
            SparkplugTopic::parse(topic).and_then(|t| {
                sparkplug::Payload::decode(publish.payload.as_ref())
                    .map(|p| (t, p))
                    .map_err(|e| SparkplugError::Decode {
                        topic: topic.to_owned(),
                        reason: e.to_string(),
                    })
            })
        };
        let actions = decoded.and_then(|(t, p)| {
            let kind = t.kind;
            self.host.handle_payload(topic, &t, p).map(|a| (kind, a))
        });
        let src = &self.source;
        let m = &src.metrics;
        let (kind, actions) = match actions {
            Ok(ka) => ka,
            Err(e) => {
                Rejected {
                    source: &src.name,
                    topic,
                    kind: RejectKind::Decode,
                    detail: &e,
                }
                .emit(m);
                return Ok(());
            }
        };
        let refused = actions.iter().any(|a| matches!(a, Action::Rebirth { .. }));
        let marks_bad = actions.iter().any(|a| matches!(a, Action::MarkBad { .. }));
        match kind {
            MessageType::NBirth | MessageType::DBirth if !refused => {
                MqttMetrics::bump(&m.sparkplug_births, 1);
                tracing::info!(source = %src.name, topic, "sparkplug birth");
            }
            MessageType::NDeath | MessageType::DDeath if !refused => {
                if marks_bad {
                    MqttMetrics::bump(&m.sparkplug_deaths, 1);
                    tracing::info!(source = %src.name, topic, "sparkplug death");
                } else {
                    MqttMetrics::bump(&m.sparkplug_stale_deaths, 1);
                    tracing::debug!(source = %src.name, topic, "stale sparkplug death ignored");
                }
            }
            _ => {}
        }
        if kind == MessageType::NBirth && !refused {
            let t = SparkplugTopic::parse(topic).expect("parsed above");
            self.rebirths.remove(&t.node);
        }
        let arrival = src.clock.now();
        let mut batch = Vec::new();
        let mut marked: HashSet<PointId> = HashSet::new();
        let mut rebirth_of = None;
        for action in actions {
            match action {
                Action::Samples {
                    node,
                    device,
                    metrics,
                    skipped,
                } => {
                    let bound = src.sparkplug.get(&node).and_then(|d| d.get(&device));
                    for (name, value, ts) in metrics {
                        let Some(&id) = bound.and_then(|b| b.get(&name)) else {
                            if name != BD_SEQ {
                                MqttMetrics::bump(&m.rejected_unbound_point, 1);
                            }
                            continue;
                        };
                        if value == Value::Null {
                            MqttMetrics::bump(&m.missing_points, 1);
                            continue;
                        }
                        let value = match src.checks[id.0 as usize].admit(value) {
                            Ok(v) => v,
                            Err(misfit) => {
                                let kind = match misfit {
                                    Misfit::Type(_) => RejectKind::Type,
                                    Misfit::Range { .. } => RejectKind::OutOfRange,
                                };
                                Rejected {
                                    source: &src.name,
                                    topic,
                                    kind,
                                    detail: &format_args!("metric `{name}`: {misfit}"),
                                }
                                .emit(m);
                                continue;
                            }
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
                    if !skipped.is_empty() {
                        MqttMetrics::bump(&m.sparkplug_unreadable_metrics, skipped.len() as u64);
                        tracing::debug!(
                            source = %src.name,
                            topic,
                            "sparkplug metrics skipped, value not readable: {}",
                            skipped.join(", ")
                        );
                    }
                }
                Action::MarkBad { node, device } => {
                    let Some(devices) = src.sparkplug.get(&node) else {
                        continue;
                    };
                    // A node's death takes its devices with it.
                    let ids = devices
                        .iter()
                        .filter(|(d, _)| device.is_none() || **d == device)
                        .flat_map(|(_, points)| points.values().copied());
                    for id in ids {
                        if marked.insert(id) {
                            self.seq += 1;
                            batch.push(Sample {
                                point: id,
                                value: Value::Null,
                                source_ts: arrival,
                                quality: Quality::Bad(Reason::CommFailure),
                                seq: self.seq,
                            });
                        }
                    }
                }
                Action::Rebirth { node, reason } => {
                    let counter = match &reason {
                        RebirthReason::SeqGap { .. } => &m.sparkplug_seq_gaps,
                        RebirthReason::UnknownMetric(_) => &m.sparkplug_unknown_metrics,
                        RebirthReason::NodeNotBorn | RebirthReason::DeviceNotBorn(_) => {
                            &m.sparkplug_not_born
                        }
                    };
                    MqttMetrics::bump(counter, 1);
                    tracing::debug!(
                        source = %src.name,
                        topic,
                        "sparkplug message not applied: {reason:?}"
                    );
                    rebirth_of = Some((node, reason));
                }
            }
        }
        if let Some((node, reason)) = rebirth_of {
            self.request_rebirth(node, &reason, arrival);
        }
        self.deliver(batch, arrival)
    }

    /// Publishes a rebirth request to `node`, unless one went out less than
    /// [`REBIRTH_HOLDOFF`] ago and the node has not rebirthed since.
    fn request_rebirth(&mut self, node: NodeKey, reason: &RebirthReason, now: Timestamp) {
        if self
            .rebirths
            .get(&node)
            .is_some_and(|&last| now.since(last) < REBIRTH_HOLDOFF)
        {
            return;
        }
        let src = &self.source;
        let (topic, payload) = sparkplug::rebirth_request(&node, now);
        match self
            .client
            .try_publish(topic.clone(), QoS::AtMostOnce, false, payload)
        {
            Ok(()) => {
                MqttMetrics::bump(&src.metrics.sparkplug_rebirth_requests, 1);
                tracing::info!(
                    source = %src.name,
                    topic,
                    "sparkplug rebirth requested: {reason:?}"
                );
                self.rebirths.insert(node, now);
            }
            Err(e) => tracing::warn!(
                source = %src.name,
                topic,
                "sparkplug rebirth request not sent, retried on the next message: {e}"
            ),
        }
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
        // On a new connection too, a redelivery
        // of 7 is recognised by its topic and payload; a redelivery of a
        // message never seen applies.
        run.incoming(Packet::ConnAck(rumqttc::ConnAck::new(
            rumqttc::ConnectReturnCode::Success,
            false,
        )))
        .unwrap();
        p.dup = true;
        run.incoming(Packet::Publish(p.clone())).unwrap();
        p.pkid = 8;
        p.payload = r#"{"t": 4}"#.into();
        run.incoming(Packet::Publish(p)).unwrap();

        let samples = sink.0.lock().unwrap();
        let values: Vec<Value> = samples.iter().map(|x| x.value.clone()).collect();
        assert_eq!(values, [2.0, 2.0, 4.0].map(Value::F64));
        assert!(samples.iter().all(|x| x.point == PointId(0)
            && x.quality == Quality::Good
            && x.source_ts == Timestamp::from_millis(1000)));
        assert_eq!(samples.iter().map(|x| x.seq).collect::<Vec<_>>(), [1, 2, 3]);
        let get = MqttMetrics::get;
        assert_eq!(get(&metrics.messages), 8);
        assert_eq!(get(&metrics.samples), 3);
        assert_eq!(get(&metrics.rejected_duplicate), 2);
        assert_eq!(get(&metrics.rejected_unknown_topic), 1);
        assert_eq!(get(&metrics.rejected_decode), 1);
        assert_eq!(get(&metrics.rejected_unbound_point), 3);
        assert_eq!(get(&metrics.missing_points), 1);
        assert_eq!(get(&metrics.reconnects), 1);
    }

    #[test]
    fn sparkplug_addresses_bind_by_node_device_and_metric() {
        let config: MqttConfig = toml::from_str(
            r#"
            host = "127.0.0.1"
            client_id = "unit"
            [[subscriptions]]
            topic = "spBv1.0/only/NDATA/{node}"
            payload = { format = "sparkplug_b" }
            [[subscriptions]]
            topic = "spBv1.0/{group}/#"
            payload = { format = "sparkplug_b" }
            "#,
        )
        .unwrap();
        let mut s = MqttSource::new(
            "mqtt",
            config.validate().unwrap(),
            Clock::manual(Timestamp::from_millis(0)),
        );
        s.bind(vec![
            spec("spBv1.0/g/n#Node Control/Rebirth"),
            spec("spBv1.0/g/n/d#temp#2"),
            spec("spBv1.0/g/n/e#temp"),
        ])
        .expect("binds");
        assert_eq!(s.sparkplug.len(), 1);
        let node = &s.sparkplug[&NodeKey {
            group: "g".into(),
            node: "n".into(),
        }];
        assert_eq!(node[&None]["Node Control/Rebirth"], PointId(0));
        assert_eq!(node[&Some("d".to_owned())]["temp#2"], PointId(1));
        let errors = s
            .bind(vec![
                spec("spBv1.0/g#temp"),
                spec("spBv1.0/g/n/d/x#temp"),
                spec("spBv1.0/g/+#temp"),
                spec("spBv1.0/g/n#"),
                spec("spBv1.0/g/n"),
                spec("spBv1.0/only/n#temp"),
                spec("spBv1.0/g/n#t"),
                spec("spBv1.0/g/n#t"),
            ])
            .unwrap_err();
        let messages: Vec<String> = errors.iter().map(|e| e.message.clone()).collect();
        assert_eq!(
            messages,
            [
                "`spBv1.0/g`: expected `spBv1.0/GROUP/EDGE#METRIC` or `spBv1.0/GROUP/EDGE/DEVICE#METRIC`, found 2 topic levels",
                "`spBv1.0/g/n/d/x`: expected `spBv1.0/GROUP/EDGE#METRIC` or `spBv1.0/GROUP/EDGE/DEVICE#METRIC`, found 5 topic levels",
                "`spBv1.0/g/+`: expected `spBv1.0/GROUP/EDGE#METRIC` or `spBv1.0/GROUP/EDGE/DEVICE#METRIC` with non-empty levels without `+` or `#`",
                "`spBv1.0/g/n`: expected a metric name after `#`, found none",
                "expected `spBv1.0/GROUP/EDGE#METRIC` or `spBv1.0/GROUP/EDGE/DEVICE#METRIC`, found no `#`",
                "subscription `spBv1.0/only/NDATA/{node}` does not receive `spBv1.0/only/NBIRTH/n`: expected a topic that matches births and deaths too, e.g. `spBv1.0/{group}/#`",
                "point `t` is bound twice: expected one binding per address",
            ]
        );
    }

    #[test]
    fn values_are_checked_against_type_and_range() {
        let check = |ty, range, states: &[&str]| PointCheck {
            ty,
            range,
            states: states.iter().map(|s| (*s).to_owned()).collect(),
        };
        let f = check(ValueType::F64, Some((0.0, 10.0)), &[]);
        assert_eq!(f.admit(Value::F64(10.0)), Ok(Value::F64(10.0)));
        assert_eq!(f.admit(Value::I64(3)), Ok(Value::F64(3.0)));
        assert_eq!(f.admit(Value::Bool(true)), Ok(Value::F64(1.0)));
        assert_eq!(
            f.admit(Value::F64(10.5)).unwrap_err().to_string(),
            "expected a value from 0 to 10, found 10.5"
        );
        assert_eq!(
            f.admit(Value::String("7".into())).unwrap_err().to_string(),
            "expected f64, found string `\"7\"`"
        );
        let i = check(ValueType::I64, None, &[]);
        assert_eq!(i.admit(Value::F64(-4.0)), Ok(Value::I64(-4)));
        assert!(matches!(i.admit(Value::F64(0.5)), Err(Misfit::Type(_))));
        assert!(matches!(i.admit(Value::F64(1e19)), Err(Misfit::Type(_))));
        let b = check(ValueType::Bool, Some((0.0, 0.5)), &[]);
        assert_eq!(
            b.admit(Value::F64(1.0)),
            Ok(Value::Bool(true)),
            "no range on bools"
        );
        assert_eq!(b.admit(Value::I64(0)), Ok(Value::Bool(false)));
        assert!(matches!(b.admit(Value::F64(7.0)), Err(Misfit::Type(_))));
        let e = check(ValueType::Enum, None, &["off", "on"]);
        assert_eq!(e.admit(Value::String("on".into())), Ok(Value::Enum(1)));
        assert_eq!(e.admit(Value::F64(0.0)), Ok(Value::Enum(0)));
        assert!(matches!(e.admit(Value::F64(2.0)), Err(Misfit::Type(_))));
        assert!(matches!(
            e.admit(Value::String("auto".into())),
            Err(Misfit::Type(_))
        ));
        let st = check(ValueType::String, None, &[]);
        assert!(matches!(st.admit(Value::F64(1.0)), Err(Misfit::Type(_))));
    }

    #[test]
    fn json_points_are_rejected_one_by_one() {
        let mut s = source();
        let mut temp = spec("plant/s1/p1/telemetry#temp");
        temp.range = Some((0.0, 100.0));
        s.bind(vec![temp, spec("plant/s1/p1/telemetry#flow")])
            .unwrap();
        let metrics = s.metrics();
        let (client, _eventloop) = AsyncClient::new(s.options(), 16);
        let sink = Arc::new(VecSink::default());
        let mut run = Running::new(s, sink.clone(), client);
        for payload in [
            r#"{"t": 101, "f": 1}"#,
            r#"{"t": "hot", "f": 2}"#,
            r#"{"t": {"x": 1}, "f": 3}"#,
            r#"{"t": 50, "f": [4]}"#,
        ] {
            run.incoming(Packet::Publish(Publish::new(
                "plant/s1/p1/telemetry",
                QoS::AtMostOnce,
                payload,
            )))
            .unwrap();
        }
        let got: Vec<(PointId, Value)> = sink
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|x| (x.point, x.value.clone()))
            .collect();
        assert_eq!(
            got,
            [
                (PointId(1), Value::F64(1.0)),
                (PointId(1), Value::F64(2.0)),
                (PointId(1), Value::F64(3.0)),
                (PointId(0), Value::F64(50.0)),
            ]
        );
        let get = MqttMetrics::get;
        assert_eq!(get(&metrics.rejected_out_of_range), 1);
        assert_eq!(get(&metrics.rejected_type), 3);
        assert_eq!(get(&metrics.rejected_decode), 0);
        assert_eq!(get(&metrics.samples), 4);
    }

    #[test]
    fn sparkplug_births_data_gaps_and_deaths() {
        use crate::mqtt::sparkplug::{Metric, MetricValue, Payload, datatype};
        let config: MqttConfig = toml::from_str(
            r#"
            host = "127.0.0.1"
            client_id = "unit"
            [[subscriptions]]
            topic = "spBv1.0/{group}/#"
            payload = { format = "sparkplug_b" }
            "#,
        )
        .unwrap();
        let clock = Clock::manual(Timestamp::from_millis(1_000));
        let mut s = MqttSource::new("mqtt", config.validate().unwrap(), clock.clone());
        s.bind(vec![
            spec("spBv1.0/g/n#temp"),
            spec("spBv1.0/g/n/d#speed"),
            spec("spBv1.0/g/n/never#x"),
        ])
        .unwrap();
        let metrics = s.metrics();
        let (client, _eventloop) = AsyncClient::new(s.options(), 16);
        let sink = Arc::new(VecSink::default());
        let mut run = Running::new(s, sink.clone(), client);
        let metric = |name: Option<&str>, alias: u64, v: MetricValue| Metric {
            name: name.map(str::to_owned),
            alias: Some(alias),
            datatype: name.map(|_| datatype::DOUBLE),
            value: Some(v),
            ..Metric::default()
        };
        let bd = |v: u64| Metric {
            name: Some("bdSeq".into()),
            datatype: Some(datatype::INT64),
            value: Some(MetricValue::LongValue(v)),
            ..Metric::default()
        };
        let mut send = |topic: &str, seq: Option<u64>, metrics: Vec<Metric>| {
            let payload = Payload {
                timestamp: Some(5),
                metrics,
                seq,
            };
            run.incoming(Packet::Publish(Publish::new(
                topic,
                QoS::AtMostOnce,
                payload.encode_to_vec(),
            )))
            .unwrap();
        };
        let get = |c: &AtomicU64| MqttMetrics::get(c);
        let temp = |v: f64| metric(None, 1, MetricValue::DoubleValue(v));

        // Before a birth: not applied, one rebirth request per holdoff.
        send("spBv1.0/g/NDATA/n", Some(7), vec![temp(1.0)]);
        send("spBv1.0/g/NDATA/n", Some(8), vec![temp(1.0)]);
        assert_eq!(get(&metrics.sparkplug_not_born), 2);
        assert_eq!(get(&metrics.sparkplug_rebirth_requests), 1);
        clock.advance(REBIRTH_HOLDOFF);
        send("spBv1.0/g/NDATA/n", Some(9), vec![temp(1.0)]);
        assert_eq!(get(&metrics.sparkplug_rebirth_requests), 2);

        // Births and data by alias.
        let birth_temp = metric(Some("temp"), 1, MetricValue::DoubleValue(20.0));
        send(
            "spBv1.0/g/NBIRTH/n",
            Some(0),
            vec![bd(1), birth_temp.clone()],
        );
        let speed = metric(Some("speed"), 2, MetricValue::DoubleValue(1.5));
        send("spBv1.0/g/DBIRTH/n/d", Some(1), vec![speed]);
        send("spBv1.0/g/NDATA/n", Some(2), vec![temp(21.0)]);
        // An unknown alias: the node goes bad, and a rebirth is asked for
        // at once (the birth ended the holdoff).
        send(
            "spBv1.0/g/NDATA/n",
            Some(3),
            vec![temp(21.0), metric(None, 9, MetricValue::DoubleValue(0.0))],
        );
        assert_eq!(get(&metrics.sparkplug_unknown_metrics), 1);
        assert_eq!(get(&metrics.sparkplug_rebirth_requests), 3);
        // Rebirth, a stale death, a gap, another rebirth, the real death.
        send(
            "spBv1.0/g/NBIRTH/n",
            Some(0),
            vec![bd(2), birth_temp.clone()],
        );
        send("spBv1.0/g/NDEATH/n", None, vec![bd(1)]);
        send("spBv1.0/g/NDATA/n", Some(5), vec![temp(22.0)]);
        assert_eq!(get(&metrics.sparkplug_seq_gaps), 1);
        send("spBv1.0/g/NBIRTH/n", Some(0), vec![bd(2), birth_temp]);
        send("spBv1.0/g/NDEATH/n", None, vec![bd(2)]);

        let got: Vec<(u32, Value, Quality, i64)> = sink
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|x| {
                (
                    x.point.0,
                    x.value.clone(),
                    x.quality,
                    x.source_ts.as_millis(),
                )
            })
            .collect();
        let good = |p: u32, v: f64| (p, Value::F64(v), Quality::Good, 5);
        let bad = |p: u32| (p, Value::Null, Quality::Bad(Reason::CommFailure), 3_000);
        assert_eq!(
            got,
            [
                good(0, 20.0),
                good(1, 1.5),
                good(0, 21.0),
                bad(0),
                bad(1),
                bad(2),
                good(0, 20.0),
                bad(0),
                bad(1),
                bad(2),
                good(0, 20.0),
                bad(0),
                bad(1),
                bad(2),
            ]
        );
        assert_eq!(get(&metrics.sparkplug_births), 4);
        assert_eq!(get(&metrics.sparkplug_deaths), 1);
        assert_eq!(get(&metrics.sparkplug_stale_deaths), 1);
        assert_eq!(get(&metrics.sparkplug_rebirth_requests), 4);
        assert_eq!(get(&metrics.rejected_decode), 0);
    }

    #[test]
    fn recent_keys_are_bounded_and_forget_the_oldest() {
        const CAP: usize = 256;
        let mut r = Recent::new(CAP);
        assert!(r.insert(1));
        assert!(!r.insert(1));
        for p in 2..=(CAP as u16 + 1) {
            assert!(r.insert(p));
        }
        assert_eq!(r.set.len(), CAP);
        assert!(r.insert(1), "the oldest key was forgotten");
        assert!(!r.insert(CAP as u16 + 1));
    }
}
