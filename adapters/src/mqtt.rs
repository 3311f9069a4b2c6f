//! MQTT adapter: the sans-IO core and the client that drives it.
//!
//! Everything but [`client`], [`northbound`], [`broker`] and [`tls`] takes
//! values and returns values; the client and the publisher run rumqttc's
//! event loop and call into it.
//!
//! - [`broker`]: [`EmbeddedBroker`], an MQTT broker inside the node.
//! - [`client`]: [`MqttSource`], the [`crate::SampleSource`] subscribing to a
//!   broker; points bind by `TOPIC#POINT` addresses.
//! - [`config`]: the serde layer of an MQTT source and its validation.
//! - [`tls`]: rustls configuration of the client connections.
//! - [`topic`]: topic templates with named captures (`plant/{site}/+/{device}`).
//! - [`northbound`]: [`NorthboundPublisher`], twin changes published to the broker.
//! - [`payload`]: decoding payloads into point values.
//! - [`sparkplug`]: Sparkplug B payloads and the host state per edge node.
//!
//! ```
//! use adapters::mqtt::topic::TopicTemplate;
//!
//! let t = TopicTemplate::parse("plant/{site}/+/{device}/telemetry").unwrap();
//! assert_eq!(t.to_filter(), "plant/+/+/+/telemetry");
//! let caps = t.match_topic("plant/s1/x/pump7/telemetry").unwrap();
//! let twin = TopicTemplate::parse("acme/{site}/{device}").unwrap();
//! assert_eq!(twin.fill(&caps).unwrap(), "acme/s1/pump7");
//! ```

pub mod broker;
pub mod client;
pub mod config;
pub mod factory;
pub mod northbound;
pub mod payload;
pub mod sparkplug;
pub mod tls;
pub mod topic;

pub use broker::{BrokerConfig, BrokerError, EmbeddedBroker, embedded_broker_config};
pub use client::{MqttMetrics, MqttSource, MqttStatus};
pub use config::{
    ConfigError, MqttConfig, Northbound, PayloadFormat, Qos, Subscription, ValidConfig,
};
pub use factory::Factory;
pub use northbound::{NorthboundMetrics, NorthboundPublisher};
pub use payload::{
    DEFAULT_MAX_PAYLOAD, Decoded, PayloadError, VALUE_POINT, decode_json, decode_number,
};
pub use topic::{Captures, FillError, TemplateError, TopicTemplate};
