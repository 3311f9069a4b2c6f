//! Three-phase induction motor driving a varying load.
//!
//! Current is the vector sum of magnetising and load currents, scaled by the
//! supply voltage; starting draws several times rated current for a few
//! seconds while the speed runs up. Speed is synchronous speed less a slip
//! proportional to load and to 1/V². The winding temperature lags the copper
//! losses (∝ I²) with the motor's thermal time constant, and the thermal
//! protection trips the motor at the insulation limit; it is restarted once
//! cool. The load has overload episodes, the supply voltage sags and
//! sometimes stays low, and the motor trips at random now and then.
//!
//! Typical alarm limits at the defaults: current > 110 % of rated (≈ 215 A),
//! winding temperature > 130 degC (class F alarm), voltage < 360 V.

use std::time::Duration;

use twins::Value;

use crate::dynamics::{Episode, Trips, Wander, approach, measure, measure_rel};
use crate::params::{ModelParams, NOISE, Param, UPSET_RATE};
use crate::process::{ProcessModel, Signal, SimRng, write_out};

const SIGNALS: &[Signal] = &[
    Signal::bool("running"),
    Signal::f64("current", "A"),
    Signal::f64("voltage", "V"),
    Signal::f64("power", "kW"),
    Signal::f64("winding_temp", "degC"),
    Signal::f64("speed", "rpm"),
];

/// The motor's knobs.
pub const PARAMS: &[Param] = &[
    NOISE,
    UPSET_RATE,
    RATED_POWER,
    RATED_VOLTAGE,
    RATED_SPEED,
    SYNC_SPEED,
    POWER_FACTOR,
    EFFICIENCY,
    MEAN_LOAD,
    THERMAL_TAU,
    RATED_RISE,
    TRIP_TEMP,
];

const RATED_POWER: Param = Param::new(
    "rated_power",
    110.0,
    (0.1, 100_000.0),
    "kW",
    "rated shaft power",
);
const RATED_VOLTAGE: Param = Param::new(
    "rated_voltage",
    400.0,
    (100.0, 20_000.0),
    "V",
    "rated line-to-line voltage",
);
const RATED_SPEED: Param = Param::new(
    "rated_speed",
    1485.0,
    (100.0, 3600.0),
    "rpm",
    "speed at rated load",
);
const SYNC_SPEED: Param = Param::new(
    "sync_speed",
    1500.0,
    (100.0, 3600.0),
    "rpm",
    "synchronous speed (above rated_speed)",
);
const POWER_FACTOR: Param = Param::new(
    "power_factor",
    0.86,
    (0.5, 1.0),
    "",
    "power factor at rated load",
);
const EFFICIENCY: Param = Param::new(
    "efficiency",
    0.95,
    (0.5, 0.99),
    "",
    "efficiency at rated load",
);
const MEAN_LOAD: Param = Param::new(
    "mean_load",
    0.75,
    (0.0, 1.2),
    "",
    "mean load as a share of rated power",
);
const THERMAL_TAU: Param = Param::new(
    "thermal_tau",
    1800.0,
    (60.0, 36_000.0),
    "s",
    "winding thermal time constant",
);
const RATED_RISE: Param = Param::new(
    "rated_rise",
    80.0,
    (20.0, 150.0),
    "K",
    "winding temperature rise at rated current",
);
const TRIP_TEMP: Param = Param::new(
    "trip_temp",
    155.0,
    (60.0, 250.0),
    "degC",
    "thermal protection trip (class F limit)",
);

/// Magnetising current over rated current.
const MAGNETISING: f64 = 0.35;
/// Starting current over rated current, and how long a start takes.
const INRUSH: f64 = 6.0;
const START_S: f64 = 4.0;

/// See the module docs.
#[derive(Debug, Clone)]
pub struct ElectricMotor {
    noise: f64,
    upset: f64,
    rated_power: f64,
    rated_voltage: f64,
    rated_current: f64,
    sync_speed: f64,
    rated_slip: f64,
    efficiency: f64,
    thermal_tau: f64,
    rated_rise: f64,
    trip_temp: f64,

    trips: Trips,
    thermal_trip: bool,
    load: Wander,
    overload: Episode,
    voltage: Wander,
    sag: Episode,
    weak_grid: Episode,
    ambient: Wander,
    starting_left_s: f64,
    was_running: bool,
    speed: f64,
    winding_temp: f64,
}

impl ElectricMotor {
    pub fn new(p: &ModelParams) -> Self {
        let rated_power = p.value(&RATED_POWER);
        let rated_voltage = p.value(&RATED_VOLTAGE);
        let efficiency = p.value(&EFFICIENCY);
        let sync_speed = p.value(&SYNC_SPEED);
        let rated_speed = p.value(&RATED_SPEED).min(0.999 * sync_speed);
        let mean_load = p.value(&MEAN_LOAD);
        let rated_current = rated_power * 1000.0
            / (efficiency * 3f64.sqrt() * rated_voltage * p.value(&POWER_FACTOR));
        let mut m = Self {
            noise: p.value(&NOISE),
            upset: p.value(&UPSET_RATE),
            rated_power,
            rated_voltage,
            rated_current,
            sync_speed,
            rated_slip: 1.0 - rated_speed / sync_speed,
            efficiency,
            thermal_tau: p.value(&THERMAL_TAU),
            rated_rise: p.value(&RATED_RISE),
            trip_temp: p.value(&TRIP_TEMP),
            trips: Trips::new(1.0 / 72.0, (600.0, 3600.0)),
            thermal_trip: false,
            load: Wander::new(mean_load, 0.06, 1200.0),
            overload: Episode::new(1.0 / 10.0, (900.0, 3600.0), (0.3, 0.6)),
            voltage: Wander::new(rated_voltage, 0.01 * rated_voltage, 600.0),
            sag: Episode::new(1.0, (1.0, 20.0), (0.1, 0.3)),
            weak_grid: Episode::new(1.0 / 24.0, (600.0, 3600.0), (0.05, 0.12)),
            ambient: Wander::new(30.0, 4.0, 6.0 * 3600.0),
            starting_left_s: 0.0,
            was_running: true,
            speed: 0.0,
            winding_temp: 0.0,
        };
        let i = m.running_current(mean_load, rated_voltage);
        m.speed = m.running_speed(mean_load, rated_voltage);
        m.winding_temp = m.ambient.x + m.rated_rise * i * i;
        m
    }

    /// Running current over rated current at `load` and supply `voltage`.
    fn running_current(&self, load: f64, voltage: f64) -> f64 {
        let v = voltage / self.rated_voltage;
        let active = (1.0 - MAGNETISING * MAGNETISING).sqrt() * load / v.max(0.3);
        let magnetising = MAGNETISING * v;
        (active * active + magnetising * magnetising).sqrt()
    }

    fn running_speed(&self, load: f64, voltage: f64) -> f64 {
        let v = (voltage / self.rated_voltage).max(0.3);
        let slip = (self.rated_slip * load / (v * v)).min(0.5);
        self.sync_speed * (1.0 - slip)
    }
}

impl ProcessModel for ElectricMotor {
    fn kind(&self) -> &'static str {
        "electric_motor"
    }

    fn signals(&self) -> &'static [Signal] {
        SIGNALS
    }

    fn step(&mut self, dt: Duration, rng: &mut SimRng, out: &mut [Value]) {
        let dt = dt.as_secs_f64();
        let (noise, upset) = (self.noise, self.upset);
        let mut running = self.trips.step(dt, upset, rng);
        if self.thermal_trip {
            // Stays off until the windings have cooled.
            if self.winding_temp > self.trip_temp - 50.0 {
                self.trips.trip(rng);
                running = false;
            } else {
                self.thermal_trip = false;
            }
        }
        if running && !self.was_running {
            self.starting_left_s = START_S;
        }
        self.was_running = running;

        let load = (self.load.step(dt, noise, rng) + self.overload.step(dt, upset, rng)).max(0.0);
        let dip = self.sag.step(dt, upset, rng) + self.weak_grid.step(dt, upset, rng);
        let voltage = self.voltage.step(dt, noise, rng) * (1.0 - dip);
        let ambient = self.ambient.step(dt, noise, rng);

        let (current, speed_target) = if !running {
            (0.0, 0.0)
        } else if self.starting_left_s > 0.0 {
            self.starting_left_s -= dt;
            (
                INRUSH * voltage / self.rated_voltage,
                self.running_speed(load, voltage),
            )
        } else {
            (
                self.running_current(load, voltage),
                self.running_speed(load, voltage),
            )
        };
        let tau = match (running, self.starting_left_s > 0.0) {
            (true, true) => START_S / 3.0,
            (true, false) => 0.5,
            (false, _) => 20.0,
        };
        self.speed = approach(self.speed, speed_target, dt, tau);
        if !running && self.speed < 1.0 {
            self.speed = 0.0;
        }

        // Copper losses heat the windings; a stopped motor cools slower (no fan).
        let target = ambient + self.rated_rise * current * current;
        let tau = if running {
            self.thermal_tau
        } else {
            2.0 * self.thermal_tau
        };
        self.winding_temp = approach(self.winding_temp, target, dt, tau);
        if running && self.winding_temp >= self.trip_temp {
            // The relay acts as the windings reach the limit, not at the end of a long step.
            self.winding_temp = self.trip_temp;
            self.thermal_trip = true;
            self.trips.trip(rng);
        }

        let power = if running {
            load * self.rated_power / self.efficiency + 0.01 * self.rated_power
        } else {
            0.0
        };
        let values = [
            if running { 1.0 } else { 0.0 },
            measure_rel(rng, current * self.rated_current, 0.005, noise),
            measure(rng, voltage, 0.002 * self.rated_voltage, noise).max(0.0),
            measure_rel(rng, power, 0.005, noise),
            measure(rng, self.winding_temp, 0.3, noise),
            measure_rel(rng, self.speed, 0.0005, noise),
        ];
        write_out(out, SIGNALS, &values);
    }
}
