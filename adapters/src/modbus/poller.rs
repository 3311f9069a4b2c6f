//! [`ModbusSource`]: the Modbus TCP poller, one or several endpoints, as a
//! [`SampleSource`]. It calls the sans-IO core (address parsing, read
//! planning, decoding, the deadband filter, write encoding) and owns the
//! sockets: [`SampleSource::run`] runs one task per endpoint, each owning
//! its connection, polling its groups and sending the setpoint writes
//! queued for it.
//!
//! # Endpoints
//!
//! A point picks its endpoint with `endpoint=NAME` in its address; when the
//! source has a single endpoint the option may be left out. Point ids stay
//! the index in the bound list, whatever the endpoint.
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
//! `Good` values of points with a `deadband=` go through
//! [`Deadband`].
//!
//! # Writes
//!
//! [`SampleSource::writer`] gives a [`PointWriter`]; only points marked
//! `writable` accept writes. A write is encoded by the caller
//! ([`write_op`]), queued to its endpoint's task (a bounded channel of
//! [`WRITE_QUEUE`] requests) and resolves when the device confirmed it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_modbus::client::{self, Context, Reader, Writer};
use tokio_modbus::{ExceptionCode, Slave};
use twins::{Clock, PointId, Quality, Reason, Sample, Value};

use super::address::{PointAddress, Table};
use super::config::EndpointConfig;
use super::deadband::Deadband;
use super::decode::{decode, set_bit};
use super::plan::{BlockRead, PlanPoint, plan_reads};
use super::stats::{ModbusMetrics, ModbusStats};
use super::write::{WriteOp, write_op};
use crate::source::{
    BindError, PointSpec, PointWriter, SampleSink, SampleSource, SourceError, SourceFuture,
    SourceStats, WriteError, WriteFuture,
};

/// First reconnect delay.
const BACKOFF_START: Duration = Duration::from_millis(100);
/// Longest reconnect delay.
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// Writes queued per endpoint before [`PointWriter::write`] waits for room.
pub const WRITE_QUEUE: usize = 16;
/// Without an expected period, a point with a deadband is re-delivered
/// after this many poll intervals of its group.
const HEARTBEAT_INTERVALS: u32 = 10;

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

/// A bound point: its id, parsed address and heartbeat.
#[derive(Debug, Clone)]
struct Bound {
    id: PointId,
    address: PointAddress,
    /// Longest silence of a point with a deadband.
    heartbeat: Duration,
}

/// The bound points of one endpoint (indexed locally) and their reads.
#[derive(Debug, Clone, Default)]
struct Plan {
    points: Vec<Bound>,
    reads: Vec<BlockRead>,
}

/// Where a bound point lives, for writes.
#[derive(Debug, Clone)]
struct Target {
    endpoint: usize,
    address: PointAddress,
}

/// A write on its way to an endpoint's task.
#[derive(Debug)]
struct WriteRequest {
    point: PointId,
    op: WriteOp,
    reply: oneshot::Sender<Result<(), WriteError>>,
}

/// Polls one or several Modbus TCP endpoints and delivers their points.
pub struct ModbusSource {
    name: String,
    endpoints: Vec<EndpointConfig>,
    clock: Clock,
    /// Per endpoint, in configuration order.
    plans: Vec<Plan>,
    /// Per bound point, by id.
    targets: Arc<Vec<Target>>,
    stats: Arc<ModbusStats>,
    /// Per endpoint: the write queue; the receivers go to the tasks.
    senders: Vec<mpsc::Sender<WriteRequest>>,
    receivers: Vec<mpsc::Receiver<WriteRequest>>,
    running: Arc<AtomicBool>,
}

impl fmt::Debug for ModbusSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let endpoints: Vec<&str> = self.endpoints.iter().map(|e| e.name.as_str()).collect();
        f.debug_struct("ModbusSource")
            .field("name", &self.name)
            .field("endpoints", &endpoints)
            .field("points", &self.targets.len())
            .field(
                "reads",
                &self.plans.iter().map(|p| p.reads.len()).sum::<usize>(),
            )
            .finish()
    }
}

impl ModbusSource {
    /// A source polling one `endpoint`, which must have passed validation.
    pub fn new(name: impl Into<String>, endpoint: EndpointConfig, clock: Clock) -> ModbusSource {
        ModbusSource::with_endpoints(name, vec![endpoint], clock)
    }

    /// A source polling `endpoints` (validated, names unique), one task each.
    pub fn with_endpoints(
        name: impl Into<String>,
        endpoints: Vec<EndpointConfig>,
        clock: Clock,
    ) -> ModbusSource {
        let name = name.into();
        let stats = Arc::new(ModbusStats::new(
            &name,
            endpoints.iter().map(|e| e.name.clone()),
        ));
        let (senders, receivers) = endpoints.iter().map(|_| mpsc::channel(WRITE_QUEUE)).unzip();
        ModbusSource {
            name,
            plans: vec![Plan::default(); endpoints.len()],
            endpoints,
            clock,
            targets: Arc::default(),
            stats,
            senders,
            receivers,
            running: Arc::default(),
        }
    }

    /// The source's counters per endpoint; they keep counting after
    /// [`SampleSource::run`].
    pub fn metrics(&self) -> Arc<ModbusStats> {
        self.stats.clone()
    }

    /// The endpoint a point's address picks, or why none.
    fn endpoint_of(&self, address: &PointAddress) -> Result<usize, String> {
        let names = || {
            self.endpoints
                .iter()
                .map(|e| format!("`{}`", e.name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match &address.endpoint {
            Some(wanted) => self
                .endpoints
                .iter()
                .position(|e| &e.name == wanted)
                .ok_or_else(|| {
                    let hint = did_you_mean(wanted, self.endpoints.iter().map(|e| &*e.name))
                        .map_or(String::new(), |n| format!("; did you mean `{n}`?"));
                    format!("no endpoint `{wanted}`, expected one of {}{hint}", names())
                }),
            None if self.endpoints.len() == 1 => Ok(0),
            None => Err(format!(
                "the source has {} endpoints, expected `endpoint=` naming one of {}",
                self.endpoints.len(),
                names()
            )),
        }
    }
}

/// The closest of `names` to a misspelt `wanted`, if close enough to be a typo.
fn did_you_mean<'a>(wanted: &str, names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (wanted.chars().count() / 3).max(1);
    names
        .map(|n| (edit_distance(&wanted.to_lowercase(), &n.to_lowercase()), n))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// Levenshtein distance in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

impl SampleSource for ModbusSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn bind(&mut self, points: Vec<PointSpec>) -> Result<(), Vec<BindError>> {
        let mut errors = Vec::new();
        let mut plans = vec![Plan::default(); self.endpoints.len()];
        let mut targets = Vec::with_capacity(points.len());
        for (index, spec) in points.iter().enumerate() {
            let error = |message: String| BindError {
                source_name: self.name.clone(),
                twin: spec.twin.clone(),
                prop: spec.prop.clone(),
                address: spec.address.clone(),
                message,
            };
            let address = match PointAddress::parse(&spec.address) {
                Ok(address) => address,
                Err(e) => {
                    errors.push(error(e.to_string()));
                    continue;
                }
            };
            let e = match self.endpoint_of(&address) {
                Ok(e) => e,
                Err(message) => {
                    errors.push(error(message));
                    continue;
                }
            };
            let endpoint = &self.endpoints[e];
            let group = match &address.group {
                Some(g) => endpoint.poll_groups.iter().find(|pg| &pg.name == g),
                None => endpoint.poll_groups.first(),
            };
            let Some(group) = group else {
                errors.push(error(format!(
                    "endpoint `{}` has no poll group `{}`",
                    endpoint.name,
                    address.group.as_deref().unwrap_or_default()
                )));
                continue;
            };
            let heartbeat = spec.period.unwrap_or(group.interval * HEARTBEAT_INTERVALS);
            targets.push(Target {
                endpoint: e,
                address: address.clone(),
            });
            plans[e].points.push(Bound {
                id: PointId(index as u32),
                address,
                heartbeat,
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        for (plan, endpoint) in plans.iter_mut().zip(&self.endpoints) {
            let default_group = endpoint.default_group().unwrap_or_default();
            let wanted: Vec<PlanPoint> = plan
                .points
                .iter()
                .map(|b| PlanPoint::from_address(&b.address, default_group))
                .collect();
            plan.reads = plan_reads(&wanted, &endpoint.plan_limits());
        }
        self.plans = plans;
        self.targets = Arc::new(targets);
        Ok(())
    }

    fn run(
        self: Box<Self>,
        sink: Arc<dyn SampleSink>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> SourceFuture {
        // Running from now on, so writes right after this call are queued
        // rather than refused; the flag drops with the future.
        self.running.store(true, Ordering::Release);
        let running = Running(self.running.clone());
        Box::pin(async move {
            let _running = running;
            run(*self, sink, shutdown).await
        })
    }

    fn stats(&self) -> Option<Arc<dyn SourceStats>> {
        Some(self.stats.clone())
    }

    fn writer(&self) -> Option<Arc<dyn PointWriter>> {
        Some(Arc::new(ModbusWriter {
            source: self.name.clone(),
            targets: self.targets.clone(),
            senders: self.senders.clone(),
            running: self.running.clone(),
        }))
    }
}

/// Clears the running flag when the source's future ends or is dropped.
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Runs one task per endpoint until shutdown or the first failure.
async fn run(
    source: ModbusSource,
    sink: Arc<dyn SampleSink>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), SourceError> {
    let ModbusSource {
        name,
        endpoints,
        clock,
        plans,
        stats,
        receivers,
        ..
    } = source;
    let name: Arc<str> = name.into();
    let mut tasks = tokio::task::JoinSet::new();
    for (index, ((endpoint, plan), writes)) in
        endpoints.into_iter().zip(plans).zip(receivers).enumerate()
    {
        let poller = Poller::new(
            name.clone(),
            endpoint,
            plan,
            clock.clone(),
            stats.handle(index),
            sink.clone(),
            writes,
        );
        tasks.spawn(poller.run(shutdown.clone()));
    }
    while let Some(joined) = tasks.join_next().await {
        let outcome = joined.unwrap_or_else(|e| {
            Err(SourceError::Failed {
                source_name: name.to_string(),
                message: format!("an endpoint task ended abnormally: {e}"),
            })
        });
        // Dropping the set aborts the other endpoints' tasks.
        outcome?;
    }
    Ok(())
}

/// Writes setpoints through a running [`ModbusSource`].
#[derive(Debug)]
pub struct ModbusWriter {
    source: String,
    targets: Arc<Vec<Target>>,
    senders: Vec<mpsc::Sender<WriteRequest>>,
    running: Arc<AtomicBool>,
}

impl ModbusWriter {
    async fn send(&self, point: PointId, value: Value) -> Result<(), WriteError> {
        let target = self
            .targets
            .get(point.0 as usize)
            .filter(|t| t.address.writable)
            .ok_or(WriteError::NotWritable(point))?;
        let op = write_op(&target.address, &value).map_err(|message| WriteError::Invalid {
            point,
            value: value.to_string(),
            message,
        })?;
        if !self.running.load(Ordering::Acquire) {
            return Err(WriteError::Stopped);
        }
        let (reply, answer) = oneshot::channel();
        self.senders[target.endpoint]
            .send(WriteRequest { point, op, reply })
            .await
            .map_err(|_| WriteError::Stopped)?;
        // The task dropping the reply means it stopped before answering.
        answer.await.unwrap_or(Err(WriteError::Stopped))
    }
}

impl PointWriter for ModbusWriter {
    fn write(&self, point: PointId, value: Value) -> WriteFuture<'_> {
        tracing::debug!(source = %self.source, ?point, ?value, "modbus setpoint write");
        Box::pin(self.send(point, value))
    }
}

/// The running state of one endpoint.
struct Poller {
    source: Arc<str>,
    endpoint: EndpointConfig,
    clock: Clock,
    points: Vec<Bound>,
    reads: Vec<BlockRead>,
    metrics: Arc<ModbusMetrics>,
    sink: Arc<dyn SampleSink>,
    writes: mpsc::Receiver<WriteRequest>,
    groups: Vec<Group>,
    ctx: Option<Context>,
    /// No connection attempt before this.
    next_connect: Instant,
    backoff: Backoff,
    /// Whether a connection was ever lost or refused (to count reconnects).
    lost: bool,
    seq: Vec<u64>,
    filters: Vec<Deadband>,
    /// Whether any point has a deadband (else the filter is skipped).
    filtering: bool,
}

/// The schedule of one poll group of an endpoint.
struct Group {
    interval: Duration,
    /// When the group is polled next.
    due: Instant,
    /// Indices of the group's reads.
    reads: Vec<usize>,
    /// Points the reads serve (the capacity of a batch).
    points: usize,
}

/// Why a request failed below the Modbus layer.
enum Comm {
    Timeout,
    Io,
}

impl Poller {
    fn new(
        source: Arc<str>,
        endpoint: EndpointConfig,
        plan: Plan,
        clock: Clock,
        metrics: Arc<ModbusMetrics>,
        sink: Arc<dyn SampleSink>,
        writes: mpsc::Receiver<WriteRequest>,
    ) -> Poller {
        let now = Instant::now();
        let groups = endpoint
            .poll_groups
            .iter()
            .map(|g| {
                let reads: Vec<usize> = (0..plan.reads.len())
                    .filter(|&r| plan.reads[r].group == g.name)
                    .collect();
                Group {
                    interval: g.interval,
                    due: now,
                    points: reads.iter().map(|&r| plan.reads[r].points.len()).sum(),
                    reads,
                }
            })
            .collect();
        let seed = source
            .bytes()
            .chain(endpoint.name.bytes())
            .fold(clock.now().0 as u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
        let filters: Vec<Deadband> = plan
            .points
            .iter()
            .map(|b| Deadband::new(b.address.deadband, b.heartbeat))
            .collect();
        Poller {
            source,
            seq: vec![0; plan.points.len()],
            filtering: filters.iter().any(Deadband::is_active),
            filters,
            points: plan.points,
            reads: plan.reads,
            endpoint,
            clock,
            metrics,
            sink,
            writes,
            groups,
            ctx: None,
            next_connect: now,
            backoff: Backoff::new(seed),
            lost: false,
        }
    }

    async fn run(
        mut self,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), SourceError> {
        let outcome = self.serve(&mut shutdown).await;
        self.metrics.disconnected();
        outcome
    }

    async fn serve(
        &mut self,
        shutdown: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), SourceError> {
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            // No poll group (an unvalidated config): only writes and shutdown.
            let due = self
                .groups
                .iter()
                .map(|g| g.due)
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            if due <= Instant::now() {
                // Behind schedule (a slow device or a tiny interval): poll
                // without arming a timer, serving one queued write first.
                if let Ok(request) = self.writes.try_recv() {
                    self.write(request).await;
                }
                self.poll_due().await?;
                // A poll of a disconnected endpoint awaits nothing: without
                // this a tiny interval would never yield to other tasks.
                tokio::task::consume_budget().await;
                continue;
            }
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                }
                Some(request) = self.writes.recv() => self.write(request).await,
                () = tokio::time::sleep_until(due) => self.poll_due().await?,
            }
        }
    }

    /// Polls every group that is due, and schedules its next poll.
    async fn poll_due(&mut self) -> Result<(), SourceError> {
        let now = Instant::now();
        for g in 0..self.groups.len() {
            let group = &mut self.groups[g];
            if group.due <= now {
                // Keep the schedule; skip missed ticks rather than burst.
                let behind = (now - group.due).as_nanos() / group.interval.as_nanos().max(1);
                let ticks = u32::try_from(behind + 1).unwrap_or(u32::MAX);
                group.due += group.interval.saturating_mul(ticks);
                self.poll_group(g).await?;
            }
        }
        Ok(())
    }

    /// A sample of local point `index`, or `None` if its deadband holds it back.
    fn sample(
        &mut self,
        index: usize,
        value: Value,
        quality: Quality,
        ts: twins::Timestamp,
        now: Instant,
    ) -> Option<Sample> {
        if self.filtering && !self.filters[index].admit(&value, quality, now) {
            return None;
        }
        self.seq[index] += 1;
        Some(Sample {
            point: self.points[index].id,
            value,
            source_ts: ts,
            quality,
            seq: self.seq[index],
        })
    }

    fn deliver(&self, batch: Vec<Sample>) -> Result<(), SourceError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.sink
            .deliver(batch, self.clock.now())
            .map_err(|_| SourceError::SinkClosed(self.source.to_string()))
    }

    /// Every point of the reads of group `group` (or of all reads) as `Bad(CommFailure)`.
    fn comm_failure(&mut self, group: Option<usize>) -> Vec<Sample> {
        let reads: Vec<usize> = match group {
            Some(g) => self.groups[g].reads.clone(),
            None => (0..self.reads.len()).collect(),
        };
        let (ts, now) = (self.clock.now(), Instant::now());
        let mut batch = Vec::new();
        for r in reads {
            for s in 0..self.reads[r].points.len() {
                let point = self.reads[r].points[s].point;
                batch.extend(self.sample(
                    point,
                    Value::Null,
                    Quality::Bad(Reason::CommFailure),
                    ts,
                    now,
                ));
            }
        }
        batch
    }

    fn lose_connection(&mut self) {
        if self.ctx.take().is_some() {
            self.metrics.disconnected();
        }
        self.lost = true;
        self.next_connect = Instant::now() + self.backoff.delay();
    }

    async fn connect(&mut self) {
        let endpoint = &self.endpoint;
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
                self.metrics.connected(self.lost);
                self.ctx = Some(ctx);
                self.backoff.reset();
            }
            Ok(Err(_)) | Err(_) => {
                self.metrics.connect_failure();
                self.lose_connection();
            }
        }
    }

    async fn poll_group(&mut self, group: usize) -> Result<(), SourceError> {
        if self.ctx.is_none() && Instant::now() >= self.next_connect {
            self.connect().await;
        }
        if self.ctx.is_none() {
            let batch = self.comm_failure(Some(group));
            return self.deliver(batch);
        }
        let mut batch = Vec::with_capacity(self.groups[group].points);
        for i in 0..self.groups[group].reads.len() {
            let read = self.groups[group].reads[i];
            if let Err(comm) = self.read_block(read, &mut batch).await {
                match comm {
                    Comm::Timeout => self.metrics.timeout(),
                    Comm::Io => self.metrics.io_error(),
                }
                self.lose_connection();
                let batch = self.comm_failure(None);
                return self.deliver(batch);
            }
        }
        self.deliver(batch)
    }

    /// Reads block `read` and appends the samples of the points it serves.
    async fn read_block(&mut self, read: usize, batch: &mut Vec<Sample>) -> Result<(), Comm> {
        let ctx = self.ctx.as_mut().ok_or(Comm::Io)?;
        self.metrics.poll();
        let started = Instant::now();
        let block = &self.reads[read];
        let (start, count) = (block.start, block.count);
        let request = async {
            match block.table {
                Table::Holding => ctx.read_holding_registers(start, count).await,
                Table::Input => ctx.read_input_registers(start, count).await,
                Table::Coil => bits(ctx.read_coils(start, count).await),
                Table::Discrete => bits(ctx.read_discrete_inputs(start, count).await),
            }
        };
        let response = match tokio::time::timeout(self.endpoint.timeout, request).await {
            Err(_) => return Err(Comm::Timeout),
            Ok(Err(_)) => return Err(Comm::Io),
            Ok(Ok(response)) => response,
        };
        let now = Instant::now();
        let ts = self.clock.now();
        let served = std::mem::take(&mut self.reads[read].points);
        match response {
            Err(code) => {
                self.metrics.exception();
                let quality = exception_quality(code);
                for s in &served {
                    batch.extend(self.sample(s.point, Value::Null, quality, ts, now));
                }
            }
            Ok(words) => {
                self.metrics.latency(now - started);
                for s in &served {
                    let address = &self.points[s.point].address;
                    let from = usize::from(s.offset);
                    let to = from + usize::from(address.ty.words());
                    let decoded = words
                        .get(from..to)
                        .ok_or(())
                        .and_then(|w| decode(address.ty, address.order, w).map_err(|_| ()))
                        .and_then(|v| address.scaling().apply(v).map_err(|_| ()));
                    let (value, quality) = match decoded {
                        Ok(value) => (value, Quality::Good),
                        Err(()) => {
                            self.metrics.decode_error();
                            (Value::Null, Quality::Bad(Reason::CalcError))
                        }
                    };
                    batch.extend(self.sample(s.point, value, quality, ts, now));
                }
            }
        }
        self.reads[read].points = served;
        Ok(())
    }

    /// Sends one setpoint write and answers its requester.
    async fn write(&mut self, request: WriteRequest) {
        let WriteRequest { point, op, reply } = request;
        self.metrics.write();
        let outcome = self.send_write(&op).await.map_err(|message| {
            self.metrics.write_error();
            WriteError::Failed { point, message }
        });
        // The requester may have given up waiting; nothing to do then.
        let _ = reply.send(outcome);
    }

    async fn send_write(&mut self, op: &WriteOp) -> Result<(), String> {
        if self.ctx.is_none() && Instant::now() >= self.next_connect {
            self.connect().await;
        }
        let name = self.endpoint.name.clone();
        let Some(ctx) = self.ctx.as_mut() else {
            return Err(format!("endpoint `{name}` is not connected"));
        };
        let request = async {
            match op {
                WriteOp::Coil { register, on } => ctx.write_single_coil(*register, *on).await,
                WriteOp::Registers { register, words } if words.len() == 1 => {
                    ctx.write_single_register(*register, words[0]).await
                }
                WriteOp::Registers { register, words } => {
                    ctx.write_multiple_registers(*register, words).await
                }
                WriteOp::Bit { register, bit, on } => {
                    match ctx.read_holding_registers(*register, 1).await {
                        Ok(Ok(word)) => {
                            let word = word.first().copied().unwrap_or_default();
                            ctx.write_single_register(*register, set_bit(word, *bit, *on))
                                .await
                        }
                        other => other.map(|r| r.map(|_| ())),
                    }
                }
            }
        };
        match tokio::time::timeout(self.endpoint.timeout, request).await {
            Err(_) => {
                self.metrics.timeout();
                self.lose_connection();
                Err(format!(
                    "endpoint `{name}` did not answer within {:?}",
                    self.endpoint.timeout
                ))
            }
            Ok(Err(e)) => {
                self.metrics.io_error();
                self.lose_connection();
                Err(format!("endpoint `{name}`: {e}"))
            }
            Ok(Ok(Err(code))) => {
                self.metrics.exception();
                Err(format!("endpoint `{name}` answered exception: {code}"))
            }
            Ok(Ok(Ok(()))) => Ok(()),
        }
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

    #[test]
    fn backoff_never_exceeds_the_cap_plus_jitter() {
        let limit = BACKOFF_CAP.mul_f64(1.2);
        let mut longest = Duration::ZERO;
        for seed in 0..50u64 {
            let mut b = Backoff::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            for attempt in 0..2_000 {
                let d = b.delay();
                assert!(
                    d < limit,
                    "seed {seed} attempt {attempt}: {d:?} > {limit:?}"
                );
                longest = longest.max(d);
                if attempt % 500 == 499 {
                    b.reset();
                }
            }
        }
        // The cap is reached, with jitter above it.
        assert!(longest > BACKOFF_CAP, "longest delay {longest:?}");
    }

    fn named(name: &str, port: u16) -> EndpointConfig {
        EndpointConfig {
            name: name.into(),
            port,
            ..endpoint()
        }
    }

    #[test]
    fn points_pick_their_endpoint_by_name() {
        let mut source = ModbusSource::with_endpoints(
            "modbus",
            vec![named("boiler", 502), named("chiller", 503)],
            Clock::system(),
        );
        let errors = source
            .bind(vec![
                spec("holding:0"),
                spec("holding:0;endpoint=boilr"),
                spec("holding:0;endpoint=pump"),
                spec("holding:0;endpoint=chiller;group=slow"),
            ])
            .unwrap_err();
        let messages: Vec<String> = errors.iter().map(|e| e.message.clone()).collect();
        assert_eq!(
            messages,
            [
                "the source has 2 endpoints, expected `endpoint=` naming one of `boiler`, `chiller`",
                "no endpoint `boilr`, expected one of `boiler`, `chiller`; did you mean `boiler`?",
                "no endpoint `pump`, expected one of `boiler`, `chiller`",
                "endpoint `chiller` has no poll group `slow`",
            ]
        );

        source
            .bind(vec![
                spec("holding:0;endpoint=chiller"),
                spec("holding:1;endpoint=boiler"),
                spec("coil:4;endpoint=chiller;writable"),
                spec("holding:2;endpoint=boiler"),
            ])
            .unwrap();
        let ids =
            |e: usize| -> Vec<u32> { source.plans[e].points.iter().map(|b| b.id.0).collect() };
        assert_eq!((ids(0), ids(1)), (vec![1, 3], vec![0, 2]));
        let reads = |e: usize| -> Vec<(Table, u16, u16)> {
            source.plans[e]
                .reads
                .iter()
                .map(|r| (r.table, r.start, r.count))
                .collect()
        };
        assert_eq!(reads(0), [(Table::Holding, 1, 2)]);
        assert_eq!(reads(1), [(Table::Holding, 0, 1), (Table::Coil, 4, 1)]);
        let endpoints: Vec<usize> = source.targets.iter().map(|t| t.endpoint).collect();
        assert_eq!(endpoints, [1, 0, 1, 0]);
    }

    #[test]
    fn a_single_endpoint_is_the_default_and_may_be_named() {
        let mut source = ModbusSource::new("modbus", endpoint(), Clock::system());
        source
            .bind(vec![spec("holding:0"), spec("holding:1;endpoint=plc")])
            .unwrap();
        assert_eq!(source.plans[0].points.len(), 2);
        let errors = source
            .bind(vec![spec("holding:0;endpoint=plc2")])
            .unwrap_err();
        assert_eq!(
            errors[0].to_string(),
            "source `modbus`: point `site/plc.p` address `holding:0;endpoint=plc2`: \
             no endpoint `plc2`, expected one of `plc`; did you mean `plc`?"
        );
    }

    #[test]
    fn heartbeat_is_the_expected_period_else_ten_intervals() {
        let mut source = ModbusSource::new("modbus", endpoint(), Clock::system());
        let mut with_period = spec("holding:0;deadband=1");
        with_period.period = Some(Duration::from_secs(3));
        source
            .bind(vec![with_period, spec("holding:1;deadband=1")])
            .unwrap();
        let beats: Vec<Duration> = source.plans[0].points.iter().map(|b| b.heartbeat).collect();
        assert_eq!(beats, [Duration::from_secs(3), Duration::from_secs(1)]);
    }

    #[test]
    fn did_you_mean_only_suggests_close_names() {
        let names = ["boiler", "chiller", "pump_1"];
        assert_eq!(did_you_mean("Boiler", names.into_iter()), Some("boiler"));
        assert_eq!(did_you_mean("pump1", names.into_iter()), Some("pump_1"));
        assert_eq!(did_you_mean("chillre", names.into_iter()), Some("chiller"));
        assert_eq!(did_you_mean("fan", names.into_iter()), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    /// Counts delivered samples.
    #[derive(Debug, Default)]
    struct Counting(std::sync::atomic::AtomicU64);

    impl SampleSink for Counting {
        fn deliver(
            &self,
            samples: Vec<Sample>,
            _arrival: twins::Timestamp,
        ) -> Result<(), crate::SinkClosed> {
            self.0.fetch_add(samples.len() as u64, Ordering::Relaxed);
            Ok(())
        }
    }

    #[test]
    fn a_source_behind_schedule_still_yields_to_other_tasks() {
        // A closed port (the connect is refused, then polls await nothing
        // until the next attempt after a 100 ms ± 20 % backoff) and a 1 us
        // interval with 2000 points (always behind schedule), on a
        // single-threaded runtime.
        // The test's task asks for shutdown after 20 ms: if the source
        // yields, it stops before its second connect attempt; if it spins,
        // the test's task only runs when that attempt awaits the socket.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            let outcome = runtime.block_on(async {
                let mut ep = endpoint();
                ep.port = port;
                ep.poll_groups[0].interval = Duration::from_micros(1);
                let mut source = ModbusSource::new("modbus", ep, Clock::system());
                // Enough points that one poll takes longer than the interval.
                let points = (0..2000).map(|r| spec(&format!("holding:{r}"))).collect();
                source.bind(points).expect("binds");
                let metrics = source.metrics();
                let sink = Arc::new(Counting::default());
                let (stop, shutdown) = tokio::sync::watch::channel(false);
                let running = tokio::spawn(Box::new(source).run(sink.clone(), shutdown));
                tokio::time::sleep(Duration::from_millis(20)).await;
                stop.send(true).expect("running");
                running.await.expect("no panic").expect("clean stop");
                (metrics.snapshot(), sink.0.load(Ordering::Relaxed))
            });
            let _ = done.send(outcome);
        });
        let (m, delivered) = finished
            .recv_timeout(Duration::from_secs(20))
            .expect("the source stops on shutdown");
        assert_eq!(
            m.connect_failures, 1,
            "shutdown seen before the second connect attempt: {m:?}"
        );
        assert!(delivered > 0, "Bad(CommFailure) samples were delivered");
    }

    #[tokio::test]
    async fn a_write_to_an_unreachable_endpoint_fails_with_the_reason() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut ep = endpoint();
        ep.port = port;
        let mut source = ModbusSource::new("modbus", ep, Clock::system());
        source.bind(vec![spec("coil:3;writable")]).expect("binds");
        let writer = source.writer().expect("a modbus source writes");
        let metrics = source.metrics();
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let running = tokio::spawn(Box::new(source).run(Arc::new(Counting::default()), shutdown));
        assert_eq!(
            writer.write(PointId(0), Value::Bool(true)).await,
            Err(WriteError::Failed {
                point: PointId(0),
                message: "endpoint `plc` is not connected".into()
            })
        );
        let m = metrics.snapshot();
        assert_eq!((m.writes, m.write_errors), (1, 1), "{m:?}");
        stop.send(true).expect("running");
        running.await.expect("no panic").expect("clean stop");
        assert_eq!(
            writer.write(PointId(0), Value::Bool(true)).await,
            Err(WriteError::Stopped)
        );
    }

    #[tokio::test]
    async fn writes_are_checked_before_anything_is_sent() {
        let mut source = ModbusSource::new("modbus", endpoint(), Clock::system());
        source
            .bind(vec![spec("holding:0:f32"), spec("holding:2:u16;writable")])
            .unwrap();
        let writer = source.writer().expect("a modbus source writes");
        assert_eq!(
            writer.write(PointId(0), Value::F64(1.0)).await,
            Err(WriteError::NotWritable(PointId(0)))
        );
        assert_eq!(
            writer.write(PointId(7), Value::F64(1.0)).await,
            Err(WriteError::NotWritable(PointId(7)))
        );
        assert!(matches!(
            writer.write(PointId(1), Value::F64(-1.0)).await,
            Err(WriteError::Invalid { .. })
        ));
        // Valid, but the source was never started.
        assert_eq!(
            writer.write(PointId(1), Value::I64(5)).await,
            Err(WriteError::Stopped)
        );
        assert_eq!(source.metrics().snapshot().writes, 0);
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
        let reads: Vec<(Table, u16, u16)> = source.plans[0]
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
