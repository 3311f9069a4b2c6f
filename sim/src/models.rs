//! The process models and their registry.

mod compressor;
mod heat_exchanger;
mod motor;
mod pump;
mod tank;
mod valve;

pub use compressor::Compressor;
pub use heat_exchanger::HeatExchanger;
pub use motor::ElectricMotor;
pub use pump::CentrifugalPump;
pub use tank::Tank;
pub use valve::ControlValve;

use crate::params::{ModelParams, Param};
use crate::process::ProcessModel;

pub(crate) const KNOWN: &[&str] = &[
    "centrifugal_pump",
    "control_valve",
    "tank",
    "heat_exchanger",
    "compressor",
    "electric_motor",
];

/// The names [`model_for`] accepts.
pub fn known_models() -> &'static [&'static str] {
    KNOWN
}

/// A new process model of `kind` with the given knobs (unknown knobs are
/// ignored; [`ModelParams::check`] reports them), `None` for an unknown kind.
pub fn model_for(kind: &str, params: &ModelParams) -> Option<Box<dyn ProcessModel>> {
    Some(match kind {
        "centrifugal_pump" => Box::new(CentrifugalPump::new(params)),
        "control_valve" => Box::new(ControlValve::new(params)),
        "tank" => Box::new(Tank::new(params)),
        "heat_exchanger" => Box::new(HeatExchanger::new(params)),
        "compressor" => Box::new(Compressor::new(params)),
        "electric_motor" => Box::new(ElectricMotor::new(params)),
        _ => return None,
    })
}

pub(crate) fn params_for(kind: &str) -> Option<&'static [Param]> {
    Some(match kind {
        "centrifugal_pump" => pump::PARAMS,
        "control_valve" => valve::PARAMS,
        "tank" => tank::PARAMS,
        "heat_exchanger" => heat_exchanger::PARAMS,
        "compressor" => compressor::PARAMS,
        "electric_motor" => motor::PARAMS,
        _ => return None,
    })
}
