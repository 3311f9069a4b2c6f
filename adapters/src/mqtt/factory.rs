//! The `mqtt` kind of the [`Registry`](crate::Registry).

use crate::registry::{ConfigIssue, SourceEnv, SourceFactory, deserialize};
use crate::source::SampleSource;

use super::client::MqttSource;
use super::config::{ConfigError, MqttConfig};

/// Builds MQTT sources from `[source.NAME]` tables with `kind = "mqtt"`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Factory;

impl SourceFactory for Factory {
    fn kind(&self) -> &'static str {
        "mqtt"
    }

    fn build(
        &self,
        name: &str,
        config: &toml::Table,
        env: &SourceEnv,
    ) -> Result<Box<dyn SampleSource>, Vec<ConfigIssue>> {
        let config: MqttConfig = deserialize(config)?;
        let valid = config.validate().map_err(|errors| {
            errors
                .iter()
                .map(|e| ConfigIssue::at(&issue_path(e), e.to_string()))
                .collect::<Vec<_>>()
        })?;
        Ok(Box::new(MqttSource::new(name, valid, env.clock.clone())))
    }
}

/// The key path a validation error is about.
fn issue_path(e: &ConfigError) -> String {
    match e {
        ConfigError::Empty { field, .. } => (*field).to_owned(),
        ConfigError::PasswordWithoutUsername => "password".to_owned(),
        ConfigError::KeepAlive { .. } => "keep_alive".to_owned(),
        ConfigError::Topic { index, .. } => format!("subscriptions.{index}.topic"),
        ConfigError::NoPoints { index } => format!("subscriptions.{index}.payload.points"),
        ConfigError::Pointer { index, field, .. } => {
            format!("subscriptions.{index}.payload.{field}")
        }
        ConfigError::Prefix { .. } => "northbound.prefix".to_owned(),
    }
}
