//! The twin tree as actors: roll-ups through every tier, supervision
//! (restart from persisted state, escalation), staleness in virtual time,
//! alarms with acknowledge and shelve, suppression by the parent's state.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ractor::ActorRef;
use tokio::sync::mpsc;
use twins::actor::{
    AlarmCommand, Faults, RootObserver, SampleBatch, TwinContext, TwinError, TwinMsg, TwinView,
    spawn_root,
};
use twins::alarm::{AlarmMode, AlarmState, Priority};
use twins::model::{Model, SourceFile};
use twins::rollup::AlarmCounts;
use twins::store::{Event, MemoryStore, Store, StoreWriter, WriterConfig};
use twins::{Clock, PropSample, Quality, Reason, Timestamp, Value};

const CLASSES: &str = r#"
[class.Sensor]
tier = "device"
[class.Sensor.properties]
value = { unit = "kW", range = [0, 1000], period = "1s" }
running = { type = "bool" }
doubled = { unit = "kW", expr = "value * 2" }
[[class.Sensor.alarms]]
name = "high"
when = "value > 100"
deadband = 5
priority = "high"
guidance = "Reduce the load."
[[class.Sensor.alarms]]
name = "stopped_while_line_runs"
when = "not running"
priority = "low"
suppress_when_parent = "not running"

[class.L]
tier = "line"
[class.L.rollups]
power = "sum(value)"
reporting = "count(value)"
running = "any(running)"

[class.P]
tier = "plant"
[class.P.rollups]
power = "sum(power)"

[class.R]
tier = "region"
[class.R.rollups]
power = "sum(power)"

[class.E]
tier = "enterprise"
[class.E.rollups]
power = { expr = "sum(power)", unit = "MW" }

"#;

/// Line twins allow 2 restarts a minute; other tiers the default 5 in 10 s.
const SETTINGS: &str = r#"
[settings]
publish_interval = "1ms"
stale_factor = 3
[settings.supervision.line]
max_restarts = 2
period = "1m"
"#;

const TOPOLOGY: &str = r#"
[enterprise]
name = "acme"
class = "E"

[twin."r1"]
class = "R"
[twin."r1/p1"]
class = "P"
[twin."r1/p1/l1"]
class = "L"
[twin."r1/p1/l1/s{n}"]
class = "Sensor"
count = 3
"#;

fn model(settings: &str) -> Arc<Model> {
    let files = [SourceFile {
        path: PathBuf::from("model.toml"),
        text: format!("{CLASSES}{settings}{TOPOLOGY}"),
    }];
    match twins::model::compile(&files) {
        Ok(m) => Arc::new(m),
        Err(d) => panic!("test model does not compile:\n{d}"),
    }
}

/// Forwards every root update to the test.
#[derive(Debug)]
struct Updates(mpsc::UnboundedSender<AlarmCounts>);

impl RootObserver for Updates {
    fn on_root_update(&self, _oldest: Timestamp, _now: Timestamp, alarms: &AlarmCounts) {
        let _ = self.0.send(*alarms);
    }
}

struct Harness {
    ctx: Arc<TwinContext>,
    updates: mpsc::UnboundedReceiver<AlarmCounts>,
    store: Arc<MemoryStore>,
    writer: StoreWriter,
    _writer_handle: twins::store::WriterHandle,
    faults: Arc<Faults>,
    root: ActorRef<TwinMsg>,
}

impl Harness {
    async fn start(clock: Clock) -> Self {
        Self::start_with(clock, SETTINGS).await
    }

    async fn start_with(clock: Clock, settings: &str) -> Self {
        let model = model(settings);
        let store = Arc::new(MemoryStore::new());
        let (writer, writer_handle) = StoreWriter::spawn(
            store.clone(),
            WriterConfig {
                flush_interval: Duration::from_millis(2),
                ..WriterConfig::default()
            },
        );
        let (tx, updates) = mpsc::unbounded_channel();
        let faults = Arc::new(Faults::default());
        let ctx = Arc::new(
            TwinContext::new(model, clock)
                .with_store(store.clone(), writer.clone())
                .with_root_observer(Arc::new(Updates(tx)))
                .with_faults(faults.clone()),
        );
        let (root, _) = spawn_root(ctx.clone()).await.expect("root starts");
        let mut h = Self {
            ctx,
            updates,
            store,
            writer,
            _writer_handle: writer_handle,
            faults,
            root,
        };
        let total = h.ctx.model.twins.len() as u64;
        h.wait_for(|h| twins::actor::TwinMetrics::get(&h.ctx.metrics.twins_started) >= total)
            .await;
        h
    }

    fn index(&self, path: &str) -> usize {
        self.ctx
            .model
            .twins
            .iter()
            .position(|t| t.path.as_str() == path)
            .unwrap_or_else(|| panic!("no twin {path}"))
    }

    fn actor(&self, path: &str) -> ActorRef<TwinMsg> {
        self.ctx
            .actor_of(self.index(path))
            .unwrap_or_else(|| panic!("twin {path} not running"))
    }

    async fn view(&self, path: &str) -> TwinView {
        ractor::call!(self.actor(path), TwinMsg::Get).expect("twin answers")
    }

    fn send(&self, path: &str, samples: &[(&str, Value)]) {
        let i = self.index(path);
        let class = &self.ctx.model.classes[self.ctx.model.twins[i].class];
        let now = self.ctx.clock.now();
        let samples = samples
            .iter()
            .map(|(name, v)| PropSample {
                prop: class.prop_index(name).expect("known property"),
                value: v.clone(),
                source_ts: now,
                quality: Quality::Good,
            })
            .collect();
        self.actor(path)
            .cast(TwinMsg::Samples(SampleBatch {
                samples,
                arrival: now,
            }))
            .expect("twin accepts samples");
    }

    /// Waits for root updates (or, when none come, for the tree to go
    /// quiet) until `cond` holds. Fails after 2,000 rounds.
    async fn wait_for(&mut self, cond: impl Fn(&Self) -> bool) {
        for _ in 0..2000 {
            if cond(self) {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(5), self.updates.recv()).await;
        }
        panic!("condition not reached");
    }

    /// Waits until the root's view satisfies `cond`.
    async fn wait_root(&mut self, cond: impl Fn(&TwinView) -> bool) -> TwinView {
        for _ in 0..2000 {
            let v = self.view("acme").await;
            if cond(&v) {
                return v;
            }
            let _ = tokio::time::timeout(Duration::from_millis(5), self.updates.recv()).await;
        }
        panic!(
            "root never reached the expected state: {:#?}",
            self.view("acme").await
        );
    }
}

fn prop<'a>(v: &'a TwinView, name: &str) -> &'a twins::actor::PropView {
    v.props
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no property {name} in {}", v.path))
}

fn f64_of(v: &TwinView, name: &str) -> Option<f64> {
    prop(v, name).value.as_f64()
}

#[tokio::test]
async fn rollups_reach_every_tier_with_unit_conversion() {
    let mut h = Harness::start(Clock::system()).await;
    h.send("acme/r1/p1/l1/s1", &[("value", Value::F64(100.0))]);
    h.send("acme/r1/p1/l1/s2", &[("value", Value::F64(200.0))]);
    h.send("acme/r1/p1/l1/s3", &[("value", Value::F64(300.0))]);
    // 600 kW at the line, plant and region; 0.6 MW at HQ.
    let root = h.wait_root(|v| f64_of(v, "power") == Some(0.6)).await;
    assert_eq!(prop(&root, "power").unit.as_deref(), Some("MW"));
    let line = h.view("acme/r1/p1/l1").await;
    assert_eq!(f64_of(&line, "power"), Some(600.0));
    assert_eq!(prop(&line, "reporting").value, Value::I64(3));
    let counts = prop(&line, "power").counts.expect("roll-ups carry counts");
    assert_eq!((counts.total, counts.good), (3, 3));
    assert_eq!(f64_of(&h.view("acme/r1/p1").await, "power"), Some(600.0));
    assert_eq!(f64_of(&h.view("acme/r1").await, "power"), Some(600.0));
    // Derived values follow their inputs.
    assert_eq!(
        f64_of(&h.view("acme/r1/p1/l1/s2").await, "doubled"),
        Some(400.0)
    );
    // An update replaces the child's contribution; it is not added again.
    h.send("acme/r1/p1/l1/s1", &[("value", Value::F64(50.0))]);
    h.wait_root(|v| f64_of(v, "power").is_some_and(|p| (p - 0.55).abs() < 1e-12))
        .await;
}

#[tokio::test]
async fn samples_of_the_wrong_type_are_rejected_and_counted() {
    let mut h = Harness::start(Clock::system()).await;
    h.send(
        "acme/r1/p1/l1/s1",
        &[("value", Value::String("high".into()))],
    );
    h.send("acme/r1/p1/l1/s1", &[("value", Value::F64(5.0))]);
    h.wait_root(|v| f64_of(v, "power") == Some(0.005)).await;
    assert_eq!(
        twins::actor::TwinMetrics::get(&h.ctx.metrics.samples_rejected),
        1
    );
    // Out of range is kept but marked.
    h.send("acme/r1/p1/l1/s2", &[("value", Value::F64(5000.0))]);
    h.wait_for(|_| true).await;
    let s2 = loop {
        let v = h.view("acme/r1/p1/l1/s2").await;
        if f64_of(&v, "value") == Some(5000.0) {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    assert_eq!(
        prop(&s2, "value").quality,
        Quality::Uncertain(Reason::OutOfRange)
    );
}

#[tokio::test]
async fn a_panicking_device_restarts_from_its_persisted_state_while_siblings_carry_on() {
    let mut h = Harness::start(Clock::system()).await;
    h.send("acme/r1/p1/l1/s1", &[("value", Value::F64(10.0))]);
    h.send("acme/r1/p1/l1/s2", &[("value", Value::F64(20.0))]);
    h.wait_root(|v| f64_of(v, "power") == Some(0.03)).await;
    h.writer.flush().await.expect("flush");
    let sibling_before = h.actor("acme/r1/p1/l1/s2").get_id();
    let victim_before = h.actor("acme/r1/p1/l1/s1").get_id();

    let s1 = h.index("acme/r1/p1/l1/s1");
    h.faults.panic_times(s1, 1);
    h.actor("acme/r1/p1/l1/s1")
        .cast(TwinMsg::Tick)
        .expect("cast");
    h.wait_for(|h| twins::actor::TwinMetrics::get(&h.ctx.metrics.restarts) == 1)
        .await;
    h.wait_for(|h| {
        h.ctx
            .actor_of(s1)
            .is_some_and(|a| a.get_id() != victim_before)
    })
    .await;

    let restarted = h.view("acme/r1/p1/l1/s1").await;
    assert_eq!(
        f64_of(&restarted, "value"),
        Some(10.0),
        "state recovered from the store"
    );
    assert_eq!(
        f64_of(&restarted, "doubled"),
        Some(20.0),
        "derived values recomputed"
    );
    assert_eq!(
        h.actor("acme/r1/p1/l1/s2").get_id(),
        sibling_before,
        "sibling untouched"
    );
    // The parent's roll-ups carry on and take new samples from both.
    h.send("acme/r1/p1/l1/s2", &[("value", Value::F64(25.0))]);
    h.send("acme/r1/p1/l1/s1", &[("value", Value::F64(15.0))]);
    h.wait_root(|v| f64_of(v, "power") == Some(0.04)).await;
    // The restart is in the twin's journal.
    h.writer.flush().await.expect("flush");
    let id = h.ctx.model.twins[s1].path.id();
    let events = h.store.events(id, 0, 100).expect("events");
    assert!(
        events.iter().any(
            |e| matches!(&e.event, Event::Restarted { reason } if reason.contains("fault injected"))
        ),
        "journal: {events:#?}"
    );
    assert_eq!(
        twins::actor::TwinMetrics::get(&h.ctx.metrics.escalations),
        0
    );
}

#[tokio::test]
async fn a_failing_twin_escalates_after_the_configured_intensity() {
    let mut h = Harness::start(Clock::system()).await;
    let s1 = h.index("acme/r1/p1/l1/s1");
    let line = h.index("acme/r1/p1/l1");
    let line_before = h.actor("acme/r1/p1/l1").get_id();
    // The line allows 2 restarts a minute: the device's third failure
    // escalates to the plant, which restarts the line with its devices.
    h.faults.panic_times(s1, 3);
    let mut poked = std::collections::HashSet::new();
    for _ in 0..2000 {
        if twins::actor::TwinMetrics::get(&h.ctx.metrics.escalations) > 0 {
            break;
        }
        if let Some(a) = h.ctx.actor_of(s1)
            && poked.insert(a.get_id())
        {
            let _ = a.cast(TwinMsg::Tick);
        }
        let _ = tokio::time::timeout(Duration::from_millis(2), h.updates.recv()).await;
    }
    h.wait_for(|h| {
        h.ctx
            .actor_of(line)
            .is_some_and(|a| a.get_id() != line_before)
    })
    .await;
    let m = &h.ctx.metrics;
    assert_eq!(twins::actor::TwinMetrics::get(&m.escalations), 1);
    assert_eq!(
        twins::actor::TwinMetrics::get(&m.restarts),
        3,
        "two device restarts by the line, one line restart by the plant"
    );
    // The restarted subtree works.
    h.send("acme/r1/p1/l1/s3", &[("value", Value::F64(7.0))]);
    h.wait_root(|v| f64_of(v, "power") == Some(0.007)).await;
}

#[tokio::test]
async fn escalation_climbs_to_the_root_instead_of_looping() {
    // One restart allowed per minute at every tier; the device never recovers.
    let settings = r#"
[settings]
publish_interval = "1ms"
[settings.supervision]
max_restarts = 1
period = "1m"
"#;
    let mut h = Harness::start_with(Clock::system(), settings).await;
    let s1 = h.index("acme/r1/p1/l1/s1");
    h.faults.panic_on_message(s1, true);
    let mut poked = std::collections::HashSet::new();
    for _ in 0..2000 {
        if h.root.get_status() == ractor::ActorStatus::Stopped {
            break;
        }
        if let Some(a) = h.ctx.actor_of(s1)
            && poked.insert(a.get_id())
        {
            let _ = a.cast(TwinMsg::Tick);
        }
        let _ = tokio::time::timeout(Duration::from_millis(2), h.updates.recv()).await;
    }
    assert_eq!(
        h.root.get_status(),
        ractor::ActorStatus::Stopped,
        "the root gave up"
    );
    // Each supervisor restarted once and escalated on the second failure:
    // 8 line instances, 4 plant instances, 2 region instances, the root.
    let m = &h.ctx.metrics;
    assert_eq!(twins::actor::TwinMetrics::get(&m.escalations), 15);
    assert_eq!(twins::actor::TwinMetrics::get(&m.restarts), 15);
}

#[tokio::test(start_paused = true)]
async fn staleness_propagates_to_rollups_in_virtual_time() {
    let mut h = Harness::start(Clock::tokio(Timestamp::from_millis(1_800_000_000_000))).await;
    for (i, s) in ["s1", "s2", "s3"].iter().enumerate() {
        h.send(
            &format!("acme/r1/p1/l1/{s}"),
            &[("value", Value::F64(10.0 * (i + 1) as f64))],
        );
    }
    h.wait_root(|v| f64_of(v, "power") == Some(0.06)).await;
    assert_eq!(prop(&h.view("acme").await, "power").quality, Quality::Good);

    // s2 and s3 keep reporting; s1 falls silent for longer than 1 s × 3.
    for _ in 0..4 {
        tokio::time::advance(Duration::from_secs(1)).await;
        h.send("acme/r1/p1/l1/s2", &[("value", Value::F64(20.0))]);
        h.send("acme/r1/p1/l1/s3", &[("value", Value::F64(30.0))]);
        h.actor("acme").cast(TwinMsg::Tick).expect("tick");
    }
    let root = h
        .wait_root(|v| prop(v, "power").quality == Quality::Uncertain(Reason::SubNormal))
        .await;
    assert_eq!(
        f64_of(&root, "power"),
        Some(0.06),
        "a stale value still counts"
    );
    let s1 = h.view("acme/r1/p1/l1/s1").await;
    assert_eq!(
        prop(&s1, "value").quality,
        Quality::Uncertain(Reason::Stale)
    );
    assert_eq!(
        prop(&s1, "doubled").quality,
        Quality::Uncertain(Reason::Stale),
        "derived values carry their inputs' quality"
    );
    let line = h.view("acme/r1/p1/l1").await;
    let c = prop(&line, "power").counts.expect("counts");
    assert_eq!((c.total, c.good, c.uncertain, c.bad), (3, 2, 1, 0));

    // A fresh sample makes it good again.
    h.send("acme/r1/p1/l1/s1", &[("value", Value::F64(10.0))]);
    h.wait_root(|v| prop(v, "power").quality == Quality::Good)
        .await;
}

#[tokio::test]
async fn alarms_roll_up_and_take_acknowledge_and_shelve() {
    let mut h = Harness::start(Clock::system()).await;
    let high = |v: &TwinView| v.subtree_alarms.active_of(Priority::High);
    h.send(
        "acme/r1/p1/l1/s1",
        &[("value", Value::F64(150.0)), ("running", Value::Bool(true))],
    );
    let root = h.wait_root(|v| high(v) == 1).await;
    assert_eq!(root.subtree_alarms.unacked[Priority::High.index()], 1);
    for path in ["acme/r1", "acme/r1/p1", "acme/r1/p1/l1", "acme/r1/p1/l1/s1"] {
        assert_eq!(high(&h.view(path).await), 1, "active count at {path}");
    }
    let s1 = h.view("acme/r1/p1/l1/s1").await;
    let alarm = s1.alarms.iter().find(|a| a.name == "high").expect("alarm");
    assert_eq!(alarm.state, AlarmState::ActiveUnacked);
    assert_eq!(alarm.guidance, "Reduce the load.");

    // Deadband: 97 is below the limit but within 5 of it: still active.
    h.send("acme/r1/p1/l1/s1", &[("value", Value::F64(97.0))]);
    let s1_actor = || h.actor("acme/r1/p1/l1/s1");
    let call = |actor: ActorRef<TwinMsg>, command: AlarmCommand, alarm: &str| {
        let alarm = alarm.to_string();
        async move {
            ractor::call!(actor, |reply| TwinMsg::Alarm {
                alarm,
                command,
                who: "alice".into(),
                reply
            })
            .expect("twin answers")
        }
    };
    let a = s1_actor();
    call(a.clone(), AlarmCommand::Acknowledge, "high")
        .await
        .expect("ack");
    let s1 = h.view("acme/r1/p1/l1/s1").await;
    let alarm = s1.alarms.iter().find(|a| a.name == "high").expect("alarm");
    assert_eq!(
        alarm.state,
        AlarmState::ActiveAcked,
        "still active inside the deadband"
    );
    h.wait_root(|v| v.subtree_alarms.unacked[Priority::High.index()] == 0 && high(v) == 1)
        .await;

    // Acknowledging twice is refused with a reason; unknown alarms too.
    let again = call(a.clone(), AlarmCommand::Acknowledge, "high").await;
    assert!(matches!(again, Err(TwinError::Alarm { .. })), "{again:?}");
    let unknown = call(a.clone(), AlarmCommand::Acknowledge, "hgih").await;
    assert!(
        matches!(&unknown, Err(TwinError::UnknownAlarm { alarm, .. }) if alarm == "hgih"),
        "{unknown:?}"
    );

    // Shelving takes it out of the counts up the tree.
    let until = Timestamp(h.ctx.clock.now().0 + 3_600_000_000);
    call(a.clone(), AlarmCommand::Shelve { until }, "high")
        .await
        .expect("shelve");
    h.wait_root(|v| high(v) == 0).await;
    let s1 = h.view("acme/r1/p1/l1/s1").await;
    let alarm = s1.alarms.iter().find(|a| a.name == "high").expect("alarm");
    assert_eq!(alarm.mode, AlarmMode::Shelved { until });

    // Every transition and operator action is in the journal.
    h.writer.flush().await.expect("flush");
    let id = h.ctx.model.twins[h.index("acme/r1/p1/l1/s1")].path.id();
    let events = h.store.events(id, 0, 100).expect("events");
    let causes: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Alarm { alarm, transition } if alarm == "high" => Some(transition.cause.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        causes,
        ["condition_raised", "acknowledged", "shelved"],
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(&e.event, Event::OperatorAction { who, .. } if who == "alice"))
    );
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "journal ordered: {seqs:?}"
    );
}

#[tokio::test]
async fn the_parents_state_suppresses_alarms() {
    let mut h = Harness::start(Clock::system()).await;
    let low = |v: &TwinView| v.subtree_alarms.active_of(Priority::Low);
    // s1 stopped while s2 runs: the line runs, so "stopped while line runs" is real.
    h.send(
        "acme/r1/p1/l1/s2",
        &[("running", Value::Bool(true)), ("value", Value::F64(1.0))],
    );
    h.send(
        "acme/r1/p1/l1/s1",
        &[("running", Value::Bool(false)), ("value", Value::F64(1.0))],
    );
    h.wait_root(|v| low(v) == 1).await;
    // The whole line stops: the alarm is suppressed, not counted.
    h.send("acme/r1/p1/l1/s2", &[("running", Value::Bool(false))]);
    h.wait_root(|v| low(v) == 0).await;
    let s1 = loop {
        let v = h.view("acme/r1/p1/l1/s1").await;
        let a = v
            .alarms
            .iter()
            .find(|a| a.name == "stopped_while_line_runs")
            .cloned();
        if a.as_ref().is_some_and(|a| a.mode == AlarmMode::Suppressed) {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    assert!(s1.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_and_alarm_transitions_are_announced_on_the_change_feed() {
    use twins::actor::{ChangeFeed, TwinChange};
    let feed = ChangeFeed::new(1024);
    let mut rx = feed.subscribe();
    let model = model(SETTINGS);
    let ctx = Arc::new(TwinContext::new(model.clone(), Clock::system()).with_changes(feed));
    let (root, _) = spawn_root(ctx.clone()).await.expect("root starts");
    let total = model.twins.len() as u64;
    while twins::actor::TwinMetrics::get(&ctx.metrics.twins_started) < total {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let s1 = model
        .twins
        .iter()
        .position(|t| t.path.as_str() == "acme/r1/p1/l1/s1")
        .expect("s1");
    let line = model
        .twins
        .iter()
        .position(|t| t.path.as_str() == "acme/r1/p1/l1")
        .expect("line");
    let class = &model.classes[model.twins[s1].class];
    let value = class.prop_index("value").expect("value") as usize;
    let high = class
        .alarms
        .iter()
        .position(|a| a.name == "high")
        .expect("high");
    let now = ctx.clock.now();
    ctx.actor_of(s1)
        .expect("s1 running")
        .cast(TwinMsg::Samples(SampleBatch {
            samples: vec![PropSample {
                prop: value as u16,
                value: Value::F64(150.0),
                source_ts: now,
                quality: Quality::Good,
            }],
            arrival: now,
        }))
        .expect("s1 accepts samples");

    let (mut state, mut alarm, mut rolled_up) = (false, false, false);
    while !(state && alarm && rolled_up) {
        let change = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap_or_else(|_| {
                panic!("no change within 5 s: state {state}, alarm {alarm}, rolled up {rolled_up}")
            })
            .expect("feed open");
        match &*change {
            TwinChange::State { twin, slots, .. } if *twin as usize == s1 => {
                state |= slots[value].value == Value::F64(150.0);
            }
            TwinChange::Alarm {
                twin,
                alarm: a,
                transition,
            } if *twin as usize == s1 => {
                assert_eq!(*a as usize, high);
                assert_eq!(transition.to.0, AlarmState::ActiveUnacked);
                alarm = true;
            }
            TwinChange::State { twin, slots, .. } if *twin as usize == line => {
                let power = model.classes[model.twins[line].class]
                    .prop_index("power")
                    .expect("power") as usize;
                rolled_up |= slots[power].value == Value::F64(150.0);
            }
            _ => {}
        }
    }
    root.stop(None);
}
