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
//! (default 2) and the table shows the mean. Needs `mosquitto`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
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

fn binary(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"].map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("`{name}` not found on PATH: install the `mosquitto` package");
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

// The directory holds the config file while Mosquitto runs.
struct Mosquitto(Child, #[allow(dead_code)] tempfile::TempDir);

impl Mosquitto {
    fn start(port: u16) -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 log_dest stderr\nlog_type error\n"
            ),
        )
        .unwrap();
        let child = Command::new(binary("mosquitto"))
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .spawn()
            .expect("start mosquitto");
        let mosquitto = Mosquitto(child, dir);
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return mosquitto;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("mosquitto did not listen on {port}");
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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

/// Runs one subscriber variant; returns (messages/s, samples/s).
async fn measure(addr: SocketAddr, variant: Variant, run: u32, secs: u64) -> (f64, f64) {
    let counts = Arc::new(Counts::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let client_id = format!("bench-sub-{run}");
    let sub = match variant {
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
            let task =
                tokio::spawn(Box::new(source).run(Arc::new(CountingSink(counts.clone())), stop_rx));
            status
                .wait_for(|s: &MqttStatus| s.subscribed >= 1)
                .await
                .unwrap();
            tokio::spawn(async move {
                let _ = task.await;
            })
        }
        Variant::BareCount | Variant::BareJson => {
            let mut o = MqttOptions::new(client_id, addr.ip().to_string(), addr.port());
            o.set_keep_alive(Duration::from_secs(30));
            let (client, mut eventloop) = AsyncClient::new(o, 16);
            client
                .subscribe("plant/+/telemetry", QoS::AtMostOnce)
                .await
                .unwrap();
            let counts = counts.clone();
            let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
            let mut ready_tx = Some(ready_tx);
            let mut stop_rx = stop_rx;
            let task = tokio::spawn(async move {
                let _client = client;
                loop {
                    let event = tokio::select! {
                        _ = stop_rx.changed() => break,
                        e = eventloop.poll() => e,
                    };
                    match event {
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            if let Some(tx) = ready_tx.take() {
                                let _ = tx.send(());
                            }
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            let n = if variant == Variant::BareJson {
                                match serde_json::from_slice::<serde_json::Value>(&p.payload) {
                                    Ok(v) => POINTS
                                        .iter()
                                        .filter(|k| v.get(**k).and_then(|x| x.as_f64()).is_some())
                                        .count()
                                        as u64,
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
            });
            ready_rx.await.unwrap();
            task
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let pubs: Vec<_> = (0..PUBLISHERS)
        .map(|id| tokio::spawn(publisher(addr, id, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (m0, s0) = counts.snapshot();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let (m1, s1) = counts.snapshot();
    let elapsed = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for p in pubs {
        let _ = p.await;
    }
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), sub).await;
    // Let the broker drain what it still holds for the old subscriber.
    tokio::time::sleep(Duration::from_millis(500)).await;
    ((m1 - m0) as f64 / elapsed, (s1 - s0) as f64 / elapsed)
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
    let rounds = env_u64("MQTT_BENCH_ROUNDS", 2) as u32;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mosquitto_port = free_port();
    let _mosquitto = Mosquitto::start(mosquitto_port);
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
    let mut run = 0;
    for (broker, addr) in brokers {
        let mut sums = [(0.0f64, 0.0f64); 3];
        for round in 0..rounds {
            for (k, v) in variants.iter().enumerate() {
                run += 1;
                let (m, s) = rt.block_on(measure(addr, *v, run, secs));
                println!(
                    "  {broker:<19} round {} {:<38} {m:>10.0} msg/s {s:>10.0} samples/s",
                    round + 1,
                    v.name()
                );
                sums[k].0 += m;
                sums[k].1 += s;
            }
        }
        let mean = |k: usize| (sums[k].0 / rounds as f64, sums[k].1 / rounds as f64);
        let (bare_m, _) = mean(0);
        let (src_m, src_s) = mean(1);
        let (json_m, _) = mean(2);
        println!("{broker}: mean of {rounds} round(s)");
        for (k, v) in variants.iter().enumerate() {
            let (m, s) = mean(k);
            println!("  {:<38} {m:>10.0} msg/s {s:>10.0} samples/s", v.name());
        }
        println!(
            "  MqttSource / bare count-only: {:.1} %   MqttSource / bare + JSON: {:.1} %   ({src_s:.0} samples/s)",
            100.0 * src_m / bare_m,
            100.0 * src_m / json_m
        );
    }
}
