//! # cluster
//!
//! The location-transparent layer. Callers address twins through a
//! [`TwinDirectory`], which resolves a path, id or alias to a [`TwinRef`];
//! nothing above this crate may assume the twin is local. Today the
//! [`LocalDirectory`] serves a single node hosting the whole topology;
//! remote nodes (ractor_cluster) arrive behind the same interface.

mod directory;

pub use directory::{DEFAULT_CALL_TIMEOUT, DirectoryError, LocalDirectory, TwinDirectory, TwinRef};
