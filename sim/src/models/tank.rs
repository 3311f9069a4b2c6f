//! Atmospheric tank with a level controller on the outflow.
//!
//! Mass balance `A·dh/dt = inflow − outflow`, integrated exactly over each
//! step with the flows it reports (so the reported level always equals the
//! integral of the reported flows). The inflow wanders and has surges and
//! drops; a slow PI level controller sets the outflow, and the outflow pump
//! trips now and then, so the level sometimes runs high or low. Near empty the
//! outflow is limited by what is in the tank; near full the inflow backs up.
//! The temperature is the mixed contents: inflow at the inlet temperature,
//! slow losses to ambient.
//!
//! Typical alarm limits at the defaults: level > 80 %, level < 20 %.

use std::time::Duration;

use twins::Value;

use crate::dynamics::{Episode, Wander, measure, measure_rel, uniform};
use crate::params::{ModelParams, NOISE, Param, UPSET_RATE};
use crate::process::{ProcessModel, Signal, SimRng, write_out};

const SIGNALS: &[Signal] = &[
    Signal::f64("level", "%"),
    Signal::f64("inflow", "m3/h"),
    Signal::f64("outflow", "m3/h"),
    Signal::f64("temperature", "degC"),
];

/// The tank's knobs.
pub const PARAMS: &[Param] = &[
    NOISE,
    UPSET_RATE,
    AREA,
    HEIGHT,
    MEAN_INFLOW,
    LEVEL_SETPOINT,
    CONTROLLER_GAIN,
    INTEGRAL_TIME,
    MAX_OUTFLOW,
    INLET_TEMP,
];

const AREA: Param = Param::new("area", 8.0, (0.1, 10_000.0), "m2", "cross-section");
const HEIGHT: Param = Param::new("height", 10.0, (0.5, 100.0), "m", "height at 100 % level");
const MEAN_INFLOW: Param = Param::new("mean_inflow", 60.0, (0.0, 100_000.0), "m3/h", "mean inflow");
const LEVEL_SETPOINT: Param = Param::new(
    "level_setpoint",
    50.0,
    (5.0, 95.0),
    "%",
    "level controller setpoint",
);
const CONTROLLER_GAIN: Param = Param::new(
    "controller_gain",
    0.015,
    (0.0, 10.0),
    "1/%",
    "outflow change per % level error, as a share of mean_inflow",
);
const INTEGRAL_TIME: Param = Param::new(
    "integral_time",
    3600.0,
    (10.0, 1e6),
    "s",
    "level controller integral time",
);
const MAX_OUTFLOW: Param = Param::new(
    "max_outflow",
    150.0,
    (0.1, 100_000.0),
    "m3/h",
    "outflow pump capacity",
);
const INLET_TEMP: Param = Param::new(
    "inlet_temp",
    40.0,
    (-20.0, 300.0),
    "degC",
    "mean inflow temperature",
);

/// See the module docs.
#[derive(Debug, Clone)]
pub struct Tank {
    noise: f64,
    upset: f64,
    area: f64,
    height: f64,
    setpoint: f64,
    gain: f64,
    integral_time: f64,
    max_outflow: f64,
    mean_inflow: f64,

    inflow: Wander,
    upset_flow: Episode,
    upset_sign: f64,
    pump_trip: Episode,
    inlet_temp: Wander,
    ambient: Wander,
    integral: f64,
    /// Liquid height, m.
    h: f64,
    temperature: f64,
}

impl Tank {
    pub fn new(p: &ModelParams) -> Self {
        let mean_inflow = p.value(&MEAN_INFLOW);
        let height = p.value(&HEIGHT);
        let setpoint = p.value(&LEVEL_SETPOINT);
        let inlet = p.value(&INLET_TEMP);
        Self {
            noise: p.value(&NOISE),
            upset: p.value(&UPSET_RATE),
            area: p.value(&AREA),
            height,
            setpoint,
            gain: p.value(&CONTROLLER_GAIN) * mean_inflow,
            integral_time: p.value(&INTEGRAL_TIME),
            max_outflow: p.value(&MAX_OUTFLOW),
            mean_inflow,
            inflow: Wander::new(mean_inflow, 0.12 * mean_inflow, 1800.0),
            upset_flow: Episode::new(1.0 / 6.0, (600.0, 3600.0), (0.3, 0.9)),
            upset_sign: 1.0,
            pump_trip: Episode::new(1.0 / 12.0, (600.0, 2400.0), (1.0, 1.0)),
            inlet_temp: Wander::new(inlet, 3.0, 3600.0),
            ambient: Wander::new(20.0, 5.0, 6.0 * 3600.0),
            integral: 0.0,
            h: setpoint / 100.0 * height,
            temperature: inlet,
        }
    }

    fn level_pct(&self) -> f64 {
        self.h / self.height * 100.0
    }
}

impl ProcessModel for Tank {
    fn kind(&self) -> &'static str {
        "tank"
    }

    fn signals(&self) -> &'static [Signal] {
        SIGNALS
    }

    fn step(&mut self, dt: Duration, rng: &mut SimRng, out: &mut [Value]) {
        let dt_s = dt.as_secs_f64();
        let dt_h = dt_s / 3600.0;
        let (noise, upset) = (self.noise, self.upset);

        let was_upset = self.upset_flow.active();
        let surge = self.upset_flow.step(dt_s, upset, rng);
        if !was_upset && self.upset_flow.active() {
            self.upset_sign = if uniform(rng, 0.0, 1.0) < 0.5 {
                1.0
            } else {
                -1.0
            };
        }
        let mut inflow =
            (self.inflow.step(dt_s, noise, rng) * (1.0 + self.upset_sign * surge)).max(0.0);

        // PI level controller on the outflow (reverse acting), with anti-windup.
        let error = self.level_pct() - self.setpoint;
        let demand = self.mean_inflow + self.gain * (error + self.integral);
        let mut outflow = demand.clamp(0.0, self.max_outflow);
        if demand == outflow {
            self.integral += error * dt_s / self.integral_time;
        }
        if self.pump_trip.step(dt_s, upset, rng) > 0.0 {
            outflow = 0.0;
        }

        // Keep the volume within the tank: the pump cannot draw what is not
        // there, and the inflow backs up when it is full.
        let volume = self.h * self.area;
        let capacity = self.height * self.area;
        if dt_h > 0.0 {
            outflow = outflow.min(inflow + volume / dt_h);
            inflow = inflow.min(outflow + (capacity - volume) / dt_h);
        }
        let new_volume = (volume + (inflow - outflow) * dt_h).clamp(0.0, capacity);

        // Mixing: inflow at the inlet temperature, losses to ambient.
        let inlet = self.inlet_temp.step(dt_s, noise, rng);
        let ambient = self.ambient.step(dt_s, noise, rng);
        let mixed = (inflow * dt_h / new_volume.max(0.5)).min(50.0);
        self.temperature = inlet + (self.temperature - inlet) * (-mixed).exp();
        self.temperature = ambient + (self.temperature - ambient) * (-dt_s / 86_400.0).exp();
        self.h = new_volume / self.area;

        let values = [
            measure(rng, self.level_pct(), 0.1, noise).clamp(0.0, 100.0),
            measure_rel(rng, inflow, 0.01, noise),
            measure_rel(rng, outflow, 0.01, noise),
            measure(rng, self.temperature, 0.1, noise),
        ];
        write_out(out, SIGNALS, &values);
    }
}
