//! The sample-source trait every edge adapter and simulator implements.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use twins::{PointId, Sample, Timestamp, TwinPath, Value, ValueType};

/// One point a source is asked to deliver, in the order the source receives
/// them: the point's [`twins::PointId`] is its index in that list.
#[derive(Debug, Clone, PartialEq)]
pub struct PointSpec {
    pub twin: TwinPath,
    /// Name of the sourced property the point feeds.
    pub prop: String,
    /// Class of the twin (simulators pick a process model by it).
    pub class: String,
    /// The class's simulation hint, if any.
    pub sim: Option<String>,
    /// Source-specific address as written in the topology (may be empty for
    /// simulated points that were not bound explicitly).
    pub address: String,
    pub ty: ValueType,
    pub unit: Option<String>,
    pub range: Option<(f64, f64)>,
    /// Expected sample period.
    pub period: Option<Duration>,
    /// Enum state names, in index order.
    pub states: Vec<String>,
}

/// Why a point could not be bound.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("source `{source_name}`: point `{twin}.{prop}` address `{address}`: {message}")]
pub struct BindError {
    pub source_name: String,
    pub twin: TwinPath,
    pub prop: String,
    pub address: String,
    pub message: String,
}

/// Why a running source stopped.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source `{source_name}` failed: {message}")]
    Failed {
        source_name: String,
        message: String,
    },
    #[error("source `{0}`: the node stopped accepting samples")]
    SinkClosed(String),
}

/// Where a source delivers its batches. Implemented by the runtime, which
/// routes each sample to its twin.
pub trait SampleSink: Send + Sync + fmt::Debug {
    /// Delivers one batch; samples of one twin should be contiguous (one
    /// batch per device is ideal). `arrival` is when the batch reached the node.
    fn deliver(&self, samples: Vec<Sample>, arrival: Timestamp) -> Result<(), SinkClosed>;
}

/// The node no longer accepts samples (it is shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sample sink closed")]
pub struct SinkClosed;

/// A future a source runs until the shutdown signal fires.
pub type SourceFuture = Pin<Box<dyn Future<Output = Result<(), SourceError>> + Send>>;

/// A source of samples: a Modbus poller, an MQTT subscription, a simulator.
pub trait SampleSource: Send + fmt::Debug {
    /// The source's name in the topology.
    fn name(&self) -> &str;

    /// Checks and takes the points to deliver. Returns every point that
    /// cannot be bound, not only the first.
    fn bind(&mut self, points: Vec<PointSpec>) -> Result<(), Vec<BindError>>;

    /// Delivers samples into `sink` until `shutdown` resolves.
    fn run(
        self: Box<Self>,
        sink: Arc<dyn SampleSink>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> SourceFuture;

    /// The source's counters and gauges; asked before [`SampleSource::run`],
    /// they keep counting while it runs.
    fn stats(&self) -> Option<Arc<dyn SourceStats>> {
        None
    }

    /// Writes to the source's writable points (setpoints), if it has any;
    /// asked after [`SampleSource::bind`], before [`SampleSource::run`].
    fn writer(&self) -> Option<Arc<dyn PointWriter>> {
        None
    }
}

/// Whether a [`Stat`] only grows or goes up and down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatKind {
    Counter,
    Gauge,
}

/// One counter or gauge of a source, labelled (per endpoint, per broker).
#[derive(Debug, Clone, PartialEq)]
pub struct Stat {
    /// Metric name without the node prefix, `snake_case` (`modbus_polls`).
    pub name: &'static str,
    pub help: &'static str,
    pub kind: StatKind,
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

/// Reads a source's counters while it runs.
pub trait SourceStats: Send + Sync + fmt::Debug {
    fn stats(&self) -> Vec<Stat>;
}

/// Why a write to a point did not happen.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WriteError {
    /// The point is not on the source's allow-list of writable points.
    #[error("point {0:?} is not writable: only points marked writable accept writes")]
    NotWritable(PointId),
    /// The value does not fit the point (type, range, encoding).
    #[error("cannot write {value} to point {point:?}: {message}")]
    Invalid {
        point: PointId,
        value: String,
        message: String,
    },
    /// The device refused or could not be reached.
    #[error("write to point {point:?} failed: {message}")]
    Failed { point: PointId, message: String },
    /// The source is not running.
    #[error("the source is not running")]
    Stopped,
}

/// A future a write resolves to.
pub type WriteFuture<'a> = Pin<Box<dyn Future<Output = Result<(), WriteError>> + Send + 'a>>;

/// Writes setpoints through a running source.
pub trait PointWriter: Send + Sync + fmt::Debug {
    /// Writes `value` to `point` (its index in the bound list) and resolves
    /// when the device confirmed it.
    fn write(&self, point: PointId, value: Value) -> WriteFuture<'_>;
}
