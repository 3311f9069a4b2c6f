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

/// Figures sampled between two frames.
#[derive(Debug, Default, Clone, Copy)]
pub struct Rates {
    samples: u64,
    at: Option<tokio::time::Instant>,
}

/// Renders one frame of the summary.
pub async fn frame(node: &Node, rates: &mut Rates, elapsed: Duration) -> String {
    let model = &node.ctx.model;
    let m = &node.ctx.metrics;
    let now = tokio::time::Instant::now();
    let samples = m.samples.load(Ordering::Relaxed);
    let per_sec = match rates.at {
        Some(at) if now > at => {
            (samples - rates.samples) as f64 / now.duration_since(at).as_secs_f64()
        }
        _ => 0.0,
    };
    *rates = Rates {
        samples,
        at: Some(now),
    };
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
