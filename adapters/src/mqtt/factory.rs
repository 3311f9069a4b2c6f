//! The `mqtt` kind of the [`Registry`](crate::Registry).
//!
//! A source with `northbound` set is built as a [`SampleSource`] running
//! two connections: the [`MqttSource`] subscriber and the
//! [`NorthboundPublisher`] (client id `CLIENT_ID-nb`). It stops when
//! shutdown fires, or when either fails.

use std::fmt;
use std::sync::Arc;

use tokio::sync::watch;

use crate::registry::{ConfigIssue, SourceEnv, SourceFactory, deserialize};
use crate::source::{
    BindError, PointSpec, PointWriter, SampleSink, SampleSource, SourceFuture, SourceStats, Stat,
};

use super::client::MqttSource;
use super::config::{ConfigError, MqttConfig};
use super::northbound::{NorthboundMetrics, NorthboundPublisher};

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
        // Reads the PEM files now, so a bad one is a configuration error.
        if let Err(e) = super::tls::transport(&valid.config) {
            return Err(vec![ConfigIssue::at(&issue_path(&e), e.to_string())]);
        }
        let publisher = NorthboundPublisher::new(
            name,
            &valid.config,
            Arc::clone(&env.model),
            env.changes.clone(),
        );
        let source = MqttSource::new(name, valid, env.clock.clone());
        Ok(match publisher {
            None => Box::new(source),
            Some(publisher) => Box::new(WithNorthbound {
                source: Box::new(source),
                publisher,
            }),
        })
    }
}

/// An MQTT source that also publishes twin changes northbound.
#[derive(Debug)]
struct WithNorthbound {
    source: Box<MqttSource>,
    publisher: NorthboundPublisher,
}

impl SampleSource for WithNorthbound {
    fn name(&self) -> &str {
        self.source.name()
    }

    fn bind(&mut self, points: Vec<PointSpec>) -> Result<(), Vec<BindError>> {
        self.source.bind(points)
    }

    fn run(
        self: Box<Self>,
        sink: Arc<dyn SampleSink>,
        shutdown: watch::Receiver<bool>,
    ) -> SourceFuture {
        let WithNorthbound { source, publisher } = *self;
        let source = source.run(sink, shutdown.clone());
        let publisher = publisher.run(shutdown);
        Box::pin(async move {
            tokio::pin!(source, publisher);
            // Either ends early only on an error; the other then stops too.
            tokio::select! {
                r = &mut source => {
                    r?;
                    publisher.await
                }
                r = &mut publisher => {
                    r?;
                    source.await
                }
            }
        })
    }

    fn stats(&self) -> Option<Arc<dyn SourceStats>> {
        Some(Arc::new(CompositeStats {
            name: self.source.name().to_owned(),
            source: self.source.stats(),
            northbound: self.publisher.metrics(),
        }))
    }

    fn writer(&self) -> Option<Arc<dyn PointWriter>> {
        self.source.writer()
    }
}

/// The subscriber's stats, if any, and the publisher's.
struct CompositeStats {
    name: String,
    source: Option<Arc<dyn SourceStats>>,
    northbound: Arc<NorthboundMetrics>,
}

impl fmt::Debug for CompositeStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompositeStats")
            .field("name", &self.name)
            .finish()
    }
}

impl SourceStats for CompositeStats {
    fn stats(&self) -> Vec<Stat> {
        let mut out = self.source.as_ref().map(|s| s.stats()).unwrap_or_default();
        out.extend(self.northbound.stats(&self.name));
        out
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
        ConfigError::Interval { .. } => "northbound.interval".to_owned(),
        ConfigError::BrokerHost { .. } => "host".to_owned(),
        ConfigError::BrokerTls => "tls".to_owned(),
        ConfigError::NoSystemRoots { .. } => "ca_file".to_owned(),
        ConfigError::WithoutTls { field }
        | ConfigError::CertWithoutKey { field, .. }
        | ConfigError::Pem { field, .. } => (*field).to_owned(),
    }
}
