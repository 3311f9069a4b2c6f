//! What the HTTP layer counts, for `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of the HTTP API and its live streams. Shared by every request
/// handler; rendered by [`crate::metrics::render`].
#[derive(Debug, Default)]
pub struct ApiMetrics {
    /// Responses sent, by HTTP status code.
    responses: Mutex<BTreeMap<u16, u64>>,
    /// Requests with a missing, malformed or unknown token.
    pub auth_failures: AtomicU64,
    /// Requests refused for the token's role or scope (403).
    pub denials: AtomicU64,
    /// Connections closed because the client was too slow to send its
    /// request, or held more than the connection limit.
    pub connections_cut: AtomicU64,
    /// Live (SSE) clients connected now.
    pub sse_clients: AtomicU64,
    /// Events sent to live clients.
    pub sse_events: AtomicU64,
    /// Events a live client lost because it read too slowly (its queue was
    /// full); each loss is also signalled to that client.
    pub sse_dropped: AtomicU64,
    /// Live clients that resumed from a `Last-Event-ID`.
    pub sse_resumed: AtomicU64,
}

impl ApiMetrics {
    /// Counts one response with `status`.
    pub fn response(&self, status: u16) {
        let mut r = self.responses.lock().unwrap_or_else(|e| e.into_inner());
        *r.entry(status).or_default() += 1;
    }

    /// Responses sent so far, by status, ascending.
    pub fn responses(&self) -> Vec<(u16, u64)> {
        let r = self.responses.lock().unwrap_or_else(|e| e.into_inner());
        r.iter().map(|(s, n)| (*s, *n)).collect()
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
