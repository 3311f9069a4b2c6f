//! The per-point delivery filter: `deadband=` suppression with a heartbeat.
//!
//! A point with a deadband greater than zero delivers a `Good` value only
//! when it moved at least the deadband (in scaled units) away from the last
//! *delivered* value. It never goes silent: when nothing was delivered for
//! the point's heartbeat (its expected period, else ten poll intervals), the
//! current reading is delivered again with a fresh timestamp, so twins that
//! flag properties stale after period × factor keep seeing it. Any quality
//! other than `Good`, and any quality change, is always delivered. Points
//! without a deadband deliver every reading.
//!
//! Sans-IO: the caller passes the time of each reading.

use std::time::Duration;

use tokio::time::Instant;
use twins::{Quality, Value};

/// Delivery state of one point.
#[derive(Debug, Clone)]
pub struct Deadband {
    deadband: f64,
    heartbeat: Duration,
    /// The last delivered value, its quality and when it was delivered.
    last: Option<(Value, Quality, Instant)>,
}

impl Deadband {
    /// A filter suppressing changes smaller than `deadband`, re-delivering
    /// at least every `heartbeat`. A deadband of 0 delivers everything.
    pub fn new(deadband: f64, heartbeat: Duration) -> Deadband {
        Deadband {
            deadband,
            heartbeat,
            last: None,
        }
    }

    /// Whether the filter can ever suppress a reading.
    pub fn is_active(&self) -> bool {
        self.deadband > 0.0
    }

    /// Whether to deliver `value` of `quality`, read at `now`; remembers it
    /// as the last delivered value if so.
    pub fn admit(&mut self, value: &Value, quality: Quality, now: Instant) -> bool {
        if !self.is_active() {
            return true;
        }
        let deliver = match &self.last {
            None => true,
            Some((last, last_quality, at)) => {
                quality != Quality::Good
                    || *last_quality != quality
                    || now.saturating_duration_since(*at) >= self.heartbeat
                    || !within(last, value, self.deadband)
            }
        };
        if deliver {
            self.last = Some((value.clone(), quality, now));
        }
        deliver
    }
}

/// Whether `b` lies less than `deadband` away from `a` (non-numbers: equal).
fn within(a: &Value, b: &Value, deadband: f64) -> bool {
    match (a, b) {
        (Value::F64(_) | Value::I64(_), Value::F64(_) | Value::I64(_)) => {
            match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => (x - y).abs() < deadband,
                _ => false,
            }
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use twins::Reason;

    use super::*;

    const BEAT: Duration = Duration::from_secs(1);

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn small_changes_are_suppressed_against_the_last_delivered_value() {
        let t0 = Instant::now();
        let mut f = Deadband::new(0.5, BEAT);
        let good = Quality::Good;
        assert!(f.admit(&Value::F64(10.0), good, at(t0, 0)), "first value");
        assert!(!f.admit(&Value::F64(10.3), good, at(t0, 100)));
        assert!(!f.admit(&Value::F64(9.6), good, at(t0, 200)));
        // Creeping by 0.2 per reading: compared to 10.0, not to 9.6.
        assert!(!f.admit(&Value::F64(10.4), good, at(t0, 300)));
        assert!(f.admit(&Value::F64(10.5), good, at(t0, 400)), "moved 0.5");
        assert!(!f.admit(&Value::F64(10.1), good, at(t0, 500)));
        assert!(f.admit(&Value::F64(9.9), good, at(t0, 600)), "moved 0.6");
        // Integers compare the same way.
        let mut i = Deadband::new(2.0, BEAT);
        assert!(i.admit(&Value::I64(100), good, t0));
        assert!(!i.admit(&Value::I64(101), good, at(t0, 1)));
        assert!(i.admit(&Value::I64(98), good, at(t0, 2)));
    }

    #[test]
    fn a_point_never_goes_silent_for_longer_than_its_heartbeat() {
        let t0 = Instant::now();
        let mut f = Deadband::new(0.5, BEAT);
        let mut delivered = Vec::new();
        // A constant value read every 100 ms for 5 s.
        for ms in (0..5000).step_by(100) {
            if f.admit(&Value::F64(1.0), Quality::Good, at(t0, ms)) {
                delivered.push(ms);
            }
        }
        assert_eq!(delivered, [0, 1000, 2000, 3000, 4000]);
    }

    #[test]
    fn quality_changes_and_bad_readings_are_always_delivered() {
        let t0 = Instant::now();
        let mut f = Deadband::new(0.5, BEAT);
        let bad = Quality::Bad(Reason::CommFailure);
        assert!(f.admit(&Value::F64(1.0), Quality::Good, at(t0, 0)));
        assert!(f.admit(&Value::Null, bad, at(t0, 100)));
        assert!(f.admit(&Value::Null, bad, at(t0, 200)), "bad again");
        assert!(
            f.admit(&Value::F64(1.0), Quality::Good, at(t0, 300)),
            "good again, same value"
        );
        assert!(!f.admit(&Value::F64(1.1), Quality::Good, at(t0, 400)));
        let uncertain = Quality::Uncertain(Reason::CalcError);
        assert!(f.admit(&Value::F64(1.1), uncertain, at(t0, 500)));
    }

    #[test]
    fn without_a_deadband_every_reading_is_delivered() {
        let t0 = Instant::now();
        let mut f = Deadband::new(0.0, BEAT);
        assert!(!f.is_active());
        for ms in 0..10 {
            assert!(f.admit(&Value::F64(1.0), Quality::Good, at(t0, ms)));
        }
    }
}
