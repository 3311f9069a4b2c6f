//! Live changes over Server-Sent Events.
//!
//! One hub task per node reads the twins' change feed and coalesces it:
//! for every twin that changed during a period (`sse_coalesce`, 250 ms by
//! default) it keeps the latest state only; alarm changes are never merged
//! and cut the period short, so they go out at once. Each period becomes
//! one batch, numbered change by change, broadcast to every live client
//! and kept in a bounded ring for clients that resume with
//! `Last-Event-ID`. A state is rendered to JSON once, by the first client
//! that needs it, and shared by the others.
//!
//! Every client has its own task: it takes from each batch what lies in
//! its subtree and hands the events to its connection through a bounded
//! queue. A client that reads too slowly fills its queue and loses events,
//! counted and announced to it with a `dropped` event; nothing waits on it:
//! not the twins, not the hub, not other clients.
//!
//! The hub starts with the first client, so a node nobody watches pays
//! nothing (twins skip building changes while the feed has no subscriber).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, Sse};
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};
use twins::actor::{ChangeFeed, TwinChange};
use twins::model::Model;
use utoipa::IntoParams;

use super::Api;
use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::glob::Glob;
use super::metrics::ApiMetrics;
use super::views::{Alarm, quality_name, reason_name, value_json};

/// One numbered change, rendered at most once.
#[derive(Debug)]
struct Entry {
    id: u64,
    change: Arc<TwinChange>,
    event: OnceLock<Option<Event>>,
}

impl Entry {
    fn event(&self, api: &Api) -> Option<Event> {
        self.event
            .get_or_init(|| render(api, self.id, &self.change))
            .clone()
    }
}

/// What the hub broadcasts once per period (or at an alarm).
#[derive(Debug)]
struct Batch {
    /// In change order.
    entries: Vec<Arc<Entry>>,
    /// Changes the hub itself lost (it fell behind the feed) before this batch.
    lost: u64,
}

/// The node's live-change hub.
#[derive(Debug)]
pub struct Hub {
    feed: ChangeFeed,
    /// Distinguishes event ids of this run from those of an earlier one.
    epoch: u64,
    coalesce: Duration,
    metrics: Arc<ApiMetrics>,
    tx: broadcast::Sender<Arc<Batch>>,
    ring: Mutex<VecDeque<Arc<Entry>>>,
    capacity: usize,
    started: std::sync::Once,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Hub {
    pub fn new(
        feed: ChangeFeed,
        capacity: usize,
        coalesce: Duration,
        epoch: u64,
        metrics: Arc<ApiMetrics>,
    ) -> Hub {
        let (tx, _) = broadcast::channel(1024);
        Hub {
            feed,
            epoch,
            coalesce,
            metrics,
            tx,
            ring: Mutex::new(VecDeque::with_capacity(capacity.min(65_536))),
            capacity,
            started: std::sync::Once::new(),
            task: Mutex::new(None),
        }
    }

    /// Starts the hub task if it is not running yet.
    fn ensure_started(self: &Arc<Self>) {
        self.started.call_once(|| {
            let hub = self.clone();
            let rx = hub.feed.subscribe();
            let task = tokio::spawn(hub.run(rx));
            *self.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        });
    }

    async fn run(self: Arc<Self>, mut rx: broadcast::Receiver<Arc<TwinChange>>) {
        let mut next = 1u64;
        let mut states: HashMap<usize, Arc<Entry>> = HashMap::new();
        let mut alarms: Vec<Arc<Entry>> = Vec::new();
        let mut lost = 0u64;
        let mut tick = tokio::time::interval(self.coalesce);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Ok(change) => {
                        let entry = Arc::new(Entry { id: next, change, event: OnceLock::new() });
                        next += 1;
                        match &*entry.change {
                            TwinChange::State { .. } => {
                                states.insert(entry.change.twin(), entry);
                            }
                            TwinChange::Alarm { .. } => {
                                alarms.push(entry);
                                self.publish(&mut states, &mut alarms, &mut lost);
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        self.metrics.sse_dropped.fetch_add(n, Ordering::Relaxed);
                        lost += n;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick() => self.publish(&mut states, &mut alarms, &mut lost),
            }
        }
    }

    /// Broadcasts what gathered since the last batch, in change order.
    fn publish(
        &self,
        states: &mut HashMap<usize, Arc<Entry>>,
        alarms: &mut Vec<Arc<Entry>>,
        lost: &mut u64,
    ) {
        if states.is_empty() && alarms.is_empty() && *lost == 0 {
            return;
        }
        let mut entries: Vec<Arc<Entry>> = states
            .drain()
            .map(|(_, e)| e)
            .chain(alarms.drain(..))
            .collect();
        entries.sort_unstable_by_key(|e| e.id);
        {
            let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
            for e in &entries {
                if ring.len() == self.capacity {
                    ring.pop_front();
                }
                ring.push_back(e.clone());
            }
        }
        let _ = self.tx.send(Arc::new(Batch {
            entries,
            lost: std::mem::take(lost),
        }));
    }

    /// Stops the hub task (node shutdown).
    pub fn stop(&self) {
        if let Some(t) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.abort();
        }
    }

    fn event_id(&self, n: u64) -> String {
        format!("{:x}.{n}", self.epoch)
    }

    /// The change number of a `Last-Event-ID` of this run; `Err` when it
    /// belongs to another run or is not one of ours.
    fn parse_id(&self, text: &str) -> Result<u64, ()> {
        let (epoch, n) = text.trim().split_once('.').ok_or(())?;
        if u64::from_str_radix(epoch, 16).map_err(|_| ())? != self.epoch {
            return Err(());
        }
        n.parse().map_err(|_| ())
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct StreamQuery {
    /// Path glob of the subtree (`acme/east/**`); default: the token's scope.
    pub path: Option<String>,
    /// The token, for clients that cannot send an `Authorization` header.
    #[allow(dead_code)]
    pub access_token: Option<String>,
}

/// Which twins (indices into the model) a client follows.
#[derive(Debug)]
enum Filter {
    /// A subtree: contiguous in the model's pre-order.
    Range(usize, usize),
    /// Any other glob: one bit per twin.
    Bits(Vec<u64>),
}

impl Filter {
    fn new(api: &Api, glob: &Glob) -> Filter {
        let model = api.model();
        if let Some(root) = glob.as_str().strip_suffix("/**")
            && !root.contains('*')
            && let Some(i) = twins::TwinPath::parse(root)
                .ok()
                .and_then(|p| api.index_of(&p))
        {
            return Filter::Range(i, api.subtree_end(i));
        }
        let mut bits = vec![0u64; model.twins.len().div_ceil(64)];
        for (i, t) in model.twins.iter().enumerate() {
            if glob.matches(t.path.as_str()) {
                bits[i / 64] |= 1 << (i % 64);
            }
        }
        Filter::Bits(bits)
    }

    fn admits(&self, twin: usize) -> bool {
        match self {
            Filter::Range(a, b) => (*a..*b).contains(&twin),
            Filter::Bits(bits) => bits
                .get(twin / 64)
                .is_some_and(|w| w & (1 << (twin % 64)) != 0),
        }
    }
}

/// Live changes of a subtree as Server-Sent Events: `state` (coalesced per
/// twin), `alarm`, `dropped`, `reset`; heartbeats as comments; resume with
/// `Last-Event-ID`.
#[utoipa::path(get, path = "/api/stream", tag = "live", params(StreamQuery),
    responses((status = 200, description = "text/event-stream"), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn stream(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Query(q): Query<StreamQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let glob = api.glob_for(&caller, q.path.as_deref(), "watching live changes")?;
    let filter = Filter::new(&api, &glob);
    let hub = api.hub.clone();
    hub.ensure_started();
    let rx = hub.tx.subscribe();
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|t| hub.parse_id(t));
    let (out_tx, out_rx) = mpsc::channel(api.config.sse_queue);
    let client = Client {
        api: api.clone(),
        filter,
        dropped: 0,
        out: out_tx,
        last_id: 0,
    };
    {
        let mut clients = api.clients.lock().unwrap_or_else(|e| e.into_inner());
        while clients.try_join_next().is_some() {}
        clients.spawn(client.run(rx, resume));
    }
    let stream = tokio_stream::wrappers::ReceiverStream::new(out_rx);
    Ok(Sse::new(futures_util::StreamExt::map(stream, Ok)))
}

/// One live client's task.
struct Client {
    api: Arc<Api>,
    filter: Filter,
    /// Events lost since the client was last told.
    dropped: u64,
    out: mpsc::Sender<Event>,
    /// The last change number handled (replayed or live).
    last_id: u64,
}

/// Counts a live client while its task runs.
struct ClientGuard<'a>(&'a AtomicU64);

impl Drop for ClientGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Client {
    async fn run(
        mut self,
        mut rx: broadcast::Receiver<Arc<Batch>>,
        resume: Option<Result<u64, ()>>,
    ) {
        let api = self.api.clone();
        let metrics = &api.metrics;
        metrics.sse_clients.fetch_add(1, Ordering::Relaxed);
        let _guard = ClientGuard(&metrics.sse_clients);
        match resume {
            None => {}
            Some(Err(())) => self.send(Event::default().event("reset").data("{}")),
            Some(Ok(after)) => {
                metrics.sse_resumed.fetch_add(1, Ordering::Relaxed);
                let replay: Option<Vec<Arc<Entry>>> = {
                    let ring = api.hub.ring.lock().unwrap_or_else(|e| e.into_inner());
                    match ring.front() {
                        // The ring no longer holds everything after `after`.
                        Some(first) if first.id > after + 1 => None,
                        _ => Some(ring.iter().filter(|e| e.id > after).cloned().collect()),
                    }
                };
                match replay {
                    None => self.send(Event::default().event("reset").data("{}")),
                    Some(entries) => {
                        self.last_id = after;
                        self.take(&entries);
                    }
                }
            }
        }
        let mut heartbeat = tokio::time::interval(api.config.sse_heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        heartbeat.tick().await;
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Ok(batch) => {
                        if batch.lost > 0 {
                            // Counted once by the hub; every client is told.
                            self.dropped += batch.lost;
                        }
                        self.take(&batch.entries);
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => self.lose(n),
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = heartbeat.tick() => self.send(Event::default().comment("heartbeat")),
                _ = self.out.closed() => return,
            }
        }
    }

    /// Sends the entries of its subtree it has not seen, in change order.
    fn take(&mut self, entries: &[Arc<Entry>]) {
        for e in entries {
            if e.id <= self.last_id {
                continue;
            }
            self.last_id = e.id;
            if self.filter.admits(e.change.twin())
                && let Some(event) = e.event(&self.api)
            {
                self.send(event);
            }
        }
    }

    fn lose(&mut self, n: u64) {
        self.dropped += n;
        self.api.metrics.sse_dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Queues one event; a full queue loses it (counted, and announced once
    /// there is room).
    fn send(&mut self, event: Event) {
        if self.dropped > 0 {
            let notice = Event::default()
                .event("dropped")
                .data(format!("{{\"count\":{}}}", self.dropped));
            match self.out.try_send(notice) {
                Ok(()) => self.dropped = 0,
                Err(_) => {
                    self.lose(1);
                    return;
                }
            }
        }
        match self.out.try_send(event) {
            Ok(()) => {
                self.api.metrics.sse_events.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => self.lose(1),
        }
    }
}

/// Renders a change as an SSE event.
fn render(api: &Api, id: u64, change: &TwinChange) -> Option<Event> {
    let model: &Model = api.model();
    let event_id = api.hub.event_id(id);
    match change {
        TwinChange::State { twin, seq, slots } => {
            let def = model.twins.get(*twin as usize)?;
            let class = &model.classes[def.class];
            let mut props = serde_json::Map::with_capacity(slots.len());
            for (i, (p, s)) in class.props.iter().zip(slots.iter()).enumerate() {
                props.insert(
                    p.name.clone(),
                    serde_json::json!({
                        "value": value_json(Some(class), i, &s.value),
                        "quality": quality_name(s.quality),
                        "reason": reason_name(s.quality),
                        "ts": s.ts.to_string(),
                    }),
                );
            }
            let data =
                serde_json::json!({ "path": def.path.as_str(), "seq": seq, "properties": props });
            Some(
                Event::default()
                    .event("state")
                    .id(event_id)
                    .data(data.to_string()),
            )
        }
        TwinChange::Alarm {
            twin,
            alarm,
            transition,
        } => {
            let def = model.twins.get(*twin as usize)?;
            let class = &model.classes[def.class];
            let a = class.alarms.get(*alarm as usize)?;
            let priority = def
                .alarm_overrides
                .iter()
                .find(|o| o.alarm == *alarm)
                .and_then(|o| o.priority)
                .unwrap_or(a.priority);
            let (state, mode) = transition.to;
            let view = Alarm::new(
                def.path.as_str(),
                &a.name,
                priority,
                state,
                mode,
                transition.at,
                &a.guidance,
            );
            let mut data = serde_json::to_value(&view).ok()?;
            data["from"] = serde_json::json!({
                "state": transition.from.0.name(),
                "mode": transition.from.1.name(),
            });
            data["cause"] = serde_json::Value::String(transition.cause.to_string());
            Some(
                Event::default()
                    .event("alarm")
                    .id(event_id)
                    .data(data.to_string()),
            )
        }
    }
}
