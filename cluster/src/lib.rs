//! Cluster layer.
