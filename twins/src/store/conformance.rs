//! The conformance suite every [`Store`] backend must pass.
//!
//! A backend's test calls [`run_conformance`] with a function that opens a
//! fresh, empty store and says how to reopen the same data after the store
//! was dropped:
//!
//! ```
//! use twins::store::MemoryStore;
//! use twins::store::conformance::{run_conformance, Opened};
//!
//! run_conformance(&|| {
//!     let store = MemoryStore::new();
//!     let same = store.clone();
//!     Opened { store: Box::new(store), reopen: Some(Box::new(move || Box::new(same.clone()))) }
//! });
//! ```
//!
//! Every case runs, and the call panics at the end naming each failed case.
//! Compiled for this crate's tests and with the `conformance` feature.

use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{
    AlarmTransitionRecord, Event, EventRecord, HistoryPoint, HistoryRecord, Store, StoreError,
    TwinRecord, WriteBatch,
};
use crate::alarm::{AlarmMode, AlarmRecord, AlarmState};
use crate::id::{TwinId, TwinPath};
use crate::quality::{Quality, Reason};
use crate::sample::Slot;
use crate::time::Timestamp;
use crate::value::Value;

/// A freshly opened, empty store.
pub struct Opened {
    pub store: Box<dyn Store>,
    /// Opens the same data again; called only after every earlier store
    /// returned by `Opened` for this data has been dropped. `None` skips the
    /// reopen case.
    pub reopen: Option<Box<dyn Fn() -> Box<dyn Store>>>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("store", &self.store)
            .field("reopen", &self.reopen.is_some())
            .finish()
    }
}

/// Opens a fresh store for one case.
pub type Fresh<'a> = &'a dyn Fn() -> Opened;

/// One case of the suite.
pub type Case = fn(Fresh<'_>);

/// Every case, by name.
pub const CASES: &[(&str, Case)] = &[
    ("empty_store_reads_nothing", empty_store_reads_nothing),
    ("state_put_get_overwrite", state_put_get_overwrite),
    (
        "later_state_in_one_batch_wins",
        later_state_in_one_batch_wins,
    ),
    (
        "scan_returns_every_state_once",
        scan_returns_every_state_once,
    ),
    (
        "history_range_is_inclusive_exclusive",
        history_range_is_inclusive_exclusive,
    ),
    (
        "history_orders_by_ts_then_seq",
        history_orders_by_ts_then_seq,
    ),
    (
        "history_limit_returns_the_earliest",
        history_limit_returns_the_earliest,
    ),
    (
        "history_does_not_leak_between_props_or_twins",
        history_does_not_leak_between_props_or_twins,
    ),
    ("history_same_key_overwrites", history_same_key_overwrites),
    (
        "events_order_after_seq_and_limit",
        events_order_after_seq_and_limit,
    ),
    ("meta_set_get_overwrite", meta_set_get_overwrite),
    (
        "audit_order_after_seq_and_limit",
        audit_order_after_seq_and_limit,
    ),
    (
        "audit_bytes_are_kept_as_written",
        audit_bytes_are_kept_as_written,
    ),
    ("batch_is_all_or_nothing", batch_is_all_or_nothing),
    (
        "concurrent_readers_never_see_half_a_batch",
        concurrent_readers_never_see_half_a_batch,
    ),
    ("large_batch", large_batch),
    ("reopen_keeps_everything", reopen_keeps_everything),
    ("stats_count_writes", stats_count_writes),
];

/// Runs every case against fresh stores from `fresh`; panics at the end
/// naming the cases that failed (each failure's message is printed as it
/// happens).
pub fn run_conformance(fresh: Fresh<'_>) {
    let mut failed = Vec::new();
    for (name, case) in CASES {
        if catch_unwind(AssertUnwindSafe(|| case(fresh))).is_err() {
            failed.push(*name);
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} store conformance cases failed: {}",
        failed.len(),
        CASES.len(),
        failed.join(", ")
    );
}

// ---------------------------------------------------------------- fixtures

/// The id of test twin `n`.
pub fn twin(n: u32) -> TwinId {
    TwinPath::parse(&format!("conformance/line/t{n}"))
        .expect("valid path")
        .id()
}

/// A twin state exercising every value, quality and alarm shape.
pub fn state(seq: u64) -> TwinRecord {
    TwinRecord {
        class: "CentrifugalPump".into(),
        seq,
        updated: Timestamp(1_000_000 + seq as i64),
        props: vec![
            (
                "flow".into(),
                Slot::new(Value::F64(seq as f64 + 0.5), Quality::Good, Timestamp(7)),
            ),
            (
                "count".into(),
                Slot::new(
                    Value::I64(-(seq as i64)),
                    Quality::Uncertain(Reason::Stale),
                    Timestamp(-7),
                ),
            ),
            (
                "running".into(),
                Slot::new(
                    Value::Bool(true),
                    Quality::Bad(Reason::CommFailure),
                    Timestamp(8),
                ),
            ),
            (
                "label".into(),
                Slot::new(
                    Value::String(Arc::from("ünïcode ✓")),
                    Quality::Good,
                    Timestamp(9),
                ),
            ),
            (
                "mode".into(),
                Slot::new(Value::Enum(3), Quality::Good, Timestamp(10)),
            ),
            ("spare".into(), Slot::default()),
        ],
        alarms: vec![
            ("low_flow".into(), AlarmRecord::default()),
            (
                "high_pressure".into(),
                AlarmRecord {
                    state: AlarmState::ActiveUnacked,
                    mode: AlarmMode::Shelved {
                        until: Timestamp(99),
                    },
                    condition: true,
                    pending_since: Some(Timestamp(5)),
                    since: Timestamp(6),
                },
            ),
        ],
    }
}

pub fn point(ts: i64, seq: u64, v: f64) -> HistoryPoint {
    HistoryPoint {
        ts: Timestamp(ts),
        seq,
        value: Value::F64(v),
        quality: Quality::Good,
    }
}

pub fn hist(twin: TwinId, prop: &str, p: HistoryPoint) -> HistoryRecord {
    HistoryRecord {
        twin,
        prop: Arc::from(prop),
        point: p,
    }
}

/// One journal entry of each kind, by seq.
pub fn event(twin: TwinId, seq: u64) -> EventRecord {
    let event = match seq % 5 {
        0 => Event::Alarm {
            alarm: "high_pressure".into(),
            transition: AlarmTransitionRecord {
                from_state: AlarmState::Normal,
                to_state: AlarmState::ActiveUnacked,
                from_mode: AlarmMode::Enabled,
                to_mode: AlarmMode::Enabled,
                cause: "condition".into(),
            },
        },
        1 => Event::Mode {
            from: "running".into(),
            to: "stopped".into(),
            reason: "running = false".into(),
        },
        2 => Event::OperatorAction {
            who: "alice".into(),
            action: format!("acknowledge #{seq}"),
        },
        3 => Event::Restarted {
            reason: "panic in handler".into(),
        },
        _ => Event::Note(format!("note {seq}")),
    };
    EventRecord {
        twin,
        seq,
        at: Timestamp(seq as i64 * 10),
        event,
    }
}

fn write(store: &dyn Store, batch: WriteBatch) {
    store
        .write(&batch)
        .unwrap_or_else(|e| panic!("write of {} records failed: {e}", batch.len()));
}

fn all_history(store: &dyn Store, id: TwinId, prop: &str) -> Vec<HistoryPoint> {
    store
        .history(id, prop, Timestamp(i64::MIN), Timestamp::MAX, usize::MAX)
        .expect("history")
}

fn seqs(points: &[HistoryPoint]) -> Vec<(i64, u64)> {
    points.iter().map(|p| (p.ts.0, p.seq)).collect()
}

// ---------------------------------------------------------------- cases

pub fn empty_store_reads_nothing(fresh: Fresh<'_>) {
    let store = fresh().store;
    assert_eq!(store.load_state(twin(1)).unwrap(), None);
    assert!(all_history(&*store, twin(1), "flow").is_empty());
    assert!(store.events(twin(1), 0, 10).unwrap().is_empty());
    assert_eq!(store.get_meta("k").unwrap(), None);
    let mut n = 0;
    store
        .scan_states(&mut |_, _| {
            n += 1;
            true
        })
        .unwrap();
    assert_eq!(n, 0);
    store.write(&WriteBatch::default()).unwrap();
}

pub fn state_put_get_overwrite(fresh: Fresh<'_>) {
    let store = fresh().store;
    write(
        &*store,
        WriteBatch {
            states: vec![(twin(1), state(1))],
            ..Default::default()
        },
    );
    assert_eq!(store.load_state(twin(1)).unwrap(), Some(state(1)));
    assert_eq!(store.load_state(twin(2)).unwrap(), None);

    let mut other = state(2);
    other.class = "Tank".into();
    other.props.truncate(1);
    other.alarms.clear();
    write(
        &*store,
        WriteBatch {
            states: vec![(twin(1), other.clone()), (twin(2), state(5))],
            ..Default::default()
        },
    );
    assert_eq!(store.load_state(twin(1)).unwrap(), Some(other));
    assert_eq!(store.load_state(twin(2)).unwrap(), Some(state(5)));
}

pub fn later_state_in_one_batch_wins(fresh: Fresh<'_>) {
    let store = fresh().store;
    write(
        &*store,
        WriteBatch {
            states: vec![(twin(1), state(1)), (twin(1), state(2))],
            ..Default::default()
        },
    );
    assert_eq!(store.load_state(twin(1)).unwrap(), Some(state(2)));
}

pub fn scan_returns_every_state_once(fresh: Fresh<'_>) {
    let store = fresh().store;
    let ids: Vec<TwinId> = (0..1000).map(twin).collect();
    for chunk in ids.chunks(300) {
        write(
            &*store,
            WriteBatch {
                states: chunk.iter().map(|id| (*id, state(7))).collect(),
                ..Default::default()
            },
        );
    }
    let mut seen = Vec::new();
    store
        .scan_states(&mut |id, rec| {
            assert_eq!(rec, state(7));
            seen.push(id);
            true
        })
        .unwrap();
    assert_eq!(seen.len(), 1000, "each state exactly once");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "ascending id order");
    assert_eq!(
        seen.iter().copied().collect::<BTreeSet<_>>(),
        ids.iter().copied().collect::<BTreeSet<_>>()
    );

    let mut calls = 0;
    store
        .scan_states(&mut |_, _| {
            calls += 1;
            calls < 10
        })
        .unwrap();
    assert_eq!(calls, 10, "scan stops when the callback returns false");
}

pub fn history_range_is_inclusive_exclusive(fresh: Fresh<'_>) {
    let store = fresh().store;
    let id = twin(1);
    write(
        &*store,
        WriteBatch {
            history: [10, 20, 30, 40]
                .into_iter()
                .map(|ts| hist(id, "flow", point(ts, 0, ts as f64)))
                .collect(),
            ..Default::default()
        },
    );
    let range = |from: i64, to: i64| {
        seqs(
            &store
                .history(id, "flow", Timestamp(from), Timestamp(to), 100)
                .unwrap(),
        )
        .into_iter()
        .map(|(ts, _)| ts)
        .collect::<Vec<_>>()
    };
    assert_eq!(range(20, 40), vec![20, 30], "from included, to excluded");
    assert_eq!(range(10, 11), vec![10]);
    assert_eq!(range(11, 20), Vec::<i64>::new());
    assert_eq!(range(19, 21), vec![20]);
    assert_eq!(range(41, 100), Vec::<i64>::new());
    assert_eq!(range(40, 40), Vec::<i64>::new(), "empty range");
    assert_eq!(range(30, 20), Vec::<i64>::new(), "reversed range");
    assert_eq!(range(i64::MIN, i64::MAX), vec![10, 20, 30, 40]);
    let p = &store
        .history(id, "flow", Timestamp(30), Timestamp(31), 1)
        .unwrap()[0];
    assert_eq!(p, &point(30, 0, 30.0), "points round-trip");
}

pub fn history_orders_by_ts_then_seq(fresh: Fresh<'_>) {
    let store = fresh().store;
    let id = twin(1);
    let batch1 = vec![
        hist(id, "flow", point(5, 2, 0.2)),
        hist(id, "flow", point(5, 1, 0.1)),
        hist(id, "flow", point(1_000_000, 0, 9.0)),
    ];
    let batch2 = vec![
        hist(id, "flow", point(5, 3, 0.3)),
        hist(id, "flow", point(-7, 9, -7.0)),
        hist(id, "flow", point(-1_000_000, 1, -9.0)),
        hist(id, "flow", point(0, 256, 0.0)),
        hist(id, "flow", point(0, 255, 0.0)),
        hist(id, "flow", point(-1, u64::MAX, 0.0)),
    ];
    for b in [batch1, batch2] {
        write(
            &*store,
            WriteBatch {
                history: b,
                ..Default::default()
            },
        );
    }
    assert_eq!(
        seqs(&all_history(&*store, id, "flow")),
        vec![
            (-1_000_000, 1),
            (-7, 9),
            (-1, u64::MAX),
            (0, 255),
            (0, 256),
            (5, 1),
            (5, 2),
            (5, 3),
            (1_000_000, 0)
        ],
        "ascending by (ts, seq), equal timestamps all kept, negative times first"
    );
    assert_eq!(
        seqs(
            &store
                .history(id, "flow", Timestamp(-1), Timestamp(1), 100)
                .unwrap()
        ),
        vec![(-1, u64::MAX), (0, 255), (0, 256)]
    );
}

pub fn history_limit_returns_the_earliest(fresh: Fresh<'_>) {
    let store = fresh().store;
    let id = twin(1);
    write(
        &*store,
        WriteBatch {
            history: (0..100)
                .rev()
                .map(|i| hist(id, "flow", point(i, 0, 0.0)))
                .collect(),
            ..Default::default()
        },
    );
    let get = |limit| {
        store
            .history(id, "flow", Timestamp(0), Timestamp(1000), limit)
            .unwrap()
    };
    assert_eq!(seqs(&get(10)), (0..10).map(|i| (i, 0)).collect::<Vec<_>>());
    assert!(get(0).is_empty());
    assert_eq!(get(1000).len(), 100);
    assert_eq!(
        seqs(
            &store
                .history(id, "flow", Timestamp(50), Timestamp(1000), 2)
                .unwrap()
        ),
        vec![(50, 0), (51, 0)]
    );
}

pub fn history_does_not_leak_between_props_or_twins(fresh: Fresh<'_>) {
    let store = fresh().store;
    let names = ["flow", "flow_rate", "flow2", "flo", "", "f\u{ff}"];
    let mut history = Vec::new();
    for (t, id) in [twin(1), twin(2)].into_iter().enumerate() {
        for (i, name) in names.iter().enumerate() {
            for ts in 0..3 {
                let v = (t * 100 + i * 10) as f64 + ts as f64;
                history.push(hist(id, name, point(ts, 0, v)));
            }
        }
    }
    write(
        &*store,
        WriteBatch {
            history,
            ..Default::default()
        },
    );
    for (t, id) in [twin(1), twin(2)].into_iter().enumerate() {
        for (i, name) in names.iter().enumerate() {
            let values: Vec<f64> = all_history(&*store, id, name)
                .iter()
                .map(|p| p.value.as_f64().unwrap())
                .collect();
            let base = (t * 100 + i * 10) as f64;
            assert_eq!(
                values,
                vec![base, base + 1.0, base + 2.0],
                "twin {t} property {name:?}"
            );
        }
    }
    assert!(all_history(&*store, twin(3), "flow").is_empty());
    assert!(all_history(&*store, twin(1), "fl").is_empty());
}

pub fn history_same_key_overwrites(fresh: Fresh<'_>) {
    let store = fresh().store;
    let id = twin(1);
    write(
        &*store,
        WriteBatch {
            history: vec![
                hist(id, "flow", point(5, 1, 1.0)),
                hist(id, "flow", point(5, 1, 2.0)),
            ],
            ..Default::default()
        },
    );
    assert_eq!(
        all_history(&*store, id, "flow"),
        vec![point(5, 1, 2.0)],
        "later wins within a batch"
    );
    write(
        &*store,
        WriteBatch {
            history: vec![hist(id, "flow", point(5, 1, 3.0))],
            ..Default::default()
        },
    );
    assert_eq!(
        all_history(&*store, id, "flow"),
        vec![point(5, 1, 3.0)],
        "a replay overwrites instead of duplicating"
    );
}

pub fn events_order_after_seq_and_limit(fresh: Fresh<'_>) {
    let store = fresh().store;
    let (a, b) = (twin(1), twin(2));
    let mut seqs: Vec<u64> = (1..=300).collect();
    seqs.reverse();
    let (late, early) = seqs.split_at(100);
    for part in [early, late] {
        write(
            &*store,
            WriteBatch {
                events: part
                    .iter()
                    .map(|s| event(a, *s))
                    .chain([event(b, 1000 + part[0])])
                    .collect(),
                ..Default::default()
            },
        );
    }
    let all = store.events(a, 0, 1000).unwrap();
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=300).collect::<Vec<_>>()
    );
    assert_eq!(all[0], event(a, 1), "events round-trip");
    for s in 1..=5 {
        assert_eq!(
            all[s - 1],
            event(a, s as u64),
            "each event kind round-trips"
        );
    }
    let some = store.events(a, 255, 3).unwrap();
    assert_eq!(
        some.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![256, 257, 258],
        "after_seq is exclusive; big-endian order past one byte"
    );
    assert!(store.events(a, 300, 10).unwrap().is_empty());
    assert!(store.events(a, u64::MAX, 10).unwrap().is_empty());
    assert!(store.events(a, 0, 0).unwrap().is_empty());
    assert_eq!(
        store
            .events(b, 0, 10)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>(),
        vec![1200, 1300],
        "no leaking between twins"
    );
    assert!(store.events(twin(3), 0, 10).unwrap().is_empty());
}

pub fn meta_set_get_overwrite(fresh: Fresh<'_>) {
    let store = fresh().store;
    write(
        &*store,
        WriteBatch {
            meta: vec![
                ("a".into(), vec![1]),
                ("ab".into(), vec![2, 0, 255]),
                ("empty".into(), vec![]),
            ],
            ..Default::default()
        },
    );
    assert_eq!(store.get_meta("a").unwrap(), Some(vec![1]));
    assert_eq!(store.get_meta("ab").unwrap(), Some(vec![2, 0, 255]));
    assert_eq!(store.get_meta("empty").unwrap(), Some(vec![]));
    assert_eq!(store.get_meta("abc").unwrap(), None);
    write(
        &*store,
        WriteBatch {
            meta: vec![("a".into(), vec![9, 9])],
            ..Default::default()
        },
    );
    assert_eq!(store.get_meta("a").unwrap(), Some(vec![9, 9]));
}

fn mixed_batch(n: u64) -> WriteBatch {
    WriteBatch {
        states: vec![(twin(1), state(n)), (twin(2), state(n))],
        history: (0..10)
            .map(|i| hist(twin(1), "flow", point(i, n, n as f64)))
            .collect(),
        events: vec![event(twin(1), n)],
        meta: vec![("last".into(), n.to_be_bytes().to_vec())],
        audit: vec![(n, audit_bytes(n))],
    }
}

/// Opaque bytes for audit record `seq`, different for every seq.
pub fn audit_bytes(seq: u64) -> Vec<u8> {
    let mut b = b"audit record ".to_vec();
    b.extend_from_slice(&seq.to_be_bytes());
    b
}

fn audit_seqs(records: &[(u64, Vec<u8>)]) -> Vec<u64> {
    records.iter().map(|(s, _)| *s).collect()
}

pub fn audit_order_after_seq_and_limit(fresh: Fresh<'_>) {
    let store = fresh().store;
    // Written out of order over two batches: reads are ordered by seq.
    write(
        &*store,
        WriteBatch {
            audit: vec![
                (5, audit_bytes(5)),
                (1, audit_bytes(1)),
                (3, audit_bytes(3)),
            ],
            ..Default::default()
        },
    );
    write(
        &*store,
        WriteBatch {
            audit: vec![
                (256, audit_bytes(256)),
                (4, audit_bytes(4)),
                (2, audit_bytes(2)),
            ],
            ..Default::default()
        },
    );
    let all = store.audit(0, usize::MAX).unwrap();
    assert_eq!(audit_seqs(&all), vec![1, 2, 3, 4, 5, 256]);
    for (seq, bytes) in &all {
        assert_eq!(bytes, &audit_bytes(*seq), "bytes of audit record {seq}");
    }
    assert_eq!(audit_seqs(&store.audit(2, 2).unwrap()), vec![3, 4]);
    assert_eq!(audit_seqs(&store.audit(5, 10).unwrap()), vec![256]);
    assert_eq!(audit_seqs(&store.audit(255, 1).unwrap()), vec![256]);
    assert!(store.audit(256, 10).unwrap().is_empty());
    assert!(store.audit(0, 0).unwrap().is_empty());
    assert!(store.audit(u64::MAX, 10).unwrap().is_empty());
}

pub fn audit_bytes_are_kept_as_written(fresh: Fresh<'_>) {
    let store = fresh().store;
    write(
        &*store,
        WriteBatch {
            audit: vec![
                (1, vec![]),
                (2, vec![0, 255, 0]),
                (u64::MAX, vec![7]),
                // Later wins within a batch.
                (2, vec![9]),
            ],
            ..Default::default()
        },
    );
    assert_eq!(
        store.audit(0, 10).unwrap(),
        vec![(1, vec![]), (2, vec![9]), (u64::MAX, vec![7])]
    );
    // Audit records are not meta values, nor the other way round.
    assert_eq!(store.get_meta("1").unwrap(), None);
    write(
        &*store,
        WriteBatch {
            audit: vec![(1, vec![1, 1])],
            ..Default::default()
        },
    );
    assert_eq!(store.audit(0, 1).unwrap(), vec![(1, vec![1, 1])]);
}

pub fn batch_is_all_or_nothing(fresh: Fresh<'_>) {
    let store = fresh().store;
    write(&*store, mixed_batch(1));
    assert_eq!(store.load_state(twin(1)).unwrap(), Some(state(1)));
    assert_eq!(store.load_state(twin(2)).unwrap(), Some(state(1)));
    assert_eq!(all_history(&*store, twin(1), "flow").len(), 10);
    assert_eq!(
        store.events(twin(1), 0, 10).unwrap(),
        vec![event(twin(1), 1)]
    );
    assert_eq!(
        store.get_meta("last").unwrap(),
        Some(1u64.to_be_bytes().to_vec())
    );
    assert_eq!(store.audit(0, 10).unwrap(), vec![(1, audit_bytes(1))]);

    // A batch that must be rejected leaves nothing of itself behind.
    let mut bad = mixed_batch(2);
    bad.history
        .push(hist(twin(1), "bad\0name", point(0, 0, 0.0)));
    let err = store.write(&bad).unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    assert_eq!(store.load_state(twin(1)).unwrap(), Some(state(1)));
    assert_eq!(store.load_state(twin(2)).unwrap(), Some(state(1)));
    assert_eq!(all_history(&*store, twin(1), "flow").len(), 10);
    assert_eq!(store.events(twin(1), 0, 10).unwrap().len(), 1);
    assert_eq!(
        store.get_meta("last").unwrap(),
        Some(1u64.to_be_bytes().to_vec())
    );
    assert_eq!(store.audit(0, 10).unwrap(), vec![(1, audit_bytes(1))]);
}

pub fn concurrent_readers_never_see_half_a_batch(fresh: Fresh<'_>) {
    let store = fresh().store;
    let store: &dyn Store = &*store;
    let id = twin(1);
    let done = AtomicBool::new(false);
    const BATCHES: u64 = 150;
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut checks = 0u64;
            loop {
                // Each batch n holds state seq n, history point seq n and
                // event seq n. Reading one kind, then another, the second
                // must already show at least what the first showed.
                let finished = done.load(Ordering::Acquire);
                let st = store.load_state(id).unwrap().map_or(0, |r| r.seq);
                let hist = all_history(store, id, "flow").len() as u64;
                let ev = store.events(id, 0, usize::MAX).unwrap().len() as u64;
                let au = store.audit(0, usize::MAX).unwrap().len() as u64;
                let st2 = store.load_state(id).unwrap().map_or(0, |r| r.seq);
                assert!(
                    hist >= st,
                    "state seq {st} visible but only {hist} history points"
                );
                assert!(
                    ev >= hist,
                    "{hist} history points visible but only {ev} events"
                );
                assert!(au >= ev, "{ev} events visible but only {au} audit records");
                assert!(st2 >= au, "{au} audit records visible but state seq {st2}");
                checks += 1;
                if finished {
                    assert_eq!((st, hist, ev, au), (BATCHES, BATCHES, BATCHES, BATCHES));
                    return checks;
                }
            }
        });
        for n in 1..=BATCHES {
            write(
                store,
                WriteBatch {
                    states: vec![(id, state(n))],
                    history: vec![hist(id, "flow", point(n as i64, n, 0.0))],
                    events: vec![event(id, n)],
                    meta: vec![],
                    audit: vec![(n, audit_bytes(n))],
                },
            );
        }
        done.store(true, Ordering::Release);
        let checks = reader.join().expect("reader saw a half-applied batch");
        assert!(checks > 0);
    });
}

pub fn large_batch(fresh: Fresh<'_>) {
    let store = fresh().store;
    let id = twin(1);
    let before = store.stats();
    write(
        &*store,
        WriteBatch {
            states: (0..1000).map(|i| (twin(i), state(u64::from(i)))).collect(),
            history: (0..10_000)
                .map(|i| hist(id, "flow", point(i / 2, (i % 2) as u64, i as f64)))
                .collect(),
            events: (1..=1000).map(|s| event(id, s)).collect(),
            meta: vec![],
            audit: (1..=1000).map(|s| (s, audit_bytes(s))).collect(),
        },
    );
    let points = store
        .history(id, "flow", Timestamp(i64::MIN), Timestamp::MAX, 20_000)
        .unwrap();
    assert_eq!(points.len(), 10_000);
    for (i, p) in points.iter().enumerate() {
        assert_eq!(p, &point(i as i64 / 2, (i % 2) as u64, i as f64));
    }
    assert_eq!(store.events(id, 0, usize::MAX).unwrap().len(), 1000);
    assert_eq!(store.audit(0, usize::MAX).unwrap().len(), 1000);
    assert_eq!(store.load_state(twin(999)).unwrap(), Some(state(999)));
    let after = store.stats();
    assert_eq!(after.batches, before.batches + 1);
    assert_eq!(after.history_written, before.history_written + 10_000);
}

pub fn reopen_keeps_everything(fresh: Fresh<'_>) {
    let Opened { store, reopen } = fresh();
    let Some(reopen) = reopen else {
        return;
    };
    write(&*store, mixed_batch(1));
    write(&*store, mixed_batch(2));
    drop(store);

    let check = |store: &dyn Store, n: u64| {
        assert_eq!(store.load_state(twin(1)).unwrap(), Some(state(n)));
        assert_eq!(store.load_state(twin(2)).unwrap(), Some(state(n)));
        let h = all_history(store, twin(1), "flow");
        assert_eq!(h.len(), 10 * n as usize);
        assert_eq!(h[0], point(0, 1, 1.0));
        assert_eq!(
            store.events(twin(1), 0, 100).unwrap(),
            (1..=n).map(|s| event(twin(1), s)).collect::<Vec<_>>()
        );
        assert_eq!(
            store.get_meta("last").unwrap(),
            Some(n.to_be_bytes().to_vec())
        );
        assert_eq!(
            store.audit(0, 100).unwrap(),
            (1..=n).map(|s| (s, audit_bytes(s))).collect::<Vec<_>>()
        );
        let mut count = 0;
        store
            .scan_states(&mut |_, _| {
                count += 1;
                true
            })
            .unwrap();
        assert_eq!(count, 2);
    };
    let store = reopen();
    check(&*store, 2);
    write(&*store, mixed_batch(3));
    drop(store);
    let store = reopen();
    check(&*store, 3);
}

pub fn stats_count_writes(fresh: Fresh<'_>) {
    let store = fresh().store;
    let before = store.stats();
    write(&*store, mixed_batch(1));
    write(&*store, mixed_batch(2));
    store.write(&WriteBatch::default()).unwrap();
    let after = store.stats();
    assert_eq!(
        after.batches,
        before.batches + 2,
        "empty batches are not counted"
    );
    assert_eq!(after.states_written, before.states_written + 4);
    assert_eq!(after.history_written, before.history_written + 20);
    assert_eq!(after.events_written, before.events_written + 2);
    assert_eq!(after.audit_written, before.audit_written + 2);
}
