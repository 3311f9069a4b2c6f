//! Reliability: the pymodbus server is killed and restarted several times
//! under one running source. Each time every point turns
//! `Bad(CommFailure)` within two poll periods and comes back Good without
//! restarting the source, and the process does not leak file descriptors.
//! Alone in its binary so no other test opens or closes descriptors
//! meanwhile. The long run is `cargo bench -p adapters --bench modbus_soak`.

#[path = "fixtures/modbus_harness.rs"]
mod harness;

use std::sync::Arc;
use std::time::Duration;

use adapters::SampleSource;
use adapters::modbus::ModbusSource;
use harness::{ChannelSink, require_pymodbus, restart_cycle, start_server, wait_for};
use tokio::sync::mpsc;
use tokio::time::timeout;
use twins::{Clock, Quality};

const INTERVAL: Duration = Duration::from_millis(200);
const CYCLES: usize = 5;
/// Descriptors allowed above the first cycle's count. Measured at the same
/// point of every cycle (connected, old server reaped), the count should be
/// equal; the slack covers the runtime opening something lazily once (an
/// epoll or a signal pipe for the first reaped child, a blocking-pool
/// thread's handle) in a later cycle, which is bounded. A leak of one socket
/// or pipe per cycle would exceed it by the last cycle.
const FD_SLACK: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_fail_fast_recover_and_do_not_leak() {
    require_pymodbus();
    let (mut server, port) = start_server(0).await;
    let addresses = [
        "holding:0:u16",
        "input:0:i16",
        "coil:0",
        "holding:100:f32:CDAB",
    ];
    let mut source = ModbusSource::new(
        "modbus",
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
    let n = addresses.len();
    wait_for(
        &mut rx,
        n,
        Duration::from_secs(10),
        "every point Good",
        |_, s| s.quality == Quality::Good,
    )
    .await;

    let mut cycles = Vec::new();
    for _ in 0..CYCLES {
        let (again, cycle) = restart_cycle(
            &mut rx,
            server,
            port,
            n,
            Duration::from_millis(300),
            2 * INTERVAL,
            Duration::from_secs(10),
        )
        .await;
        server = again;
        eprintln!("{cycle:?}");
        cycles.push(cycle);
    }
    let first = cycles[0].fds;
    for (i, c) in cycles.iter().enumerate() {
        assert!(
            c.fds <= first + FD_SLACK,
            "cycle {i}: {} open descriptors, {first} after the first cycle: {cycles:#?}",
            c.fds
        );
    }
    let m = metrics.snapshot();
    assert_eq!(m.connects, 1 + CYCLES as u64, "{m:?}");
    assert_eq!(m.reconnects, CYCLES as u64, "{m:?}");
    assert_eq!(m.connected, 1, "{m:?}");

    stop.send(true).expect("the source is running");
    timeout(Duration::from_secs(5), running)
        .await
        .expect("the source stops on shutdown")
        .expect("no panic")
        .expect("clean stop");
}
