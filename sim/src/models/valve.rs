//! Control valve in a line with a roughly constant pressure difference.
//!
//! The setpoint wanders slowly around its mean, with occasional operator moves;
//! the position follows it as a first-order lag (the actuator), except while
//! the valve sticks. Flow is `Kv·f(position)·√dp` with an equal-percentage (or
//! linear) inherent characteristic, and the valve's `dp` is what the line
//! leaves it: `dp = supply / (1 + k·(Kv·f)²)`, so the installed characteristic
//! flattens as the valve opens. Water-like fluid (specific gravity 1).
//!
//! Typical alarm limits at the defaults: position deviation |setpoint −
//! position| > 5 % (sticking), flow < 30 m3/h, flow > 100 m3/h.

use std::time::Duration;

use twins::Value;

use crate::dynamics::{Episode, Wander, approach, measure, measure_rel, uniform};
use crate::params::{ModelParams, NOISE, Param, UPSET_RATE};
use crate::process::{ProcessModel, Signal, SimRng, write_out};

const SIGNALS: &[Signal] = &[
    Signal::f64("setpoint", "%"),
    Signal::f64("position", "%"),
    Signal::f64("flow", "m3/h"),
    Signal::f64("dp", "bar"),
];

/// The valve's knobs.
pub const PARAMS: &[Param] = &[
    NOISE,
    UPSET_RATE,
    KV,
    RANGEABILITY,
    EQUAL_PERCENTAGE,
    STROKE_TAU,
    SUPPLY_DP,
    VALVE_DP_SHARE,
    MEAN_SETPOINT,
];

const KV: Param = Param::new(
    "kv",
    250.0,
    (0.1, 100_000.0),
    "m3/h",
    "flow coefficient at full opening and 1 bar",
);
const RANGEABILITY: Param = Param::new(
    "rangeability",
    50.0,
    (5.0, 200.0),
    "",
    "inherent rangeability of the equal-percentage trim",
);
const EQUAL_PERCENTAGE: Param = Param::new(
    "equal_percentage",
    1.0,
    (0.0, 1.0),
    "",
    "1: equal-percentage trim, 0: linear, in between: a blend",
);
const STROKE_TAU: Param = Param::new(
    "stroke_tau",
    5.0,
    (0.1, 600.0),
    "s",
    "actuator time constant",
);
const SUPPLY_DP: Param = Param::new(
    "supply_dp",
    5.0,
    (0.1, 100.0),
    "bar",
    "mean pressure difference across line and valve",
);
const VALVE_DP_SHARE: Param = Param::new(
    "valve_dp_share",
    0.5,
    (0.05, 0.95),
    "",
    "share of supply_dp the valve takes at the mean setpoint",
);
const MEAN_SETPOINT: Param = Param::new("mean_setpoint", 60.0, (5.0, 95.0), "%", "mean setpoint");

/// See the module docs.
#[derive(Debug, Clone)]
pub struct ControlValve {
    noise: f64,
    upset: f64,
    kv: f64,
    ln_r: f64,
    inv_r: f64,
    equal_pct: f64,
    stroke_tau: f64,
    line_k: f64,

    setpoint: Wander,
    operator_move: Episode,
    move_sign: f64,
    sticking: Episode,
    supply: Wander,
    held: Option<f64>,
    position: f64,
}

impl ControlValve {
    pub fn new(p: &ModelParams) -> Self {
        let mean_sp = p.value(&MEAN_SETPOINT);
        let r = p.value(&RANGEABILITY);
        let mut v = Self {
            noise: p.value(&NOISE),
            upset: p.value(&UPSET_RATE),
            kv: p.value(&KV),
            ln_r: r.ln(),
            inv_r: 1.0 / r,
            equal_pct: p.value(&EQUAL_PERCENTAGE),
            stroke_tau: p.value(&STROKE_TAU),
            line_k: 0.0,
            setpoint: Wander::new(mean_sp, 8.0, 3600.0),
            operator_move: Episode::new(1.0 / 4.0, (600.0, 3600.0), (10.0, 35.0)),
            move_sign: 1.0,
            sticking: Episode::new(1.0 / 24.0, (300.0, 1800.0), (1.0, 1.0)),
            supply: Wander::new(p.value(&SUPPLY_DP), 0.3, 1800.0),
            held: None,
            position: mean_sp,
        };
        // dp_valve = supply / (1 + k·(Kv·f)²) = share · supply at the mean setpoint.
        let kvf = v.kv * v.characteristic(mean_sp / 100.0);
        v.line_k = (1.0 / p.value(&VALVE_DP_SHARE) - 1.0) / (kvf * kvf);
        v
    }

    /// Holds the setpoint at `pct` (an operator or a scenario action), or
    /// lets it wander again with `None`.
    pub fn hold_setpoint(&mut self, pct: Option<f64>) {
        self.held = pct.map(|x| x.clamp(0.0, 100.0));
    }

    /// Inherent characteristic: relative Kv at opening `x` in 0..=1.
    fn characteristic(&self, x: f64) -> f64 {
        let x = x.clamp(0.0, 1.0);
        let eq = (((x - 1.0) * self.ln_r).exp() - self.inv_r) / (1.0 - self.inv_r);
        self.equal_pct * eq + (1.0 - self.equal_pct) * x
    }

    /// Flow and valve dp at opening `x` with `supply` across line and valve.
    fn hydraulics(&self, x: f64, supply: f64) -> (f64, f64) {
        let kvf = self.kv * self.characteristic(x);
        let dp = supply / (1.0 + self.line_k * kvf * kvf);
        (kvf * dp.sqrt(), dp)
    }
}

impl ProcessModel for ControlValve {
    fn kind(&self) -> &'static str {
        "control_valve"
    }

    fn signals(&self) -> &'static [Signal] {
        SIGNALS
    }

    fn step(&mut self, dt: Duration, rng: &mut SimRng, out: &mut [Value]) {
        let dt = dt.as_secs_f64();
        let (noise, upset) = (self.noise, self.upset);
        let wander = self.setpoint.step(dt, noise, rng);
        let was_moving = self.operator_move.active();
        let moved = self.operator_move.step(dt, upset, rng);
        if !was_moving && self.operator_move.active() {
            // Each operator move goes up or down at random.
            self.move_sign = if uniform(rng, 0.0, 1.0) < 0.5 {
                1.0
            } else {
                -1.0
            };
        }
        let setpoint = self
            .held
            .unwrap_or_else(|| (wander + self.move_sign * moved).clamp(0.0, 100.0));
        let stuck = self.sticking.step(dt, upset, rng) > 0.0;
        if !stuck {
            self.position = approach(self.position, setpoint, dt, self.stroke_tau);
        }
        let supply = self.supply.step(dt, noise, rng).max(0.05);
        let (flow, dp) = self.hydraulics(self.position / 100.0, supply);

        let values = [
            setpoint,
            measure(rng, self.position, 0.2, noise).clamp(0.0, 100.0),
            measure_rel(rng, flow, 0.01, noise),
            measure(rng, dp, 0.02, noise).max(0.0),
        ];
        write_out(out, SIGNALS, &values);
    }
}
