//! The command-line client: `twinrt get`, `watch`, `alarms` and `history`
//! against a running node's HTTP API (docs/api.md).
//!
//! - [`Client`]: a small typed client over `reqwest`; API errors become
//!   [`ClientError`]s that say which node answered what.
//! - [`sse`]: the live stream, parsed by hand, reconnecting with
//!   `Last-Event-ID`.
//! - [`render`]: the tables, as pure functions of the API's answers.
//! - [`watch`]: the live table of `twinrt watch`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), runtime::client::ClientError> {
//! let client = runtime::client::Client::new("http://127.0.0.1:7878", "twr_…")?;
//! let twin = client.get_twin("acme/east/baytown/crude-unit/p-01").await?;
//! println!("{} has {} properties", twin.value.path, twin.value.properties.len());
//! # Ok(()) }
//! ```

pub mod render;
pub mod sse;
pub mod watch;

use std::io::Write;
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

pub use sse::{EventStream, SseEvent, SseParser, StreamItem};

/// Where the client looks for a node unless `--node` or `TWINRT_NODE` says.
pub const DEFAULT_NODE: &str = "http://127.0.0.1:7878";

/// Why a request did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node answered with an API error.
    #[error("{node}: {code}: {message}")]
    Api {
        node: String,
        status: u16,
        code: String,
        message: String,
    },
    /// Nothing answered at the node's address.
    #[error(
        "cannot reach the node at {node}: {reason} (is `twinrt run` running? --node sets the address)"
    )]
    Unreachable { node: String, reason: String },
    /// The connection failed after it was made.
    #[error("{node}: {message}")]
    Transport { node: String, message: String },
    /// The node answered something that is not the API's JSON.
    #[error("{node}: unexpected answer to {what}: {detail}")]
    Decode {
        node: String,
        what: String,
        detail: String,
    },
    #[error(
        "no token: pass --token TOKEN or set TWINRT_TOKEN (`twinrt run` prints an admin token when it starts; `twinrt token add` makes more)"
    )]
    NoToken,
    #[error("--node `{0}` is not an address: expected http://HOST:PORT")]
    BadNode(String),
    #[error("{0}")]
    Usage(String),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl ClientError {
    /// The API error code, when the node answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// An answer: the API's JSON as it came, and its typed reading.
#[derive(Debug, Clone)]
pub struct Answer<T> {
    pub raw: Json,
    pub value: T,
}

/// A client of one node, with one token.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    node: String,
    token: String,
}

/// How long a request (other than the live stream) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Client {
    /// A client of the node at `node` (`http://HOST:PORT`; `HOST:PORT`
    /// alone is taken as http).
    pub fn new(node: &str, token: &str) -> Result<Client, ClientError> {
        let trimmed = node.trim().trim_end_matches('/');
        let node = if trimmed.contains("://") {
            trimmed.to_string()
        } else {
            format!("http://{trimmed}")
        };
        if !node.starts_with("http://") || node.len() <= "http://".len() {
            return Err(ClientError::BadNode(trimmed.to_string()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| ClientError::Transport {
                node: node.clone(),
                message: format!("cannot set up the HTTP client: {e}"),
            })?;
        Ok(Client {
            http,
            node,
            token: token.to_string(),
        })
    }

    /// The node's base address.
    pub fn node(&self) -> &str {
        &self.node
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> String {
        let mut url = format!("{}{}", self.node, encode(path, b"/:"));
        for (i, (k, v)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(k);
            url.push('=');
            url.push_str(&encode(v, b"/*:"));
        }
        url
    }

    /// Sends a request; an API error or an unreachable node is an error.
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        let detail = serde_json::from_slice::<Json>(&body)
            .ok()
            .and_then(|v| v.get("error").cloned());
        let (code, message) = match detail {
            Some(e) => (
                e["code"].as_str().unwrap_or("unknown").to_string(),
                e["message"].as_str().unwrap_or("").to_string(),
            ),
            None => (
                status.as_u16().to_string(),
                String::from_utf8_lossy(&body)
                    .trim()
                    .chars()
                    .take(200)
                    .collect(),
            ),
        };
        Err(ClientError::Api {
            node: self.node.clone(),
            status: status.as_u16(),
            code,
            message,
        })
    }

    fn transport(&self, e: reqwest::Error) -> ClientError {
        if e.is_connect() {
            // The innermost cause says it best ("connection refused").
            let mut reason = e.to_string();
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(s) = source {
                if let Some(io) = s.downcast_ref::<std::io::Error>() {
                    reason = match io.kind() {
                        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
                        _ => io.to_string(),
                    };
                    break;
                }
                reason = s.to_string();
                source = s.source();
            }
            return ClientError::Unreachable {
                node: self.node.clone(),
                reason,
            };
        }
        let what = if e.is_timeout() {
            "no answer in time"
        } else {
            "the request failed"
        };
        ClientError::Transport {
            node: self.node.clone(),
            message: format!("{what}: {e}"),
        }
    }

    async fn read<T: DeserializeOwned>(
        &self,
        what: &str,
        resp: reqwest::Response,
    ) -> Result<Answer<T>, ClientError> {
        let bytes = resp.bytes().await.map_err(|e| self.transport(e))?;
        let decode = |detail: String| ClientError::Decode {
            node: self.node.clone(),
            what: what.to_string(),
            detail,
        };
        let raw: Json = serde_json::from_slice(&bytes).map_err(|e| decode(e.to_string()))?;
        let value = T::deserialize(&raw).map_err(|e| decode(e.to_string()))?;
        Ok(Answer { raw, value })
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Answer<T>, ClientError> {
        let req = self
            .http
            .get(self.url(path, query))
            .timeout(REQUEST_TIMEOUT);
        let resp = self.send(req).await?;
        self.read(&format!("GET {path}"), resp).await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Json,
    ) -> Result<Answer<T>, ClientError> {
        let req = self
            .http
            .post(self.url(path, &[]))
            .json(body)
            .timeout(REQUEST_TIMEOUT);
        let resp = self.send(req).await?;
        self.read(&format!("POST {path}"), resp).await
    }

    /// `GET /api/twins/{twin}`: a twin by path, id or alias.
    pub async fn get_twin(&self, twin: &str) -> Result<Answer<Twin>, ClientError> {
        self.get(&format!("/api/twins/{}", twin.trim_matches('/')), &[])
            .await
    }

    /// `GET /api/history/{twin}`: `from` and `to` as the API takes them
    /// (RFC 3339, `-1h`, `now`), at most `points` buckets.
    pub async fn history(
        &self,
        twin: &str,
        prop: &str,
        from: Option<&str>,
        to: Option<&str>,
        points: Option<usize>,
    ) -> Result<Answer<History>, ClientError> {
        let points = points.map(|p| p.to_string());
        let mut q = vec![("prop", prop)];
        q.extend(from.map(|f| ("from", f)));
        q.extend(to.map(|t| ("to", t)));
        q.extend(points.as_deref().map(|p| ("points", p)));
        self.get(&format!("/api/history/{}", twin.trim_matches('/')), &q)
            .await
    }

    /// `GET /api/alarms`: `glob` defaults to the token's scope, `state` to
    /// `active`.
    pub async fn alarms(
        &self,
        glob: Option<&str>,
        state: Option<&str>,
    ) -> Result<Answer<AlarmList>, ClientError> {
        let mut q = Vec::new();
        q.extend(glob.map(|g| ("path", g)));
        q.extend(state.map(|s| ("state", s)));
        self.get("/api/alarms", &q).await
    }

    /// Acknowledges `TWIN:ALARM`; answers the alarm after it.
    pub async fn acknowledge(
        &self,
        alarm: &str,
        comment: Option<&str>,
    ) -> Result<Answer<Alarm>, ClientError> {
        let body = serde_json::json!({ "alarm": alarm, "comment": comment });
        self.post("/api/alarms/acknowledge", &body).await
    }

    /// Shelves `TWIN:ALARM` for `duration` (`30m`, `2h`; at most 24 h).
    pub async fn shelve(
        &self,
        alarm: &str,
        duration: &str,
        comment: Option<&str>,
    ) -> Result<Answer<Alarm>, ClientError> {
        let body = serde_json::json!({ "alarm": alarm, "for": duration, "comment": comment });
        self.post("/api/alarms/shelve", &body).await
    }

    /// Unshelves `TWIN:ALARM`.
    pub async fn unshelve(
        &self,
        alarm: &str,
        comment: Option<&str>,
    ) -> Result<Answer<Alarm>, ClientError> {
        let body = serde_json::json!({ "alarm": alarm, "comment": comment });
        self.post("/api/alarms/unshelve", &body).await
    }

    /// The live stream of the twins matching `glob` (a path is one twin).
    pub async fn stream(&self, glob: &str) -> Result<EventStream, ClientError> {
        EventStream::connect(self, glob).await
    }

    /// Opens `/api/stream`, resuming after `last_id` when given.
    pub(crate) async fn open_stream(
        &self,
        glob: &str,
        last_id: Option<&str>,
    ) -> Result<reqwest::Response, ClientError> {
        let mut req = self
            .http
            .get(self.url("/api/stream", &[("path", glob)]))
            .header("accept", "text/event-stream");
        if let Some(id) = last_id {
            req = req.header("last-event-id", id);
        }
        self.send(req).await
    }
}

/// Percent-encodes everything but unreserved characters and `keep`.
fn encode(text: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// The answers are decoded into the API's own types.
pub use crate::http::api::{AlarmList, Bucket, History};
pub use crate::http::views::{Alarm, AlarmSummary, ByPriority, Contributors, Property, Twin};

/// The data of a `state` event.
#[derive(Debug, Clone, Deserialize)]
pub struct StateData {
    pub path: String,
    pub seq: u64,
    pub properties: std::collections::BTreeMap<String, PropState>,
}

/// One property in a `state` event.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct PropState {
    pub value: Json,
    pub quality: String,
    pub reason: Option<String>,
    pub ts: String,
}

// ---------------------------------------------------------------------------
// The subcommands.

/// Options every client subcommand takes.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    /// The node's address [env: TWINRT_NODE; default: http://127.0.0.1:7878].
    #[arg(long, value_name = "URL")]
    pub node: Option<String>,
    /// API token (`twr_…`) [env: TWINRT_TOKEN].
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl NodeArgs {
    /// The client these options name: flags first, then the environment.
    pub fn client(&self) -> Result<Client, ClientError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let node = self
            .node
            .clone()
            .or_else(|| env("TWINRT_NODE"))
            .unwrap_or_else(|| DEFAULT_NODE.to_string());
        let token = self
            .token
            .clone()
            .or_else(|| env("TWINRT_TOKEN"))
            .ok_or(ClientError::NoToken)?;
        Client::new(&node, token.trim())
    }
}

/// The client's subcommands, flattened into `twinrt`'s.
#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Show one twin of a running node: properties, roll-ups, alarms, children.
    #[command(after_help = "Example:\n  \
        twinrt get acme/east/baytown/crude-unit/p-01 --token twr_…\n  \
        twinrt get urn:acme:plant:baytown --json")]
    Get(GetArgs),
    /// Watch live changes of a twin or a subtree (`acme/east/**`) as a table.
    #[command(after_help = "Examples:\n  \
        twinrt watch acme/east/baytown/crude-unit/p-01\n  \
        twinrt watch 'acme/east/**' --for 30s\n  \
        twinrt watch 'acme/*/baytown/**' --json | jq .data.path\n\n\
        On a terminal the table is redrawn in place; otherwise each change is a line.\n\
        Ctrl-C stops.")]
    Watch(WatchArgs),
    /// List alarms, or acknowledge, shelve or unshelve one.
    #[command(after_help = "Examples:\n  \
        twinrt alarms                               active alarms in the token's scope\n  \
        twinrt alarms 'acme/east/**' --state unacked\n  \
        twinrt alarms --ack acme/east/baytown/crude-unit/p-01:high_vibration\n  \
        twinrt alarms --shelve acme/east/baytown/crude-unit/p-01:high_vibration --for 2h --comment 'sensor swap'\n  \
        twinrt alarms --unshelve acme/east/baytown/crude-unit/p-01:high_vibration")]
    Alarms(AlarmsArgs),
    /// A property's history, downsampled by the node: min, avg, max per bucket.
    #[command(after_help = "Examples:\n  \
        twinrt history acme/east/baytown/crude-unit/p-01 flow --since 1h\n  \
        twinrt history acme/east/baytown throughput --from -2h --to -1h --points 60\n  \
        twinrt history urn:acme:plant:baytown power --from 2026-11-21T08:00:00Z --to 2026-11-21T09:00:00Z")]
    History(HistoryArgs),
}

#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// The twin: a path, an id or an alias.
    pub path: String,
    #[command(flatten)]
    pub node: NodeArgs,
}

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// A twin (path, id or alias) or a path glob (`acme/east/**`).
    pub path: String,
    /// Stop after this long (`30s`, `5m`); default: until Ctrl-C.
    #[arg(long = "for", value_name = "DURATION", value_parser = crate::cli::parse_duration)]
    pub run_for: Option<Duration>,
    #[command(flatten)]
    pub node: NodeArgs,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("command").args(["ack", "shelve", "unshelve"])))]
pub struct AlarmsArgs {
    /// Only alarms of twins matching this glob (default: the token's scope).
    pub path: Option<String>,
    /// Which alarms: active (acked or not), unacked, shelved or all.
    #[arg(long, default_value = "active", value_parser = ["active", "unacked", "shelved", "all"])]
    pub state: String,
    /// Acknowledge this alarm (`TWIN:ALARM`).
    #[arg(long, value_name = "ID")]
    pub ack: Option<String>,
    /// Shelve this alarm (`TWIN:ALARM`) for `--for`.
    #[arg(long, value_name = "ID", requires = "shelve_for")]
    pub shelve: Option<String>,
    /// How long to shelve (`30m`, `2h`; at most 24h).
    #[arg(long = "for", value_name = "DURATION", requires = "shelve")]
    pub shelve_for: Option<String>,
    /// Unshelve this alarm (`TWIN:ALARM`).
    #[arg(long, value_name = "ID")]
    pub unshelve: Option<String>,
    /// Why, for the journal and the audit log.
    #[arg(long)]
    pub comment: Option<String>,
    #[command(flatten)]
    pub node: NodeArgs,
}

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// The twin: a path, an id or an alias.
    pub path: String,
    /// The property.
    pub property: String,
    /// How far back (`15m`, `1h`, `2d`); default 1h.
    #[arg(long, value_name = "DURATION", conflicts_with_all = ["from", "to"])]
    pub since: Option<String>,
    /// Start: RFC 3339 (`2026-11-21T08:00:00Z`) or relative (`-2h`).
    #[arg(long, value_name = "T", allow_hyphen_values = true)]
    pub from: Option<String>,
    /// End: RFC 3339, relative, or `now` (the default).
    #[arg(long, value_name = "T", allow_hyphen_values = true)]
    pub to: Option<String>,
    /// At most this many buckets (1 to 5000).
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub points: usize,
    #[command(flatten)]
    pub node: NodeArgs,
}

/// Runs a client subcommand; returns the process exit code. Errors print
/// as `twinrt: …` on stderr.
pub fn main(cmd: ClientCommand) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("twinrt: cannot start the async runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(run(cmd)) {
        Ok(()) => 0,
        // A reader that went away (`twinrt alarms | head`) is not an error.
        Err(ClientError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("twinrt: {e}");
            1
        }
    }
}

/// Runs a client subcommand.
pub async fn run(cmd: ClientCommand) -> Result<(), ClientError> {
    let now = render::now();
    match cmd {
        ClientCommand::Get(a) => {
            let client = a.node.client()?;
            let twin = client.get_twin(&a.path).await?;
            if a.node.json {
                print_json(&twin.raw)
            } else {
                out(&render::twin(&twin.value, now))
            }
        }
        ClientCommand::Watch(a) => watch::run(&a).await,
        ClientCommand::Alarms(a) => {
            let client = a.node.client()?;
            let comment = a.comment.as_deref();
            let done = if let Some(id) = &a.ack {
                Some(client.acknowledge(id, comment).await?)
            } else if let Some(id) = &a.shelve {
                let d = a.shelve_for.as_deref().unwrap_or_default();
                Some(client.shelve(id, d, comment).await?)
            } else if let Some(id) = &a.unshelve {
                Some(client.unshelve(id, comment).await?)
            } else {
                None
            };
            match done {
                Some(alarm) if a.node.json => print_json(&alarm.raw),
                Some(alarm) => out(&render::alarms(&[alarm.value], now, true)),
                None => {
                    let list = client.alarms(a.path.as_deref(), Some(&a.state)).await?;
                    if a.node.json {
                        print_json(&list.raw)
                    } else {
                        let mut text = render::alarms(&list.value.alarms, now, true);
                        if list.value.truncated {
                            text.push_str("(more alarms than listed: narrow the path glob)\n");
                        }
                        out(&text)
                    }
                }
            }
        }
        ClientCommand::History(a) => {
            let client = a.node.client()?;
            let from = match (&a.since, &a.from) {
                (Some(since), _) => Some(format!("-{}", since.trim_start_matches('-'))),
                (None, f) => f.clone(),
            };
            let h = client
                .history(
                    &a.path,
                    &a.property,
                    from.as_deref(),
                    a.to.as_deref(),
                    Some(a.points),
                )
                .await?;
            if a.node.json {
                print_json(&h.raw)
            } else {
                out(&render::history(&h.value))
            }
        }
    }
}

/// Writes to stdout and flushes.
pub(crate) fn out(text: &str) -> Result<(), ClientError> {
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())?;
    o.flush()?;
    Ok(())
}

fn print_json(v: &Json) -> Result<(), ClientError> {
    let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    out(&format!("{text}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_encode_what_a_path_or_query_cannot_hold() {
        let c = Client::new("127.0.0.1:7878/", "t").unwrap();
        assert_eq!(c.node(), "http://127.0.0.1:7878");
        assert_eq!(
            c.url("/api/twins/urn:acme:plant:baytown", &[]),
            "http://127.0.0.1:7878/api/twins/urn:acme:plant:baytown"
        );
        assert_eq!(
            c.url(
                "/api/alarms",
                &[("path", "acme/east/**"), ("state", "a b&c")]
            ),
            "http://127.0.0.1:7878/api/alarms?path=acme/east/**&state=a%20b%26c"
        );
        assert!(matches!(
            Client::new("https://x", "t"),
            Err(ClientError::BadNode(_))
        ));
    }
}
