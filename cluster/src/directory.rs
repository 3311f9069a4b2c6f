//! The twin directory: resolves a path, id or alias to a reference that
//! callers use without knowing where the twin runs.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ractor::ActorRef;
use twins::actor::{AlarmCommand, TwinContext, TwinError, TwinMsg, TwinView};
use twins::store::{EventRecord, HistoryPoint, Store, StoreError};
use twins::{Resolver, Timestamp, TwinId, TwinPath};

/// How long a request to a twin may take before the caller gives up.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a twin could not be reached.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DirectoryError {
    #[error("no twin is known as `{0}`: expected a path, a twin id or an alias")]
    Unknown(String),
    #[error("twin `{0}` is not running (starting, restarting or stopped)")]
    NotRunning(TwinPath),
    #[error("twin `{path}` did not answer within {timeout:?}")]
    Timeout { path: TwinPath, timeout: Duration },
    #[error(transparent)]
    Twin(#[from] TwinError),
    #[error("the store of twin `{path}` failed: {source}")]
    Store { path: TwinPath, source: StoreError },
    #[error("twin `{0}` keeps no history or journal here (no store)")]
    NoStore(TwinPath),
}

/// A twin reference. Today every twin is local; the methods are the whole
/// contract so that a remote twin can sit behind the same type later.
#[derive(Debug, Clone)]
pub struct TwinRef {
    pub id: TwinId,
    pub path: TwinPath,
    actor: ActorRef<TwinMsg>,
    store: Option<Arc<dyn Store>>,
    timeout: Duration,
}

impl TwinRef {
    /// The twin's current state.
    pub async fn view(&self) -> Result<TwinView, DirectoryError> {
        match self.actor.call(TwinMsg::Get, Some(self.timeout)).await {
            Ok(ractor::rpc::CallResult::Success(v)) => Ok(v),
            Ok(ractor::rpc::CallResult::Timeout) => Err(DirectoryError::Timeout {
                path: self.path.clone(),
                timeout: self.timeout,
            }),
            _ => Err(DirectoryError::NotRunning(self.path.clone())),
        }
    }

    /// Applies an operator command to one of the twin's alarms.
    pub async fn alarm(
        &self,
        alarm: &str,
        command: AlarmCommand,
        who: &str,
    ) -> Result<(), DirectoryError> {
        let (alarm, who) = (alarm.to_string(), who.to_string());
        match self
            .actor
            .call(
                |reply| TwinMsg::Alarm {
                    alarm,
                    command,
                    who,
                    reply,
                },
                Some(self.timeout),
            )
            .await
        {
            Ok(ractor::rpc::CallResult::Success(r)) => Ok(r?),
            Ok(ractor::rpc::CallResult::Timeout) => Err(DirectoryError::Timeout {
                path: self.path.clone(),
                timeout: self.timeout,
            }),
            _ => Err(DirectoryError::NotRunning(self.path.clone())),
        }
    }

    /// History of one property with `from <= ts < to`, oldest first, at
    /// most `limit` points (the earliest ones).
    pub async fn history(
        &self,
        prop: &str,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<Vec<HistoryPoint>, DirectoryError> {
        let prop = prop.to_string();
        let id = self.id;
        self.read_store(move |s| s.history(id, &prop, from, to, limit))
            .await
    }

    /// Journal entries with `seq > after_seq`, oldest first, at most `limit`.
    pub async fn events(
        &self,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, DirectoryError> {
        let id = self.id;
        self.read_store(move |s| s.events(id, after_seq, limit))
            .await
    }

    /// Runs a store read off the async workers (reads may block on IO).
    async fn read_store<T: Send + 'static>(
        &self,
        read: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, DirectoryError> {
        let store = self
            .store
            .clone()
            .ok_or_else(|| DirectoryError::NoStore(self.path.clone()))?;
        let path = self.path.clone();
        match tokio::task::spawn_blocking(move || read(store.as_ref())).await {
            Ok(r) => r.map_err(|source| DirectoryError::Store { path, source }),
            Err(e) => Err(DirectoryError::Store {
                path,
                source: StoreError::Backend {
                    backend: "store",
                    op: "read".into(),
                    message: format!("the read task failed: {e}"),
                },
            }),
        }
    }

    /// The actor behind a local twin (for the node's own wiring).
    pub fn actor(&self) -> &ActorRef<TwinMsg> {
        &self.actor
    }
}

/// Resolves identifiers to twin references.
pub trait TwinDirectory: Send + Sync + fmt::Debug {
    /// Resolves a path, hyphenated id or alias to the twin's id.
    fn resolve(&self, ident: &str) -> Option<TwinId>;
    fn path_of(&self, id: TwinId) -> Option<TwinPath>;
    /// A reference to the running twin.
    fn get(&self, ident: &str) -> Result<TwinRef, DirectoryError>;
}

/// The directory of a single node hosting the whole topology.
#[derive(Debug)]
pub struct LocalDirectory {
    ctx: Arc<TwinContext>,
    resolver: Resolver,
    index: HashMap<TwinId, usize>,
    timeout: Duration,
}

impl LocalDirectory {
    /// Builds the directory of every twin of `ctx.model`, with its aliases.
    pub fn new(ctx: Arc<TwinContext>) -> Self {
        let mut resolver = Resolver::new();
        let mut index = HashMap::with_capacity(ctx.model.twins.len());
        for (i, t) in ctx.model.twins.iter().enumerate() {
            index.insert(resolver.insert(t.path.clone()), i);
        }
        for t in &ctx.model.twins {
            for alias in &t.aliases {
                // The model validated aliases to be unique.
                let _ = resolver.alias(alias, &t.path);
            }
        }
        Self {
            ctx,
            resolver,
            index,
            timeout: DEFAULT_CALL_TIMEOUT,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Index of the twin in the model.
    pub fn index_of(&self, id: TwinId) -> Option<usize> {
        self.index.get(&id).copied()
    }
}

impl TwinDirectory for LocalDirectory {
    fn resolve(&self, ident: &str) -> Option<TwinId> {
        self.resolver.resolve(ident)
    }

    fn path_of(&self, id: TwinId) -> Option<TwinPath> {
        self.resolver.path_of(id).cloned()
    }

    fn get(&self, ident: &str) -> Result<TwinRef, DirectoryError> {
        let id = self
            .resolve(ident)
            .ok_or_else(|| DirectoryError::Unknown(ident.to_string()))?;
        let i = self.index[&id];
        let path = self.ctx.model.twins[i].path.clone();
        let actor = self
            .ctx
            .actor_of(i)
            .ok_or_else(|| DirectoryError::NotRunning(path.clone()))?;
        Ok(TwinRef {
            id,
            path,
            actor,
            store: self.ctx.store.clone(),
            timeout: self.timeout,
        })
    }
}
