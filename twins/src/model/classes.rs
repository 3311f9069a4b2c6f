//! Classes: inheritance flattened, properties typed, roll-ups resolved
//! against the classes of the tier below, expressions and alarms compiled.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;

use toml::Spanned;

use super::diag::{Loc, Sink, did_you_mean, one_of};
use super::raw::{RawAlarm, RawClass, RawProp, RawRollup, inner_span, loc};
use super::rollup;
use super::settings::duration;
use super::types::{AggFunc, AlarmDef, Class, PropDef, PropKind, RollupDef, Tier};
use crate::alarm::Priority;
use crate::expr::{self, Expected, ExprError, Scope, ScopeEntry};
use crate::units::Unit;
use crate::value::{Value, ValueType};

/// Process models of the `sim` crate that a class may name in `sim = "..."`.
pub const SIM_MODELS: &[&str] = &[
    "centrifugal_pump",
    "compressor",
    "control_valve",
    "electric_motor",
    "heat_exchanger",
    "tank",
];

const TIERS: &[&str] = &["enterprise", "region", "plant", "line", "device"];
const TYPES: &[&str] = &["f64", "i64", "bool", "string", "enum"];
const PRIORITIES: &[&str] = &["low", "medium", "high", "urgent"];

/// A compiled class and what the topology still needs to know about its source.
#[derive(Debug)]
pub(crate) struct ClassInfo {
    pub class: Class,
    /// Every alarm name, also of alarms that failed to compile.
    pub alarm_names: Vec<String>,
    /// Per alarm: file and text of `suppress_when_parent`.
    pub suppress: Vec<Option<(usize, Spanned<String>)>>,
}

#[derive(Debug, Default)]
pub(crate) struct Classes {
    pub list: Vec<ClassInfo>,
    pub by_name: HashMap<String, usize>,
    /// Classes that could not be built; their errors are already reported.
    pub broken: HashSet<String>,
}

/// Scope of expressions: a class's properties by slot.
#[derive(Debug)]
pub struct PropsScope<'a>(pub &'a [PropDef]);

impl Scope for PropsScope<'_> {
    fn lookup(&self, name: &str) -> Option<ScopeEntry<'_>> {
        let (i, p) = self.0.iter().enumerate().find(|(_, p)| p.name == name)?;
        Some(ScopeEntry {
            slot: i as u16,
            ty: p.ty,
            unit: p.unit.as_ref(),
            states: &p.states,
        })
    }

    fn names(&self) -> Vec<String> {
        self.0.iter().map(|p| p.name.clone()).collect()
    }
}

/// Reports expression errors at their place in the TOML string.
pub(crate) fn report_expr(
    sink: &mut Sink<'_>,
    file: usize,
    lit: &Spanned<String>,
    errors: Vec<ExprError>,
    context: Option<&str>,
) {
    for e in errors {
        let span = inner_span(sink.text(file), &lit.span(), &e.span);
        let message = match context {
            Some(c) => format!("{} {c}", e.message),
            None => e.message,
        };
        sink.error_hint(&Loc::new(file, span), message, e.hint);
    }
}

/// A class with its ancestors' content merged in.
#[derive(Debug)]
struct Flat {
    name: String,
    tier: Tier,
    lineage: Vec<String>,
    sim: Option<String>,
    props: Vec<RawProp>,
    alarms: Vec<RawAlarm>,
    rollups: Vec<RawRollup>,
}

pub(crate) fn build(sink: &mut Sink<'_>, raws: Vec<RawClass>) -> Classes {
    let mut out = Classes::default();
    // Names, first definition wins.
    let mut first: HashMap<String, usize> = HashMap::new();
    let mut dropped = vec![false; raws.len()];
    for (i, c) in raws.iter().enumerate() {
        if let Some(&j) = first.get(&c.name) {
            let first_at = sink.describe(&raws[j].at);
            let mut hint = format!("`{}` is first defined at {first_at}", c.name);
            if first_at.starts_with("library/") {
                hint.push_str(
                    ", in the shipped library; use `extends` to specialise it under a new name",
                );
            }
            sink.error_hint(&c.at, format!("duplicate class `{}`", c.name), Some(hint));
            dropped[i] = true;
        } else {
            first.insert(c.name.clone(), i);
        }
    }
    let all_names: Vec<&str> = raws.iter().map(|c| c.name.as_str()).collect();

    // Parents.
    let mut parent: Vec<Option<usize>> = vec![None; raws.len()];
    let mut broken = vec![false; raws.len()];
    for (i, c) in raws.iter().enumerate() {
        if dropped[i] {
            continue;
        }
        if let Some(ext) = &c.head.extends {
            match first.get(ext.get_ref()) {
                Some(&p) => parent[i] = Some(p),
                None => {
                    sink.error_hint(
                        &loc(c.file, ext),
                        format!(
                            "class `{}` extends unknown class `{}`",
                            c.name,
                            ext.get_ref()
                        ),
                        did_you_mean(ext.get_ref(), all_names.iter().copied()),
                    );
                    broken[i] = true;
                }
            }
        }
    }
    // Inheritance cycles: report once, at the first class of the cycle.
    for i in 0..raws.len() {
        let mut seen = vec![i];
        let mut at = parent[i];
        while let Some(p) = at {
            if p == i {
                if seen.iter().all(|&s| s >= i) {
                    let mut names: Vec<&str> =
                        seen.iter().map(|&s| raws[s].name.as_str()).collect();
                    names.push(&raws[i].name);
                    let ext = raws[i]
                        .head
                        .extends
                        .as_ref()
                        .map_or(raws[i].at.clone(), |e| loc(raws[i].file, e));
                    sink.error(
                        &ext,
                        format!(
                            "inheritance cycle: {}",
                            names
                                .iter()
                                .map(|n| format!("`{n}`"))
                                .collect::<Vec<_>>()
                                .join(" extends ")
                        ),
                    );
                }
                broken[i] = true;
                break;
            }
            if seen.contains(&p) {
                break;
            }
            seen.push(p);
            at = parent[p];
        }
    }
    // Classes below a broken ancestor are broken too (silently).
    loop {
        let mut changed = false;
        for i in 0..raws.len() {
            if !broken[i] && parent[i].is_some_and(|p| broken[p] || dropped[p]) {
                broken[i] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }

    // Flatten, parents first.
    let n = raws.len();
    let mut flats: Vec<Option<Flat>> = (0..n).map(|_| None).collect();
    loop {
        let mut progress = false;
        for i in 0..n {
            if dropped[i] || broken[i] || flats[i].is_some() {
                continue;
            }
            if let Some(p) = parent[i] {
                if broken[p] {
                    broken[i] = true;
                    progress = true;
                    continue;
                }
                if flats[p].is_none() {
                    continue;
                }
            }
            let f = flatten(sink, &raws[i], parent[i].and_then(|p| flats[p].as_ref()));
            match f {
                Some(f) => flats[i] = Some(f),
                None => broken[i] = true,
            }
            progress = true;
        }
        if !progress {
            break;
        }
    }

    // Compile bottom-up by tier, so roll-ups see the classes of the tier below.
    let mut done: Vec<Option<ClassInfo>> = (0..raws.len()).map(|_| None).collect();
    let tier_of: HashMap<String, Tier> = flats
        .iter()
        .flatten()
        .map(|f| (f.name.clone(), f.tier))
        .collect();
    for tier in Tier::ALL.into_iter().rev() {
        let lower: Vec<&ClassInfo> = match tier.below() {
            Some(b) => done
                .iter()
                .flatten()
                .filter(|c| c.class.tier == b)
                .collect(),
            None => Vec::new(),
        };
        let mut compiled = Vec::new();
        for (i, f) in flats.iter().enumerate() {
            if let Some(f) = f
                && f.tier == tier
            {
                compiled.push((i, compile_class(sink, f, &lower, &tier_of)));
            }
        }
        for (i, c) in compiled {
            done[i] = Some(c);
        }
    }
    for (i, c) in done.into_iter().enumerate() {
        match c {
            Some(c) => {
                out.by_name.insert(c.class.name.clone(), out.list.len());
                out.list.push(c);
            }
            None if !dropped[i] => {
                out.broken.insert(raws[i].name.clone());
            }
            None => {}
        }
    }
    out
}

fn parse_tier(sink: &mut Sink<'_>, file: usize, s: &Spanned<String>) -> Option<Tier> {
    let t = Tier::ALL.into_iter().find(|t| t.name() == s.get_ref());
    if t.is_none() {
        sink.error_hint(
            &loc(file, s),
            format!("unknown tier `{}`: expected {}", s.get_ref(), one_of(TIERS)),
            did_you_mean(s.get_ref(), TIERS.iter().copied()),
        );
    }
    t
}

fn flatten(sink: &mut Sink<'_>, raw: &RawClass, parent: Option<&Flat>) -> Option<Flat> {
    let own_tier = match &raw.head.tier {
        Some(t) => Some(parse_tier(sink, raw.file, t)?),
        None => None,
    };
    let tier = match (own_tier, parent) {
        (Some(t), Some(p)) if t != p.tier => {
            let at = raw
                .head
                .tier
                .as_ref()
                .map_or(raw.at.clone(), |t| loc(raw.file, t));
            sink.error(
                &at,
                format!(
                    "class `{}` has tier `{}` but extends `{}` of tier `{}`: a class keeps its parent's tier",
                    raw.name,
                    t.name(),
                    p.name,
                    p.tier.name()
                ),
            );
            return None;
        }
        (Some(t), _) => t,
        (None, Some(p)) => p.tier,
        (None, None) => {
            sink.error(
                &raw.at,
                format!(
                    "class `{}` has no `tier`: expected one of {}",
                    raw.name,
                    one_of(TIERS)
                ),
            );
            return None;
        }
    };
    let sim = match &raw.head.sim {
        Some(s) if SIM_MODELS.contains(&s.get_ref().as_str()) => Some(s.get_ref().clone()),
        Some(s) => {
            sink.error_hint(
                &loc(raw.file, s),
                format!(
                    "unknown sim model `{}`: expected {}",
                    s.get_ref(),
                    one_of(SIM_MODELS)
                ),
                did_you_mean(s.get_ref(), SIM_MODELS.iter().copied()),
            );
            None
        }
        None => parent.and_then(|p| p.sim.clone()),
    };
    let mut lineage = vec![raw.name.clone()];
    let (mut props, mut alarms, mut rollups) = match parent {
        Some(p) => {
            lineage.extend(p.lineage.iter().cloned());
            (p.props.clone(), p.alarms.clone(), p.rollups.clone())
        }
        None => (Vec::new(), Vec::new(), Vec::new()),
    };
    // A subclass redefines an inherited property, alarm or roll-up by name, in place.
    for p in &raw.props {
        match props.iter_mut().find(|q| q.name == p.name) {
            Some(q) => *q = p.clone(),
            None => props.push(p.clone()),
        }
    }
    let inherited_alarms = alarms.len();
    for a in &raw.alarms {
        let name = a.head.name.get_ref();
        if let Some(prev) = alarms[inherited_alarms..]
            .iter()
            .find(|q| q.head.name.get_ref() == name)
        {
            let hint = format!(
                "`{name}` is first defined at {}",
                sink.describe(&loc(prev.file, &prev.head.name))
            );
            sink.error_hint(
                &loc(a.file, &a.head.name),
                format!("duplicate alarm `{name}` in class `{}`", raw.name),
                Some(hint),
            );
            continue;
        }
        match alarms[..inherited_alarms]
            .iter_mut()
            .find(|q| q.head.name.get_ref() == name)
        {
            Some(q) => *q = a.clone(),
            None => alarms.push(a.clone()),
        }
    }
    for r in &raw.rollups {
        match rollups.iter_mut().find(|q| q.name == r.name) {
            Some(q) => *q = r.clone(),
            None => rollups.push(r.clone()),
        }
    }
    Some(Flat {
        name: raw.name.clone(),
        tier,
        lineage,
        sim,
        props,
        alarms,
        rollups,
    })
}

fn placeholder(name: &str) -> PropDef {
    PropDef {
        name: name.to_string(),
        ty: ValueType::F64,
        unit: None,
        range: None,
        period: None,
        states: Vec::new(),
        kind: PropKind::Sourced,
        description: String::new(),
    }
}

fn unit_error(sink: &mut Sink<'_>, file: usize, u: &Spanned<String>, e: crate::units::UnitError) {
    let hint = e.hint.map(|h| format!("did you mean `{h}`?"));
    sink.error_hint(&loc(file, u), e.message, hint);
}

fn parse_type(sink: &mut Sink<'_>, file: usize, s: &Spanned<String>) -> Option<ValueType> {
    let t = match s.get_ref().as_str() {
        "f64" => ValueType::F64,
        "i64" => ValueType::I64,
        "bool" => ValueType::Bool,
        "string" => ValueType::String,
        "enum" => ValueType::Enum,
        other => {
            let alias = match other {
                "float" | "double" | "number" | "f32" => Some("f64"),
                "int" | "integer" | "i32" | "u32" => Some("i64"),
                "boolean" => Some("bool"),
                "str" | "text" => Some("string"),
                _ => None,
            };
            let hint = alias
                .map(|a| format!("did you mean `{a}`?"))
                .or_else(|| did_you_mean(other, TYPES.iter().copied()));
            sink.error_hint(
                &loc(file, s),
                format!("unknown type `{other}`: expected {}", one_of(TYPES)),
                hint,
            );
            return None;
        }
    };
    Some(t)
}

fn toml_kind(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a datetime",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

/// Converts a TOML value to a property value of `prop`'s type, or says why not.
pub(crate) fn to_value(prop: &PropDef, v: &toml::Value) -> Result<Value, (String, Option<String>)> {
    let value = match (prop.ty, v) {
        (ValueType::F64, toml::Value::Float(f)) => Value::F64(*f),
        (ValueType::F64, toml::Value::Integer(i)) => Value::F64(*i as f64),
        (ValueType::I64, toml::Value::Integer(i)) => Value::I64(*i),
        (ValueType::Bool, toml::Value::Boolean(b)) => Value::Bool(*b),
        (ValueType::String, toml::Value::String(s)) => Value::String(Arc::from(s.as_str())),
        (ValueType::Enum, toml::Value::String(s)) => {
            match prop.states.iter().position(|st| st == s) {
                Some(i) => Value::Enum(i as u16),
                None => {
                    let states: Vec<&str> = prop.states.iter().map(String::as_str).collect();
                    return Err((
                        format!(
                            "`{s}` is not a state of enum `{}`: expected {}",
                            prop.name,
                            one_of(&states)
                        ),
                        did_you_mean(s, states.iter().copied()),
                    ));
                }
            }
        }
        (ty, other) => {
            let expected = match ty {
                ValueType::Enum => "a state name (string)".to_string(),
                ValueType::F64 => "a number".to_string(),
                ValueType::I64 => "an integer".to_string(),
                ValueType::Bool => "`true` or `false`".to_string(),
                ValueType::String => "a string".to_string(),
            };
            return Err((
                format!(
                    "`{}` is {ty}: expected {expected}, found {}",
                    prop.name,
                    toml_kind(other)
                ),
                None,
            ));
        }
    };
    if let (Some((lo, hi)), Some(x)) = (prop.range, value.as_f64())
        && prop.ty.is_numeric()
        && !(lo..=hi).contains(&x)
    {
        return Err((
            format!("{x} is outside the range [{lo}, {hi}] of `{}`", prop.name),
            None,
        ));
    }
    Ok(value)
}

fn compile_class(
    sink: &mut Sink<'_>,
    f: &Flat,
    lower: &[&ClassInfo],
    tier_of: &HashMap<String, Tier>,
) -> ClassInfo {
    let mut props: Vec<PropDef> = Vec::with_capacity(f.props.len() + f.rollups.len());
    let mut derived: Vec<(usize, &RawProp, Option<ValueType>, Option<Unit>)> = Vec::new();

    // Sourced properties, parameters, and the declared parts of derived ones.
    for p in &f.props {
        let h = &p.head;
        let file = p.file;
        let mut def = placeholder(&p.name);
        def.description = h.description.clone().unwrap_or_default();
        let explicit = h.ty.as_ref().and_then(|t| parse_type(sink, file, t));
        let is_derived = h.expr.is_some();
        if let (Some(_), Some(d)) = (&h.expr, &h.default) {
            sink.error(
                &loc(file, d),
                format!(
                    "property `{}` has both `expr` and `default`: expected a derived property (`expr`) or a parameter (`default`), not both",
                    p.name
                ),
            );
        }
        let inferred = if h.ty.is_some() {
            explicit
        } else if h.states.is_some() {
            Some(ValueType::Enum)
        } else if let Some(d) = h.default.as_ref().filter(|_| !is_derived) {
            match d.get_ref() {
                toml::Value::Boolean(_) => Some(ValueType::Bool),
                toml::Value::String(_) => Some(ValueType::String),
                toml::Value::Integer(_) | toml::Value::Float(_) => Some(ValueType::F64),
                other => {
                    sink.error(
                        &loc(file, d),
                        format!(
                            "default of `{}` is {}: expected a number, a boolean or a string",
                            p.name,
                            toml_kind(other)
                        ),
                    );
                    None
                }
            }
        } else if is_derived {
            None
        } else {
            Some(ValueType::F64)
        };
        def.ty = inferred.unwrap_or(ValueType::F64);

        if let Some(states) = &h.states {
            if def.ty != ValueType::Enum {
                sink.error(
                    &loc(file, states),
                    format!(
                        "`states` is only for enum properties, but `{}` is {}",
                        p.name, def.ty
                    ),
                );
            } else if states.get_ref().is_empty() {
                sink.error(
                    &loc(file, states),
                    format!("enum `{}` has no states: expected at least one", p.name),
                );
            }
            let mut seen = HashSet::new();
            for s in states.get_ref() {
                if !seen.insert(s.get_ref().clone()) {
                    sink.error(
                        &loc(file, s),
                        format!("duplicate state `{}` in enum `{}`", s.get_ref(), p.name),
                    );
                }
                def.states.push(s.get_ref().clone());
            }
        } else if def.ty == ValueType::Enum && !is_derived {
            sink.error(
                &p.at,
                format!(
                    "enum `{}` has no `states`: expected `states = [\"...\", ...]`",
                    p.name
                ),
            );
        }

        if let Some(u) = &h.unit {
            if inferred.is_some_and(|t| !t.is_numeric()) {
                sink.error(
                    &loc(file, u),
                    format!(
                        "`{}` is {} and cannot have a unit: units apply to f64 and i64 properties",
                        p.name, def.ty
                    ),
                );
            } else {
                match Unit::parse(u.get_ref()) {
                    Ok(unit) => def.unit = Some(unit),
                    Err(e) => unit_error(sink, file, u, e),
                }
            }
        }

        if let Some(r) = &h.range {
            let vals = r.get_ref();
            if vals.len() != 2 {
                sink.error(
                    &loc(file, r),
                    format!("expected `range = [min, max]`, found {} values", vals.len()),
                );
            } else if vals[0].get_ref() > vals[1].get_ref() {
                sink.error(
                    &loc(file, r),
                    format!(
                        "range of `{}` has min {} greater than max {}: expected [min, max]",
                        p.name,
                        vals[0].get_ref(),
                        vals[1].get_ref()
                    ),
                );
            } else if inferred.is_some_and(|t| !t.is_numeric()) {
                sink.error(
                    &loc(file, r),
                    format!("`{}` is {} and cannot have a range: ranges apply to f64 and i64 properties", p.name, def.ty),
                );
            } else {
                def.range = Some((*vals[0].get_ref(), *vals[1].get_ref()));
            }
        }

        if let Some(per) = &h.period {
            if is_derived || h.default.is_some() {
                let kind = if is_derived { "derived" } else { "a parameter" };
                sink.error(
                    &loc(file, per),
                    format!(
                        "`period` applies to sourced properties, but `{}` is {kind}",
                        p.name
                    ),
                );
            } else if let Some(d) = duration(sink, file, per, &format!("`period` of `{}`", p.name))
            {
                if d.is_zero() {
                    sink.error(
                        &loc(file, per),
                        format!(
                            "expected a positive `period` for `{}`, found `{}`",
                            p.name,
                            per.get_ref()
                        ),
                    );
                } else {
                    def.period = Some(d);
                }
            }
        }

        if is_derived {
            derived.push((props.len(), p, explicit, def.unit.clone()));
        } else if let Some(d) = &h.default {
            let default = match inferred.map(|_| to_value(&def, d.get_ref())) {
                Some(Ok(v)) => v,
                Some(Err((m, hint))) => {
                    let m = if def.ty == ValueType::Enum {
                        format!("enum default {m}")
                    } else {
                        format!("invalid default: {m}")
                    };
                    sink.error_hint(&loc(file, d), m, hint);
                    Value::Null
                }
                None => Value::Null,
            };
            def.kind = PropKind::Param { default };
        }
        props.push(def);
    }

    // Roll-ups.
    let mut rollups = Vec::new();
    for r in &f.rollups {
        let mut def = placeholder(&r.name);
        def.description = r.head.description.clone().unwrap_or_default();
        if let Some(p) = f.props.iter().find(|p| p.name == r.name) {
            sink.error_hint(
                &r.at,
                format!(
                    "`{}` is declared both as a property and as a roll-up of class `{}`",
                    r.name, f.name
                ),
                Some(format!(
                    "the property is declared at {}",
                    sink.describe(&p.at)
                )),
            );
        }
        if let Some(rd) = resolve_rollup(sink, f, r, props.len(), lower, tier_of, &mut def) {
            def.kind = PropKind::Rollup(rollups.len() as u16);
            rollups.push(rd);
        } else {
            def.kind = PropKind::Rollup(rollups.len() as u16);
            rollups.push(RollupDef {
                prop: (props.len()) as u16,
                func: AggFunc::Count,
                input: String::new(),
                weight: None,
                class_filter: Vec::new(),
                unit: None,
            });
        }
        props.push(def);
    }

    // Derived properties: dependency order, cycles reported.
    let eval_order = compile_derived(sink, f, &mut props, &derived);

    // Alarms.
    let mut alarms = Vec::new();
    let mut alarm_names = Vec::new();
    let mut suppress = Vec::new();
    for a in &f.alarms {
        let h = &a.head;
        let file = a.file;
        alarm_names.push(h.name.get_ref().clone());
        let condition = match expr::compile_condition(h.when.get_ref(), &PropsScope(&props)) {
            Ok(c) => Some(c),
            Err(errors) => {
                report_expr(sink, file, &h.when, errors, None);
                None
            }
        };
        let priority = match &h.priority {
            None => Some(Priority::Medium),
            Some(p) => {
                let found = Priority::ALL.into_iter().find(|x| x.name() == p.get_ref());
                if found.is_none() {
                    sink.error_hint(
                        &loc(file, p),
                        format!(
                            "unknown priority `{}`: expected {}",
                            p.get_ref(),
                            one_of(PRIORITIES)
                        ),
                        did_you_mean(p.get_ref(), PRIORITIES.iter().copied()),
                    );
                }
                found
            }
        };
        let deadband = match &h.deadband {
            Some(d) if !(d.get_ref().is_finite() && *d.get_ref() >= 0.0) => {
                sink.error(
                    &loc(file, d),
                    format!("expected a deadband of 0 or more, found {}", d.get_ref()),
                );
                0.0
            }
            Some(d) => *d.get_ref(),
            None => 0.0,
        };
        let alarm_name = h.name.get_ref();
        let on_delay = h.on_delay.as_ref().map(|d| {
            duration(
                sink,
                file,
                d,
                &format!("`on_delay` of alarm `{alarm_name}`"),
            )
        });
        let off_delay = h.off_delay.as_ref().map(|d| {
            duration(
                sink,
                file,
                d,
                &format!("`off_delay` of alarm `{alarm_name}`"),
            )
        });
        if let Some(s) = &h.suppress_when_parent
            && let Err(e) = expr::referenced_names(s.get_ref())
        {
            report_expr(sink, file, s, vec![e], None);
        }
        suppress.push(h.suppress_when_parent.clone().map(|s| (file, s)));
        if let (Some(crate::expr::Condition::Bool(_)), Some(d)) = (&condition, &h.deadband)
            && *d.get_ref() > 0.0
        {
            sink.error_hint(
                &loc(file, d),
                format!(
                    "`deadband` of alarm `{}` needs a comparison like `x > 18`, but `when` is a boolean expression",
                    h.name.get_ref()
                ),
                Some("remove the deadband, or make the condition a single comparison".into()),
            );
        }
        if let (Some(condition), Some(priority)) = (condition, priority) {
            alarms.push(AlarmDef {
                name: alarm_name.clone(),
                condition,
                priority,
                deadband,
                on_delay: on_delay.flatten().unwrap_or_default(),
                off_delay: off_delay.flatten().unwrap_or_default(),
                guidance: h.guidance.clone().unwrap_or_default(),
                suppress_when_parent: h.suppress_when_parent.as_ref().map(|s| s.get_ref().clone()),
            });
        }
    }

    ClassInfo {
        class: Class {
            name: f.name.clone(),
            tier: f.tier,
            lineage: f.lineage.clone(),
            props,
            eval_order,
            alarms,
            rollups,
            sim: f.sim.clone(),
        },
        alarm_names,
        suppress,
    }
}

fn compile_derived(
    sink: &mut Sink<'_>,
    f: &Flat,
    props: &mut [PropDef],
    derived: &[(usize, &RawProp, Option<ValueType>, Option<Unit>)],
) -> Vec<u16> {
    let index: HashMap<&str, usize> = derived
        .iter()
        .enumerate()
        .map(|(i, (_, p, _, _))| (p.name.as_str(), i))
        .collect();
    // Edges between derived properties.
    let mut deps: Vec<Vec<usize>> = Vec::with_capacity(derived.len());
    let mut syntax_ok = vec![true; derived.len()];
    for (i, (_, p, _, _)) in derived.iter().enumerate() {
        let expr = p
            .head
            .expr
            .as_ref()
            .map(|e| e.get_ref().as_str())
            .unwrap_or("");
        match expr::referenced_names(expr) {
            Ok(names) => deps.push(
                names
                    .iter()
                    .filter_map(|n| index.get(n.as_str()).copied())
                    .collect(),
            ),
            Err(e) => {
                if let Some(lit) = &p.head.expr {
                    report_expr(sink, p.file, lit, vec![e], None);
                }
                syntax_ok[i] = false;
                deps.push(Vec::new());
            }
        }
    }
    // Depth-first search: post-order is evaluation order; a back edge is a cycle.
    let mut state = vec![0u8; derived.len()]; // 0 new, 1 on stack, 2 done
    let mut in_cycle = vec![false; derived.len()];
    let mut order = Vec::new();
    fn visit(
        i: usize,
        deps: &[Vec<usize>],
        state: &mut [u8],
        stack: &mut Vec<usize>,
        order: &mut Vec<usize>,
        cycles: &mut Vec<Vec<usize>>,
    ) {
        state[i] = 1;
        stack.push(i);
        for &d in &deps[i] {
            match state[d] {
                0 => visit(d, deps, state, stack, order, cycles),
                1 => {
                    let from = stack.iter().position(|&s| s == d).unwrap_or(0);
                    cycles.push(stack[from..].to_vec());
                }
                _ => {}
            }
        }
        stack.pop();
        state[i] = 2;
        order.push(i);
    }
    let mut cycles = Vec::new();
    for i in 0..derived.len() {
        if state[i] == 0 {
            visit(
                i,
                &deps,
                &mut state,
                &mut Vec::new(),
                &mut order,
                &mut cycles,
            );
        }
    }
    for cycle in &cycles {
        for &c in cycle {
            in_cycle[c] = true;
        }
        let mut names: Vec<&str> = cycle.iter().map(|&c| derived[c].1.name.as_str()).collect();
        names.push(names[0]);
        let first = derived[cycle[0]].1;
        let at = first
            .head
            .expr
            .as_ref()
            .map_or(first.at.clone(), |e| loc(first.file, e));
        sink.error(
            &at,
            format!(
                "cycle among derived properties of class `{}`: {}",
                f.name,
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(" -> ")
            ),
        );
    }
    let mut eval_order = Vec::new();
    for i in order {
        let (slot, p, ty, unit) = &derived[i];
        if in_cycle[i] || !syntax_ok[i] {
            continue;
        }
        let Some(lit) = &p.head.expr else { continue };
        let result = expr::compile(
            lit.get_ref(),
            &PropsScope(props),
            Expected {
                ty: *ty,
                unit: unit.as_ref(),
            },
        );
        match result {
            Ok(c) => {
                props[*slot].ty = ty.unwrap_or(c.ty());
                if props[*slot].unit.is_none() {
                    props[*slot].unit = c.unit().cloned();
                }
                props[*slot].kind = PropKind::Derived(c);
                eval_order.push(*slot as u16);
            }
            Err(errors) => report_expr(sink, p.file, lit, errors, None),
        }
    }
    eval_order
}

fn func_needs(func: AggFunc) -> &'static str {
    match func {
        AggFunc::Count => "any",
        AggFunc::CountTrue | AggFunc::Any | AggFunc::All => "bool",
        _ => "numeric",
    }
}

fn resolve_rollup(
    sink: &mut Sink<'_>,
    f: &Flat,
    r: &RawRollup,
    slot: usize,
    lower: &[&ClassInfo],
    tier_of: &HashMap<String, Tier>,
    def: &mut PropDef,
) -> Option<RollupDef> {
    let file = r.file;
    let lit = &r.head.expr;
    let at_sub = |sink: &Sink<'_>, sub: &Range<usize>| {
        Loc::new(file, inner_span(sink.text(file), &lit.span(), sub))
    };
    let Some(child_tier) = f.tier.below() else {
        sink.error(
            &r.at,
            format!(
                "device class `{}` cannot have roll-ups: devices have no children",
                f.name
            ),
        );
        return None;
    };
    let call = match rollup::parse(lit.get_ref()) {
        Ok(c) => c,
        Err(e) => {
            let at = at_sub(sink, &e.span);
            sink.error_hint(&at, e.message, e.hint);
            return None;
        }
    };
    // Class filter: known classes of the children's tier.
    let mut ok = true;
    for (name, span) in &call.classes {
        match tier_of.get(name) {
            Some(t) if *t == child_tier => {}
            Some(t) => {
                let at = at_sub(sink, span);
                sink.error(
                    &at,
                    format!(
                        "class `{name}` is a {} class, but the children of {} class `{}` are {}s",
                        t.name(),
                        f.tier.name(),
                        f.name,
                        child_tier.name()
                    ),
                );
                ok = false;
            }
            None => {
                let at = at_sub(sink, span);
                sink.error_hint(
                    &at,
                    format!("unknown class `{name}` in roll-up filter"),
                    did_you_mean(name, tier_of.keys().map(String::as_str)),
                );
                ok = false;
            }
        }
    }
    if !ok {
        return None;
    }
    let candidates: Vec<&ClassInfo> = lower
        .iter()
        .copied()
        .filter(|c| call.classes.is_empty() || call.classes.iter().any(|(n, _)| c.class.is_a(n)))
        .collect();
    let what = match call.classes.len() {
        0 => format!("any {} class", child_tier.name()),
        _ => format!(
            "any class matching {}",
            one_of(
                &call
                    .classes
                    .iter()
                    .map(|c| c.0.as_str())
                    .collect::<Vec<_>>()
            )
        ),
    };
    let input_unit = check_input(
        sink,
        &at_sub(sink, &call.input.1),
        &call.input.0,
        call.func,
        &candidates,
        &what,
        r,
    )?;
    if let Some((w, span)) = &call.weight {
        check_input(
            sink,
            &at_sub(sink, span),
            w,
            AggFunc::Sum,
            &candidates,
            &what,
            r,
        )?;
    }
    let explicit = match &r.head.unit {
        Some(u) => match Unit::parse(u.get_ref()) {
            Ok(unit) => Some(unit),
            Err(e) => {
                unit_error(sink, file, u, e);
                return None;
            }
        },
        None => None,
    };
    let (ty, unit) = match call.func {
        AggFunc::Count | AggFunc::CountTrue => (ValueType::I64, None),
        AggFunc::Any | AggFunc::All => (ValueType::Bool, None),
        _ => {
            let unit = match (explicit, input_unit) {
                (Some(e), Some(i)) if !e.is_compatible(&i) => {
                    sink.error(
                        &loc(file, r.head.unit.as_ref()?),
                        format!(
                            "roll-up `{}` has unit `{}` but its input `{}` is in `{}` ({} vs {})",
                            r.name,
                            e.symbol(),
                            call.input.0,
                            i.symbol(),
                            e.dimension_name(),
                            i.dimension_name()
                        ),
                    );
                    return None;
                }
                (Some(e), _) => Some(e),
                (None, i) => i,
            };
            (ValueType::F64, unit)
        }
    };
    def.ty = ty;
    def.unit = unit.clone();
    Some(RollupDef {
        prop: slot as u16,
        func: call.func,
        input: call.input.0.clone(),
        weight: call.weight.map(|w| w.0),
        class_filter: call.classes.into_iter().map(|c| c.0).collect(),
        unit,
    })
}

/// Checks a roll-up input against every candidate child class; returns its unit.
fn check_input(
    sink: &mut Sink<'_>,
    at: &Loc,
    name: &str,
    func: AggFunc,
    candidates: &[&ClassInfo],
    what: &str,
    r: &RawRollup,
) -> Option<Option<Unit>> {
    let mut found: Vec<(&str, &PropDef)> = Vec::new();
    for c in candidates {
        if let Some(i) = c.class.prop_index(name) {
            found.push((&c.class.name, &c.class.props[i as usize]));
        }
    }
    if found.is_empty() {
        let mut names: Vec<&str> = candidates
            .iter()
            .flat_map(|c| c.class.props.iter().map(|p| p.name.as_str()))
            .collect();
        names.sort_unstable();
        names.dedup();
        sink.error_hint(
            at,
            format!(
                "roll-up `{}` reads `{name}`, which is not a property of {what}",
                r.name
            ),
            did_you_mean(name, names.iter().copied()),
        );
        return None;
    }
    let needs = func_needs(func);
    for (class, p) in &found {
        let fits = match needs {
            "numeric" => p.ty.is_numeric(),
            "bool" => p.ty == ValueType::Bool,
            _ => true,
        };
        if !fits {
            sink.error(
                at,
                format!(
                    "`{}` needs a {needs} property, but `{name}` is {} in class `{class}`",
                    func.name(),
                    p.ty
                ),
            );
            return None;
        }
    }
    if needs != "numeric" {
        return Some(None);
    }
    let dimensionless = Unit::dimensionless();
    let (first_class, first) = found[0];
    let first_unit = first.unit.as_ref().unwrap_or(&dimensionless);
    for (class, p) in &found[1..] {
        let u = p.unit.as_ref().unwrap_or(&dimensionless);
        if !first_unit.is_compatible(u) {
            sink.error(
                at,
                format!(
                    "roll-up `{}` mixes incompatible units: `{name}` is `{}` in class `{first_class}` but `{}` in class `{class}`",
                    r.name,
                    first_unit.symbol(),
                    u.symbol()
                ),
            );
            return None;
        }
    }
    Some(first.unit.clone())
}
