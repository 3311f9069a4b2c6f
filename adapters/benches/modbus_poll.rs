//! Poll throughput of the Modbus adapter against bare tokio-modbus clients.
//!
//! ```text
//! cargo bench -p adapters --bench modbus_poll -- [--endpoints 100] [--seconds 5] [--rounds 2] [--only adapter|bare]
//! ```
//!
//! A child process (this binary re-executed with `--serve N`) runs N
//! tokio-modbus TCP servers, each on its own 127.0.0.1 port, all with the
//! same register map: four blocks of mixed types. In the same run, in
//! alternating rounds, this process then polls all N endpoints as fast as
//! it can, (a) with one [`ModbusSource`] over N endpoints (interval 1 µs)
//! into a counting sink, (b) with N bare tokio-modbus clients reading the
//! same four blocks in a loop. It reports block reads per second and this
//! process's CPU time (user + system, from `/proc/self/stat`) per read, and
//! the overhead `1 - adapter / bare` of both.

use std::future::{Ready, ready};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use adapters::modbus::{EndpointConfig, ModbusSource, PollGroup};
use adapters::{PointSpec, SampleSink, SampleSource, SinkClosed};
use tokio_modbus::client::{Reader, tcp};
use tokio_modbus::server::Service;
use tokio_modbus::server::tcp::{Server, accept_tcp_connection};
use tokio_modbus::{ExceptionCode, Request, Response};
use twins::{Clock, Sample, Timestamp, TwinPath, ValueType};

/// The four blocks every endpoint serves and both clients read:
/// (table, start, count).
const BLOCKS: [(&str, u16, u16); 4] = [
    ("holding", 0, 40),
    ("holding", 100, 40),
    ("input", 0, 60),
    ("coil", 0, 32),
];

/// The adapter's points, covering the blocks exactly (mixed types and orders).
fn addresses() -> Vec<String> {
    let mut a = Vec::new();
    // Block 1: 10 f32 ABCD, 10 i32 CDAB.
    a.extend((0..10).map(|i| format!("holding:{}:f32", 2 * i)));
    a.extend((0..10).map(|i| format!("holding:{}:i32:CDAB", 20 + 2 * i)));
    // Block 2: 20 u16 (scaled), 10 i16, 2 f64 DCBA, 1 u32 BADC.
    a.extend((0..20).map(|i| format!("holding:{}:u16;scale=0.1", 100 + i)));
    a.extend((0..10).map(|i| format!("holding:{}:i16", 120 + i)));
    a.extend((0..2).map(|i| format!("holding:{}:f64:DCBA", 130 + 4 * i)));
    a.push("holding:138:u32:BADC".into());
    // Block 3: 30 f32 CDAB input registers.
    a.extend((0..30).map(|i| format!("input:{}:f32:CDAB", 2 * i)));
    // Block 4: 32 coils.
    a.extend((0..32).map(|i| format!("coil:{i}")));
    a
}

/// Register contents: finite as any float type, in any order.
fn word(address: u16) -> u16 {
    0x4100 | (address & 0xff)
}

/// The register map every endpoint serves.
#[derive(Debug, Clone, Copy)]
struct Device;

impl Service for Device {
    type Request = Request<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Response, ExceptionCode>>;

    fn call(&self, req: Request<'static>) -> Self::Future {
        let words = |start: u16, count: u16| (start..start + count).map(word).collect();
        let bits = |start: u16, count: u16| (start..start + count).map(|a| a % 3 == 0).collect();
        ready(match req {
            Request::ReadHoldingRegisters(start, count) => {
                Ok(Response::ReadHoldingRegisters(words(start, count)))
            }
            Request::ReadInputRegisters(start, count) => {
                Ok(Response::ReadInputRegisters(words(start, count)))
            }
            Request::ReadCoils(start, count) => Ok(Response::ReadCoils(bits(start, count))),
            Request::ReadDiscreteInputs(start, count) => {
                Ok(Response::ReadDiscreteInputs(bits(start, count)))
            }
            _ => Err(ExceptionCode::IllegalFunction),
        })
    }
}

/// Child mode: serve `n` endpoints, print their ports, exit when stdin closes.
fn serve(n: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let mut ports = Vec::new();
        for _ in 0..n {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("binding a server port");
            ports.push(listener.local_addr().expect("bound").port());
            tokio::spawn(async move {
                let server = Server::new(listener);
                let on_connected = |stream, addr| async move {
                    accept_tcp_connection(stream, addr, |_| Ok(Some(Device)))
                };
                let _ = server.serve(&on_connected, |_err| {}).await;
            });
        }
        let line: Vec<String> = ports.iter().map(u16::to_string).collect();
        println!("{}", line.join(" "));
        std::io::stdout().flush().expect("stdout");
        // The parent closes our stdin (or dies): stop.
        tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {}
        })
        .await
        .expect("stdin watcher");
    });
}

/// CPU time (user + system) of this process so far.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields overall, in clock ticks (100 per second on Linux).
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 10)
}

/// Counts the samples the adapter delivers.
#[derive(Debug, Default)]
struct CountingSink {
    samples: AtomicU64,
}

impl SampleSink for CountingSink {
    fn deliver(&self, samples: Vec<Sample>, _arrival: Timestamp) -> Result<(), SinkClosed> {
        self.samples
            .fetch_add(samples.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

struct Measured {
    reads_per_s: f64,
    cpu_per_read: Duration,
}

/// Measures `reads` over `seconds` after a one-second warm-up.
async fn measure(reads: impl Fn() -> u64, seconds: f64) -> Measured {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (r0, c0, t0) = (reads(), cpu_time(), Instant::now());
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let (r1, c1, elapsed) = (reads(), cpu_time(), t0.elapsed());
    let n = (r1 - r0).max(1);
    Measured {
        reads_per_s: n as f64 / elapsed.as_secs_f64(),
        cpu_per_read: (c1 - c0) / u32::try_from(n).unwrap_or(u32::MAX),
    }
}

async fn run_adapter(ports: &[u16], seconds: f64) -> (Measured, u64) {
    let endpoints: Vec<EndpointConfig> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| EndpointConfig {
            name: format!("ep{i}"),
            host: "127.0.0.1".into(),
            port: *port,
            unit_id: 1,
            timeout: Duration::from_secs(2),
            poll_groups: vec![PollGroup {
                name: "fast".into(),
                interval: Duration::from_micros(1),
            }],
            max_block_registers: 125,
            max_gap: 0,
        })
        .collect();
    let mut points = Vec::new();
    for e in 0..ports.len() {
        for address in addresses() {
            points.push(PointSpec {
                twin: TwinPath::parse(&format!("site/ep{e}")).expect("twin path"),
                prop: address.replace([':', ';', '=', '.'], "_"),
                class: "Plc".into(),
                sim: None,
                address: format!("{address};endpoint=ep{e}"),
                ty: ValueType::F64,
                unit: None,
                range: None,
                period: None,
                states: Vec::new(),
            });
        }
    }
    let mut source = ModbusSource::with_endpoints("bench", endpoints, Clock::system());
    source.bind(points).expect("the bench points bind");
    let stats = source.metrics();
    let sink = Arc::new(CountingSink::default());
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(Box::new(source).run(sink.clone(), shutdown));
    let measured = measure(|| stats.snapshot().polls, seconds).await;
    stop.send(true).expect("running");
    running.await.expect("no panic").expect("clean stop");
    let m = stats.snapshot();
    assert_eq!(
        m.exceptions + m.decode_errors + m.timeouts + m.io_errors,
        0,
        "the adapter read everything cleanly: {m:?}"
    );
    (measured, sink.samples.load(Ordering::Relaxed))
}

async fn run_bare(ports: &[u16], seconds: f64) -> Measured {
    let reads = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = tokio::task::JoinSet::new();
    for port in ports {
        let (reads, stop) = (reads.clone(), stop.clone());
        let addr = format!("127.0.0.1:{port}").parse().expect("address");
        tasks.spawn(async move {
            let mut ctx = tcp::connect(addr).await.expect("connecting");
            while !stop.load(Ordering::Relaxed) {
                for (table, start, count) in BLOCKS {
                    match table {
                        "holding" => {
                            std::hint::black_box(ctx.read_holding_registers(start, count).await)
                                .expect("io")
                                .expect("no exception");
                        }
                        "input" => {
                            std::hint::black_box(ctx.read_input_registers(start, count).await)
                                .expect("io")
                                .expect("no exception");
                        }
                        _ => {
                            std::hint::black_box(ctx.read_coils(start, count).await)
                                .expect("io")
                                .expect("no exception");
                        }
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    let measured = measure(|| reads.load(Ordering::Relaxed), seconds).await;
    stop.store(true, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}
    measured
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut endpoints, mut seconds, mut rounds) = (100usize, 5.0f64, 2usize);
    // `--only adapter` or `--only bare`: one side, for profiling.
    let mut only = String::new();
    while let Some(flag) = args.next() {
        let mut value = || args.next().expect("a value after the flag");
        match flag.as_str() {
            "--serve" => return serve(value().parse().expect("--serve N")),
            "--endpoints" => endpoints = value().parse().expect("--endpoints N"),
            "--seconds" => seconds = value().parse().expect("--seconds S"),
            "--rounds" => rounds = value().parse().expect("--rounds N"),
            "--only" => only = value(),
            // `cargo bench` passes `--bench`.
            _ => {}
        }
    }
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .args(["--serve", &endpoints.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the server process");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("the server process prints its ports");
    let ports: Vec<u16> = line
        .split_whitespace()
        .map(|p| p.parse().expect("a port"))
        .collect();
    assert_eq!(ports.len(), endpoints);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    println!(
        "modbus_poll: {endpoints} endpoints, {} blocks of {} registers/bits each, {} points per endpoint, {seconds} s per run, {rounds} rounds, {} cores",
        BLOCKS.len(),
        BLOCKS
            .iter()
            .map(|b| b.2.to_string())
            .collect::<Vec<_>>()
            .join("/"),
        addresses().len(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let (mut adapter, mut bare) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        if only == "adapter" {
            let (a, _) = runtime.block_on(run_adapter(&ports, seconds));
            println!(
                "adapter: {:.0} reads/s {:.2} us CPU/read",
                a.reads_per_s,
                a.cpu_per_read.as_secs_f64() * 1e6
            );
            continue;
        }
        let b = runtime.block_on(run_bare(&ports, seconds));
        if only == "bare" {
            println!(
                "bare: {:.0} reads/s {:.2} us CPU/read",
                b.reads_per_s,
                b.cpu_per_read.as_secs_f64() * 1e6
            );
            continue;
        }
        println!(
            "round {round} bare    : {:>9.0} reads/s  {:>6.2} us CPU/read",
            b.reads_per_s,
            b.cpu_per_read.as_secs_f64() * 1e6
        );
        let (a, samples) = runtime.block_on(run_adapter(&ports, seconds));
        println!(
            "round {round} adapter : {:>9.0} reads/s  {:>6.2} us CPU/read  ({samples} samples delivered)",
            a.reads_per_s,
            a.cpu_per_read.as_secs_f64() * 1e6
        );
        bare.push(b);
        adapter.push(a);
    }
    if !only.is_empty() {
        drop(child.stdin.take());
        let _ = child.wait();
        return;
    }
    let mean =
        |v: &[Measured], f: fn(&Measured) -> f64| v.iter().map(f).sum::<f64>() / v.len() as f64;
    let rate = |m: &Measured| m.reads_per_s;
    let cpu = |m: &Measured| m.cpu_per_read.as_secs_f64() * 1e6;
    let (ar, br) = (mean(&adapter, rate), mean(&bare, rate));
    let (ac, bc) = (mean(&adapter, cpu), mean(&bare, cpu));
    println!("mean bare    : {br:>9.0} reads/s  {bc:>6.2} us CPU/read");
    println!("mean adapter : {ar:>9.0} reads/s  {ac:>6.2} us CPU/read");
    println!(
        "overhead: throughput 1 - adapter/bare = {:.1} %, CPU per read adapter/bare - 1 = {:.1} % (goal: throughput overhead <= 30 %)",
        (1.0 - ar / br) * 100.0,
        (ac / bc - 1.0) * 100.0
    );
    drop(child.stdin.take());
    let _ = child.wait();
}
