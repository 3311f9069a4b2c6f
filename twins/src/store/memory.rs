//! [`MemoryStore`]: the in-memory backend, for tests and simulations.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{EventRecord, HistoryPoint, Store, StoreError, StoreStats, TwinRecord, WriteBatch};
use crate::id::TwinId;
use crate::time::Timestamp;

/// BTreeMaps behind one lock. A batch is applied under the write lock, so
/// readers see all of it or none of it. Nothing survives the process;
/// clones share the same data (a clone is what "reopening" a memory store
/// means in the conformance suite).
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<RwLock<Inner>>,
}

/// One property's history, by (ts, seq).
type Series = BTreeMap<(Timestamp, u64), HistoryPoint>;

#[derive(Debug, Default)]
struct Inner {
    states: BTreeMap<TwinId, TwinRecord>,
    /// Keyed like the ordered backends: twin, property, then (ts, seq).
    history: BTreeMap<(TwinId, Arc<str>), Series>,
    history_len: u64,
    events: BTreeMap<(TwinId, u64), EventRecord>,
    meta: BTreeMap<String, Vec<u8>>,
    audit: BTreeMap<u64, Vec<u8>>,
    stats: StoreStats,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied batch
        // (batches are validated first and applying cannot fail), so the
        // data is consistent and poisoning can be ignored.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write_lock(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Store for MemoryStore {
    fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        batch.validate()?;
        if batch.is_empty() {
            return Ok(());
        }
        let mut inner = self.write_lock();
        let inner = &mut *inner;
        for (id, rec) in &batch.states {
            inner.states.insert(*id, rec.clone());
        }
        for h in &batch.history {
            let points = inner.history.entry((h.twin, h.prop.clone())).or_default();
            if points
                .insert((h.point.ts, h.point.seq), h.point.clone())
                .is_none()
            {
                inner.history_len += 1;
            }
        }
        for e in &batch.events {
            inner.events.insert((e.twin, e.seq), e.clone());
        }
        for (k, v) in &batch.meta {
            inner.meta.insert(k.clone(), v.clone());
        }
        for (seq, bytes) in &batch.audit {
            inner.audit.insert(*seq, bytes.clone());
        }
        let s = &mut inner.stats;
        s.batches += 1;
        s.states_written += batch.states.len() as u64;
        s.history_written += batch.history.len() as u64;
        s.events_written += batch.events.len() as u64;
        s.audit_written += batch.audit.len() as u64;
        Ok(())
    }

    fn load_state(&self, id: TwinId) -> Result<Option<TwinRecord>, StoreError> {
        Ok(self.read().states.get(&id).cloned())
    }

    fn scan_states(&self, f: &mut dyn FnMut(TwinId, TwinRecord) -> bool) -> Result<(), StoreError> {
        // Copy first so that `f` may call back into the store.
        let states: Vec<_> = self
            .read()
            .states
            .iter()
            .map(|(id, r)| (*id, r.clone()))
            .collect();
        for (id, rec) in states {
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
        if from >= to || limit == 0 {
            return Ok(Vec::new());
        }
        let inner = self.read();
        let Some(points) = inner.history.get(&(id, Arc::from(prop))) else {
            return Ok(Vec::new());
        };
        Ok(points
            .range((Bound::Included((from, 0)), Bound::Excluded((to, 0))))
            .take(limit)
            .map(|(_, p)| p.clone())
            .collect())
    }

    fn events(
        &self,
        id: TwinId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        if after_seq == u64::MAX || limit == 0 {
            return Ok(Vec::new());
        }
        Ok(self
            .read()
            .events
            .range((id, after_seq + 1)..=(id, u64::MAX))
            .take(limit)
            .map(|(_, e)| e.clone())
            .collect())
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read().meta.get(key).cloned())
    }

    fn audit(&self, after_seq: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        if after_seq == u64::MAX || limit == 0 {
            return Ok(Vec::new());
        }
        Ok(self
            .read()
            .audit
            .range(after_seq + 1..)
            .take(limit)
            .map(|(seq, bytes)| (*seq, bytes.clone()))
            .collect())
    }

    fn stats(&self) -> StoreStats {
        let inner = self.read();
        StoreStats {
            states: inner.states.len() as u64,
            history: inner.history_len,
            events: inner.events.len() as u64,
            audit: inner.audit.len() as u64,
            ..inner.stats
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{Opened, run_conformance};

    #[test]
    fn memory_store_passes_the_conformance_suite() {
        run_conformance(&|| {
            let store = MemoryStore::new();
            let again = store.clone();
            Opened {
                store: Box::new(store),
                reopen: Some(Box::new(move || Box::new(again.clone()))),
            }
        });
    }
}
