//! [`FjallStore`]: the embedded default backend, on fjall.
//!
//! One fjall database with five keyspaces, keyed as in
//! [`twins::store::keys`]: `state`, `history`, `events`, `meta` and `audit`;
//! every value is a versioned envelope ([`twins::store::codec`]); audit values
//! are stored exactly as the audit log encoded them.
//!
//! A [`Store::write`] is one fjall write batch across the keyspaces, committed
//! with [`PersistMode::SyncAll`]: fjall writes the batch to its journal as one
//! checksummed unit and `fsync`s the journal before it applies the batch to
//! the memtables and before `write` returns. Recovery after a crash replays
//! whole batches only and drops a torn one at the journal's tail, so a batch
//! is there entirely or not at all, and a batch whose `write` returned is
//! there.
//!
//! Reads go through a snapshot of the database, so a reader never sees part
//! of a batch being applied.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ::fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode, Readable};
use twins::store::codec::{self, MetaValue, Persisted};
use twins::store::{
    EventRecord, HistoryPoint, HistoryRecord, Store, StoreError, StoreStats, TwinRecord,
    WriteBatch, hex, keys,
};
use twins::{Timestamp, TwinId};

const BACKEND: &str = "fjall";
const STATE: &str = "state";
const HISTORY: &str = "history";
const EVENTS: &str = "events";
const META: &str = "meta";
const AUDIT: &str = "audit";

/// The fjall backend. Open one per data directory: fjall takes an OS file
/// lock (`try_lock` on its lock file), so a second open, from this process or
/// another, fails with [`::fjall::Error::Locked`] while the first is open.
pub struct FjallStore {
    path: PathBuf,
    db: Database,
    state: Keyspace,
    history: Keyspace,
    events: Keyspace,
    meta: Keyspace,
    audit: Keyspace,
    counters: Counters,
}

#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    states: AtomicU64,
    history: AtomicU64,
    events: AtomicU64,
    audit: AtomicU64,
    bytes: AtomicU64,
}

impl fmt::Debug for FjallStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FjallStore")
            .field("path", &self.path)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

const LOCKED: &str = "the database is locked by another process";

/// Whether `err` says that the store is locked: another [`FjallStore`] (of
/// this process or another) has the same directory open.
pub fn is_locked(err: &StoreError) -> bool {
    matches!(err, StoreError::Backend { backend: BACKEND, message, .. } if message == LOCKED)
}

fn backend_error(op: impl Into<String>, e: ::fjall::Error) -> StoreError {
    let message = match e {
        ::fjall::Error::Locked => LOCKED.to_string(),
        ::fjall::Error::Poisoned => {
            "an earlier write failed to reach the disk; the database refuses further writes until it is reopened"
                .to_string()
        }
        other => other.to_string(),
    };
    StoreError::Backend {
        backend: BACKEND,
        op: op.into(),
        message,
    }
}

fn decode<T: Persisted>(what: impl FnOnce() -> String, bytes: &[u8]) -> Result<T, StoreError> {
    codec::decode(bytes).map_err(|source| StoreError::Decode {
        what: what(),
        source,
    })
}

fn encode<T: Persisted>(what: impl FnOnce() -> String, value: &T) -> Result<Vec<u8>, StoreError> {
    codec::encode(value).map_err(|source| StoreError::Encode {
        what: what(),
        source,
    })
}

impl FjallStore {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let at = || format!("open the store in {}", dir.display());
        let db = Database::builder(dir)
            .open()
            .map_err(|e| backend_error(at(), e))?;
        let keyspace = |name: &str| {
            db.keyspace(name, KeyspaceCreateOptions::default)
                .map_err(|e| {
                    backend_error(format!("open keyspace `{name}` in {}", dir.display()), e)
                })
        };
        Ok(Self {
            state: keyspace(STATE)?,
            history: keyspace(HISTORY)?,
            events: keyspace(EVENTS)?,
            meta: keyspace(META)?,
            audit: keyspace(AUDIT)?,
            db,
            path: dir.to_path_buf(),
            counters: Counters::default(),
        })
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// An encoded record: its keyspace, key and value.
type Item<'s> = (&'s Keyspace, Vec<u8>, Vec<u8>);

/// A record of a batch, by reference, with its keyspace and key.
enum Rec<'a> {
    State(TwinId, &'a TwinRecord),
    History(&'a HistoryRecord),
    Event(&'a EventRecord),
    Meta(&'a str, &'a [u8]),
    Audit(&'a [u8]),
}

impl FjallStore {
    fn keyspace(&self, rec: &Rec<'_>) -> &Keyspace {
        match rec {
            Rec::State(..) => &self.state,
            Rec::History(_) => &self.history,
            Rec::Event(_) => &self.events,
            Rec::Meta(..) => &self.meta,
            Rec::Audit(_) => &self.audit,
        }
    }

    /// Keys and encoded values of a batch. Of records with the same key only
    /// the latest is kept, so that "later wins" does not depend on how the
    /// engine orders equal keys within one batch. Fails on the first record
    /// that cannot be encoded, before anything is written.
    fn encode_batch<'s>(&'s self, batch: &WriteBatch) -> Result<Vec<Item<'s>>, StoreError> {
        let keyed: Vec<(Vec<u8>, Rec<'_>)> = batch
            .states
            .iter()
            .map(|(id, r)| (keys::state_key(*id).to_vec(), Rec::State(*id, r)))
            .chain(batch.history.iter().map(|h| {
                (
                    keys::history_key(h.twin, &h.prop, h.point.ts, h.point.seq),
                    Rec::History(h),
                )
            }))
            .chain(
                batch
                    .events
                    .iter()
                    .map(|e| (keys::event_key(e.twin, e.seq).to_vec(), Rec::Event(e))),
            )
            .chain(
                batch
                    .meta
                    .iter()
                    .map(|(k, v)| (k.as_bytes().to_vec(), Rec::Meta(k, v))),
            )
            .chain(
                batch
                    .audit
                    .iter()
                    .map(|(seq, v)| (keys::audit_key(*seq).to_vec(), Rec::Audit(v))),
            )
            .collect();
        // Walking backwards, the first record of each key is the latest.
        let mut seen = HashSet::with_capacity(keyed.len());
        let keep: Vec<bool> = keyed
            .iter()
            .rev()
            .map(|(k, rec)| seen.insert((std::mem::discriminant(rec), k.as_slice())))
            .collect();
        let mut out = Vec::with_capacity(keyed.len());
        for ((key, rec), keep) in keyed.iter().zip(keep.into_iter().rev()) {
            if !keep {
                continue;
            }
            let value = match rec {
                Rec::State(id, r) => encode(|| format!("state of twin {id}"), *r)?,
                Rec::History(h) => encode(
                    || {
                        format!(
                            "history point of twin {} property {:?} at {:?} seq {}",
                            h.twin, h.prop, h.point.ts, h.point.seq
                        )
                    },
                    &h.point,
                )?,
                Rec::Event(e) => encode(|| format!("event {} of twin {}", e.seq, e.twin), *e)?,
                Rec::Meta(k, v) => encode(|| format!("meta value {k:?}"), &MetaValue(v.to_vec()))?,
                // Opaque: stored as the audit log encoded it.
                Rec::Audit(v) => v.to_vec(),
            };
            out.push((self.keyspace(rec), key.clone(), value));
        }
        Ok(out)
    }
}

impl Store for FjallStore {
    fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        batch.validate()?;
        if batch.is_empty() {
            return Ok(());
        }
        // Encode everything first: a record that cannot be encoded fails
        // the batch before anything of it is written.
        let encoded = self.encode_batch(batch)?;
        let bytes: u64 = encoded
            .iter()
            .map(|(_, k, v)| (k.len() + v.len()) as u64)
            .sum();
        let mut fb = self.db.batch().durability(Some(PersistMode::SyncAll));
        for (ks, k, v) in encoded {
            fb.insert(ks, k, v);
        }
        fb.commit().map_err(|e| {
            backend_error(
                format!(
                    "write a batch of {} states, {} history points, {} events, {} meta values and {} audit records",
                    batch.states.len(),
                    batch.history.len(),
                    batch.events.len(),
                    batch.meta.len(),
                    batch.audit.len()
                ),
                e,
            )
        })?;
        let c = &self.counters;
        c.batches.fetch_add(1, Ordering::Relaxed);
        c.states
            .fetch_add(batch.states.len() as u64, Ordering::Relaxed);
        c.history
            .fetch_add(batch.history.len() as u64, Ordering::Relaxed);
        c.events
            .fetch_add(batch.events.len() as u64, Ordering::Relaxed);
        c.audit
            .fetch_add(batch.audit.len() as u64, Ordering::Relaxed);
        c.bytes.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }

    fn load_state(&self, id: TwinId) -> Result<Option<TwinRecord>, StoreError> {
        let value = self
            .db
            .snapshot()
            .get(&self.state, keys::state_key(id))
            .map_err(|e| backend_error(format!("read the state of twin {id}"), e))?;
        value
            .map(|v| decode(|| format!("state of twin {id}"), &v))
            .transpose()
    }

    fn scan_states(&self, f: &mut dyn FnMut(TwinId, TwinRecord) -> bool) -> Result<(), StoreError> {
        for guard in self.db.snapshot().iter(&self.state) {
            let (k, v) = guard
                .into_inner()
                .map_err(|e| backend_error("scan twin states", e))?;
            let id = keys::parse_state_key(&k).ok_or_else(|| StoreError::CorruptKey {
                keyspace: STATE,
                expected: "a 16-byte twin id",
                found: hex(&k),
            })?;
            let rec = decode(|| format!("state of twin {id}"), &v)?;
            if !f(id, rec) {
                break;
            }
        }
        Ok(())
    }

    fn history(
        &self,
        id: TwinId,
        prop: &str,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<Vec<HistoryPoint>, StoreError> {
        if from >= to || limit == 0 || prop.contains('\0') {
            return Ok(Vec::new());
        }
        let lo = keys::history_bound(id, prop, from);
        let hi = keys::history_bound(id, prop, to);
        let mut out = Vec::new();
        for guard in self.db.snapshot().range(&self.history, lo..hi).take(limit) {
            let (k, v) = guard.into_inner().map_err(|e| {
                backend_error(
                    format!("read history of twin {id} property {prop:?} from {from:?} to {to:?}"),
                    e,
                )
            })?;
            out.push(decode(
                || {
                    format!(
                        "history point of twin {id} property {prop:?} (key {})",
                        hex(&k)
                    )
                },
                &v,
            )?);
        }
        Ok(out)
    }

    fn events(
        &self,
        id: TwinId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let Some(first) = after_seq.checked_add(1) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let lo = keys::event_key(id, first);
        let hi = keys::event_key(id, u64::MAX);
        let mut out = Vec::new();
        for guard in self.db.snapshot().range(&self.events, lo..=hi).take(limit) {
            let (k, v) = guard.into_inner().map_err(|e| {
                backend_error(format!("read events of twin {id} after {after_seq}"), e)
            })?;
            out.push(decode(
                || format!("event of twin {id} (key {})", hex(&k)),
                &v,
            )?);
        }
        Ok(out)
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let value = self
            .db
            .snapshot()
            .get(&self.meta, key.as_bytes())
            .map_err(|e| backend_error(format!("read meta value {key:?}"), e))?;
        value
            .map(|v| decode::<MetaValue>(|| format!("meta value {key:?}"), &v).map(|m| m.0))
            .transpose()
    }

    fn audit(&self, after_seq: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let Some(first) = after_seq.checked_add(1) else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let lo = keys::audit_key(first);
        let mut out = Vec::new();
        for guard in self.db.snapshot().range(&self.audit, lo..).take(limit) {
            let (k, v) = guard
                .into_inner()
                .map_err(|e| backend_error(format!("read audit records after {after_seq}"), e))?;
            let seq = keys::parse_audit_key(&k).ok_or_else(|| StoreError::CorruptKey {
                keyspace: AUDIT,
                expected: "an 8-byte sequence number",
                found: hex(&k),
            })?;
            out.push((seq, v.to_vec()));
        }
        Ok(out)
    }

    fn stats(&self) -> StoreStats {
        let c = &self.counters;
        StoreStats {
            batches: c.batches.load(Ordering::Relaxed),
            states_written: c.states.load(Ordering::Relaxed),
            history_written: c.history.load(Ordering::Relaxed),
            events_written: c.events.load(Ordering::Relaxed),
            audit_written: c.audit.load(Ordering::Relaxed),
            bytes_written: c.bytes.load(Ordering::Relaxed),
            states: self.state.approximate_len() as u64,
            history: self.history.approximate_len() as u64,
            events: self.events.approximate_len() as u64,
            audit: self.audit.approximate_len() as u64,
            disk_bytes: self.db.disk_space().ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use twins::Quality;
    use twins::store::conformance::{Opened, hist, point, run_conformance, state, twin};

    #[test]
    fn fjall_store_passes_the_conformance_suite() {
        run_conformance(&|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().to_path_buf();
            let store = FjallStore::open(&path).expect("open");
            Opened {
                store: Box::new(store),
                reopen: Some(Box::new(move || {
                    let _keep = &dir;
                    Box::new(FjallStore::open(&path).expect("reopen"))
                })),
            }
        });
    }

    #[test]
    fn a_second_open_of_the_same_directory_is_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let _first = FjallStore::open(dir.path()).unwrap();
        let err = FjallStore::open(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("fjall failed to open the store in"), "{text}");
        assert!(text.contains("locked"), "{text}");
        assert!(is_locked(&err));
        assert!(!is_locked(&StoreError::WriterStopped));
    }

    #[test]
    fn corrupt_values_are_reported_naming_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = FjallStore::open(dir.path()).unwrap();
        store
            .write(&WriteBatch {
                states: vec![(twin(1), state(1))],
                history: vec![hist(twin(1), "flow", point(5, 1, 1.0))],
                ..Default::default()
            })
            .unwrap();
        // Overwrite raw values behind the store's back: a future version
        // and a value of the wrong kind.
        store
            .state
            .insert(keys::state_key(twin(1)), [b'S', 9, 0])
            .unwrap();
        let bad = codec::encode(&state(1)).unwrap();
        store
            .history
            .insert(keys::history_key(twin(1), "flow", Timestamp(5), 1), bad)
            .unwrap();
        let err = store.load_state(twin(1)).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "cannot decode state of twin {}: twin state record has version 9, expected version 1 or an older one this build can upgrade",
                twin(1)
            )
        );
        let err = store
            .history(twin(1), "flow", Timestamp(0), Timestamp(10), 10)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected a history point record (tag 0x48), found tag 0x53 (twin state)"),
            "{err}"
        );
        let mut scanned = Vec::new();
        let err = store
            .scan_states(&mut |id, _| {
                scanned.push(id);
                true
            })
            .unwrap_err();
        assert!(matches!(err, StoreError::Decode { .. }), "{err}");
    }

    #[test]
    fn values_on_disk_are_enveloped_and_keys_follow_the_layout() {
        let dir = tempfile::tempdir().unwrap();
        let store = FjallStore::open(dir.path()).unwrap();
        store
            .write(&WriteBatch {
                history: vec![hist(twin(1), "flow", point(-3, 7, 2.5))],
                meta: vec![("node".into(), vec![1, 2])],
                ..Default::default()
            })
            .unwrap();
        let (k, v) = store.history.iter().next().unwrap().into_inner().unwrap();
        assert_eq!(
            keys::parse_history_key(&k),
            Some((twin(1), "flow", Timestamp(-3), 7))
        );
        assert_eq!(&v[..2], &[b'H', 1]);
        let p: HistoryPoint = codec::decode(&v).unwrap();
        assert_eq!(p.quality, Quality::Good);
        let m = store.meta.get("node").unwrap().unwrap();
        assert_eq!(&m[..], &[b'M', 1, 2, 1, 2]);
        let s = store.stats();
        assert_eq!((s.batches, s.history_written), (1, 1));
        assert!(s.bytes_written > 0);
        assert!(s.disk_bytes.is_some());
    }

    #[tokio::test]
    async fn writer_over_fjall_acknowledges_only_what_is_on_disk() {
        use twins::store::{StoreWriter, WriteOp, WriterConfig};
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(FjallStore::open(dir.path()).unwrap());
        let (w, h) = StoreWriter::spawn(store, WriterConfig::default());
        for i in 0..1000 {
            w.send(WriteOp::History(hist(
                twin(1),
                "flow",
                point(i, 0, i as f64),
            )))
            .await
            .unwrap();
        }
        w.send(WriteOp::State(twin(1), state(1000))).await.unwrap();
        w.flush().await.unwrap();
        assert_eq!(w.durable().borrow().history_records, 1000);
        h.shutdown().await.unwrap();
        // The writer released the store: it opens again, with everything.
        let store = FjallStore::open(dir.path()).unwrap();
        assert_eq!(
            store
                .history(twin(1), "flow", Timestamp(0), Timestamp::MAX, usize::MAX)
                .unwrap()
                .len(),
            1000
        );
        assert_eq!(store.load_state(twin(1)).unwrap(), Some(state(1000)));
    }
}
