//! Building blocks shared by the process models: noise, first-order lags,
//! slow wander and random episodes. All randomness comes from the caller's
//! [`SimRng`]; nothing allocates.

use rand::{Rng, RngCore};

use crate::SimRng;

/// Approximately standard normal: the Irwin–Hall sum of the four 16-bit parts
/// of one draw, scaled to unit variance. Bounded to ±2√3, so no single sample
/// is wild, and cheaper than Box–Muller.
pub(crate) fn gauss(rng: &mut SimRng) -> f64 {
    let r = rng.next_u64();
    let sum = (r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) + (r >> 48);
    (sum as f64 / 65_535.0 - 2.0) * 3f64.sqrt()
}

/// Uniform on `[lo, hi)`.
pub(crate) fn uniform(rng: &mut SimRng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// Whether an event of a Poisson process with `rate_per_hour` happens within `dt_s`.
pub(crate) fn chance(rng: &mut SimRng, rate_per_hour: f64, dt_s: f64) -> bool {
    let p = 1.0 - (-rate_per_hour * dt_s / 3600.0).exp();
    rng.random::<f64>() < p
}

/// First-order lag: `x` moved toward `target` over `dt_s` with time constant
/// `tau_s`, exactly (stable for any step).
pub(crate) fn approach(x: f64, target: f64, dt_s: f64, tau_s: f64) -> f64 {
    if tau_s <= 0.0 {
        return target;
    }
    target + (x - target) * (-dt_s / tau_s).exp()
}

/// A measurement: `x` plus Gaussian noise of standard deviation `sd * noise`.
pub(crate) fn measure(rng: &mut SimRng, x: f64, sd: f64, noise: f64) -> f64 {
    x + sd * noise * gauss(rng)
}

/// A measurement of a non-negative quantity with relative noise: never
/// negative, zero stays zero.
pub(crate) fn measure_rel(rng: &mut SimRng, x: f64, rel_sd: f64, noise: f64) -> f64 {
    (x * (1.0 + rel_sd * noise * gauss(rng))).max(0.0)
}

/// Slow random wander around a mean: an Ornstein–Uhlenbeck process with the
/// given stationary standard deviation and correlation time, stepped exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Wander {
    pub mean: f64,
    pub sd: f64,
    pub tau_s: f64,
    pub x: f64,
}

impl Wander {
    /// Starts at the mean.
    pub fn new(mean: f64, sd: f64, tau_s: f64) -> Self {
        Self {
            mean,
            sd,
            tau_s,
            x: mean,
        }
    }

    /// Advances by `dt_s`; `noise` scales the spread (0: relax to the mean).
    pub fn step(&mut self, dt_s: f64, noise: f64, rng: &mut SimRng) -> f64 {
        let a = (-dt_s / self.tau_s).exp();
        let s = self.sd * noise * (1.0 - a * a).max(0.0).sqrt();
        self.x = self.mean + (self.x - self.mean) * a + s * gauss(rng);
        self.x
    }
}

/// A random episode (a disturbance, a fault, an outage): starts at a Poisson
/// rate, lasts a random time, and has a random magnitude while it lasts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Episode {
    /// Starts per hour at `upset_rate` 1.
    pub rate_per_hour: f64,
    /// Duration range, seconds.
    pub duration_s: (f64, f64),
    /// Magnitude range.
    pub magnitude: (f64, f64),
    left_s: f64,
    level: f64,
}

impl Episode {
    pub const fn new(rate_per_hour: f64, duration_s: (f64, f64), magnitude: (f64, f64)) -> Self {
        Self {
            rate_per_hour,
            duration_s,
            magnitude,
            left_s: 0.0,
            level: 0.0,
        }
    }

    /// Advances by `dt_s` and returns the magnitude now (0 when none runs).
    pub fn step(&mut self, dt_s: f64, upset_rate: f64, rng: &mut SimRng) -> f64 {
        if self.left_s > 0.0 {
            self.left_s -= dt_s;
            if self.left_s <= 0.0 {
                self.level = 0.0;
            }
        } else if chance(rng, self.rate_per_hour * upset_rate, dt_s) {
            self.left_s = uniform(rng, self.duration_s.0, self.duration_s.1);
            self.level = uniform(rng, self.magnitude.0, self.magnitude.1);
        }
        self.level
    }

    pub fn active(&self) -> bool {
        self.left_s > 0.0
    }
}

/// A machine that trips at random and is restarted by an operator after a
/// random delay.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Trips {
    pub rate_per_hour: f64,
    pub restart_s: (f64, f64),
    pub running: bool,
    down_left_s: f64,
}

impl Trips {
    pub const fn new(rate_per_hour: f64, restart_s: (f64, f64)) -> Self {
        Self {
            rate_per_hour,
            restart_s,
            running: true,
            down_left_s: 0.0,
        }
    }

    /// Advances by `dt_s`; returns whether the machine runs.
    pub fn step(&mut self, dt_s: f64, upset_rate: f64, rng: &mut SimRng) -> bool {
        if self.running {
            if chance(rng, self.rate_per_hour * upset_rate, dt_s) {
                self.trip(rng);
            }
        } else {
            self.down_left_s -= dt_s;
            if self.down_left_s <= 0.0 {
                self.running = true;
            }
        }
        self.running
    }

    /// Stops the machine now (a protection trip); it restarts after the usual delay.
    pub fn trip(&mut self, rng: &mut SimRng) {
        self.running = false;
        self.down_left_s = uniform(rng, self.restart_s.0, self.restart_s.1);
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn gauss_has_unit_variance_and_zero_mean() {
        let mut rng = SimRng::seed_from_u64(1);
        let n = 200_000;
        let (mut s, mut s2) = (0.0, 0.0);
        for _ in 0..n {
            let g = gauss(&mut rng);
            assert!(g.abs() <= 2.0 * 3f64.sqrt() + 1e-9);
            s += g;
            s2 += g * g;
        }
        let mean = s / n as f64;
        let var = s2 / n as f64 - mean * mean;
        assert!(mean.abs() < 0.01, "{mean}");
        assert!((var - 1.0).abs() < 0.02, "{var}");
    }

    #[test]
    fn wander_keeps_its_spread_for_any_step() {
        for dt in [0.1, 1.0, 60.0, 3600.0] {
            let mut rng = SimRng::seed_from_u64(2);
            let mut w = Wander::new(10.0, 2.0, 600.0);
            let n = 100_000;
            let (mut s, mut s2) = (0.0, 0.0);
            for _ in 0..n {
                let x = w.step(dt, 1.0, &mut rng);
                s += x;
                s2 += x * x;
            }
            let mean = s / n as f64;
            let sd = (s2 / n as f64 - mean * mean).sqrt();
            // Loose bounds: at small steps the samples are strongly correlated.
            assert!((mean - 10.0).abs() < 1.0, "dt {dt}: mean {mean}");
            assert!(sd > 1.0 && sd < 3.0, "dt {dt}: sd {sd}");
        }
    }

    #[test]
    fn episodes_occupy_rate_times_duration() {
        let mut rng = SimRng::seed_from_u64(3);
        // 2 per hour lasting 60..120 s: about 2 * 90 / 3600 = 5% of the time.
        let mut e = Episode::new(2.0, (60.0, 120.0), (1.0, 1.0));
        let n = 2_000_000;
        let active = (0..n).filter(|_| e.step(1.0, 1.0, &mut rng) > 0.0).count();
        let frac = active as f64 / n as f64;
        assert!((0.04..0.055).contains(&frac), "{frac}");
        // Upset rate 0: never.
        let mut e = Episode::new(2.0, (60.0, 120.0), (1.0, 1.0));
        assert!((0..100_000).all(|_| e.step(1.0, 0.0, &mut rng) == 0.0));
    }

    #[test]
    fn approach_is_exact_and_stable() {
        let x = approach(0.0, 1.0, 5.0, 5.0);
        assert!((x - (1.0 - (-1f64).exp())).abs() < 1e-12);
        assert_eq!(approach(3.0, 1.0, 1e9, 5.0), 1.0);
        assert_eq!(approach(3.0, 1.0, 1.0, 0.0), 1.0);
    }
}
