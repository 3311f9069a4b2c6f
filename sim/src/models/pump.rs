//! Centrifugal pump against a system curve.
//!
//! Pump curve `dp = shutoff·s² − kp·Q²` (affinity laws: flow ∝ speed, head ∝
//! speed², power ∝ speed³ at a similar operating point), system curve
//! `dp = static + r·ks·Q²` through the rated point, where `r` is the downstream
//! resistance (slow wander, and now and then a partly closed or blocked
//! discharge). The operating point solves both. Power follows a typical radial
//! pump power curve (45 % of rated at shut-off). Vibration grows away from the
//! best-efficiency flow and during looseness episodes; the bearing temperature
//! lags load, vibration and lubrication trouble. The pump trips now and then and
//! an operator restarts it.
//!
//! Typical alarm limits at the defaults: discharge pressure > 18 bar (blocked
//! discharge), flow < 100 m3/h while running (minimum
//! continuous flow), suction pressure < 1 bar,
//! vibration > 4.5 mm/s (ISO 10816 zone C), bearing temperature > 80 degC.

use std::time::Duration;

use twins::Value;

use crate::dynamics::{Episode, Trips, Wander, approach, measure, measure_rel};
use crate::params::{ModelParams, NOISE, Param, UPSET_RATE};
use crate::process::{ProcessModel, Signal, SimRng, write_out};

const SIGNALS: &[Signal] = &[
    Signal::bool("running"),
    Signal::f64("speed", "rpm"),
    Signal::f64("flow", "m3/h"),
    Signal::f64("suction_pressure", "bar"),
    Signal::f64("discharge_pressure", "bar"),
    Signal::f64("power", "kW"),
    Signal::f64("vibration", "mm/s"),
    Signal::f64("bearing_temp", "degC"),
];

/// The pump's knobs.
pub const PARAMS: &[Param] = &[
    NOISE,
    UPSET_RATE,
    RATED_SPEED,
    RATED_FLOW,
    RATED_HEAD,
    SHUTOFF_HEAD,
    STATIC_HEAD,
    SPEED_PCT,
    SUCTION_PRESSURE,
];

const RATED_SPEED: Param = Param::new(
    "rated_speed",
    2950.0,
    (300.0, 20_000.0),
    "rpm",
    "speed at which the curve below holds",
);

const RATED_FLOW: Param = Param::new(
    "rated_flow",
    250.0,
    (1.0, 50_000.0),
    "m3/h",
    "best-efficiency flow at rated speed",
);

const RATED_HEAD: Param = Param::new(
    "rated_head",
    13.0,
    (0.5, 300.0),
    "bar",
    "pressure rise at rated flow and speed",
);

const SHUTOFF_HEAD: Param = Param::new(
    "shutoff_head",
    17.0,
    (0.6, 400.0),
    "bar",
    "pressure rise at zero flow and rated speed (at least 1.05 × rated_head)",
);

const STATIC_HEAD: Param = Param::new(
    "static_head",
    7.0,
    (0.0, 300.0),
    "bar",
    "static part of the system curve (0: pure friction; at most 0.9 × rated_head)",
);

const SPEED_PCT: Param = Param::new(
    "speed_pct",
    100.0,
    (20.0, 120.0),
    "%",
    "mean speed as a share of rated speed",
);

const SUCTION_PRESSURE: Param = Param::new(
    "suction_pressure",
    2.0,
    (0.2, 100.0),
    "bar",
    "mean suction pressure at zero flow",
);

/// See the module docs.
#[derive(Debug, Clone)]
pub struct CentrifugalPump {
    noise: f64,
    upset: f64,
    rated_speed: f64,
    rated_flow: f64,
    shutoff: f64,
    kp: f64,
    static_head: f64,
    ks: f64,
    rated_power: f64,
    suction_friction: f64,

    trips: Trips,
    speed_frac: Wander,
    resistance: Wander,
    blockage: Episode,
    suction: Wander,
    suction_drop: Episode,
    vib_base: Wander,
    looseness: Episode,
    lube: Episode,
    ambient: Wander,
    speed: f64,
    bearing_temp: f64,
}

impl CentrifugalPump {
    pub fn new(p: &ModelParams) -> Self {
        let rated_flow = p.value(&RATED_FLOW);
        let rated_head = p.value(&RATED_HEAD);
        let shutoff = p.value(&SHUTOFF_HEAD).max(1.05 * rated_head);
        let static_head = p.value(&STATIC_HEAD).min(0.9 * rated_head);
        let rated_speed = p.value(&RATED_SPEED);
        let speed_frac = p.value(&SPEED_PCT) / 100.0;
        let q2 = rated_flow * rated_flow;
        let mut pump = Self {
            noise: p.value(&NOISE),
            upset: p.value(&UPSET_RATE),
            rated_speed,
            rated_flow,
            shutoff,
            kp: (shutoff - rated_head) / q2,
            static_head,
            ks: (rated_head - static_head) / q2,
            // Hydraulic power at the rated point over a typical 78 % efficiency.
            rated_power: rated_flow * rated_head / 36.0 / 0.78,
            suction_friction: 0.08 / q2,

            trips: Trips::new(1.0 / 48.0, (300.0, 1800.0)),
            speed_frac: Wander::new(speed_frac, 0.01, 1800.0),
            resistance: Wander::new(0.0, 0.12, 1200.0),
            blockage: Episode::new(1.0 / 6.0, (180.0, 720.0), (3f64.ln(), 30f64.ln())),
            suction: Wander::new(p.value(&SUCTION_PRESSURE), 0.12, 3600.0),
            suction_drop: Episode::new(1.0 / 24.0, (600.0, 3600.0), (0.5, 1.4)),
            vib_base: Wander::new(2.0, 0.3, 1800.0),
            looseness: Episode::new(1.0 / 24.0, (1200.0, 5400.0), (1.5, 3.5)),
            lube: Episode::new(1.0 / 24.0, (1800.0, 7200.0), (15.0, 35.0)),
            ambient: Wander::new(25.0, 4.0, 6.0 * 3600.0),
            speed: 0.0,
            bearing_temp: 0.0,
        };
        pump.speed = speed_frac * rated_speed;
        pump.bearing_temp = pump.bearing_target(1.0, 1.0, 2.0);
        pump
    }

    /// Operating flow at relative speed `s` and resistance multiplier `r`.
    fn flow_at(&self, s: f64, r: f64) -> f64 {
        let drive = self.shutoff * s * s - self.static_head;
        if drive <= 0.0 {
            0.0
        } else {
            (drive / (self.kp + r * self.ks)).sqrt()
        }
    }

    fn bearing_target(&self, s: f64, load: f64, vibration: f64) -> f64 {
        self.ambient.x + 30.0 * s * (0.6 + 0.4 * load) + 4.0 * (vibration - 2.5).max(0.0)
    }
}

impl ProcessModel for CentrifugalPump {
    fn kind(&self) -> &'static str {
        "centrifugal_pump"
    }

    fn signals(&self) -> &'static [Signal] {
        SIGNALS
    }

    fn step(&mut self, dt: Duration, rng: &mut SimRng, out: &mut [Value]) {
        let dt = dt.as_secs_f64();
        let (noise, upset) = (self.noise, self.upset);
        let running = self.trips.step(dt, upset, rng);
        let speed_frac = self.speed_frac.step(dt, noise, rng);
        let target = if running {
            speed_frac * self.rated_speed
        } else {
            0.0
        };
        let tau = if running { 2.0 } else { 4.0 };
        self.speed = approach(self.speed, target, dt, tau);
        if !running && self.speed < 1.0 {
            self.speed = 0.0;
        }
        let s = self.speed / self.rated_speed;

        let r = (self.resistance.step(dt, noise, rng) + self.blockage.step(dt, upset, rng)).exp();
        let flow = self.flow_at(s, r);
        let dp = (self.shutoff * s * s - self.kp * flow * flow).max(0.0);
        let suction = (self.suction.step(dt, noise, rng)
            - self.suction_drop.step(dt, upset, rng)
            - self.suction_friction * flow * flow)
            .max(0.05);
        let discharge = suction + dp;

        // Share of best-efficiency flow at this speed.
        let q = if s > 0.05 {
            flow / (self.rated_flow * s)
        } else {
            1.0
        };
        let power = self.rated_power * s * s * s * (0.45 + 0.55 * q);
        let vibration = (self.vib_base.step(dt, noise, rng)
            + 2.5 * (q - 1.0) * (q - 1.0)
            + self.looseness.step(dt, upset, rng))
            * s.min(1.2)
            * s.min(1.2);
        self.ambient.step(dt, noise, rng);
        let lube = self.lube.step(dt, upset, rng) * s.min(1.0);
        let target = self.bearing_target(s, power / self.rated_power, vibration) + lube;
        self.bearing_temp = approach(self.bearing_temp, target, dt, 1200.0);

        let values = [
            if running { 1.0 } else { 0.0 },
            measure_rel(rng, self.speed, 0.001, noise),
            measure_rel(rng, flow, 0.01, noise),
            measure(rng, suction, 0.02, noise).max(0.0),
            measure(rng, discharge, 0.05, noise).max(0.0),
            measure_rel(rng, power, 0.005, noise),
            measure_rel(rng, vibration.max(0.0), 0.03, noise),
            measure(rng, self.bearing_temp, 0.2, noise),
        ];
        write_out(out, SIGNALS, &values);
    }
}
