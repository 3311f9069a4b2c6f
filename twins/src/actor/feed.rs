//! The change feed: what twins tell the outside world after each change of
//! their state (northbound publishers, live streams).
//!
//! The feed is a bounded broadcast. A subscriber that falls behind loses the
//! oldest changes and learns how many (`RecvError::Lagged`); twins never wait
//! for a subscriber. Twins send only while a feed is installed in the
//! [`super::TwinContext`], so a node without subscribers pays nothing.

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::alarm::Transition;
use crate::sample::Slot;

/// One change of one twin.
#[derive(Debug, Clone)]
pub enum TwinChange {
    /// The twin's values after a message that changed them: every slot of
    /// its class, in property order.
    State {
        /// Index of the twin in `Model::twins`.
        twin: u32,
        /// The twin's state sequence number.
        seq: u64,
        slots: Arc<[Slot]>,
    },
    /// An alarm of the twin changed state or mode.
    Alarm {
        twin: u32,
        /// Index into the class's alarms.
        alarm: u16,
        transition: Transition,
    },
}

impl TwinChange {
    /// Index of the twin that changed.
    pub fn twin(&self) -> usize {
        match self {
            TwinChange::State { twin, .. } | TwinChange::Alarm { twin, .. } => *twin as usize,
        }
    }
}

/// The sending side, shared by all twins of a node.
#[derive(Debug, Clone)]
pub struct ChangeFeed {
    tx: broadcast::Sender<Arc<TwinChange>>,
}

impl ChangeFeed {
    /// A feed whose subscribers may each fall `capacity` changes behind
    /// before they lose the oldest.
    pub fn new(capacity: usize) -> ChangeFeed {
        let (tx, _) = broadcast::channel(capacity.max(1));
        ChangeFeed { tx }
    }

    /// A new subscriber; it sees changes sent from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<TwinChange>> {
        self.tx.subscribe()
    }

    /// Whether anyone listens (twins skip building changes otherwise).
    pub fn has_subscribers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    pub(crate) fn send(&self, change: TwinChange) {
        // No subscriber is not an error: the change is simply not wanted.
        let _ = self.tx.send(Arc::new(change));
    }
}
