//! `twinrt bench --what http`: read latency of the HTTP API and the ingest
//! rate while the node ingests flat out, with 100 live (SSE) subscribers on
//! different subtrees and without any.
//!
//! The subscribers and the reader run in the node's process, over real
//! loopback HTTP: what they cost the node's two cores is part of the figure.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::{CaseResult, Shape, bench_config, bench_model, drive_node};
use crate::http::auth::hash_token;
use crate::http::{HttpConfig, HttpServer, Role, TokenInfo, Tokens};
use crate::node::Node;
use twins::{Clock, TwinPath};

/// Live subscribers of the `http-sse` case.
pub const SUBSCRIBERS: usize = 100;

const TOKEN: &str = "twr_bench";

/// Runs one case: `http` (no subscribers) or `http-sse`, flat out, or the
/// same with `-paced` at `rate` samples/s.
pub(super) async fn run(
    case: &str,
    shape: &Shape,
    secs: Duration,
    rate: u64,
) -> anyhow::Result<CaseResult> {
    let subscribers = if case.starts_with("http-sse") {
        SUBSCRIBERS
    } else {
        0
    };
    let rate = case.ends_with("-paced").then_some(rate);
    let model = Arc::new(bench_model(shape)?);
    let node = Arc::new(Node::start(model, bench_config(None), Clock::system(), None).await?);
    let root = node.root_path().clone();
    let mut config = HttpConfig::with_tokens(Tokens::new([(
        hash_token(TOKEN),
        TokenInfo {
            id: "bench".into(),
            role: Role::Viewer,
            scope: root.clone(),
        },
    )]));
    config.listen = "127.0.0.1:0".parse()?;
    let server = HttpServer::start(node.clone(), config).await?;
    let base = format!("http://{}", server.local_addr());
    let http = reqwest::Client::new();

    // Subscribers on different subtrees: lines first, then plants, regions.
    let model = &node.ctx.model;
    let mut subtrees: Vec<&TwinPath> = Vec::new();
    for tier in [
        twins::model::Tier::Line,
        twins::model::Tier::Plant,
        twins::model::Tier::Region,
    ] {
        subtrees.extend(
            model
                .twins
                .iter()
                .filter(|t| model.classes[t.class].tier == tier)
                .map(|t| &t.path),
        );
    }
    let events = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let mut subs = Vec::new();
    for k in 0..subscribers {
        let path = subtrees[k % subtrees.len()].to_string();
        let r = http
            .get(format!("{base}/api/stream?path={path}/**"))
            .bearer_auth(TOKEN)
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "subscriber {k}: {}", r.status());
        let (events, bytes) = (events.clone(), bytes.clone());
        subs.push(tokio::spawn(async move {
            let mut body = r.bytes_stream();
            while let Some(Ok(chunk)) = body.next().await {
                bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                let n = chunk.windows(7).filter(|w| w == b"event: ").count();
                events.fetch_add(n as u64, Ordering::Relaxed);
            }
        }));
    }

    // One reader asks for devices one after another while ingest runs.
    let devices: Vec<String> = model
        .twins
        .iter()
        .filter(|t| model.classes[t.class].tier == twins::model::Tier::Device)
        .map(|t| t.path.to_string())
        .collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (http, base, stop) = (http.clone(), base.clone(), stop.clone());
        tokio::spawn(async move {
            let mut h = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
            let mut k = 0usize;
            let mut failed = 0u64;
            while !stop.load(Ordering::Relaxed) {
                k = (k * 7919 + 13) % devices.len();
                let t = Instant::now();
                let ok = match http
                    .get(format!("{base}/api/twins/{}", devices[k]))
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    let _ = h.record(t.elapsed().as_micros() as u64);
                } else {
                    failed += 1;
                }
            }
            (h, failed)
        })
    };
    let t = Instant::now();
    let ev0 = events.load(Ordering::Relaxed);
    let samples = drive_node(&node, secs, rate).await;
    let seconds = t.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let (h, failed) = reader.await?;
    let delivered = events.load(Ordering::Relaxed) - ev0;
    let dropped = server.api().metrics.sse_dropped.load(Ordering::Relaxed);
    let mb = bytes.load(Ordering::Relaxed) as f64 / 1e6;
    server.shutdown().await;
    for s in subs {
        s.abort();
    }
    let Ok(node) = Arc::try_unwrap(node) else {
        anyhow::bail!("the HTTP server still holds the node after its shutdown");
    };
    node.shutdown().await?;
    anyhow::ensure!(failed == 0, "{failed} reads failed");
    Ok(CaseResult {
        case: case.into(),
        twins: shape.total(),
        seconds,
        per_second: Some(samples as f64 / seconds),
        p50_us: Some(h.value_at_quantile(0.5)),
        p99_us: Some(h.value_at_quantile(0.99)),
        max_us: Some(h.max()),
        note: format!(
            "ingest {}; GET /api/twins/DEVICE latency ({} reads); {subscribers} SSE subscribers: \
             {:.0} events/s, {mb:.1} MB, {dropped} dropped",
            rate.map_or("flat out".to_string(), |r| format!("at {r}/s")),
            h.len(),
            delivered as f64 / seconds
        ),
        ..Default::default()
    })
}
