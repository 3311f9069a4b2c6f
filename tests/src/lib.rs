//! Shared helpers for the cross-crate and multi-process tests.
//!
//! - [`acme_dir`], [`library_dir`]: the shipped models, found from this
//!   crate's manifest directory.
//! - [`DurableLine`]: a `durable ...` line of `twinrt run --report-durable`.
//! - [`StoreSnapshot`]: everything a node's store holds for the twins of a
//!   model, read directly with no node running.
//!
//! The multi-process tests run the real binary, built by this crate as
//! `twinrt-under-test` (see `src/bin/twinrt-under-test.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use twins::model::Model;
use twins::store::{EventRecord, HistoryPoint, Store, TwinRecord};
use twins::{Timestamp, TwinPath};

/// The workspace root.
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the workspace")
        .to_path_buf()
}

/// The example company `examples/acme` (223 twins).
pub fn acme_dir() -> PathBuf {
    workspace_dir().join("examples").join("acme")
}

/// The shipped class library `models/library` (classes only, no topology).
pub fn library_dir() -> PathBuf {
    workspace_dir().join("models").join("library")
}

/// What one `durable flushes=F history=H events=E states=S` line says: the
/// writer's counts since the process started, all acknowledged (on disk).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DurableLine {
    pub flushes: u64,
    pub history: u64,
    pub events: u64,
    pub states: u64,
}

impl DurableLine {
    /// Parses a `durable ...` line; `None` for any other line.
    pub fn parse(line: &str) -> Option<DurableLine> {
        let rest = line.trim_end().strip_prefix("durable ")?;
        let mut d = DurableLine::default();
        let mut seen = 0;
        for field in rest.split(' ') {
            let (key, value) = field.split_once('=')?;
            let value: u64 = value.parse().ok()?;
            match key {
                "flushes" => d.flushes = value,
                "history" => d.history = value,
                "events" => d.events = value,
                "states" => d.states = value,
                _ => return None,
            }
            seen += 1;
        }
        (seen == 4).then_some(d)
    }
}

/// One twin's persisted data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TwinData {
    pub state: Option<TwinRecord>,
    /// History of each property that has any, ascending by `(ts, seq)`.
    pub history: BTreeMap<String, Vec<HistoryPoint>>,
    pub events: Vec<EventRecord>,
}

/// What a store holds for every twin of a model, keyed by twin path.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreSnapshot {
    pub twins: BTreeMap<TwinPath, TwinData>,
}

impl StoreSnapshot {
    /// Reads every twin of `model` from `store`: its state, the history of
    /// each of its class's properties and its journal.
    pub fn read(store: &dyn Store, model: &Model) -> anyhow::Result<StoreSnapshot> {
        let mut twins = BTreeMap::new();
        for t in &model.twins {
            let id = t.path.id();
            let state = store
                .load_state(id)
                .with_context(|| format!("load the state of `{}`", t.path))?;
            let mut history = BTreeMap::new();
            for p in &model.classes[t.class].props {
                let points = store
                    .history(id, &p.name, Timestamp(i64::MIN), Timestamp::MAX, usize::MAX)
                    .with_context(|| format!("read the history of `{}` {}", t.path, p.name))?;
                if !points.is_empty() {
                    history.insert(p.name.clone(), points);
                }
            }
            let events = store
                .events(id, 0, usize::MAX)
                .with_context(|| format!("read the journal of `{}`", t.path))?;
            twins.insert(
                t.path.clone(),
                TwinData {
                    state,
                    history,
                    events,
                },
            );
        }
        Ok(StoreSnapshot { twins })
    }

    /// Opens the fjall store of a node whose `--data-dir` was `data_dir`
    /// (no node may be running on it) and reads it.
    pub fn open(data_dir: &Path, model: &Model) -> anyhow::Result<StoreSnapshot> {
        let store = runtime::store::open_default(data_dir)
            .with_context(|| format!("open the store in `{}`", data_dir.display()))?;
        StoreSnapshot::read(&store, model)
    }

    /// History points of every twin and property.
    pub fn history_count(&self) -> u64 {
        self.twins
            .values()
            .flat_map(|t| t.history.values())
            .map(|h| h.len() as u64)
            .sum()
    }

    /// Journal entries of every twin.
    pub fn event_count(&self) -> u64 {
        self.twins.values().map(|t| t.events.len() as u64).sum()
    }

    /// Twins with a persisted state.
    pub fn state_count(&self) -> usize {
        self.twins.values().filter(|t| t.state.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durable_lines_parse_and_other_lines_do_not() {
        assert_eq!(
            DurableLine::parse("durable flushes=3 history=1339 events=0 states=311\n"),
            Some(DurableLine {
                flushes: 3,
                history: 1339,
                events: 0,
                states: 311
            })
        );
        assert_eq!(DurableLine::parse("durable flushes=3 history=1"), None);
        assert_eq!(
            DurableLine::parse("durable flushes=3 history=x events=0 states=1"),
            None
        );
        assert_eq!(DurableLine::parse("twinrt  acme  up 1s"), None);
    }
}
