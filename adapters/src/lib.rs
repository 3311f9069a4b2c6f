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
mod source;

pub use source::{
    BindError, PointSpec, SampleSink, SampleSource, SinkClosed, SourceError, SourceFuture,
};
