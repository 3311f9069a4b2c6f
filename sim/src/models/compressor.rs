//! Fixed-speed centrifugal gas compressor between two headers.
//!
//! The compressor curve `PR = PR0·(1 − a·(Q/Qr)²)` passes through the rated
//! point; the discharge header pressure wanders (and spikes when downstream
//! demand drops), and the suction header is a gas volume fed from upstream
//! (`dPs/dt = (G·(P_src − Ps) − Q)/V`), so the suction pressure settles where
//! supply and compressor flow balance and rises when the machine stops.
//! Below the surge line the anti-surge recycle keeps the machine flow up
//! while the net flow drops to zero; vibration grows toward surge.
//! Power is adiabatic head × mass flow / efficiency (natural gas, k = 1.3).
//! The machine trips now and then and is restarted after a while.
//!
//! Typical alarm limits at the defaults: suction pressure > 5.6 bar,
//! discharge pressure > 16.5 bar, vibration > 7.1 mm/s (ISO 10816 zone D).

use std::time::Duration;

use twins::Value;

use crate::dynamics::{Episode, Trips, Wander, approach, measure, measure_rel};
use crate::params::{ModelParams, NOISE, Param, UPSET_RATE};
use crate::process::{ProcessModel, Signal, SimRng, write_out};

const SIGNALS: &[Signal] = &[
    Signal::bool("running"),
    Signal::f64("suction_pressure", "bar"),
    Signal::f64("discharge_pressure", "bar"),
    Signal::f64("flow", "Nm3/h"),
    Signal::f64("power", "kW"),
    Signal::f64("vibration", "mm/s"),
];

/// The compressor's knobs.
pub const PARAMS: &[Param] = &[
    NOISE,
    UPSET_RATE,
    RATED_FLOW,
    RATED_RATIO,
    SUCTION_PRESSURE,
    SURGE_FLOW,
    MOLAR_MASS,
    SUCTION_TEMP,
    EFFICIENCY,
    SUCTION_VOLUME,
];

const RATED_FLOW: Param = Param::new(
    "rated_flow",
    20_000.0,
    (10.0, 1e7),
    "Nm3/h",
    "flow at the rated pressure ratio",
);
const RATED_RATIO: Param = Param::new(
    "rated_ratio",
    3.0,
    (1.1, 20.0),
    "",
    "discharge / suction pressure at rated flow",
);
const SUCTION_PRESSURE: Param = Param::new(
    "suction_pressure",
    5.0,
    (0.5, 200.0),
    "bar",
    "suction pressure at the rated point (absolute)",
);
const SURGE_FLOW: Param = Param::new(
    "surge_flow",
    0.55,
    (0.2, 0.9),
    "",
    "surge-line flow as a share of rated flow",
);
const MOLAR_MASS: Param = Param::new("molar_mass", 18.0, (2.0, 100.0), "g/mol", "gas molar mass");
const SUCTION_TEMP: Param = Param::new(
    "suction_temp",
    30.0,
    (-50.0, 200.0),
    "degC",
    "gas suction temperature",
);
const EFFICIENCY: Param = Param::new("efficiency", 0.75, (0.3, 0.95), "", "adiabatic efficiency");
const SUCTION_VOLUME: Param = Param::new(
    "suction_volume",
    500.0,
    (1.0, 1e6),
    "m3",
    "gas volume of the suction header",
);

const K: f64 = 1.3;
/// Pressure ratio at zero flow over the rated ratio.
const SHUTOFF_RISE: f64 = 1.2;
/// Longest integration sub-step, s.
const MAX_SUBSTEP: f64 = 5.0;
const MAX_SUBSTEPS: u32 = 64;
/// Share of pressure ratio over which the recycle takes the net flow to zero.
const RECYCLE_BAND: f64 = 0.03;

/// See the module docs.
#[derive(Debug, Clone)]
pub struct Compressor {
    noise: f64,
    upset: f64,
    rated_flow: f64,
    pr0: f64,
    a: f64,
    surge_flow: f64,
    /// Anti-surge control line: 10 % above surge.
    control_flow: f64,
    /// Adiabatic head factor: k/(k−1)·R·T/M, J/kg.
    head_factor: f64,
    /// Gas density at normal conditions, kg/Nm3.
    rho_n: f64,
    efficiency: f64,
    /// Header capacity, Nm3 per bar.
    capacity: f64,
    /// Upstream supply conductance, Nm3/h per bar.
    conductance: f64,
    rated_power: f64,

    trips: Trips,
    source: Wander,
    header: Wander,
    demand_drop: Episode,
    vib_base: Wander,
    bearing: Episode,
    suction: f64,
    discharge: f64,
}

impl Compressor {
    pub fn new(p: &ModelParams) -> Self {
        let rated_flow = p.value(&RATED_FLOW);
        let ratio = p.value(&RATED_RATIO);
        let ps = p.value(&SUCTION_PRESSURE);
        let molar = p.value(&MOLAR_MASS) / 1000.0;
        let t = p.value(&SUCTION_TEMP) + 273.15;
        let pr0 = ratio * SHUTOFF_RISE;
        let mut c = Self {
            noise: p.value(&NOISE),
            upset: p.value(&UPSET_RATE),
            rated_flow,
            pr0,
            a: 1.0 - 1.0 / SHUTOFF_RISE,
            surge_flow: p.value(&SURGE_FLOW) * rated_flow,
            control_flow: 1.1 * p.value(&SURGE_FLOW) * rated_flow,
            head_factor: K / (K - 1.0) * 8.314 * t / molar,
            rho_n: molar / 0.022_414,
            efficiency: p.value(&EFFICIENCY),
            // An ideal gas volume V at pressure P holds V·P/1.013 Nm3.
            capacity: p.value(&SUCTION_VOLUME) / 1.013,
            // The source sits 1 bar above the rated suction pressure and
            // delivers rated flow there.
            conductance: rated_flow,
            rated_power: 0.0,
            trips: Trips::new(1.0 / 48.0, (600.0, 3600.0)),
            source: Wander::new(ps + 1.0, 0.12, 3600.0),
            header: Wander::new(ps * ratio, 0.25, 3600.0),
            demand_drop: Episode::new(1.0 / 12.0, (600.0, 1800.0), (0.08, 0.2)),
            vib_base: Wander::new(2.5, 0.3, 3600.0),
            bearing: Episode::new(1.0 / 24.0, (1800.0, 5400.0), (3.0, 6.0)),
            suction: ps,
            discharge: ps * ratio,
        };
        c.rated_power = c.shaft_power(rated_flow, ratio);
        c
    }

    /// Pressure ratio on the curve at machine flow `q`, Nm3/h.
    fn ratio_at(&self, q: f64) -> f64 {
        let x = q / self.rated_flow;
        self.pr0 * (1.0 - self.a * x * x)
    }

    /// Net flow delivered into the discharge header, Nm3/h. On the curve
    /// while the machine flow is above the anti-surge control line; beyond it
    /// the recycle holds the machine there and what reaches the header tapers
    /// to nothing over a few percent more pressure ratio.
    fn net_flow(&self, suction: f64, header: f64) -> f64 {
        let pr = header / suction.max(0.05);
        let q = self.rated_flow * ((1.0 - pr / self.pr0).max(0.0) / self.a).sqrt();
        if q >= self.control_flow {
            return q;
        }
        let pr_ctrl = self.ratio_at(self.control_flow);
        let x = ((pr - pr_ctrl) / (RECYCLE_BAND * pr_ctrl)).clamp(0.0, 1.0);
        self.control_flow * (1.0 - x)
    }

    fn shaft_power(&self, machine_flow: f64, pr: f64) -> f64 {
        let mass = machine_flow / 3600.0 * self.rho_n;
        let head = self.head_factor * (pr.max(1.0).powf((K - 1.0) / K) - 1.0);
        mass * head / self.efficiency / 1000.0
    }
}

impl ProcessModel for Compressor {
    fn kind(&self) -> &'static str {
        "compressor"
    }

    fn signals(&self) -> &'static [Signal] {
        SIGNALS
    }

    fn step(&mut self, dt: Duration, rng: &mut SimRng, out: &mut [Value]) {
        let dt = dt.as_secs_f64();
        let (noise, upset) = (self.noise, self.upset);
        let running = self.trips.step(dt, upset, rng);
        let source = self.source.step(dt, noise, rng);
        let header =
            self.header.step(dt, noise, rng) * (1.0 + self.demand_drop.step(dt, upset, rng));

        // Suction header: linearly implicit Euler in sub-steps (stable for any dt).
        let n = ((dt / MAX_SUBSTEP).ceil() as u32).clamp(1, MAX_SUBSTEPS);
        let h = dt / f64::from(n) / 3600.0;
        for _ in 0..n {
            let f = |ps: f64| {
                let q = if running {
                    self.net_flow(ps, header)
                } else {
                    0.0
                };
                (self.conductance * (source - ps) - q) / self.capacity
            };
            let ps = self.suction;
            let slope = (f(ps + 0.01) - f(ps)) / 0.01;
            let step = h * f(ps) / (1.0 - h * slope.min(0.0));
            self.suction = (ps + step).max(0.05);
        }
        let suction = self.suction;

        let (flow, machine_flow, pr) = if running {
            let pr = header / suction;
            let net = self.net_flow(suction, header);
            (net, net.max(self.control_flow), pr)
        } else {
            (0.0, 0.0, 1.0)
        };
        // At the compressor's discharge nozzle: the header while running,
        // settling out toward suction when stopped.
        self.discharge = if running {
            header
        } else {
            approach(self.discharge, suction, dt, 120.0)
        };
        let power = if running {
            self.shaft_power(machine_flow, pr) + 0.02 * self.rated_power
        } else {
            0.0
        };
        // Surge proximity: 0 at 80 % of rated flow or more, 1 at the surge line and below.
        let knee = 0.8 * self.rated_flow;
        let near_surge = ((knee - flow) / (knee - self.surge_flow)).clamp(0.0, 1.0);
        let vib_base = self.vib_base.step(dt, noise, rng);
        let bearing = self.bearing.step(dt, upset, rng);
        let vibration = if running {
            vib_base + 4.5 * near_surge * near_surge + bearing
        } else {
            0.0
        };

        let values = [
            if running { 1.0 } else { 0.0 },
            measure(rng, suction, 0.02, noise).max(0.0),
            measure(rng, self.discharge, 0.05, noise).max(0.0),
            measure_rel(rng, flow, 0.01, noise),
            measure_rel(rng, power, 0.01, noise),
            measure_rel(rng, vibration.max(0.0), 0.03, noise),
        ];
        write_out(out, SIGNALS, &values);
    }
}
