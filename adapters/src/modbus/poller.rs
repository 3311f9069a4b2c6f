//! [`ModbusSource`]: the Modbus TCP poller, one endpoint, as a
//! [`SampleSource`]. It calls the sans-IO core (address parsing, read
//! planning, decoding) and owns the socket.
//!
//! # Quality of delivered samples
//!
//! | outcome of a block read                                  | quality of its points |
//! |----------------------------------------------------------|-----------------------|
//! | registers decoded (scaling applied)                      | `Good`                |
//! | value does not decode (non-finite float, u64 > i64::MAX) | `Bad(CalcError)`      |
//! | exception IllegalFunction, IllegalDataAddress, IllegalDataValue: the device has no such data, a configuration error | `Bad(OutOfRange)` (the closest [`Reason`]: the address is outside the device's map) |
//! | exception ServerDeviceFailure, ServerDeviceBusy, Acknowledge, MemoryParityError, any other code | `Bad(SensorFault)` |
//! | exception GatewayPathUnavailable, GatewayTargetDevice    | `Bad(CommFailure)` (the device behind the gateway is unreachable; the connection is kept) |
//! | timeout or I/O error                                     | `Bad(CommFailure)` for every point of the endpoint, then reconnect |
//!
//! While disconnected, each poll group delivers its points once per interval
//! as `Bad(CommFailure)`; staleness in the twins does the rest. Reconnects
//! back off exponentially from 100 ms, doubling up to 30 s, with ±20 % jitter.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tokio_modbus::client::{self, Context, Reader};
use tokio_modbus::{ExceptionCode, Slave};
use twins::{Clock, PointId, Quality, Reason, Sample, Value};

use super::address::{PointAddress, Table};
use super::config::EndpointConfig;
use super::decode::decode;
use super::plan::{BlockRead, PlanPoint, plan_reads};
use crate::source::{BindError, PointSpec, SampleSink, SampleSource, SourceError, SourceFuture};

/// First reconnect delay.
const BACKOFF_START: Duration = Duration::from_millis(100);
/// Longest reconnect delay.
const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// Counters of one Modbus source, shared with whoever asked for them.
#[derive(Debug, Default)]
pub struct ModbusMetrics {
    polls: AtomicU64,
    exceptions: AtomicU64,
    timeouts: AtomicU64,
    io_errors: AtomicU64,
    decode_errors: AtomicU64,
    connect_failures: AtomicU64,
    reconnects: AtomicU64,
    last_latency_us: AtomicU64,
}

/// A copy of [`ModbusMetrics`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ModbusMetricsSnapshot {
    /// Block reads sent.
    pub polls: u64,
    /// Reads answered with a Modbus exception.
    pub exceptions: u64,
    /// Reads or connects that timed out.
    pub timeouts: u64,
    /// Reads or connects that failed with an I/O error.
    pub io_errors: u64,
    /// Points whose registers did not decode.
    pub decode_errors: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    /// Connections established after a lost or failed one.
    pub reconnects: u64,
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
            connect_failures: get(&self.connect_failures),
            reconnects: get(&self.reconnects),
            last_latency_us: get(&self.last_latency_us),
        }
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The quality of the points of a block read answered with `code`.
pub fn exception_quality(code: ExceptionCode) -> Quality {
    use ExceptionCode::*;
    Quality::Bad(match code {
        IllegalFunction | IllegalDataAddress | IllegalDataValue => Reason::OutOfRange,
        GatewayPathUnavailable | GatewayTargetDevice => Reason::CommFailure,
        _ => Reason::SensorFault,
    })
}

/// Capped exponential backoff with ±20 % jitter from a xorshift PRNG.
#[derive(Debug, Clone)]
struct Backoff {
    next: Duration,
    rng: u64,
}

impl Backoff {
    fn new(seed: u64) -> Backoff {
        Backoff {
            next: BACKOFF_START,
            rng: seed | 1,
        }
    }

    fn reset(&mut self) {
        self.next = BACKOFF_START;
    }

    /// The delay before the next attempt; doubles the one after.
    fn delay(&mut self) -> Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        // A factor in [0.8, 1.2).
        let factor = 0.8 + 0.4 * ((self.rng >> 11) as f64 / (1u64 << 53) as f64);
        let delay = self.next.mul_f64(factor);
        self.next = (self.next * 2).min(BACKOFF_CAP);
        delay
    }
}

/// A bound point: its id and parsed address.
#[derive(Debug, Clone)]
struct Bound {
    id: PointId,
    address: PointAddress,
}

/// Polls one Modbus TCP endpoint and delivers its points.
pub struct ModbusSource {
    name: String,
    endpoint: EndpointConfig,
    clock: Clock,
    points: Vec<Bound>,
    reads: Vec<BlockRead>,
    metrics: Arc<ModbusMetrics>,
}

impl fmt::Debug for ModbusSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModbusSource")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint.name)
            .field("points", &self.points.len())
            .field("reads", &self.reads.len())
            .finish()
    }
}

impl ModbusSource {
    /// A source polling `endpoint`, which must have passed validation.
    pub fn new(name: impl Into<String>, endpoint: EndpointConfig, clock: Clock) -> ModbusSource {
        ModbusSource {
            name: name.into(),
            endpoint,
            clock,
            points: Vec::new(),
            reads: Vec::new(),
            metrics: Arc::default(),
        }
    }

    /// The source's counters; they keep counting after [`SampleSource::run`].
    pub fn metrics(&self) -> Arc<ModbusMetrics> {
        self.metrics.clone()
    }
}

impl SampleSource for ModbusSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn bind(&mut self, points: Vec<PointSpec>) -> Result<(), Vec<BindError>> {
        let default_group = self.endpoint.default_group().unwrap_or_default().to_owned();
        let mut errors = Vec::new();
        let mut bound = Vec::new();
        for (index, spec) in points.iter().enumerate() {
            let error = |message: String| BindError {
                source_name: self.name.clone(),
                twin: spec.twin.clone(),
                prop: spec.prop.clone(),
                address: spec.address.clone(),
                message,
            };
            match PointAddress::parse(&spec.address) {
                Ok(address) => {
                    if let Some(group) = &address.group
                        && !self.endpoint.poll_groups.iter().any(|g| &g.name == group)
                    {
                        errors.push(error(format!(
                            "endpoint `{}` has no poll group `{group}`",
                            self.endpoint.name
                        )));
                        continue;
                    }
                    bound.push(Bound {
                        id: PointId(index as u32),
                        address,
                    });
                }
                Err(e) => errors.push(error(e.to_string())),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let plan: Vec<PlanPoint> = bound
            .iter()
            .map(|b| PlanPoint::from_address(&b.address, &default_group))
            .collect();
        self.reads = plan_reads(&plan, &self.endpoint.plan_limits());
        self.points = bound;
        Ok(())
    }

    fn run(
        self: Box<Self>,
        sink: Arc<dyn SampleSink>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> SourceFuture {
        Box::pin(Poller::new(*self, sink).run(shutdown))
    }
}

/// The running state of a [`ModbusSource`].
struct Poller {
    source: ModbusSource,
    sink: Arc<dyn SampleSink>,
    /// Per poll group: name, interval, next due time.
    groups: Vec<(String, Duration, Instant)>,
    ctx: Option<Context>,
    /// No connection attempt before this.
    next_connect: Instant,
    backoff: Backoff,
    /// Whether a connection was ever lost or refused (to count reconnects).
    lost: bool,
    seq: Vec<u64>,
}

/// Why a block read failed below the Modbus layer.
enum Comm {
    Timeout,
    Io,
}

impl Poller {
    fn new(source: ModbusSource, sink: Arc<dyn SampleSink>) -> Poller {
        let now = Instant::now();
        let groups = source
            .endpoint
            .poll_groups
            .iter()
            .map(|g| (g.name.clone(), g.interval, now))
            .collect();
        let seed = source
            .name
            .bytes()
            .chain(source.endpoint.name.bytes())
            .fold(source.clock.now().0 as u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
        let seq = vec![0; source.points.len()];
        Poller {
            source,
            sink,
            groups,
            ctx: None,
            next_connect: now,
            backoff: Backoff::new(seed),
            lost: false,
            seq,
        }
    }

    async fn run(
        mut self,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), SourceError> {
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            let Some(due) = self.groups.iter().map(|g| g.2).min() else {
                // No poll group (an unvalidated config): wait for shutdown.
                let _ = shutdown.changed().await;
                return Ok(());
            };
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                }
                () = tokio::time::sleep_until(due) => {
                    let now = Instant::now();
                    for g in 0..self.groups.len() {
                        if self.groups[g].2 <= now {
                            let (name, interval, _) = self.groups[g].clone();
                            // Keep the schedule; skip missed ticks rather than burst.
                            let mut next = self.groups[g].2 + interval;
                            while next <= now {
                                next += interval;
                            }
                            self.groups[g].2 = next;
                            self.poll_group(&name).await?;
                        }
                    }
                }
            }
        }
    }

    fn sample(&mut self, index: usize, value: Value, quality: Quality) -> Sample {
        self.seq[index] += 1;
        Sample {
            point: self.source.points[index].id,
            value,
            source_ts: self.source.clock.now(),
            quality,
            seq: self.seq[index],
        }
    }

    fn deliver(&self, batch: Vec<Sample>) -> Result<(), SourceError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.sink
            .deliver(batch, self.source.clock.now())
            .map_err(|_| SourceError::SinkClosed(self.source.name.clone()))
    }

    /// Every point of the reads of `group` (or of all reads) as `Bad(CommFailure)`.
    fn comm_failure(&mut self, group: Option<&str>) -> Vec<Sample> {
        let indices: Vec<usize> = self
            .source
            .reads
            .iter()
            .filter(|r| group.is_none_or(|g| r.group == g))
            .flat_map(|r| r.points.iter().map(|s| s.point))
            .collect();
        indices
            .into_iter()
            .map(|i| self.sample(i, Value::Null, Quality::Bad(Reason::CommFailure)))
            .collect()
    }

    async fn connect(&mut self) {
        let endpoint = &self.source.endpoint;
        let metrics = self.source.metrics.clone();
        let target = format!("{}:{}", endpoint.host, endpoint.port);
        let slave = Slave(endpoint.unit_id);
        let attempt = async {
            let addr = tokio::net::lookup_host(&target)
                .await?
                .next()
                .ok_or_else(|| {
                    std::io::Error::other(format!("`{target}` resolves to no address"))
                })?;
            client::tcp::connect_slave(addr, slave).await
        };
        match tokio::time::timeout(endpoint.timeout, attempt).await {
            Ok(Ok(ctx)) => {
                if self.lost {
                    ModbusMetrics::bump(&metrics.reconnects);
                }
                self.ctx = Some(ctx);
                self.backoff.reset();
            }
            Ok(Err(_)) | Err(_) => {
                ModbusMetrics::bump(&metrics.connect_failures);
                self.lost = true;
                self.next_connect = Instant::now() + self.backoff.delay();
            }
        }
    }

    async fn poll_group(&mut self, group: &str) -> Result<(), SourceError> {
        if self.ctx.is_none() && Instant::now() >= self.next_connect {
            self.connect().await;
        }
        if self.ctx.is_none() {
            let batch = self.comm_failure(Some(group));
            return self.deliver(batch);
        }
        let reads: Vec<BlockRead> = self
            .source
            .reads
            .iter()
            .filter(|r| r.group == group)
            .cloned()
            .collect();
        let mut batch = Vec::new();
        for read in &reads {
            match self.read_block(read).await {
                Ok(samples) => batch.extend(samples),
                Err(comm) => {
                    let metrics = &self.source.metrics;
                    ModbusMetrics::bump(match comm {
                        Comm::Timeout => &metrics.timeouts,
                        Comm::Io => &metrics.io_errors,
                    });
                    self.ctx = None;
                    self.lost = true;
                    self.next_connect = Instant::now() + self.backoff.delay();
                    let batch = self.comm_failure(None);
                    return self.deliver(batch);
                }
            }
        }
        self.deliver(batch)
    }

    /// Reads one block and turns it into samples of the points it serves.
    async fn read_block(&mut self, read: &BlockRead) -> Result<Vec<Sample>, Comm> {
        let ctx = self.ctx.as_mut().ok_or(Comm::Io)?;
        let metrics = self.source.metrics.clone();
        ModbusMetrics::bump(&metrics.polls);
        let started = Instant::now();
        let (start, count) = (read.start, read.count);
        let request = async {
            match read.table {
                Table::Holding => ctx.read_holding_registers(start, count).await,
                Table::Input => ctx.read_input_registers(start, count).await,
                Table::Coil => bits(ctx.read_coils(start, count).await),
                Table::Discrete => bits(ctx.read_discrete_inputs(start, count).await),
            }
        };
        let words = match tokio::time::timeout(self.source.endpoint.timeout, request).await {
            Err(_) => return Err(Comm::Timeout),
            Ok(Err(_)) => return Err(Comm::Io),
            Ok(Ok(Err(code))) => {
                ModbusMetrics::bump(&metrics.exceptions);
                let quality = exception_quality(code);
                return Ok(read
                    .points
                    .iter()
                    .map(|s| self.sample(s.point, Value::Null, quality))
                    .collect());
            }
            Ok(Ok(Ok(words))) => words,
        };
        metrics.last_latency_us.store(
            u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        Ok(read
            .points
            .iter()
            .map(|served| {
                let address = &self.source.points[served.point].address;
                let from = usize::from(served.offset);
                let to = from + usize::from(address.ty.words());
                let decoded = words
                    .get(from..to)
                    .ok_or(())
                    .and_then(|w| decode(address.ty, address.order, w).map_err(|_| ()))
                    .and_then(|v| address.scaling().apply(v).map_err(|_| ()));
                match decoded {
                    Ok(value) => self.sample(served.point, value, Quality::Good),
                    Err(()) => {
                        ModbusMetrics::bump(&metrics.decode_errors);
                        self.sample(served.point, Value::Null, Quality::Bad(Reason::CalcError))
                    }
                }
            })
            .collect())
    }
}

/// Bits as one-bit registers, so coils decode like any point.
fn bits(result: tokio_modbus::Result<Vec<bool>>) -> tokio_modbus::Result<Vec<u16>> {
    result.map(|r| r.map(|bits| bits.into_iter().map(u16::from).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_bounded_jitter() {
        let mut b = Backoff::new(42);
        let mut nominal = BACKOFF_START;
        for _ in 0..20 {
            let d = b.delay();
            assert!(
                d >= nominal.mul_f64(0.8) && d < nominal.mul_f64(1.2),
                "{d:?} vs {nominal:?}"
            );
            nominal = (nominal * 2).min(BACKOFF_CAP);
        }
        b.reset();
        assert!(b.delay() < BACKOFF_START.mul_f64(1.2));
    }

    fn endpoint() -> EndpointConfig {
        EndpointConfig {
            name: "plc".into(),
            host: "127.0.0.1".into(),
            port: 502,
            unit_id: 1,
            timeout: Duration::from_secs(1),
            poll_groups: vec![super::super::PollGroup {
                name: "fast".into(),
                interval: Duration::from_millis(100),
            }],
            max_block_registers: 125,
            max_gap: 0,
        }
    }

    fn spec(address: &str) -> PointSpec {
        PointSpec {
            twin: twins::TwinPath::parse("site/plc").unwrap(),
            prop: "p".into(),
            class: "Plc".into(),
            sim: None,
            address: address.into(),
            ty: twins::ValueType::F64,
            unit: None,
            range: None,
            period: None,
            states: Vec::new(),
        }
    }

    #[test]
    fn bind_reports_every_bad_address_and_plans_the_good_ones() {
        let mut source = ModbusSource::new("modbus", endpoint(), Clock::system());
        let errors = source
            .bind(vec![
                spec("holding:0:f32"),
                spec("holding:x"),
                spec("coil:1:u16"),
                spec("holding:2;group=slow"),
            ])
            .unwrap_err();
        let addresses: Vec<&str> = errors.iter().map(|e| e.address.as_str()).collect();
        assert_eq!(
            addresses,
            ["holding:x", "coil:1:u16", "holding:2;group=slow"]
        );
        assert!(
            errors[2]
                .to_string()
                .contains("endpoint `plc` has no poll group `slow`")
        );

        source
            .bind(vec![
                spec("holding:0:f32"),
                spec("holding:2"),
                spec("coil:1"),
            ])
            .unwrap();
        let reads: Vec<(Table, u16, u16)> = source
            .reads
            .iter()
            .map(|r| (r.table, r.start, r.count))
            .collect();
        assert_eq!(reads, [(Table::Holding, 0, 3), (Table::Coil, 1, 1)]);
    }

    #[test]
    fn exceptions_map_to_documented_reasons() {
        use ExceptionCode::*;
        let bad = |r| Quality::Bad(r);
        assert_eq!(
            exception_quality(IllegalDataAddress),
            bad(Reason::OutOfRange)
        );
        assert_eq!(exception_quality(IllegalFunction), bad(Reason::OutOfRange));
        assert_eq!(
            exception_quality(ServerDeviceFailure),
            bad(Reason::SensorFault)
        );
        assert_eq!(
            exception_quality(ServerDeviceBusy),
            bad(Reason::SensorFault)
        );
        assert_eq!(
            exception_quality(GatewayTargetDevice),
            bad(Reason::CommFailure)
        );
    }
}
