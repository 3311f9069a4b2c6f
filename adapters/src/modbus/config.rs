//! The serde layer of a Modbus TCP source's configuration, then
//! [`ModbusConfig::validate`], which reports every problem at once.
//!
//! ```toml
//! [[endpoints]]
//! name = "plc1"
//! host = "10.0.0.5"
//! timeout = "500ms"
//! poll_groups = [{ name = "fast", interval = "100ms" }, { name = "slow", interval = "5s" }]
//! ```

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::plan::PlanLimits;

/// A Modbus TCP source: the endpoints it polls.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusConfig {
    /// The devices or gateways polled, at least one; names are unique.
    pub endpoints: Vec<EndpointConfig>,
}

/// One Modbus TCP server (a device, or a gateway to serial devices).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Name of the endpoint, unique within the source; used in logs and errors.
    pub name: String,
    /// Host name or IP address of the server.
    pub host: String,
    /// TCP port of the server. Default 502, the registered Modbus port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// Modbus unit identifier sent with every request, 0..=255; gateways
    /// route by it, most devices ignore it. Default 1.
    #[serde(default = "default_unit_id")]
    pub unit_id: u8,
    /// How long to wait for each response before the request fails, as a
    /// duration string: a number and a unit among `us`, `ms`, `s`, `m`,
    /// `h`, `d` (`"500ms"`, `"2s"`). Default `"1s"`.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Poll groups, at least one, names unique within the endpoint. A point
    /// picks one with `group=` in its address; without it, the first group.
    pub poll_groups: Vec<PollGroup>,
    /// Most registers per read request, 1..=125 (125 is the protocol
    /// maximum; some devices accept less). Coil and discrete reads always
    /// allow up to 2000 bits. Default 125.
    #[serde(default = "default_max_block_registers")]
    pub max_block_registers: u16,
    /// Most unbound registers (or bits) read between two points to merge
    /// them into one request. Default 0: merging only touching points, since
    /// reading an unmapped register can fail the whole request.
    #[serde(default)]
    pub max_gap: u16,
}

/// A set of points polled together at one interval.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollGroup {
    /// Name of the group, referred to by `group=` in point addresses.
    pub name: String,
    /// Time between the starts of two polls of the group, as a duration
    /// string (`"100ms"`, `"5s"`); required, greater than zero.
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
}

fn default_port() -> u16 {
    502
}

fn default_unit_id() -> u8 {
    1
}

fn default_timeout() -> Duration {
    Duration::from_secs(1)
}

fn default_max_block_registers() -> u16 {
    125
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    twins::model::parse_duration(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "invalid duration `{text}`, expected a number and a unit among us, ms, s, m, h, d, like \"500ms\""
        ))
    })
}

/// A problem [`ModbusConfig::validate`] found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("no endpoints, expected at least one")]
    NoEndpoints,
    #[error("endpoint {index}: empty `{field}`, expected a non-empty string")]
    Empty { index: usize, field: &'static str },
    #[error("endpoint `{0}` is defined twice, expected unique names")]
    DuplicateEndpoint(String),
    #[error("endpoint `{0}`: no poll groups, expected at least one")]
    NoPollGroups(String),
    #[error(
        "endpoint `{endpoint}`: poll group {index} has an empty name, expected a non-empty name"
    )]
    EmptyGroupName { endpoint: String, index: usize },
    #[error("endpoint `{endpoint}`: poll group `{group}` is defined twice, expected unique names")]
    DuplicateGroup { endpoint: String, group: String },
    #[error("endpoint `{endpoint}`: poll group `{group}` has interval 0, expected more than zero")]
    ZeroInterval { endpoint: String, group: String },
    #[error("endpoint `{0}`: timeout is 0, expected more than zero")]
    ZeroTimeout(String),
    #[error("endpoint `{endpoint}`: max_block_registers is {found}, expected 1..=125")]
    BlockRegisters { endpoint: String, found: u16 },
}

impl ModbusConfig {
    /// Checks what serde cannot: presence, uniqueness and ranges. Returns
    /// every problem, in file order.
    pub fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let mut errors = Vec::new();
        if self.endpoints.is_empty() {
            errors.push(ConfigError::NoEndpoints);
        }
        let mut names = HashSet::new();
        for (index, e) in self.endpoints.iter().enumerate() {
            if e.name.is_empty() {
                errors.push(ConfigError::Empty {
                    index,
                    field: "name",
                });
            } else if !names.insert(e.name.as_str()) {
                errors.push(ConfigError::DuplicateEndpoint(e.name.clone()));
            }
            if e.host.is_empty() {
                errors.push(ConfigError::Empty {
                    index,
                    field: "host",
                });
            }
            e.validate_into(&mut errors);
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

impl EndpointConfig {
    fn validate_into(&self, errors: &mut Vec<ConfigError>) {
        let endpoint = || self.name.clone();
        if self.timeout.is_zero() {
            errors.push(ConfigError::ZeroTimeout(endpoint()));
        }
        if !(1..=125).contains(&self.max_block_registers) {
            errors.push(ConfigError::BlockRegisters {
                endpoint: endpoint(),
                found: self.max_block_registers,
            });
        }
        if self.poll_groups.is_empty() {
            errors.push(ConfigError::NoPollGroups(endpoint()));
        }
        let mut groups = HashSet::new();
        for (index, g) in self.poll_groups.iter().enumerate() {
            if g.name.is_empty() {
                errors.push(ConfigError::EmptyGroupName {
                    endpoint: endpoint(),
                    index,
                });
            } else if !groups.insert(g.name.as_str()) {
                errors.push(ConfigError::DuplicateGroup {
                    endpoint: endpoint(),
                    group: g.name.clone(),
                });
            }
            if g.interval.is_zero() {
                errors.push(ConfigError::ZeroInterval {
                    endpoint: endpoint(),
                    group: g.name.clone(),
                });
            }
        }
    }

    /// The group of points whose address names none: the first.
    pub fn default_group(&self) -> Option<&str> {
        self.poll_groups.first().map(|g| g.name.as_str())
    }

    /// The planner's bounds for this endpoint.
    pub fn plan_limits(&self) -> PlanLimits {
        PlanLimits {
            max_registers: self.max_block_registers,
            max_gap: self.max_gap,
            ..PlanLimits::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ModbusConfig, String> {
        toml::from_str(text).map_err(|e| e.message().to_owned())
    }

    const MINIMAL: &str = r#"
        [[endpoints]]
        name = "plc1"
        host = "10.0.0.5"
        poll_groups = [{ name = "main", interval = "1s" }]
    "#;

    #[test]
    fn defaults() {
        let c = parse(MINIMAL).unwrap();
        let e = &c.endpoints[0];
        assert_eq!((e.port, e.unit_id), (502, 1));
        assert_eq!(e.timeout, Duration::from_secs(1));
        assert_eq!((e.max_block_registers, e.max_gap), (125, 0));
        assert_eq!(e.default_group(), Some("main"));
        assert_eq!(e.plan_limits(), PlanLimits::default());
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn every_field() {
        let c = parse(
            r#"
            [[endpoints]]
            name = "gw"
            host = "gateway.local"
            port = 5020
            unit_id = 17
            timeout = "500ms"
            max_block_registers = 60
            max_gap = 3
            poll_groups = [{ name = "fast", interval = "100ms" }, { name = "slow", interval = "2m" }]
            "#,
        )
        .unwrap();
        assert_eq!(
            c.endpoints[0],
            EndpointConfig {
                name: "gw".into(),
                host: "gateway.local".into(),
                port: 5020,
                unit_id: 17,
                timeout: Duration::from_millis(500),
                poll_groups: vec![
                    PollGroup {
                        name: "fast".into(),
                        interval: Duration::from_millis(100),
                    },
                    PollGroup {
                        name: "slow".into(),
                        interval: Duration::from_secs(120),
                    },
                ],
                max_block_registers: 60,
                max_gap: 3,
            }
        );
        let limits = c.endpoints[0].plan_limits();
        assert_eq!((limits.max_registers, limits.max_gap), (60, 3));
    }

    #[test]
    fn serde_errors() {
        let unknown = MINIMAL.replace("host =", "hots = \"x\"\n        host =");
        assert!(
            parse(&unknown)
                .unwrap_err()
                .starts_with("unknown field `hots`, expected one of `name`, `host`"),
            "{unknown}"
        );
        assert_eq!(
            parse(&MINIMAL.replace("\"1s\"", "\"fast\"")).unwrap_err(),
            "invalid duration `fast`, expected a number and a unit among us, ms, s, m, h, d, like \"500ms\""
        );
        assert!(parse(&MINIMAL.replace("10.0.0.5\"", "x\"\n        unit_id = 256")).is_err());
    }

    #[test]
    fn validate_reports_every_problem() {
        let c = parse(
            r#"
            [[endpoints]]
            name = "a"
            host = ""
            timeout = "0s"
            max_block_registers = 126
            poll_groups = [{ name = "g", interval = "0ms" }, { name = "g", interval = "1s" }, { name = "", interval = "1s" }]

            [[endpoints]]
            name = "a"
            host = "h"
            poll_groups = []
            "#,
        )
        .unwrap();
        let messages: Vec<String> = c
            .validate()
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            messages,
            [
                "endpoint 0: empty `host`, expected a non-empty string",
                "endpoint `a`: timeout is 0, expected more than zero",
                "endpoint `a`: max_block_registers is 126, expected 1..=125",
                "endpoint `a`: poll group `g` has interval 0, expected more than zero",
                "endpoint `a`: poll group `g` is defined twice, expected unique names",
                "endpoint `a`: poll group 2 has an empty name, expected a non-empty name",
                "endpoint `a` is defined twice, expected unique names",
                "endpoint `a`: no poll groups, expected at least one",
            ]
        );
        let empty = ModbusConfig { endpoints: vec![] };
        assert_eq!(empty.validate(), Err(vec![ConfigError::NoEndpoints]));
    }
}
