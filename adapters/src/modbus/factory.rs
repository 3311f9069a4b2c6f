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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use twins::Clock;
    use twins::actor::ChangeFeed;

    use super::*;
    use crate::source::PointSpec;

    fn env() -> SourceEnv {
        SourceEnv {
            clock: Clock::system(),
            model: Arc::new(twins::model::compile(&[]).expect("an empty model compiles")),
            changes: ChangeFeed::new(4),
        }
    }

    fn spec(address: &str) -> PointSpec {
        PointSpec {
            twin: twins::TwinPath::parse("site/plc").unwrap(),
            prop: "p".into(),
            class: "Plc".into(),
            sim: None,
            address: address.into(),
            ty: twins::ValueType::F64,
            unit: None,
            range: None,
            period: None,
            states: Vec::new(),
        }
    }

    #[test]
    fn builds_one_source_over_several_endpoints() {
        let table: toml::Table = toml::from_str(
            r#"
            [[endpoints]]
            name = "boiler"
            host = "10.0.0.5"
            poll_groups = [{ name = "fast", interval = "100ms" }]
            [[endpoints]]
            name = "chiller"
            host = "10.0.0.6"
            poll_groups = [{ name = "slow", interval = "5s" }]
            "#,
        )
        .unwrap();
        let mut source = Factory
            .build("plant", &table, &env())
            .expect("two endpoints build");
        assert_eq!(source.name(), "plant");
        source
            .bind(vec![
                spec("holding:0;endpoint=boiler"),
                spec("coil:1;endpoint=chiller;group=slow"),
            ])
            .expect("each point names its endpoint");
        let errors = source
            .bind(vec![spec("holding:0;endpoint=chiler")])
            .unwrap_err();
        assert!(
            errors[0].message.ends_with("did you mean `chiller`?"),
            "{}",
            errors[0]
        );
        let stats = source.stats().expect("stats").stats();
        let endpoints: Vec<&str> = stats
            .iter()
            .filter(|s| s.name == "modbus_polls")
            .map(|s| s.labels[1].1.as_str())
            .collect();
        assert_eq!(endpoints, ["boiler", "chiller"]);
    }
}
