//! Soak run of the Modbus poller against the pymodbus fixture server,
//! killed and restarted on a schedule under one running source.
//!
//! ```text
//! cargo bench -p adapters --bench modbus_soak -- --minutes 10 --restart-every 30 [--down 2]
//! ```
//!
//! Every `--restart-every` seconds the server is killed, kept down
//! `--down` seconds, and restarted on the same port. Per cycle it prints the
//! time until every point was `Bad(CommFailure)` (the goal: within two poll
//! periods), the time from the server listening again until every point was
//! Good, the connection attempts that failed meanwhile and the nominal
//! backoff delay they reached, and the open file descriptors.

#[path = "../tests/fixtures/modbus_harness.rs"]
mod harness;

use std::sync::Arc;
use std::time::Duration;

use adapters::SampleSource;
use adapters::modbus::ModbusSource;
use harness::{ChannelSink, require_pymodbus, restart_cycle, start_server, wait_for};
use tokio::sync::mpsc;
use tokio::time::Instant;
use twins::{Clock, Quality};

const INTERVAL: Duration = Duration::from_millis(200);

struct Args {
    minutes: f64,
    restart_every: f64,
    down: f64,
}

fn args() -> Args {
    let mut a = Args {
        minutes: 10.0,
        restart_every: 30.0,
        down: 2.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| -> f64 {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} expects a number"))
        };
        match flag.as_str() {
            "--minutes" => a.minutes = value("--minutes"),
            "--restart-every" => a.restart_every = value("--restart-every"),
            "--down" => a.down = value("--down"),
            // `cargo bench` passes `--bench`; ignore it and other harness flags.
            _ => {}
        }
    }
    a
}

/// The nominal delay before the attempt that succeeded, after the lost
/// connection and `failures` failed attempts each drew one (100 ms
/// doubling, 30 s cap).
fn nominal_backoff(failures: u64) -> Duration {
    let shift = failures.min(20) as u32;
    Duration::from_millis(100 * (1u64 << shift)).min(Duration::from_secs(30))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn summary(name: &str, mut v: Vec<f64>) {
    v.sort_by(f64::total_cmp);
    let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    println!(
        "{name:>16}: min {:8.1}  median {:8.1}  p95 {:8.1}  max {:8.1}",
        p(0.0),
        p(0.5),
        p(0.95),
        p(1.0)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    require_pymodbus();
    let (mut server, port) = start_server(0).await;
    let addresses = [
        "holding:0:u16",
        "holding:100:f32:CDAB",
        "input:0:i16",
        "coil:0",
        "discrete:1",
    ];
    let n = addresses.len();
    let mut source = ModbusSource::new(
        "soak",
        harness::endpoint("plc", port, INTERVAL),
        Clock::system(),
    );
    source
        .bind(
            addresses
                .iter()
                .map(|a| harness::point(a.to_string(), INTERVAL))
                .collect(),
        )
        .expect("every address binds");
    let metrics = source.metrics();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(Box::new(source).run(Arc::new(ChannelSink(tx)), shutdown));
    wait_for(
        &mut rx,
        n,
        Duration::from_secs(10),
        "every point Good",
        |_, s| s.quality == Quality::Good,
    )
    .await;
    let fds_start = harness::open_fds();
    println!(
        "modbus soak: {} min, restart every {} s, down {} s, poll {:?}, {n} points, {fds_start} fds at start",
        args.minutes, args.restart_every, args.down, INTERVAL
    );
    println!(
        "{:>5} {:>10} {:>9} {:>13} {:>9} {:>12} {:>5} {:>9}",
        "cycle",
        "to_bad_ms",
        "down_ms",
        "to_recover_ms",
        "failures",
        "backoff_ms",
        "fds",
        "glitches"
    );
    let end = Instant::now() + Duration::from_secs_f64(args.minutes * 60.0);
    let up_for = Duration::from_secs_f64((args.restart_every - args.down).max(1.0));
    let (mut to_bad, mut to_recover, mut fds) = (Vec::new(), Vec::new(), Vec::new());
    let mut late = 0;
    let mut cycle_no = 0;
    while Instant::now() + up_for < end {
        // Up: every sample must be Good.
        let up_until = Instant::now() + up_for;
        let mut glitches = 0;
        while let Ok(Some(batch)) = tokio::time::timeout_at(up_until, rx.recv()).await {
            glitches += batch.iter().filter(|s| s.quality != Quality::Good).count();
        }
        let before = metrics.snapshot();
        let (again, cycle) = restart_cycle(
            &mut rx,
            server,
            port,
            n,
            Duration::from_secs_f64(args.down),
            Duration::from_secs(10),
            Duration::from_secs(60),
        )
        .await;
        server = again;
        cycle_no += 1;
        let failures = metrics.snapshot().connect_failures - before.connect_failures;
        println!(
            "{cycle_no:>5} {:>10.1} {:>9.1} {:>13.1} {failures:>9} {:>12.0} {:>5} {glitches:>9}",
            ms(cycle.to_bad),
            ms(cycle.down),
            ms(cycle.to_recover),
            ms(nominal_backoff(failures)),
            cycle.fds
        );
        if cycle.to_bad > 2 * INTERVAL {
            late += 1;
        }
        to_bad.push(ms(cycle.to_bad));
        to_recover.push(ms(cycle.to_recover));
        fds.push(cycle.fds as f64);
    }
    stop.send(true).expect("the source is running");
    let outcome = running.await.expect("no panic");
    let m = metrics.snapshot();
    println!(
        "--- {cycle_no} cycles; source stopped cleanly: {}",
        outcome.is_ok()
    );
    if !to_bad.is_empty() {
        summary("to_bad_ms", to_bad);
        summary("to_recover_ms", to_recover);
        summary("fds", fds);
    }
    println!(
        "cycles with to_bad > 2 poll periods: {late}; fds at start {fds_start}, at end {}",
        harness::open_fds()
    );
    println!(
        "polls {} connects {} reconnects {} connect_failures {} timeouts {} io_errors {} exceptions {} latency mean {:.0} us max {} us",
        m.polls,
        m.connects,
        m.reconnects,
        m.connect_failures,
        m.timeouts,
        m.io_errors,
        m.exceptions,
        m.latency_sum_us as f64 / m.latency_count.max(1) as f64,
        m.latency_max_us
    );
}
