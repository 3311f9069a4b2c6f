//! Golden-byte fixtures of every persisted record.
//!
//! Each fixed record below must encode to exactly the bytes checked in under
//! `tests/fixtures/golden/`, and those bytes must decode back to it. A
//! failure means the on-disk format changed: add a record version (see
//! `twins::store::codec`) instead of re-blessing, unless the format has never
//! shipped. To write the fixtures anew, run with `TWINRT_BLESS=1`.

use std::path::PathBuf;
use std::sync::Arc;

use twins::alarm::{AlarmMode, AlarmRecord, AlarmState};
use twins::store::codec::{self, MetaValue, Persisted};
use twins::store::{AlarmTransitionRecord, Event, EventRecord, HistoryPoint, TwinRecord, hex};
use twins::{Quality, Reason, Slot, Timestamp, TwinId, TwinPath, Value};

fn twin() -> TwinId {
    TwinPath::parse("acme/east/plant-3/crude-unit/p-101")
        .unwrap()
        .id()
}

fn twin_record() -> TwinRecord {
    TwinRecord {
        class: "CentrifugalPump".into(),
        seq: 4242,
        updated: Timestamp(1_795_000_000_123_456),
        props: vec![
            (
                "flow".into(),
                Slot::new(
                    Value::F64(123.25),
                    Quality::Good,
                    Timestamp(1_795_000_000_000_000),
                ),
            ),
            (
                "starts".into(),
                Slot::new(
                    Value::I64(-17),
                    Quality::Uncertain(Reason::Stale),
                    Timestamp(-1),
                ),
            ),
            (
                "running".into(),
                Slot::new(
                    Value::Bool(true),
                    Quality::Bad(Reason::CommFailure),
                    Timestamp(0),
                ),
            ),
            (
                "tag".into(),
                Slot::new(
                    Value::String(Arc::from("P-101 ✓")),
                    Quality::Uncertain(Reason::ManualOverride),
                    Timestamp(5),
                ),
            ),
            (
                "state".into(),
                Slot::new(
                    Value::Enum(2),
                    Quality::Bad(Reason::SensorFault),
                    Timestamp(6),
                ),
            ),
            ("spare".into(), Slot::default()),
        ],
        alarms: vec![
            ("low_flow".into(), AlarmRecord::default()),
            (
                "high_discharge_pressure".into(),
                AlarmRecord {
                    state: AlarmState::ActiveUnacked,
                    mode: AlarmMode::Shelved {
                        until: Timestamp(1_795_000_360_000_000),
                    },
                    condition: true,
                    pending_since: Some(Timestamp(1_794_999_995_000_000)),
                    since: Timestamp(1_795_000_000_000_000),
                },
            ),
            (
                "seal_leak".into(),
                AlarmRecord {
                    state: AlarmState::ReturnedUnacked,
                    mode: AlarmMode::Suppressed,
                    condition: false,
                    pending_since: None,
                    since: Timestamp(7),
                },
            ),
            (
                "vibration".into(),
                AlarmRecord {
                    state: AlarmState::ActiveAcked,
                    mode: AlarmMode::OutOfService,
                    condition: true,
                    pending_since: None,
                    since: Timestamp(8),
                },
            ),
        ],
    }
}

fn history_point() -> HistoryPoint {
    HistoryPoint {
        ts: Timestamp(1_795_000_000_000_000),
        seq: 300,
        value: Value::F64(-0.5),
        quality: Quality::Uncertain(Reason::OutOfRange),
    }
}

fn event(seq: u64, event: Event) -> EventRecord {
    EventRecord {
        twin: twin(),
        seq,
        at: Timestamp(1_795_000_000_000_000 + seq as i64),
        event,
    }
}

fn event_alarm() -> EventRecord {
    event(
        1,
        Event::Alarm {
            alarm: "high_discharge_pressure".into(),
            transition: AlarmTransitionRecord {
                from_state: AlarmState::ActiveUnacked,
                to_state: AlarmState::ActiveAcked,
                from_mode: AlarmMode::Enabled,
                to_mode: AlarmMode::Shelved {
                    until: Timestamp(99),
                },
                cause: "acknowledged by alice".into(),
            },
        },
    )
}

fn event_mode() -> EventRecord {
    event(
        2,
        Event::Mode {
            from: "running".into(),
            to: "stopped".into(),
            reason: "running = false".into(),
        },
    )
}

fn event_operator_action() -> EventRecord {
    event(
        3,
        Event::OperatorAction {
            who: "alice".into(),
            action: "shelve high_discharge_pressure 1h".into(),
        },
    )
}

fn event_restarted() -> EventRecord {
    event(
        256,
        Event::Restarted {
            reason: "handler panicked: index out of bounds".into(),
        },
    )
}

fn event_note() -> EventRecord {
    event(65_536, Event::Note("pump swapped during turnaround".into()))
}

fn meta() -> MetaValue {
    MetaValue(vec![0, 1, 2, 0xfe, 0xff])
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden")
}

fn blessing() -> bool {
    std::env::var_os("TWINRT_BLESS").is_some_and(|v| v == "1")
}

/// Hex, 32 bytes a line, after a comment naming the record.
fn to_fixture(name: &str, bytes: &[u8]) -> String {
    let mut text = format!(
        "# golden bytes of `{name}`: [kind tag][version][postcard body], {} bytes\n\
         # regenerate only with TWINRT_BLESS=1 (see twins/tests/store_golden.rs)\n",
        bytes.len()
    );
    for chunk in bytes.chunks(32) {
        text.push_str(&hex(chunk));
        text.push('\n');
    }
    text
}

fn from_fixture(text: &str) -> Vec<u8> {
    let digits: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
        .collect();
    assert!(digits.len().is_multiple_of(2), "odd number of hex digits");
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn check<T: Persisted + PartialEq + std::fmt::Debug>(name: &str, record: T) {
    let file = fixture_dir().join(format!("{name}.v{}.hex", T::VERSION));
    let encoded = codec::encode(&record).unwrap();
    if blessing() {
        std::fs::create_dir_all(fixture_dir()).unwrap();
        std::fs::write(&file, to_fixture(name, &encoded)).unwrap();
        eprintln!("blessed {}", file.display());
    }
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!(
            "cannot read fixture {} ({e}); run with TWINRT_BLESS=1 to create it",
            file.display()
        )
    });
    let golden = from_fixture(&text);
    assert_eq!(
        hex(&encoded),
        hex(&golden),
        "`{name}` no longer encodes to its golden bytes: the on-disk format changed"
    );
    assert_eq!(
        codec::decode::<T>(&golden).unwrap(),
        record,
        "`{name}` golden bytes decode back"
    );
}

#[test]
fn twin_record_matches_its_golden_bytes() {
    check("twin_record", twin_record());
}

#[test]
fn history_point_matches_its_golden_bytes() {
    check("history_point", history_point());
}

#[test]
fn events_match_their_golden_bytes() {
    check("event_alarm", event_alarm());
    check("event_mode", event_mode());
    check("event_operator_action", event_operator_action());
    check("event_restarted", event_restarted());
    check("event_note", event_note());
}

#[test]
fn meta_matches_its_golden_bytes() {
    check("meta", meta());
}

#[test]
fn every_fixture_is_checked() {
    let known = [
        "twin_record.v1.hex",
        "history_point.v1.hex",
        "event_alarm.v1.hex",
        "event_mode.v1.hex",
        "event_operator_action.v1.hex",
        "event_restarted.v1.hex",
        "event_note.v1.hex",
        "meta.v1.hex",
    ];
    let mut found: Vec<String> = std::fs::read_dir(fixture_dir())
        .expect("fixture directory")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut known: Vec<String> = known.iter().map(|s| s.to_string()).collect();
    known.sort();
    assert_eq!(
        found, known,
        "a fixture without a test, or a test without a fixture"
    );
}

#[test]
fn fixtures_start_with_their_kind_and_version() {
    let bytes =
        from_fixture(&std::fs::read_to_string(fixture_dir().join("twin_record.v1.hex")).unwrap());
    assert_eq!(&bytes[..2], b"S\x01");
    let bytes =
        from_fixture(&std::fs::read_to_string(fixture_dir().join("history_point.v1.hex")).unwrap());
    assert_eq!(&bytes[..2], b"H\x01");
    // The current version must not read a body it does not know.
    let mut newer = bytes.clone();
    newer[1] = 2;
    let err = codec::decode::<HistoryPoint>(&newer).unwrap_err();
    assert_eq!(
        err.to_string(),
        "history point record has version 2, expected version 1 or an older one this build can upgrade"
    );
}
