//! Behaviour of every process model: determinism, bounds, physics.

use std::time::Duration;

use rand::SeedableRng;
use sim::models::{CentrifugalPump, ControlValve, HeatExchanger, Tank};
use sim::{ModelParams, ProcessModel, SimRng, device_rng, known_models, model_for};
use twins::{Value, ValueType};

const SECOND: Duration = Duration::from_secs(1);

/// Runs `model` for `steps` steps of `dt`; one row of f64 per step.
fn run(
    model: &mut dyn ProcessModel,
    rng: &mut SimRng,
    dt: Duration,
    steps: usize,
) -> Vec<Vec<f64>> {
    let mut out = vec![Value::Null; model.signals().len()];
    (0..steps)
        .map(|_| {
            model.step(dt, rng, &mut out);
            out.iter()
                .map(|v| v.as_f64().expect("numeric or bool"))
                .collect()
        })
        .collect()
}

fn column(model: &dyn ProcessModel, name: &str) -> usize {
    model
        .signals()
        .iter()
        .position(|s| s.name == name)
        .unwrap_or_else(|| panic!("{} has no signal {name}", model.kind()))
}

fn quiet() -> ModelParams {
    ModelParams::new()
        .with("noise", 0.0)
        .with("upset_rate", 0.0)
}

#[test]
fn models_have_the_specified_signals() {
    let spec: &[(&str, &[(&str, &str)])] = &[
        (
            "centrifugal_pump",
            &[
                ("running", ""),
                ("speed", "rpm"),
                ("flow", "m3/h"),
                ("suction_pressure", "bar"),
                ("discharge_pressure", "bar"),
                ("power", "kW"),
                ("vibration", "mm/s"),
                ("bearing_temp", "degC"),
            ],
        ),
        (
            "control_valve",
            &[
                ("setpoint", "%"),
                ("position", "%"),
                ("flow", "m3/h"),
                ("dp", "bar"),
            ],
        ),
        (
            "tank",
            &[
                ("level", "%"),
                ("inflow", "m3/h"),
                ("outflow", "m3/h"),
                ("temperature", "degC"),
            ],
        ),
        (
            "heat_exchanger",
            &[
                ("hot_in_temp", "degC"),
                ("hot_out_temp", "degC"),
                ("cold_in_temp", "degC"),
                ("cold_out_temp", "degC"),
                ("flow", "m3/h"),
                ("duty", "kW"),
            ],
        ),
        (
            "compressor",
            &[
                ("running", ""),
                ("suction_pressure", "bar"),
                ("discharge_pressure", "bar"),
                ("flow", "Nm3/h"),
                ("power", "kW"),
                ("vibration", "mm/s"),
            ],
        ),
        (
            "electric_motor",
            &[
                ("running", ""),
                ("current", "A"),
                ("voltage", "V"),
                ("power", "kW"),
                ("winding_temp", "degC"),
                ("speed", "rpm"),
            ],
        ),
    ];
    let kinds: Vec<&str> = spec.iter().map(|(k, _)| *k).collect();
    assert_eq!(known_models(), kinds.as_slice());
    for (kind, signals) in spec {
        let mut m = model_for(kind, &ModelParams::new()).unwrap();
        assert_eq!(m.kind(), *kind);
        let got: Vec<(&str, &str)> = m.signals().iter().map(|s| (s.name, s.unit)).collect();
        assert_eq!(got, *signals, "{kind}");
        for s in m.signals() {
            let want = if s.name == "running" {
                ValueType::Bool
            } else {
                ValueType::F64
            };
            assert_eq!(s.ty, want, "{kind}.{}", s.name);
        }
        // Values come out typed as declared.
        let mut out = vec![Value::Null; m.signals().len()];
        m.step(SECOND, &mut SimRng::seed_from_u64(0), &mut out);
        for (v, s) in out.iter().zip(m.signals()) {
            assert_eq!(v.value_type(), Some(s.ty), "{kind}.{}", s.name);
        }
        // A short output slice gets the leading signals only.
        let mut short = vec![Value::Null; 2];
        m.step(SECOND, &mut SimRng::seed_from_u64(0), &mut short);
        assert!(!short[1].is_null());
    }
    assert!(model_for("boiler", &ModelParams::new()).is_none());
}

#[test]
fn same_seed_same_series_different_seed_different_series() {
    for kind in known_models() {
        let series = |seed: u64| {
            let mut m = model_for(kind, &ModelParams::new()).unwrap();
            run(
                m.as_mut(),
                &mut device_rng(seed, "acme/east/p-1"),
                SECOND,
                20_000,
            )
        };
        let a = series(7);
        assert_eq!(a, series(7), "{kind}");
        assert_ne!(a, series(8), "{kind}");
    }
}

/// Physical bounds every signal must stay within, whatever happens.
fn bounds(kind: &str, signal: &str) -> (f64, f64) {
    match (kind, signal) {
        (_, "running") => (0.0, 1.0),
        ("centrifugal_pump", "speed") => (0.0, 3300.0),
        ("centrifugal_pump", "flow") => (0.0, 400.0),
        ("centrifugal_pump", "suction_pressure") => (0.0, 4.0),
        ("centrifugal_pump", "discharge_pressure") => (0.0, 25.0),
        ("centrifugal_pump", "power") => (0.0, 200.0),
        ("centrifugal_pump", "vibration") => (0.0, 15.0),
        ("centrifugal_pump", "bearing_temp") => (-10.0, 140.0),
        ("control_valve", "setpoint" | "position") => (0.0, 100.0),
        ("control_valve", "flow") => (0.0, 160.0),
        ("control_valve", "dp") => (0.0, 8.0),
        ("tank", "level") => (0.0, 100.0),
        ("tank", "inflow" | "outflow") => (0.0, 250.0),
        ("tank", "temperature") => (0.0, 80.0),
        ("heat_exchanger", "flow") => (0.0, 200.0),
        ("heat_exchanger", "duty") => (0.0, 8000.0),
        ("heat_exchanger", _) => (0.0, 200.0),
        ("compressor", "suction_pressure") => (3.0, 7.5),
        ("compressor", "discharge_pressure") => (3.0, 22.0),
        ("compressor", "flow") => (0.0, 35_000.0),
        ("compressor", "power") => (0.0, 1500.0),
        ("compressor", "vibration") => (0.0, 15.0),
        ("electric_motor", "current") => (0.0, 1300.0),
        ("electric_motor", "voltage") => (200.0, 450.0),
        ("electric_motor", "power") => (0.0, 200.0),
        ("electric_motor", "winding_temp") => (0.0, 170.0),
        ("electric_motor", "speed") => (0.0, 1500.0),
        _ => panic!("no bounds for {kind}.{signal}"),
    }
}

fn assert_bounded(kind: &str, dt: Duration, steps: usize, upset_rate: f64) {
    let params = ModelParams::new().with("upset_rate", upset_rate);
    let mut m = model_for(kind, &params).unwrap();
    let rows = run(m.as_mut(), &mut device_rng(3, kind), dt, steps);
    for (i, s) in m.signals().iter().enumerate() {
        let (lo, hi) = bounds(kind, s.name);
        for (t, row) in rows.iter().enumerate() {
            let x = row[i];
            assert!(
                x.is_finite() && (lo..=hi).contains(&x),
                "{kind}.{} = {x} at step {t} (dt {dt:?}), expected {lo}..={hi}",
                s.name
            );
        }
    }
}

#[test]
fn models_stay_finite_and_physical_over_1e5_steps() {
    for kind in known_models() {
        assert_bounded(kind, SECOND, 100_000, 1.0);
    }
}

#[test]
fn models_stay_physical_with_long_steps_and_many_upsets() {
    for kind in known_models() {
        assert_bounded(kind, Duration::from_secs(60), 20_000, 1.0);
        assert_bounded(kind, Duration::from_secs(3600), 2_000, 1.0);
        assert_bounded(kind, Duration::from_millis(100), 20_000, 1.0);
        assert_bounded(kind, SECOND, 50_000, 20.0);
    }
}

/// Share of time each key signal spends beyond a typical alarm limit
/// (the limits in each model's docs): present, but rare.
#[test]
fn typical_alarm_limits_are_crossed_now_and_then() {
    // (kind, signal, limit, above?)
    let limits: &[(&str, &str, f64, bool)] = &[
        ("centrifugal_pump", "discharge_pressure", 18.0, true),
        ("centrifugal_pump", "suction_pressure", 1.0, false),
        ("centrifugal_pump", "vibration", 4.5, true),
        ("centrifugal_pump", "bearing_temp", 80.0, true),
        ("control_valve", "flow", 30.0, false),
        ("control_valve", "flow", 100.0, true),
        ("tank", "level", 80.0, true),
        ("tank", "level", 20.0, false),
        ("heat_exchanger", "hot_out_temp", 70.0, true),
        ("heat_exchanger", "cold_out_temp", 55.0, true),
        ("compressor", "suction_pressure", 5.6, true),
        ("compressor", "discharge_pressure", 16.5, true),
        ("compressor", "vibration", 7.1, true),
        ("electric_motor", "current", 213.0, true),
        ("electric_motor", "winding_temp", 130.0, true),
        ("electric_motor", "voltage", 360.0, false),
    ];
    let mut report = Vec::new();
    let mut runs = std::collections::HashMap::new();
    for &(kind, signal, limit, above) in limits {
        let (col, rows) = runs.entry(kind).or_insert_with(|| {
            let mut m = model_for(kind, &ModelParams::new()).unwrap();
            // Three weeks at 10 s.
            let rows = run(
                m.as_mut(),
                &mut device_rng(11, kind),
                Duration::from_secs(10),
                180_000,
            );
            (m, rows)
        });
        let col = column(col.as_ref(), signal);
        let beyond = rows
            .iter()
            .filter(|r| {
                if above {
                    r[col] > limit
                } else {
                    r[col] < limit
                }
            })
            .count();
        let share = beyond as f64 / rows.len() as f64;
        report.push(format!(
            "{kind}.{signal} {} {limit}: {:.2} %",
            if above { ">" } else { "<" },
            share * 100.0
        ));
        assert!((0.001..0.08).contains(&share), "{}", report.last().unwrap());
    }
    println!("{}", report.join("\n"));
}

#[test]
fn pumps_and_compressors_trip_and_restart() {
    for kind in ["centrifugal_pump", "compressor", "electric_motor"] {
        let mut m = model_for(kind, &ModelParams::new()).unwrap();
        let col = column(m.as_ref(), "running");
        let rows = run(
            m.as_mut(),
            &mut device_rng(5, kind),
            Duration::from_secs(10),
            100_000,
        );
        let starts = rows
            .windows(2)
            .filter(|w| w[0][col] == 0.0 && w[1][col] == 1.0)
            .count();
        assert!(starts >= 2, "{kind}: {starts} restarts in 11 days");
        let down = rows.iter().filter(|r| r[col] == 0.0).count() as f64 / rows.len() as f64;
        assert!(down < 0.05, "{kind}: down {down}");
    }
    // No upsets: never trips.
    let mut m = model_for(
        "centrifugal_pump",
        &ModelParams::new().with("upset_rate", 0.0),
    )
    .unwrap();
    let rows = run(
        m.as_mut(),
        &mut device_rng(5, "p"),
        Duration::from_secs(10),
        50_000,
    );
    assert!(rows.iter().all(|r| r[0] == 1.0));
}

#[test]
fn tank_level_is_the_integral_of_inflow_minus_outflow() {
    let params = ModelParams::new();
    let (area, height) = (8.0, 10.0);
    let pct_per_m3 = 100.0 / (area * height);
    for (noise, tolerance) in [(0.0, 1e-6), (1.0, 0.5)] {
        let mut m = Tank::new(&params.clone().with("noise", noise));
        let [level, inflow, outflow] = ["level", "inflow", "outflow"].map(|s| column(&m, s));
        let mut rng = device_rng(9, "tank");
        let mut out = vec![Value::Null; 4];
        m.step(SECOND, &mut rng, &mut out);
        let start = out[level].as_f64().unwrap();
        let mut integral = 0.0;
        let mut worst: f64 = 0.0;
        let mut moved: f64 = 0.0;
        for _ in 0..100_000 {
            m.step(SECOND, &mut rng, &mut out);
            let f = |i: usize| out[i].as_f64().unwrap();
            integral += (f(inflow) - f(outflow)) / 3600.0 * pct_per_m3;
            worst = worst.max((f(level) - start - integral).abs());
            moved = moved.max((f(level) - start).abs());
        }
        assert!(
            worst <= tolerance,
            "noise {noise}: level off the mass balance by {worst} %"
        );
        assert!(moved > 10.0, "the level should move: {moved}");
    }
}

#[test]
fn tank_level_controller_holds_the_setpoint_without_upsets() {
    let mut m = Tank::new(&quiet().with("level_setpoint", 40.0));
    let rows = run(&mut m, &mut SimRng::seed_from_u64(1), SECOND, 10_000);
    assert!(
        rows.iter()
            .all(|r| (r[0] - 40.0).abs() < 1e-6 && (r[1] - r[2]).abs() < 1e-6)
    );
}

#[test]
fn valve_position_lags_the_setpoint_and_converges() {
    let mut v = ControlValve::new(&quiet());
    let mut rng = SimRng::seed_from_u64(1);
    let mut out = vec![Value::Null; 4];
    v.step(SECOND, &mut rng, &mut out);
    assert_eq!(out[0], Value::F64(60.0));
    assert!((out[1].as_f64().unwrap() - 60.0).abs() < 1e-9);
    let flow_at_60 = out[2].as_f64().unwrap();

    v.hold_setpoint(Some(20.0));
    // One time constant (5 s): 63.2 % of the way.
    for _ in 0..5 {
        v.step(SECOND, &mut rng, &mut out);
    }
    let expected = 20.0 + 40.0 * (-1f64).exp();
    assert!(
        (out[1].as_f64().unwrap() - expected).abs() < 1e-9,
        "{:?}",
        out[1]
    );
    for _ in 0..95 {
        v.step(SECOND, &mut rng, &mut out);
    }
    assert_eq!(out[0], Value::F64(20.0));
    assert!((out[1].as_f64().unwrap() - 20.0).abs() < 1e-6);
    // Closing the valve lowers the flow and raises its dp.
    assert!(out[2].as_f64().unwrap() < 0.5 * flow_at_60);

    // Released, it wanders again (with noise) but follows within a few percent.
    let mut v = ControlValve::new(&ModelParams::new().with("upset_rate", 0.0));
    let rows = run(&mut v, &mut rng, SECOND, 50_000);
    assert!(rows.iter().skip(10).all(|r| (r[0] - r[1]).abs() < 3.0));
    assert!(rows.iter().any(|r| (r[0] - 60.0).abs() > 5.0));
}

#[test]
fn heat_exchanger_cools_the_hot_side_and_warms_the_cold_side() {
    for params in [
        ModelParams::new(),
        ModelParams::new().with("upset_rate", 10.0),
    ] {
        let mut m = HeatExchanger::new(&params);
        let rows = run(&mut m, &mut device_rng(4, "hx"), SECOND, 100_000);
        for r in &rows {
            let [hot_in, hot_out, cold_in, cold_out, _, duty] = r[..] else {
                unreachable!()
            };
            assert!(
                hot_out < hot_in && cold_out > cold_in && duty > 0.0,
                "{r:?}"
            );
            // Second law: neither outlet passes the other stream's inlet.
            assert!(hot_out > cold_in - 1.0 && cold_out < hot_in + 1.0, "{r:?}");
        }
    }
    // Without noise the reported duty is exactly what the hot side gives up.
    let hot_cp = 1800.0;
    let mut m = HeatExchanger::new(&ModelParams::new().with("noise", 0.0));
    for r in run(&mut m, &mut device_rng(4, "hx"), SECOND, 20_000) {
        let [hot_in, hot_out, _, _, flow, duty] = r[..] else {
            unreachable!()
        };
        let hot_side = flow * hot_cp / 3600.0 * (hot_in - hot_out);
        assert!(
            (hot_side - duty).abs() < 1e-6 * duty,
            "{hot_side} vs {duty}"
        );
    }
}

#[test]
fn heat_exchanger_fouls_slowly_until_cleaned() {
    let params = quiet()
        .with("fouling_per_day", 0.05)
        .with("initial_fouling", 0.0);
    let mut m = HeatExchanger::new(&params);
    // Hourly for 12 days: fouling reaches the cleaning point (0.45) after 9 days.
    let rows = run(
        &mut m,
        &mut SimRng::seed_from_u64(1),
        Duration::from_secs(3600),
        12 * 24,
    );
    let hot_out: Vec<f64> = rows.iter().map(|r| r[1]).collect();
    let cleaned = hot_out
        .windows(2)
        .position(|w| w[1] < w[0] - 0.5)
        .expect("a cleaning");
    assert!(
        (8 * 24..10 * 24).contains(&cleaned),
        "cleaned after {cleaned} h"
    );
    assert!(hot_out[..=cleaned].windows(2).all(|w| w[1] >= w[0]));
    assert!(hot_out[cleaned] > hot_out[0] + 3.0);
}

#[test]
fn pump_follows_the_affinity_laws() {
    let at_speed = |pct: f64, static_head: f64| {
        let p = quiet()
            .with("speed_pct", pct)
            .with("static_head", static_head);
        let mut pump = CentrifugalPump::new(&p);
        let rows = run(&mut pump, &mut SimRng::seed_from_u64(1), SECOND, 100);
        let r = rows.last().unwrap().clone();
        let [_, speed, flow, suction, discharge, power, ..] = r[..] else {
            unreachable!()
        };
        (speed, flow, discharge - suction, power)
    };
    // A pure-friction system: flow ∝ speed, head ∝ speed², power ∝ speed³.
    let (n1, q1, h1, p1) = at_speed(100.0, 0.0);
    let (n2, q2, h2, p2) = at_speed(70.0, 0.0);
    let s = n2 / n1;
    assert!((s - 0.7).abs() < 1e-9, "{s}");
    assert!((q2 / q1 - s).abs() < 1e-9, "flow ratio {}", q2 / q1);
    assert!((h2 / h1 - s * s).abs() < 1e-9, "head ratio {}", h2 / h1);
    assert!(
        (p2 / p1 - s * s * s).abs() < 1e-9,
        "power ratio {}",
        p2 / p1
    );
    // At the rated point, the rated flow.
    assert!((q1 - 250.0).abs() < 1e-6, "{q1}");
    // With static head the flow falls faster than the speed.
    let (_, q1, _, _) = at_speed(100.0, 7.0);
    let (_, q2, _, _) = at_speed(70.0, 7.0);
    assert!(q2 / q1 < 0.6, "{}", q2 / q1);
}
