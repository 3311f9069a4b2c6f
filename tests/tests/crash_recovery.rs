//! SIGKILL a running node at random moments, restart it on the same data
//! directory, and check what the store holds against what the node had
//! acknowledged as durable (issue acceptance item 10).
//!
//! Each cycle runs `twinrt run examples/acme --report-durable` until it has
//! acknowledged some history, waits a random 50–1500 ms more and kills it
//! with SIGKILL. Every `durable ...` line the node printed describes a flush
//! that had returned from the store, so the last one is what the cycle
//! acknowledged. With no node running, the test then reads the store
//! directly and checks:
//!
//! - nothing acknowledged is missing: the store gained at least the
//!   acknowledged history points and journal entries of the cycle;
//! - nothing that was there before is gone or changed: every history point,
//!   journal entry and twin state of the previous cycle is still there
//!   (states only move forward);
//! - state and history agree: a persisted twin state is never older than
//!   that twin's history (`TwinRecord::seq` at least the largest history
//!   seq), and each sourced property's value is the value of its last
//!   history point; a twin's ops are queued in message order (history,
//!   then state), and the store holds a prefix of whole batches of that
//!   queue;
//! - each property's history is ordered by `(ts, seq)` with strictly
//!   increasing seqs.
//!
//! Twins persist their state on their first message, not when they start,
//! so the number of twins with a state after a kill depends on the moment:
//! the test checks that it never shrinks, and that after a final clean run
//! (`--for 3s`) every twin of the model has one and the store holds exactly
//! what the node acknowledged.
//!
//! The random moments come from a seed printed at the start; set
//! `TWINRT_CRASH_SEED` to replay a run, `TWINRT_CRASH_CYCLES` for more kills
//! and `TWINRT_CRASH_MODEL` to another model directory (a larger topology
//! makes bigger write bursts) for a longer hunt.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tests::{DurableLine, StoreSnapshot, acme_dir};
use twins::Value;
use twins::model::{Model, PropKind, Tier};

const SEED_ENV: &str = "TWINRT_CRASH_SEED";
const CYCLES_ENV: &str = "TWINRT_CRASH_CYCLES";
const MODEL_ENV: &str = "TWINRT_CRASH_MODEL";
const DEFAULT_CYCLES: usize = 12;
/// Longest wait for a node to acknowledge its first history.
const FIRST_ACK_TIMEOUT: Duration = Duration::from_secs(30);

fn twinrt() -> Command {
    Command::new(env!("CARGO_BIN_EXE_twinrt-under-test"))
}

/// A node process with threads reading its output.
struct Node {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Node {
    fn start(model_dir: &Path, data_dir: &Path, seed: u64, run_for: Option<&str>) -> Node {
        let mut cmd = twinrt();
        cmd.arg("run")
            .arg(model_dir)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--seed", &seed.to_string()])
            .args(["--report-durable", "--summary-every", "0"])
            .args(["--listen", "127.0.0.1:0"]);
        if let Some(d) = run_for {
            cmd.args(["--for", d]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start twinrt run");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().expect("piped stderr");
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Node {
            child,
            lines,
            stderr: Some(stderr),
        }
    }

    /// Waits for a `durable` line acknowledging some history; returns the
    /// lines read so far.
    fn wait_first_history(&mut self) -> Vec<String> {
        let deadline = Instant::now() + FIRST_ACK_TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let acked = DurableLine::parse(&line).is_some_and(|d| d.history > 0);
                    seen.push(line);
                    if acked {
                        return seen;
                    }
                }
                Err(e) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    let stderr = self.stderr_text();
                    panic!(
                        "no durable history from the node ({e}); stdout:\n{}\nstderr:\n{stderr}",
                        seen.join("\n")
                    );
                }
            }
        }
    }

    /// SIGKILLs the node; returns every stdout line it wrote.
    fn kill(mut self, mut seen: Vec<String>) -> Vec<String> {
        self.child.kill().expect("send SIGKILL");
        let status = self.child.wait().expect("reap the node");
        seen.extend(self.lines.iter());
        let stderr = self.stderr_text();
        assert_eq!(
            status.signal(),
            Some(9),
            "the node ended by itself before the kill ({status}); stderr:\n{stderr}"
        );
        seen
    }

    /// Waits for the node to exit on its own; returns its status, stdout
    /// lines and stderr.
    fn wait(mut self, limit: Duration) -> (std::process::ExitStatus, Vec<String>, String) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("poll the node") {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the node did not stop within {limit:?}; stderr:\n{}",
                    self.stderr_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let lines: Vec<String> = self.lines.iter().collect();
        let stderr = self.stderr_text();
        (status, lines, stderr)
    }

    /// Everything the node wrote to stderr; call once it has exited.
    fn stderr_text(&mut self) -> String {
        self.stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

/// The last acknowledgement among a node's stdout lines.
fn last_durable(lines: &[String]) -> DurableLine {
    lines
        .iter()
        .rev()
        .find_map(|l| DurableLine::parse(l))
        .unwrap_or_default()
}

/// State and history of every twin agree, and history is ordered.
fn check_consistent(model: &Model, snap: &StoreSnapshot, when: &str) {
    for t in &model.twins {
        let data = &snap.twins[&t.path];
        let class = &model.classes[t.class];
        let mut max_seq = None;
        for (prop, points) in &data.history {
            for w in points.windows(2) {
                assert!(
                    (w[0].ts, w[0].seq) < (w[1].ts, w[1].seq) && w[0].seq < w[1].seq,
                    "{when}: history of `{}` {prop} is not ordered with strictly increasing \
                     seqs: {:?} then {:?}",
                    t.path,
                    (w[0].ts, w[0].seq),
                    (w[1].ts, w[1].seq)
                );
            }
            let last = points.last().map(|p| p.seq);
            max_seq = max_seq.max(last);
        }
        let Some(state) = &data.state else {
            assert!(
                max_seq.is_none(),
                "{when}: `{}` has history (up to seq {max_seq:?}) but no persisted state",
                t.path
            );
            continue;
        };
        if let Some(max_seq) = max_seq {
            assert!(
                state.seq >= max_seq,
                "{when}: the state of `{}` (seq {}) is older than its history (seq {max_seq})",
                t.path,
                state.seq
            );
        }
        if class.tier != Tier::Device {
            continue;
        }
        for (name, slot) in &state.props {
            let name: &str = name;
            let sourced = class
                .props
                .iter()
                .any(|p| p.name == name && matches!(p.kind, PropKind::Sourced));
            assert!(
                sourced,
                "{when}: `{}` persisted a non-sourced `{name}`",
                t.path
            );
            match data.history.get(name).and_then(|h| h.last()) {
                Some(last) => assert!(
                    slot.value == last.value && slot.ts == last.ts,
                    "{when}: `{}` {name} is {:?} at {:?} in the state (seq {}) but its last \
                     history point is {:?} at {:?} (seq {})",
                    t.path,
                    slot.value,
                    slot.ts,
                    state.seq,
                    last.value,
                    last.ts,
                    last.seq
                ),
                None => assert_eq!(
                    slot.value,
                    Value::Null,
                    "{when}: `{}` {name} has a value in the state but no history",
                    t.path
                ),
            }
        }
    }
}

/// Everything `before` held is still in `after`, unchanged (states may
/// only have moved forward).
fn check_kept(before: &StoreSnapshot, after: &StoreSnapshot, when: &str) {
    for (path, old) in &before.twins {
        let new = &after.twins[path];
        for (prop, points) in &old.history {
            let now = new.history.get(prop).map(Vec::as_slice).unwrap_or(&[]);
            let kept: std::collections::HashMap<_, _> =
                now.iter().map(|p| ((p.ts, p.seq), p)).collect();
            for p in points {
                assert_eq!(
                    kept.get(&(p.ts, p.seq)).copied(),
                    Some(p),
                    "{when}: history point {:?} of `{path}` {prop} was lost or changed",
                    (p.ts, p.seq)
                );
            }
        }
        let kept: std::collections::HashMap<_, _> = new.events.iter().map(|e| (e.seq, e)).collect();
        for e in &old.events {
            assert_eq!(
                kept.get(&e.seq).copied(),
                Some(e),
                "{when}: journal entry {} of `{path}` was lost or changed",
                e.seq
            );
        }
        if let Some(s) = &old.state {
            let seq = new.state.as_ref().map(|n| n.seq);
            assert!(
                seq >= Some(s.seq),
                "{when}: the state of `{path}` went from seq {} to {seq:?}",
                s.seq
            );
        }
    }
}

#[test]
fn a_node_killed_at_random_moments_keeps_everything_it_acknowledged() {
    let seed: u64 = match std::env::var(SEED_ENV) {
        Ok(s) => s.parse().expect("TWINRT_CRASH_SEED is a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    };
    let cycles: usize = std::env::var(CYCLES_ENV)
        .ok()
        .map(|c| c.parse().expect("TWINRT_CRASH_CYCLES is a number"))
        .unwrap_or(DEFAULT_CYCLES);
    println!("crash test seed {seed} ({SEED_ENV}={seed} replays it), {cycles} kills");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let model_dir = std::env::var_os(MODEL_ENV).map_or_else(acme_dir, PathBuf::from);
    let model = runtime::model_dir::load(&model_dir).expect("the model loads");
    let data = tempfile::tempdir().expect("tempdir");
    let data_dir = data.path().join("node");

    let mut before = StoreSnapshot::default();
    for cycle in 0..cycles {
        let node_seed = seed.wrapping_add(cycle as u64);
        let delay = Duration::from_millis(rng.random_range(50..=1500));
        let started = Instant::now();
        let mut node = Node::start(&model_dir, &data_dir, node_seed, None);
        let seen = node.wait_first_history();
        std::thread::sleep(delay);
        let lines = node.kill(seen);
        let acked = last_durable(&lines);
        let after = StoreSnapshot::open(&data_dir, &model).expect("read the store");
        let when = format!("cycle {cycle} (seed {seed}, kill {delay:?} after the first ack)");
        println!(
            "{when}: acknowledged {acked:?}; store: {} history (+{}), {} events, {} states; {:?}",
            after.history_count(),
            after.history_count() - before.history_count().min(after.history_count()),
            after.event_count(),
            after.state_count(),
            started.elapsed()
        );
        assert!(
            after.history_count() >= before.history_count() + acked.history,
            "{when}: the store holds {} history points, but {} were there before and the node \
             acknowledged {} more",
            after.history_count(),
            before.history_count(),
            acked.history
        );
        assert!(
            after.event_count() >= before.event_count() + acked.events,
            "{when}: the store holds {} journal entries, but {} were there before and the node \
             acknowledged {} more",
            after.event_count(),
            before.event_count(),
            acked.events
        );
        assert!(after.state_count() > 0, "{when}: no twin state persisted");
        check_kept(&before, &after, &when);
        check_consistent(&model, &after, &when);
        before = after;
    }

    // A clean stop flushes everything: the store holds exactly what was
    // there plus what the node acknowledged.
    let node = Node::start(&model_dir, &data_dir, seed, Some("3s"));
    let (status, lines, stderr) = node.wait(Duration::from_secs(60));
    assert_eq!(
        status.code(),
        Some(0),
        "clean run failed; stderr:\n{stderr}"
    );
    assert!(stderr.contains("stopped cleanly"), "stderr:\n{stderr}");
    let acked = last_durable(&lines);
    assert!(acked.history > 0, "the clean run acknowledged no history");
    let after = StoreSnapshot::open(&data_dir, &model).expect("read the store");
    let when = "after the clean run";
    assert_eq!(
        after.history_count(),
        before.history_count() + acked.history,
        "{when}: history in the store is not what was there plus what was acknowledged"
    );
    assert_eq!(
        after.event_count(),
        before.event_count() + acked.events,
        "{when}: journal in the store is not what was there plus what was acknowledged"
    );
    assert_eq!(
        after.state_count(),
        model.twins.len(),
        "{when}: every twin of the model has a persisted state"
    );
    check_kept(&before, &after, when);
    check_consistent(&model, &after, when);
}
