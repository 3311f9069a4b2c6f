//! # adapters
//!
//! Edge adapters bind twins' sourced properties to real equipment. Every
//! adapter (and the simulator) implements [`SampleSource`]: the runtime hands
//! it the points to deliver ([`PointSpec`], one [`twins::PointId`] each) and a
//! [`SampleSink`], and the source delivers batches of [`twins::Sample`] until
//! shut down. Modbus TCP and MQTT adapters live in their own folders
//! (`modbus/`, `mqtt/`) as they arrive.

pub mod modbus;
pub mod mqtt;
pub mod registry;
mod source;

pub use registry::{ConfigIssue, KeySeg, Registry, SourceEnv, SourceFactory};
pub use source::{
    BindError, PointSpec, PointWriter, SampleSink, SampleSource, SinkClosed, SourceError,
    SourceFuture, SourceStats, Stat, StatKind, WriteError, WriteFuture,
};
