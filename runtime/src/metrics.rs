//! The node's metrics in the Prometheus text exposition format (0.0.4):
//! twins by tier, samples and their rate, roll-up latency by tier, the
//! deepest mailbox, store commits, restarts, alarms by priority, every edge
//! adapter's state and counters, and the HTTP API's counters. The HTTP layer
//! serves [`render`] at `/metrics`; `docs/architecture.md` ("Metrics") lists
//! every family.
//!
//! Metric names start with `twinrt_`. Adapter counters keep the name their
//! adapter gives them (`modbus_polls` becomes `twinrt_modbus_polls_total`); a
//! counter pair `X_count` and `X_sum` becomes a summary `X`.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use adapters::{Stat, StatKind};
use cluster::TwinDirectory;
use tokio::time::Instant;
use twins::alarm::Priority;
use twins::histogram::HistogramSnapshot;
use twins::model::Tier;

use crate::edge::AdapterState;
use crate::http::ApiMetrics;
use crate::node::Node;

/// The type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Summary,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
            Kind::Histogram => "histogram",
        }
    }
}

/// One line of a family: name suffix (`_count`, `_sum` or none), labels, value.
#[derive(Debug)]
struct Sample {
    suffix: &'static str,
    labels: Vec<(String, String)>,
    value: f64,
}

#[derive(Debug)]
struct Family {
    help: String,
    kind: Kind,
    /// In insertion order.
    samples: Vec<Sample>,
}

/// Metric families being collected, rendered sorted by name.
#[derive(Debug, Default)]
pub struct Exposition {
    families: BTreeMap<String, Family>,
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Adds a sample of family `name` (without the `twinrt_` prefix; counters
    /// without `_total`). The first sample of a family sets its help and kind.
    pub fn add(&mut self, name: &str, help: &str, kind: Kind, labels: &[(&str, &str)], value: f64) {
        // The text format names a counter's family with its `_total`.
        if kind == Kind::Counter {
            self.push(&format!("{name}_total"), help, kind, "", labels, value);
        } else {
            self.push(name, help, kind, "", labels, value);
        }
    }

    fn push(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        suffix: &'static str,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        let family = self
            .families
            .entry(format!("twinrt_{}", sanitize(name)))
            .or_insert_with(|| Family {
                help: help.to_owned(),
                kind,
                samples: Vec::new(),
            });
        family.samples.push(Sample {
            suffix,
            labels: labels
                .iter()
                .map(|(k, v)| (sanitize(k), (*v).to_owned()))
                .collect(),
            value,
        });
    }

    /// Adds a histogram of seconds (its `_bucket`s with `le`, `_sum` and
    /// `_count`) to family `name`.
    pub fn add_histogram(
        &mut self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        h: &HistogramSnapshot,
    ) {
        for (i, &count) in h.cumulative.iter().enumerate() {
            let le = match h.bounds_us.get(i) {
                Some(&us) => number(us as f64 / 1e6),
                None => "+Inf".to_owned(),
            };
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            self.push(
                name,
                help,
                Kind::Histogram,
                "_bucket",
                &with_le,
                count as f64,
            );
        }
        self.push(name, help, Kind::Histogram, "_sum", labels, h.sum_seconds());
        self.push(
            name,
            help,
            Kind::Histogram,
            "_count",
            labels,
            h.count() as f64,
        );
    }

    /// Adds an adapter's stats.
    pub fn add_stats(&mut self, stats: &[Stat]) {
        for s in stats {
            let labels: Vec<(&str, &str)> =
                s.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let (base, suffix) = if let Some(b) = s.name.strip_suffix("_count") {
                (b, "_count")
            } else if let Some(b) = s.name.strip_suffix("_sum") {
                (b, "_sum")
            } else {
                (s.name, "")
            };
            let paired = !suffix.is_empty()
                && s.kind == StatKind::Counter
                && stats.iter().any(|o| {
                    o.kind == StatKind::Counter
                        && o.name
                            .strip_suffix(if suffix == "_count" { "_sum" } else { "_count" })
                            == Some(base)
                });
            if paired {
                self.push(base, s.help, Kind::Summary, suffix, &labels, s.value);
            } else {
                let kind = match s.kind {
                    StatKind::Counter => Kind::Counter,
                    StatKind::Gauge => Kind::Gauge,
                };
                self.add(s.name, s.help, kind, &labels, s.value);
            }
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, f) in &self.families {
            let _ = writeln!(out, "# HELP {name} {}", escape_help(&f.help));
            let _ = writeln!(out, "# TYPE {name} {}", f.kind.as_str());
            for Sample {
                suffix,
                labels,
                value,
            } in &f.samples
            {
                out.push_str(name);
                out.push_str(suffix);
                if !labels.is_empty() {
                    out.push('{');
                    for (i, (k, v)) in labels.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{k}=\"{}\"", escape_label(v));
                    }
                    out.push('}');
                }
                let _ = writeln!(out, " {}", number(*value));
            }
        }
        out
    }
}

/// Letters, digits and `_` only, not starting with a digit.
fn sanitize(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// A rate over a sliding window from readings of a running total, taken
/// now and then (the node's ticker reads its sample counter): no cost per
/// sample. Sans-IO: the caller passes the instants.
#[derive(Debug)]
pub struct RateWindow {
    window: Duration,
    /// `(when, total)`, oldest first; the first may be older than the window
    /// so that the rate spans all of it.
    readings: VecDeque<(Instant, u64)>,
}

impl RateWindow {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            readings: VecDeque::new(),
        }
    }

    /// Records that the total was `total` at `at`.
    pub fn record(&mut self, at: Instant, total: u64) {
        self.readings.push_back((at, total));
        let start = at.checked_sub(self.window).unwrap_or(at);
        while self.readings.get(1).is_some_and(|(t, _)| *t <= start) {
            self.readings.pop_front();
        }
    }

    /// Units per second from the oldest reading kept to `(at, total)`; 0
    /// before any reading or when no time passed.
    pub fn rate(&self, at: Instant, total: u64) -> f64 {
        let Some(&(t0, n0)) = self.readings.front() else {
            return 0.0;
        };
        let secs = at.saturating_duration_since(t0).as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        total.saturating_sub(n0) as f64 / secs
    }
}

/// Every metric of `node` and, when the HTTP API runs, of `api`.
pub async fn render(node: &Node, api: Option<&ApiMetrics>) -> String {
    let mut e = Exposition::new();
    let model = &node.ctx.model;
    let mut by_tier = [0u64; 5];
    for t in &model.twins {
        by_tier[model.classes[t.class].tier.index()] += 1;
    }
    for tier in Tier::ALL {
        e.add(
            "twins",
            "Twins in the node's topology, by tier.",
            Kind::Gauge,
            &[("tier", tier.name())],
            by_tier[tier.index()] as f64,
        );
    }
    let m = &node.ctx.metrics;
    let counters = [
        ("samples", "Samples applied to twins.", &m.samples),
        (
            "sample_batches",
            "Sample batches handled by twins.",
            &m.batches,
        ),
        (
            "samples_rejected",
            "Samples twins rejected (unknown property, wrong type).",
            &m.samples_rejected,
        ),
        (
            "publishes",
            "Contributions twins published to their parents.",
            &m.publishes,
        ),
        (
            "twin_restarts",
            "Twins restarted by their supervisor after a failure.",
            &m.restarts,
        ),
        (
            "escalations",
            "Failures a twin escalated to its own supervisor.",
            &m.escalations,
        ),
        (
            "alarm_transitions",
            "Alarm state and mode changes.",
            &m.alarm_transitions,
        ),
        (
            "store_writes_dropped",
            "Store writes that could not be queued.",
            &m.writes_dropped,
        ),
        (
            "adapter_restarts",
            "Edge adapters restarted by their plant twin after a failure.",
            &m.adapter_restarts,
        ),
    ];
    for (name, help, c) in counters {
        e.add(
            name,
            help,
            Kind::Counter,
            &[],
            c.load(Ordering::Relaxed) as f64,
        );
    }
    e.add(
        "samples_per_second",
        "Samples applied to twins per second over the last 10 s.",
        Kind::Gauge,
        &[],
        node.samples_per_second(),
    );
    // Tiers order top-down: plant, region and enterprise (lines and devices
    // record none, see `TwinMetrics::rollup_latency`).
    for tier in Tier::ALL.into_iter().filter(|t| *t < Tier::Line) {
        e.add_histogram(
            "rollup_latency_seconds",
            "Age of the oldest new sample (since its arrival at the node) in each roll-up a \
             plant, region or enterprise twin applies, by its tier; tier=\"enterprise\" is \
             sample-to-HQ.",
            &[("tier", tier.name())],
            &m.rollup_latency(tier).snapshot(),
        );
    }
    e.add(
        "mailbox_depth_max",
        "Sample batches and child updates waiting in the deepest twin mailbox.",
        Kind::Gauge,
        &[],
        f64::from(node.ctx.deepest_mailbox().map_or(0, |(_, n)| n)),
    );
    if let Some(w) = &node.writer {
        let wm = w.metrics();
        e.add_histogram(
            "store_commit_seconds",
            "Duration of each store write (one batch) by the write-behind writer, failed ones included.",
            &[],
            &wm.commit_latency,
        );
        e.push(
            "store_batch_records",
            "Records per batch written to the store.",
            Kind::Summary,
            "_count",
            &[],
            wm.batches as f64,
        );
        e.push(
            "store_batch_records",
            "Records per batch written to the store.",
            Kind::Summary,
            "_sum",
            &[],
            wm.records_written as f64,
        );
        e.add(
            "store_write_errors",
            "Failed store write attempts (each is retried).",
            Kind::Counter,
            &[],
            wm.errors as f64,
        );
        e.add(
            "store_queue",
            "Writes waiting in the write-behind queue.",
            Kind::Gauge,
            &[],
            wm.queued as f64,
        );
    }
    if let Some(api) = api {
        add_api(&mut e, api);
    }
    if let Ok(root) = node.directory.get(node.root_path().as_str())
        && let Ok(view) = root.view().await
    {
        for p in Priority::ALL {
            e.add(
                "alarms_active",
                "Active (annunciated) alarms in the whole topology, by priority.",
                Kind::Gauge,
                &[("priority", p.name())],
                f64::from(view.subtree_alarms.active_of(p)),
            );
            e.add(
                "alarms_unacked",
                "Alarms waiting for acknowledgement in the whole topology, by priority.",
                Kind::Gauge,
                &[("priority", p.name())],
                f64::from(view.subtree_alarms.unacked[p.index()]),
            );
        }
    }
    for a in node.edge.status() {
        for state in [
            AdapterState::Pending,
            AdapterState::Running,
            AdapterState::Failed,
            AdapterState::Stopped,
        ] {
            e.add(
                "adapter_state",
                "1 for the state each edge adapter is in, 0 for the others.",
                Kind::Gauge,
                &[
                    ("source", &a.name),
                    ("kind", &a.kind),
                    ("state", state.as_str()),
                ],
                f64::from(u8::from(a.state == state)),
            );
        }
        e.add(
            "adapter_starts",
            "Instances of each edge adapter started.",
            Kind::Counter,
            &[("source", &a.name)],
            a.starts as f64,
        );
        if let Some(r) = &a.router {
            e.add(
                "samples_undeliverable",
                "Samples of a source whose twin was not running (restarting).",
                Kind::Counter,
                &[("source", &a.name)],
                r.undeliverable.load(Ordering::Relaxed) as f64,
            );
        }
        if let Some(stats) = &a.stats {
            e.add_stats(&stats.stats());
        }
    }
    let audit = node.audit.metrics();
    e.add(
        "audit_records",
        "Records appended to the audit log.",
        Kind::Counter,
        &[],
        audit.appended as f64,
    );
    for (category, n) in &audit.dropped {
        e.add(
            "audit_dropped",
            "Audit entries dropped because the log's queue was full, by category.",
            Kind::Counter,
            &[("category", &category.to_string())],
            *n as f64,
        );
    }
    e.add(
        "audit_write_failures",
        "Audit log writes that failed (their entries are counted as lost).",
        Kind::Counter,
        &[],
        audit.write_failures as f64,
    );
    e.render()
}

fn add_api(e: &mut Exposition, api: &ApiMetrics) {
    for (status, n) in api.responses() {
        e.add(
            "http_responses",
            "HTTP responses sent, by status code.",
            Kind::Counter,
            &[("status", &status.to_string())],
            n as f64,
        );
    }
    let counters = [
        (
            "http_auth_failures",
            "HTTP requests with a missing, malformed or unknown token.",
            &api.auth_failures,
        ),
        (
            "http_denials",
            "HTTP requests refused for the token's role or scope (403).",
            &api.denials,
        ),
        (
            "http_connections_cut",
            "HTTP connections closed for a slow request or over the connection limit.",
            &api.connections_cut,
        ),
        (
            "sse_events",
            "Events sent to live (SSE) clients.",
            &api.sse_events,
        ),
        (
            "sse_dropped",
            "Events live clients lost because they read too slowly.",
            &api.sse_dropped,
        ),
        (
            "sse_resumed",
            "Live clients that resumed from a Last-Event-ID.",
            &api.sse_resumed,
        ),
    ];
    for (name, help, c) in counters {
        e.add(name, help, Kind::Counter, &[], ApiMetrics::get(c) as f64);
    }
    e.add(
        "sse_clients",
        "Live (SSE) clients connected now.",
        Kind::Gauge,
        &[],
        ApiMetrics::get(&api.sse_clients) as f64,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_renders_cumulative_buckets_sum_and_count() {
        let h = twins::histogram::Histogram::default();
        h.observe(Duration::from_micros(800));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(11));
        let mut e = Exposition::new();
        e.add_histogram(
            "lat_seconds",
            "Latency.",
            &[("tier", "line")],
            &h.snapshot(),
        );
        let text = e.render();
        for line in [
            "# TYPE twinrt_lat_seconds histogram\n",
            "twinrt_lat_seconds_bucket{tier=\"line\",le=\"0.001\"} 1\n",
            "twinrt_lat_seconds_bucket{tier=\"line\",le=\"0.0025\"} 1\n",
            "twinrt_lat_seconds_bucket{tier=\"line\",le=\"0.005\"} 2\n",
            "twinrt_lat_seconds_bucket{tier=\"line\",le=\"10\"} 2\n",
            "twinrt_lat_seconds_bucket{tier=\"line\",le=\"+Inf\"} 3\n",
            "twinrt_lat_seconds_sum{tier=\"line\"} 11.0038\n",
            "twinrt_lat_seconds_count{tier=\"line\"} 3\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
    }

    #[test]
    fn the_rate_spans_the_window_and_forgets_older_readings() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let mut r = RateWindow::new(Duration::from_secs(10));
        assert_eq!(r.rate(t0, 0), 0.0, "no reading yet");
        r.record(t0, 0);
        assert_eq!(r.rate(t0, 5), 0.0, "no time passed");
        for k in 1..=30 {
            // 100 per second for 20 s, then 1000 per second.
            let total = if k <= 20 {
                k * 100
            } else {
                2000 + (k - 20) * 1000
            };
            r.record(s(k), total);
        }
        // The window is the last 10 s: only the 1000/s part.
        assert!((r.rate(s(30), 12_000) - 1000.0).abs() < 1e-9);
        assert!(r.readings.len() <= 11, "{}", r.readings.len());
    }

    #[test]
    fn families_are_grouped_sorted_and_escaped() {
        let mut e = Exposition::new();
        e.add("b", "B.", Kind::Gauge, &[("x", "a\"b\\c\nd")], 1.5);
        e.add("a", "A\nhelp.", Kind::Counter, &[], 3.0);
        e.add("b", "ignored", Kind::Gauge, &[("x", "2")], f64::NAN);
        assert_eq!(
            e.render(),
            "# HELP twinrt_a_total A\\nhelp.\n# TYPE twinrt_a_total counter\ntwinrt_a_total 3\n\
             # HELP twinrt_b B.\n# TYPE twinrt_b gauge\ntwinrt_b{x=\"a\\\"b\\\\c\\nd\"} 1.5\ntwinrt_b{x=\"2\"} NaN\n"
        );
    }

    #[test]
    fn count_and_sum_pairs_become_a_summary() {
        let stat = |name, kind, value| Stat {
            name,
            help: "Poll latency.",
            kind,
            labels: vec![("endpoint", "plc".into())],
            value,
        };
        let mut e = Exposition::new();
        e.add_stats(&[
            stat("poll_latency_seconds_count", StatKind::Counter, 4.0),
            stat("poll_latency_seconds_sum", StatKind::Counter, 0.25),
            stat("poll_latency_seconds_max", StatKind::Gauge, 0.125),
            stat("lonely_count", StatKind::Counter, 2.0),
        ]);
        let text = e.render();
        assert!(
            text.contains("# TYPE twinrt_poll_latency_seconds summary\n"),
            "{text}"
        );
        assert!(
            text.contains("twinrt_poll_latency_seconds_count{endpoint=\"plc\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("twinrt_poll_latency_seconds_sum{endpoint=\"plc\"} 0.25\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE twinrt_poll_latency_seconds_max gauge\n"),
            "{text}"
        );
        assert!(
            text.contains("twinrt_lonely_count_total{endpoint=\"plc\"} 2\n"),
            "{text}"
        );
    }
}
