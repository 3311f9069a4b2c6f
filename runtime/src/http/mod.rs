//! The node's HTTP surface: the JSON API (`docs/api.md`), live streams
//! (SSE), the dashboard, `/metrics`, `/healthz` and `/readyz`.
//!
//! - [`HttpServer::start`] binds the listener and serves until shut down.
//!   Its accept loop caps connections and cuts clients that are too slow to
//!   send their request; bodies are limited to 1 MiB.
//! - [`auth`]: tokens with a role and a subtree scope; every handler asks
//!   [`Api::authorize`] and every refusal is counted and audited.
//! - [`api`]: the handlers, each described for the OpenAPI document
//!   ([`openapi`]), served at `/api/openapi.json`.
//! - [`sse`]: the live-change hub and its per-client coalescing.
//!
//! Handlers reach twins only through the twin directory, so the same API on
//! any node serves twins wherever they run.

pub mod api;
pub mod auth;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod glob;
pub mod metrics;
pub mod openapi;
pub mod sse;
pub mod timeparse;
pub mod views;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cluster::TwinDirectory;
use twins::model::{Class, Model};
use twins::{Timestamp, TwinPath};

pub use auth::{Caller, Role, TokenInfo, Tokens};
pub use config::HttpConfig;
pub use error::{ApiError, Code};
pub use metrics::ApiMetrics;

use crate::audit::{AuditEntry, Category, Outcome};
use crate::node::Node;

/// The largest request body.
pub const MAX_BODY: usize = 1 << 20;

/// State shared by every handler.
#[derive(Debug)]
pub struct Api {
    pub node: Arc<Node>,
    pub config: HttpConfig,
    pub metrics: Arc<ApiMetrics>,
    pub(crate) hub: Arc<sse::Hub>,
    /// The live clients' tasks; each holds the API (and so the node) until
    /// it ends, so shutdown ends them all.
    pub(crate) clients: std::sync::Mutex<tokio::task::JoinSet<()>>,
    /// For each twin (model index), the end of its subtree's index range:
    /// the model lists twins in pre-order, so a subtree is contiguous.
    subtree_end: Vec<usize>,
}

impl Api {
    pub fn new(node: Arc<Node>, config: HttpConfig) -> Api {
        let model = node.ctx.model.clone();
        let n = model.twins.len();
        let mut subtree_end = vec![0; n];
        for i in (0..n).rev() {
            subtree_end[i] = model.twins[i]
                .children
                .last()
                .map_or(i + 1, |&c| subtree_end[c]);
        }
        let epoch = node.ctx.clock.now().as_micros().unsigned_abs();
        let metrics = Arc::new(ApiMetrics::default());
        let hub = Arc::new(sse::Hub::new(
            node.changes.clone(),
            config.sse_buffer,
            config.sse_coalesce,
            epoch,
            metrics.clone(),
        ));
        Api {
            node,
            config,
            metrics,
            hub,
            clients: std::sync::Mutex::new(tokio::task::JoinSet::new()),
            subtree_end,
        }
    }

    /// The twin directory: the only way handlers reach twins.
    pub fn directory(&self) -> &dyn TwinDirectory {
        self.node.directory.as_ref()
    }

    pub fn model(&self) -> &Model {
        &self.node.ctx.model
    }

    pub fn now(&self) -> Timestamp {
        self.node.ctx.clock.now()
    }

    pub(crate) fn class(&self, name: &str) -> Option<&Class> {
        self.model().class_by_name(name).map(|c| &**c)
    }

    pub(crate) fn index_of(&self, path: &TwinPath) -> Option<usize> {
        self.node.directory.index_of(path.id())
    }

    pub(crate) fn subtree_end(&self, i: usize) -> usize {
        self.subtree_end[i]
    }

    /// Refuses (403, counted and audited) unless the caller has `role` and,
    /// for a twin, the twin lies within its scope.
    pub fn authorize(
        &self,
        caller: &Caller,
        role: Role,
        action: &str,
        twin: Option<&TwinPath>,
    ) -> Result<(), ApiError> {
        let target = twin.map(|t| t.to_string());
        if let Err(d) = caller.require(role, action) {
            return Err(self.deny(caller, action, target.as_deref(), d));
        }
        if let Some(t) = twin
            && let Err(d) = caller.require_twin(t)
        {
            return Err(self.deny(caller, action, target.as_deref(), d));
        }
        Ok(())
    }

    pub(crate) fn deny(
        &self,
        caller: &Caller,
        action: &str,
        target: Option<&str>,
        d: auth::Denial,
    ) -> ApiError {
        self.metrics.denials.fetch_add(1, Ordering::Relaxed);
        self.audit(
            Some(caller),
            Category::Access,
            action,
            target,
            Err(d.message.clone()),
        );
        d.into()
    }

    /// Appends an audit record (never waits: see [`AuditLog::record`]).
    ///
    /// [`AuditLog::record`]: crate::audit::AuditLog::record
    pub(crate) fn audit(
        &self,
        caller: Option<&Caller>,
        category: Category,
        action: &str,
        target: Option<&str>,
        result: Result<(), String>,
    ) {
        let mut entry = AuditEntry::new(category, action).result(match result {
            Ok(()) => Outcome::Ok,
            Err(e) if category == Category::Access => Outcome::Denied(e),
            Err(e) => Outcome::Failed(e),
        });
        if let Some(c) = caller {
            entry = entry.token(c.token.id.clone());
            if let Some(a) = c.source() {
                entry = entry.source(a);
            }
        }
        if let Some(t) = target {
            entry = entry.target(t);
        }
        self.node.audit.record(entry);
    }

    fn audit_auth_failure(&self, addr: Option<SocketAddr>, path: &str, why: &str) {
        self.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
        let mut entry = AuditEntry::new(Category::Auth, "authenticate")
            .target(path)
            .result(Outcome::Denied(why.to_string()));
        if let Some(a) = addr {
            entry = entry.source(a.to_string());
        }
        self.node.audit.record(entry);
    }
}

impl FromRequestParts<Arc<Api>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Arc<Api>) -> Result<Self, ApiError> {
        let addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or(""));
        let secret = match header {
            Some(h) => match h
                .strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
            {
                Some(s) => Some(s.trim().to_string()),
                None => {
                    api.audit_auth_failure(
                        addr,
                        parts.uri.path(),
                        "malformed Authorization header",
                    );
                    return Err(ApiError::new(
                        Code::Unauthorized,
                        "the Authorization header must be `Bearer TOKEN`",
                    ));
                }
            },
            // Browsers' EventSource cannot set headers: the stream takes
            // the token from the query too.
            None if parts.uri.path() == "/api/stream" => parts.uri.query().and_then(|q| {
                q.split('&')
                    .find_map(|kv| kv.strip_prefix("access_token="))
                    .map(str::to_string)
            }),
            None => None,
        };
        let Some(secret) = secret else {
            api.audit_auth_failure(addr, parts.uri.path(), "no token");
            return Err(ApiError::new(
                Code::Unauthorized,
                "this needs a token: send `Authorization: Bearer TOKEN`",
            ));
        };
        match api.config.tokens.lookup(&secret) {
            Some(token) => Ok(Caller { token, addr }),
            None => {
                api.audit_auth_failure(addr, parts.uri.path(), "unknown token");
                Err(ApiError::new(
                    Code::Unauthorized,
                    "the token is not known to this node",
                ))
            }
        }
    }
}

/// Every route of the API, for the OpenAPI check and the denial tests:
/// (method, path as in the OpenAPI document).
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/twins/{twin}"),
    ("get", "/api/tree/{twin}"),
    ("get", "/api/find"),
    ("get", "/api/history/{twin}"),
    ("get", "/api/events/{twin}"),
    ("get", "/api/alarms"),
    ("post", "/api/alarms/acknowledge"),
    ("post", "/api/alarms/shelve"),
    ("post", "/api/alarms/unshelve"),
    ("post", "/api/alarms/out-of-service"),
    ("post", "/api/setpoint"),
    ("get", "/api/whoami"),
    ("get", "/api/stream"),
    ("get", "/api/audit"),
];

/// The router of the whole HTTP surface.
pub fn router(api: Arc<Api>) -> Router {
    let metrics = api.metrics.clone();
    Router::new()
        .route("/api/twins/{*twin}", get(api::get_twin))
        .route("/api/tree/{*twin}", get(api::get_tree))
        .route("/api/find", get(api::find))
        .route("/api/history/{*twin}", get(api::get_history))
        .route("/api/events/{*twin}", get(api::get_events))
        .route("/api/alarms", get(api::list_alarms))
        .route("/api/alarms/acknowledge", post(api::acknowledge))
        .route("/api/alarms/shelve", post(api::shelve))
        .route("/api/alarms/unshelve", post(api::unshelve))
        .route("/api/alarms/out-of-service", post(api::out_of_service))
        .route("/api/setpoint", post(api::setpoint))
        .route("/api/whoami", get(api::whoami))
        .route("/api/stream", get(sse::stream))
        .route("/api/audit", get(api::audit_log))
        .route("/api/openapi.json", get(openapi::serve))
        .route("/metrics", get(serve_metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(dashboard::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(move |r: Response| {
            let metrics = metrics.clone();
            async move {
                metrics.response(r.status().as_u16());
                r
            }
        }))
        .with_state(api)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint: see /api/openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        Code::MethodNotAllowed,
        "this endpoint does not take that method",
    )
}

/// Prometheus metrics; any role, but the scope must be the whole company.
async fn serve_metrics(State(api): State<Arc<Api>>, caller: Caller) -> Result<Response, ApiError> {
    let root = api.model().twins[0].path.clone();
    api.authorize(&caller, Role::Viewer, "reading metrics", Some(&root))?;
    let text = crate::metrics::render(&api.node, Some(&api.metrics)).await;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

async fn healthz(State(api): State<Arc<Api>>) -> Response {
    let h = crate::health::health(&api.node);
    if h.live {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        let why = format!("not live: {}\n", h.reasons.join("; "));
        (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
    }
}

async fn readyz(State(api): State<Arc<Api>>) -> Response {
    let h = crate::health::health(&api.node);
    if h.ready {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        let why = format!("not ready: {}\n", h.reasons.join("; "));
        (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
    }
}

/// A running HTTP server.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    api: Arc<Api>,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpServer {
    /// Binds `config.listen` and serves `node` until [`HttpServer::shutdown`].
    pub async fn start(node: Arc<Node>, config: HttpConfig) -> anyhow::Result<HttpServer> {
        use anyhow::Context;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} for the HTTP API (`--listen ADDR` picks another \
                     address, port 0 any free one; `--no-http` serves none)",
                    config.listen
                )
            })?;
        let addr = listener.local_addr()?;
        let api = Arc::new(Api::new(node, config));
        let app = router(api.clone());
        let (shutdown, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(serve::accept_loop(listener, app, api.clone(), rx));
        Ok(HttpServer {
            addr,
            api,
            shutdown,
            task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn api(&self) -> &Arc<Api> {
        &self.api
    }

    /// Stops accepting, closes every connection (live streams included)
    /// and returns once every handler has let go of the node.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        self.api.hub.stop();
        let mut clients =
            std::mem::take(&mut *self.api.clients.lock().unwrap_or_else(|e| e.into_inner()));
        clients.shutdown().await;
    }
}

mod serve;
