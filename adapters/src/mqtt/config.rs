//! Serde layer of an MQTT source's configuration, and its validation.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::topic::{TemplateError, TopicTemplate};

/// An MQTT source: the broker to connect to, what to subscribe to and,
/// optionally, where to publish twin state back.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// Broker host name or IP address; `127.0.0.1` unless set (with
    /// `embedded_broker`, the address the broker listens on: this machine
    /// only).
    #[serde(default = "default_host")]
    pub host: String,
    /// Broker TCP port; 1883 unless set (8883 is customary with TLS).
    #[serde(default = "default_port")]
    pub port: u16,
    /// MQTT client identifier; must be unique among the broker's clients.
    pub client_id: String,
    /// User name to authenticate with, if the broker asks for one.
    #[serde(default)]
    pub username: Option<String>,
    /// Password to authenticate with; needs `username`.
    #[serde(default)]
    pub password: Option<String>,
    /// Whether to connect over TLS; false unless set.
    #[serde(default)]
    pub tls: bool,
    /// With `tls`: PEM file of the certificate authorities to trust; the
    /// system's roots unless set.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// With `tls`: PEM file of the client certificate (chain) for mutual
    /// TLS; needs `client_key`.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// With `tls`: PEM file of the client certificate's private key (PKCS#8,
    /// PKCS#1 or SEC1); needs `client_cert`.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// Whether twinrt starts an MQTT broker listening on `host:port` for
    /// this source to connect to; false unless set. `host` must then be an
    /// IP address (`127.0.0.1` keeps the broker to this machine).
    #[serde(default)]
    pub embedded_broker: bool,
    /// Keep-alive interval as a duration string (`"30s"`, `"1m"`); 30 s
    /// unless set. MQTT carries it in whole seconds, at most 65535.
    #[serde(default = "default_keep_alive", deserialize_with = "de_duration")]
    pub keep_alive: Duration,
    /// Whether the broker should discard the session on connect; true
    /// unless set.
    #[serde(default = "default_true")]
    pub clean_session: bool,
    /// Topics to subscribe to and how to decode what arrives on them.
    #[serde(default)]
    pub subscriptions: Vec<Subscription>,
    /// Publishing twin state back to the broker; off unless set.
    #[serde(default)]
    pub northbound: Option<Northbound>,
}

/// One subscription.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// Topic template, e.g. `plant/{site}/{line}/+/{device}/telemetry`:
    /// `{name}` captures one level, `+` and `#` are MQTT wildcards.
    pub topic: String,
    /// How payloads on the topic are encoded.
    pub payload: PayloadFormat,
    /// QoS to subscribe with (0 or 1); 0 unless set.
    #[serde(default)]
    pub qos: Qos,
}

/// How payloads are encoded, tagged by `format`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "format", rename_all = "snake_case", deny_unknown_fields)]
pub enum PayloadFormat {
    /// A JSON document; each point is read at a JSON pointer.
    Json {
        /// Point name → JSON pointer (RFC 6901), e.g. `"temp" = "/sensors/t1"`.
        points: BTreeMap<String, String>,
        /// JSON pointer to the sample time: epoch milliseconds as a number,
        /// or an RFC 3339 string. Without it, samples take arrival time.
        #[serde(default)]
        timestamp: Option<String>,
    },
    /// The payload is one value as text: a number, `true` or `false`.
    // Empty struct variants, not unit variants: serde ignores
    // `deny_unknown_fields` on unit variants of an internally tagged enum.
    Number {},
    /// Eclipse Sparkplug B (protobuf) payloads.
    SparkplugB {},
}

/// An MQTT quality of service level this adapter supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Qos {
    /// QoS 0: at most once.
    #[default]
    AtMostOnce,
    /// QoS 1: at least once.
    AtLeastOnce,
}

impl Qos {
    /// The level's number on the wire.
    pub fn level(self) -> u8 {
        match self {
            Qos::AtMostOnce => 0,
            Qos::AtLeastOnce => 1,
        }
    }
}

impl<'de> Deserialize<'de> for Qos {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u8::deserialize(d)? {
            0 => Ok(Qos::AtMostOnce),
            1 => Ok(Qos::AtLeastOnce),
            n => Err(serde::de::Error::custom(format_args!(
                "invalid qos {n}: expected 0 or 1"
            ))),
        }
    }
}

/// Publishing twin state to the broker.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Northbound {
    /// Topic prefix; a twin's state goes to `PREFIX/TWIN_PATH`.
    pub prefix: String,
    /// Whether published messages are retained; false unless set.
    #[serde(default)]
    pub retain: bool,
    /// QoS to publish with (0 or 1); 0 unless set.
    #[serde(default)]
    pub qos: Qos,
    /// Each twin's state is published at most once per interval, with its
    /// latest values (alarm transitions are not held back); `"1s"` unless
    /// set.
    #[serde(default = "default_interval", deserialize_with = "de_duration")]
    pub interval: Duration,
}

fn default_interval() -> Duration {
    Duration::from_secs(1)
}

fn default_host() -> String {
    "127.0.0.1".to_owned()
}

fn default_port() -> u16 {
    1883
}

fn default_keep_alive() -> Duration {
    Duration::from_secs(30)
}

fn default_true() -> bool {
    true
}

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    twins::model::parse_duration(&text).ok_or_else(|| {
        serde::de::Error::custom(format_args!(
            "invalid duration `{text}`: expected a number followed by `ms`, `s`, `m` or `h`"
        ))
    })
}

/// A configuration problem found by [`MqttConfig::validate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("`{field}` is empty: expected {expected}")]
    Empty {
        field: &'static str,
        expected: &'static str,
    },
    #[error("`password` is set without `username`: expected both or neither")]
    PasswordWithoutUsername,
    #[error("`keep_alive` is {found:?}: expected whole seconds from 1s to 65535s")]
    KeepAlive { found: Duration },
    #[error("`subscriptions[{index}].topic`: {source}")]
    Topic { index: usize, source: TemplateError },
    #[error("`subscriptions[{index}].payload.points` is empty: expected at least one point")]
    NoPoints { index: usize },
    #[error(
        "`subscriptions[{index}].payload.{field}` is `{found}`: expected a JSON pointer, empty or starting with `/`"
    )]
    Pointer {
        index: usize,
        field: String,
        found: String,
    },
    #[error("`northbound.prefix` is `{found}`: expected a topic without `+`, `#` or empty levels")]
    Prefix { found: String },
    #[error("`northbound.interval` is {found:?}: expected from 1ms to 1h")]
    Interval { found: Duration },
    #[error("`host` is `{found}` with `embedded_broker`: expected an IP address to listen on")]
    BrokerHost { found: String },
    #[error(
        "`tls` is set with `embedded_broker`: expected plain TCP, the embedded broker has no TLS"
    )]
    BrokerTls,
    #[error("`{field}` is set without `tls`: expected `tls = true` or no `{field}`")]
    WithoutTls { field: &'static str },
    #[error("`{field}` is set without `{needs}`: expected both or neither")]
    CertWithoutKey {
        field: &'static str,
        needs: &'static str,
    },
    #[error(
        "`tls` is set without `ca_file` and no system root certificate was found{detail}: expected `ca_file`"
    )]
    NoSystemRoots { detail: String },
    #[error("`{field}` file `{}`: {message}", path.display())]
    Pem {
        field: &'static str,
        path: PathBuf,
        message: String,
    },
}

/// A validated configuration: the serde layer and each subscription's
/// parsed topic template, in subscription order.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidConfig {
    pub config: MqttConfig,
    pub topics: Vec<TopicTemplate>,
}

impl MqttConfig {
    /// Checks what serde cannot, reporting every problem, not only the first.
    pub fn validate(self) -> Result<ValidConfig, Vec<ConfigError>> {
        let mut errors = Vec::new();
        if self.host.trim().is_empty() {
            errors.push(ConfigError::Empty {
                field: "host",
                expected: "a host name or IP address",
            });
        }
        if self.client_id.is_empty() {
            errors.push(ConfigError::Empty {
                field: "client_id",
                expected: "a client identifier",
            });
        }
        if self.password.is_some() && self.username.is_none() {
            errors.push(ConfigError::PasswordWithoutUsername);
        }
        let ka = self.keep_alive;
        if ka.subsec_nanos() != 0 || ka.as_secs() == 0 || ka.as_secs() > u64::from(u16::MAX) {
            errors.push(ConfigError::KeepAlive { found: ka });
        }
        let mut topics = Vec::with_capacity(self.subscriptions.len());
        for (index, sub) in self.subscriptions.iter().enumerate() {
            match TopicTemplate::parse(&sub.topic) {
                Ok(t) => topics.push(t),
                Err(source) => errors.push(ConfigError::Topic { index, source }),
            }
            if let PayloadFormat::Json { points, timestamp } = &sub.payload {
                if points.is_empty() {
                    errors.push(ConfigError::NoPoints { index });
                }
                let pointers = points
                    .iter()
                    .map(|(name, p)| (format!("points.{name}"), p))
                    .chain(timestamp.iter().map(|p| ("timestamp".to_owned(), p)));
                for (field, p) in pointers {
                    if !(p.is_empty() || p.starts_with('/')) {
                        errors.push(ConfigError::Pointer {
                            index,
                            field,
                            found: p.clone(),
                        });
                    }
                }
            }
        }
        if let Some(nb) = &self.northbound {
            let ok = !nb.prefix.is_empty()
                && nb
                    .prefix
                    .split('/')
                    .all(|l| !l.is_empty() && !l.contains(['+', '#', '\0']));
            if !ok {
                errors.push(ConfigError::Prefix {
                    found: nb.prefix.clone(),
                });
            }
            if nb.interval < Duration::from_millis(1) || nb.interval > Duration::from_secs(3600) {
                errors.push(ConfigError::Interval { found: nb.interval });
            }
        }
        if self.embedded_broker {
            if self.host.trim().parse::<IpAddr>().is_err() && !self.host.trim().is_empty() {
                errors.push(ConfigError::BrokerHost {
                    found: self.host.clone(),
                });
            }
            if self.tls {
                errors.push(ConfigError::BrokerTls);
            }
        }
        let files = [
            ("ca_file", &self.ca_file),
            ("client_cert", &self.client_cert),
            ("client_key", &self.client_key),
        ];
        for (field, file) in files {
            if file.is_some() && !self.tls {
                errors.push(ConfigError::WithoutTls { field });
            }
        }
        match (&self.client_cert, &self.client_key) {
            (Some(_), None) => errors.push(ConfigError::CertWithoutKey {
                field: "client_cert",
                needs: "client_key",
            }),
            (None, Some(_)) => errors.push(ConfigError::CertWithoutKey {
                field: "client_key",
                needs: "client_cert",
            }),
            _ => {}
        }
        if errors.is_empty() {
            Ok(ValidConfig {
                config: self,
                topics,
            })
        } else {
            Err(errors)
        }
    }
}

impl fmt::Display for Qos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.level())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<MqttConfig, String> {
        toml::from_str(text).map_err(|e| e.message().to_owned())
    }

    const FULL: &str = r#"
        host = "broker.local"
        port = 8883
        client_id = "twinrt-1"
        username = "u"
        password = "p"
        tls = true
        keep_alive = "1m"
        clean_session = false

        [[subscriptions]]
        topic = "plant/{site}/{line}/+/{device}/telemetry"
        qos = 1
        payload = { format = "json", points = { temp = "/t", flow = "/m/flow" }, timestamp = "/ts" }

        [[subscriptions]]
        topic = "plant/{site}/{device}/speed"
        payload = { format = "number" }

        [[subscriptions]]
        topic = "spBv1.0/{group}/#"
        payload = { format = "sparkplug_b" }

        [northbound]
        prefix = "twinrt/state"
        retain = true
        qos = 1
    "#;

    #[test]
    fn full_config() {
        let c = parse(FULL).expect("valid");
        assert_eq!(c.port, 8883);
        assert!(c.tls && !c.clean_session);
        assert_eq!(c.keep_alive, Duration::from_secs(60));
        assert_eq!(c.subscriptions.len(), 3);
        assert_eq!(c.subscriptions[0].qos, Qos::AtLeastOnce);
        assert_eq!(c.subscriptions[1].qos, Qos::AtMostOnce);
        assert_eq!(
            c.subscriptions[0].payload,
            PayloadFormat::Json {
                points: [
                    ("flow".into(), "/m/flow".into()),
                    ("temp".into(), "/t".into())
                ]
                .into(),
                timestamp: Some("/ts".into()),
            }
        );
        assert_eq!(c.subscriptions[1].payload, PayloadFormat::Number {});
        assert_eq!(c.subscriptions[2].payload, PayloadFormat::SparkplugB {});
        let nb = c.northbound.clone().expect("northbound");
        assert!(nb.retain);
        let valid = c.validate().expect("valid");
        assert_eq!(valid.topics[0].to_filter(), "plant/+/+/+/+/telemetry");
    }

    #[test]
    fn defaults() {
        let c = parse("host = \"h\"\nclient_id = \"c\"").expect("valid");
        assert_eq!(c.port, 1883);
        assert!(!c.tls && c.clean_session);
        assert_eq!(c.keep_alive, Duration::from_secs(30));
        assert!(c.subscriptions.is_empty() && c.northbound.is_none());
        assert!(c.username.is_none() && c.password.is_none());
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let e = parse("host = \"h\"\nclient_id = \"c\"\nhots = 1").expect_err("unknown");
        assert!(e.contains("unknown field `hots`"), "{e}");
        let e = parse(
            "host = \"h\"\nclient_id = \"c\"\n[[subscriptions]]\ntopic = \"a\"\npayload = { format = \"number\", points = {} }",
        )
        .expect_err("unknown");
        assert!(e.contains("unknown field `points`"), "{e}");
    }

    #[test]
    fn bad_values() {
        let e = parse("host = \"h\"\nclient_id = \"c\"\nkeep_alive = \"soon\"").expect_err("bad");
        assert_eq!(
            e,
            "invalid duration `soon`: expected a number followed by `ms`, `s`, `m` or `h`"
        );
        let e = parse(
            "host = \"h\"\nclient_id = \"c\"\n[[subscriptions]]\ntopic = \"a\"\nqos = 2\npayload = { format = \"number\" }",
        )
        .expect_err("bad");
        assert_eq!(e, "invalid qos 2: expected 0 or 1");
        let e = parse(
            "host = \"h\"\nclient_id = \"c\"\n[[subscriptions]]\ntopic = \"a\"\npayload = { format = \"xml\" }",
        )
        .expect_err("bad");
        assert!(e.contains("unknown variant `xml`"), "{e}");
    }

    #[test]
    fn validate_collects_every_error() {
        let c = parse(
            r#"
            host = ""
            client_id = ""
            password = "p"
            keep_alive = "1500ms"
            [[subscriptions]]
            topic = "a/#/b"
            payload = { format = "json", points = {}, timestamp = "ts" }
            [[subscriptions]]
            topic = "ok/{x}"
            payload = { format = "json", points = { p = "nope" } }
            [northbound]
            prefix = "a/+"
        "#,
        )
        .expect("serde layer accepts it");
        let errors: Vec<String> = c
            .validate()
            .expect_err("invalid")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errors,
            [
                "`host` is empty: expected a host name or IP address",
                "`client_id` is empty: expected a client identifier",
                "`password` is set without `username`: expected both or neither",
                "`keep_alive` is 1.5s: expected whole seconds from 1s to 65535s",
                "`subscriptions[0].topic`: template `a/#/b`: `#` is level 2: expected it only as the last level",
                "`subscriptions[0].payload.points` is empty: expected at least one point",
                "`subscriptions[0].payload.timestamp` is `ts`: expected a JSON pointer, empty or starting with `/`",
                "`subscriptions[1].payload.points.p` is `nope`: expected a JSON pointer, empty or starting with `/`",
                "`northbound.prefix` is `a/+`: expected a topic without `+`, `#` or empty levels",
            ]
        );
    }

    #[test]
    fn broker_tls_and_interval_rules() {
        let c = parse(
            r#"
            host = "broker.local"
            client_id = "c"
            embedded_broker = true
            tls = true
            ca_file = "ca.pem"
            [northbound]
            prefix = "p"
            interval = "2h"
        "#,
        )
        .expect("serde layer accepts it");
        assert_eq!(
            c.northbound.as_ref().unwrap().interval,
            Duration::from_secs(7200)
        );
        let errors: Vec<String> = c
            .validate()
            .expect_err("invalid")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errors,
            [
                "`northbound.interval` is 7200s: expected from 1ms to 1h",
                "`host` is `broker.local` with `embedded_broker`: expected an IP address to listen on",
                "`tls` is set with `embedded_broker`: expected plain TCP, the embedded broker has no TLS",
            ]
        );
        let c = parse("host = \"h\"\nclient_id = \"c\"\nclient_cert = \"c.pem\"").unwrap();
        let errors: Vec<String> = c
            .validate()
            .expect_err("invalid")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errors,
            [
                "`client_cert` is set without `tls`: expected `tls = true` or no `client_cert`",
                "`client_cert` is set without `client_key`: expected both or neither",
            ]
        );
        let c = parse("host = \"::1\"\nclient_id = \"c\"\nembedded_broker = true\n[northbound]\nprefix = \"p\"")
            .unwrap();
        assert_eq!(
            c.northbound.as_ref().unwrap().interval,
            Duration::from_secs(1)
        );
        c.validate().expect("an IPv6 loopback broker is fine");
    }
}
