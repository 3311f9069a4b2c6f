//! 10,000 generated payloads through a real Mosquitto broker into
//! [`MqttSource`], published at QoS 1 so none is lost: malformed,
//! truncated, random, oversized, deeply nested, wrong types, out of range,
//! NaN-ish strings, valid ones interleaved, on bound, unbound and
//! unsubscribed topics. The generator classifies each payload, so every
//! counter's exact value is known; the source must survive them all and
//! deliver every valid value, in order.
//!
//! `TWINRT_FUZZ_MESSAGES` sets the number of payloads (10,000 unless set),
//! `TWINRT_FUZZ_SEED` the generator's seed.

#[path = "fixtures/mosquitto_harness.rs"]
mod harness;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use adapters::SampleSource;
use adapters::mqtt::{DEFAULT_MAX_PAYLOAD, MqttConfig, MqttMetrics, MqttSource, MqttStatus};
use harness::{Broker, ChannelSink, free_port, point};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;
use twins::{Clock, PointId, Value, ValueType};

const WAIT: Duration = Duration::from_secs(30);

/// A Mosquitto process, killed on drop. It queues without limit, so a
/// subscriber that lags loses no QoS 1 message.
fn start_broker(dir: &Path, port: u16) -> Broker {
    Broker::start_with(
        dir,
        port,
        "persistence false\nmax_queued_messages 1000000\n",
    )
}

/// Marsaglia's xorshift64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bool(&mut self) -> bool {
        self.next() & 1 == 1
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Bound JSON topic: points `a` (f64, range 0–100), `b` (bool), `c` (f64)
/// bound; `d` configured but not bound.
const JSON: &str = "fuzz/d1/json";
/// Bound number topic: `value` (f64, range ±1000).
const NUMBER: &str = "fuzz/d1/num";
/// Subscribed, nothing bound.
const UNBOUND: &str = "fuzz/d2/json";
/// Not subscribed: the broker never delivers it.
const UNSUBSCRIBED: &str = "elsewhere/d1/json";

const A: PointId = PointId(0);
const B: PointId = PointId(1);
const C: PointId = PointId(2);
const V: PointId = PointId(3);

/// What the source must count, summed over the generated payloads.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Counts {
    messages: u64,
    samples: u64,
    rejected_decode: u64,
    rejected_type: u64,
    rejected_out_of_range: u64,
    rejected_unbound_topic: u64,
    rejected_unbound_point: u64,
    rejected_unknown_topic: u64,
    rejected_duplicate: u64,
    missing_points: u64,
}

impl Counts {
    fn of(m: &MqttMetrics) -> Counts {
        let g = |c: &AtomicU64| MqttMetrics::get(c);
        Counts {
            messages: g(&m.messages),
            samples: g(&m.samples),
            rejected_decode: g(&m.rejected_decode),
            rejected_type: g(&m.rejected_type),
            rejected_out_of_range: g(&m.rejected_out_of_range),
            rejected_unbound_topic: g(&m.rejected_unbound_topic),
            rejected_unbound_point: g(&m.rejected_unbound_point),
            rejected_unknown_topic: g(&m.rejected_unknown_topic),
            rejected_duplicate: g(&m.rejected_duplicate),
            missing_points: g(&m.missing_points),
        }
    }
}

/// The generated messages, the counts they must produce and the values
/// that must arrive, in order.
struct Plan {
    messages: Vec<(&'static str, Vec<u8>)>,
    counts: Counts,
    expected: Vec<(PointId, Value)>,
    kinds: std::collections::BTreeMap<&'static str, u64>,
}

/// A finite f64 with up to three decimals, printed so that serde_json
/// reads back exactly the same number.
fn decimal(rng: &mut Rng, lo: i64, hi: i64) -> f64 {
    let span = (hi - lo) as u64 * 1000;
    (lo * 1000 + rng.below(span + 1) as i64) as f64 / 1000.0
}

fn generate(n: usize, seed: u64) -> Plan {
    let mut rng = Rng(seed.max(1));
    let mut p = Plan {
        messages: Vec::with_capacity(n),
        counts: Counts::default(),
        expected: Vec::new(),
        kinds: Default::default(),
    };
    for i in 0..n {
        // The last message is valid, so its arrival says all arrived.
        let roll = if i + 1 == n { 0 } else { rng.below(100) };
        let kind = match roll {
            0..=24 => json_valid(&mut rng, &mut p),
            25..=31 => json_out_of_range(&mut rng, &mut p),
            32..=39 => json_wrong_type(&mut rng, &mut p),
            40..=45 => json_malformed(&mut rng, &mut p),
            46..=51 => json_truncated(&mut rng, &mut p),
            52..=56 => random_bytes(&mut rng, &mut p),
            57 => oversized(&mut rng, &mut p),
            58..=61 => deep_nesting(&mut rng, &mut p),
            62..=65 => json_missing(&mut rng, &mut p),
            66..=79 => number(&mut rng, &mut p),
            80..=89 => unbound(&mut rng, &mut p),
            _ => unsubscribed(&mut rng, &mut p),
        };
        *p.kinds.entry(kind).or_default() += 1;
    }
    p
}

/// A valid document with `a`, `b`, `c` and, sometimes, the unbound `d`.
fn valid_doc(rng: &mut Rng, p: &mut Plan) -> String {
    let a = decimal(rng, 0, 100);
    let b = rng.bool();
    let c = decimal(rng, -1_000_000, 1_000_000);
    p.expected
        .extend([(A, Value::F64(a)), (B, Value::Bool(b)), (C, Value::F64(c))]);
    p.counts.samples += 3;
    let d = if rng.bool() {
        p.counts.rejected_unbound_point += 1;
        format!(r#","d":{}"#, rng.below(10))
    } else {
        String::new()
    };
    format!(r#"{{"a":{a},"b":{b},"n":{{"c":{c}}}{d}}}"#)
}

fn json_valid(rng: &mut Rng, p: &mut Plan) -> &'static str {
    p.counts.messages += 1;
    let doc = valid_doc(rng, p);
    p.messages.push((JSON, doc.into_bytes()));
    "json valid"
}

fn json_out_of_range(rng: &mut Rng, p: &mut Plan) -> &'static str {
    p.counts.messages += 1;
    let a = if rng.bool() {
        decimal(rng, 101, 1_000_000)
    } else {
        -decimal(rng, 1, 1_000_000)
    };
    let b = rng.bool();
    p.expected.push((B, Value::Bool(b)));
    p.counts.samples += 1;
    p.counts.rejected_out_of_range += 1;
    // `c` missing.
    p.counts.missing_points += 1;
    p.messages
        .push((JSON, format!(r#"{{"a":{a},"b":{b}}}"#).into_bytes()));
    "json out of range"
}

fn json_wrong_type(rng: &mut Rng, p: &mut Plan) -> &'static str {
    p.counts.messages += 1;
    let a = rng.pick(&[
        r#""12""#,
        r#""NaN""#,
        r#""Infinity""#,
        r#""-inf""#,
        r#"{"x":1}"#,
        "[1,2]",
        "[]",
        "true",
        "false",
    ]);
    // Booleans convert to 0 and 1 for an f64 point: delivered.
    match a {
        "true" | "false" => {
            p.expected
                .push((A, Value::F64(if a == "true" { 1.0 } else { 0.0 })));
            p.counts.samples += 1;
        }
        _ => p.counts.rejected_type += 1,
    }
    let b = rng.pick(&["7", "-1", "0.5", r#""true""#, "0", "1", "true"]);
    match b {
        "0" => p.expected.push((B, Value::Bool(false))),
        "1" | "true" => p.expected.push((B, Value::Bool(true))),
        _ => p.counts.rejected_type += 1,
    }
    if matches!(b, "0" | "1" | "true") {
        p.counts.samples += 1;
    }
    let c = decimal(rng, -5, 5);
    p.expected.push((C, Value::F64(c)));
    p.counts.samples += 1;
    p.messages.push((
        JSON,
        format!(r#"{{"a":{a},"b":{b},"n":{{"c":{c}}}}}"#).into_bytes(),
    ));
    "json wrong type"
}

fn json_malformed(rng: &mut Rng, p: &mut Plan) -> &'static str {
    p.counts.messages += 1;
    p.counts.rejected_decode += 1;
    let doc = rng.pick(&[
        r#"{"a": 1,"#,
        r#"{"a": NaN, "b": true}"#,
        r#"{"a": Infinity}"#,
        r#"{"a": 1 "b": 2}"#,
        r#"{a: 1}"#,
        r#"{"a": 01}"#,
        r#"{"a": 1}}"#,
        "[1, 2,]",
        "",
        "nul",
        r#"{"a": "\x"}"#,
        r#"{"a": 1e999}"#,
    ]);
    p.messages.push((JSON, doc.as_bytes().to_vec()));
    "json malformed"
}

fn json_truncated(rng: &mut Rng, p: &mut Plan) -> &'static str {
    p.counts.messages += 1;
    p.counts.rejected_decode += 1;
    // A scratch plan: the full document's values must not be expected.
    let mut scratch = Plan {
        messages: Vec::new(),
        counts: Counts::default(),
        expected: Vec::new(),
        kinds: Default::default(),
    };
    let doc = valid_doc(rng, &mut scratch);
    // Every proper prefix of an object lacks its closing brace.
    let cut = rng.below(doc.len() as u64) as usize;
    p.messages.push((JSON, doc.as_bytes()[..cut].to_vec()));
    "json truncated"
}

fn random_bytes(rng: &mut Rng, p: &mut Plan) -> &'static str {
    let topic = if rng.bool() { JSON } else { NUMBER };
    p.counts.messages += 1;
    p.counts.rejected_decode += 1;
    let len = 1 + rng.below(200) as usize;
    // A control byte first: neither JSON nor a number, whatever follows.
    let mut bytes = vec![rng.below(9) as u8];
    bytes.extend((1..len).map(|_| rng.next() as u8));
    p.messages.push((topic, bytes));
    "random bytes"
}

fn oversized(rng: &mut Rng, p: &mut Plan) -> &'static str {
    let topic = if rng.bool() { JSON } else { NUMBER };
    p.counts.messages += 1;
    p.counts.rejected_decode += 1;
    let mut scratch = Plan {
        messages: Vec::new(),
        counts: Counts::default(),
        expected: Vec::new(),
        kinds: Default::default(),
    };
    let mut doc = if topic == JSON {
        valid_doc(rng, &mut scratch).into_bytes()
    } else {
        b"42".to_vec()
    };
    // Valid but for its size: padded with whitespace past the limit.
    let len = DEFAULT_MAX_PAYLOAD + 1 + rng.below(64 * 1024) as usize;
    doc.resize(len, b' ');
    p.messages.push((topic, doc));
    "oversized"
}

fn deep_nesting(rng: &mut Rng, p: &mut Plan) -> &'static str {
    p.counts.messages += 1;
    if rng.bool() {
        // Past serde_json's recursion limit of 128: not decoded.
        let depth = 129 + rng.below(5000) as usize;
        p.counts.rejected_decode += 1;
        let doc = format!(r#"{{"a":{}1{}}}"#, "[".repeat(depth), "]".repeat(depth));
        p.messages.push((JSON, doc.into_bytes()));
    } else {
        // Decoded: `a` is an array, the wrong type; `b` and `c` deliver.
        let depth = 1 + rng.below(100) as usize;
        p.counts.rejected_type += 1;
        let b = rng.bool();
        let c = decimal(rng, 0, 1);
        p.expected.extend([(B, Value::Bool(b)), (C, Value::F64(c))]);
        p.counts.samples += 2;
        let doc = format!(
            r#"{{"a":{}1{},"b":{b},"n":{{"c":{c}}}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        p.messages.push((JSON, doc.into_bytes()));
    }
    "deep nesting"
}

fn json_missing(rng: &mut Rng, p: &mut Plan) -> &'static str {
    p.counts.messages += 1;
    let (doc, missing) = match rng.below(4) {
        0 => ("{}".to_owned(), 3),
        1 => (r#"{"a":null,"b":null,"n":null}"#.to_owned(), 3),
        2 => ("7".to_owned(), 3),
        _ => {
            let c = decimal(rng, 0, 9);
            p.expected.push((C, Value::F64(c)));
            p.counts.samples += 1;
            (format!(r#"{{"n":{{"c":{c}}},"a":null}}"#), 2)
        }
    };
    p.counts.missing_points += missing;
    p.messages.push((JSON, doc.into_bytes()));
    "json missing"
}

fn number(rng: &mut Rng, p: &mut Plan) -> &'static str {
    p.counts.messages += 1;
    let text = match rng.below(8) {
        0..=2 => {
            let v = decimal(rng, -1000, 1000);
            p.expected.push((V, Value::F64(v)));
            p.counts.samples += 1;
            format!(" {v}\n")
        }
        3 => {
            let v = decimal(rng, 1001, 1_000_000);
            p.counts.rejected_out_of_range += 1;
            if rng.bool() {
                format!("{v}")
            } else {
                format!("-{v}")
            }
        }
        4 => {
            let b = rng.bool();
            p.expected.push((V, Value::F64(if b { 1.0 } else { 0.0 })));
            p.counts.samples += 1;
            b.to_string()
        }
        5 => {
            p.counts.rejected_decode += 1;
            rng.pick(&["NaN", "inf", "-Infinity", "nan", "1e999"])
                .to_owned()
        }
        _ => {
            p.counts.rejected_decode += 1;
            rng.pick(&["", "abc", "1,5", "0x10", "--1", "{\"v\":1}", "1 2", "TRUE"])
                .to_owned()
        }
    };
    p.messages.push((NUMBER, text.into_bytes()));
    "number"
}

fn unbound(rng: &mut Rng, p: &mut Plan) -> &'static str {
    p.counts.messages += 1;
    p.counts.rejected_unbound_topic += 1;
    let mut scratch = Plan {
        messages: Vec::new(),
        counts: Counts::default(),
        expected: Vec::new(),
        kinds: Default::default(),
    };
    let doc = if rng.bool() {
        valid_doc(rng, &mut scratch).into_bytes()
    } else {
        b"{broken".to_vec()
    };
    p.messages.push((UNBOUND, doc));
    "unbound topic"
}

fn unsubscribed(rng: &mut Rng, p: &mut Plan) -> &'static str {
    let doc = format!(r#"{{"a":{}}}"#, rng.below(100));
    p.messages.push((UNSUBSCRIBED, doc.into_bytes()));
    "unsubscribed topic"
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v}: expected a number"))
        })
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_hostile_payloads_are_counted_exactly() {
    let n = env_u64("TWINRT_FUZZ_MESSAGES", 10_000) as usize;
    let seed = env_u64("TWINRT_FUZZ_SEED", 0x5eed_f00d);
    let plan = generate(n, seed);
    eprintln!("{n} payloads, seed {seed:#x}: {:?}", plan.kinds);

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = start_broker(dir.path(), port);
    let config: MqttConfig = toml::from_str(&format!(
        r#"
        host = "127.0.0.1"
        port = {port}
        client_id = "twinrt-fuzz-{port}"
        keep_alive = "5s"

        [[subscriptions]]
        topic = "fuzz/{{device}}/json"
        qos = 1
        payload = {{ format = "json", points = {{ a = "/a", b = "/b", c = "/n/c", d = "/d" }} }}

        [[subscriptions]]
        topic = "fuzz/{{device}}/num"
        qos = 1
        payload = {{ format = "number" }}
        "#
    ))
    .unwrap();
    let mut source = MqttSource::new("mqtt", config.validate().unwrap(), Clock::system());
    source
        .bind(vec![
            point("fuzz/d1/json#a", ValueType::F64, Some((0.0, 100.0))),
            point("fuzz/d1/json#b", ValueType::Bool, None),
            point("fuzz/d1/json#c", ValueType::F64, None),
            point("fuzz/d1/num#value", ValueType::F64, Some((-1000.0, 1000.0))),
        ])
        .unwrap();
    let metrics = source.metrics();
    let mut status = source.status();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(Box::new(source).run(Arc::new(ChannelSink(tx)), stop_rx));
    timeout(WAIT, status.wait_for(|s: &MqttStatus| s.subscribed >= 1))
        .await
        .expect("not subscribed within 30 s")
        .unwrap();

    // The publisher: rumqttc at QoS 1, counting the broker's PUBACKs.
    let mut opts = MqttOptions::new(format!("fuzz-pub-{port}"), "127.0.0.1", port);
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let acks = tokio::spawn(async move {
        let mut acks = 0usize;
        while acks < n {
            if let Event::Incoming(Packet::PubAck(_)) =
                eventloop.poll().await.expect("publisher connection")
            {
                acks += 1;
            }
        }
        acks
    });
    let started = Instant::now();
    for (topic, payload) in &plan.messages {
        client
            .publish(*topic, QoS::AtLeastOnce, false, payload.clone())
            .await
            .expect("queue publish");
    }
    assert_eq!(
        timeout(WAIT, acks)
            .await
            .expect("PUBACKs within 30 s")
            .unwrap(),
        n
    );

    // Every valid value arrives, in order; the last message is valid.
    let mut got: Vec<(PointId, Value)> = Vec::with_capacity(plan.expected.len());
    while got.len() < plan.expected.len() {
        let batch = timeout(WAIT, rx.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} of {} values within 30 s; counts {:?}",
                    got.len(),
                    plan.expected.len(),
                    Counts::of(&metrics)
                )
            })
            .expect("source stopped");
        got.extend(batch.into_iter().map(|s| (s.point, s.value)));
    }
    eprintln!("published and received in {:?}", started.elapsed());
    if let Some(i) = (0..got.len()).find(|&i| got.get(i) != plan.expected.get(i)) {
        panic!(
            "value {i} of {}: got {:?}, expected {:?}",
            plan.expected.len(),
            got.get(i),
            plan.expected.get(i)
        );
    }
    // Nothing after the last valid value; the source survived it all.
    assert!(rx.try_recv().is_err());
    assert!(!task.is_finished(), "the source is still running");
    assert!(status.borrow().connected);

    stop_tx.send(true).unwrap();
    timeout(WAIT, task)
        .await
        .expect("source did not stop within 30 s")
        .unwrap()
        .unwrap();
    // Read once stopped: the source counts a batch after delivering it.
    assert_eq!(Counts::of(&metrics), plan.counts);
    assert_eq!(MqttMetrics::get(&metrics.reconnects), 0);
    assert_eq!(MqttMetrics::get(&metrics.connection_errors), 0);
}
