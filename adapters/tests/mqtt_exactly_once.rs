//! Exactly once across reconnects: a publisher sends numbered QoS 1
//! messages and waits for each chunk's PUBACKs; after every chunk the
//! subscriber, [`MqttSource`] with `clean_session = false`, loses its
//! connection, alternately because Mosquitto (persistence on) is stopped
//! with SIGTERM, which saves the sessions and their in-flight messages, and
//! started again on the same port, and because another connection takes its
//! session over. It reconnects to its session each time; every number must
//! be applied once.
//!
//! `TWINRT_EO_MESSAGES` (10,000 unless set) and `TWINRT_EO_EVERY` (1,000)
//! set the message count and the chunk size; `TWINRT_EO_MODE=restart` or
//! `takeover` uses only one way to disconnect.

#[path = "fixtures/mosquitto_harness.rs"]
mod harness;

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use adapters::mqtt::{MqttConfig, MqttMetrics, MqttSource, MqttStatus};
use adapters::{PointSpec, SampleSource};
use harness::{Broker, ChannelSink, free_port};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::{mpsc, watch};
use tokio::time::timeout;
use twins::{Clock, Sample, TwinPath, Value, ValueType};

const WAIT: Duration = Duration::from_secs(30);
const TOPIC: &str = "eo/line1/seq";

/// Mosquitto with persistence, killed on drop.
fn start_broker(dir: &Path, port: u16) -> Broker {
    // Started as root, Mosquitto drops to the `mosquitto` user, which
    // must be able to write its database here.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    Broker::start_with(
        dir,
        port,
        &format!(
            "persistence true\npersistence_location {}/\nmax_queued_messages 1000000\n",
            dir.display()
        ),
    )
}

/// Takes the session of `client_id` over with a bare MQTT 3.1.1 CONNECT
/// (clean session off), then drops the connection without reading: the
/// broker disconnects the session's client, keeps what it had in flight
/// unacknowledged, and redelivers it (DUP set) when the client is back.
fn kick(port: u16, client_id: &str) {
    use std::io::{Read, Write};
    let id = client_id.as_bytes();
    let mut packet = vec![0x10, (12 + id.len()) as u8];
    packet.extend([0, 4, b'M', b'Q', b'T', b'T', 4, 0x00, 0, 30]);
    packet.extend((id.len() as u16).to_be_bytes());
    packet.extend(id);
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to kick");
    s.write_all(&packet).unwrap();
    let mut connack = [0u8; 4];
    s.read_exact(&mut connack).expect("CONNACK");
    assert_eq!(connack[..2], [0x20, 2], "CONNACK");
    assert_eq!(connack[3], 0, "connection accepted");
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

/// Counts each number a batch applies.
fn apply(applied: &mut BTreeMap<u64, u32>, batch: Vec<Sample>) {
    for s in batch {
        let Value::F64(v) = s.value else {
            panic!("unexpected value {:?}", s.value)
        };
        *applied.entry(v as u64).or_default() += 1;
    }
}

fn drain(rx: &mut mpsc::UnboundedReceiver<Vec<Sample>>, applied: &mut BTreeMap<u64, u32>) {
    while let Ok(batch) = rx.try_recv() {
        apply(applied, batch);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_is_applied_once_across_broker_restarts() {
    let n = env_u64("TWINRT_EO_MESSAGES", 10_000);
    let every = env_u64("TWINRT_EO_EVERY", 1_000).max(1);
    let mode = std::env::var("TWINRT_EO_MODE").unwrap_or_default();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut broker = start_broker(dir.path(), port);

    let config: MqttConfig = toml::from_str(&format!(
        r#"
        host = "127.0.0.1"
        port = {port}
        client_id = "twinrt-eo-{port}"
        keep_alive = "5s"
        clean_session = false

        [[subscriptions]]
        topic = "eo/{{line}}/seq"
        qos = 1
        payload = {{ format = "number" }}
        "#
    ))
    .unwrap();
    let mut source = MqttSource::new("mqtt", config.validate().unwrap(), Clock::system());
    source
        .bind(vec![PointSpec {
            twin: TwinPath::parse("plant/line1").unwrap(),
            prop: "seq".to_owned(),
            class: "Line".to_owned(),
            sim: None,
            address: format!("{TOPIC}#value"),
            ty: ValueType::F64,
            unit: None,
            range: None,
            period: None,
            states: Vec::new(),
        }])
        .unwrap();
    let metrics = source.metrics();
    let mut status = source.status();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(Box::new(source).run(Arc::new(ChannelSink(tx)), stop_rx));
    let mut sessions = 1;
    timeout(WAIT, status.wait_for(|s: &MqttStatus| s.subscribed >= 1))
        .await
        .expect("not subscribed within 30 s")
        .unwrap();

    // A witness: a plain rumqttc subscriber with its own persistent
    // session, to tell the broker's losses from the source's.
    let witnessed = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let mut wopts = MqttOptions::new(format!("witness-{port}"), "127.0.0.1", port);
    wopts.set_clean_session(false);
    wopts.set_keep_alive(Duration::from_secs(5));
    let (wclient, mut wloop) = AsyncClient::new(wopts, 16);
    wclient.subscribe(TOPIC, QoS::AtLeastOnce).await.unwrap();
    let (suback_tx, suback_rx) = tokio::sync::oneshot::channel();
    let witness = {
        let witnessed = Arc::clone(&witnessed);
        tokio::spawn(async move {
            let mut suback_tx = Some(suback_tx);
            loop {
                match wloop.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(tx) = suback_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if let Some(v) = std::str::from_utf8(&p.payload)
                            .ok()
                            .and_then(|t| t.parse::<u64>().ok())
                        {
                            witnessed.lock().unwrap().insert(v);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        })
    };
    timeout(WAIT, suback_rx).await.unwrap().unwrap();

    // The publisher: rumqttc, QoS 1, its own persistent session; its event
    // loop reconnects after each restart and reports every PUBACK.
    let mut opts = MqttOptions::new(format!("eo-pub-{port}"), "127.0.0.1", port);
    opts.set_clean_session(false);
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(opts, 256);
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel();
    let publisher = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    if ack_tx.send(()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    });

    let started = Instant::now();
    let mut applied: BTreeMap<u64, u32> = BTreeMap::new();
    let mut seq = 0;
    while seq < n {
        let end = (seq + every).min(n);
        for i in seq..end {
            client
                .publish(TOPIC, QoS::AtLeastOnce, false, i.to_string())
                .await
                .expect("queue publish");
        }
        for _ in seq..end {
            timeout(WAIT, ack_rx.recv())
                .await
                .expect("PUBACK within 30 s")
                .expect("publisher stopped");
        }
        seq = end;
        drain(&mut rx, &mut applied);
        if seq < n {
            // Alternately: a broker restart, a session takeover.
            let restart = match mode.as_str() {
                "restart" => true,
                "takeover" => false,
                _ => (seq / every) % 2 == 1,
            };
            if restart {
                // SIGTERM: Mosquitto saves its database on the way out.
                broker = broker.terminate_and_restart();
            } else {
                kick(port, &format!("twinrt-eo-{port}"));
            }
            sessions += 1;
            timeout(WAIT, status.wait_for(|s| s.subscribed >= sessions))
                .await
                .unwrap_or_else(|_| panic!("not resubscribed ({sessions}) within 30 s"))
                .unwrap();
        }
    }

    // A last marker: the broker delivers a session's messages in order, so
    // once it arrives every redelivery has too.
    client
        .publish(TOPIC, QoS::AtLeastOnce, false, n.to_string())
        .await
        .unwrap();
    loop {
        drain(&mut rx, &mut applied);
        if applied.contains_key(&n) {
            break;
        }
        let batch = timeout(WAIT, rx.recv()).await.unwrap_or_else(|_| {
            panic!(
                "{} of {n} numbers within 30 s after the last chunk",
                applied.len()
            )
        });
        apply(&mut applied, batch.expect("source stopped"));
    }
    let elapsed = started.elapsed();
    let missing: Vec<u64> = (0..=n).filter(|i| !applied.contains_key(i)).collect();
    let twice: Vec<(u64, u32)> = applied
        .iter()
        .filter(|(_, c)| **c > 1)
        .map(|(k, c)| (*k, *c))
        .collect();
    let get = |c: &std::sync::atomic::AtomicU64| MqttMetrics::get(c);
    eprintln!(
        "{n} messages, reconnected every {every} (broker restart or session takeover): \
         {} reconnects, {} duplicates dropped, \
         {} missing, {} applied more than once, {} messages, {elapsed:?}",
        get(&metrics.reconnects),
        get(&metrics.rejected_duplicate),
        missing.len(),
        twice.len(),
        get(&metrics.messages),
    );
    // The witness may still be catching up: give it the time the source had.
    let witness_missing = (0..=n)
        .filter(|i| !witnessed.lock().unwrap().contains(i))
        .count();
    witness.abort();
    eprintln!("a plain rumqttc subscriber, beside it, missed {witness_missing}");
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert!(twice.is_empty(), "applied more than once: {twice:?}");
    assert!(get(&metrics.reconnects) >= sessions - 1);

    publisher.abort();
    stop_tx.send(true).unwrap();
    timeout(WAIT, task)
        .await
        .expect("source did not stop within 30 s")
        .unwrap()
        .unwrap();
    // Counted once the source stopped: it counts after delivering.
    assert_eq!(get(&metrics.samples), n + 1);
    drop(broker);
}
