//! # sim
//!
//! The simulated physical world that twins run against: process models that
//! turn time and a seeded random source into named, typed signal values. Not
//! the twins themselves; this crate knows only `twins`' value types.
//!
//! - [`process`]: the [`ProcessModel`] interface, [`Signal`] and [`SimRng`].
//! - [`models`]: the process models (pump, control valve, tank, heat
//!   exchanger, compressor, electric motor) and the [`model_for`] factory.
//! - [`params`]: [`ModelParams`], the knobs of a model with their defaults.
//! - [`random_walk`]: [`RandomWalk`], the fallback for a property with no model.
//! - [`seed`]: [`device_seed`], stable per-device seeds from one scenario seed.
//!
//! Everything is deterministic for a seed and never reads a clock: the caller
//! passes each step's `dt`.
//!
//! ```
//! use std::time::Duration;
//!
//! use sim::{ModelParams, device_rng, model_for};
//! use twins::Value;
//!
//! let mut pump = model_for("centrifugal_pump", &ModelParams::new()).unwrap();
//! let mut rng = device_rng(42, "acme/east/plant-3/crude-unit/p-101");
//! let mut out = vec![Value::Null; pump.signals().len()];
//! for _ in 0..60 {
//!     pump.step(Duration::from_secs(1), &mut rng, &mut out);
//! }
//! let flow = pump.signals().iter().position(|s| s.name == "flow").unwrap();
//! assert_eq!(pump.signals()[flow].unit, "m3/h");
//! assert!(out[flow].as_f64().unwrap() > 100.0);
//! ```

mod dynamics;
pub mod models;
pub mod params;
pub mod process;
pub mod random_walk;
pub mod seed;

pub use models::{known_models, model_for};
pub use params::{ModelParams, Param, ParamError, params_for};
pub use process::{ProcessModel, Signal, SimRng};
pub use random_walk::RandomWalk;
pub use seed::{device_rng, device_seed};
