//! Counters and gauges of a Modbus source, per endpoint, readable while it
//! runs through [`SourceStats`] (labels `source` and `endpoint`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::source::{SourceStats, Stat, StatKind};

/// Counters of one endpoint, updated by its connection task.
#[derive(Debug, Default)]
pub struct ModbusMetrics {
    polls: AtomicU64,
    exceptions: AtomicU64,
    timeouts: AtomicU64,
    io_errors: AtomicU64,
    decode_errors: AtomicU64,
    connects: AtomicU64,
    connect_failures: AtomicU64,
    reconnects: AtomicU64,
    writes: AtomicU64,
    write_errors: AtomicU64,
    connected: AtomicU64,
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
    latency_max_us: AtomicU64,
    last_latency_us: AtomicU64,
}

/// A copy of [`ModbusMetrics`] at one moment (or their sum over endpoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ModbusMetricsSnapshot {
    /// Block reads sent.
    pub polls: u64,
    /// Reads and writes answered with a Modbus exception.
    pub exceptions: u64,
    /// Reads, writes or connects that timed out.
    pub timeouts: u64,
    /// Reads, writes or connects that failed with an I/O error.
    pub io_errors: u64,
    /// Points whose registers did not decode.
    pub decode_errors: u64,
    /// Connections established.
    pub connects: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// Connections established after a lost or failed one.
    pub reconnects: u64,
    /// Setpoint writes the endpoint's task handled (writes refused by the
    /// writer, not writable or invalid, never reach it).
    pub writes: u64,
    /// Of those, the ones that failed: exception, timeout, I/O error, or
    /// not connected (then nothing was sent).
    pub write_errors: u64,
    /// Whether the endpoint is connected (a sum: how many are).
    pub connected: u64,
    /// Successful reads timed.
    pub latency_count: u64,
    /// Sum of their round trips, in microseconds.
    pub latency_sum_us: u64,
    /// Longest round trip, in microseconds.
    pub latency_max_us: u64,
    /// Round trip of the last successful read, in microseconds.
    pub last_latency_us: u64,
}

impl ModbusMetrics {
    pub fn snapshot(&self) -> ModbusMetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ModbusMetricsSnapshot {
            polls: get(&self.polls),
            exceptions: get(&self.exceptions),
            timeouts: get(&self.timeouts),
            io_errors: get(&self.io_errors),
            decode_errors: get(&self.decode_errors),
            connects: get(&self.connects),
            connect_failures: get(&self.connect_failures),
            reconnects: get(&self.reconnects),
            writes: get(&self.writes),
            write_errors: get(&self.write_errors),
            connected: get(&self.connected),
            latency_count: get(&self.latency_count),
            latency_sum_us: get(&self.latency_sum_us),
            latency_max_us: get(&self.latency_max_us),
            last_latency_us: get(&self.last_latency_us),
        }
    }

    pub(crate) fn poll(&self) {
        bump(&self.polls);
    }
    pub(crate) fn exception(&self) {
        bump(&self.exceptions);
    }
    pub(crate) fn timeout(&self) {
        bump(&self.timeouts);
    }
    pub(crate) fn io_error(&self) {
        bump(&self.io_errors);
    }
    pub(crate) fn decode_error(&self) {
        bump(&self.decode_errors);
    }
    pub(crate) fn write(&self) {
        bump(&self.writes);
    }
    pub(crate) fn write_error(&self) {
        bump(&self.write_errors);
    }
    pub(crate) fn connect_failure(&self) {
        bump(&self.connect_failures);
    }

    /// A connection was established; `after_loss` if one was lost or refused before.
    pub(crate) fn connected(&self, after_loss: bool) {
        bump(&self.connects);
        if after_loss {
            bump(&self.reconnects);
        }
        self.connected.store(1, Ordering::Relaxed);
    }

    pub(crate) fn disconnected(&self) {
        self.connected.store(0, Ordering::Relaxed);
    }

    /// A successful read took `latency`.
    pub(crate) fn latency(&self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        bump(&self.latency_count);
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
        self.latency_max_us.fetch_max(us, Ordering::Relaxed);
        self.last_latency_us.store(us, Ordering::Relaxed);
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The metrics of every endpoint of one source.
#[derive(Debug)]
pub struct ModbusStats {
    source: String,
    endpoints: Vec<(String, Arc<ModbusMetrics>)>,
}

impl ModbusStats {
    /// Zeroed metrics for `endpoints` of `source`.
    pub fn new(source: &str, endpoints: impl IntoIterator<Item = String>) -> ModbusStats {
        ModbusStats {
            source: source.to_owned(),
            endpoints: endpoints.into_iter().map(|e| (e, Arc::default())).collect(),
        }
    }

    /// The metrics of endpoint `name`.
    pub fn endpoint(&self, name: &str) -> Option<ModbusMetricsSnapshot> {
        self.endpoints
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, m)| m.snapshot())
    }

    /// The metrics of endpoint number `index`, for its connection task.
    pub(crate) fn handle(&self, index: usize) -> Arc<ModbusMetrics> {
        self.endpoints[index].1.clone()
    }

    /// The sum over every endpoint (the maximum for `latency_max_us`).
    pub fn snapshot(&self) -> ModbusMetricsSnapshot {
        let mut t = ModbusMetricsSnapshot::default();
        for (_, m) in &self.endpoints {
            let s = m.snapshot();
            t.polls += s.polls;
            t.exceptions += s.exceptions;
            t.timeouts += s.timeouts;
            t.io_errors += s.io_errors;
            t.decode_errors += s.decode_errors;
            t.connects += s.connects;
            t.connect_failures += s.connect_failures;
            t.reconnects += s.reconnects;
            t.writes += s.writes;
            t.write_errors += s.write_errors;
            t.connected += s.connected;
            t.latency_count += s.latency_count;
            t.latency_sum_us += s.latency_sum_us;
            t.latency_max_us = t.latency_max_us.max(s.latency_max_us);
            t.last_latency_us = s.last_latency_us;
        }
        t
    }
}

impl SourceStats for ModbusStats {
    fn stats(&self) -> Vec<Stat> {
        use StatKind::{Counter, Gauge};
        let mut out = Vec::with_capacity(self.endpoints.len() * 14);
        for (endpoint, m) in &self.endpoints {
            let s = m.snapshot();
            let seconds = |us: u64| us as f64 / 1e6;
            let rows: [(&'static str, &'static str, StatKind, f64); 14] = [
                ("modbus_polls", "block reads sent", Counter, s.polls as f64),
                (
                    "modbus_exceptions",
                    "reads and writes answered with a Modbus exception",
                    Counter,
                    s.exceptions as f64,
                ),
                (
                    "modbus_timeouts",
                    "reads, writes and connects that timed out",
                    Counter,
                    s.timeouts as f64,
                ),
                (
                    "modbus_io_errors",
                    "reads, writes and connects that failed with an I/O error",
                    Counter,
                    s.io_errors as f64,
                ),
                (
                    "modbus_decode_errors",
                    "point values that did not decode",
                    Counter,
                    s.decode_errors as f64,
                ),
                (
                    "modbus_connects",
                    "connections established",
                    Counter,
                    s.connects as f64,
                ),
                (
                    "modbus_connect_failures",
                    "connection attempts that failed",
                    Counter,
                    s.connect_failures as f64,
                ),
                (
                    "modbus_reconnects",
                    "connections established after a lost or refused one",
                    Counter,
                    s.reconnects as f64,
                ),
                (
                    "modbus_writes",
                    "setpoint writes attempted (refused ones excluded)",
                    Counter,
                    s.writes as f64,
                ),
                (
                    "modbus_write_errors",
                    "setpoint writes that failed",
                    Counter,
                    s.write_errors as f64,
                ),
                (
                    "modbus_connected",
                    "1 while the endpoint is connected",
                    Gauge,
                    s.connected as f64,
                ),
                (
                    "modbus_poll_latency_seconds_count",
                    "successful block reads timed",
                    Counter,
                    s.latency_count as f64,
                ),
                (
                    "modbus_poll_latency_seconds_sum",
                    "total round trip of the timed block reads",
                    Counter,
                    seconds(s.latency_sum_us),
                ),
                (
                    "modbus_poll_latency_seconds_max",
                    "longest round trip of a block read since start",
                    Gauge,
                    seconds(s.latency_max_us),
                ),
            ];
            for (name, help, kind, value) in rows {
                out.push(Stat {
                    name,
                    help,
                    kind,
                    labels: vec![
                        ("source", self.source.clone()),
                        ("endpoint", endpoint.clone()),
                    ],
                    value,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_labelled_per_endpoint_and_sum_up() {
        let stats = ModbusStats::new("m", ["a".to_owned(), "b".to_owned()]);
        let a = stats.handle(0);
        a.poll();
        a.poll();
        a.connected(false);
        a.latency(Duration::from_millis(3));
        a.latency(Duration::from_millis(1));
        stats.handle(1).poll();
        stats.handle(1).connected(true);
        stats.handle(1).disconnected();

        assert_eq!(stats.endpoint("a").unwrap().polls, 2);
        assert_eq!(stats.endpoint("c"), None);
        let total = stats.snapshot();
        assert_eq!(
            (
                total.polls,
                total.connects,
                total.reconnects,
                total.connected
            ),
            (3, 2, 1, 1)
        );
        let all = SourceStats::stats(&stats);
        assert_eq!(all.len(), 28);
        let find = |name: &str, endpoint: &str| {
            all.iter()
                .find(|s| {
                    s.name == name
                        && s.labels
                            == [
                                ("source", "m".to_owned()),
                                ("endpoint", endpoint.to_owned()),
                            ]
                })
                .unwrap_or_else(|| panic!("{name} of {endpoint}"))
                .value
        };
        assert_eq!(find("modbus_polls", "a"), 2.0);
        assert_eq!(find("modbus_connected", "a"), 1.0);
        assert_eq!(find("modbus_connected", "b"), 0.0);
        assert_eq!(find("modbus_poll_latency_seconds_count", "a"), 2.0);
        assert!((find("modbus_poll_latency_seconds_sum", "a") - 0.004).abs() < 1e-9);
        assert!((find("modbus_poll_latency_seconds_max", "a") - 0.003).abs() < 1e-9);
    }
}
