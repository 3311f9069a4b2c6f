//! # runtime
//!
//! The twinrt node: it reads a model directory, opens the store, spawns the
//! twin tree, starts the sources and serves the CLI (`twinrt`).
//!
//! - [`node`]: the composition root ([`node::Node`]).
//! - [`store`]: the embedded fjall store.
//! - [`audit`]: the tamper-evident audit log ([`audit::AuditLog`],
//!   [`audit::verify`]).
//! - [`model_dir`]: reading and compiling a model directory.
//! - [`sim_source`]: the simulator as a sample source.
//! - [`router`]: routing samples from sources to twins.
//! - [`summary`]: the live terminal summary.
//! - [`http`]: the HTTP API, live streams, dashboard and `/metrics`.
//! - [`metrics`] and [`health`]: what `/metrics`, `/healthz` and `/readyz` report.
//! - [`cli`]: the `twinrt` subcommands, and [`bench`] for `twinrt bench`.
//! - [`client`]: the command-line client of a running node (`twinrt get`,
//!   `watch`, `alarms`, `history`).

pub mod audit;
pub mod bench;
pub mod cli;
pub mod client;
pub mod edge;
pub mod health;
pub mod http;
pub mod metrics;
pub mod model_dir;
pub mod node;
pub mod router;
pub mod sim_source;
pub mod store;
pub mod summary;
