//! Routes samples from sources to twins: the runtime's [`SampleSink`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use adapters::{SampleSink, SinkClosed};
use twins::actor::{SampleBatch, TwinContext, TwinMsg};
use twins::{PropSample, Sample, Timestamp};

/// Where each point of one source goes: `(twin index, property slot)`, by `PointId`.
#[derive(Debug)]
pub struct Router {
    source: String,
    routes: Vec<(usize, u16)>,
    ctx: Arc<TwinContext>,
    /// Samples whose twin was not running (restarting) or whose point is unknown.
    pub undeliverable: AtomicU64,
    closed: std::sync::atomic::AtomicBool,
}

impl Router {
    pub fn new(source: String, routes: Vec<(usize, u16)>, ctx: Arc<TwinContext>) -> Self {
        Self {
            source,
            routes,
            ctx,
            undeliverable: AtomicU64::new(0),
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Stops accepting samples.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    fn send(&self, twin: usize, samples: Vec<PropSample>, arrival: Timestamp) {
        let n = samples.len() as u64;
        let delivered = self
            .ctx
            .cast(twin, TwinMsg::Samples(SampleBatch { samples, arrival }))
            .is_ok();
        if !delivered {
            self.undeliverable.fetch_add(n, Ordering::Relaxed);
            tracing::debug!(source = %self.source, twin = %self.ctx.model.twins[twin].path, "twin not running; batch not delivered");
        }
    }
}

impl SampleSink for Router {
    fn deliver(&self, samples: Vec<Sample>, arrival: Timestamp) -> Result<(), SinkClosed> {
        if self.closed.load(Ordering::Acquire) {
            return Err(SinkClosed);
        }
        let mut current: Option<usize> = None;
        let mut batch: Vec<PropSample> = Vec::with_capacity(samples.len());
        for s in samples {
            let Some(&(twin, prop)) = self.routes.get(s.point.0 as usize) else {
                self.undeliverable.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            if current.is_some_and(|c| c != twin) && !batch.is_empty() {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(8));
                self.send(current.unwrap_or(twin), full, arrival);
            }
            current = Some(twin);
            batch.push(PropSample {
                prop,
                value: s.value,
                source_ts: s.source_ts,
                quality: s.quality,
            });
        }
        if let Some(twin) = current
            && !batch.is_empty()
        {
            self.send(twin, batch, arrival);
        }
        Ok(())
    }
}
