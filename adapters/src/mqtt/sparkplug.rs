//! Sparkplug B: the protobuf payload (hand-written prost structs, no build
//! script) and the host application's sans-IO state machine per edge node.
//!
//! [`Host::handle`] takes a received topic and payload and returns
//! [`Action`]s: samples to deliver, rebirth requests to publish (see
//! [`rebirth_request`]) and points to mark bad when a node or device dies.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use prost::Message;
use twins::{Timestamp, Value};

/// Sparkplug B namespace, the first topic level.
pub const NAMESPACE: &str = "spBv1.0";

/// Name of the birth/death sequence metric in NBIRTH and NDEATH.
pub const BD_SEQ: &str = "bdSeq";

/// Name of the node control metric that asks an edge node to rebirth.
pub const REBIRTH_METRIC: &str = "Node Control/Rebirth";

/// A Sparkplug B payload (the fields this host reads).
#[derive(Clone, PartialEq, Message)]
pub struct Payload {
    /// Time of the message, epoch milliseconds.
    #[prost(uint64, optional, tag = "1")]
    pub timestamp: Option<u64>,
    #[prost(message, repeated, tag = "2")]
    pub metrics: Vec<Metric>,
    /// Message sequence number, 0–255; absent in NDEATH.
    #[prost(uint64, optional, tag = "3")]
    pub seq: Option<u64>,
}

/// One metric of a payload.
#[derive(Clone, PartialEq, Message)]
pub struct Metric {
    /// Metric name; births carry it, data may carry only the alias.
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(uint64, optional, tag = "2")]
    pub alias: Option<u64>,
    /// Time of the value, epoch milliseconds.
    #[prost(uint64, optional, tag = "3")]
    pub timestamp: Option<u64>,
    /// Sparkplug data type (see [`datatype`]); births carry it.
    #[prost(uint32, optional, tag = "4")]
    pub datatype: Option<u32>,
    #[prost(bool, optional, tag = "7")]
    pub is_null: Option<bool>,
    #[prost(oneof = "MetricValue", tags = "10, 11, 12, 13, 14, 15")]
    pub value: Option<MetricValue>,
}

/// The value of a metric (the scalar kinds; datasets, templates and bytes
/// are not decoded).
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum MetricValue {
    #[prost(uint32, tag = "10")]
    IntValue(u32),
    #[prost(uint64, tag = "11")]
    LongValue(u64),
    #[prost(float, tag = "12")]
    FloatValue(f32),
    #[prost(double, tag = "13")]
    DoubleValue(f64),
    #[prost(bool, tag = "14")]
    BooleanValue(bool),
    #[prost(string, tag = "15")]
    StringValue(String),
}

/// Sparkplug B data type codes used here.
pub mod datatype {
    pub const INT8: u32 = 1;
    pub const INT16: u32 = 2;
    pub const INT32: u32 = 3;
    pub const INT64: u32 = 4;
    pub const UINT8: u32 = 5;
    pub const UINT16: u32 = 6;
    pub const UINT32: u32 = 7;
    pub const UINT64: u32 = 8;
    pub const FLOAT: u32 = 9;
    pub const DOUBLE: u32 = 10;
    pub const BOOLEAN: u32 = 11;
    pub const STRING: u32 = 12;
    pub const DATETIME: u32 = 13;
    pub const TEXT: u32 = 14;
}

/// The message type, the third topic level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    NBirth,
    NDeath,
    DBirth,
    DDeath,
    NData,
    DData,
    NCmd,
    DCmd,
}

impl MessageType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "NBIRTH" => Self::NBirth,
            "NDEATH" => Self::NDeath,
            "DBIRTH" => Self::DBirth,
            "DDEATH" => Self::DDeath,
            "NDATA" => Self::NData,
            "DDATA" => Self::DData,
            "NCMD" => Self::NCmd,
            "DCMD" => Self::DCmd,
            _ => return None,
        })
    }

    fn is_device(self) -> bool {
        matches!(self, Self::DBirth | Self::DDeath | Self::DData | Self::DCmd)
    }
}

/// An edge node: group id and edge node id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeKey {
    pub group: String,
    pub node: String,
}

/// A parsed Sparkplug B topic:
/// `spBv1.0/GROUP/TYPE/NODE` or `spBv1.0/GROUP/TYPE/NODE/DEVICE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparkplugTopic {
    pub node: NodeKey,
    pub kind: MessageType,
    /// The device, for D* messages.
    pub device: Option<String>,
}

/// Why a Sparkplug message could not be taken in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SparkplugError {
    #[error(
        "topic `{topic}`: expected `spBv1.0/GROUP/TYPE/NODE[/DEVICE]` with TYPE one of NBIRTH, NDEATH, DBIRTH, DDEATH, NDATA, DDATA, NCMD, DCMD (DEVICE exactly for D types)"
    )]
    Topic { topic: String },
    #[error(
        "topic `{topic}`: expected a Sparkplug B protobuf payload, found undecodable bytes ({reason})"
    )]
    Decode { topic: String, reason: String },
    #[error("topic `{topic}`: expected a `bdSeq` metric with an integer value, found none")]
    NoBdSeq { topic: String },
}

impl SparkplugTopic {
    pub fn parse(topic: &str) -> Result<Self, SparkplugError> {
        let bad = || SparkplugError::Topic {
            topic: topic.to_owned(),
        };
        let parts: Vec<&str> = topic.split('/').collect();
        let (group, kind, node, device) = match parts.as_slice() {
            [ns, g, k, n] if *ns == NAMESPACE => (*g, *k, *n, None),
            [ns, g, k, n, d] if *ns == NAMESPACE => (*g, *k, *n, Some(*d)),
            _ => return Err(bad()),
        };
        let kind = MessageType::parse(kind).ok_or_else(bad)?;
        if group.is_empty() || node.is_empty() || device.is_some_and(str::is_empty) {
            return Err(bad());
        }
        if kind.is_device() != device.is_some() {
            return Err(bad());
        }
        Ok(Self {
            node: NodeKey {
                group: group.to_owned(),
                node: node.to_owned(),
            },
            kind,
            device: device.map(str::to_owned),
        })
    }
}

/// What the host must do after a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Deliver these metric values (births carry current values too).
    Samples {
        node: NodeKey,
        device: Option<String>,
        /// Metric name, value and time, in payload order.
        metrics: Vec<(String, Value, Option<Timestamp>)>,
        /// Metrics whose value could not be read (unknown type, bytes,
        /// datasets, out of range), by name or `alias N`.
        skipped: Vec<String>,
    },
    /// Publish a rebirth request to the node ([`rebirth_request`]): its
    /// state is unknown or out of step.
    Rebirth {
        node: NodeKey,
        reason: RebirthReason,
    },
    /// The node (`device: None`) or one device went offline: mark its
    /// points bad.
    MarkBad {
        node: NodeKey,
        device: Option<String>,
    },
}

/// Why a rebirth is requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebirthReason {
    /// A message arrived from a node not (or no longer) born.
    NodeNotBorn,
    /// A device message arrived for a device not born.
    DeviceNotBorn(String),
    /// The sequence number was not the previous one plus 1 (mod 256).
    SeqGap { expected: u8, found: Option<u64> },
    /// A metric alias or name was not declared in a birth.
    UnknownMetric(String),
}

#[derive(Debug, Default)]
struct NodeState {
    bd_seq: u64,
    seq: u8,
    /// Alias → metric name, for the node and its devices.
    aliases: HashMap<u64, String>,
    /// Metric name → data type, from births.
    types: HashMap<String, u32>,
    /// Devices born since the node's birth.
    devices: BTreeMap<String, ()>,
}

/// The host application's view of every edge node it has heard from.
#[derive(Debug, Default)]
pub struct Host {
    /// Born (online) nodes; a node absent here is offline or unknown.
    nodes: HashMap<NodeKey, NodeState>,
}

impl Host {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the node is born and in step.
    pub fn is_online(&self, node: &NodeKey) -> bool {
        self.nodes.contains_key(node)
    }

    /// Whether the device of a born node is born.
    pub fn is_device_online(&self, node: &NodeKey, device: &str) -> bool {
        self.nodes
            .get(node)
            .is_some_and(|n| n.devices.contains_key(device))
    }

    /// Decodes and handles one received message.
    pub fn handle(&mut self, topic: &str, payload: &[u8]) -> Result<Vec<Action>, SparkplugError> {
        let parsed = SparkplugTopic::parse(topic)?;
        let payload = Payload::decode(payload).map_err(|e| SparkplugError::Decode {
            topic: topic.to_owned(),
            reason: e.to_string(),
        })?;
        self.handle_payload(topic, &parsed, payload)
    }

    /// Handles one decoded message; `topic` is only for error messages.
    pub fn handle_payload(
        &mut self,
        topic: &str,
        t: &SparkplugTopic,
        payload: Payload,
    ) -> Result<Vec<Action>, SparkplugError> {
        let key = &t.node;
        match t.kind {
            MessageType::NCmd | MessageType::DCmd => Ok(Vec::new()),
            MessageType::NBirth => {
                let bd_seq = bd_seq(&payload).ok_or_else(|| SparkplugError::NoBdSeq {
                    topic: topic.to_owned(),
                })?;
                let mut state = NodeState {
                    bd_seq,
                    seq: seq_u8(payload.seq),
                    ..NodeState::default()
                };
                let mut actions = Vec::new();
                // A rebirth replaces the old session: its devices are gone.
                if let Some(old) = self.nodes.remove(key) {
                    actions.extend(old.devices.into_keys().map(|d| Action::MarkBad {
                        node: key.clone(),
                        device: Some(d),
                    }));
                }
                state.learn(&payload);
                let samples = state.samples(key, None, &payload, true);
                self.nodes.insert(key.clone(), state);
                actions.extend(samples);
                Ok(actions)
            }
            MessageType::NDeath => {
                let Some(bd) = bd_seq(&payload) else {
                    return Err(SparkplugError::NoBdSeq {
                        topic: topic.to_owned(),
                    });
                };
                // A death from an earlier session (its will message) is stale.
                if self.nodes.get(key).is_none_or(|n| n.bd_seq != bd) {
                    return Ok(Vec::new());
                }
                let mut actions = vec![Action::MarkBad {
                    node: key.clone(),
                    device: None,
                }];
                if let Some(state) = self.nodes.remove(key) {
                    actions.extend(state.devices.into_keys().map(|d| Action::MarkBad {
                        node: key.clone(),
                        device: Some(d),
                    }));
                }
                Ok(actions)
            }
            MessageType::DBirth | MessageType::DDeath | MessageType::NData | MessageType::DData => {
                let Some(state) = self.nodes.get_mut(key) else {
                    return Ok(vec![Action::Rebirth {
                        node: key.clone(),
                        reason: RebirthReason::NodeNotBorn,
                    }]);
                };
                let expected = state.seq.wrapping_add(1);
                if payload.seq != Some(u64::from(expected)) {
                    // Out of step: forget the session until the node rebirths.
                    let reason = RebirthReason::SeqGap {
                        expected,
                        found: payload.seq,
                    };
                    return Ok(self.drop_node(key, reason));
                }
                state.seq = expected;
                let device = t.device.clone();
                match (t.kind, device) {
                    (MessageType::NData, None) => Ok(self.data(key, None, &payload)),
                    (MessageType::DBirth, Some(d)) => {
                        state.learn(&payload);
                        state.devices.insert(d.clone(), ());
                        Ok(state
                            .samples(key, Some(d), &payload, true)
                            .into_iter()
                            .collect())
                    }
                    (MessageType::DDeath, Some(d)) => {
                        if state.devices.remove(&d).is_some() {
                            Ok(vec![Action::MarkBad {
                                node: key.clone(),
                                device: Some(d),
                            }])
                        } else {
                            Ok(Vec::new())
                        }
                    }
                    (MessageType::DData, Some(d)) => {
                        if state.devices.contains_key(&d) {
                            Ok(self.data(key, Some(d), &payload))
                        } else {
                            Ok(vec![Action::Rebirth {
                                node: key.clone(),
                                reason: RebirthReason::DeviceNotBorn(d),
                            }])
                        }
                    }
                    // SparkplugTopic::parse pairs D types with a device and N types without.
                    _ => Err(SparkplugError::Topic {
                        topic: topic.to_owned(),
                    }),
                }
            }
        }
    }

    /// Data for a born node or device: resolve aliases, or ask for a rebirth.
    fn data(&mut self, key: &NodeKey, device: Option<String>, payload: &Payload) -> Vec<Action> {
        let Some(state) = self.nodes.get(key) else {
            return Vec::new();
        };
        if let Some(unknown) = payload.metrics.iter().find_map(|m| state.unknown(m)) {
            return self.drop_node(key, RebirthReason::UnknownMetric(unknown));
        }
        state
            .samples(key, device, payload, false)
            .into_iter()
            .collect()
    }

    /// Forgets a node out of step: marks it and its devices bad and asks
    /// for a rebirth.
    fn drop_node(&mut self, key: &NodeKey, reason: RebirthReason) -> Vec<Action> {
        let mut actions = vec![Action::MarkBad {
            node: key.clone(),
            device: None,
        }];
        if let Some(state) = self.nodes.remove(key) {
            actions.extend(state.devices.into_keys().map(|d| Action::MarkBad {
                node: key.clone(),
                device: Some(d),
            }));
        }
        actions.push(Action::Rebirth {
            node: key.clone(),
            reason,
        });
        actions
    }
}

fn seq_u8(seq: Option<u64>) -> u8 {
    // Sequence numbers run 0..=255; a larger one cannot be followed anyway.
    seq.map_or(0, |s| (s % 256) as u8)
}

fn bd_seq(payload: &Payload) -> Option<u64> {
    payload
        .metrics
        .iter()
        .find(|m| m.name.as_deref() == Some(BD_SEQ))
        .and_then(|m| match m.value {
            Some(MetricValue::LongValue(v)) => Some(v),
            Some(MetricValue::IntValue(v)) => Some(u64::from(v)),
            _ => None,
        })
}

impl NodeState {
    /// Records names, aliases and data types declared in a birth.
    fn learn(&mut self, payload: &Payload) {
        for m in &payload.metrics {
            if let Some(name) = &m.name {
                if let Some(alias) = m.alias {
                    self.aliases.insert(alias, name.clone());
                }
                if let Some(dt) = m.datatype {
                    self.types.insert(name.clone(), dt);
                }
            }
        }
    }

    fn name_of(&self, m: &Metric) -> Option<String> {
        match (&m.name, m.alias) {
            (Some(n), _) => Some(n.clone()),
            (None, Some(a)) => self.aliases.get(&a).cloned(),
            (None, None) => None,
        }
    }

    /// The metric's label if a data message names something no birth declared.
    fn unknown(&self, m: &Metric) -> Option<String> {
        match (&m.name, m.alias) {
            (Some(n), _) if self.types.contains_key(n) => None,
            (Some(n), _) => Some(n.clone()),
            (None, Some(a)) if self.aliases.contains_key(&a) => None,
            (None, Some(a)) => Some(format!("alias {a}")),
            (None, None) => Some("a metric with neither name nor alias".to_owned()),
        }
    }

    fn samples(
        &self,
        key: &NodeKey,
        device: Option<String>,
        payload: &Payload,
        birth: bool,
    ) -> Option<Action> {
        let mut metrics = Vec::new();
        let mut skipped = Vec::new();
        for m in &payload.metrics {
            let Some(name) = self.name_of(m) else {
                skipped.push(
                    m.alias
                        .map_or_else(|| "unnamed".to_owned(), |a| format!("alias {a}")),
                );
                continue;
            };
            if birth && device.is_none() && name == BD_SEQ {
                continue;
            }
            let ts = m
                .timestamp
                .or(payload.timestamp)
                .and_then(|ms| i64::try_from(ms).ok())
                .map(Timestamp::from_millis);
            let dt = m.datatype.or_else(|| self.types.get(&name).copied());
            match metric_value(m, dt) {
                Some(v) => metrics.push((name, v, ts)),
                None => skipped.push(name),
            }
        }
        (!metrics.is_empty() || !skipped.is_empty()).then(|| Action::Samples {
            node: key.clone(),
            device,
            metrics,
            skipped,
        })
    }
}

/// A metric's value as a twin value, by its Sparkplug data type.
fn metric_value(m: &Metric, dt: Option<u32>) -> Option<Value> {
    use datatype::*;
    if m.is_null == Some(true) {
        return Some(Value::Null);
    }
    Some(match (m.value.as_ref()?, dt) {
        // Signed integers travel as two's complement in the unsigned fields;
        // the truncating casts recover them.
        (MetricValue::IntValue(v), Some(INT8)) => Value::I64(i64::from(*v as u8 as i8)),
        (MetricValue::IntValue(v), Some(INT16)) => Value::I64(i64::from(*v as u16 as i16)),
        (MetricValue::IntValue(v), Some(INT32)) => Value::I64(i64::from(*v as i32)),
        (MetricValue::IntValue(v), _) => Value::I64(i64::from(*v)),
        (MetricValue::LongValue(v), Some(INT64)) => Value::I64(*v as i64),
        (MetricValue::LongValue(v), _) => Value::I64(i64::try_from(*v).ok()?),
        (MetricValue::FloatValue(v), _) => Value::F64(f64::from(*v)),
        (MetricValue::DoubleValue(v), _) => Value::F64(*v),
        (MetricValue::BooleanValue(v), _) => Value::Bool(*v),
        (MetricValue::StringValue(s), _) => Value::String(Arc::from(s.as_str())),
    })
}

/// The NCMD message asking `node` to rebirth: topic and encoded payload.
pub fn rebirth_request(node: &NodeKey, timestamp: Timestamp) -> (String, Vec<u8>) {
    let payload = Payload {
        timestamp: u64::try_from(timestamp.as_millis()).ok(),
        metrics: vec![Metric {
            name: Some(REBIRTH_METRIC.to_owned()),
            datatype: Some(datatype::BOOLEAN),
            value: Some(MetricValue::BooleanValue(true)),
            ..Metric::default()
        }],
        seq: None,
    };
    (
        format!("{NAMESPACE}/{}/NCMD/{}", node.group, node.node),
        payload.encode_to_vec(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: &str = "plant1";
    const N: &str = "edge7";

    fn key() -> NodeKey {
        NodeKey {
            group: G.to_owned(),
            node: N.to_owned(),
        }
    }

    fn metric(name: Option<&str>, alias: Option<u64>, dt: Option<u32>, v: MetricValue) -> Metric {
        Metric {
            name: name.map(str::to_owned),
            alias,
            datatype: dt,
            value: Some(v),
            ..Metric::default()
        }
    }

    fn bd(v: u64) -> Metric {
        metric(
            Some(BD_SEQ),
            None,
            Some(datatype::UINT64),
            MetricValue::LongValue(v),
        )
    }

    fn temp(alias: u64, v: f64) -> Metric {
        metric(None, Some(alias), None, MetricValue::DoubleValue(v))
    }

    fn send(
        host: &mut Host,
        kind: &str,
        device: Option<&str>,
        seq: Option<u64>,
        metrics: Vec<Metric>,
    ) -> Vec<Action> {
        let topic = match device {
            Some(d) => format!("{NAMESPACE}/{G}/{kind}/{N}/{d}"),
            None => format!("{NAMESPACE}/{G}/{kind}/{N}"),
        };
        let payload = Payload {
            timestamp: Some(1_000),
            metrics,
            seq,
        };
        host.handle(&topic, &payload.encode_to_vec())
            .expect("valid message")
    }

    /// A host with the node born (bdSeq 5, seq 0, `temp` alias 1) and device
    /// `pump` born (seq 1, `speed` alias 2).
    fn born() -> Host {
        let mut host = Host::new();
        send(
            &mut host,
            "NBIRTH",
            None,
            Some(0),
            vec![
                bd(5),
                metric(
                    Some("temp"),
                    Some(1),
                    Some(datatype::DOUBLE),
                    MetricValue::DoubleValue(20.0),
                ),
            ],
        );
        send(
            &mut host,
            "DBIRTH",
            Some("pump"),
            Some(1),
            vec![metric(
                Some("speed"),
                Some(2),
                Some(datatype::FLOAT),
                MetricValue::FloatValue(1.5),
            )],
        );
        assert!(host.is_online(&key()) && host.is_device_online(&key(), "pump"));
        host
    }

    fn mark_bad(device: Option<&str>) -> Action {
        Action::MarkBad {
            node: key(),
            device: device.map(str::to_owned),
        }
    }

    fn rebirth(reason: RebirthReason) -> Action {
        Action::Rebirth {
            node: key(),
            reason,
        }
    }

    fn samples(device: Option<&str>, metrics: Vec<(&str, Value)>) -> Action {
        Action::Samples {
            node: key(),
            device: device.map(str::to_owned),
            metrics: metrics
                .into_iter()
                .map(|(n, v)| (n.to_owned(), v, Some(Timestamp::from_millis(1_000))))
                .collect(),
            skipped: Vec::new(),
        }
    }

    #[test]
    fn topics() {
        let t = SparkplugTopic::parse("spBv1.0/g/DDATA/n/d").expect("valid");
        assert_eq!(
            (t.kind, t.device.as_deref()),
            (MessageType::DData, Some("d"))
        );
        let t = SparkplugTopic::parse("spBv1.0/g/NBIRTH/n").expect("valid");
        assert_eq!((t.kind, t.node.node.as_str()), (MessageType::NBirth, "n"));
        for bad in [
            "spBv2.0/g/NDATA/n",
            "spBv1.0/g/NDATA/n/d",
            "spBv1.0/g/DDATA/n",
            "spBv1.0/g/XDATA/n",
            "spBv1.0//NDATA/n",
            "spBv1.0/g/DDATA/n/",
            "spBv1.0/g/NDATA",
        ] {
            assert!(SparkplugTopic::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            SparkplugTopic::parse("a/b").map_err(|e| e.to_string()),
            Err("topic `a/b`: expected `spBv1.0/GROUP/TYPE/NODE[/DEVICE]` with TYPE one of NBIRTH, NDEATH, DBIRTH, DDEATH, NDATA, DDATA, NCMD, DCMD (DEVICE exactly for D types)".into())
        );
    }

    #[test]
    fn nbirth_records_bdseq_and_aliases_and_delivers_values() {
        let mut host = Host::new();
        let actions = send(
            &mut host,
            "NBIRTH",
            None,
            Some(0),
            vec![
                bd(5),
                metric(
                    Some("temp"),
                    Some(1),
                    Some(datatype::DOUBLE),
                    MetricValue::DoubleValue(20.0),
                ),
            ],
        );
        assert_eq!(actions, [samples(None, vec![("temp", Value::F64(20.0))])]);
        assert!(host.is_online(&key()));
        // NDATA by alias resolves to the birth's name.
        assert_eq!(
            send(&mut host, "NDATA", None, Some(1), vec![temp(1, 21.0)]),
            [samples(None, vec![("temp", Value::F64(21.0))])]
        );
    }

    #[test]
    fn nbirth_without_bdseq_is_an_error() {
        let mut host = Host::new();
        let payload = Payload {
            timestamp: None,
            metrics: vec![],
            seq: Some(0),
        };
        assert_eq!(
            host.handle("spBv1.0/g/NBIRTH/n", &payload.encode_to_vec()).map_err(|e| e.to_string()),
            Err("topic `spBv1.0/g/NBIRTH/n`: expected a `bdSeq` metric with an integer value, found none".into())
        );
    }

    #[test]
    fn undecodable_payload_is_an_error() {
        let err = Host::new()
            .handle("spBv1.0/g/NDATA/n", &[0xff, 0xff, 0xff])
            .expect_err("garbage");
        assert!(matches!(err, SparkplugError::Decode { .. }), "{err}");
        assert!(err.to_string().starts_with(
            "topic `spBv1.0/g/NDATA/n`: expected a Sparkplug B protobuf payload, found undecodable bytes ("
        ));
    }

    #[test]
    fn data_before_birth_requests_rebirth() {
        let mut host = Host::new();
        assert_eq!(
            send(&mut host, "NDATA", None, Some(3), vec![temp(1, 1.0)]),
            [rebirth(RebirthReason::NodeNotBorn)]
        );
        assert!(!host.is_online(&key()));
    }

    #[test]
    fn dbirth_and_ddata() {
        let mut host = born();
        assert_eq!(
            send(
                &mut host,
                "DDATA",
                Some("pump"),
                Some(2),
                vec![metric(None, Some(2), None, MetricValue::FloatValue(2.5))]
            ),
            [samples(Some("pump"), vec![("speed", Value::F64(2.5))])]
        );
        assert_eq!(
            send(&mut host, "DDATA", Some("fan"), Some(3), vec![temp(1, 1.0)]),
            [rebirth(RebirthReason::DeviceNotBorn("fan".into()))]
        );
    }

    #[test]
    fn seq_gap_marks_bad_and_requests_rebirth() {
        let mut host = born();
        assert_eq!(
            send(&mut host, "NDATA", None, Some(4), vec![temp(1, 1.0)]),
            [
                mark_bad(None),
                mark_bad(Some("pump")),
                rebirth(RebirthReason::SeqGap {
                    expected: 2,
                    found: Some(4)
                }),
            ]
        );
        assert!(!host.is_online(&key()));
        let mut host = born();
        assert_eq!(
            send(&mut host, "NDATA", None, None, vec![temp(1, 1.0)]).last(),
            Some(&rebirth(RebirthReason::SeqGap {
                expected: 2,
                found: None
            }))
        );
    }

    #[test]
    fn seq_wraps_at_256() {
        let mut host = Host::new();
        send(
            &mut host,
            "NBIRTH",
            None,
            Some(254),
            vec![
                bd(0),
                metric(
                    Some("temp"),
                    Some(1),
                    Some(datatype::DOUBLE),
                    MetricValue::DoubleValue(0.0),
                ),
            ],
        );
        for seq in [255, 0, 1] {
            assert_eq!(
                send(&mut host, "NDATA", None, Some(seq), vec![temp(1, 1.0)]),
                [samples(None, vec![("temp", Value::F64(1.0))])],
                "seq {seq}"
            );
        }
    }

    #[test]
    fn unknown_alias_requests_rebirth() {
        let mut host = born();
        assert_eq!(
            send(&mut host, "NDATA", None, Some(2), vec![temp(9, 1.0)]).last(),
            Some(&rebirth(RebirthReason::UnknownMetric("alias 9".into())))
        );
        let mut host = born();
        assert_eq!(
            send(
                &mut host,
                "NDATA",
                None,
                Some(2),
                vec![metric(
                    Some("nope"),
                    None,
                    None,
                    MetricValue::BooleanValue(true)
                )]
            )
            .last(),
            Some(&rebirth(RebirthReason::UnknownMetric("nope".into())))
        );
    }

    #[test]
    fn ndeath_with_matching_bdseq_marks_node_and_devices_bad() {
        let mut host = born();
        assert_eq!(
            send(&mut host, "NDEATH", None, None, vec![bd(5)]),
            [mark_bad(None), mark_bad(Some("pump"))]
        );
        assert!(!host.is_online(&key()) && !host.is_device_online(&key(), "pump"));
    }

    #[test]
    fn ndeath_with_stale_bdseq_is_ignored() {
        let mut host = born();
        assert_eq!(send(&mut host, "NDEATH", None, None, vec![bd(4)]), []);
        assert!(host.is_online(&key()));
        assert_eq!(
            send(&mut Host::new(), "NDEATH", None, None, vec![bd(5)]),
            []
        );
    }

    #[test]
    fn ddeath_marks_the_device_bad() {
        let mut host = born();
        assert_eq!(
            send(&mut host, "DDEATH", Some("pump"), Some(2), vec![]),
            [mark_bad(Some("pump"))]
        );
        assert!(host.is_online(&key()) && !host.is_device_online(&key(), "pump"));
        // Its seq counted: the next message continues from it.
        assert_eq!(
            send(&mut host, "NDATA", None, Some(3), vec![temp(1, 1.0)]),
            [samples(None, vec![("temp", Value::F64(1.0))])]
        );
        assert_eq!(send(&mut host, "DDEATH", Some("pump"), Some(4), vec![]), []);
    }

    #[test]
    fn rebirth_forgets_the_old_devices() {
        let mut host = born();
        let actions = send(&mut host, "NBIRTH", None, Some(0), vec![bd(6)]);
        assert_eq!(actions, [mark_bad(Some("pump"))]);
        assert!(host.is_online(&key()) && !host.is_device_online(&key(), "pump"));
        // The new session's bdSeq is the one a death must carry.
        assert_eq!(send(&mut host, "NDEATH", None, None, vec![bd(5)]), []);
        assert_eq!(
            send(&mut host, "NDEATH", None, None, vec![bd(6)]),
            [mark_bad(None)]
        );
    }

    #[test]
    fn values_by_datatype() {
        use MetricValue::*;
        use datatype::*;
        let m = |name: &str, dt: u32, v: MetricValue| metric(Some(name), None, Some(dt), v);
        let mut host = Host::new();
        let mut null = m("gone", DOUBLE, DoubleValue(0.0));
        null.is_null = Some(true);
        null.value = None;
        let bytes_like = Metric {
            name: Some("blob".into()),
            datatype: Some(17),
            ..Metric::default()
        };
        let actions = send(
            &mut host,
            "NBIRTH",
            None,
            Some(0),
            vec![
                bd(1),
                m("i8", INT8, IntValue(0xFF)),
                m("i16", INT16, IntValue(0xFFFE)),
                m("i32", INT32, IntValue(u32::MAX)),
                m("u32", UINT32, IntValue(u32::MAX)),
                m("i64", INT64, LongValue(u64::MAX)),
                m("u64", UINT64, LongValue(u64::MAX)),
                m("f", FLOAT, FloatValue(0.5)),
                m("b", BOOLEAN, BooleanValue(false)),
                m("s", STRING, StringValue("on".into())),
                null,
                bytes_like,
            ],
        );
        let Some(Action::Samples {
            metrics, skipped, ..
        }) = actions.first()
        else {
            panic!("expected samples, got {actions:?}");
        };
        let got: Vec<(&str, &Value)> = metrics.iter().map(|(n, v, _)| (n.as_str(), v)).collect();
        assert_eq!(
            got,
            [
                ("i8", &Value::I64(-1)),
                ("i16", &Value::I64(-2)),
                ("i32", &Value::I64(-1)),
                ("u32", &Value::I64(i64::from(u32::MAX))),
                ("i64", &Value::I64(-1)),
                ("f", &Value::F64(0.5)),
                ("b", &Value::Bool(false)),
                ("s", &Value::String("on".into())),
                ("gone", &Value::Null),
            ]
        );
        assert_eq!(skipped, &["u64", "blob"]);
    }

    #[test]
    fn data_uses_the_birth_datatype() {
        let mut host = Host::new();
        send(
            &mut host,
            "NBIRTH",
            None,
            Some(0),
            vec![
                bd(1),
                metric(
                    Some("t"),
                    Some(3),
                    Some(datatype::INT16),
                    MetricValue::IntValue(0),
                ),
            ],
        );
        assert_eq!(
            send(
                &mut host,
                "NDATA",
                None,
                Some(1),
                vec![metric(None, Some(3), None, MetricValue::IntValue(0xFFFF))]
            ),
            [samples(None, vec![("t", Value::I64(-1))])]
        );
    }

    #[test]
    fn rebirth_request_round_trips() {
        let (topic, bytes) = rebirth_request(&key(), Timestamp::from_millis(42));
        assert_eq!(topic, "spBv1.0/plant1/NCMD/edge7");
        let p = Payload::decode(bytes.as_slice()).expect("decodes");
        assert_eq!(p.timestamp, Some(42));
        assert_eq!(p.metrics.len(), 1);
        assert_eq!(p.metrics[0].name.as_deref(), Some(REBIRTH_METRIC));
        assert_eq!(p.metrics[0].value, Some(MetricValue::BooleanValue(true)));
    }
}
