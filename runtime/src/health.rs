//! Liveness and readiness of a node, for `/healthz` and `/readyz`.
//!
//! - **Live**: the root (enterprise) twin has not stopped. A root that
//!   escalated a failure ends the twin tree; only a restart of the process
//!   mends that.
//! - **Ready**: live, every twin of the topology is running, the store
//!   writer is running and its last write did not fail, and no edge adapter
//!   has been failed for longer than its first restart delay
//!   ([`twins::actor::ADAPTER_RESTART_MIN`]): a failure the supervisor mends
//!   at once does not flap readiness, a persistent one shows.

use std::fmt::Write as _;

use twins::actor::ADAPTER_RESTART_MIN;

use crate::edge::AdapterState;
use crate::node::Node;

/// At most this many twins are named in a reason.
const NAMED_TWINS: usize = 5;

/// What `/healthz` and `/readyz` report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub live: bool,
    pub ready: bool,
    /// Why the node is not ready (empty when it is), one sentence each.
    pub reasons: Vec<String>,
}

/// The node's health now. Scans every twin's registration: cheap enough
/// for a probe every few seconds, not for a hot path.
pub fn health(node: &Node) -> Health {
    let mut reasons = Vec::new();
    let live = !node.root_failed();
    if !live {
        reasons.push(format!("the root twin `{}` has stopped", node.root_path()));
    }
    let model = &node.ctx.model;
    let down: Vec<usize> = (0..model.twins.len())
        .filter(|&i| node.ctx.actor_of(i).is_none())
        .collect();
    if !down.is_empty() {
        let mut text = format!(
            "{} of {} twins are not running:",
            down.len(),
            model.twins.len()
        );
        for &i in down.iter().take(NAMED_TWINS) {
            let _ = write!(text, " `{}`", model.twins[i].path);
        }
        if down.len() > NAMED_TWINS {
            text.push_str(" …");
        }
        reasons.push(text);
    }
    match &node.writer {
        Some(w) if w.is_running() => {
            let m = w.metrics();
            if m.failing {
                reasons.push(format!(
                    "the last store write failed ({}); retrying",
                    m.last_error.as_deref().unwrap_or("no error recorded")
                ));
            }
        }
        _ => reasons.push("the store writer is not running".into()),
    }
    let now = node.ctx.clock.now();
    for a in node.edge.status() {
        if a.state == AdapterState::Failed && now.since(a.since) > ADAPTER_RESTART_MIN {
            reasons.push(format!(
                "edge adapter `{}` ({}) has been failed for {:.1} s: {}",
                a.name,
                a.kind,
                now.since(a.since).as_secs_f64(),
                a.last_error.as_deref().unwrap_or("no error recorded")
            ));
        }
    }
    Health {
        live,
        ready: reasons.is_empty(),
        reasons,
    }
}
