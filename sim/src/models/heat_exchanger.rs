//! Counter-flow shell-and-tube cooler: a hot process stream cooled by water.
//!
//! Steady-state duty from effectiveness–NTU for counter-flow,
//! `q = ε·Cmin·(hot_in − cold_in)`, reached through a first-order lag (the
//! exchanger's thermal inertia) and never more than the second law allows at
//! the current inlet temperatures; outlet temperatures follow from the duty
//! on each side, so the hot stream always cools, the cold one always warms,
//! and both sides carry the same duty. Fouling slowly lowers UA until the
//! exchanger is cleaned. The cooling-water flow drops now and then (a
//! cooling-water pump trip) and the hot inlet runs hot now and then.
//!
//! Typical alarm limits at the defaults: hot outlet > 70 degC, cold outlet
//! > 55 degC.

use std::time::Duration;

use twins::Value;

use crate::dynamics::{Episode, Wander, approach, measure, measure_rel};
use crate::params::{ModelParams, NOISE, Param, UPSET_RATE};
use crate::process::{ProcessModel, Signal, SimRng, write_out};

const SIGNALS: &[Signal] = &[
    Signal::f64("hot_in_temp", "degC"),
    Signal::f64("hot_out_temp", "degC"),
    Signal::f64("cold_in_temp", "degC"),
    Signal::f64("cold_out_temp", "degC"),
    Signal::f64("flow", "m3/h"),
    Signal::f64("duty", "kW"),
];

/// The exchanger's knobs.
pub const PARAMS: &[Param] = &[
    NOISE,
    UPSET_RATE,
    UA,
    HOT_FLOW,
    HOT_CP,
    COLD_FLOW,
    COLD_CP,
    HOT_IN_TEMP,
    COLD_IN_TEMP,
    FOULING_PER_DAY,
    INITIAL_FOULING,
    THERMAL_TAU,
];

const UA: Param = Param::new(
    "ua",
    80.0,
    (0.01, 1e6),
    "kW/K",
    "overall heat transfer coefficient × area when clean",
);
const HOT_FLOW: Param = Param::new(
    "hot_flow",
    100.0,
    (0.1, 1e6),
    "m3/h",
    "mean hot-side (process) flow; the `flow` signal",
);
const HOT_CP: Param = Param::new(
    "hot_cp",
    1800.0,
    (100.0, 10_000.0),
    "kJ/(m3.K)",
    "hot stream volumetric heat capacity (light hydrocarbon)",
);
const COLD_FLOW: Param = Param::new(
    "cold_flow",
    150.0,
    (0.1, 1e6),
    "m3/h",
    "mean cooling-water flow",
);
const COLD_CP: Param = Param::new(
    "cold_cp",
    4180.0,
    (100.0, 10_000.0),
    "kJ/(m3.K)",
    "cooling-water volumetric heat capacity",
);
const HOT_IN_TEMP: Param = Param::new(
    "hot_in_temp",
    120.0,
    (-50.0, 600.0),
    "degC",
    "mean hot inlet temperature",
);
const COLD_IN_TEMP: Param = Param::new(
    "cold_in_temp",
    25.0,
    (-20.0, 100.0),
    "degC",
    "mean cooling-water inlet temperature",
);
const FOULING_PER_DAY: Param = Param::new(
    "fouling_per_day",
    0.02,
    (0.0, 1.0),
    "1/d",
    "share of clean UA lost per day",
);
const INITIAL_FOULING: Param = Param::new(
    "initial_fouling",
    0.1,
    (0.0, 0.5),
    "",
    "share of clean UA lost at the start",
);
const THERMAL_TAU: Param = Param::new(
    "thermal_tau",
    180.0,
    (1.0, 7200.0),
    "s",
    "time constant of the outlet temperatures",
);

/// Fouling at which the exchanger is taken for cleaning.
const CLEAN_AT: f64 = 0.45;

/// See the module docs.
#[derive(Debug, Clone)]
pub struct HeatExchanger {
    noise: f64,
    upset: f64,
    ua: f64,
    hot_cp: f64,
    cold_cp: f64,
    fouling_per_s: f64,
    tau: f64,

    hot_flow: Wander,
    cold_flow: Wander,
    cw_trip: Episode,
    hot_in: Wander,
    hot_upset: Episode,
    cold_in: Wander,
    fouling: f64,
    duty: f64,
}

impl HeatExchanger {
    pub fn new(p: &ModelParams) -> Self {
        let hot_flow = p.value(&HOT_FLOW);
        let cold_flow = p.value(&COLD_FLOW);
        let mut hx = Self {
            noise: p.value(&NOISE),
            upset: p.value(&UPSET_RATE),
            ua: p.value(&UA),
            hot_cp: p.value(&HOT_CP),
            cold_cp: p.value(&COLD_CP),
            fouling_per_s: p.value(&FOULING_PER_DAY) / 86_400.0,
            tau: p.value(&THERMAL_TAU),
            hot_flow: Wander::new(hot_flow, 0.08 * hot_flow, 1800.0),
            cold_flow: Wander::new(cold_flow, 0.05 * cold_flow, 3600.0),
            cw_trip: Episode::new(1.0 / 8.0, (600.0, 2400.0), (0.4, 0.7)),
            hot_in: Wander::new(p.value(&HOT_IN_TEMP), 4.0, 3600.0),
            hot_upset: Episode::new(1.0 / 12.0, (900.0, 3600.0), (8.0, 20.0)),
            cold_in: Wander::new(p.value(&COLD_IN_TEMP), 2.0, 4.0 * 3600.0),
            fouling: p.value(&INITIAL_FOULING),
            duty: 0.0,
        };
        let (c_hot, c_cold) = hx.capacity_rates(hot_flow, cold_flow);
        hx.duty = hx.steady_duty(c_hot, c_cold, hx.hot_in.x, hx.cold_in.x);
        hx
    }

    /// Heat capacity rates, kW/K, of the two streams at flows in m3/h.
    fn capacity_rates(&self, hot_flow: f64, cold_flow: f64) -> (f64, f64) {
        (
            hot_flow * self.hot_cp / 3600.0,
            cold_flow * self.cold_cp / 3600.0,
        )
    }

    /// Counter-flow effectiveness–NTU duty, kW.
    fn steady_duty(&self, c_hot: f64, c_cold: f64, hot_in: f64, cold_in: f64) -> f64 {
        let c_min = c_hot.min(c_cold);
        let c_max = c_hot.max(c_cold);
        if c_min <= 0.0 || hot_in <= cold_in {
            return 0.0;
        }
        let ntu = self.ua * (1.0 - self.fouling) / c_min;
        let cr = c_min / c_max;
        let eff = if (1.0 - cr).abs() < 1e-6 {
            ntu / (1.0 + ntu)
        } else {
            let e = (-ntu * (1.0 - cr)).exp();
            (1.0 - e) / (1.0 - cr * e)
        };
        eff * c_min * (hot_in - cold_in)
    }
}

impl ProcessModel for HeatExchanger {
    fn kind(&self) -> &'static str {
        "heat_exchanger"
    }

    fn signals(&self) -> &'static [Signal] {
        SIGNALS
    }

    fn step(&mut self, dt: Duration, rng: &mut SimRng, out: &mut [Value]) {
        let dt = dt.as_secs_f64();
        let (noise, upset) = (self.noise, self.upset);
        let hot_flow = self
            .hot_flow
            .step(dt, noise, rng)
            .max(0.05 * self.hot_flow.mean);
        let cold_flow = self
            .cold_flow
            .step(dt, noise, rng)
            .max(0.05 * self.cold_flow.mean)
            * (1.0 - self.cw_trip.step(dt, upset, rng));
        let hot_in = self.hot_in.step(dt, noise, rng) + self.hot_upset.step(dt, upset, rng);
        let cold_in = self.cold_in.step(dt, noise, rng).min(hot_in - 1.0);
        self.fouling += self.fouling_per_s * dt;
        if self.fouling >= CLEAN_AT {
            self.fouling = 0.0;
        }

        let (c_hot, c_cold) = self.capacity_rates(hot_flow, cold_flow);
        let target = self.steady_duty(c_hot, c_cold, hot_in, cold_in);
        let q_max = c_hot.min(c_cold) * (hot_in - cold_in).max(0.0);
        self.duty = approach(self.duty, target, dt, self.tau).clamp(0.0, q_max);
        let hot_out = hot_in - self.duty / c_hot;
        let cold_out = cold_in + self.duty / c_cold;

        let values = [
            measure(rng, hot_in, 0.2, noise),
            measure(rng, hot_out, 0.2, noise),
            measure(rng, cold_in, 0.2, noise),
            measure(rng, cold_out, 0.2, noise),
            measure_rel(rng, hot_flow, 0.01, noise),
            measure_rel(rng, self.duty, 0.01, noise),
        ];
        write_out(out, SIGNALS, &values);
    }
}
