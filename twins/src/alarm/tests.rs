//! Tests of the alarm state machine. The two tables below are written by hand
//! from ISA-18.2 and the rules in the module docs, not derived from the code.

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;

use super::*;

/// Seconds since the Unix epoch at which the table's offsets start.
const T0: i64 = 1_800_000_000;

fn at(offset_s: i64) -> Timestamp {
    Timestamp::from_micros((T0 + offset_s) * 1_000_000)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The table's timing: raise after 10 s, clear after 20 s.
const DELAYED: AlarmTiming = AlarmTiming {
    on_delay: Duration::from_secs(10),
    off_delay: Duration::from_secs(20),
};

/// Every configuration (state, mode, raw condition, pending delay) that a
/// machine can be in, crossed with every input. Configurations start with
/// `since = -100 s`; a pending delay (`p`) runs since 0 s; `Sh` is shelved until
/// 60 s. Events: `u1@5` = `update(true)` at 5 s with the delays above; `u1!` =
/// `update(true)` at 5 s with no delays; `t@30` = `tick` at 30 s; `ack`,
/// `shelve` (until 60 s), `unshelve`, `sup1`/`sup0`, `oos1`/`oos0` at 5 s.
/// Outcome: final `state mode condition pending` (`pN`: pending since N s) and
/// the transitions `from>to cause@time`, or `err KIND` with the machine unchanged.
const TRANSITION_TABLE: &str = include_str!("transition_table.txt");

/// Every record (state × mode × condition × pending_since set or not), and what
/// `from_record` makes of it. Records have `since = -100 s`; `p` means
/// `pending_since = 0 s`.
const NORMALISATION_TABLE: &str = "
N  E  0 . | N  E  0 .
N  E  0 p | N  E  0 .
N  E  1 . | N  E  1 p-100
N  E  1 p | N  E  1 p0
AU E  0 . | AU E  0 p-100
AU E  0 p | AU E  0 p0
AU E  1 . | AU E  1 .
AU E  1 p | AU E  1 .
AA E  0 . | AA E  0 p-100
AA E  0 p | AA E  0 p0
AA E  1 . | AA E  1 .
AA E  1 p | AA E  1 .
RU E  0 . | RU E  0 .
RU E  0 p | RU E  0 .
RU E  1 . | RU E  1 p-100
RU E  1 p | RU E  1 p0
N  Sh 0 . | N  Sh 0 .
N  Sh 0 p | N  Sh 0 .
N  Sh 1 . | N  Sh 1 p-100
N  Sh 1 p | N  Sh 1 p0
AU Sh 0 . | AA Sh 0 p-100
AU Sh 0 p | AA Sh 0 p0
AU Sh 1 . | AA Sh 1 .
AU Sh 1 p | AA Sh 1 .
AA Sh 0 . | AA Sh 0 p-100
AA Sh 0 p | AA Sh 0 p0
AA Sh 1 . | AA Sh 1 .
AA Sh 1 p | AA Sh 1 .
RU Sh 0 . | N  Sh 0 .
RU Sh 0 p | N  Sh 0 .
RU Sh 1 . | N  Sh 1 p-100
RU Sh 1 p | N  Sh 1 p0
N  Su 0 . | N  Su 0 .
N  Su 0 p | N  Su 0 .
N  Su 1 . | N  Su 1 p-100
N  Su 1 p | N  Su 1 p0
AU Su 0 . | AA Su 0 p-100
AU Su 0 p | AA Su 0 p0
AU Su 1 . | AA Su 1 .
AU Su 1 p | AA Su 1 .
AA Su 0 . | AA Su 0 p-100
AA Su 0 p | AA Su 0 p0
AA Su 1 . | AA Su 1 .
AA Su 1 p | AA Su 1 .
RU Su 0 . | N  Su 0 .
RU Su 0 p | N  Su 0 .
RU Su 1 . | N  Su 1 p-100
RU Su 1 p | N  Su 1 p0
N  O  0 . | N  O  0 .
N  O  0 p | N  O  0 .
N  O  1 . | N  O  1 p-100
N  O  1 p | N  O  1 p0
AU O  0 . | AA O  0 p-100
AU O  0 p | AA O  0 p0
AU O  1 . | AA O  1 .
AU O  1 p | AA O  1 .
AA O  0 . | AA O  0 p-100
AA O  0 p | AA O  0 p0
AA O  1 . | AA O  1 .
AA O  1 p | AA O  1 .
RU O  0 . | N  O  0 .
RU O  0 p | N  O  0 .
RU O  1 . | N  O  1 p-100
RU O  1 p | N  O  1 p0
";

const EVENTS: [&str; 16] = [
    "u1@5", "u1@30", "u0@5", "u0@30", "u1!", "u0!", "t@5", "t@30", "ack", "shelve", "unshelve",
    "t@60", "sup1", "sup0", "oos1", "oos0",
];

fn parse_state(s: &str) -> AlarmState {
    match s {
        "N" => AlarmState::Normal,
        "AU" => AlarmState::ActiveUnacked,
        "AA" => AlarmState::ActiveAcked,
        "RU" => AlarmState::ReturnedUnacked,
        other => panic!("bad state code {other:?}"),
    }
}

fn parse_mode(s: &str) -> AlarmMode {
    match s {
        "E" => AlarmMode::Enabled,
        "Sh" => AlarmMode::Shelved { until: at(60) },
        "Su" => AlarmMode::Suppressed,
        "O" => AlarmMode::OutOfService,
        other => panic!("bad mode code {other:?}"),
    }
}

fn parse_cause(s: &str) -> Cause {
    match s {
        "raise" => Cause::ConditionRaised,
        "clear" => Cause::ConditionCleared,
        "ack" => Cause::Acknowledged,
        "shelve" => Cause::Shelved,
        "unshelve" => Cause::Unshelved,
        "expire" => Cause::ShelveExpired,
        "sup" => Cause::Suppressed,
        "unsup" => Cause::Unsuppressed,
        "oos" => Cause::RemovedFromService,
        "ret" => Cause::ReturnedToService,
        other => panic!("bad cause code {other:?}"),
    }
}

fn err_code(e: &AlarmError) -> &'static str {
    match e {
        AlarmError::NothingToAcknowledge => "normal",
        AlarmError::AlreadyAcknowledged => "acked",
        AlarmError::NotAnnunciated { .. } => "notenabled",
        AlarmError::AlreadyShelved { .. } => "shelved",
        AlarmError::ShelveOutOfService => "shelveoos",
        AlarmError::ShelveExpiryInPast { .. } => "past",
        AlarmError::NotShelved { .. } => "notshelved",
        AlarmError::AlreadyOutOfService => "alreadyoos",
        AlarmError::NotOutOfService { .. } => "notoos",
    }
}

/// `STATE MODE COND PENDING` where PENDING is `.`, `p` (since 0 s) or `pN`.
fn parse_record(s: &str) -> AlarmRecord {
    let f: Vec<&str> = s.split_whitespace().collect();
    assert_eq!(f.len(), 4, "bad record {s:?}");
    let pending_since = match f[3] {
        "." => None,
        "p" => Some(at(0)),
        p => Some(at(p[1..].parse().expect("pending offset"))),
    };
    AlarmRecord {
        state: parse_state(f[0]),
        mode: parse_mode(f[1]),
        condition: f[2] == "1",
        pending_since,
        since: at(-100),
    }
}

/// `S.M>S.M cause@N`
fn parse_transition(s: &str) -> Transition {
    let (pair, rest) = s.trim().split_once(' ').expect("transition needs a cause");
    let (from, to) = pair.split_once('>').expect("transition needs >");
    let sm = |x: &str| {
        let (s, m) = x.split_once('.').expect("state.mode");
        (parse_state(s), parse_mode(m))
    };
    let (cause, time) = rest.split_once('@').expect("cause@time");
    Transition {
        from: sm(from),
        to: sm(to),
        at: at(time.parse().expect("time")),
        cause: parse_cause(cause),
    }
}

fn run_event(m: &mut AlarmMachine, ev: &str) -> Result<Vec<Transition>, AlarmError> {
    let five = at(5);
    Ok(match ev {
        "u1@5" => m.update(&DELAYED, true, five).to_vec(),
        "u1@30" => m.update(&DELAYED, true, at(30)).to_vec(),
        "u0@5" => m.update(&DELAYED, false, five).to_vec(),
        "u0@30" => m.update(&DELAYED, false, at(30)).to_vec(),
        "u1!" => m.update(&AlarmTiming::IMMEDIATE, true, five).to_vec(),
        "u0!" => m.update(&AlarmTiming::IMMEDIATE, false, five).to_vec(),
        "t@5" => m.tick(&DELAYED, five).to_vec(),
        "t@30" => m.tick(&DELAYED, at(30)).to_vec(),
        "t@60" => m.tick(&DELAYED, at(60)).to_vec(),
        "ack" => vec![m.acknowledge(five)?],
        "shelve" => vec![m.shelve(at(60), five)?],
        "unshelve" => vec![m.unshelve(five)?],
        "sup1" => m.set_suppressed(true, five).into_iter().collect(),
        "sup0" => m.set_suppressed(false, five).into_iter().collect(),
        "oos1" => vec![m.set_out_of_service(true, five)?],
        "oos0" => vec![m.set_out_of_service(false, five)?],
        other => panic!("bad event {other:?}"),
    })
}

#[test]
fn exhaustive_transition_table() {
    let mut seen = BTreeSet::new();
    let mut configs = BTreeSet::new();
    let mut failures = Vec::new();
    for (lineno, line) in TRANSITION_TABLE.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        assert_eq!(cols.len(), 4, "line {}: {line:?}", lineno + 1);
        let (config, event, outcome, transitions) = (cols[0], cols[1], cols[2], cols[3]);
        assert!(
            EVENTS.contains(&event),
            "line {}: unknown event {event}",
            lineno + 1
        );
        assert!(
            seen.insert((config.split_whitespace().collect::<Vec<_>>(), event)),
            "line {}: duplicate row",
            lineno + 1
        );
        configs.insert(config.split_whitespace().collect::<Vec<_>>().join(" "));

        let rec = parse_record(config);
        let mut m = AlarmMachine::from_record(rec);
        assert_eq!(
            m.record(),
            rec,
            "line {}: config is not a reachable record",
            lineno + 1
        );
        let before = m;
        let got = run_event(&mut m, event);
        let ok = match outcome.strip_prefix("err ") {
            Some(kind) => matches!(&got, Err(e) if err_code(e) == kind) && m == before,
            None => {
                let mut want = parse_record(outcome);
                let want_ts: Vec<Transition> = transitions
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(parse_transition)
                    .collect();
                want.since = want_ts.last().map_or(at(-100), |t| t.at);
                got.as_ref().is_ok_and(|ts| *ts == want_ts) && m.record() == want
            }
        };
        if !ok {
            failures.push(format!(
                "line {}: {config} | {event}: expected {outcome} {transitions}, got {got:?} -> {:?}",
                lineno + 1,
                m.record()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows differ:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Coverage: every reachable configuration crossed with every event.
    let mut reachable = BTreeSet::new();
    for state in ["N", "AU", "AA", "RU"] {
        for mode in ["E", "Sh", "Su", "O"] {
            for cond in ["0", "1"] {
                if mode != "E" && matches!(state, "AU" | "RU") {
                    continue;
                }
                let active = matches!(state, "AU" | "AA");
                let pending = if (cond == "1") != active { "p" } else { "." };
                reachable.insert(format!("{state} {mode} {cond} {pending}"));
            }
        }
    }
    assert_eq!(configs, reachable);
    assert_eq!(seen.len(), reachable.len() * EVENTS.len());
}

#[test]
fn every_record_normalises_as_tabled() {
    let mut n = 0;
    for line in NORMALISATION_TABLE.lines().filter(|l| !l.trim().is_empty()) {
        let (rec, want) = line.split_once('|').expect("two columns");
        let m = AlarmMachine::from_record(parse_record(rec));
        assert_eq!(m.record(), parse_record(want), "{line}");
        // Normalised records are fixed points.
        assert_eq!(AlarmMachine::from_record(m.record()), m, "{line}");
        n += 1;
    }
    assert_eq!(n, 4 * 4 * 2 * 2);
}

fn fresh() -> AlarmMachine {
    AlarmMachine::from_record(AlarmRecord {
        since: at(0),
        ..AlarmRecord::default()
    })
}

#[test]
fn bouncing_inside_the_on_delay_never_raises() {
    let mut m = fresh();
    let timing = AlarmTiming {
        on_delay: secs(10),
        off_delay: Duration::ZERO,
    };
    for (t, c) in [
        (1, true),
        (4, false),
        (5, true),
        (14, false),
        (15, true),
        (24, false),
    ] {
        assert!(m.update(&timing, c, at(t)).is_empty(), "at {t}");
        assert!(m.tick(&timing, at(t)).is_empty());
    }
    assert_eq!(m.state(), AlarmState::Normal);
    assert_eq!(m.next_deadline(&timing), None);
    assert!(m.tick(&timing, at(1000)).is_empty());
    // Held for the full delay from 30 s: raises exactly at 40 s.
    assert!(m.update(&timing, true, at(30)).is_empty());
    assert!(
        m.tick(&timing, at(40).saturating_sub(Duration::from_micros(1)))
            .is_empty()
    );
    let ts = m.tick(&timing, at(40));
    assert_eq!(ts.len(), 1);
    assert_eq!(ts[0].at, at(40));
    assert_eq!(ts[0].cause, Cause::ConditionRaised);
    assert_eq!(m.state(), AlarmState::ActiveUnacked);
}

#[test]
fn bouncing_inside_the_off_delay_never_clears() {
    let timing = AlarmTiming {
        on_delay: Duration::ZERO,
        off_delay: secs(20),
    };
    let mut m = fresh();
    assert_eq!(m.update(&timing, true, at(0)).len(), 1);
    for (t, c) in [(1, false), (19, true), (20, false), (39, true), (40, false)] {
        assert!(m.update(&timing, c, at(t)).is_empty(), "at {t}");
    }
    assert_eq!(m.state(), AlarmState::ActiveUnacked);
    assert_eq!(m.next_deadline(&timing), Some(at(60)));
    assert!(m.tick(&timing, at(59)).is_empty());
    let ts = m.tick(&timing, at(60));
    assert_eq!(ts.len(), 1);
    assert_eq!(ts[0].to, (AlarmState::ReturnedUnacked, AlarmMode::Enabled));
    assert_eq!(ts[0].at, at(60));
}

#[test]
fn an_update_exactly_at_the_deadline_sees_the_delay_fire_first() {
    let mut m = fresh();
    assert!(m.update(&DELAYED, true, at(0)).is_empty());
    // A value of `false` arriving at 10 s: the condition held for the full 10 s.
    let ts = m.update(&DELAYED, false, at(10));
    assert_eq!(ts.len(), 1);
    assert_eq!(ts[0].cause, Cause::ConditionRaised);
    assert_eq!(ts[0].at, at(10));
    assert_eq!(m.pending_since(), Some(at(10)));
    // One microsecond short of the delay does not raise.
    let mut m = fresh();
    m.update(&DELAYED, true, at(0));
    let ts = m.update(
        &DELAYED,
        false,
        at(10).saturating_sub(Duration::from_micros(1)),
    );
    assert!(ts.is_empty());
    assert_eq!(m.state(), AlarmState::Normal);
    assert_eq!(m.pending_since(), None);
}

#[test]
fn a_late_update_yields_everything_that_happened_in_between() {
    // Shelved until 3 s, condition raised at 0 s with a 5 s on-delay, then the
    // next sample (false, no off-delay) only at 10 s: expiry, raise and clear.
    let timing = AlarmTiming {
        on_delay: secs(5),
        off_delay: Duration::ZERO,
    };
    let mut m = fresh();
    m.shelve(at(3), at(0)).unwrap();
    m.update(&timing, true, at(0));
    let ts = m.update(&timing, false, at(10));
    let got: Vec<_> = ts.iter().map(|t| (t.cause, t.at, t.to.0)).collect();
    assert_eq!(
        got,
        [
            (Cause::ShelveExpired, at(3), AlarmState::Normal),
            (Cause::ConditionRaised, at(5), AlarmState::ActiveUnacked),
            (Cause::ConditionCleared, at(10), AlarmState::ReturnedUnacked),
        ]
    );
    assert_eq!(ts.len(), Transitions::CAPACITY);
    assert!(m.needs_ack());
}

#[test]
fn shelve_expires_at_until_and_re_annunciates() {
    let mut m = fresh();
    m.update(&AlarmTiming::IMMEDIATE, true, at(0));
    m.acknowledge(at(1)).unwrap();
    m.shelve(at(100), at(2)).unwrap();
    assert_eq!(m.state(), AlarmState::ActiveAcked);
    assert!(!m.is_annunciated());
    assert_eq!(m.next_deadline(&DELAYED), Some(at(100)));
    assert!(m.tick(&DELAYED, at(99)).is_empty());
    let ts = m.tick(&DELAYED, at(100));
    assert_eq!(ts.len(), 1);
    assert_eq!(ts[0].cause, Cause::ShelveExpired);
    assert_eq!(ts[0].to, (AlarmState::ActiveUnacked, AlarmMode::Enabled));
    assert!(m.needs_ack() && m.is_annunciated());
    assert_eq!(m.next_deadline(&DELAYED), None);
}

#[test]
fn shelve_refuses_an_expiry_that_is_not_in_the_future() {
    let mut m = fresh();
    for until in [at(9), at(10)] {
        assert_eq!(
            m.shelve(until, at(10)),
            Err(AlarmError::ShelveExpiryInPast { until, now: at(10) })
        );
    }
    assert_eq!(m, fresh());
    // `now` before the machine's last change counts as that change.
    let mut m = fresh();
    m.set_suppressed(true, at(50));
    assert_eq!(
        m.shelve(at(40), at(30)),
        Err(AlarmError::ShelveExpiryInPast {
            until: at(40),
            now: at(50)
        })
    );
}

#[test]
fn next_deadline_is_the_earlier_of_delay_and_expiry() {
    let mut m = fresh();
    assert_eq!(m.next_deadline(&DELAYED), None);
    m.update(&DELAYED, true, at(5));
    assert_eq!(m.next_deadline(&DELAYED), Some(at(15)));
    // The deadline follows the timing it is asked about (a class reload).
    assert_eq!(m.next_deadline(&AlarmTiming::IMMEDIATE), Some(at(5)));
    m.shelve(at(12), at(6)).unwrap();
    assert_eq!(m.next_deadline(&DELAYED), Some(at(12)));
    m.unshelve(at(7)).unwrap();
    m.shelve(at(100), at(8)).unwrap();
    assert_eq!(m.next_deadline(&DELAYED), Some(at(15)));
    m.tick(&DELAYED, at(15));
    assert_eq!(m.next_deadline(&DELAYED), Some(at(100)));
    m.update(&DELAYED, false, at(20));
    assert_eq!(m.next_deadline(&DELAYED), Some(at(40)));
}

#[test]
fn time_never_runs_backwards_inside_a_machine() {
    let mut m = fresh();
    m.update(&DELAYED, true, at(100));
    // An older sample does not move the delay's start earlier.
    m.update(&DELAYED, true, at(50));
    assert_eq!(m.pending_since(), Some(at(100)));
    assert!(m.tick(&DELAYED, at(105)).is_empty());
    // A delay that came due before a later command fires at the command's time.
    m.set_out_of_service(true, at(200)).unwrap();
    let ts = m.tick(&DELAYED, at(300));
    assert_eq!(ts.len(), 1);
    assert_eq!(ts[0].at, at(200));
    let ack = fresh().set_out_of_service(false, at(0));
    assert!(ack.is_err());
}

#[test]
fn new_machine_is_normal_enabled_and_quiet() {
    let m = AlarmMachine::new();
    assert_eq!(m.record(), AlarmRecord::default());
    assert_eq!(AlarmMachine::default(), m);
    assert!(!m.needs_ack() && !m.is_annunciated());
}

#[test]
fn suppression_and_shelving_keep_tracking_the_condition() {
    let mut m = fresh();
    m.set_suppressed(true, at(0));
    m.update(&AlarmTiming::IMMEDIATE, true, at(1));
    assert_eq!(m.state(), AlarmState::ActiveAcked);
    assert!(!m.needs_ack() && !m.is_annunciated());
    // Shelving a suppressed alarm keeps it quiet past the suppression.
    m.shelve(at(100), at(2)).unwrap();
    assert_eq!(m.set_suppressed(false, at(3)), None);
    assert_eq!(m.mode(), AlarmMode::Shelved { until: at(100) });
    m.update(&AlarmTiming::IMMEDIATE, false, at(4));
    assert_eq!(m.state(), AlarmState::Normal);
    let t = m.unshelve(at(5)).unwrap();
    assert_eq!(t.to, (AlarmState::Normal, AlarmMode::Enabled));
    assert!(!m.needs_ack());
}

#[test]
fn errors_are_lowercase_and_say_expected_and_found() {
    let errors = [
        AlarmError::NothingToAcknowledge,
        AlarmError::AlreadyAcknowledged,
        AlarmError::NotAnnunciated {
            mode: AlarmMode::Suppressed,
        },
        AlarmError::AlreadyShelved { until: at(0) },
        AlarmError::ShelveOutOfService,
        AlarmError::ShelveExpiryInPast {
            until: at(0),
            now: at(1),
        },
        AlarmError::NotShelved {
            mode: AlarmMode::Enabled,
        },
        AlarmError::AlreadyOutOfService,
        AlarmError::NotOutOfService {
            mode: AlarmMode::Shelved { until: at(0) },
        },
    ];
    for e in errors {
        let msg = e.to_string();
        assert!(msg.starts_with(|c: char| c.is_ascii_lowercase()), "{msg}");
        assert!(!msg.ends_with('.'), "{msg}");
        assert!(msg.contains("expected") && msg.contains("found"), "{msg}");
    }
    assert_eq!(
        AlarmError::NotShelved {
            mode: AlarmMode::Shelved { until: at(0) }
        }
        .to_string(),
        "not shelved: expected mode shelved, found shelved until 2027-01-15T08:00:00.000Z"
    );
}

#[test]
fn transitions_survive_postcard() {
    let t = Transition {
        from: (AlarmState::Normal, AlarmMode::Shelved { until: at(3) }),
        to: (AlarmState::ActiveUnacked, AlarmMode::Enabled),
        at: at(4),
        cause: Cause::ShelveExpired,
    };
    let bytes = postcard::to_allocvec(&t).unwrap();
    assert_eq!(postcard::from_bytes::<Transition>(&bytes).unwrap(), t);
}

// ---- properties ----

fn any_state() -> impl Strategy<Value = AlarmState> {
    prop::sample::select(AlarmState::ALL.to_vec())
}

fn any_mode() -> impl Strategy<Value = AlarmMode> {
    prop_oneof![
        Just(AlarmMode::Enabled),
        (-1_000i64..1_000).prop_map(|s| AlarmMode::Shelved { until: at(s) }),
        Just(AlarmMode::Suppressed),
        Just(AlarmMode::OutOfService),
    ]
}

fn any_record() -> impl Strategy<Value = AlarmRecord> {
    (
        any_state(),
        any_mode(),
        any::<bool>(),
        prop::option::of(-1_000i64..1_000),
        -1_000i64..1_000,
    )
        .prop_map(|(state, mode, condition, p, since)| AlarmRecord {
            state,
            mode,
            condition,
            pending_since: p.map(at),
            since: at(since),
        })
}

#[derive(Debug, Clone, Copy)]
enum Ev {
    Update(bool),
    Tick,
    Ack,
    Shelve(u32),
    Unshelve,
    Suppress(bool),
    Oos(bool),
}

fn any_event() -> impl Strategy<Value = Ev> {
    prop_oneof![
        6 => any::<bool>().prop_map(Ev::Update),
        3 => Just(Ev::Tick),
        2 => Just(Ev::Ack),
        1 => (0u32..60).prop_map(Ev::Shelve),
        1 => Just(Ev::Unshelve),
        2 => any::<bool>().prop_map(Ev::Suppress),
        1 => any::<bool>().prop_map(Ev::Oos),
    ]
}

fn any_timing() -> impl Strategy<Value = AlarmTiming> {
    (
        prop::sample::select(vec![0u64, 1_000, 5_000, 10_000]),
        prop::sample::select(vec![0u64, 2_000, 7_000]),
    )
        .prop_map(|(on, off)| AlarmTiming {
            on_delay: Duration::from_millis(on),
            off_delay: Duration::from_millis(off),
        })
}

fn check_invariants(m: &AlarmMachine) -> Result<(), TestCaseError> {
    let s = m.state();
    if !m.mode().is_enabled() {
        prop_assert!(
            matches!(s, AlarmState::Normal | AlarmState::ActiveAcked),
            "{m:?}"
        );
    }
    prop_assert_eq!(
        m.pending_since().is_some(),
        m.condition() != s.is_active(),
        "{:?}",
        m
    );
    if m.needs_ack() {
        prop_assert!(s != AlarmState::Normal && s != AlarmState::ActiveAcked);
        prop_assert!(m.mode().is_enabled());
    }
    if m.is_annunciated() {
        prop_assert!(m.mode().is_enabled() && s.is_active());
    }
    prop_assert_eq!(AlarmMachine::from_record(m.record()), *m);
    Ok(())
}

fn check_transition(t: &Transition) -> Result<(), TestCaseError> {
    prop_assert_ne!(t.from, t.to);
    match t.cause {
        Cause::ConditionRaised => {
            prop_assert!(!t.from.0.is_active() && t.to.0.is_active());
            prop_assert_eq!(t.from.1, t.to.1);
        }
        Cause::ConditionCleared => {
            prop_assert!(t.from.0.is_active() && !t.to.0.is_active());
            prop_assert_eq!(t.from.1, t.to.1);
        }
        Cause::Acknowledged => {
            prop_assert!(t.from.0.is_unacked() && !t.to.0.is_unacked());
            prop_assert_eq!(t.from.0.is_active(), t.to.0.is_active());
        }
        Cause::Shelved | Cause::Suppressed | Cause::RemovedFromService => {
            prop_assert!(!t.to.1.is_enabled());
            prop_assert_eq!(t.from.0.is_active(), t.to.0.is_active());
        }
        Cause::Unshelved
        | Cause::ShelveExpired
        | Cause::Unsuppressed
        | Cause::ReturnedToService => {
            prop_assert!(!t.from.1.is_enabled() && t.to.1.is_enabled());
            prop_assert_eq!(t.to.0.is_unacked(), t.to.0.is_active());
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn record_round_trips(r in any_record()) {
        let m = AlarmMachine::from_record(r);
        prop_assert_eq!(AlarmMachine::from_record(m.record()), m);
        check_invariants(&m)?;
        // A consistent record comes back byte for byte.
        let consistent = (r.mode.is_enabled() || matches!(r.state, AlarmState::Normal | AlarmState::ActiveAcked))
            && r.pending_since.is_some() == (r.condition != r.state.is_active());
        if consistent {
            prop_assert_eq!(m.record(), r);
        }
    }

    #[test]
    fn random_event_sequences_keep_the_invariants(
        timing in any_timing(),
        steps in prop::collection::vec((any_event(), 0i64..8_000), 1..80),
    ) {
        let mut m = AlarmMachine::from_record(AlarmRecord { since: at(0), ..AlarmRecord::default() });
        let mut now_ms = 0i64;
        for (ev, dt_ms) in steps {
            now_ms += dt_ms;
            let now = Timestamp::from_millis(T0 * 1000 + now_ms);
            let before = m;

            // next_deadline: nothing happens before it, something happens at it.
            match m.next_deadline(&timing) {
                Some(d) => {
                    if d > before.since() {
                        let mut early = m;
                        prop_assert!(early.tick(&timing, d.saturating_sub(Duration::from_micros(1))).is_empty());
                        prop_assert_eq!(early, m);
                    }
                    let mut due = m;
                    prop_assert!(!due.tick(&timing, d).is_empty());
                }
                None => {
                    let mut idle = m;
                    prop_assert!(idle.tick(&timing, now.saturating_add(Duration::from_secs(86_400))).is_empty());
                    prop_assert_eq!(idle, m);
                }
            }

            let result: Result<Vec<Transition>, AlarmError> = match ev {
                Ev::Update(c) => {
                    let ts = m.update(&timing, c, now).to_vec();
                    // update(c, t) == tick(t) then update(c, t)
                    let mut split = before;
                    let mut expected = split.tick(&timing, now).to_vec();
                    expected.extend(split.update(&timing, c, now));
                    prop_assert_eq!(split, m);
                    prop_assert_eq!(&expected, &ts);
                    Ok(ts)
                }
                Ev::Tick => Ok(m.tick(&timing, now).to_vec()),
                Ev::Ack => m.acknowledge(now).map(|t| vec![t]),
                Ev::Shelve(s) => m.shelve(now.saturating_add(Duration::from_secs(u64::from(s))), now).map(|t| vec![t]),
                Ev::Unshelve => m.unshelve(now).map(|t| vec![t]),
                Ev::Suppress(s) => Ok(m.set_suppressed(s, now).into_iter().collect()),
                Ev::Oos(o) => m.set_out_of_service(o, now).map(|t| vec![t]),
            };
            check_invariants(&m)?;
            match result {
                Err(_) => prop_assert_eq!(m, before),
                Ok(ts) => {
                    let mut prev = (before.state(), before.mode());
                    let mut prev_at = before.since();
                    for t in &ts {
                        check_transition(t)?;
                        prop_assert_eq!(t.from, prev);
                        prop_assert!(t.at >= prev_at);
                        prop_assert!(t.at <= now.max(before.since()).max(before.pending_since().unwrap_or(Timestamp::ZERO)));
                        prev = t.to;
                        prev_at = t.at;
                    }
                    prop_assert_eq!(prev, (m.state(), m.mode()));
                    prop_assert_eq!(m.since(), prev_at);
                    if ts.is_empty() {
                        prop_assert_eq!((m.state(), m.mode()), (before.state(), before.mode()));
                    }
                }
            }
        }
    }
}

#[test]
fn on_a_tie_the_condition_fires_before_the_shelve_expires() {
    let mut m = fresh();
    m.shelve(at(10), at(0)).unwrap();
    m.update(&DELAYED, true, at(0));
    let ts = m.tick(&DELAYED, at(10));
    let got: Vec<_> = ts.iter().map(|t| (t.cause, t.to)).collect();
    assert_eq!(
        got,
        [
            (
                Cause::ConditionRaised,
                (
                    AlarmState::ActiveAcked,
                    AlarmMode::Shelved { until: at(10) }
                )
            ),
            (
                Cause::ShelveExpired,
                (AlarmState::ActiveUnacked, AlarmMode::Enabled)
            ),
        ]
    );
}
