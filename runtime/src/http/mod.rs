//! The node's HTTP surface: the JSON API, live streams (SSE), the dashboard,
//! `/metrics`, `/healthz` and `/readyz`.

pub mod dashboard;
pub mod metrics;

pub use metrics::ApiMetrics;
