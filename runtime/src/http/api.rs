//! The JSON endpoints under `/api/`. Each handler is annotated with its
//! OpenAPI description; [`super::openapi`] collects them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use twins::actor::{AlarmCommand, TwinView};
use twins::model::{Class, Tier};
use twins::store::{Event, EventRecord, HistoryPoint};
use twins::{Timestamp, TwinPath, Value};
use utoipa::{IntoParams, ToSchema};

use super::Api;
use super::auth::{Caller, Role};
use super::error::{ApiError, ErrorBody};
use super::glob::{Glob, Predicate};
use super::timeparse::parse_time;
use super::views::{Alarm, TreeNode, Twin, sort_alarms};

/// How many twin views a listing fetches at once.
const CONCURRENCY: usize = 64;

type ApiResult<T> = Result<Json<T>, ApiError>;

/// Resolves `ident` and checks the caller may see it with `role`.
async fn twin_for(
    api: &Api,
    caller: &Caller,
    ident: &str,
    role: Role,
    action: &str,
) -> Result<cluster::TwinRef, ApiError> {
    let twin = api.directory().get(ident.trim_end_matches('/'))?;
    api.authorize(caller, role, action, Some(&twin.path))?;
    Ok(twin)
}

/// One twin: properties with quality, roll-ups with contributors, alarms.
#[utoipa::path(get, path = "/api/twins/{twin}", tag = "twins",
    params(("twin" = String, Path, description = "Path, id or alias of the twin")),
    responses((status = 200, body = Twin), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_twin(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(ident): Path<String>,
) -> ApiResult<Twin> {
    let twin = twin_for(&api, &caller, &ident, Role::Viewer, "reading a twin").await?;
    let view = twin.view().await?;
    Ok(Json(Twin::of(api.class(&view.class), &view)))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct TreeQuery {
    /// Levels below the twin (default 1, at most 4).
    pub depth: Option<usize>,
}

/// The most nodes one tree answer holds; deeper levels are cut off.
const TREE_MAX_NODES: usize = 5_000;

/// A subtree to a given depth with KPIs (roll-ups) and alarm counts.
#[utoipa::path(get, path = "/api/tree/{twin}", tag = "twins",
    params(("twin" = String, Path, description = "Path, id or alias of the subtree's root"), TreeQuery),
    responses((status = 200, body = TreeNode), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_tree(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(ident): Path<String>,
    Query(q): Query<TreeQuery>,
) -> ApiResult<TreeNode> {
    let depth = q.depth.unwrap_or(1);
    if depth > 4 {
        return Err(ApiError::bad_request(format!(
            "depth {depth} is too deep: at most 4 levels per request (ask again from a deeper twin)"
        )));
    }
    let twin = twin_for(&api, &caller, &ident, Role::Viewer, "reading a tree").await?;
    let view = twin.view().await?;
    let mut root = TreeNode::of(api.class(&view.class), &view);
    // Breadth-first, one level at a time; a level's views are fetched
    // concurrently.
    let mut level: Vec<(Vec<usize>, Vec<String>)> = vec![(vec![], child_paths(&view))];
    let mut nodes = 1;
    for _ in 0..depth {
        let mut next = Vec::new();
        for (at, children) in level {
            if nodes + children.len() > TREE_MAX_NODES {
                break;
            }
            nodes += children.len();
            let views = fetch_views(&api, children).await;
            let mut kids = Vec::with_capacity(views.len());
            for (i, v) in views.into_iter().enumerate() {
                let v = v?;
                let mut child_at = at.clone();
                child_at.push(i);
                next.push((child_at, child_paths(&v)));
                kids.push(TreeNode::of(api.class(&v.class), &v));
            }
            node_at(&mut root, &at).children = Some(kids);
        }
        level = next;
    }
    Ok(Json(root))
}

fn child_paths(v: &TwinView) -> Vec<String> {
    v.children
        .iter()
        .map(|c| format!("{}/{c}", v.path))
        .collect()
}

fn node_at<'a>(root: &'a mut TreeNode, at: &[usize]) -> &'a mut TreeNode {
    let mut n = root;
    for &i in at {
        n = &mut n.children.as_mut().expect("built level by level")[i];
    }
    n
}

/// Views of `paths`, in order, fetched with bounded concurrency.
async fn fetch_views(api: &Api, paths: Vec<String>) -> Vec<Result<TwinView, ApiError>> {
    futures_util::stream::iter(paths)
        .map(|p| async move {
            let twin = api.directory().get(&p)?;
            Ok(twin.view().await?)
        })
        .buffered(CONCURRENCY)
        .collect()
        .await
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct FindQuery {
    /// Path glob (`acme/east/**`); default: the token's scope.
    pub path: Option<String>,
    /// A class, or a class it extends.
    pub class: Option<String>,
    /// `enterprise`, `region`, `plant`, `line` or `device`.
    pub tier: Option<String>,
    /// Property predicates (`flow > 100`, `quality(flow) = bad`), all must hold.
    #[serde(rename = "where", default)]
    #[param(rename = "where")]
    pub predicates: Vec<String>,
    /// `active`, `unacked`, `shelved` or `none`.
    pub alarm: Option<String>,
    /// At most this many twins (default 100, at most 10,000).
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FoundTwin {
    pub path: String,
    pub class: String,
    pub tier: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Found {
    pub twins: Vec<FoundTwin>,
    /// How many are listed.
    pub matched: usize,
    /// Whether more twins match than were listed.
    pub truncated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AlarmFilter {
    Active,
    Unacked,
    Shelved,
    None,
}

/// Twins matching a filter: class, tier, path glob, property predicates and
/// alarm state, in path order.
#[utoipa::path(get, path = "/api/find", tag = "twins", params(FindQuery),
    responses((status = 200, body = Found), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn find(
    State(api): State<Arc<Api>>,
    caller: Caller,
    query: RawQuery,
) -> ApiResult<Found> {
    let q: FindQuery = query.parse()?;
    let glob = api.glob_for(&caller, q.path.as_deref(), "finding twins")?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 10_000 {
        return Err(ApiError::bad_request("limit must be between 1 and 10000"));
    }
    let tier = match q.tier.as_deref() {
        None => None,
        Some(t) => Some(
            Tier::ALL
                .into_iter()
                .find(|x| x.name() == t)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "unknown tier `{t}`: expected enterprise, region, plant, line or device"
                    ))
                })?,
        ),
    };
    let model = api.model();
    if let Some(c) = &q.class
        && !model.classes.iter().any(|k| k.is_a(c))
    {
        let names: Vec<&str> = model.classes.iter().map(|k| k.name.as_str()).collect();
        return Err(ApiError::bad_request(format!(
            "unknown class `{c}`{}",
            twins::model::did_you_mean(c, names.iter().copied())
                .map(|s| format!(": did you mean `{s}`?"))
                .unwrap_or_default()
        )));
    }
    let predicates = q
        .predicates
        .iter()
        .map(|p| Predicate::parse(p).map_err(ApiError::bad_request))
        .collect::<Result<Vec<_>, _>>()?;
    let alarm = match q.alarm.as_deref() {
        None => None,
        Some("active") => Some(AlarmFilter::Active),
        Some("unacked") => Some(AlarmFilter::Unacked),
        Some("shelved") => Some(AlarmFilter::Shelved),
        Some("none") => Some(AlarmFilter::None),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown alarm state `{other}`: expected active, unacked, shelved or none"
            )));
        }
    };
    // The catalogue (paths, classes, tiers) is the model every node shares;
    // only predicates and alarm states need the twins themselves.
    let candidates: Vec<usize> = model
        .twins
        .iter()
        .enumerate()
        .filter(|(_, t)| {
            let class = &model.classes[t.class];
            glob.matches(t.path.as_str())
                && tier.is_none_or(|x| class.tier == x)
                && q.class.as_deref().is_none_or(|c| class.is_a(c))
        })
        .map(|(i, _)| i)
        .collect();
    let mut twins = Vec::new();
    let mut truncated = false;
    if predicates.is_empty() && alarm.is_none() {
        for i in candidates {
            let t = &model.twins[i];
            if twins.len() == limit {
                truncated = true;
                break;
            }
            let class = &model.classes[t.class];
            twins.push(FoundTwin {
                path: t.path.to_string(),
                class: class.name.clone(),
                tier: class.tier.name().to_string(),
            });
        }
    } else {
        let paths: Vec<String> = candidates
            .into_iter()
            .map(|i| model.twins[i].path.to_string())
            .collect();
        let mut views = futures_util::stream::iter(paths)
            .map(|p| {
                let api = &api;
                async move {
                    api.directory()
                        .get(&p)?
                        .view()
                        .await
                        .map_err(ApiError::from)
                }
            })
            .buffered(CONCURRENCY);
        while let Some(v) = views.next().await {
            let v = v?;
            let Some(class) = api.class(&v.class) else {
                continue;
            };
            let ok = predicates.iter().all(|p| p.eval(class, &v.props))
                && alarm.is_none_or(|f| alarm_matches(f, &v));
            if !ok {
                continue;
            }
            if twins.len() == limit {
                truncated = true;
                break;
            }
            twins.push(FoundTwin {
                path: v.path.to_string(),
                class: v.class.clone(),
                tier: v.tier.name().to_string(),
            });
        }
    }
    Ok(Json(Found {
        matched: twins.len(),
        twins,
        truncated,
    }))
}

fn alarm_matches(f: AlarmFilter, v: &TwinView) -> bool {
    match f {
        AlarmFilter::Active => v.alarms.iter().any(|a| a.state.is_active()),
        AlarmFilter::Unacked => v.alarms.iter().any(|a| a.state.is_unacked()),
        AlarmFilter::Shelved => v.alarms.iter().any(|a| a.mode.name() == "shelved"),
        AlarmFilter::None => !v.alarms.iter().any(|a| a.state.is_active()),
    }
}

/// The raw query string, parsed with repeated keys (`where=…&where=…`).
#[derive(Debug)]
pub struct RawQuery(Option<String>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RawQuery {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(RawQuery(parts.uri.query().map(str::to_string)))
    }
}

impl RawQuery {
    fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        // Repeated keys become a sequence: `serde_urlencoded` cannot, so
        // gather them into a JSON object first.
        let mut map = serde_json::Map::new();
        let pairs = form_urlencoded::parse(self.0.as_deref().unwrap_or("").as_bytes());
        for (k, v) in pairs.into_owned() {
            match map.get_mut(&k) {
                Some(serde_json::Value::Array(a)) => a.push(v.into()),
                Some(other) => {
                    let first = other.take();
                    *other = serde_json::Value::Array(vec![first, v.into()]);
                }
                None => {
                    map.insert(k, v.into());
                }
            }
        }
        // Scalars that must be numbers, and `where` that must be a list.
        for (k, v) in map.iter_mut() {
            if k == "where" && v.is_string() {
                *v = serde_json::Value::Array(vec![v.take()]);
            } else if let Some(n) = v.as_str().and_then(|s| s.parse::<u64>().ok())
                && k == "limit"
            {
                *v = n.into();
            }
        }
        serde_json::from_value(serde_json::Value::Object(map))
            .map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct HistoryQuery {
    /// The property.
    pub prop: String,
    /// Start: RFC 3339, `now` or relative (`-1h`); default one hour ago.
    pub from: Option<String>,
    /// End (exclusive); default now.
    pub to: Option<String>,
    /// At most this many buckets (default 500, at most 5,000).
    pub points: Option<usize>,
}

/// One bucket of a history answer.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Bucket {
    /// Start of the bucket (RFC 3339).
    pub ts: String,
    pub min: f64,
    pub max: f64,
    pub avg: f64,
    /// Values in the bucket.
    pub n: u64,
    /// Of which were not of good quality.
    #[serde(default)]
    pub bad: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct History {
    pub twin: String,
    pub prop: String,
    pub unit: Option<String>,
    pub from: String,
    pub to: String,
    /// Width of a bucket; 0 when every point is its own bucket.
    pub bucket_ms: i64,
    /// Stored points read for the answer.
    pub raw_points: u64,
    /// Whether the range held more points than one answer reads, so each
    /// bucket summarizes the first points of its interval only.
    #[serde(default)]
    pub sampled: bool,
    pub points: Vec<Bucket>,
}

/// At most this many stored points are read for one answer.
const HISTORY_READ_MAX: usize = 100_000;

/// History of a property over a time range, downsampled on the server to at
/// most `points` buckets with min, max and average.
#[utoipa::path(get, path = "/api/history/{twin}", tag = "history",
    params(("twin" = String, Path, description = "Path, id or alias"), HistoryQuery),
    responses((status = 200, body = History), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_history(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(ident): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> ApiResult<History> {
    let twin = twin_for(&api, &caller, &ident, Role::Viewer, "reading history").await?;
    let class = api.class_of_path(&twin.path);
    let unit = match class {
        Some(c) => match c.prop_index(&q.prop) {
            Some(i) => c.props[i as usize].unit.as_ref().map(|u| u.to_string()),
            None => {
                let hint =
                    twins::model::did_you_mean(&q.prop, c.props.iter().map(|p| p.name.as_str()))
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                return Err(ApiError::not_found(format!(
                    "twin `{}` (class {}) has no property `{}`{hint}",
                    twin.path, c.name, q.prop
                )));
            }
        },
        None => None,
    };
    let now = api.now();
    let from = match &q.from {
        Some(t) => parse_time(t, now).map_err(|e| ApiError::bad_request(format!("from: {e}")))?,
        None => now.saturating_sub(Duration::from_secs(3600)),
    };
    let to = match &q.to {
        Some(t) => parse_time(t, now).map_err(|e| ApiError::bad_request(format!("to: {e}")))?,
        None => now,
    };
    if to <= from {
        return Err(ApiError::bad_request(format!(
            "the range is empty: `to` ({to}) must be after `from` ({from})"
        )));
    }
    let points = q.points.unwrap_or(500);
    if points == 0 || points > 5_000 {
        return Err(ApiError::bad_request("points must be between 1 and 5000"));
    }
    let raw = twin
        .history(&q.prop, from, to, HISTORY_READ_MAX + 1)
        .await?;
    let (buckets, bucket_us, raw_points, sampled) = if raw.len() <= points {
        let n = raw.len() as u64;
        (raw.iter().filter_map(Bucket::single).collect(), 0, n, false)
    } else if raw.len() <= HISTORY_READ_MAX {
        let n = raw.len() as u64;
        let (b, w) = downsample(&raw, from, to, points);
        (b, w, n, false)
    } else {
        // Too many to read at once: read the start of each bucket.
        let width = ((to.0 - from.0) / points as i64).max(1);
        let per = (HISTORY_READ_MAX / points).max(1);
        let mut all = Vec::new();
        let mut n = 0u64;
        for k in 0..points as i64 {
            let (a, b) = (
                Timestamp(from.0 + k * width),
                Timestamp((from.0 + (k + 1) * width).min(to.0)),
            );
            let part = twin.history(&q.prop, a, b, per).await?;
            n += part.len() as u64;
            if let Some(bucket) = summarize(a, &part) {
                all.push(bucket);
            }
        }
        (all, width, n, true)
    };
    Ok(Json(History {
        twin: twin.path.to_string(),
        prop: q.prop,
        unit,
        from: from.to_string(),
        to: to.to_string(),
        bucket_ms: bucket_us / 1000,
        raw_points,
        sampled,
        points: buckets,
    }))
}

impl Bucket {
    fn single(p: &HistoryPoint) -> Option<Bucket> {
        let v = p.value.as_f64()?;
        Some(Bucket {
            ts: p.ts.to_string(),
            min: v,
            max: v,
            avg: v,
            n: 1,
            bad: u64::from(!p.quality.is_good()),
        })
    }
}

/// Splits `[from, to)` into `points` equal buckets and summarizes each.
/// Returns the buckets that hold values and the bucket width in µs.
pub fn downsample(
    raw: &[HistoryPoint],
    from: Timestamp,
    to: Timestamp,
    points: usize,
) -> (Vec<Bucket>, i64) {
    let width = ((to.0 - from.0) as f64 / points as f64).ceil().max(1.0) as i64;
    let mut out = Vec::new();
    let mut start = 0;
    while start < raw.len() {
        let k = (raw[start].ts.0 - from.0) / width;
        let end = start
            + raw[start..]
                .iter()
                .take_while(|p| (p.ts.0 - from.0) / width == k)
                .count();
        if let Some(b) = summarize(Timestamp(from.0 + k * width), &raw[start..end]) {
            out.push(b);
        }
        start = end;
    }
    (out, width)
}

fn summarize(at: Timestamp, pts: &[HistoryPoint]) -> Option<Bucket> {
    let mut n = 0u64;
    let (mut min, mut max, mut sum) = (f64::INFINITY, f64::NEG_INFINITY, 0.0);
    let mut bad = 0;
    for p in pts {
        let Some(v) = p.value.as_f64() else { continue };
        n += 1;
        min = min.min(v);
        max = max.max(v);
        sum += v;
        bad += u64::from(!p.quality.is_good());
    }
    (n > 0).then(|| Bucket {
        ts: at.to_string(),
        min,
        max,
        avg: sum / n as f64,
        n,
        bad,
    })
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct EventsQuery {
    /// Entries after this sequence number (default 0).
    pub after: Option<u64>,
    /// At most this many (default 100, at most 1,000).
    pub limit: Option<usize>,
}

/// One journal entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct JournalEntry {
    pub seq: u64,
    pub at: String,
    /// `alarm`, `mode`, `operator_action`, `restarted` or `note`.
    pub kind: &'static str,
    /// What happened, in words.
    pub text: String,
    /// The entry's fields.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

impl JournalEntry {
    fn of(e: &EventRecord) -> JournalEntry {
        let (kind, text) = match &e.event {
            Event::Alarm { alarm, transition } => (
                "alarm",
                format!(
                    "alarm {alarm}: {}/{} → {}/{} ({})",
                    transition.from_state,
                    transition.from_mode,
                    transition.to_state,
                    transition.to_mode,
                    transition.cause
                ),
            ),
            Event::Mode { from, to, reason } => ("mode", format!("mode {from} → {to} ({reason})")),
            Event::OperatorAction { who, action } => {
                ("operator_action", format!("{who}: {action}"))
            }
            Event::Restarted { reason } => ("restarted", format!("restarted: {reason}")),
            Event::Note(n) => ("note", n.clone()),
        };
        JournalEntry {
            seq: e.seq,
            at: e.at.to_string(),
            kind,
            text,
            detail: serde_json::to_value(&e.event).unwrap_or(serde_json::Value::Null),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Journal {
    pub twin: String,
    pub events: Vec<JournalEntry>,
}

/// The twin's event journal, oldest first.
#[utoipa::path(get, path = "/api/events/{twin}", tag = "history",
    params(("twin" = String, Path, description = "Path, id or alias"), EventsQuery),
    responses((status = 200, body = Journal), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_events(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Path(ident): Path<String>,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Journal> {
    let twin = twin_for(&api, &caller, &ident, Role::Viewer, "reading the journal").await?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    let events = twin.events(q.after.unwrap_or(0), limit).await?;
    Ok(Json(Journal {
        twin: twin.path.to_string(),
        events: events.iter().map(JournalEntry::of).collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AlarmsQuery {
    /// Path glob; default: the token's scope.
    pub path: Option<String>,
    /// `active` (default), `unacked`, `shelved` or `all`.
    pub state: Option<String>,
    /// Only this priority: `urgent`, `high`, `medium` or `low`.
    pub priority: Option<String>,
    /// At most this many (default 500, at most 10,000).
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AlarmList {
    pub alarms: Vec<Alarm>,
    #[serde(default)]
    pub truncated: bool,
}

/// Alarms in a subtree, most urgent first, then newest.
#[utoipa::path(get, path = "/api/alarms", tag = "alarms", params(AlarmsQuery),
    responses((status = 200, body = AlarmList), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_alarms(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Query(q): Query<AlarmsQuery>,
) -> ApiResult<AlarmList> {
    let glob = api.glob_for(&caller, q.path.as_deref(), "listing alarms")?;
    let state = q.state.as_deref().unwrap_or("active");
    let keep: fn(&twins::actor::AlarmView) -> bool = match state {
        "active" => |a| a.state.is_active(),
        "unacked" => |a| a.state.is_unacked(),
        "shelved" => |a| a.mode.name() == "shelved",
        "all" => |_| true,
        other => {
            return Err(ApiError::bad_request(format!(
                "unknown state `{other}`: expected active, unacked, shelved or all"
            )));
        }
    };
    // Active and unacked alarms are counted up the tree: skip subtrees
    // without any. Shelved ones are not, so those walk everything.
    let prune = matches!(state, "active" | "unacked");
    let priority = match q.priority.as_deref() {
        None => None,
        Some(p) => Some(
            twins::alarm::Priority::ALL
                .into_iter()
                .find(|x| x.name() == p)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "unknown priority `{p}`: expected urgent, high, medium or low"
                    ))
                })?,
        ),
    };
    let limit = q.limit.unwrap_or(500);
    if limit == 0 || limit > 10_000 {
        return Err(ApiError::bad_request("limit must be between 1 and 10000"));
    }
    let start = glob
        .literal_prefix()
        .ok_or_else(|| ApiError::bad_request("the path glob must start with the company's name"))?;
    let mut alarms = Vec::new();
    let mut queue: VecDeque<String> = VecDeque::from([start.to_string()]);
    // Walk down level by level; a subtree without a matching alarm count is
    // not visited when the counts can tell.
    while !queue.is_empty() {
        let level: Vec<String> = queue.drain(..).collect();
        for v in fetch_views(&api, level).await {
            let v = match v {
                Ok(v) => v,
                // A twin restarting is skipped, not an error for the list.
                Err(e) if e.code == super::error::Code::Unavailable => continue,
                Err(e) => return Err(e),
            };
            let counts = &v.subtree_alarms;
            let any = if state == "unacked" {
                counts.unacked.iter().any(|n| *n > 0)
            } else {
                counts.active.iter().any(|n| *n > 0)
            };
            if prune && !any {
                continue;
            }
            if glob.matches(v.path.as_str()) {
                for a in v.alarms.iter().filter(|a| keep(a)) {
                    if priority.is_none_or(|p| a.priority == p) {
                        alarms.push(Alarm::of(v.path.as_str(), a));
                    }
                }
            }
            queue.extend(child_paths(&v));
        }
    }
    sort_alarms(&mut alarms);
    let truncated = alarms.len() > limit;
    alarms.truncate(limit);
    Ok(Json(AlarmList { alarms, truncated }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlarmRequest {
    /// `TWIN:ALARM`.
    pub alarm: String,
    /// Why, for the journal and audit log.
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShelveRequest {
    /// `TWIN:ALARM`.
    pub alarm: String,
    /// How long: `30m`, `2h` (at most 24 h).
    #[serde(rename = "for")]
    pub duration: String,
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutOfServiceRequest {
    pub alarm: String,
    pub out_of_service: bool,
    #[serde(default)]
    pub comment: Option<String>,
}

/// The longest shelve.
const MAX_SHELVE: Duration = Duration::from_secs(24 * 3600);

/// Acknowledges an alarm (operator).
#[utoipa::path(post, path = "/api/alarms/acknowledge", tag = "alarms", request_body = AlarmRequest,
    responses((status = 200, body = Alarm), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn acknowledge(
    State(api): State<Arc<Api>>,
    caller: Caller,
    body: Result<Json<AlarmRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Alarm> {
    let Json(r) = body?;
    alarm_command(
        &api,
        &caller,
        &r.alarm,
        AlarmCommand::Acknowledge,
        "acknowledge",
        Role::Operator,
        r.comment,
    )
    .await
}

/// Shelves an alarm for a while (operator).
#[utoipa::path(post, path = "/api/alarms/shelve", tag = "alarms", request_body = ShelveRequest,
    responses((status = 200, body = Alarm), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn shelve(
    State(api): State<Arc<Api>>,
    caller: Caller,
    body: Result<Json<ShelveRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Alarm> {
    let Json(r) = body?;
    let d = twins::model::parse_duration(&r.duration).ok_or_else(|| {
        ApiError::bad_request(format!(
            "`for`: `{}` is not a duration (`30m`, `2h`)",
            r.duration
        ))
    })?;
    if d.is_zero() || d > MAX_SHELVE {
        return Err(ApiError::bad_request(format!(
            "`for`: shelve for more than nothing and at most 24h, not {}",
            r.duration
        )));
    }
    let until = api.now().saturating_add(d);
    let action = format!("shelve for {}", r.duration);
    alarm_command(
        &api,
        &caller,
        &r.alarm,
        AlarmCommand::Shelve { until },
        &action,
        Role::Operator,
        r.comment,
    )
    .await
}

/// Unshelves an alarm before its shelve runs out (operator).
#[utoipa::path(post, path = "/api/alarms/unshelve", tag = "alarms", request_body = AlarmRequest,
    responses((status = 200, body = Alarm), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn unshelve(
    State(api): State<Arc<Api>>,
    caller: Caller,
    body: Result<Json<AlarmRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Alarm> {
    let Json(r) = body?;
    alarm_command(
        &api,
        &caller,
        &r.alarm,
        AlarmCommand::Unshelve,
        "unshelve",
        Role::Operator,
        r.comment,
    )
    .await
}

/// Takes an alarm out of service, or puts it back (engineer).
#[utoipa::path(post, path = "/api/alarms/out-of-service", tag = "alarms", request_body = OutOfServiceRequest,
    responses((status = 200, body = Alarm), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn out_of_service(
    State(api): State<Arc<Api>>,
    caller: Caller,
    body: Result<Json<OutOfServiceRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Alarm> {
    let Json(r) = body?;
    let action = if r.out_of_service {
        "take out of service"
    } else {
        "return to service"
    };
    alarm_command(
        &api,
        &caller,
        &r.alarm,
        AlarmCommand::OutOfService(r.out_of_service),
        action,
        Role::Engineer,
        r.comment,
    )
    .await
}

/// Splits `TWIN:ALARM`.
fn split_alarm(id: &str) -> Result<(&str, &str), ApiError> {
    id.rsplit_once(':')
        .filter(|(t, a)| !t.is_empty() && !a.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "`{id}` is not an alarm id: write TWIN:ALARM, e.g. `acme/east/baytown/crude-1/p-101:high_vibration`"
            ))
        })
}

async fn alarm_command(
    api: &Api,
    caller: &Caller,
    id: &str,
    command: AlarmCommand,
    action: &str,
    role: Role,
    comment: Option<String>,
) -> ApiResult<Alarm> {
    let (twin_ident, name) = split_alarm(id)?;
    let twin = api.directory().get(twin_ident)?;
    let what = format!("{action} alarm");
    api.authorize(caller, role, &what, Some(&twin.path))?;
    let target = format!("{}:{name}", twin.path);
    let action = match &comment {
        Some(c) => format!("{action} ({c})"),
        None => action.to_string(),
    };
    let who = caller.token.id.clone();
    let result = twin.alarm(name, command, &who).await;
    api.audit(
        Some(caller),
        crate::audit::Category::Alarm,
        &action,
        Some(&target),
        result.as_ref().map(|_| ()).map_err(|e| e.to_string()),
    );
    result?;
    let view = twin.view().await?;
    let a = view.alarms.iter().find(|a| a.name == name).ok_or_else(|| {
        ApiError::not_found(format!("twin `{}` has no alarm `{name}`", twin.path))
    })?;
    Ok(Json(Alarm::of(twin.path.as_str(), a)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetpointRequest {
    pub twin: String,
    pub prop: String,
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SetpointDone {
    pub twin: String,
    pub prop: String,
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
}

/// Writes a setpoint through the twin's edge adapter (operator).
#[utoipa::path(post, path = "/api/setpoint", tag = "twins", request_body = SetpointRequest,
    responses((status = 200, body = SetpointDone), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn setpoint(
    State(api): State<Arc<Api>>,
    caller: Caller,
    body: Result<Json<SetpointRequest>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<SetpointDone> {
    let Json(r) = body?;
    let twin = api.directory().get(&r.twin)?;
    api.authorize(
        &caller,
        Role::Operator,
        "writing a setpoint",
        Some(&twin.path),
    )?;
    let class = api
        .class_of_path(&twin.path)
        .ok_or_else(|| ApiError::not_found(format!("no class for twin `{}`", twin.path)))?;
    let value = json_to_value(class, &r.prop, &r.value)?;
    let result = api
        .node
        .edge
        .write(twin.path.as_str(), &r.prop, value)
        .await;
    let target = format!("{}.{}", twin.path, r.prop);
    api.audit(
        Some(&caller),
        crate::audit::Category::Setpoint,
        &format!("write {}", r.value),
        Some(&target),
        result.as_ref().map(|_| ()).map_err(|e| e.to_string()),
    );
    result.map_err(|e| {
        use crate::edge::EdgeWriteError as W;
        let code = match &e {
            W::UnknownTwin(_) | W::UnknownProp { .. } => super::error::Code::NotFound,
            W::NotBound { .. } | W::NoWriter(_) => super::error::Code::Conflict,
            W::NotRunning(_) | W::Write { .. } => super::error::Code::Unavailable,
        };
        ApiError::new(code, e.to_string())
    })?;
    Ok(Json(SetpointDone {
        twin: twin.path.to_string(),
        prop: r.prop,
        value: r.value,
    }))
}

fn json_to_value(class: &Class, prop: &str, v: &serde_json::Value) -> Result<Value, ApiError> {
    let i = class.prop_index(prop).ok_or_else(|| {
        ApiError::not_found(format!("class {} has no property `{prop}`", class.name))
    })?;
    let def = &class.props[i as usize];
    let bad = || {
        ApiError::bad_request(format!(
            "`{prop}` is of type {}, and {v} is not one",
            def.ty.name()
        ))
    };
    use twins::ValueType as T;
    Ok(match def.ty {
        T::F64 => Value::F64(v.as_f64().ok_or_else(bad)?),
        T::I64 => Value::I64(v.as_i64().ok_or_else(bad)?),
        T::Bool => Value::Bool(v.as_bool().ok_or_else(bad)?),
        T::String => Value::String(v.as_str().ok_or_else(bad)?.into()),
        T::Enum => match v {
            serde_json::Value::String(s) => {
                Value::Enum(def.states.iter().position(|x| x == s).ok_or_else(bad)? as u16)
            }
            _ => Value::Enum(u16::try_from(v.as_u64().ok_or_else(bad)?).map_err(|_| bad())?),
        },
    })
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AuditQuery {
    /// Records after this sequence number (default 0).
    pub after: Option<u64>,
    /// At most this many (default 100, at most 1,000).
    pub limit: Option<usize>,
}

/// One audit record.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditItem {
    pub seq: u64,
    pub time: String,
    /// The token's id, never its secret.
    pub token: Option<String>,
    /// The client's address.
    pub source: Option<String>,
    /// `auth`, `access`, `alarm`, `model`, `node` or `setpoint`.
    pub category: String,
    pub action: String,
    pub target: Option<String>,
    /// `ok`, or `denied: …` / `failed: …`.
    pub result: String,
    /// Hex of the record's hash; each record's `prev` is the one before.
    pub hash: String,
    pub prev: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub records: Vec<AuditItem>,
}

/// The audit log, oldest first (admin, whole company).
#[utoipa::path(get, path = "/api/audit", tag = "auth", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn audit_log(
    State(api): State<Arc<Api>>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> ApiResult<AuditPage> {
    let root = api.model().twins[0].path.clone();
    api.authorize(&caller, Role::Admin, "reading the audit log", Some(&root))?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    let store = api
        .node
        .ctx
        .store
        .clone()
        .ok_or_else(|| ApiError::not_found("this node keeps no store"))?;
    let after = q.after.unwrap_or(0);
    let records =
        tokio::task::spawn_blocking(move || crate::audit::list(store.as_ref(), after, limit))
            .await
            .map_err(|e| {
                ApiError::new(
                    super::error::Code::Internal,
                    format!("the audit read failed: {e}"),
                )
            })?
            .map_err(|e| {
                ApiError::new(
                    super::error::Code::Internal,
                    format!("cannot read the audit log: {e}"),
                )
            })?;
    let hex = |h: &[u8; 32]| twins::store::hex(h);
    Ok(Json(AuditPage {
        records: records
            .iter()
            .map(|r| AuditItem {
                seq: r.seq,
                time: r.time.to_string(),
                token: r.token.clone(),
                source: r.source.clone(),
                category: r.category.to_string(),
                action: r.action.clone(),
                target: r.target.clone(),
                result: r.result.to_string(),
                hash: hex(&r.hash),
                prev: hex(&r.prev),
            })
            .collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    pub token: String,
    pub role: Role,
    /// The subtree the token sees.
    pub scope: String,
}

/// What the presented token may do.
#[utoipa::path(get, path = "/api/whoami", tag = "auth",
    responses((status = 200, body = WhoAmI), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn whoami(caller: Caller) -> Json<WhoAmI> {
    Json(WhoAmI {
        token: caller.token.id.clone(),
        role: caller.token.role,
        scope: caller.token.scope.to_string(),
    })
}

impl Api {
    /// The glob of a listing: the one asked for, which must lie within the
    /// caller's scope, or the whole scope.
    pub(crate) fn glob_for(
        &self,
        caller: &Caller,
        path: Option<&str>,
        action: &str,
    ) -> Result<Glob, ApiError> {
        let glob = match path {
            Some(p) => Glob::parse(p).map_err(ApiError::bad_request)?,
            None => caller.scope_glob(),
        };
        self.authorize(caller, Role::Viewer, action, None)?;
        if let Err(d) = caller.require_glob(&glob) {
            return Err(self.deny(caller, action, Some(glob.as_str()), d));
        }
        Ok(glob)
    }

    pub(crate) fn class_of_path(&self, path: &TwinPath) -> Option<&Class> {
        let model = self.model();
        let i = self.index_of(path)?;
        Some(&model.classes[model.twins[i].class])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a client puts in a query string, parsing answers with
        /// a value or an error: it never panics.
        #[test]
        fn any_query_string_parses_or_is_refused(q in "\\PC{0,80}") {
            let _ = RawQuery(Some(q.clone())).parse::<FindQuery>();
            for w in q.split('&') {
                let _ = Predicate::parse(w);
                let _ = Glob::parse(w);
                let _ = parse_time(w, Timestamp(0));
            }
        }
    }

    #[test]
    fn repeated_where_parameters_are_a_list_and_limit_a_number() {
        let q: FindQuery = RawQuery(Some(
            "where=flow%20%3E%201&where=quality(flow)%3Dbad&limit=5&path=acme%2F**".into(),
        ))
        .parse()
        .unwrap();
        assert_eq!(q.predicates, vec!["flow > 1", "quality(flow)=bad"]);
        assert_eq!(q.limit, Some(5));
        assert_eq!(q.path.as_deref(), Some("acme/**"));
        let e = RawQuery(Some("limit=lots".into()))
            .parse::<FindQuery>()
            .unwrap_err();
        assert_eq!(e.code, super::super::error::Code::BadRequest);
    }

    #[test]
    fn downsampling_puts_every_point_in_its_bucket() {
        let pts: Vec<HistoryPoint> = (0..100)
            .map(|k| HistoryPoint {
                ts: Timestamp(k * 10),
                seq: 1,
                value: Value::F64(k as f64),
                quality: if k == 3 {
                    twins::Quality::Bad(twins::Reason::Stale)
                } else {
                    twins::Quality::Good
                },
            })
            .collect();
        let (b, width) = downsample(&pts, Timestamp(0), Timestamp(1000), 4);
        assert_eq!(width, 250);
        assert_eq!(b.len(), 4);
        assert_eq!((b[0].min, b[0].max, b[0].n, b[0].bad), (0.0, 24.0, 25, 1));
        assert_eq!((b[3].min, b[3].max, b[3].avg), (75.0, 99.0, 87.0));
    }
}
