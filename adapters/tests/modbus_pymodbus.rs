//! The Modbus poller against a real pymodbus server
//! (`tests/fixtures/modbus_server.py`, whose register layout this mirrors):
//! every type in every word order, coils, discrete inputs, an exception, a
//! value that does not decode, then the server dying and coming back;
//! setpoint writes and the counters; one source over two servers.

#[path = "fixtures/modbus_harness.rs"]
mod harness;

use std::sync::Arc;
use std::time::Duration;

use adapters::modbus::{EndpointConfig, ModbusSource, PollGroup};
use adapters::{PointSpec, SampleSource, StatKind, WriteError};
use harness::{ChannelSink, require_pymodbus, start_server, wait_for};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use twins::{Clock, PointId, Quality, Reason, Sample, Value};

const INTERVAL: Duration = Duration::from_millis(200);
const ORDERS: [&str; 4] = ["ABCD", "CDAB", "BADC", "DCBA"];
const COILS: [bool; 8] = [true, false, true, true, false, false, true, false];
const DISCRETES: [bool; 8] = [false, true, true, false, true, false, false, true];

/// The values of `modbus_server.py`'s TYPES, as the poller decodes them.
fn typed_values() -> Vec<(&'static str, Value)> {
    vec![
        ("u16", Value::I64(51234)),
        ("i16", Value::I64(-12345)),
        ("u32", Value::I64(3_000_000_123)),
        ("i32", Value::I64(-2_000_000_123)),
        ("u64", Value::I64(9_000_000_000_000_000_123)),
        ("i64", Value::I64(-9_000_000_000_000_000_123)),
        ("f32", Value::F64(f64::from(123.456f32))),
        ("f64", Value::F64(-98765.4321)),
    ]
}

fn point(address: String) -> PointSpec {
    harness::point(address, INTERVAL)
}

/// What each point should read while the server is up.
fn expected_points() -> Vec<(String, Value, Quality)> {
    let mut points = Vec::new();
    for (t, (ty, value)) in typed_values().into_iter().enumerate() {
        for (o, order) in ORDERS.iter().enumerate() {
            let register = (t * 4 + o) * 4;
            points.push((
                format!("holding:{register}:{ty}:{order}"),
                value.clone(),
                Quality::Good,
            ));
        }
    }
    points.push(("input:0:i16".into(), Value::I64(-1234), Quality::Good));
    points.push((
        "input:1:u16;scale=0.5;offset=1".into(),
        Value::F64(2161.5),
        Quality::Good,
    ));
    for (i, on) in COILS.iter().enumerate() {
        points.push((format!("coil:{i}"), Value::Bool(*on), Quality::Good));
    }
    for (i, on) in DISCRETES.iter().enumerate() {
        points.push((format!("discrete:{i}"), Value::Bool(*on), Quality::Good));
    }
    points.push((
        "holding:200:u64".into(),
        Value::Null,
        Quality::Bad(Reason::CalcError),
    ));
    points.push((
        "holding:9000".into(),
        Value::Null,
        Quality::Bad(Reason::OutOfRange),
    ));
    points
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poller_reads_every_type_survives_server_restart() {
    require_pymodbus();
    let (server, port) = start_server(0).await;
    let endpoint = EndpointConfig {
        name: "plc".into(),
        host: "127.0.0.1".into(),
        port,
        unit_id: 1,
        timeout: Duration::from_millis(500),
        poll_groups: vec![PollGroup {
            name: "fast".into(),
            interval: INTERVAL,
        }],
        max_block_registers: 125,
        // Merges the typed points (4 registers apart) into two reads.
        max_gap: 3,
    };
    let expected = expected_points();
    let mut source = ModbusSource::new("modbus", endpoint, Clock::system());
    source
        .bind(expected.iter().map(|(a, _, _)| point(a.clone())).collect())
        .expect("every fixture address binds");
    let metrics = source.metrics();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(Box::new(source).run(Arc::new(ChannelSink(tx)), shutdown));

    let as_expected = |i: usize, s: &Sample| s.value == expected[i].1 && s.quality == expected[i].2;
    let n = expected.len();
    let latest = wait_for(
        &mut rx,
        n,
        Duration::from_secs(10),
        "every point as expected",
        as_expected,
    )
    .await;
    for (i, (address, value, quality)) in expected.iter().enumerate() {
        assert_eq!(
            (&latest[&i].value, &latest[&i].quality),
            (value, quality),
            "point `{address}`"
        );
    }

    // The server dies: every point goes Bad(CommFailure) within two poll periods.
    let mut server = server;
    server.kill().await.expect("killing the fixture server");
    let killed = Instant::now();
    let comm_failure = |_: usize, s: &Sample| s.quality == Quality::Bad(Reason::CommFailure);
    // Drop what was polled before the kill.
    while rx.try_recv().is_ok() {}
    wait_for(
        &mut rx,
        n,
        2 * INTERVAL,
        "every point Bad(CommFailure)",
        comm_failure,
    )
    .await;
    let failed_after = killed.elapsed();

    // The server comes back on the same port: values come back Good, same source.
    let (_server, again) = start_server(port).await;
    assert_eq!(again, port);
    wait_for(
        &mut rx,
        n,
        Duration::from_secs(10),
        "every point as expected again",
        as_expected,
    )
    .await;

    let m = metrics.snapshot();
    assert!(m.reconnects >= 1, "expected a reconnect, metrics {m:?}");
    assert!(m.exceptions >= 1 && m.decode_errors >= 1, "metrics {m:?}");
    assert!(m.timeouts + m.io_errors >= 1, "metrics {m:?}");
    eprintln!("all points Bad(CommFailure) {failed_after:?} after the kill; metrics {m:?}");

    stop.send(true).expect("the source is running");
    timeout(Duration::from_secs(5), running)
        .await
        .expect("the source stops on shutdown")
        .expect("the source task does not panic")
        .expect("the source stops cleanly");
}

/// Waits until point `index` reads `value` (floats within 1e-9), Good.
async fn wait_value(rx: &mut mpsc::UnboundedReceiver<Vec<Sample>>, index: usize, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let batch = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("point {index} reads {value} within 5 s"))
            .expect("the source stopped delivering");
        if batch.iter().any(|s| {
            s.point.0 as usize == index
                && s.quality == Quality::Good
                && s.value.as_f64().is_some_and(|v| (v - value).abs() < 1e-9)
        }) {
            return;
        }
    }
}

/// Setpoints reach the device and come back through polling; the
/// allow-list and value checks refuse before anything is sent; every
/// counter counts exactly what happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_come_back_through_polling_and_are_counted() {
    require_pymodbus();
    let (server, port) = start_server(0).await;
    let addresses = [
        "holding:300:f32:CDAB;scale=0.1;writable",
        "holding:302:u16",
        "coil:1;writable",
        "holding:200:u64",
        "holding:9000;writable",
    ];
    // Reads per poll: holding 200 (does not decode), holding 300..303,
    // holding 9000 (exception), coil 1.
    const READS: u64 = 4;
    let mut source = ModbusSource::new(
        "modbus",
        harness::endpoint("plc", port, INTERVAL),
        Clock::system(),
    );
    source
        .bind(addresses.iter().map(|a| point(a.to_string())).collect())
        .expect("every address binds");
    let writer = source.writer().expect("a modbus source writes");
    let stats = source.stats().expect("a modbus source counts");
    let metrics = source.metrics();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(Box::new(source).run(Arc::new(ChannelSink(tx)), shutdown));

    wait_value(&mut rx, 0, 0.0).await;
    writer
        .write(PointId(0), Value::F64(12.5))
        .await
        .expect("the f32 setpoint is written");
    wait_value(&mut rx, 0, 12.5).await;
    writer
        .write(PointId(2), Value::Bool(true))
        .await
        .expect("the coil is written");
    wait_value(&mut rx, 2, 1.0).await;

    // Refused before anything is sent.
    assert_eq!(
        writer.write(PointId(1), Value::I64(7)).await,
        Err(WriteError::NotWritable(PointId(1)))
    );
    for bad in [Value::F64(f64::NAN), Value::F64(1e40), Value::Bool(true)] {
        let refused = writer.write(PointId(0), bad.clone()).await;
        assert!(
            matches!(
                refused,
                Err(WriteError::Invalid {
                    point: PointId(0),
                    ..
                })
            ),
            "{bad:?}: {refused:?}"
        );
    }
    assert_eq!(metrics.snapshot().writes, 2, "refused writes are not sent");
    // The device refuses an address it does not have.
    match writer.write(PointId(4), Value::I64(1)).await {
        Err(WriteError::Failed { point, message }) => {
            assert_eq!(point, PointId(4));
            assert!(
                message.contains("endpoint `plc` answered exception"),
                "{message}"
            );
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    // The non-writable point still reads 0 and the setpoint kept its value.
    let latest = wait_for(&mut rx, 5, Duration::from_secs(5), "every point", |_, _| {
        true
    })
    .await;
    assert_eq!(latest[&1].value, Value::I64(0));
    assert!((latest[&0].value.as_f64().unwrap() - 12.5).abs() < 1e-9);

    stop.send(true).expect("the source is running");
    timeout(Duration::from_secs(5), running)
        .await
        .expect("the source stops on shutdown")
        .expect("no panic")
        .expect("clean stop");
    assert_eq!(
        writer.write(PointId(0), Value::F64(1.0)).await,
        Err(WriteError::Stopped)
    );
    drop(server);

    // Polls are whole (every read of a poll, once), so the counts follow
    // from the number of polls.
    let m = metrics.snapshot();
    eprintln!("metrics {m:?}");
    assert_eq!(m.polls % READS, 0, "whole polls only: {m:?}");
    let cycles = m.polls / READS;
    assert!(cycles >= 3, "{m:?}");
    assert_eq!(m.decode_errors, cycles, "holding 200 every poll: {m:?}");
    assert_eq!(
        m.exceptions,
        cycles + 1,
        "holding 9000 every poll and the write: {m:?}"
    );
    assert_eq!(
        m.latency_count,
        3 * cycles,
        "the reads that succeeded: {m:?}"
    );
    assert_eq!((m.writes, m.write_errors), (3, 1), "{m:?}");
    assert_eq!(
        (
            m.connects,
            m.reconnects,
            m.connect_failures,
            m.timeouts,
            m.io_errors
        ),
        (1, 0, 0, 0, 0),
        "{m:?}"
    );
    assert_eq!(m.connected, 0, "disconnected once stopped: {m:?}");
    assert!(
        m.latency_max_us > 0 && m.latency_sum_us >= m.latency_max_us,
        "{m:?}"
    );

    // The same through the SourceStats trait, labelled.
    let all = stats.stats();
    let get = |name: &str| {
        let s = all
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("stat {name}"));
        assert_eq!(
            s.labels,
            [
                ("source", "modbus".to_owned()),
                ("endpoint", "plc".to_owned())
            ]
        );
        (s.kind, s.value)
    };
    assert_eq!(get("modbus_polls"), (StatKind::Counter, m.polls as f64));
    assert_eq!(get("modbus_writes"), (StatKind::Counter, 3.0));
    assert_eq!(get("modbus_write_errors"), (StatKind::Counter, 1.0));
    assert_eq!(get("modbus_connects"), (StatKind::Counter, 1.0));
    assert_eq!(get("modbus_connected"), (StatKind::Gauge, 0.0));
    assert_eq!(
        get("modbus_poll_latency_seconds_count"),
        (StatKind::Counter, (3 * cycles) as f64)
    );
}

/// One source, two servers: each point reads from the endpoint it names,
/// and one server dying fails only its own points.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_source_polls_several_endpoints() {
    require_pymodbus();
    let ((a, port_a), (_b, port_b)) = tokio::join!(start_server(0), start_server(0));
    let mut source = ModbusSource::with_endpoints(
        "modbus",
        vec![
            harness::endpoint("line_a", port_a, INTERVAL),
            harness::endpoint("line_b", port_b, INTERVAL),
        ],
        Clock::system(),
    );
    source
        .bind(vec![
            point("input:0:i16;endpoint=line_a".into()),
            point("input:0:i16;endpoint=line_b".into()),
            point("coil:0;endpoint=line_b".into()),
        ])
        .expect("every address binds");
    let metrics = source.metrics();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(Box::new(source).run(Arc::new(ChannelSink(tx)), shutdown));
    let expected = [Value::I64(-1234), Value::I64(-1234), Value::Bool(true)];
    wait_for(
        &mut rx,
        3,
        Duration::from_secs(10),
        "all three Good",
        |i, s| s.quality == Quality::Good && s.value == expected[i],
    )
    .await;
    harness::stop_server(a).await;
    while rx.try_recv().is_ok() {}
    wait_for(
        &mut rx,
        3,
        Duration::from_secs(5),
        "only line_a failed",
        |i, s| {
            if i == 0 {
                s.quality == Quality::Bad(Reason::CommFailure)
            } else {
                s.quality == Quality::Good
            }
        },
    )
    .await;
    let a = metrics.endpoint("line_a").expect("line_a counted");
    let b = metrics.endpoint("line_b").expect("line_b counted");
    assert_eq!((a.connected, b.connected), (0, 1), "{a:?} {b:?}");
    assert_eq!(b.timeouts + b.io_errors + b.connect_failures, 0, "{b:?}");
    stop.send(true).expect("the source is running");
    timeout(Duration::from_secs(5), running)
        .await
        .expect("the source stops on shutdown")
        .expect("no panic")
        .expect("clean stop");
}

/// A point with a deadband holds back readings that moved less than it
/// (here: a setpoint written within the deadband) and passes one that moved
/// more; a constant point with a deadband is still re-delivered at its
/// expected period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadband_holds_back_small_changes_but_keeps_a_heartbeat() {
    require_pymodbus();
    let (_server, port) = start_server(0).await;
    let interval = Duration::from_millis(100);
    let mut constant = harness::point("input:0:i16;deadband=5".into(), Duration::from_secs(1));
    constant.prop = "constant".into();
    let setpoint = harness::point(
        "holding:302:u16;deadband=5;writable".into(),
        Duration::from_secs(60),
    );
    let plain = harness::point("input:0:i16".into(), interval);
    let mut source = ModbusSource::new(
        "modbus",
        harness::endpoint("plc", port, interval),
        Clock::system(),
    );
    source
        .bind(vec![plain, constant, setpoint])
        .expect("every address binds");
    let writer = source.writer().expect("a modbus source writes");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(Box::new(source).run(Arc::new(ChannelSink(tx)), shutdown));

    // Per point, the values delivered, until the plain point has `polls` more.
    async fn collect(
        rx: &mut mpsc::UnboundedReceiver<Vec<Sample>>,
        polls: usize,
    ) -> [Vec<Value>; 3] {
        let mut seen: [Vec<Value>; 3] = Default::default();
        while seen[0].len() < polls {
            let batch = timeout(Duration::from_secs(10), rx.recv())
                .await
                .expect("the source delivers")
                .expect("the source runs");
            for s in batch {
                seen[s.point.0 as usize].push(s.value);
            }
        }
        seen
    }
    let first = collect(&mut rx, 25).await;
    // The constant point: first reading, then once a second (its period):
    // at 0, 1 and 2 s of the 2.4 s the 25 polls take (more if the machine
    // is so loaded that polls slip; without the deadband it would be 25).
    assert!(
        (2..=8).contains(&first[1].len()),
        "constant point delivered {} times in 25 polls: {:?}",
        first[1].len(),
        first[1]
    );
    assert_eq!(first[2], [Value::I64(0)], "the setpoint once, then silent");

    writer
        .write(PointId(2), Value::I64(3))
        .await
        .expect("written");
    let small = collect(&mut rx, 5).await;
    assert!(small[2].is_empty(), "3 is within 5 of 0: {:?}", small[2]);
    writer
        .write(PointId(2), Value::I64(20))
        .await
        .expect("written");
    let mut delivered = Vec::new();
    for _ in 0..50 {
        if delivered.contains(&Value::I64(20)) {
            break;
        }
        delivered.extend(collect(&mut rx, 1).await[2].iter().cloned());
        assert!(
            !delivered.contains(&Value::I64(3)),
            "3 never delivered: {delivered:?}"
        );
    }
    assert_eq!(delivered, [Value::I64(20)], "20 within 50 polls, once");
    stop.send(true).expect("the source is running");
    timeout(Duration::from_secs(5), running)
        .await
        .expect("the source stops on shutdown")
        .expect("no panic")
        .expect("clean stop");
}
