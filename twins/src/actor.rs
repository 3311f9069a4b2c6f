//! The twin actor and what twins of a node share.

mod context;
mod feed;
mod plan;
mod scheduler;
mod twin;

pub use context::{EdgeHost, Faults, RootObserver, TwinContext, TwinMetrics};
pub use feed::{ChangeFeed, TwinChange};
pub use plan::{Plan, Source};
pub use scheduler::Scheduler;
pub use twin::{
    ADAPTER_RESTART_MIN, AlarmCommand, AlarmView, ChildUpdate, EVENTS_PER_SEQ, ParentLink,
    PropView, SampleBatch, TwinActor, TwinArgs, TwinError, TwinMsg, TwinState, TwinView,
    spawn_root,
};
