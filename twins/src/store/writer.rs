//! [`StoreWriter`]: batched write-behind in front of any [`Store`].
//!
//! Actors hand their writes ([`WriteOp`]) to a bounded queue and carry on. A
//! dedicated writer thread gathers them into one [`WriteBatch`] and applies it
//! with [`Store::write`] when the oldest gathered op is
//! [`WriterConfig::flush_interval`] old, when the batch reaches
//! [`WriterConfig::max_batch`] records, or at once when someone asked for a
//! [`StoreWriter::flush`]. While a write runs the queue fills; the next batch
//! takes everything that arrived meanwhile (group commit). In a batch the
//! latest state per twin and the latest value per meta key win; history and
//! events keep their arrival order.
//!
//! # The durability point
//!
//! **A sample is acknowledged when the flush containing its history record
//! has returned `Ok` from [`Store::write`]**, which for every backend means
//! the whole batch is on stable storage (the fjall backend syncs its journal
//! with `fsync` before returning). [`StoreWriter::durable`] advances only
//! then, and [`StoreWriter::flush`] resolves only then, with that flush's
//! number. Nothing else acknowledges anything: an op accepted by
//! [`StoreWriter::send`] is merely queued and is lost if the process dies
//! before its flush. Each flush is one atomic batch, and batches are written
//! in queue order, so after a crash the store holds exactly the ops of some
//! prefix of the queue: every acknowledged flush, maybe a few more whole
//! ones, never part of one.
//!
//! # Failures
//!
//! When a write fails the writer keeps the batch, counts the error
//! ([`WriterMetrics::errors`]) and retries it with exponential backoff,
//! adding newly queued ops to it up to `max_batch`; once it is full, senders
//! wait (back-pressure). The `flush` callers whose data was in the failed
//! attempt get its error; their data stays queued, and a later `flush`
//! resolves with the outcome of the next attempt. On shutdown the writer
//! tries [`WriterConfig::shutdown_attempts`] times and then reports what it
//! could not write ([`StoreError::Unflushed`]).
//!
//! The writer times its flush interval with real time: it is IO
//! infrastructure, not domain logic. The time it records
//! ([`Durable::last_flush`]) comes from the injected [`Clock`].

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::{EventRecord, HistoryRecord, Store, StoreError, TwinRecord, WriteBatch};
use crate::histogram::{Histogram, HistogramSnapshot};
use crate::id::TwinId;
use crate::time::{Clock, Timestamp};

/// How a [`StoreWriter`] batches and retries.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Longest time an op waits before its batch is written (default 20 ms).
    pub flush_interval: Duration,
    /// Records per batch at most (default 20 000). A full batch is written
    /// at once; a single [`WriteOp::HistoryBatch`] may exceed it.
    pub max_batch: usize,
    /// Ops the queue holds before senders wait (default 65 536).
    pub queue: usize,
    /// First delay before retrying a failed write (default 10 ms); doubles
    /// up to `max_retry_backoff` (default 1 s).
    pub retry_backoff: Duration,
    pub max_retry_backoff: Duration,
    /// Write attempts for what is left when shutting down (default 5).
    pub shutdown_attempts: u32,
    /// Source of [`Durable::last_flush`].
    pub clock: Clock,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_millis(20),
            max_batch: 20_000,
            queue: 65_536,
            retry_backoff: Duration::from_millis(10),
            max_retry_backoff: Duration::from_secs(1),
            shutdown_attempts: 5,
            clock: Clock::system(),
        }
    }
}

/// One thing to write.
pub enum WriteOp {
    /// A twin's latest state; a later state of the same twin in the same
    /// batch replaces it.
    State(TwinId, TwinRecord),
    History(HistoryRecord),
    /// Many history records as one queue slot.
    HistoryBatch(Vec<HistoryRecord>),
    Event(EventRecord),
    Meta(String, Vec<u8>),
    /// Ops that must land in the same store batch: everything one twin
    /// writes while handling one message (its journal entries, history and
    /// state), so that a crash never leaves state and history disagreeing.
    /// The writer never cuts a batch inside a group (like a
    /// `HistoryBatch`, a group may overshoot `max_batch`).
    Group(Vec<WriteOp>),
    /// Resolves with the flush number once every op queued before it is
    /// durable (see [`StoreWriter::flush`]).
    Flush(oneshot::Sender<Result<u64, StoreError>>),
}

impl fmt::Debug for WriteOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteOp::State(id, r) => write!(f, "State({id}, seq {})", r.seq),
            WriteOp::History(h) => write!(f, "History({}/{} {:?})", h.twin, h.prop, h.point.ts),
            WriteOp::HistoryBatch(v) => write!(f, "HistoryBatch({} records)", v.len()),
            WriteOp::Event(e) => write!(f, "Event({} #{})", e.twin, e.seq),
            WriteOp::Meta(k, v) => write!(f, "Meta({k:?}, {} bytes)", v.len()),
            WriteOp::Group(v) => write!(f, "Group({} ops)", v.len()),
            WriteOp::Flush(_) => f.write_str("Flush"),
        }
    }
}

/// What is durable so far: updated only after [`Store::write`] returned `Ok`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Durable {
    /// Successful flushes (batches written).
    pub flushes: u64,
    /// History records acknowledged, cumulative.
    pub history_records: u64,
    /// Journal entries acknowledged, cumulative.
    pub events: u64,
    /// Twin states written (after coalescing), cumulative.
    pub states: u64,
    /// When the last flush returned, from the configured clock.
    pub last_flush: Option<Timestamp>,
}

/// A snapshot of the writer's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriterMetrics {
    /// Ops waiting in the queue.
    pub queued: usize,
    /// Records gathered into the batch being built or retried.
    pub pending: usize,
    /// Batches written successfully.
    pub batches: u64,
    /// Ops received from the queue (a history batch counts its records).
    pub ops: u64,
    /// States and meta values replaced by a later one in the same batch.
    pub ops_coalesced: u64,
    pub write_latency_last: Duration,
    pub write_latency_max: Duration,
    /// Duration of every [`Store::write`] attempt, failed ones included.
    pub commit_latency: HistogramSnapshot,
    /// Records (history, events, states, meta) in the batches written
    /// successfully, cumulative.
    pub records_written: u64,
    /// Failed write attempts.
    pub errors: u64,
    pub last_error: Option<String>,
    /// Whether the last write attempt failed (the batch is being retried).
    pub failing: bool,
}

#[derive(Debug, Default)]
struct Shared {
    pending: AtomicUsize,
    batches: AtomicU64,
    ops: AtomicU64,
    coalesced: AtomicU64,
    latency_last_us: AtomicU64,
    latency_max_us: AtomicU64,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
    commit: Histogram,
    records: AtomicU64,
    failing: AtomicBool,
}

/// The sending side of the write-behind queue. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StoreWriter {
    tx: mpsc::Sender<WriteOp>,
    durable: watch::Receiver<Durable>,
    shared: Arc<Shared>,
}

/// Owns the writer thread: [`WriterHandle::shutdown`] writes everything
/// queued and stops it. Dropping the handle starts the same shutdown without
/// waiting for it.
#[derive(Debug)]
pub struct WriterHandle {
    stop: oneshot::Sender<()>,
    done: oneshot::Receiver<Result<Durable, StoreError>>,
}

impl StoreWriter {
    /// Starts the writer thread over `store`.
    ///
    /// # Panics
    ///
    /// Like [`std::thread::spawn`], if the OS cannot start a thread (or its
    /// timer). Also if `cfg.queue` is zero.
    pub fn spawn(store: Arc<dyn Store>, cfg: WriterConfig) -> (StoreWriter, WriterHandle) {
        let (tx, rx) = mpsc::channel(cfg.queue);
        let (durable_tx, durable) = watch::channel(Durable::default());
        let (stop, stop_rx) = oneshot::channel();
        let (done_tx, done) = oneshot::channel();
        let shared = Arc::new(Shared::default());
        let loop_shared = shared.clone();
        std::thread::Builder::new()
            .name("twinrt-store-writer".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .expect("store writer: cannot start its timer runtime");
                let mut w = Loop {
                    store,
                    cfg,
                    shared: loop_shared,
                    durable_tx,
                    durable: Durable::default(),
                    pending: Pending::default(),
                };
                let result = rt.block_on(w.run(rx, stop_rx));
                // Release the store before reporting, so that whoever awaits
                // the shutdown may reopen it.
                drop(w);
                let _ = done_tx.send(result);
            })
            .expect("store writer: cannot spawn its thread");
        (
            StoreWriter {
                tx,
                durable,
                shared,
            },
            WriterHandle { stop, done },
        )
    }

    /// Queues an op, waiting while the queue is full.
    pub async fn send(&self, op: WriteOp) -> Result<(), StoreError> {
        self.tx
            .send(op)
            .await
            .map_err(|_| StoreError::WriterStopped)
    }

    /// Queues an op if there is room now; gives it back if the queue is full
    /// or the writer has stopped.
    pub fn try_send(&self, op: WriteOp) -> Result<(), WriteOp> {
        self.tx.try_send(op).map_err(|e| match e {
            mpsc::error::TrySendError::Full(op) | mpsc::error::TrySendError::Closed(op) => op,
        })
    }

    /// Resolves once every op sent before this call is durable, with the
    /// number of the flush that made it so; or with the error of the write
    /// attempt that should have (the data stays queued and is retried).
    pub async fn flush(&self) -> Result<u64, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.send(WriteOp::Flush(tx)).await?;
        rx.await.map_err(|_| StoreError::WriterStopped)?
    }

    /// What is durable; changes after each successful flush.
    pub fn durable(&self) -> watch::Receiver<Durable> {
        self.durable.clone()
    }

    /// Whether the writer thread is still taking ops (it stops on shutdown).
    pub fn is_running(&self) -> bool {
        !self.tx.is_closed()
    }

    pub fn metrics(&self) -> WriterMetrics {
        let s = &self.shared;
        WriterMetrics {
            queued: self.tx.max_capacity() - self.tx.capacity(),
            pending: s.pending.load(Ordering::Relaxed),
            batches: s.batches.load(Ordering::Relaxed),
            ops: s.ops.load(Ordering::Relaxed),
            ops_coalesced: s.coalesced.load(Ordering::Relaxed),
            write_latency_last: Duration::from_micros(s.latency_last_us.load(Ordering::Relaxed)),
            write_latency_max: Duration::from_micros(s.latency_max_us.load(Ordering::Relaxed)),
            commit_latency: s.commit.snapshot(),
            records_written: s.records.load(Ordering::Relaxed),
            errors: s.errors.load(Ordering::Relaxed),
            failing: s.failing.load(Ordering::Relaxed),
            last_error: s
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

impl WriterHandle {
    /// Stops accepting ops, writes everything queued, stops the thread and
    /// releases the store. Returns what is durable in the end, or
    /// [`StoreError::Unflushed`] if the last writes kept failing.
    pub async fn shutdown(self) -> Result<Durable, StoreError> {
        let WriterHandle { stop, done } = self;
        let _ = stop.send(());
        done.await.unwrap_or(Err(StoreError::WriterStopped))
    }

    /// [`WriterHandle::shutdown`] for synchronous callers; must not be called
    /// from within an async runtime.
    pub fn shutdown_blocking(self) -> Result<Durable, StoreError> {
        let WriterHandle { stop, done } = self;
        let _ = stop.send(());
        done.blocking_recv()
            .unwrap_or(Err(StoreError::WriterStopped))
    }
}

/// The batch being gathered, with indexes for coalescing.
#[derive(Default)]
struct Pending {
    batch: WriteBatch,
    state_at: HashMap<TwinId, usize>,
    meta_at: HashMap<String, usize>,
    waiters: Vec<oneshot::Sender<Result<u64, StoreError>>>,
    /// When the oldest op of the batch arrived.
    since: Option<Instant>,
}

impl Pending {
    fn len(&self) -> usize {
        self.batch.len()
    }

    fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }
}

struct Loop {
    store: Arc<dyn Store>,
    cfg: WriterConfig,
    shared: Arc<Shared>,
    durable_tx: watch::Sender<Durable>,
    durable: Durable,
    pending: Pending,
}

impl Loop {
    async fn run(
        &mut self,
        mut rx: mpsc::Receiver<WriteOp>,
        mut stop_rx: oneshot::Receiver<()>,
    ) -> Result<Durable, StoreError> {
        let mut stopping = false;
        let mut closed = false;
        let mut retry_at: Option<Instant> = None;
        let mut backoff = self.cfg.retry_backoff;
        let mut failed_while_stopping = 0u32;
        loop {
            let p = &self.pending;
            let due = !p.is_empty()
                && (p.len() >= self.cfg.max_batch
                    || !p.waiters.is_empty()
                    || stopping
                    || retry_at.is_some()
                    || p.since
                        .is_some_and(|t| t.elapsed() >= self.cfg.flush_interval));
            let backing_off = retry_at.is_some_and(|t| Instant::now() < t);
            if due && !backing_off {
                self.take_ready(&mut rx);
                match self.attempt() {
                    Ok(()) => {
                        retry_at = None;
                        backoff = self.cfg.retry_backoff;
                    }
                    Err(e) => {
                        retry_at = Some(Instant::now() + backoff);
                        backoff = (backoff * 2).min(self.cfg.max_retry_backoff);
                        if stopping {
                            failed_while_stopping += 1;
                            if failed_while_stopping >= self.cfg.shutdown_attempts.max(1) {
                                rx.close();
                                while let Ok(op) = rx.try_recv() {
                                    self.push(op);
                                }
                                return Err(StoreError::Unflushed {
                                    records: self.pending.len(),
                                    last_error: Box::new(e),
                                });
                            }
                        }
                    }
                }
                continue;
            }
            if stopping && closed && self.pending.is_empty() {
                return Ok(self.durable);
            }
            let wake = if self.pending.is_empty() {
                None
            } else if due {
                retry_at
            } else {
                let deadline = self.pending.since.map(|t| t + self.cfg.flush_interval);
                deadline.max(retry_at)
            };
            let room = !closed && self.pending.len() < self.cfg.max_batch;
            tokio::select! {
                biased;
                _ = &mut stop_rx, if !stopping => {
                    stopping = true;
                    rx.close();
                }
                op = rx.recv(), if room => match op {
                    Some(op) => self.push(op),
                    None => {
                        closed = true;
                        stopping = true;
                    }
                },
                _ = sleep_until(wake), if wake.is_some() => {}
            }
        }
    }

    /// Adds ops that are already queued, without waiting, up to `max_batch`.
    fn take_ready(&mut self, rx: &mut mpsc::Receiver<WriteOp>) {
        while self.pending.len() < self.cfg.max_batch {
            match rx.try_recv() {
                Ok(op) => self.push(op),
                Err(_) => break,
            }
        }
    }

    fn push(&mut self, op: WriteOp) {
        let p = &mut self.pending;
        let was_empty = p.is_empty();
        let (ops, coalesced) = match op {
            WriteOp::State(id, rec) => match p.state_at.get(&id) {
                Some(&i) => {
                    p.batch.states[i].1 = rec;
                    (1, 1)
                }
                None => {
                    p.state_at.insert(id, p.batch.states.len());
                    p.batch.states.push((id, rec));
                    (1, 0)
                }
            },
            WriteOp::History(h) => {
                p.batch.history.push(h);
                (1, 0)
            }
            WriteOp::HistoryBatch(v) => {
                let n = v.len() as u64;
                p.batch.history.extend(v);
                (n, 0)
            }
            WriteOp::Event(e) => {
                p.batch.events.push(e);
                (1, 0)
            }
            WriteOp::Meta(k, v) => match p.meta_at.get(&k) {
                Some(&i) => {
                    p.batch.meta[i].1 = v;
                    (1, 1)
                }
                None => {
                    p.meta_at.insert(k.clone(), p.batch.meta.len());
                    p.batch.meta.push((k, v));
                    (1, 0)
                }
            },
            WriteOp::Group(ops) => {
                // Batches are cut only between pushes, so the whole group
                // joins the pending batch together.
                for op in ops {
                    self.push(op);
                }
                return;
            }
            WriteOp::Flush(tx) => {
                if p.is_empty() {
                    // Everything sent before is already durable.
                    let _ = tx.send(Ok(self.durable.flushes));
                } else {
                    p.waiters.push(tx);
                }
                return;
            }
        };
        if was_empty && !p.is_empty() {
            p.since = Some(Instant::now());
        }
        self.shared.ops.fetch_add(ops, Ordering::Relaxed);
        self.shared
            .coalesced
            .fetch_add(coalesced, Ordering::Relaxed);
        self.shared.pending.store(p.len(), Ordering::Relaxed);
    }

    /// Writes the pending batch once; on success acknowledges it.
    fn attempt(&mut self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let result = self.store.write(&self.pending.batch);
        let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.shared.commit.observe_micros(us);
        self.shared
            .failing
            .store(result.is_err(), Ordering::Relaxed);
        self.shared.latency_last_us.store(us, Ordering::Relaxed);
        self.shared.latency_max_us.fetch_max(us, Ordering::Relaxed);
        let waiters = std::mem::take(&mut self.pending.waiters);
        match result {
            Ok(()) => {
                let done = std::mem::take(&mut self.pending);
                self.shared
                    .records
                    .fetch_add(done.len() as u64, Ordering::Relaxed);
                let b = &done.batch;
                let d = &mut self.durable;
                d.flushes += 1;
                d.history_records += b.history.len() as u64;
                d.events += b.events.len() as u64;
                d.states += b.states.len() as u64;
                d.last_flush = Some(self.cfg.clock.now());
                self.durable_tx.send_replace(*d);
                self.shared.batches.fetch_add(1, Ordering::Relaxed);
                self.shared.pending.store(0, Ordering::Relaxed);
                for w in waiters {
                    let _ = w.send(Ok(d.flushes));
                }
                Ok(())
            }
            Err(e) => {
                self.shared.errors.fetch_add(1, Ordering::Relaxed);
                *self
                    .shared
                    .last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                tracing::warn!(
                    records = self.pending.len(),
                    error = %e,
                    "store write failed; keeping the batch and retrying"
                );
                for w in waiters {
                    let _ = w.send(Err(e.clone()));
                }
                Err(e)
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Condvar;
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::store::MemoryStore;
    use crate::store::conformance::{event, hist, point, state, twin};

    /// A memory store that records every batch, can fail its writes and
    /// can hold writes at a gate.
    #[derive(Debug, Default)]
    struct TestStore {
        inner: MemoryStore,
        batches: Mutex<Vec<WriteBatch>>,
        always_fail: AtomicBool,
        gate_closed: Mutex<bool>,
        gate: Condvar,
        entered: tokio::sync::Notify,
    }

    impl TestStore {
        fn batches(&self) -> Vec<WriteBatch> {
            self.batches.lock().unwrap().clone()
        }

        fn set_gate(&self, closed: bool) {
            *self.gate_closed.lock().unwrap() = closed;
            self.gate.notify_all();
        }
    }

    impl Store for TestStore {
        fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
            self.entered.notify_one();
            let mut closed = self.gate_closed.lock().unwrap();
            while *closed {
                closed = self.gate.wait(closed).unwrap();
            }
            drop(closed);
            if self.always_fail.load(Ordering::SeqCst) {
                return Err(StoreError::Backend {
                    backend: "test",
                    op: format!("write batch of {} records", batch.len()),
                    message: "injected failure".into(),
                });
            }
            self.batches.lock().unwrap().push(batch.clone());
            self.inner.write(batch)
        }
        fn load_state(&self, id: TwinId) -> Result<Option<TwinRecord>, StoreError> {
            self.inner.load_state(id)
        }
        fn scan_states(
            &self,
            f: &mut dyn FnMut(TwinId, TwinRecord) -> bool,
        ) -> Result<(), StoreError> {
            self.inner.scan_states(f)
        }
        fn history(
            &self,
            id: TwinId,
            prop: &str,
            from: Timestamp,
            to: Timestamp,
            limit: usize,
        ) -> Result<Vec<crate::store::HistoryPoint>, StoreError> {
            self.inner.history(id, prop, from, to, limit)
        }
        fn events(
            &self,
            id: TwinId,
            after_seq: u64,
            limit: usize,
        ) -> Result<Vec<EventRecord>, StoreError> {
            self.inner.events(id, after_seq, limit)
        }
        fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.get_meta(key)
        }
        fn audit(&self, after_seq: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
            self.inner.audit(after_seq, limit)
        }
        fn stats(&self) -> crate::store::StoreStats {
            self.inner.stats()
        }
    }

    /// Only `flush()` (or a full batch) triggers a write.
    fn manual() -> WriterConfig {
        WriterConfig {
            flush_interval: Duration::from_secs(3600),
            retry_backoff: Duration::from_millis(1),
            max_retry_backoff: Duration::from_millis(5),
            ..Default::default()
        }
    }

    fn spawn(cfg: WriterConfig) -> (Arc<TestStore>, StoreWriter, WriterHandle) {
        let store = Arc::new(TestStore::default());
        let (w, h) = StoreWriter::spawn(store.clone(), cfg);
        (store, w, h)
    }

    fn all_flow(store: &TestStore, id: TwinId) -> Vec<(i64, u64)> {
        store
            .history(id, "flow", Timestamp(i64::MIN), Timestamp::MAX, usize::MAX)
            .unwrap()
            .iter()
            .map(|p| (p.ts.0, p.seq))
            .collect()
    }

    #[tokio::test]
    async fn states_of_one_twin_coalesce_to_the_latest() {
        let (store, w, _h) = spawn(manual());
        for seq in 1..=100 {
            w.send(WriteOp::State(twin(1), state(seq))).await.unwrap();
        }
        w.send(WriteOp::State(twin(2), state(1))).await.unwrap();
        w.send(WriteOp::Meta("k".into(), vec![1])).await.unwrap();
        w.send(WriteOp::Meta("k".into(), vec![2])).await.unwrap();
        assert_eq!(w.flush().await.unwrap(), 1);
        let batches = store.batches();
        assert_eq!(batches.len(), 1);
        assert_eq!(
            batches[0].states,
            vec![(twin(1), state(100)), (twin(2), state(1))]
        );
        assert_eq!(batches[0].meta, vec![("k".to_string(), vec![2])]);
        let m = w.metrics();
        assert_eq!(m.ops_coalesced, 100);
        assert_eq!(m.ops, 103);
        assert_eq!(store.load_state(twin(1)).unwrap(), Some(state(100)));
    }

    #[tokio::test]
    async fn history_and_events_keep_arrival_order_across_batches() {
        let (store, w, _h) = spawn(WriterConfig {
            max_batch: 64,
            ..manual()
        });
        let mut sent = Vec::new();
        for i in 0..500u64 {
            // Out of time order on purpose: arrival order is what is kept.
            let h = hist(twin(1), "flow", point(1000 - i as i64, i, 0.0));
            sent.push(h.clone());
            if i % 10 == 0 {
                w.send(WriteOp::HistoryBatch(vec![h])).await.unwrap();
            } else {
                w.send(WriteOp::History(h)).await.unwrap();
            }
            w.send(WriteOp::Event(event(twin(1), i + 1))).await.unwrap();
        }
        w.flush().await.unwrap();
        let batches = store.batches();
        assert!(batches.len() > 1, "max_batch splits the stream");
        assert!(batches.iter().all(|b| b.len() <= 64));
        let written: Vec<_> = batches.iter().flat_map(|b| b.history.clone()).collect();
        assert_eq!(written, sent);
        let events: Vec<u64> = batches
            .iter()
            .flat_map(|b| b.events.iter().map(|e| e.seq))
            .collect();
        assert_eq!(events, (1..=500).collect::<Vec<_>>());
        assert_eq!(all_flow(&store, twin(1)).len(), 500);
        let d = *w.durable().borrow();
        assert_eq!((d.history_records, d.events), (500, 500));
        assert_eq!(d.flushes, batches.len() as u64);
    }

    #[tokio::test]
    async fn flush_returns_once_data_is_in_the_store() {
        let (store, w, _h) = spawn(manual());
        let durable = w.durable();
        assert_eq!(*durable.borrow(), Durable::default());
        w.send(WriteOp::State(twin(1), state(3))).await.unwrap();
        w.send(WriteOp::History(hist(twin(1), "flow", point(1, 1, 1.0))))
            .await
            .unwrap();
        w.send(WriteOp::Event(event(twin(1), 1))).await.unwrap();
        w.send(WriteOp::Meta("node".into(), b"n1".to_vec()))
            .await
            .unwrap();
        assert_eq!(w.flush().await.unwrap(), 1);
        assert_eq!(store.load_state(twin(1)).unwrap(), Some(state(3)));
        assert_eq!(all_flow(&store, twin(1)), vec![(1, 1)]);
        assert_eq!(store.events(twin(1), 0, 10).unwrap().len(), 1);
        assert_eq!(store.get_meta("node").unwrap(), Some(b"n1".to_vec()));
        let d = *durable.borrow();
        assert_eq!(
            (d.flushes, d.history_records, d.events, d.states),
            (1, 1, 1, 1)
        );
        assert!(d.last_flush.is_some());
        // Nothing new: answered at once, no empty write.
        assert_eq!(w.flush().await.unwrap(), 1);
        assert_eq!(store.batches().len(), 1);
    }

    #[tokio::test]
    async fn the_interval_flushes_without_being_asked() {
        let (store, w, _h) = spawn(WriterConfig {
            flush_interval: Duration::from_millis(5),
            ..Default::default()
        });
        let mut durable = w.durable();
        w.send(WriteOp::History(hist(twin(1), "flow", point(1, 1, 1.0))))
            .await
            .unwrap();
        tokio::time::timeout(
            Duration::from_secs(10),
            durable.wait_for(|d| d.history_records == 1),
        )
        .await
        .expect("the interval flush happened")
        .unwrap();
        assert_eq!(all_flow(&store, twin(1)), vec![(1, 1)]);
    }

    #[tokio::test]
    async fn a_full_queue_back_pressures_and_nothing_is_durable_before_the_write_returns() {
        let (store, w, _h) = spawn(WriterConfig {
            max_batch: 1,
            queue: 2,
            ..manual()
        });
        store.set_gate(true);
        let op = |i: u64| WriteOp::History(hist(twin(1), "flow", point(i as i64, i, 0.0)));
        w.send(op(0)).await.unwrap();
        // The writer takes op 0 (a full batch) and blocks writing it.
        store.entered.notified().await;
        w.send(op(1)).await.unwrap();
        w.send(op(2)).await.unwrap();
        assert_eq!(w.metrics().queued, 2);
        let back = w.try_send(op(3)).expect_err("queue is full");
        assert!(matches!(back, WriteOp::History(_)));
        assert!(
            tokio::time::timeout(Duration::from_millis(50), w.send(op(3)))
                .await
                .is_err(),
            "send waits while the queue is full"
        );
        assert_eq!(w.durable().borrow().flushes, 0, "write has not returned");
        assert!(all_flow(&store, twin(1)).is_empty());

        store.set_gate(false);
        w.send(op(3)).await.unwrap();
        w.flush().await.unwrap();
        assert_eq!(
            all_flow(&store, twin(1)),
            vec![(0, 0), (1, 1), (2, 2), (3, 3)]
        );
        assert_eq!(w.durable().borrow().history_records, 4);
    }

    #[tokio::test]
    async fn failed_writes_are_retried_and_nothing_is_lost() {
        let (store, w, _h) = spawn(manual());
        store.always_fail.store(true, Ordering::SeqCst);
        for i in 0..10 {
            w.send(WriteOp::History(hist(twin(1), "flow", point(i, 0, 0.0))))
                .await
                .unwrap();
        }
        let err = w.flush().await.expect_err("the attempt fails");
        assert!(err.to_string().contains("injected failure"), "{err}");
        assert_eq!(*w.durable().borrow(), Durable::default());
        assert!(all_flow(&store, twin(1)).is_empty());
        // Data sent while failing joins the retried batch.
        for i in 10..20 {
            w.send(WriteOp::History(hist(twin(1), "flow", point(i, 0, 0.0))))
                .await
                .unwrap();
        }
        assert!(w.flush().await.is_err());
        assert_eq!(*w.durable().borrow(), Durable::default());
        assert!(w.metrics().errors >= 2);
        assert_eq!(w.metrics().pending, 20);
        assert!(w.metrics().failing, "the last attempt failed");

        store.always_fail.store(false, Ordering::SeqCst);
        assert_eq!(w.flush().await.unwrap(), 1);
        assert_eq!(
            all_flow(&store, twin(1)),
            (0..20).map(|i| (i, 0)).collect::<Vec<_>>()
        );
        assert_eq!(store.batches().len(), 1, "one batch, kept across retries");
        let m = w.metrics();
        assert_eq!(m.batches, 1);
        assert!(!m.failing, "the last attempt succeeded");
        assert_eq!(m.records_written, 20);
        assert_eq!(
            m.commit_latency.count(),
            m.errors + 1,
            "every attempt is timed, failed ones included"
        );
        assert!(m.last_error.unwrap().contains("injected failure"));
        assert_eq!(w.durable().borrow().history_records, 20);
    }

    #[tokio::test]
    async fn shutdown_writes_everything_then_refuses_more() {
        let (store, w, h) = spawn(manual());
        for i in 0..100 {
            w.send(WriteOp::History(hist(twin(1), "flow", point(i, 0, 0.0))))
                .await
                .unwrap();
        }
        let d = h.shutdown().await.unwrap();
        assert_eq!(d.history_records, 100);
        assert_eq!(all_flow(&store, twin(1)).len(), 100);
        assert!(matches!(
            w.send(WriteOp::Event(event(twin(1), 1))).await,
            Err(StoreError::WriterStopped)
        ));
        assert!(matches!(w.flush().await, Err(StoreError::WriterStopped)));
        assert_eq!(
            Arc::strong_count(&store),
            1,
            "the writer released the store"
        );
    }

    #[tokio::test]
    async fn shutdown_reports_what_it_could_not_write() {
        let (store, w, h) = spawn(WriterConfig {
            shutdown_attempts: 3,
            ..manual()
        });
        store.always_fail.store(true, Ordering::SeqCst);
        for i in 0..7 {
            w.send(WriteOp::History(hist(twin(1), "flow", point(i, 0, 0.0))))
                .await
                .unwrap();
        }
        match h.shutdown().await {
            Err(StoreError::Unflushed {
                records,
                last_error,
            }) => {
                assert_eq!(records, 7);
                assert!(last_error.to_string().contains("injected failure"));
            }
            other => panic!("expected Unflushed, got {other:?}"),
        }
        assert_eq!(w.metrics().errors, 3);
    }

    #[test]
    fn dropping_every_sender_flushes_and_stops() {
        let store = Arc::new(TestStore::default());
        let (w, h) = StoreWriter::spawn(store.clone(), manual());
        w.try_send(WriteOp::Event(event(twin(1), 1))).unwrap();
        drop(w);
        let d = h.shutdown_blocking().unwrap();
        assert_eq!(d.events, 1);
        assert_eq!(store.events(twin(1), 0, 10).unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_group_is_never_split_across_batches() {
        let store = Arc::new(TestStore::default());
        let (w, h) = StoreWriter::spawn(
            store.clone(),
            WriterConfig {
                max_batch: 1,
                ..WriterConfig::default()
            },
        );
        for i in 0..20u64 {
            let group = vec![
                WriteOp::Event(event(twin(1), i + 1)),
                WriteOp::HistoryBatch(vec![hist(twin(1), "flow", point(i as i64, i, 1.0))]),
                WriteOp::State(twin(1), state(i + 1)),
            ];
            w.send(WriteOp::Group(group)).await.unwrap();
        }
        w.flush().await.unwrap();
        h.shutdown().await.unwrap();
        let batches = store.batches();
        assert!(batches.len() > 1, "max_batch 1 cuts often");
        for b in batches.iter() {
            // Whole groups only: as many events as history points, and the
            // state is the one written with the last of them.
            assert_eq!(b.events.len(), b.history.len(), "{b:?}");
            let last = b.events.iter().map(|e| e.seq).max().unwrap();
            assert_eq!(b.states.len(), 1);
            assert_eq!(b.states[0].1.seq, last);
        }
    }
}
