//! The Modbus poller against a real pymodbus server
//! (`tests/fixtures/modbus_server.py`, whose register layout this mirrors):
//! every type in every word order, coils, discrete inputs, an exception, a
//! value that does not decode, then the server dying and coming back.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use adapters::modbus::{EndpointConfig, ModbusSource, PollGroup};
use adapters::{PointSpec, SampleSink, SampleSource, SinkClosed};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use twins::{Clock, Quality, Reason, Sample, Timestamp, TwinPath, Value, ValueType};

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

/// A sink that forwards every batch to the test.
#[derive(Debug)]
struct ChannelSink(mpsc::UnboundedSender<Vec<Sample>>);

impl SampleSink for ChannelSink {
    fn deliver(&self, samples: Vec<Sample>, _arrival: Timestamp) -> Result<(), SinkClosed> {
        self.0.send(samples).map_err(|_| SinkClosed)
    }
}

/// Starts the fixture server on `port` (0: any) and returns it with its port.
async fn start_server(port: u16) -> (Child, u16) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/modbus_server.py"
    );
    let mut child = Command::new("python3")
        .arg(script)
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 should start the pymodbus fixture server");
    let stdout = child.stdout.take().expect("piped stdout");
    let line = timeout(
        Duration::from_secs(20),
        BufReader::new(stdout).lines().next_line(),
    )
    .await
    .expect("the fixture server should print its port within 20 s")
    .expect("reading the fixture server's stdout")
    .expect("the fixture server exited before printing its port");
    let bound = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("expected a port from the fixture server, found `{line}`"));
    (child, bound)
}

fn require_pymodbus() {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import pymodbus"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python3 cannot import pymodbus: run ./scripts/test.sh (which installs it) \
         or `python3 -m pip install 'pymodbus==3.16.1'`"
    );
}

fn point(address: String) -> PointSpec {
    PointSpec {
        twin: TwinPath::parse("site/plc").expect("valid twin path"),
        prop: address.replace([':', ';', '=', '.'], "_"),
        class: "Plc".into(),
        sim: None,
        address,
        ty: ValueType::F64,
        unit: None,
        range: None,
        period: Some(INTERVAL),
        states: Vec::new(),
    }
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

/// Receives batches until `done` holds for the latest sample of every
/// point, or panics after `limit` with `what`.
async fn wait_for(
    rx: &mut mpsc::UnboundedReceiver<Vec<Sample>>,
    points: usize,
    limit: Duration,
    what: &str,
    done: impl Fn(usize, &Sample) -> bool,
) -> HashMap<usize, Sample> {
    let deadline = Instant::now() + limit;
    let mut latest = HashMap::new();
    loop {
        if latest.len() == points && latest.iter().all(|(i, s)| done(*i, s)) {
            return latest;
        }
        let batch = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("{what} within {limit:?}; latest samples: {latest:#?}"))
            .expect("the source stopped delivering");
        for s in batch {
            latest.insert(s.point.0 as usize, s);
        }
    }
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
