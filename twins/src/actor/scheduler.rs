//! One shared timer for every twin: coalesced publishes are scheduled here
//! instead of each twin owning a timer task (STYLE 10).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use ractor::ActorRef;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::twin::TwinMsg;

/// Schedules `TwinMsg::Flush` deliveries. Cheap to clone.
///
/// The queue is unbounded by type but bounded by design: a container
/// schedules at most one flush at a time (it keeps a `flush_scheduled`
/// flag), so the queue never holds more entries than there are containers.
#[derive(Debug, Clone)]
pub struct Scheduler {
    tx: mpsc::UnboundedSender<(Instant, ActorRef<TwinMsg>)>,
}

struct Entry(Instant, u64, ActorRef<TwinMsg>);

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.0, self.1) == (other.0, other.1)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.0, self.1).cmp(&(other.0, other.1))
    }
}

impl Scheduler {
    /// Starts the scheduler task on the current tokio runtime. It ends when
    /// every handle is dropped.
    pub fn spawn() -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, ActorRef<TwinMsg>)>();
        tokio::spawn(async move {
            let mut heap: BinaryHeap<Reverse<Entry>> = BinaryHeap::new();
            let mut n = 0u64;
            loop {
                let next = heap.peek().map(|Reverse(e)| e.0);
                tokio::select! {
                    msg = rx.recv() => match msg {
                        Some((at, who)) => {
                            n += 1;
                            heap.push(Reverse(Entry(at, n, who)));
                        }
                        None => break,
                    },
                    _ = sleep_until_opt(next) => {
                        let now = Instant::now();
                        while let Some(Reverse(e)) = heap.peek() {
                            if e.0 > now {
                                break;
                            }
                            let Some(Reverse(Entry(_, _, who))) = heap.pop() else { break };
                            // A twin that stopped meanwhile simply misses its flush.
                            let _ = who.cast(TwinMsg::Flush);
                        }
                    }
                }
            }
        });
        Self { tx }
    }

    /// Delivers `TwinMsg::Flush` to `who` at `at` (tokio time).
    pub fn flush_at(&self, at: Instant, who: ActorRef<TwinMsg>) {
        let _ = self.tx.send((at, who));
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
