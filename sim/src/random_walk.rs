//! The generic fallback for a property that no process model feeds.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use twins::{Value, ValueType};

use crate::SimRng;
use crate::dynamics::{chance, gauss};

/// One property's values as a bounded random walk: numbers wander within
/// their range (reflecting at the ends, crossing it in about an hour), booleans
/// and enum states switch now and then (every half hour on average), strings
/// stay constant. Deterministic given the random source; `step` does not
/// allocate.
#[derive(Debug, Clone)]
pub struct RandomWalk {
    ty: ValueType,
    lo: f64,
    hi: f64,
    states: u16,
    x: f64,
    label: Arc<str>,
}

/// Mean time between switches of a boolean or enum, hours.
const DWELL_H: f64 = 0.5;

impl RandomWalk {
    /// A walk for a property of type `ty` within `range` (`[0, 100]` when
    /// `None` or not finite), starting in the middle. Enums get two states
    /// unless [`with_states`](Self::with_states) says otherwise.
    pub fn new(ty: ValueType, range: Option<(f64, f64)>) -> Self {
        let (lo, hi) = match range {
            Some((a, b)) if a.is_finite() && b.is_finite() => (a.min(b), a.max(b)),
            _ => (0.0, 100.0),
        };
        let x = match ty {
            ValueType::Bool => 1.0,
            ValueType::Enum => 0.0,
            _ => (lo + hi) / 2.0,
        };
        Self {
            ty,
            lo,
            hi,
            states: 2,
            x,
            label: Arc::from("simulated"),
        }
    }

    /// The number of states of an enum (at least one).
    pub fn with_states(mut self, states: u16) -> Self {
        self.states = states.max(1);
        self
    }

    pub fn value_type(&self) -> ValueType {
        self.ty
    }

    /// The current value.
    pub fn value(&self) -> Value {
        match self.ty {
            ValueType::F64 => Value::F64(self.x),
            ValueType::I64 => Value::I64(self.x.round() as i64),
            ValueType::Bool => Value::Bool(self.x != 0.0),
            ValueType::Enum => Value::Enum(self.x as u16),
            ValueType::String => Value::String(self.label.clone()),
        }
    }

    /// Advances by `dt` and returns the new value.
    pub fn step(&mut self, dt: Duration, rng: &mut SimRng) -> Value {
        let dt_s = dt.as_secs_f64();
        match self.ty {
            ValueType::F64 | ValueType::I64 => {
                let span = self.hi - self.lo;
                let mut x = self.x + 0.5 * span * (dt_s / 3600.0).sqrt() * gauss(rng);
                // Reflect into [lo, hi]; a step longer than the span lands anywhere.
                if span <= 0.0 {
                    x = self.lo;
                } else if !(self.lo..=self.hi).contains(&x) {
                    let period = 2.0 * span;
                    let r = (x - self.lo).rem_euclid(period);
                    x = self.lo + if r > span { period - r } else { r };
                }
                self.x = x;
            }
            ValueType::Bool => {
                if chance(rng, 1.0 / DWELL_H, dt_s) {
                    self.x = if self.x != 0.0 { 0.0 } else { 1.0 };
                }
            }
            ValueType::Enum => {
                if chance(rng, 1.0 / DWELL_H, dt_s) {
                    self.x = f64::from(rng.random_range(0..self.states));
                }
            }
            ValueType::String => {}
        }
        self.value()
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn walk(ty: ValueType, range: Option<(f64, f64)>, steps: usize, seed: u64) -> Vec<Value> {
        let mut w = RandomWalk::new(ty, range).with_states(4);
        let mut rng = SimRng::seed_from_u64(seed);
        (0..steps)
            .map(|_| w.step(Duration::from_secs(1), &mut rng))
            .collect()
    }

    #[test]
    fn numbers_stay_in_range_and_cover_it() {
        let xs: Vec<f64> = walk(ValueType::F64, Some((10.0, 20.0)), 100_000, 1)
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert!(xs.iter().all(|x| (10.0..=20.0).contains(x)));
        assert!(xs.iter().any(|&x| x < 11.0) && xs.iter().any(|&x| x > 19.0));
        let ints = walk(ValueType::I64, None, 10_000, 1);
        assert!(ints.iter().all(|v| matches!(v, Value::I64(0..=100))));
        // A reversed range is the same range; a degenerate one is constant.
        assert!(
            walk(ValueType::F64, Some((5.0, -5.0)), 1000, 2)
                .iter()
                .all(|v| (-5.0..=5.0).contains(&v.as_f64().unwrap()))
        );
        assert!(
            walk(ValueType::F64, Some((3.0, 3.0)), 100, 2)
                .iter()
                .all(|v| *v == Value::F64(3.0))
        );
        // Huge steps still land inside.
        let mut w = RandomWalk::new(ValueType::F64, Some((0.0, 1.0)));
        let mut rng = SimRng::seed_from_u64(3);
        for _ in 0..1000 {
            let x = w
                .step(Duration::from_secs(1_000_000), &mut rng)
                .as_f64()
                .unwrap();
            assert!((0.0..=1.0).contains(&x));
        }
    }

    #[test]
    fn booleans_and_enums_switch_now_and_then() {
        let bools = walk(ValueType::Bool, None, 36_000, 4);
        let flips = bools.windows(2).filter(|w| w[0] != w[1]).count();
        // About 20 switches in 10 h.
        assert!((8..40).contains(&flips), "{flips}");
        let enums = walk(ValueType::Enum, None, 36_000, 4);
        assert!(enums.iter().all(|v| matches!(v, Value::Enum(0..=3))));
        let seen: std::collections::HashSet<_> =
            enums.iter().map(|v| v.as_f64().unwrap() as u16).collect();
        assert_eq!(seen.len(), 4);
        assert!(
            walk(ValueType::String, None, 10, 4)
                .iter()
                .all(|v| matches!(v, Value::String(s) if &**s == "simulated"))
        );
    }

    #[test]
    fn same_seed_same_walk() {
        assert_eq!(
            walk(ValueType::F64, None, 1000, 9),
            walk(ValueType::F64, None, 1000, 9)
        );
        assert_ne!(
            walk(ValueType::F64, None, 1000, 9),
            walk(ValueType::F64, None, 1000, 10)
        );
    }
}
