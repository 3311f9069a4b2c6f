//! The twinrt node.

pub mod store;
