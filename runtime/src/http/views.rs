//! The API's JSON shapes (see `docs/api.md`) and their conversions from the
//! twins' own types. The CLI client decodes the same types.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use twins::actor::{AlarmView, PropView, TwinView};
use twins::alarm::{AlarmMode, AlarmState, Priority};
use twins::model::{Class, PropKind};
use twins::rollup::{AlarmCounts, Counts};
use twins::{Quality, Timestamp, Value};
use utoipa::ToSchema;

/// A property value as JSON: numbers, booleans, strings, an enum state's
/// name, or `null`.
pub fn value_json(class: Option<&Class>, prop: usize, v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::F64(x) => serde_json::Number::from_f64(*x).map_or(Json::Null, Json::Number),
        Value::I64(x) => Json::from(*x),
        Value::Bool(b) => Json::Bool(*b),
        Value::String(s) => Json::String(s.to_string()),
        Value::Enum(k) => class
            .and_then(|c| c.props.get(prop))
            .and_then(|p| p.states.get(*k as usize))
            .map_or_else(|| Json::from(*k), |s| Json::String(s.clone())),
    }
}

/// `good`, `uncertain` or `bad`.
pub fn quality_name(q: Quality) -> &'static str {
    match q {
        Quality::Good => "good",
        Quality::Uncertain(_) => "uncertain",
        Quality::Bad(_) => "bad",
    }
}

/// The reason of a quality that is not good.
pub fn reason_name(q: Quality) -> Option<&'static str> {
    match q {
        Quality::Good => None,
        Quality::Uncertain(r) | Quality::Bad(r) => Some(r.name()),
    }
}

pub fn kind_name(kind: &PropKind) -> &'static str {
    match kind {
        PropKind::Sourced => "sourced",
        PropKind::Param { .. } => "param",
        PropKind::Derived(_) => "derived",
        PropKind::Rollup(_) => "rollup",
    }
}

/// How many children contributed to a roll-up, by quality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Contributors {
    pub total: u32,
    pub good: u32,
    pub uncertain: u32,
    pub bad: u32,
}

impl From<Counts> for Contributors {
    fn from(c: Counts) -> Self {
        Self {
            total: c.total,
            good: c.good,
            uncertain: c.uncertain,
            bad: c.bad,
        }
    }
}

/// One property of a twin.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Property {
    pub name: String,
    /// `sourced`, `param`, `derived` or `rollup`.
    pub kind: String,
    #[schema(value_type = Object)]
    pub value: Json,
    pub unit: Option<String>,
    /// `good`, `uncertain` or `bad`.
    pub quality: String,
    /// Why the quality is not good (`comm_failure`, `stale`, …).
    pub reason: Option<String>,
    /// Source timestamp (RFC 3339).
    pub ts: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contributors: Option<Contributors>,
}

impl Property {
    pub fn of(class: Option<&Class>, index: usize, p: &PropView) -> Property {
        Property {
            name: p.name.clone(),
            kind: class
                .and_then(|c| c.props.get(index))
                .map_or("sourced", |d| kind_name(&d.kind))
                .to_string(),
            value: value_json(class, index, &p.value),
            unit: p.unit.clone(),
            quality: quality_name(p.quality).to_string(),
            reason: reason_name(p.quality).map(str::to_string),
            ts: p.ts.to_string(),
            contributors: p.counts.map(Contributors::from),
        }
    }
}

/// Counts by priority.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
pub struct ByPriority {
    pub urgent: u32,
    pub high: u32,
    pub medium: u32,
    pub low: u32,
}

impl ByPriority {
    pub fn total(&self) -> u32 {
        self.urgent + self.high + self.medium + self.low
    }

    fn of(counts: &[u32; 4]) -> Self {
        Self {
            urgent: counts[Priority::Urgent.index()],
            high: counts[Priority::High.index()],
            medium: counts[Priority::Medium.index()],
            low: counts[Priority::Low.index()],
        }
    }
}

/// Active and unacknowledged alarms of a twin and its whole subtree.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
pub struct AlarmSummary {
    pub active: ByPriority,
    pub unacked: ByPriority,
}

impl From<&AlarmCounts> for AlarmSummary {
    fn from(c: &AlarmCounts) -> Self {
        Self {
            active: ByPriority::of(&c.active),
            unacked: ByPriority::of(&c.unacked),
        }
    }
}

/// One alarm.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Alarm {
    /// `TWIN:ALARM`.
    pub id: String,
    pub twin: String,
    pub name: String,
    /// `urgent`, `high`, `medium` or `low`.
    pub priority: String,
    /// `normal`, `active_unacked`, `active_acked` or `returned_unacked`.
    pub state: String,
    /// `enabled`, `shelved`, `suppressed` or `out_of_service`.
    pub mode: String,
    pub shelved_until: Option<String>,
    /// When it entered its state (RFC 3339).
    pub since: String,
    #[serde(default)]
    pub guidance: String,
}

impl Alarm {
    pub fn of(twin: &str, a: &AlarmView) -> Alarm {
        Alarm::new(
            twin,
            &a.name,
            a.priority,
            a.state,
            a.mode,
            a.since,
            &a.guidance,
        )
    }

    pub fn new(
        twin: &str,
        name: &str,
        priority: Priority,
        state: AlarmState,
        mode: AlarmMode,
        since: Timestamp,
        guidance: &str,
    ) -> Alarm {
        Alarm {
            id: format!("{twin}:{name}"),
            twin: twin.to_string(),
            name: name.to_string(),
            priority: priority.name().to_string(),
            state: state.name().to_string(),
            mode: mode.name().to_string(),
            shelved_until: match mode {
                AlarmMode::Shelved { until } => Some(until.to_string()),
                _ => None,
            },
            since: since.to_string(),
            guidance: guidance.to_string(),
        }
    }
}

/// Most urgent first, then newest (RFC 3339 times in UTC sort as text).
pub fn sort_alarms(alarms: &mut [Alarm]) {
    let rank = |a: &Alarm| Priority::ALL.iter().position(|p| p.name() == a.priority);
    alarms.sort_by(|a, b| {
        rank(b)
            .cmp(&rank(a))
            .then_with(|| b.since.cmp(&a.since))
            .then_with(|| a.id.cmp(&b.id))
    });
}

/// One twin, as `GET /api/twins/{twin}` answers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Twin {
    pub path: String,
    pub id: String,
    pub class: String,
    /// `enterprise`, `region`, `plant`, `line` or `device`.
    pub tier: String,
    /// The twin's state sequence number.
    pub seq: u64,
    pub properties: Vec<Property>,
    pub alarms: Vec<Alarm>,
    #[serde(default)]
    pub alarm_summary: AlarmSummary,
    /// Paths of the twin's children.
    pub children: Vec<String>,
}

impl Twin {
    pub fn of(class: Option<&Class>, v: &TwinView) -> Twin {
        let path = v.path.as_str();
        Twin {
            path: path.to_string(),
            id: v.id.to_string(),
            class: v.class.clone(),
            tier: v.tier.name().to_string(),
            seq: v.seq,
            properties: v
                .props
                .iter()
                .enumerate()
                .map(|(i, p)| Property::of(class, i, p))
                .collect(),
            alarms: v.alarms.iter().map(|a| Alarm::of(path, a)).collect(),
            alarm_summary: AlarmSummary::from(&v.subtree_alarms),
            children: v.children.iter().map(|c| format!("{path}/{c}")).collect(),
        }
    }
}

/// A KPI of a tree node: one roll-up property.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Kpi {
    pub name: String,
    #[schema(value_type = Object)]
    pub value: Json,
    pub unit: Option<String>,
    pub quality: String,
    pub reason: Option<String>,
}

/// A node of `GET /api/tree/{twin}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TreeNode {
    pub path: String,
    pub name: String,
    pub class: String,
    pub tier: String,
    pub kpis: Vec<Kpi>,
    pub alarm_summary: AlarmSummary,
    pub child_count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub children: Option<Vec<TreeNode>>,
}

impl TreeNode {
    pub fn of(class: Option<&Class>, v: &TwinView) -> TreeNode {
        let kpis = v
            .props
            .iter()
            .enumerate()
            .filter(|(i, p)| {
                p.counts.is_some()
                    || class
                        .and_then(|c| c.props.get(*i))
                        .is_some_and(|d| matches!(d.kind, PropKind::Rollup(_)))
            })
            .map(|(i, p)| Kpi {
                name: p.name.clone(),
                value: value_json(class, i, &p.value),
                unit: p.unit.clone(),
                quality: quality_name(p.quality).to_string(),
                reason: reason_name(p.quality).map(str::to_string),
            })
            .collect();
        TreeNode {
            path: v.path.to_string(),
            name: v.path.name().to_string(),
            class: v.class.clone(),
            tier: v.tier.name().to_string(),
            kpis,
            alarm_summary: AlarmSummary::from(&v.subtree_alarms),
            child_count: v.children.len(),
            children: None,
        }
    }
}
