//! Path globs (`acme/east/**`, `acme/*/baytown`, `acme/east/baytown/p-*`) and
//! property predicates (`flow > 100`, `quality(flow) = bad`) of the API's
//! filters.

use std::fmt;

use twins::TwinPath;
use twins::actor::PropView;
use twins::model::Class;
use twins::quality::QualityClass;
use twins::value::Value;

/// A glob over twin paths: segments separated by `/`; `**` matches any
/// number of segments (also none), `*` within a segment any characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
    segments: Vec<String>,
}

impl Glob {
    pub fn parse(text: &str) -> Result<Glob, String> {
        let text = text.trim().trim_end_matches('/');
        if text.is_empty() {
            return Err("an empty path glob matches nothing".into());
        }
        let segments: Vec<String> = text.split('/').map(str::to_string).collect();
        for s in &segments {
            if s.is_empty() {
                return Err(format!("path glob `{text}` has an empty segment (`//`)"));
            }
            if s.contains("**") && s != "**" {
                return Err(format!(
                    "path glob `{text}`: `**` must be a whole segment, as in `acme/east/**`"
                ));
            }
            let literal = s.replace('*', "");
            if !literal
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            {
                return Err(format!(
                    "path glob `{text}`: segment `{s}` may hold only letters, digits, `_`, `.`, `-` and `*`"
                ));
            }
        }
        Ok(Glob {
            text: text.to_string(),
            segments,
        })
    }

    /// The glob of a whole subtree: `path/**`.
    pub fn subtree(path: &TwinPath) -> Glob {
        Glob {
            text: format!("{path}/**"),
            segments: path
                .segments()
                .map(str::to_string)
                .chain(["**".to_string()])
                .collect(),
        }
    }

    pub fn matches(&self, path: &str) -> bool {
        let segs: Vec<&str> = path.split('/').collect();
        match_segments(&self.segments, &segs)
    }

    /// The literal segments before the first wildcard: every match lies
    /// within this path (`None` when the first segment is a wildcard).
    pub fn literal_prefix(&self) -> Option<TwinPath> {
        let lit: Vec<&str> = self
            .segments
            .iter()
            .take_while(|s| !s.contains('*'))
            .map(String::as_str)
            .collect();
        if lit.is_empty() {
            None
        } else {
            TwinPath::parse(&lit.join("/")).ok()
        }
    }

    /// Whether every path this glob can match lies within `scope`.
    pub fn within(&self, scope: &TwinPath) -> bool {
        self.literal_prefix().is_some_and(|p| p.is_within(scope))
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn match_segments(glob: &[String], path: &[&str]) -> bool {
    match glob.split_first() {
        None => path.is_empty(),
        Some((g, rest)) if g == "**" => (0..=path.len()).any(|i| match_segments(rest, &path[i..])),
        Some((g, rest)) => match path.split_first() {
            Some((p, prest)) => match_segment(g, p) && match_segments(rest, prest),
            None => false,
        },
    }
}

/// `*` within a segment matches any run of characters.
fn match_segment(glob: &str, seg: &str) -> bool {
    let parts: Vec<&str> = glob.split('*').collect();
    if parts.len() == 1 {
        return glob == seg;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !seg.starts_with(first) || seg.len() < first.len() + last.len() || !seg.ends_with(last) {
        return false;
    }
    let mut rest = &seg[first.len()..seg.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(at) => rest = &rest[at + mid.len()..],
            None => return false,
        }
    }
    true
}

/// A comparison in a property predicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// What a predicate compares against.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Number(f64),
    Bool(bool),
    /// An enum state's name or a string.
    Word(String),
    Quality(QualityClass),
}

/// `PROPERTY OP VALUE` or `quality(PROPERTY) OP good|uncertain|bad`.
#[derive(Debug, Clone, PartialEq)]
pub struct Predicate {
    pub prop: String,
    /// Compares the property's quality rather than its value.
    pub on_quality: bool,
    pub op: Op,
    pub operand: Operand,
}

impl Predicate {
    pub fn parse(text: &str) -> Result<Predicate, String> {
        let t = text.trim();
        let ops = [
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("!=", Op::Ne),
            ("==", Op::Eq),
            ("=", Op::Eq),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        let Some((at, sym, op)) = ops
            .iter()
            .filter_map(|(sym, op)| t.find(sym).map(|at| (at, *sym, *op)))
            .min_by_key(|(at, sym, _)| (*at, std::cmp::Reverse(sym.len())))
        else {
            return Err(format!(
                "predicate `{t}` has no comparison: write e.g. `flow > 100` or `quality(flow) = bad`"
            ));
        };
        let (lhs, rhs) = (t[..at].trim(), t[at + sym.len()..].trim());
        let (prop, on_quality) = match lhs
            .strip_prefix("quality(")
            .and_then(|s| s.strip_suffix(')'))
        {
            Some(p) => (p.trim(), true),
            None => (lhs, false),
        };
        if prop.is_empty() || !prop.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "predicate `{t}`: `{lhs}` is not a property name (letters, digits and `_`)"
            ));
        }
        if rhs.is_empty() {
            return Err(format!("predicate `{t}` has nothing to compare with"));
        }
        let operand = if on_quality {
            let q = match rhs {
                "good" => QualityClass::Good,
                "uncertain" => QualityClass::Uncertain,
                "bad" => QualityClass::Bad,
                _ => {
                    return Err(format!(
                        "predicate `{t}`: a quality is `good`, `uncertain` or `bad`, not `{rhs}`"
                    ));
                }
            };
            if !matches!(op, Op::Eq | Op::Ne) {
                return Err(format!(
                    "predicate `{t}`: compare a quality with `=` or `!=`"
                ));
            }
            Operand::Quality(q)
        } else if let Ok(n) = rhs.parse::<f64>() {
            Operand::Number(n)
        } else if rhs == "true" || rhs == "false" {
            Operand::Bool(rhs == "true")
        } else {
            Operand::Word(rhs.trim_matches(|c| c == '"' || c == '\'').to_string())
        };
        Ok(Predicate {
            prop: prop.to_string(),
            on_quality,
            op,
            operand,
        })
    }

    /// Whether a twin of `class` whose properties are `props` satisfies
    /// this. A twin without the property, or without a value, does not.
    pub fn eval(&self, class: &Class, props: &[PropView]) -> bool {
        let Some(i) = class.prop_index(&self.prop) else {
            return false;
        };
        let Some(slot) = props.get(i as usize) else {
            return false;
        };
        let ord = match (&self.operand, &slot.value) {
            (Operand::Quality(q), _) => slot.quality.class().cmp(q),
            (_, Value::Null) => return false,
            (Operand::Number(n), v) => match v.as_f64() {
                Some(x) => match x.partial_cmp(n) {
                    Some(o) => o,
                    None => return false,
                },
                None => return false,
            },
            (Operand::Bool(b), Value::Bool(x)) => x.cmp(b),
            (Operand::Word(w), Value::Enum(k)) => {
                let states = &class.props[i as usize].states;
                match states.iter().position(|s| s == w) {
                    Some(want) => (*k as usize).cmp(&want),
                    None => return false,
                }
            }
            (Operand::Word(w), Value::String(s)) => (**s).cmp(w.as_str()),
            _ => return false,
        };
        use std::cmp::Ordering::*;
        match self.op {
            Op::Eq => ord == Equal,
            Op::Ne => ord != Equal,
            Op::Lt => ord == Less,
            Op::Le => ord != Greater,
            Op::Gt => ord == Greater,
            Op::Ge => ord != Less,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_segments_and_subtrees() {
        let g = Glob::parse("acme/east/**").unwrap();
        assert!(g.matches("acme/east"));
        assert!(g.matches("acme/east/baytown/crude-1/p-101"));
        assert!(!g.matches("acme/eastern"));
        assert!(!g.matches("acme/west/x"));
        let g = Glob::parse("acme/*/baytown").unwrap();
        assert!(g.matches("acme/east/baytown"));
        assert!(!g.matches("acme/east/baytown/l1"));
        let g = Glob::parse("acme/**/p-1*").unwrap();
        assert!(g.matches("acme/east/baytown/crude-1/p-101"));
        assert!(!g.matches("acme/east/baytown/crude-1/t-101"));
        assert!(Glob::parse("acme/e**").is_err());
        assert!(Glob::parse("acme//x").is_err());
        assert!(Glob::parse("acme/<x>").is_err());
    }

    #[test]
    fn a_glob_is_within_a_scope_only_if_its_literal_prefix_is() {
        let east = TwinPath::parse("acme/east").unwrap();
        assert!(Glob::parse("acme/east/**").unwrap().within(&east));
        assert!(Glob::parse("acme/east/*/l1").unwrap().within(&east));
        assert!(!Glob::parse("acme/**").unwrap().within(&east));
        assert!(!Glob::parse("acme/*/baytown").unwrap().within(&east));
        assert!(!Glob::parse("**").unwrap().within(&east));
        assert!(Glob::subtree(&east).within(&east));
    }

    #[test]
    fn predicates_parse_with_clear_errors() {
        let p = Predicate::parse("flow >= 100.5").unwrap();
        assert_eq!(
            (p.prop.as_str(), p.op, p.operand.clone()),
            ("flow", Op::Ge, Operand::Number(100.5))
        );
        let p = Predicate::parse("quality(flow) = bad").unwrap();
        assert!(p.on_quality);
        assert_eq!(p.operand, Operand::Quality(QualityClass::Bad));
        let p = Predicate::parse("running = true").unwrap();
        assert_eq!(p.operand, Operand::Bool(true));
        assert!(
            Predicate::parse("flow")
                .unwrap_err()
                .contains("no comparison")
        );
        assert!(
            Predicate::parse("quality(flow) = great")
                .unwrap_err()
                .contains("`good`, `uncertain` or `bad`")
        );
        assert!(Predicate::parse("fl ow > 1").is_err());
    }
}
