//! A crash between two store batches must leave a twin's state no older
//! than its history and journal (the durability point,
//! `twins::store::writer`: the store holds a prefix of whole batches).
//!
//! The writer cuts batches wherever they fill up or the flush interval
//! elapses. If the writes of one message (journal entries, a history batch,
//! the twin's state) were split across two batches, a crash between them
//! would leave a state older than its history; the restarted twin would
//! resume from that older seq and reuse the seqs of durable records,
//! overwriting acknowledged journal entries. Twins therefore hand each
//! message's writes over as one `WriteOp::Group`, which is never split.
//!
//! The test provokes cuts deterministically (`max_batch = 2`), replays
//! the recorded batches up to the cut onto a fresh store, as a crash right
//! after that batch would leave it, and restarts the tree on it.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ractor::ActorRef;
use twins::actor::{SampleBatch, TwinContext, TwinMsg, TwinView, spawn_root};
use twins::model::{Model, SourceFile};
use twins::store::{
    EventRecord, HistoryPoint, MemoryStore, Store, StoreError, StoreStats, StoreWriter, TwinRecord,
    WriteBatch, WriterConfig,
};
use twins::{Clock, PropSample, Quality, Timestamp, TwinId, Value};

const MODEL: &str = r#"
[class.Sensor]
tier = "device"
[class.Sensor.properties]
value = { unit = "kW", range = [0, 1000] }
running = { type = "bool" }
[[class.Sensor.alarms]]
name = "high"
when = "value > 100"
priority = "high"

[class.L]
tier = "line"
[class.L.rollups]
power = "sum(value)"

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
power = "sum(power)"

[enterprise]
name = "acme"
class = "E"
[twin."r1"]
class = "R"
[twin."r1/p1"]
class = "P"
[twin."r1/p1/l1"]
class = "L"
[twin."r1/p1/l1/s1"]
class = "Sensor"
"#;

const DEVICE: &str = "acme/r1/p1/l1/s1";

/// A memory store that keeps a copy of every batch it applied.
#[derive(Debug, Default)]
struct Recording {
    inner: MemoryStore,
    batches: Mutex<Vec<WriteBatch>>,
}

impl Store for Recording {
    fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        self.inner.write(batch)?;
        self.batches
            .lock()
            .expect("batches lock")
            .push(batch.clone());
        Ok(())
    }
    fn load_state(&self, id: TwinId) -> Result<Option<TwinRecord>, StoreError> {
        self.inner.load_state(id)
    }
    fn scan_states(&self, f: &mut dyn FnMut(TwinId, TwinRecord) -> bool) -> Result<(), StoreError> {
        self.inner.scan_states(f)
    }
    fn history(
        &self,
        id: TwinId,
        prop: &str,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<Vec<HistoryPoint>, StoreError> {
        self.inner.history(id, prop, from, to, limit)
    }
    fn events(
        &self,
        id: TwinId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        self.inner.events(id, after_seq, limit)
    }
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get_meta(key)
    }
    fn audit(&self, after_seq: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.inner.audit(after_seq, limit)
    }
    fn stats(&self) -> StoreStats {
        self.inner.stats()
    }
}

fn model() -> Arc<Model> {
    let files = [SourceFile {
        path: PathBuf::from("model.toml"),
        text: MODEL.to_string(),
    }];
    match twins::model::compile(&files) {
        Ok(m) => Arc::new(m),
        Err(d) => panic!("test model does not compile:\n{d}"),
    }
}

/// A running tree over `store`; the writer cuts a batch every 2 records.
struct Tree {
    ctx: Arc<TwinContext>,
    writer: StoreWriter,
    _handle: twins::store::WriterHandle,
    root: ActorRef<TwinMsg>,
}

impl Tree {
    async fn start(model: Arc<Model>, store: Arc<dyn Store>) -> Tree {
        let (writer, handle) = StoreWriter::spawn(
            store.clone(),
            WriterConfig {
                max_batch: 2,
                flush_interval: Duration::from_secs(3600),
                ..WriterConfig::default()
            },
        );
        let ctx =
            Arc::new(TwinContext::new(model, Clock::system()).with_store(store, writer.clone()));
        let (root, _) = spawn_root(ctx.clone()).await.expect("root starts");
        let total = ctx.model.twins.len();
        while (0..total).any(|i| ctx.actor_of(i).is_none()) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Tree {
            ctx,
            writer,
            _handle: handle,
            root,
        }
    }

    fn device(&self) -> ActorRef<TwinMsg> {
        let i = self
            .ctx
            .model
            .twins
            .iter()
            .position(|t| t.path.as_str() == DEVICE)
            .expect("the device is in the model");
        self.ctx.actor_of(i).expect("the device runs")
    }

    /// Sends `value` and `running` to the device in one batch and waits
    /// until the writes of that message are durable.
    async fn send(&self, value: f64) -> TwinView {
        let class = &self.ctx.model.classes[self
            .ctx
            .model
            .twin_by_path(DEVICE)
            .expect("the device")
            .class];
        let now = self.ctx.clock.now();
        let sample = |name: &str, value: Value| PropSample {
            prop: class.prop_index(name).expect("a property"),
            value,
            source_ts: now,
            quality: Quality::Good,
        };
        self.device()
            .cast(TwinMsg::Samples(SampleBatch {
                samples: vec![
                    sample("value", Value::F64(value)),
                    sample("running", Value::Bool(true)),
                ],
                arrival: now,
            }))
            .expect("the device takes samples");
        // The view is answered after the samples' writes were queued.
        let view = ractor::call!(self.device(), TwinMsg::Get).expect("the device answers");
        self.writer.flush().await.expect("flush");
        view
    }

    async fn stop(self) {
        let _ = self
            .root
            .stop_and_wait(None, Some(Duration::from_secs(10)))
            .await;
        self.writer.flush().await.expect("final flush");
    }
}

#[tokio::test]
async fn a_crash_between_batches_leaves_no_state_older_than_its_history() {
    let model = model();
    let id = twins::TwinPath::parse(DEVICE).expect("a path").id();
    let recording = Arc::new(Recording::default());
    let tree = Tree::start(model.clone(), recording.clone()).await;
    tree.send(50.0).await;
    let view = tree.send(150.0).await; // raises `high`: a journal entry
    tree.stop().await;
    let seq = view.seq;

    // The first batch that made the message's history durable: a crash
    // right after it leaves exactly batches[..=cut] in the store.
    let batches = recording.batches.lock().expect("batches lock").clone();
    let cut = batches
        .iter()
        .position(|b| b.history.iter().any(|h| h.twin == id && h.point.seq == seq))
        .expect("the message's history was written");
    let crashed = Arc::new(MemoryStore::new());
    for b in &batches[..=cut] {
        crashed.write(b).expect("replay");
    }
    let journal: Vec<EventRecord> = crashed.events(id, 0, usize::MAX).expect("events");
    let state_seq = crashed.load_state(id).expect("state").map(|s| s.seq);
    // The failing assertion: the state written with the history is not in
    // the same batch.
    let history_ok = state_seq >= Some(seq);

    // What that costs: the restarted twin resumes at the older seq, and
    // its next journal entry takes the key of an acknowledged one.
    let tree = Tree::start(model, crashed.clone()).await;
    // The recovered state predates the alarm, so it is raised again: a
    // journal entry with the key of the acknowledged one.
    tree.send(150.0).await;
    tree.stop().await;
    let after: Vec<EventRecord> = crashed.events(id, 0, usize::MAX).expect("events");
    let lost: Vec<&EventRecord> = journal.iter().filter(|e| !after.contains(e)).collect();

    assert!(
        history_ok && lost.is_empty(),
        "a crash after batch {cut} of {} leaves `{DEVICE}` with history and journal of \
         seq {seq} but state seq {state_seq:?}; after a restart these acknowledged journal \
         entries were overwritten: {lost:#?}\nnow: {after:#?}",
        batches.len()
    );
}
