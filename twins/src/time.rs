//! Time: timestamps, and the clock the runtime injects.
//!
//! Domain code never reads the system time directly. It asks a [`Clock`], which
//! in production follows the wall clock and in simulation and tests follows
//! tokio's (pausable, virtual) time.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Microseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const ZERO: Timestamp = Timestamp(0);
    pub const MAX: Timestamp = Timestamp(i64::MAX);

    pub fn from_micros(us: i64) -> Self {
        Self(us)
    }

    pub fn from_millis(ms: i64) -> Self {
        Self(ms.saturating_mul(1000))
    }

    pub fn as_micros(self) -> i64 {
        self.0
    }

    pub fn as_millis(self) -> i64 {
        self.0.div_euclid(1000)
    }

    pub fn saturating_add(self, d: Duration) -> Self {
        Self(self.0.saturating_add(duration_micros(d)))
    }

    pub fn saturating_sub(self, d: Duration) -> Self {
        Self(self.0.saturating_sub(duration_micros(d)))
    }

    /// `self - earlier`, zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0).max(0) as u64)
    }

    /// The current wall-clock time. Only clocks call this.
    fn wall_now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Self(duration_micros(d))
    }
}

fn duration_micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
            rem / 3600,
            (rem / 60) % 60,
            rem % 60,
            micros / 1000
        )
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Where a [`Clock`] gets its time.
trait TimeSource: Send + Sync + fmt::Debug {
    fn now(&self) -> Timestamp;
}

#[derive(Debug)]
struct WallTime;

impl TimeSource for WallTime {
    fn now(&self) -> Timestamp {
        Timestamp::wall_now()
    }
}

/// Follows tokio's clock from a fixed epoch, so `tokio::time::pause()` and
/// `advance()` move it: the same actors run in virtual time.
#[derive(Debug)]
struct TokioTime {
    epoch: Timestamp,
    start: tokio::time::Instant,
}

impl TimeSource for TokioTime {
    fn now(&self) -> Timestamp {
        self.epoch.saturating_add(self.start.elapsed())
    }
}

/// Set by hand; for pure unit tests.
#[derive(Debug)]
struct ManualTime(AtomicI64);

impl TimeSource for ManualTime {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::Relaxed))
    }
}

/// The runtime's injected clock. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Clock {
    source: Arc<dyn TimeSource>,
    manual: Option<Arc<ManualTime>>,
}

impl Clock {
    /// The wall clock.
    pub fn system() -> Self {
        Self {
            source: Arc::new(WallTime),
            manual: None,
        }
    }

    /// tokio's clock, starting at `epoch` now. Must be created inside a tokio runtime.
    pub fn tokio(epoch: Timestamp) -> Self {
        Self {
            source: Arc::new(TokioTime {
                epoch,
                start: tokio::time::Instant::now(),
            }),
            manual: None,
        }
    }

    /// tokio's clock starting at the current wall time.
    pub fn tokio_from_wall() -> Self {
        Self::tokio(Timestamp::wall_now())
    }

    /// A clock that moves only when [`Clock::set`] or [`Clock::advance`] is called.
    pub fn manual(start: Timestamp) -> Self {
        let m = Arc::new(ManualTime(AtomicI64::new(start.0)));
        Self {
            source: m.clone(),
            manual: Some(m),
        }
    }

    pub fn now(&self) -> Timestamp {
        self.source.now()
    }

    /// Moves a manual clock; no effect on other clocks.
    pub fn advance(&self, d: Duration) {
        if let Some(m) = &self.manual {
            m.0.fetch_add(duration_micros(d), Ordering::Relaxed);
        }
    }

    /// Sets a manual clock; no effect on other clocks.
    pub fn set(&self, t: Timestamp) {
        if let Some(m) = &self.manual {
            m.0.store(t.0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_as_utc() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Timestamp::from_millis(1_795_000_000_123).to_string(),
            "2026-11-18T11:06:40.123Z"
        );
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = Clock::manual(Timestamp(10));
        assert_eq!(c.now(), Timestamp(10));
        c.advance(Duration::from_millis(2));
        assert_eq!(c.now(), Timestamp(2010));
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_virtual_time() {
        let c = Clock::tokio(Timestamp(0));
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(c.now(), Timestamp(3_600_000_000));
    }
}
