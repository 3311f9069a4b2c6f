//! The simulated source: feeds every point that has no hardware binding from
//! the `sim` crate's process models, deterministically for a seed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use adapters::{BindError, PointSpec, SampleSink, SampleSource, SourceError, SourceFuture};
use rand::SeedableRng;
use sim::{ProcessModel, RandomWalk, SimRng};
use twins::{Clock, PointId, Quality, Sample, Value};

/// Sample period used when no point states one.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(1);

/// One simulated device: a process model (if the class names one) and
/// random walks for the points the model does not produce.
#[derive(Debug)]
struct Device {
    rng: SimRng,
    model: Option<Box<dyn ProcessModel>>,
    /// Model outputs, refreshed every step.
    out: Vec<Value>,
    /// `(point, index into out)` for points the model feeds.
    mapped: Vec<(PointId, usize)>,
    walks: Vec<(PointId, RandomWalk)>,
}

/// A [`SampleSource`] over the simulator.
#[derive(Debug)]
pub struct SimSource {
    name: String,
    seed: u64,
    clock: Clock,
    period: Duration,
    devices: Vec<Device>,
}

impl SimSource {
    pub fn new(name: &str, seed: u64, clock: Clock) -> Self {
        Self {
            name: name.to_string(),
            seed,
            clock,
            period: DEFAULT_PERIOD,
            devices: Vec::new(),
        }
    }

    /// Number of simulated devices.
    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    /// Advances every device by `dt` and returns one batch per device.
    pub fn step(&mut self, dt: Duration) -> Vec<Vec<Sample>> {
        let now = self.clock.now();
        let mut batches = Vec::with_capacity(self.devices.len());
        for d in &mut self.devices {
            let mut batch = Vec::with_capacity(d.mapped.len() + d.walks.len());
            if let Some(model) = d.model.as_mut() {
                model.step(dt, &mut d.rng, &mut d.out);
                for &(point, i) in &d.mapped {
                    batch.push(sample(point, d.out[i].clone(), now));
                }
            }
            for (point, walk) in &mut d.walks {
                batch.push(sample(*point, walk.step(dt, &mut d.rng), now));
            }
            batches.push(batch);
        }
        batches
    }
}

fn sample(point: PointId, value: Value, now: twins::Timestamp) -> Sample {
    Sample {
        point,
        value,
        source_ts: now,
        quality: Quality::Good,
        seq: 0,
    }
}

impl SampleSource for SimSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn bind(&mut self, points: Vec<PointSpec>) -> Result<(), Vec<BindError>> {
        let mut errors = Vec::new();
        // Group by twin, keeping the order of first appearance stable.
        let mut by_twin: BTreeMap<String, Vec<(PointId, PointSpec)>> = BTreeMap::new();
        for (i, p) in points.into_iter().enumerate() {
            if let Some(period) = p.period {
                self.period = self.period.min(period);
            }
            by_twin
                .entry(p.twin.as_str().to_string())
                .or_default()
                .push((PointId(i as u32), p));
        }
        for (twin, points) in by_twin {
            let seed = sim::device_seed(self.seed, &twin);
            let hint = points.iter().find_map(|(_, p)| p.sim.clone());
            let model = match hint.as_deref() {
                None => None,
                Some(kind) => match sim::model_for(kind, &sim::ModelParams::default()) {
                    Some(m) => Some(m),
                    None => {
                        let (_, p) = &points[0];
                        errors.push(BindError {
                            source_name: self.name.clone(),
                            twin: p.twin.clone(),
                            prop: p.prop.clone(),
                            address: p.address.clone(),
                            message: format!(
                                "unknown process model `{kind}`: expected one of {}",
                                sim::known_models().join(", ")
                            ),
                        });
                        continue;
                    }
                },
            };
            let signals = model.as_ref().map(|m| m.signals()).unwrap_or(&[]);
            let mut mapped = Vec::new();
            let mut walks = Vec::new();
            for (point, p) in points {
                // An explicit address names the model signal; else the property name does.
                let signal = if p.address.is_empty() {
                    &p.prop
                } else {
                    &p.address
                };
                match signals.iter().position(|s| s.name == signal) {
                    Some(i) => mapped.push((point, i)),
                    None => walks.push((
                        point,
                        RandomWalk::new(p.ty, p.range).with_states(p.states.len() as u16),
                    )),
                }
            }
            self.devices.push(Device {
                rng: SimRng::seed_from_u64(seed),
                out: vec![Value::Null; signals.len()],
                model,
                mapped,
                walks,
            });
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn run(
        mut self: Box<Self>,
        sink: Arc<dyn SampleSink>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> SourceFuture {
        Box::pin(async move {
            let period = self.period;
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = interval.tick() => {}
                    _ = shutdown.changed() => return Ok(()),
                }
                if *shutdown.borrow() {
                    return Ok(());
                }
                let arrival = self.clock.now();
                for batch in self.step(period) {
                    if sink.deliver(batch, arrival).is_err() {
                        return Err(SourceError::SinkClosed(self.name.clone()));
                    }
                }
            }
        })
    }
}
