//! The validated, compiled model: what `model::load_dir` returns and what
//! the runtime instantiates. Nothing here refers to text any more: names are
//! resolved to indices and expressions are compiled.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::diag::SourceSpan;
use crate::alarm::Priority;
use crate::expr::{CompiledExpr, Condition};
use crate::id::TwinPath;
use crate::units::Unit;
use crate::value::{Value, ValueType};

/// Organisation tier of a class or twin, top to bottom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Enterprise,
    Region,
    Plant,
    Line,
    Device,
}

impl Tier {
    pub const ALL: [Tier; 5] = [
        Tier::Enterprise,
        Tier::Region,
        Tier::Plant,
        Tier::Line,
        Tier::Device,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Tier::Enterprise => "enterprise",
            Tier::Region => "region",
            Tier::Plant => "plant",
            Tier::Line => "line",
            Tier::Device => "device",
        }
    }

    /// The tier directly below, `None` for devices.
    pub fn below(self) -> Option<Tier> {
        match self {
            Tier::Enterprise => Some(Tier::Region),
            Tier::Region => Some(Tier::Plant),
            Tier::Plant => Some(Tier::Line),
            Tier::Line => Some(Tier::Device),
            Tier::Device => None,
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// One value per tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierMap<T>(pub [T; 5]);

impl<T: Copy> TierMap<T> {
    pub fn splat(v: T) -> Self {
        Self([v; 5])
    }
    pub fn get(&self, tier: Tier) -> T {
        self.0[tier.index()]
    }
    pub fn set(&mut self, tier: Tier, v: T) {
        self.0[tier.index()] = v;
    }
}

/// A whole validated model: classes, the instantiated topology, sources and settings.
#[derive(Debug, Clone)]
pub struct Model {
    /// Every class, with inheritance already flattened.
    pub classes: Vec<Arc<Class>>,
    /// Every twin, in pre-order: `twins[0]` is the enterprise root and each
    /// parent comes before its children.
    pub twins: Vec<TwinDef>,
    pub sources: Vec<SourceDef>,
    pub settings: Settings,
}

impl Model {
    pub fn class_by_name(&self, name: &str) -> Option<&Arc<Class>> {
        self.classes.iter().find(|c| c.name == name)
    }

    pub fn twin_by_path(&self, path: &str) -> Option<&TwinDef> {
        self.twins.iter().find(|t| t.path.as_str() == path)
    }
}

/// Node-wide settings from the topology's `[settings]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// A container twin publishes its roll-up upward at most once per this
    /// interval (by the container's tier; the device entry is unused).
    pub publish_interval: TierMap<Duration>,
    /// A sourced property with an expected period goes Uncertain(stale) after
    /// `period * stale_factor` without a sample.
    pub stale_factor: f64,
    /// Supervision policy of container twins, by the container's tier.
    pub supervision: TierMap<SupervisionPolicy>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            publish_interval: TierMap::splat(Duration::from_millis(5)),
            stale_factor: 3.0,
            supervision: TierMap::splat(SupervisionPolicy::default()),
        }
    }
}

/// OTP-style restart policy of a supervising twin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisionPolicy {
    pub strategy: RestartStrategy,
    /// At most this many restarts within `period`...
    pub max_restarts: u32,
    pub period: Duration,
    // ...else the supervisor escalates: it fails itself, and its own supervisor decides.
}

impl Default for SupervisionPolicy {
    fn default() -> Self {
        Self {
            strategy: RestartStrategy::OneForOne,
            max_restarts: 5,
            period: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartStrategy {
    /// Restart only the child that failed.
    OneForOne,
    /// Never restart; a failed child stays down (its contribution goes Bad).
    Temporary,
}

/// A class: typed properties, derived values, alarms and roll-ups.
#[derive(Debug, Clone)]
pub struct Class {
    pub name: String,
    pub tier: Tier,
    /// Names of this class and every class it extends, nearest first
    /// (`["CentrifugalPump", "Pump", "Device"]`): roll-up class filters match any.
    pub lineage: Vec<String>,
    /// Properties in slot order; a twin's state is one slot per property.
    pub props: Vec<PropDef>,
    /// Slot indices of derived properties in evaluation (dependency) order.
    pub eval_order: Vec<u16>,
    pub alarms: Vec<AlarmDef>,
    pub rollups: Vec<RollupDef>,
    /// Which process model of the `sim` crate feeds this class's unbound
    /// sourced properties (`"centrifugal_pump"`, `"tank"`); `None`: a generic
    /// random walk within each property's range.
    pub sim: Option<String>,
}

impl Class {
    pub fn prop_index(&self, name: &str) -> Option<u16> {
        self.props
            .iter()
            .position(|p| p.name == name)
            .map(|i| i as u16)
    }

    /// Whether this class is `name` or extends it.
    pub fn is_a(&self, name: &str) -> bool {
        self.lineage.iter().any(|c| c == name)
    }
}

/// One property of a class.
#[derive(Debug, Clone)]
pub struct PropDef {
    pub name: String,
    pub ty: ValueType,
    pub unit: Option<Unit>,
    /// Values outside are marked Bad(out_of_range).
    pub range: Option<(f64, f64)>,
    /// Expected sample period of a sourced property (staleness).
    pub period: Option<Duration>,
    /// State names of an enum property, in index order.
    pub states: Vec<String>,
    pub kind: PropKind,
    pub description: String,
}

#[derive(Debug, Clone)]
pub enum PropKind {
    /// Fed by samples from a bound point.
    Sourced,
    /// A per-instance constant (overridable in the topology), with its class default.
    Param { default: Value },
    /// Computed from the twin's own properties.
    Derived(CompiledExpr),
    /// Computed over the twin's children: index into `Class::rollups`.
    Rollup(u16),
}

/// Aggregation functions over children.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggFunc {
    Sum,
    Avg,
    Min,
    Max,
    /// Children with a non-Bad value of the input.
    Count,
    /// Children whose (bool) input is true.
    CountTrue,
    Any,
    All,
    /// `wavg(value, weight)`: Σ value·weight / Σ weight.
    WAvg,
}

impl AggFunc {
    /// Every function, in declaration order.
    pub const ALL: [AggFunc; 9] = [
        AggFunc::Sum,
        AggFunc::Avg,
        AggFunc::Min,
        AggFunc::Max,
        AggFunc::Count,
        AggFunc::CountTrue,
        AggFunc::Any,
        AggFunc::All,
        AggFunc::WAvg,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AggFunc::Sum => "sum",
            AggFunc::Avg => "avg",
            AggFunc::Min => "min",
            AggFunc::Max => "max",
            AggFunc::Count => "count",
            AggFunc::CountTrue => "count_true",
            AggFunc::Any => "any",
            AggFunc::All => "all",
            AggFunc::WAvg => "wavg",
        }
    }
}

/// One roll-up of a container class: `prop = func(input[, weight])` over its children.
#[derive(Debug, Clone)]
pub struct RollupDef {
    /// Slot receiving the result.
    pub prop: u16,
    pub func: AggFunc,
    /// Name of the children's property aggregated.
    pub input: String,
    /// For `wavg`: name of the children's weight property.
    pub weight: Option<String>,
    /// Only children whose class `is_a` one of these (empty: all children).
    pub class_filter: Vec<String>,
    /// Unit of the input as declared by the children; children whose unit is
    /// convertible contribute converted values (`scale`), others are rejected at load.
    pub unit: Option<Unit>,
}

/// One alarm of a class.
#[derive(Debug, Clone)]
pub struct AlarmDef {
    pub name: String,
    pub condition: Condition,
    pub priority: Priority,
    /// Hysteresis in the unit of the compared quantity: `x > 18` with deadband
    /// 0.5 clears only when `x <= 17.5`.
    pub deadband: f64,
    pub on_delay: Duration,
    pub off_delay: Duration,
    pub guidance: String,
    /// Suppression by the parent's state: an expression over the parent's
    /// properties (compiled against each parent class the twin may have;
    /// see `TwinDef::suppression`).
    pub suppress_when_parent: Option<String>,
}

/// One instantiated twin.
#[derive(Debug, Clone)]
pub struct TwinDef {
    pub path: TwinPath,
    /// Index into `Model::classes`.
    pub class: usize,
    /// Index into `Model::twins`.
    pub parent: Option<usize>,
    /// Indices into `Model::twins`, in declaration order.
    pub children: Vec<usize>,
    /// Per-instance parameter overrides: (slot index, value).
    pub params: Vec<(u16, Value)>,
    /// Per-instance alarm overrides.
    pub alarm_overrides: Vec<AlarmOverride>,
    /// External identifiers that resolve to this twin.
    pub aliases: Vec<String>,
    /// Points feeding this twin's sourced properties.
    pub bindings: Vec<Binding>,
    /// For each alarm of the class, its suppression condition compiled
    /// against this twin's parent class (shared between all twins with the
    /// same pair of classes). `None` where the class has no suppression.
    pub suppression: Option<Arc<[Option<CompiledExpr>]>>,
}

/// A per-instance change to one alarm of the class.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmOverride {
    /// Index into `Class::alarms`.
    pub alarm: u16,
    pub enabled: Option<bool>,
    pub priority: Option<Priority>,
    pub deadband: Option<f64>,
}

/// A sourced property bound to a point of a source.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    /// Slot index of the sourced property.
    pub prop: u16,
    /// Index into `Model::sources`.
    pub source: usize,
    /// Source-specific address (`"holding:40001:f32"`, `"plant/p-101/flow"`, `"pump:flow"`).
    pub address: String,
    /// Where the address is written (shared by the instances of a template).
    pub at: Option<Arc<SourceSpan>>,
}

/// A named data source of the topology.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceDef {
    pub name: String,
    /// `sim`, `modbus`, `mqtt`: interpreted by the runtime's source factory.
    pub kind: String,
    /// The rest of the source's table, for the source's own config layer.
    pub config: toml::Table,
    /// Where the source is declared (its name in `[source.NAME]`).
    pub at: SourceSpan,
    /// Where its `kind` is written.
    pub kind_at: SourceSpan,
    /// Every key path of the table (`endpoints.0.timeout`, list items by
    /// index) and where it is written, for locating configuration errors.
    pub keys: Vec<(String, SourceSpan)>,
}

impl SourceDef {
    /// Where the value at `path` is written: the longest declared prefix of
    /// the path, else the source's name.
    pub fn locate(&self, path: &str) -> &SourceSpan {
        let mut p = path;
        loop {
            if let Some((_, span)) = self.keys.iter().find(|(k, _)| k == p) {
                return span;
            }
            match p.rsplit_once('.') {
                Some((head, _)) => p = head,
                None => return &self.at,
            }
        }
    }
}
