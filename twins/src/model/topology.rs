//! The topology: `[enterprise]` and `[twin."path"]` sections instantiated
//! into twins, with parameters, alarm overrides, aliases, bindings, sources,
//! settings and suppression conditions compiled against parent classes.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use toml::Spanned;

use super::classes::{ClassInfo, Classes, PropsScope, report_expr, to_value};
use super::diag::{Loc, Sink, SourceSpan, did_you_mean, one_of};
use super::raw::{RawFile, RawTwin, inner_span, loc};
use super::types::{AlarmOverride, Binding, PropKind, Settings, SourceDef, Tier, TwinDef};
use crate::alarm::Priority;
use crate::expr::{self, CompiledExpr, Expected};
use crate::id::TwinPath;
use crate::value::ValueType;

/// Most twins one `count` may create.
pub const MAX_COUNT: i64 = 10_000;

const PRIORITIES: &[&str] = &["low", "medium", "high", "urgent"];

/// What the topology compiles to.
#[derive(Debug, Default)]
pub(crate) struct Topology {
    pub twins: Vec<TwinDef>,
    pub sources: Vec<SourceDef>,
    pub settings: Settings,
}

/// A `{n}` / `{n:03}` placeholder in a template.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Placeholder {
    width: usize,
}

/// Literal text (`Ok`) and placeholders (`Err`) of a template.
type Parts = Vec<Result<String, Placeholder>>;

/// Where a suppression condition set is shared: (parent class, class).
type SuppressionCache = HashMap<(usize, usize), Option<Arc<[Option<CompiledExpr>]>>>;

/// Splits a template into literal text and placeholders; `Err` on a malformed `{n...}`.
fn template(text: &str) -> Result<Parts, (Range<usize>, String)> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(i) = rest.find("{n") {
        lit.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(close) = after.find('}') else {
            let s = offset + i;
            return Err((
                s..text.len(),
                "unclosed `{n` in template: expected `{n}` or `{n:02}`".into(),
            ));
        };
        let spec = &after[..close];
        let width = match spec.strip_prefix(':') {
            None if spec.is_empty() => 0,
            Some(w) if !w.is_empty() && w.chars().all(|c| c.is_ascii_digit()) => {
                w.parse().unwrap_or(0)
            }
            _ => {
                let s = offset + i;
                return Err((
                    s..s + close + 3,
                    format!(
                        "invalid placeholder `{{n{spec}}}`: expected `{{n}}` or a zero-padded width like `{{n:02}}`"
                    ),
                ));
            }
        };
        if !lit.is_empty() {
            parts.push(Ok(std::mem::take(&mut lit)));
        }
        parts.push(Err(Placeholder { width }));
        let consumed = i + 2 + close + 1;
        offset += consumed;
        rest = &rest[consumed..];
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        parts.push(Ok(lit));
    }
    Ok(parts)
}

fn has_placeholder(parts: &[Result<String, Placeholder>]) -> bool {
    parts.iter().any(Result::is_err)
}

fn expand(parts: &[Result<String, Placeholder>], n: Option<i64>) -> String {
    let mut out = String::new();
    for p in parts {
        match (p, n) {
            (Ok(s), _) => out.push_str(s),
            (Err(ph), Some(n)) => out.push_str(&format!("{n:0width$}", width = ph.width)),
            (Err(_), None) => out.push_str("{n}"),
        }
    }
    out
}

/// One `[enterprise]` or `[twin."..."]` section, checked once for all its instances.
#[derive(Debug)]
struct Entry<'r> {
    raw: &'r RawTwin,
    class: Option<usize>,
    /// `None`: a single twin; `Some(ns)`: one twin per number.
    numbers: Option<Vec<i64>>,
    params: Vec<(u16, crate::value::Value)>,
    alarm_overrides: Vec<AlarmOverride>,
    bindings: Vec<(u16, usize, Parts, Arc<SourceSpan>)>,
    aliases: Vec<(Loc, Parts)>,
}

#[derive(Debug)]
struct Inst {
    entry: usize,
    path: TwinPath,
    n: Option<i64>,
    parent: Option<usize>,
    children: Vec<usize>,
}

pub(crate) fn build(sink: &mut Sink<'_>, files: &[RawFile], classes: &Classes) -> Topology {
    let mut topo = Topology::default();
    // The topology file: the one with `[enterprise]`.
    let roots: Vec<(usize, &RawTwin)> = files
        .iter()
        .enumerate()
        .filter_map(|(i, f)| f.enterprise.as_ref().map(|e| (i, e)))
        .collect();
    for (_, extra) in roots.iter().skip(1) {
        let hint = format!(
            "the topology is rooted at {}",
            sink.describe(&roots[0].1.at)
        );
        sink.error_hint(
            &extra.at,
            "second `[enterprise]`: expected exactly one topology root in a model",
            Some(hint),
        );
    }
    let topo_file = roots.first().map(|(i, _)| *i);
    for (i, f) in files.iter().enumerate() {
        if Some(i) == topo_file {
            continue;
        }
        let misplaced = [
            f.model.as_ref().map(|m| ("model", m.0.clone())),
            f.settings.as_ref().map(|s| ("settings", s.0.clone())),
            f.sources.first().map(|s| ("source", s.at.clone())),
        ];
        for (what, at) in misplaced.into_iter().flatten() {
            let hint = match roots.first() {
                Some((_, r)) => format!(
                    "the topology file is the one with `[enterprise]`, at {}",
                    sink.describe(&r.at)
                ),
                None => "this model has no `[enterprise]`; add one to this file".to_string(),
            };
            sink.error_hint(
                &at,
                format!("`[{what}]` belongs in the topology file, next to `[enterprise]`"),
                Some(hint),
            );
        }
    }
    let Some(topo_file) = topo_file else {
        // A class library without a topology: valid, with no twins.
        if let Some(t) = files.iter().flat_map(|f| &f.twins).next() {
            sink.error(
                &t.at,
                "twin declared but the model has no `[enterprise]`: expected a topology root `[enterprise]` with `name` and `class`",
            );
        }
        return topo;
    };
    let tf = &files[topo_file];
    if let Some((_, m)) = &tf.model {
        for u in m.uses.iter().flatten() {
            if u.get_ref() != "library" {
                sink.error_hint(
                    &loc(topo_file, u),
                    format!("unknown model library `{}`: expected `library` (the shipped class library)", u.get_ref()),
                    did_you_mean(u.get_ref(), ["library"]),
                );
            }
        }
    }
    if let Some((_, s)) = &tf.settings {
        topo.settings = s.clone();
    }
    let mut source_index = HashMap::new();
    for s in &tf.sources {
        source_index.insert(s.name.clone(), topo.sources.len());
        topo.sources.push(SourceDef {
            name: s.name.clone(),
            kind: s.kind.get_ref().clone(),
            config: s.config.clone(),
            at: sink.span(&s.at),
            kind_at: sink.span(&loc(s.at.file, &s.kind)),
            keys: s
                .keys
                .iter()
                .map(|(k, at)| (k.clone(), sink.span(at)))
                .collect(),
        });
    }
    let source_names: Vec<&str> = tf.sources.iter().map(|s| s.name.as_str()).collect();

    // Entries: the root first, then every twin section in file order.
    let root = roots[0].1;
    let mut raws: Vec<&RawTwin> = vec![root];
    raws.extend(files.iter().flat_map(|f| &f.twins));
    let mut entries: Vec<Entry<'_>> = Vec::with_capacity(raws.len());
    for (i, raw) in raws.iter().enumerate() {
        entries.push(check_entry(
            sink,
            raw,
            i == 0,
            classes,
            &source_index,
            &source_names,
        ));
    }

    // Instances and paths.
    let root_name = match &root.head.name {
        Some(n) => n.get_ref().clone(),
        None => {
            sink.error(&root.at, "missing field `name` in `[enterprise]`: expected the enterprise's path segment, like `name = \"acme\"`");
            return topo;
        }
    };
    let root_path = match TwinPath::parse(&root_name) {
        Ok(p) if p.depth() == 1 => p,
        Ok(_) => {
            let at = root
                .head
                .name
                .as_ref()
                .map_or(root.at.clone(), |n| loc(root.file, n));
            sink.error(
                &at,
                format!(
                    "invalid enterprise name `{root_name}`: expected one path segment without `/`"
                ),
            );
            return topo;
        }
        Err(e) => {
            let at = root
                .head
                .name
                .as_ref()
                .map_or(root.at.clone(), |n| loc(root.file, n));
            sink.error(&at, format!("invalid enterprise name: {e}"));
            return topo;
        }
    };
    let mut insts: Vec<Inst> = vec![Inst {
        entry: 0,
        path: root_path.clone(),
        n: None,
        parent: None,
        children: Vec::new(),
    }];
    let mut by_path: HashMap<String, usize> = HashMap::new();
    by_path.insert(root_path.to_string(), 0);
    for (ei, e) in entries.iter().enumerate().skip(1) {
        let raw = e.raw;
        let key_parts = match template(&raw.key) {
            Ok(p) => p,
            Err((span, msg)) => {
                let at = Loc::new(
                    raw.file,
                    inner_span(sink.text(raw.file), &raw.at.span, &span),
                );
                sink.error(&at, msg);
                continue;
            }
        };
        let (parent_part, _) = raw.key.rsplit_once('/').unwrap_or(("", &raw.key));
        if parent_part.contains("{n") {
            sink.error(
                &raw.at,
                format!(
                    "`{{n}}` may only appear in the last segment of a twin path, found `{}`",
                    raw.key
                ),
            );
            continue;
        }
        match (&e.numbers, has_placeholder(&key_parts)) {
            (Some(_), false) => {
                let count = raw
                    .head
                    .count
                    .as_ref()
                    .map_or(raw.at.clone(), |c| loc(raw.file, c));
                sink.error_hint(
                    &count,
                    format!(
                        "`count` needs a `{{n}}` in the twin path, found `{}`",
                        raw.key
                    ),
                    Some(format!("for example `[twin.\"{}-{{n:02}}\"]`", raw.key)),
                );
                continue;
            }
            (None, true) => {
                sink.error_hint(
                    &raw.at,
                    format!("twin path `{}` has `{{n}}` but no `count`", raw.key),
                    Some(
                        "add `count = 12` to create twins numbered from `start` (default 1)".into(),
                    ),
                );
                continue;
            }
            _ => {}
        }
        let numbers: Vec<Option<i64>> = match &e.numbers {
            Some(ns) => ns.iter().copied().map(Some).collect(),
            None => vec![None],
        };
        for n in numbers {
            let rel = expand(&key_parts, n);
            let full = format!("{root_name}/{rel}");
            let path = match TwinPath::parse(&full) {
                Ok(p) => p,
                Err(err) => {
                    sink.error(&raw.at, format!("invalid twin path: {err}"));
                    break;
                }
            };
            if let Some(&prev) = by_path.get(path.as_str()) {
                let first = &entries[insts[prev].entry].raw.at;
                let hint = format!("first declared at {}", sink.describe(first));
                sink.error_hint(&raw.at, format!("duplicate twin path `{path}`"), Some(hint));
                break;
            }
            by_path.insert(path.to_string(), insts.len());
            insts.push(Inst {
                entry: ei,
                path,
                n,
                parent: None,
                children: Vec::new(),
            });
        }
    }
    // Parents, and reported-once missing parents.
    let mut missing_reported = std::collections::HashSet::new();
    for i in 1..insts.len() {
        let parent_path = insts[i]
            .path
            .parent()
            .map(|p| p.to_string())
            .unwrap_or_default();
        match by_path.get(&parent_path) {
            Some(&p) => {
                insts[i].parent = Some(p);
                insts[p].children.push(i);
            }
            None => {
                if missing_reported.insert(insts[i].entry) {
                    let rel = parent_path
                        .strip_prefix(&format!("{root_name}/"))
                        .unwrap_or(&parent_path);
                    let raw = entries[insts[i].entry].raw;
                    sink.error_hint(
                        &raw.at,
                        format!(
                            "parent `{parent_path}` of twin `{}` is not declared",
                            insts[i].path
                        ),
                        Some(format!("declare it with `[twin.\"{rel}\"]` and a `class`")),
                    );
                }
            }
        }
    }
    // Tiers: each twin's class must sit one tier below its parent's.
    let mut tier_reported = std::collections::HashSet::new();
    for i in 0..insts.len() {
        let e = &entries[insts[i].entry];
        let Some(ci) = e.class else { continue };
        let class = &classes.list[ci].class;
        let at = e
            .raw
            .head
            .class
            .as_ref()
            .map_or(e.raw.at.clone(), |c| loc(e.raw.file, c));
        let Some(p) = insts[i].parent else {
            if i == 0 && class.tier != Tier::Enterprise {
                sink.error(
                    &at,
                    format!(
                        "the enterprise `{}` has class `{}` of tier {}: expected an enterprise class",
                        insts[i].path,
                        class.name,
                        class.tier.name()
                    ),
                );
            }
            continue;
        };
        let Some(pci) = entries[insts[p].entry].class else {
            continue;
        };
        let parent_class = &classes.list[pci].class;
        if !tier_reported.insert(insts[i].entry) {
            continue;
        }
        if parent_class.tier == Tier::Device {
            sink.error(
                &e.raw.at,
                format!(
                    "`{}` is a device (class `{}`) and cannot have children: expected `{}` under a line",
                    insts[p].path,
                    parent_class.name,
                    insts[i].path.name()
                ),
            );
        } else if parent_class.tier.below() != Some(class.tier) {
            let expected = parent_class.tier.below().map_or("nothing", Tier::name);
            sink.error(
                &at,
                format!(
                    "tier order violated: `{}` has {} class `{}` but sits directly under {} `{}`: expected a {expected} class",
                    insts[i].path,
                    class.tier.name(),
                    class.name,
                    parent_class.tier.name(),
                    insts[p].path
                ),
            );
        }
    }
    // Aliases: unique across the model.
    let mut alias_owner: HashMap<String, (TwinPath, Loc)> = HashMap::new();
    let mut aliases_of: Vec<Vec<String>> = vec![Vec::new(); insts.len()];
    let mut alias_reported = std::collections::HashSet::new();
    for (i, inst) in insts.iter().enumerate() {
        for (ai, (at, parts)) in entries[inst.entry].aliases.iter().enumerate() {
            let alias = expand(parts, inst.n);
            if let Some((owner, first)) = alias_owner.get(&alias) {
                if alias_reported.insert((inst.entry, ai)) {
                    let hint = if owner == &inst.path || !has_placeholder(parts) && inst.n.is_some()
                    {
                        "use `{n}` in the alias so each numbered twin gets its own".to_string()
                    } else {
                        format!("first used at {}", sink.describe(first))
                    };
                    sink.error_hint(
                        at,
                        format!(
                            "alias `{alias}` is used twice: by `{owner}` and by `{}`",
                            inst.path
                        ),
                        Some(hint),
                    );
                }
                continue;
            }
            alias_owner.insert(alias.clone(), (inst.path.clone(), at.clone()));
            aliases_of[i].push(alias);
        }
    }

    // Suppression conditions, compiled once per (parent class, class) pair.
    let mut suppression: SuppressionCache = HashMap::new();
    for inst in &insts {
        let (Some(ci), Some(p)) = (entries[inst.entry].class, inst.parent) else {
            continue;
        };
        let Some(pci) = entries[insts[p].entry].class else {
            continue;
        };
        suppression
            .entry((pci, ci))
            .or_insert_with(|| compile_suppression(sink, &classes.list[pci], &classes.list[ci]));
    }

    // Pre-order: parents before children, children in declaration order.
    let mut order = Vec::with_capacity(insts.len());
    let mut stack = vec![0usize];
    while let Some(i) = stack.pop() {
        order.push(i);
        stack.extend(insts[i].children.iter().rev());
    }
    let mut position = vec![usize::MAX; insts.len()];
    for (pos, &i) in order.iter().enumerate() {
        position[i] = pos;
    }
    for &i in &order {
        let inst = &insts[i];
        let e = &entries[inst.entry];
        let class = e.class.unwrap_or(0);
        let parent_class = inst.parent.and_then(|p| entries[insts[p].entry].class);
        topo.twins.push(TwinDef {
            path: inst.path.clone(),
            class,
            parent: inst.parent.map(|p| position[p]),
            children: inst.children.iter().map(|&c| position[c]).collect(),
            params: e.params.clone(),
            alarm_overrides: e.alarm_overrides.clone(),
            aliases: aliases_of[i].clone(),
            bindings: e
                .bindings
                .iter()
                .map(|(prop, source, addr, at)| Binding {
                    prop: *prop,
                    source: *source,
                    address: expand(addr, inst.n),
                    at: Some(at.clone()),
                })
                .collect(),
            suppression: parent_class
                .and_then(|pc| suppression.get(&(pc, class)).cloned().flatten()),
        });
    }
    topo
}

fn compile_suppression(
    sink: &mut Sink<'_>,
    parent: &ClassInfo,
    class: &ClassInfo,
) -> Option<Arc<[Option<CompiledExpr>]>> {
    if class.suppress.iter().all(Option::is_none) {
        return None;
    }
    let scope = PropsScope(&parent.class.props);
    let mut out = Vec::with_capacity(class.suppress.len());
    for s in &class.suppress {
        let Some((file, text)) = s else {
            out.push(None);
            continue;
        };
        let expected = Expected {
            ty: Some(ValueType::Bool),
            unit: None,
        };
        match expr::compile(text.get_ref(), &scope, expected) {
            Ok(c) => out.push(Some(c)),
            Err(errors) => {
                let context = format!(
                    "(in `suppress_when_parent`, evaluated against parent class `{}`)",
                    parent.class.name
                );
                report_expr(sink, *file, text, errors, Some(&context));
                out.push(None);
            }
        }
    }
    Some(out.into())
}

fn check_entry<'r>(
    sink: &mut Sink<'_>,
    raw: &'r RawTwin,
    is_root: bool,
    classes: &Classes,
    sources: &HashMap<String, usize>,
    source_names: &[&str],
) -> Entry<'r> {
    let file = raw.file;
    let h = &raw.head;
    let mut e = Entry {
        raw,
        class: None,
        numbers: None,
        params: Vec::new(),
        alarm_overrides: Vec::new(),
        bindings: Vec::new(),
        aliases: Vec::new(),
    };
    if is_root {
        for (field, v) in [("count", h.count.as_ref()), ("start", h.start.as_ref())] {
            if let Some(v) = v {
                sink.error(&loc(file, v), format!("`{field}` is not allowed on `[enterprise]`: there is exactly one enterprise"));
            }
        }
    } else {
        if let Some(n) = &h.name {
            sink.error(
                &loc(file, n),
                "`name` is only for `[enterprise]`: a twin's name is the last segment of its `[twin.\"...\"]` path",
            );
        }
        if let Some(s) = &h.start
            && h.count.is_none()
        {
            sink.error(
                &loc(file, s),
                "`start` needs `count`: expected `count = N` next to it",
            );
        }
        if let Some(c) = &h.count {
            let start = h.start.as_ref().map_or(1, |s| *s.get_ref());
            if !(1..=MAX_COUNT).contains(c.get_ref()) {
                sink.error(
                    &loc(file, c),
                    format!(
                        "expected a `count` between 1 and {MAX_COUNT}, found {}",
                        c.get_ref()
                    ),
                );
            } else if start < 0 {
                let at = h.start.as_ref().map_or(raw.at.clone(), |s| loc(file, s));
                sink.error(
                    &at,
                    format!("expected a `start` of 0 or more, found {start}"),
                );
            } else {
                e.numbers = Some((start..start + c.get_ref()).collect());
            }
        }
    }
    let numbered = e.numbers.is_some();
    for a in h.aliases.iter().flatten() {
        match template(a.get_ref()) {
            Ok(parts) => {
                if has_placeholder(&parts) && !numbered {
                    sink.error(
                        &loc(file, a),
                        format!(
                            "alias `{}` has `{{n}}` but the twin has no `count`",
                            a.get_ref()
                        ),
                    );
                } else if a.get_ref().trim().is_empty() {
                    sink.error(
                        &loc(file, a),
                        "empty alias: expected an external identifier",
                    );
                } else {
                    e.aliases.push((loc(file, a), parts));
                }
            }
            Err((span, msg)) => {
                let at = Loc::new(file, inner_span(sink.text(file), &a.span(), &span));
                sink.error(&at, msg);
            }
        }
    }
    // Class.
    let Some(cname) = &h.class else {
        let what = if is_root {
            "`[enterprise]`".to_string()
        } else {
            format!("twin `{}`", raw.key)
        };
        sink.error(
            &raw.at,
            format!("missing field `class` in {what}: expected the name of a class"),
        );
        return e;
    };
    let ci = match classes.by_name.get(cname.get_ref()) {
        Some(&ci) => ci,
        None => {
            if !classes.broken.contains(cname.get_ref()) {
                let names = classes.by_name.keys().map(String::as_str);
                sink.error_hint(
                    &loc(file, cname),
                    format!("unknown class `{}`", cname.get_ref()),
                    did_you_mean(cname.get_ref(), names),
                );
            }
            return e;
        }
    };
    e.class = Some(ci);
    let info = &classes.list[ci];
    let class = &info.class;
    // Parameters.
    for p in &raw.params {
        let Some(slot) = class.prop_index(&p.name) else {
            let params: Vec<&str> = class
                .props
                .iter()
                .filter(|d| matches!(d.kind, PropKind::Param { .. }))
                .map(|d| d.name.as_str())
                .collect();
            let all = class.props.iter().map(|d| d.name.as_str());
            let hint = did_you_mean(&p.name, params.iter().copied())
                .or_else(|| did_you_mean(&p.name, all));
            let expected = if params.is_empty() {
                "it has no parameters".to_string()
            } else {
                format!("expected {}", one_of(&params))
            };
            sink.error_hint(
                &p.at,
                format!(
                    "unknown parameter `{}` of class `{}`: {expected}",
                    p.name, class.name
                ),
                hint,
            );
            continue;
        };
        let def = &class.props[slot as usize];
        if !matches!(def.kind, PropKind::Param { .. }) {
            let kind = match def.kind {
                PropKind::Derived(_) => "a derived property",
                PropKind::Rollup(_) => "a roll-up",
                _ => "a sourced property",
            };
            sink.error_hint(
                &p.at,
                format!(
                    "`{}` of class `{}` is {kind}, not a parameter",
                    p.name, class.name
                ),
                Some("only properties declared with a `default` can be set in `params`".into()),
            );
            continue;
        }
        match to_value(def, p.value.get_ref()) {
            Ok(v) => e.params.push((slot, v)),
            Err((m, hint)) => sink.error_hint(
                &loc(file, &p.value),
                format!("invalid parameter: {m}"),
                hint,
            ),
        }
    }
    // Alarm overrides.
    for a in &raw.alarms {
        let Some(ai) = info.alarm_names.iter().position(|n| *n == a.name) else {
            let names: Vec<&str> = info.alarm_names.iter().map(String::as_str).collect();
            let expected = if names.is_empty() {
                "it has no alarms".to_string()
            } else {
                format!("expected {}", one_of(&names))
            };
            sink.error_hint(
                &a.at,
                format!(
                    "unknown alarm `{}` of class `{}`: {expected}",
                    a.name, class.name
                ),
                did_you_mean(&a.name, names.iter().copied()),
            );
            continue;
        };
        let mut o = AlarmOverride {
            alarm: ai as u16,
            enabled: a.head.enabled,
            priority: None,
            deadband: None,
        };
        if let Some(p) = &a.head.priority {
            o.priority = Priority::ALL.into_iter().find(|x| x.name() == p.get_ref());
            if o.priority.is_none() {
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
        }
        if let Some(d) = &a.head.deadband {
            if d.get_ref().is_finite() && *d.get_ref() >= 0.0 {
                o.deadband = Some(*d.get_ref());
            } else {
                sink.error(
                    &loc(file, d),
                    format!("expected a deadband of 0 or more, found {}", d.get_ref()),
                );
            }
        }
        e.alarm_overrides.push(o);
    }
    // Bindings.
    let default_source = h
        .source
        .as_ref()
        .and_then(|s| lookup_source(sink, file, s, sources, source_names));
    for b in &raw.bindings {
        let slot = match class.prop_index(&b.prop) {
            Some(slot) => slot,
            None => {
                let sourced = class
                    .props
                    .iter()
                    .filter(|d| matches!(d.kind, PropKind::Sourced))
                    .map(|d| d.name.as_str());
                sink.error_hint(
                    &b.at,
                    format!(
                        "binding of unknown property `{}` of class `{}`",
                        b.prop, class.name
                    ),
                    did_you_mean(&b.prop, sourced),
                );
                continue;
            }
        };
        let def = &class.props[slot as usize];
        if !matches!(def.kind, PropKind::Sourced) {
            let kind = match def.kind {
                PropKind::Derived(_) => "derived",
                PropKind::Rollup(_) => "a roll-up",
                _ => "a parameter",
            };
            sink.error(
                &b.at,
                format!(
                    "`{}` of class `{}` is {kind}: only sourced properties can be bound to a point",
                    b.prop, class.name
                ),
            );
            continue;
        }
        let source = match &b.source {
            Some(s) => lookup_source(sink, file, s, sources, source_names),
            None if h.source.is_some() => default_source,
            None => {
                sink.error_hint(
                    &b.at,
                    format!("binding of `{}` names no source", b.prop),
                    Some("set `source = \"...\"` on the twin, or write `{ source = \"...\", address = \"...\" }`".into()),
                );
                None
            }
        };
        let parts = match template(b.address.get_ref()) {
            Ok(parts) if has_placeholder(&parts) && !numbered => {
                sink.error(
                    &loc(file, &b.address),
                    "address has `{n}` but the twin has no `count`",
                );
                continue;
            }
            Ok(parts) => parts,
            Err((span, msg)) => {
                let at = Loc::new(file, inner_span(sink.text(file), &b.address.span(), &span));
                sink.error(&at, msg);
                continue;
            }
        };
        if b.address.get_ref().trim().is_empty() {
            sink.error(
                &loc(file, &b.address),
                format!(
                    "empty address for `{}`: expected a point address of the source",
                    b.prop
                ),
            );
            continue;
        }
        if let Some(source) = source {
            let at = Arc::new(sink.span(&loc(file, &b.address)));
            e.bindings.push((slot, source, parts, at));
        }
    }
    e
}

fn lookup_source(
    sink: &mut Sink<'_>,
    file: usize,
    s: &Spanned<String>,
    sources: &HashMap<String, usize>,
    names: &[&str],
) -> Option<usize> {
    let found = sources.get(s.get_ref()).copied();
    if found.is_none() {
        let expected = if names.is_empty() {
            "the topology declares no `[source.NAME]`".to_string()
        } else {
            format!("expected {}", one_of(names))
        };
        sink.error_hint(
            &loc(file, s),
            format!("unknown source `{}`: {expected}", s.get_ref()),
            did_you_mean(s.get_ref(), names.iter().copied()),
        );
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_templates() {
        let p = template("p-{n:03}").unwrap();
        assert_eq!(expand(&p, Some(7)), "p-007");
        let p = template("TAG-{n}-x").unwrap();
        assert_eq!(expand(&p, Some(12)), "TAG-12-x");
        assert!(!has_placeholder(&template("plain").unwrap()));
        assert!(template("p-{n:x}").is_err());
        assert!(template("p-{n").is_err());
    }
}
