//! The process-model interface: named, typed signals stepped through time.

use std::time::Duration;

use twins::{Value, ValueType};

/// The random source of the simulated world: ChaCha with 8 rounds, fast and
/// reproducible on every platform. Seed one per device with
/// [`device_seed`](crate::device_seed).
pub type SimRng = rand_chacha::ChaCha8Rng;

/// One output of a process model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal {
    pub name: &'static str,
    pub ty: ValueType,
    pub unit: &'static str,
}

impl Signal {
    /// A real-valued signal.
    pub const fn f64(name: &'static str, unit: &'static str) -> Self {
        Self {
            name,
            ty: ValueType::F64,
            unit,
        }
    }

    /// An on/off signal.
    pub const fn bool(name: &'static str) -> Self {
        Self {
            name,
            ty: ValueType::Bool,
            unit: "",
        }
    }
}

/// A piece of simulated plant: advances its physics and reports its
/// measurements. Deterministic: the same parameters, steps and random source
/// give the same values.
pub trait ProcessModel: Send + std::fmt::Debug {
    /// The model's name, as in [`known_models`](crate::known_models).
    fn kind(&self) -> &'static str;

    /// What [`step`](Self::step) writes, in order.
    fn signals(&self) -> &'static [Signal];

    /// Advances by `dt` and writes the current values into `out` (same order
    /// as [`signals`](Self::signals)); all randomness comes from `rng`. Does not
    /// allocate. `out` shorter than `signals()` gets the leading signals only.
    fn step(&mut self, dt: Duration, rng: &mut SimRng, out: &mut [Value]);
}

/// Writes `values` into `out` as typed values, as many as fit.
pub(crate) fn write_out(out: &mut [Value], signals: &[Signal], values: &[f64]) {
    for ((slot, sig), &v) in out.iter_mut().zip(signals).zip(values) {
        *slot = match sig.ty {
            ValueType::Bool => Value::Bool(v != 0.0),
            _ => Value::F64(v),
        };
    }
}
