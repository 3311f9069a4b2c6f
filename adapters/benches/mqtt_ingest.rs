//! MQTT ingest throughput: messages/s and samples/s that [`MqttSource`]
//! delivers into a counting sink, against bare rumqttc subscribers on the
//! same broker in the same run (one that only counts, one that also parses
//! the JSON and reads the 4 points), through Mosquitto and through the
//! embedded broker (rumqttd).
//!
//! ```text
//! cargo bench -p adapters --bench mqtt_ingest
//! ```
//!
//! Publishers are separate rumqttc clients publishing QoS 0 JSON payloads of
//! 4 points over `TOPICS` topics as fast as the broker takes them. Each
//! subscriber runs alone for `MQTT_BENCH_SECS` seconds (default 5) after a
//! 1 s warm-up; the variants alternate over `MQTT_BENCH_ROUNDS` rounds
//! (default 3) and the summary shows medians, ratios taken within a
//! round. Needs `mosquitto`.
//!
//! Each subscriber runs on a thread of its own with a current-thread tokio
//! runtime, so its whole cost (rumqttc included) is that thread's CPU time,
//! read from `/proc/thread-self/stat` (Linux). Two figures per variant:
//!
//! - delivered messages/s: what reached the subscriber. With the
//!   publishers and the broker on the same machine, the subscriber is
//!   rarely the bottleneck, so this mostly measures them (and is noisy on a
//!   shared machine);
//! - messages per CPU-second of the subscriber thread: how many messages
//!   one core could take; the ratio of these is the adapter's overhead.
//!
//! A decode-only line compares `decode_json` with a bare serde_json parse,
//! without network.

#[path = "../tests/fixtures/mosquitto_harness.rs"]
mod mosquitto;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use adapters::mqtt::{BrokerConfig, EmbeddedBroker, MqttConfig, MqttSource, MqttStatus};
use adapters::{PointSpec, SampleSink, SampleSource, SinkClosed};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::watch;
use twins::{Clock, Sample, Timestamp, TwinPath, ValueType};

const TOPICS: usize = 1000;
const PUBLISHERS: usize = 2;
const POINTS: [&str; 4] = ["t", "f", "p", "l"];

fn topic(i: usize) -> String {
    format!("plant/d{i}/telemetry")
}

#[derive(Debug, Default)]
struct Counts {
    messages: AtomicU64,
    samples: AtomicU64,
}

impl Counts {
    fn snapshot(&self) -> (u64, u64) {
        (
            self.messages.load(Ordering::Relaxed),
            self.samples.load(Ordering::Relaxed),
        )
    }
}

#[derive(Debug)]
struct CountingSink(Arc<Counts>);

impl SampleSink for CountingSink {
    fn deliver(&self, samples: Vec<Sample>, _arrival: Timestamp) -> Result<(), SinkClosed> {
        self.0.messages.fetch_add(1, Ordering::Relaxed);
        self.0
            .samples
            .fetch_add(samples.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Variant {
    Source,
    BareCount,
    BareJson,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Source => "MqttSource -> counting sink",
            Variant::BareCount => "bare rumqttc, count only",
            Variant::BareJson => "bare rumqttc + serde_json, 4 points",
        }
    }
}

/// Publishes until `stop`, QoS 0, round-robin over the topics.
async fn publisher(addr: SocketAddr, id: usize, stop: Arc<AtomicBool>) {
    let mut o = MqttOptions::new(
        format!("bench-pub-{id}"),
        addr.ip().to_string(),
        addr.port(),
    );
    o.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(o, 1000);
    let driver = tokio::spawn(async move {
        loop {
            if eventloop.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let i = (n as usize * PUBLISHERS + id) % TOPICS;
        let payload = format!(
            r#"{{"t":{}.5,"f":{},"p":{}.25,"l":{}}}"#,
            n % 100,
            n % 7,
            n % 13,
            n % 1000
        );
        if client
            .publish(topic(i), QoS::AtMostOnce, false, payload)
            .await
            .is_err()
        {
            break;
        }
        n += 1;
    }
    let _ = client.disconnect().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    driver.abort();
}

/// CPU time of the calling thread, from `/proc/thread-self/stat`
/// (utime + stime in clock ticks of 1/100 s, Linux's USER_HZ).
fn thread_cpu() -> f64 {
    let stat =
        std::fs::read_to_string("/proc/thread-self/stat").expect("read /proc/thread-self/stat");
    // Fields after the command name (which is in parentheses): state is
    // field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').expect("stat has a command") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// Counters and the subscriber thread's CPU time at one instant.
type Mark = (u64, u64, f64);

/// One measurement: messages/s and samples/s delivered, and the
/// subscriber thread's CPU seconds per second.
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    msgs: f64,
    samples: f64,
    cpu: f64,
}

impl Figures {
    /// Messages the subscriber handles per second of its CPU time.
    fn per_cpu_second(&self) -> f64 {
        if self.cpu > 0.0 {
            self.msgs / self.cpu
        } else {
            f64::NAN
        }
    }
}

/// Runs one subscriber variant on a thread of its own (a current-thread
/// tokio runtime, so all its work — rumqttc's event loop included — is on
/// that thread) while the publishers run on the main runtime.
fn measure(
    rt: &tokio::runtime::Runtime,
    addr: SocketAddr,
    variant: Variant,
    run: u32,
    secs: u64,
) -> Figures {
    let counts = Arc::new(Counts::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let (mark_tx, mut mark_rx) =
        tokio::sync::mpsc::unbounded_channel::<tokio::sync::oneshot::Sender<Mark>>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let sub_counts = counts.clone();
    let thread_name = match variant {
        Variant::Source => "sub-source",
        Variant::BareCount => "sub-count",
        Variant::BareJson => "sub-json",
    };
    let sub = std::thread::Builder::new()
        .name(thread_name.to_owned())
        .spawn(move || {
            let srt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let counts = sub_counts;
            let marks = counts.clone();
            srt.spawn(async move {
                while let Some(reply) = mark_rx.recv().await {
                    let (m, s) = marks.snapshot();
                    let _ = reply.send((m, s, thread_cpu()));
                }
            });
            srt.block_on(subscriber(addr, variant, run, counts, stop_rx, ready_tx));
        })
        .expect("spawn the subscriber thread");
    ready_rx.recv().expect("subscriber ready");
    let stop = Arc::new(AtomicBool::new(false));
    let pubs: Vec<_> = (0..PUBLISHERS)
        .map(|id| rt.spawn(publisher(addr, id, stop.clone())))
        .collect();
    let mark = || {
        let (tx, rx) = tokio::sync::oneshot::channel();
        mark_tx.send(tx).unwrap();
        rx.blocking_recv().unwrap()
    };
    std::thread::sleep(Duration::from_secs(1));
    let (m0, s0, c0) = mark();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let (m1, s1, c1) = mark();
    let elapsed = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for p in pubs {
        let _ = rt.block_on(p);
    }
    let _ = stop_tx.send(true);
    sub.join().expect("subscriber thread");
    // Let the broker drop what it still holds for the old subscriber.
    std::thread::sleep(Duration::from_millis(500));
    Figures {
        msgs: (m1 - m0) as f64 / elapsed,
        samples: (s1 - s0) as f64 / elapsed,
        cpu: (c1 - c0) / elapsed,
    }
}

async fn subscriber(
    addr: SocketAddr,
    variant: Variant,
    run: u32,
    counts: Arc<Counts>,
    stop_rx: watch::Receiver<bool>,
    ready: std::sync::mpsc::Sender<()>,
) {
    let client_id = format!("bench-sub-{run}");
    match variant {
        Variant::Source => {
            let config: MqttConfig = toml::from_str(&format!(
                r#"
                host = "{}"
                port = {}
                client_id = "{client_id}"
                [[subscriptions]]
                topic = "plant/{{device}}/telemetry"
                payload = {{ format = "json", points = {{ t = "/t", f = "/f", p = "/p", l = "/l" }} }}
                "#,
                addr.ip(),
                addr.port()
            ))
            .unwrap();
            let mut source = MqttSource::new("bench", config.validate().unwrap(), Clock::system());
            let mut points = Vec::with_capacity(TOPICS * POINTS.len());
            for i in 0..TOPICS {
                for p in POINTS {
                    points.push(PointSpec {
                        twin: TwinPath::parse(&format!("plant/d{i}")).unwrap(),
                        prop: p.to_owned(),
                        class: "Device".to_owned(),
                        sim: None,
                        address: format!("{}#{p}", topic(i)),
                        ty: ValueType::F64,
                        unit: None,
                        range: None,
                        period: None,
                        states: Vec::new(),
                    });
                }
            }
            source.bind(points).unwrap();
            let mut status = source.status();
            let run = Box::new(source).run(Arc::new(CountingSink(counts)), stop_rx);
            tokio::pin!(run);
            tokio::select! {
                r = &mut run => panic!("source stopped before subscribing: {r:?}"),
                s = status.wait_for(|s: &MqttStatus| s.subscribed >= 1) => { s.unwrap(); }
            }
            ready.send(()).unwrap();
            run.await.expect("source runs");
        }
        Variant::BareCount | Variant::BareJson => {
            let mut o = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
            o.set_keep_alive(Duration::from_secs(30));
            let (client, mut eventloop) = AsyncClient::new(o, 16);
            client
                .subscribe("plant/+/telemetry", QoS::AtMostOnce)
                .await
                .unwrap();
            let mut ready = Some(ready);
            let mut stop_rx = stop_rx;
            loop {
                let event = tokio::select! {
                    _ = stop_rx.changed() => break,
                    e = eventloop.poll() => e,
                };
                match event {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(tx) = ready.take() {
                            tx.send(()).unwrap();
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let n = if variant == Variant::BareJson {
                            match serde_json::from_slice::<serde_json::Value>(&p.payload) {
                                Ok(v) => POINTS
                                    .iter()
                                    .filter(|k| v.get(**k).and_then(|x| x.as_f64()).is_some())
                                    .count() as u64,
                                Err(_) => 0,
                            }
                        } else {
                            POINTS.len() as u64
                        };
                        counts.messages.fetch_add(1, Ordering::Relaxed);
                        counts.samples.fetch_add(n, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) => panic!("bare subscriber: {e}"),
                }
            }
            let _ = client.try_disconnect();
        }
    }
}

/// Decoding alone, no network: ns per message of serde_json into a
/// `serde_json::Value` plus 4 key look-ups, against the adapter's
/// `decode_json` with the 4 JSON pointers of the source's subscription.
fn decode_only() -> (f64, f64) {
    let payloads: Vec<Vec<u8>> = (0..1000u64)
        .map(|n| {
            format!(
                r#"{{"t":{}.5,"f":{},"p":{}.25,"l":{}}}"#,
                n % 100,
                n % 7,
                n % 13,
                n % 1000
            )
            .into_bytes()
        })
        .collect();
    let points: std::collections::BTreeMap<String, String> = POINTS
        .iter()
        .map(|p| ((*p).to_owned(), format!("/{p}")))
        .collect();
    const N: usize = 2_000_000;
    let t = Instant::now();
    let mut found = 0usize;
    for i in 0..N {
        let v: serde_json::Value = serde_json::from_slice(&payloads[i % 1000]).unwrap();
        found += POINTS
            .iter()
            .filter(|k| v.get(**k).and_then(|x| x.as_f64()).is_some())
            .count();
    }
    let bare = t.elapsed().as_nanos() as f64 / N as f64;
    let t = Instant::now();
    for i in 0..N {
        let d =
            adapters::mqtt::decode_json("t", &payloads[i % 1000], &points, None, 1 << 20).unwrap();
        found += d.points.len();
    }
    let adapter = t.elapsed().as_nanos() as f64 / N as f64;
    assert_eq!(found, 2 * N * POINTS.len());
    (bare, adapter)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let secs = env_u64("MQTT_BENCH_SECS", 5);
    let rounds = env_u64("MQTT_BENCH_ROUNDS", 3) as u32;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mosquitto_port = mosquitto::free_port();
    let mosquitto_dir = tempfile::tempdir().expect("temp dir for mosquitto.conf");
    let _mosquitto = mosquitto::Broker::start(mosquitto_dir.path(), mosquitto_port);
    let embedded = EmbeddedBroker::start(BrokerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..BrokerConfig::default()
    })
    .expect("embedded broker starts");
    let brokers = [
        (
            "mosquitto",
            SocketAddr::from(([127, 0, 0, 1], mosquitto_port)),
        ),
        ("embedded (rumqttd)", embedded.local_addr()),
    ];
    let variants = [Variant::BareCount, Variant::Source, Variant::BareJson];
    println!(
        "mqtt_ingest: {PUBLISHERS} QoS 0 publishers, {TOPICS} topics, {} points per message, \
         {secs} s per measurement after 1 s warm-up, {rounds} round(s), 2 tokio workers",
        POINTS.len()
    );
    let (bare_ns, adapter_ns) = decode_only();
    println!(
        "decode only (no network): serde_json Value + 4 gets {bare_ns:.0} ns/msg, \
         adapters::mqtt::decode_json (4 pointers) {adapter_ns:.0} ns/msg ({:.0} %)",
        100.0 * adapter_ns / bare_ns
    );
    let mut run = 0;
    for (broker, addr) in brokers {
        let mut figures: Vec<[Figures; 3]> = Vec::new();
        for round in 0..rounds {
            let mut row = [Figures::default(); 3];
            for (k, v) in variants.iter().enumerate() {
                run += 1;
                let f = measure(&rt, addr, *v, run, secs);
                println!(
                    "  {broker:<19} round {} {:<38} {:>8.0} msg/s {:>8.0} samples/s  subscriber CPU {:>5.1} %  {:>8.0} msg per CPU-s",
                    round + 1,
                    v.name(),
                    f.msgs,
                    f.samples,
                    100.0 * f.cpu,
                    f.per_cpu_second()
                );
                row[k] = f;
            }
            figures.push(row);
        }
        // Ratios within a round (the variants ran one after the other, under
        // the same machine load), then the median over the rounds: robust to
        // load from other processes drifting between rounds.
        let ratio = |num: usize, den: usize, f: fn(&Figures) -> f64| {
            median(figures.iter().map(|r| f(&r[num]) / f(&r[den])).collect())
        };
        let msgs = |f: &Figures| f.msgs;
        let per_cpu = |f: &Figures| f.per_cpu_second();
        println!("{broker}: median of {rounds} round(s)");
        for (k, v) in variants.iter().enumerate() {
            println!(
                "  {:<38} {:>8.0} msg/s {:>8.0} samples/s  {:>8.0} msg per CPU-s",
                v.name(),
                median(figures.iter().map(|r| r[k].msgs).collect()),
                median(figures.iter().map(|r| r[k].samples).collect()),
                median(figures.iter().map(|r| r[k].per_cpu_second()).collect()),
            );
        }
        println!(
            "  delivered rate, MqttSource / bare count-only: {:.1} %   MqttSource / bare + JSON: {:.1} %",
            100.0 * ratio(1, 0, msgs),
            100.0 * ratio(1, 2, msgs)
        );
        println!(
            "  msg per CPU-s,  MqttSource / bare count-only: {:.1} %   MqttSource / bare + JSON: {:.1} %",
            100.0 * ratio(1, 0, per_cpu),
            100.0 * ratio(1, 2, per_cpu)
        );
    }
}
