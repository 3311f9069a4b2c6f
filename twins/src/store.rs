//! Storage: the interface every backend implements, the persisted records,
//! their versioned encoding, an in-memory backend and the write-behind writer.
//!
//! Nothing here touches a disk. The embedded default backend (fjall) lives in
//! `runtime::store`; it and [`MemoryStore`] pass the same
//! [`conformance`] suite.
//!
//! - [`Store`]: latest state per twin, property history, the event journal,
//!   node metadata and the audit log's opaque records, written in atomic,
//!   durable [`WriteBatch`]es.
//! - [`record`]: what is stored ([`TwinRecord`], [`HistoryPoint`],
//!   [`EventRecord`]).
//! - [`codec`]: the versioned postcard envelope every persisted value is
//!   wrapped in.
//! - [`keys`]: byte layouts of keys for ordered key-value backends.
//! - [`MemoryStore`]: BTreeMaps behind a lock; for tests and simulations.
//! - [`writer`]: [`StoreWriter`], batched write-behind in front of any store,
//!   and the definition of when a sample counts as acknowledged.
//!
//! ```
//! use std::sync::Arc;
//! use twins::store::{HistoryPoint, HistoryRecord, MemoryStore, Store, WriteBatch};
//! use twins::{Quality, Timestamp, TwinPath, Value};
//!
//! let store = MemoryStore::new();
//! let twin = TwinPath::parse("acme/east/p1/l1/p-101").unwrap().id();
//! let mut batch = WriteBatch::default();
//! batch.history.push(HistoryRecord {
//!     twin,
//!     prop: Arc::from("flow"),
//!     point: HistoryPoint { ts: Timestamp(10), seq: 1, value: Value::F64(12.5), quality: Quality::Good },
//! });
//! store.write(&batch).unwrap();
//! let points = store.history(twin, "flow", Timestamp(0), Timestamp(20), 100).unwrap();
//! assert_eq!(points.len(), 1);
//! ```

pub mod codec;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod keys;
mod memory;
pub mod record;
pub mod writer;

use std::fmt;

pub use codec::{CodecError, RecordKind};
pub use memory::MemoryStore;
pub use record::{
    AlarmTransitionRecord, Event, EventRecord, HistoryPoint, HistoryRecord, TwinRecord,
};
pub use writer::{Durable, StoreWriter, WriteOp, WriterConfig, WriterHandle, WriterMetrics};

use crate::id::TwinId;
use crate::time::Timestamp;

/// A storage backend.
///
/// Every method may block on IO: call it from a blocking context (a
/// dedicated thread, `spawn_blocking`), never from an actor's handler
/// directly. [`StoreWriter`] does this for writes.
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Applies a batch atomically and durably: when this returns `Ok`, every
    /// record of the batch is on stable storage (fsync'd or journal-synced)
    /// and visible to readers; when it returns `Err` or the process dies
    /// during the call, either all of the batch is there or none of it.
    ///
    /// Within a batch a later record with the same key wins (a state for the
    /// same twin, a history point with the same twin, property, timestamp and
    /// seq, an event with the same twin and seq, a meta key). Writing a
    /// record again with the same key overwrites it, so replays are idempotent.
    fn write(&self, batch: &WriteBatch) -> Result<(), StoreError>;

    /// The latest stored state of a twin.
    fn load_state(&self, id: TwinId) -> Result<Option<TwinRecord>, StoreError>;

    /// Calls `f` with every stored twin state, in ascending id order, until
    /// `f` returns `false`. For bulk recovery of a whole node.
    fn scan_states(&self, f: &mut dyn FnMut(TwinId, TwinRecord) -> bool) -> Result<(), StoreError>;

    /// History of one property with `from <= ts < to`, ascending by
    /// `(ts, seq)`, at most `limit` points (the earliest ones).
    fn history(
        &self,
        id: TwinId,
        prop: &str,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<Vec<HistoryPoint>, StoreError>;

    /// Journal entries of one twin with `seq > after_seq`, ascending by seq,
    /// at most `limit`.
    fn events(
        &self,
        id: TwinId,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError>;

    /// A node metadata value.
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Audit records with `seq > after_seq`, ascending by seq, at most
    /// `limit`, as `(seq, bytes)`: the bytes exactly as written. The store
    /// does not interpret them (the runtime's audit log encodes and chains
    /// them).
    fn audit(&self, after_seq: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;

    /// Counters for metrics.
    fn stats(&self) -> StoreStats;
}

/// Records to apply together: atomically and durably (see [`Store::write`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriteBatch {
    /// Latest state per twin; replaces what is stored.
    pub states: Vec<(TwinId, TwinRecord)>,
    /// History points to append.
    pub history: Vec<HistoryRecord>,
    /// Journal entries to append.
    pub events: Vec<EventRecord>,
    /// Node metadata to set.
    pub meta: Vec<(String, Vec<u8>)>,
    /// Audit records to append, as `(seq, bytes)`; stored as given, keyed by
    /// seq (see [`keys::audit_key`]).
    pub audit: Vec<(u64, Vec<u8>)>,
}

impl WriteBatch {
    /// Number of records in the batch.
    pub fn len(&self) -> usize {
        self.states.len()
            + self.history.len()
            + self.events.len()
            + self.meta.len()
            + self.audit.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks what every backend must reject before it writes anything:
    /// property names containing a NUL byte (it terminates the property
    /// name in history keys, see [`keys`]).
    pub fn validate(&self) -> Result<(), StoreError> {
        if let Some(bad) = self.history.iter().find(|h| h.prop.contains('\0')) {
            return Err(StoreError::Invalid {
                what: format!(
                    "history record of twin {} property {:?}",
                    bad.twin, bad.prop
                ),
                reason: "property names must not contain a NUL byte".to_string(),
            });
        }
        Ok(())
    }
}

/// Counters a backend keeps for metrics. The `*_written` counters count
/// records since the backend was opened; the others are the backend's best
/// estimate of what it holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Batches applied since open.
    pub batches: u64,
    pub states_written: u64,
    pub history_written: u64,
    pub events_written: u64,
    pub audit_written: u64,
    /// Encoded bytes (keys and values) written since open.
    pub bytes_written: u64,
    /// Twins with a stored state (may be approximate).
    pub states: u64,
    /// Stored history points (may be approximate).
    pub history: u64,
    /// Stored journal entries (may be approximate).
    pub events: u64,
    /// Stored audit records (may be approximate).
    pub audit: u64,
    /// Bytes on disk, for backends that have a disk.
    pub disk_bytes: Option<u64>,
}

/// Why a store operation failed.
///
/// `Clone` so that one failed write can be reported to every
/// [`StoreWriter::flush`] caller waiting on it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    #[error("cannot encode {what}: {source}")]
    Encode { what: String, source: CodecError },
    #[error("cannot decode {what}: {source}")]
    Decode { what: String, source: CodecError },
    #[error("corrupt key in `{keyspace}`: expected {expected}, found {found}")]
    CorruptKey {
        keyspace: &'static str,
        expected: &'static str,
        /// The key, hex-encoded.
        found: String,
    },
    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error("{backend} failed to {op}: {message}")]
    Backend {
        backend: &'static str,
        /// What was being done, naming the key or record.
        op: String,
        message: String,
    },
    #[error("the store writer has stopped")]
    WriterStopped,
    #[error("the store writer stopped with {records} records not written: {last_error}")]
    Unflushed {
        records: usize,
        last_error: Box<StoreError>,
    },
}

/// Lower-case hex of some bytes, for error messages and fixtures.
pub fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}
