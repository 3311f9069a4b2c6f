//! The live terminal summary of `twinrt run`: HQ and region KPIs, active
//! alarms by priority, sample rate and durability.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cluster::TwinDirectory;
use twins::Value;
use twins::actor::{PropView, TwinView};
use twins::alarm::Priority;
use twins::model::Tier;

use crate::node::Node;

/// Sample counts of recent frames, for a rate over the last few seconds
/// (a rate between two frames alone reads 0 whenever a source's period and
/// the frame period line up).
#[derive(Debug, Clone)]
pub struct Rates {
    window: std::collections::VecDeque<(tokio::time::Instant, u64)>,
}

/// How far back the samples/s rate looks.
const RATE_WINDOW: Duration = Duration::from_secs(5);

impl Rates {
    /// Rates of a node started at `start` (with no samples then).
    pub fn new(start: tokio::time::Instant) -> Self {
        Self {
            window: std::collections::VecDeque::from([(start, 0)]),
        }
    }

    /// Records `samples` at `now`; returns samples per second over the window.
    fn rate(&mut self, now: tokio::time::Instant, samples: u64) -> f64 {
        while self.window.len() > 1
            && self
                .window
                .get(1)
                .is_some_and(|(t, _)| now.duration_since(*t) >= RATE_WINDOW)
        {
            self.window.pop_front();
        }
        let rate = match self.window.front() {
            Some(&(t, n)) if now.duration_since(t) > Duration::from_millis(200) => {
                samples.saturating_sub(n) as f64 / now.duration_since(t).as_secs_f64()
            }
            _ => 0.0,
        };
        self.window.push_back((now, samples));
        rate
    }
}

/// Renders one frame of the summary.
pub async fn frame(node: &Node, rates: &mut Rates, elapsed: Duration) -> String {
    let model = &node.ctx.model;
    let m = &node.ctx.metrics;
    let now = tokio::time::Instant::now();
    let samples = m.samples.load(Ordering::Relaxed);
    let per_sec = rates.rate(now, samples);
    let mut out = String::new();
    let durable = node
        .writer
        .as_ref()
        .map(|w| w.durable().borrow().history_records)
        .unwrap_or(0);
    let _ = writeln!(
        out,
        "twinrt  {}  up {}s  twins {}  samples/s {:.0}  samples {}  durable {}  rejected {}  restarts {}",
        node.root_path(),
        elapsed.as_secs(),
        model.twins.len(),
        per_sec,
        samples,
        durable,
        m.samples_rejected.load(Ordering::Relaxed),
        m.restarts.load(Ordering::Relaxed),
    );
    let mut rows: Vec<TwinView> = Vec::new();
    for t in model.twins.iter() {
        let tier = model.classes[t.class].tier;
        if matches!(tier, Tier::Enterprise | Tier::Region)
            && let Ok(r) = node.directory.get(t.path.as_str())
            && let Ok(v) = r.view().await
        {
            rows.push(v);
        }
    }
    for v in &rows {
        let indent = if v.tier == Tier::Enterprise { "" } else { "  " };
        let a = v.subtree_alarms;
        let _ = writeln!(
            out,
            "{indent}{:<24} {}  alarms U{} H{} M{} L{}",
            v.path.name(),
            kpis(&v.props),
            a.active_of(Priority::Urgent),
            a.active_of(Priority::High),
            a.active_of(Priority::Medium),
            a.active_of(Priority::Low),
        );
    }
    for a in node.edge.status() {
        let error = match (&a.state, &a.last_error) {
            (crate::edge::AdapterState::Failed, Some(e)) => format!("  last error: {e}"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "edge {:<18} {:<7} {:<8} under {}  starts {}{error}",
            a.name,
            a.kind,
            a.state.as_str(),
            a.owner,
            a.starts,
        );
    }
    out
}

/// The first few numeric properties, with unit and contributor counts.
fn kpis(props: &[PropView]) -> String {
    let mut s = String::new();
    for p in props.iter().filter(|p| p.counts.is_some()).take(5) {
        let value = match &p.value {
            Value::F64(v) => format!("{v:.1}"),
            Value::I64(v) => v.to_string(),
            Value::Bool(v) => v.to_string(),
            Value::Null => "-".into(),
            other => other.to_string(),
        };
        let unit = p.unit.as_deref().unwrap_or("");
        let stale = p
            .counts
            .map(|c| c.total - c.good)
            .filter(|n| *n > 0)
            .map(|n| format!(" ({n} not good)"))
            .unwrap_or_default();
        let _ = write!(
            s,
            "{} {value}{}{unit}{stale}  ",
            p.name,
            if unit.is_empty() { "" } else { " " }
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_covers_a_window_not_just_the_last_two_frames() {
        let t0 = tokio::time::Instant::now();
        let s = Duration::from_secs;
        let mut r = Rates::new(t0);
        assert_eq!(
            r.rate(t0 + Duration::from_millis(10), 0),
            0.0,
            "too early to tell"
        );
        assert_eq!(r.rate(t0 + s(1), 1000), 1000.0);
        // No sample between these two frames: the window still shows the flow.
        assert_eq!(r.rate(t0 + s(2), 1000), 500.0);
        assert_eq!(r.rate(t0 + s(4), 4000), 1000.0);
        // Counts older than the window drop out.
        assert_eq!(r.rate(t0 + s(9), 4000), 0.0);
    }
}
