//! SIGKILL a process that writes through the [`StoreWriter`] into a
//! [`FjallStore`], reopen the store, and check the durability contract:
//! everything acknowledged is there, and what is there is a prefix of the
//! op stream made of whole batches.
//!
//! The test runs this same test binary as the writing child process (the
//! `child_writes_until_killed` entry point, which does nothing unless
//! `TWINRT_CRASH_CHILD_DIR` is set).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use runtime::store::FjallStore;
use twins::store::conformance::{event, hist, point, state, twin};
use twins::store::{Store, StoreWriter, WriteOp, WriterConfig};
use twins::{Timestamp, TwinId};

const CHILD_ENV: &str = "TWINRT_CRASH_CHILD_DIR";
/// History points per iteration, sent as one op.
const POINTS: u64 = 10;
/// Acknowledgements the parent waits for before it kills the child.
const ACKS: usize = 30;

fn id() -> TwinId {
    twin(1)
}

/// Iteration `i` sends, in this order: one history batch of `POINTS`
/// points at ts `i`, event `i + 1`, state seq `i`. Every tenth iteration it
/// flushes and prints `ack <i>` once the flush returned.
async fn write_forever(dir: &Path) -> ! {
    let store: Arc<dyn Store> = Arc::new(FjallStore::open(dir).expect("child opens the store"));
    let (w, _h) = StoreWriter::spawn(
        store,
        WriterConfig {
            flush_interval: Duration::from_millis(1),
            max_batch: 64,
            ..Default::default()
        },
    );
    let mut i: u64 = 0;
    loop {
        let points = (0..POINTS)
            .map(|s| hist(id(), "flow", point(i as i64, s, i as f64)))
            .collect();
        w.send(WriteOp::HistoryBatch(points)).await.expect("send");
        w.send(WriteOp::Event(event(id(), i + 1)))
            .await
            .expect("send");
        w.send(WriteOp::State(id(), state(i))).await.expect("send");
        if i % 10 == 9 {
            w.flush().await.expect("flush");
            println!("ack {i}");
        }
        i += 1;
    }
}

#[test]
fn child_writes_until_killed() {
    // Entry point of the child process only; see the module docs.
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(write_forever(Path::new(&dir)));
}

#[test]
fn a_killed_writer_loses_nothing_acknowledged_and_leaves_whole_batches() {
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_writes_until_killed", "--nocapture"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut last_ack = None;
        let mut acks = 0;
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            if let Some(n) = line.strip_prefix("ack ") {
                last_ack = Some(n.parse::<u64>().unwrap());
                acks += 1;
                if acks == ACKS + round * 7 {
                    break;
                }
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let last_ack = last_ack.expect("the child acknowledged flushes");

        let store = FjallStore::open(dir.path()).expect("reopen after SIGKILL");
        let points = store
            .history(
                id(),
                "flow",
                Timestamp(i64::MIN),
                Timestamp::MAX,
                usize::MAX,
            )
            .unwrap();
        let events = store.events(id(), 0, usize::MAX).unwrap();
        let st = store.load_state(id()).unwrap().expect("a state").seq;

        // History: iterations 0..=h, each with all its points (one op is
        // never split across batches).
        let h = points.last().unwrap().ts.0 as u64;
        assert_eq!(
            points.len() as u64,
            (h + 1) * POINTS,
            "whole iterations only"
        );
        for (n, p) in points.iter().enumerate() {
            let n = n as u64;
            assert_eq!((p.ts.0 as u64, p.seq), (n / POINTS, n % POINTS));
        }
        // Events 1..=e, contiguous.
        let e = events.len() as u64;
        assert!(
            events.iter().map(|ev| ev.seq).eq(1..=e),
            "events are contiguous"
        );
        // Acknowledged means there.
        assert!(
            st >= last_ack,
            "state {st} older than acknowledged {last_ack}"
        );
        // A prefix of the op stream H0 E0 S0 H1 E1 S1 ...: the state is
        // the last or the one before the last iteration's history.
        assert!(
            st <= e.saturating_sub(1) && e.saturating_sub(1) <= h && h <= st + 1,
            "not a prefix of the op stream: history up to {h}, events up to {}, state {st}",
            e.saturating_sub(1)
        );
    }
}
