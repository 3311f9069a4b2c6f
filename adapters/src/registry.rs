//! The factory trait every adapter implements, and the registry the runtime
//! builds sources from.
//!
//! A topology declares sources as `[source.NAME]` tables with a `kind`. The
//! runtime looks the kind up in a [`Registry`] and asks that kind's
//! [`SourceFactory`] to build a [`SampleSource`] from the rest of the table.
//! Adding a protocol is a new folder under `adapters/src/` with a factory,
//! plus one line in [`Registry::builtin`].

use std::fmt;
use std::sync::Arc;

use twins::Clock;
use twins::actor::ChangeFeed;
use twins::model::Model;

use crate::source::SampleSource;

/// One step of a key path inside a source's table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeySeg {
    Key(String),
    Index(usize),
}

impl fmt::Display for KeySeg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySeg::Key(k) => f.write_str(k),
            KeySeg::Index(i) => write!(f, "[{i}]"),
        }
    }
}

/// A problem with a source's configuration, at a key path inside its
/// `[source.NAME]` table (empty: the table as a whole). `twinrt check`
/// turns the path into `file:line:col`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub path: Vec<KeySeg>,
    pub message: String,
}

impl ConfigIssue {
    /// An issue about the table as a whole.
    pub fn whole(message: impl Into<String>) -> ConfigIssue {
        ConfigIssue {
            path: Vec::new(),
            message: message.into(),
        }
    }

    /// An issue at a dotted path such as `endpoints.0.timeout` (numeric
    /// segments are list indices).
    pub fn at(path: &str, message: impl Into<String>) -> ConfigIssue {
        let path = path
            .split('.')
            .filter(|s| !s.is_empty())
            .map(|s| match s.parse::<usize>() {
                Ok(i) => KeySeg::Index(i),
                Err(_) => KeySeg::Key(s.to_owned()),
            })
            .collect();
        ConfigIssue {
            path,
            message: message.into(),
        }
    }

    /// The path as written in TOML (`endpoints[0].timeout`).
    pub fn dotted(&self) -> String {
        let mut out = String::new();
        for seg in &self.path {
            match seg {
                KeySeg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                KeySeg::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "`{}`: {}", self.dotted(), self.message)
        }
    }
}

/// Deserializes a source's table into `T`, reporting where serde stopped.
pub fn deserialize<T: serde::de::DeserializeOwned>(
    table: &toml::Table,
) -> Result<T, Vec<ConfigIssue>> {
    let value = toml::Value::Table(table.clone());
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e
            .path()
            .iter()
            .filter_map(|seg| match seg {
                serde_path_to_error::Segment::Seq { index } => Some(KeySeg::Index(*index)),
                serde_path_to_error::Segment::Map { key } => Some(KeySeg::Key(key.clone())),
                serde_path_to_error::Segment::Enum { variant } => {
                    Some(KeySeg::Key(variant.clone()))
                }
                serde_path_to_error::Segment::Unknown => None,
            })
            .collect();
        vec![ConfigIssue {
            path,
            message: e.into_inner().message().to_owned(),
        }]
    })
}

/// What a factory may hand to the sources it builds besides their config.
#[derive(Debug, Clone)]
pub struct SourceEnv {
    pub clock: Clock,
    /// The node's model: twin paths and property names by index.
    pub model: Arc<Model>,
    /// Twin changes, for sources that publish northbound.
    pub changes: ChangeFeed,
}

/// Builds sources of one kind. Building does no I/O: `twinrt check` builds
/// every source of a topology to validate it.
pub trait SourceFactory: Send + Sync + fmt::Debug {
    /// The `kind` this factory builds, as written in `[source.NAME]`.
    fn kind(&self) -> &'static str;

    /// Builds source `name` from its table (without `kind`). Returns every
    /// problem found, not only the first.
    fn build(
        &self,
        name: &str,
        config: &toml::Table,
        env: &SourceEnv,
    ) -> Result<Box<dyn SampleSource>, Vec<ConfigIssue>>;
}

/// The source kinds a node knows.
#[derive(Debug, Default)]
pub struct Registry {
    factories: Vec<Arc<dyn SourceFactory>>,
}

impl Registry {
    /// A registry with no kinds.
    pub fn empty() -> Registry {
        Registry::default()
    }

    /// Every adapter of this build: one line each.
    pub fn builtin() -> Registry {
        let mut r = Registry::empty();
        r.register(crate::modbus::Factory);
        r.register(crate::mqtt::Factory);
        r
    }

    /// Adds a kind; a later registration of the same kind replaces the earlier.
    pub fn register(&mut self, factory: impl SourceFactory + 'static) {
        let kind = factory.kind();
        self.factories.retain(|f| f.kind() != kind);
        self.factories.push(Arc::new(factory));
    }

    pub fn get(&self, kind: &str) -> Option<Arc<dyn SourceFactory>> {
        self.factories.iter().find(|f| f.kind() == kind).cloned()
    }

    /// The registered kinds, in registration order.
    pub fn kinds(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.factories.iter().map(|f| f.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_paths_round_trip() {
        let i = ConfigIssue::at("endpoints.0.poll_groups.1.interval", "bad");
        assert_eq!(i.dotted(), "endpoints[0].poll_groups[1].interval");
        assert_eq!(i.to_string(), "`endpoints[0].poll_groups[1].interval`: bad");
        assert_eq!(ConfigIssue::whole("bad").to_string(), "bad");
    }

    #[test]
    fn deserialize_names_the_failing_key() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Inner {
            port: u16,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Outer {
            endpoints: Vec<Inner>,
        }
        let t: toml::Table = toml::from_str("[[endpoints]]\nport = 1\n[[endpoints]]\nport = 70000")
            .expect("valid toml");
        let e = deserialize::<Outer>(&t).expect_err("port out of range");
        assert_eq!(e[0].dotted(), "endpoints[1].port");
    }
}
