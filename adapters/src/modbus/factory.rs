//! The `modbus` kind of the [`Registry`](crate::Registry).

use crate::registry::{ConfigIssue, SourceEnv, SourceFactory, deserialize};
use crate::source::SampleSource;

use super::config::{ConfigError, ModbusConfig};
use super::poller::ModbusSource;

/// Builds Modbus TCP sources from `[source.NAME]` tables with `kind = "modbus"`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Factory;

impl SourceFactory for Factory {
    fn kind(&self) -> &'static str {
        "modbus"
    }

    fn build(
        &self,
        name: &str,
        config: &toml::Table,
        env: &SourceEnv,
    ) -> Result<Box<dyn SampleSource>, Vec<ConfigIssue>> {
        let config: ModbusConfig = deserialize(config)?;
        config.validate().map_err(|errors| {
            errors
                .iter()
                .map(|e| ConfigIssue::at(&issue_path(&config, e), e.to_string()))
                .collect::<Vec<_>>()
        })?;
        Ok(Box::new(ModbusSource::with_endpoints(
            name,
            config.endpoints,
            env.clock.clone(),
        )))
    }
}

/// The key path a validation error is about.
fn issue_path(config: &ModbusConfig, e: &ConfigError) -> String {
    let endpoint = |name: &str| {
        config
            .endpoints
            .iter()
            .position(|ep| ep.name == name)
            .map_or("endpoints".to_owned(), |i| format!("endpoints.{i}"))
    };
    let group = |ep: &str, group: &str| {
        let base = endpoint(ep);
        config
            .endpoints
            .iter()
            .find(|e| e.name == ep)
            .and_then(|e| e.poll_groups.iter().rposition(|g| g.name == group))
            .map_or(format!("{base}.poll_groups"), |g| {
                format!("{base}.poll_groups.{g}")
            })
    };
    match e {
        ConfigError::NoEndpoints => "endpoints".to_owned(),
        ConfigError::Empty { index, field } => format!("endpoints.{index}.{field}"),
        ConfigError::DuplicateEndpoint(name) => config
            .endpoints
            .iter()
            .rposition(|ep| ep.name == *name)
            .map_or("endpoints".to_owned(), |i| format!("endpoints.{i}.name")),
        ConfigError::NoPollGroups(ep) => format!("{}.poll_groups", endpoint(ep)),
        ConfigError::EmptyGroupName {
            endpoint: ep,
            index,
        } => {
            format!("{}.poll_groups.{index}.name", endpoint(ep))
        }
        ConfigError::DuplicateGroup {
            endpoint: ep,
            group: g,
        } => format!("{}.name", group(ep, g)),
        ConfigError::ZeroInterval {
            endpoint: ep,
            group: g,
        } => {
            format!("{}.interval", group(ep, g))
        }
        ConfigError::ZeroTimeout(ep) => format!("{}.timeout", endpoint(ep)),
        ConfigError::BlockRegisters { endpoint: ep, .. } => {
            format!("{}.max_block_registers", endpoint(ep))
        }
    }
}
