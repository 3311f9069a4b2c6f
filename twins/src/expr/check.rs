//! Name resolution, type and unit checking: syntax tree to compiled tree.
//!
//! Every error found is collected; a sub-expression in error becomes
//! [`Ty::Err`] so that one mistake is reported once, not at every level above.

use std::ops::Range;
use std::sync::Arc;

use super::eval::{Bool, EnumSrc, Func1, Num, StrSrc, Top};
use super::parser::{Ast, BinOp, Expr};
use super::{CmpOp, Expected, ExprError, Scope};
use crate::units::{Unit, closest_match};
use crate::value::ValueType;

/// Built-in functions, for hints.
pub(crate) const FUNCTIONS: &[&str] = &[
    "abs", "min", "max", "clamp", "sqrt", "exp", "ln", "log10", "round", "floor", "ceil", "if",
];

/// Relative tolerance under which a conversion scale counts as 1.
const SCALE_EPS: f64 = 1e-12;

/// What is known of the unit of a numeric sub-expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum UnitInfo {
    /// No unit: a literal (`literal`), a property declared without unit, or
    /// a function result that cannot carry one. Takes the unit of what it is
    /// added to or compared with.
    Free { literal: bool },
    /// A unit computed from the operands as written; `empirical` when a
    /// literal factor took part in a product or quotient.
    Known { unit: Unit, empirical: bool },
}

#[derive(Debug, Clone)]
pub(crate) enum Ty<'s> {
    Num { n: Num, int: bool, u: UnitInfo },
    Bool(Bool),
    Enum { slot: u16, states: &'s [String] },
    Str(u16),
    StrLit(String),
    Err,
}

#[derive(Debug, Clone)]
pub(crate) struct T<'s> {
    pub ty: Ty<'s>,
    pub span: Range<usize>,
}

/// A numeric operand on its way through unit unification.
pub(crate) struct NumT {
    pub n: Num,
    pub int: bool,
    pub u: UnitInfo,
    pub span: Range<usize>,
}

/// Which operation unifies units, for the rules and the messages.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Join {
    Add,
    Sub,
    Rem,
    Cmp,
    Args(&'static str),
    Branches,
}

pub(crate) struct Checker<'s> {
    src: &'s str,
    scope: &'s dyn Scope,
    pub errors: Vec<ExprError>,
}

/// `x * scale + offset`, folded into constants and earlier conversions.
pub(crate) fn lin(n: Num, scale: f64, offset: f64) -> Num {
    if scale == 1.0 && offset == 0.0 {
        return n;
    }
    match n {
        Num::Const(v) => Num::Const(v * scale + offset),
        Num::Lin(inner, s2, o2) => lin(*inner, s2 * scale, o2 * scale + offset),
        n => Num::Lin(Box::new(n), scale, offset),
    }
}

fn is_one(s: f64) -> bool {
    (s - 1.0).abs() <= SCALE_EPS
}

fn type_name(ty: &Ty<'_>) -> &'static str {
    match ty {
        Ty::Num { int: true, .. } => "integer",
        Ty::Num { .. } => "number",
        Ty::Bool(_) => "bool",
        Ty::Enum { .. } => "enum",
        Ty::Str(_) => "string",
        Ty::StrLit(_) => "string literal",
        Ty::Err => "error",
    }
}

impl<'s> Checker<'s> {
    pub(crate) fn new(src: &'s str, scope: &'s dyn Scope) -> Self {
        Self {
            src,
            scope,
            errors: Vec::new(),
        }
    }

    fn text(&self, span: &Range<usize>) -> &'s str {
        self.src.get(span.clone()).unwrap_or("")
    }

    fn err(&mut self, span: Range<usize>, message: String, hint: Option<String>) {
        self.errors.push(ExprError {
            span,
            message,
            hint,
        });
    }

    /// "`flow` [m3/h, volumetric flow]", for unit messages.
    fn describe(&self, u: &UnitInfo, span: &Range<usize>) -> String {
        let text = self.text(span);
        match u {
            UnitInfo::Free { .. } => format!("`{text}` [no unit]"),
            UnitInfo::Known { unit, empirical } => format!(
                "`{text}` [{}, {}{}]",
                unit.symbol(),
                unit.dimension_name(),
                if *empirical {
                    ", with a literal factor"
                } else {
                    ""
                }
            ),
        }
    }

    fn num(&mut self, t: T<'s>, ctx: &str) -> Option<NumT> {
        match t.ty {
            Ty::Num { n, int, u } => Some(NumT {
                n,
                int,
                u,
                span: t.span,
            }),
            Ty::Err => None,
            ref other => {
                let hint = matches!(other, Ty::Bool(_))
                    .then(|| "bools are not numbers; write `if(cond, 1, 0)`".to_string());
                let text = self.text(&t.span);
                self.err(
                    t.span.clone(),
                    format!(
                        "expected a number{ctx}, found {} `{text}`",
                        type_name(other)
                    ),
                    hint,
                );
                None
            }
        }
    }

    fn boolean(&mut self, t: T<'s>, ctx: &str) -> Option<Bool> {
        match t.ty {
            Ty::Bool(b) => Some(b),
            Ty::Err => None,
            ref other => {
                let text = self.text(&t.span);
                let hint = matches!(other, Ty::Num { .. })
                    .then(|| format!("compare it, for example `{text} > 0`"));
                self.err(
                    t.span.clone(),
                    format!("expected a bool{ctx}, found {} `{text}`", type_name(other)),
                    hint,
                );
                None
            }
        }
    }

    pub(crate) fn check(&mut self, e: &Expr) -> T<'s> {
        let span = e.span.clone();
        let ty = match &e.ast {
            Ast::Num(v, int) => Ty::Num {
                n: Num::Const(*v),
                int: *int,
                u: UnitInfo::Free { literal: true },
            },
            Ast::Str(s) => Ty::StrLit(s.clone()),
            Ast::Bool(b) => Ty::Bool(Bool::Const(*b)),
            Ast::Name(name) => self.name(name, &span),
            Ast::Neg(a) => {
                let a = self.check(a);
                match self.num(a, " after unary `-`") {
                    Some(a) => Ty::Num {
                        n: match a.n {
                            Num::Const(v) => Num::Const(-v),
                            n => Num::Neg(Box::new(n)),
                        },
                        int: a.int,
                        u: a.u,
                    },
                    None => Ty::Err,
                }
            }
            Ast::Not(a) => {
                let a = self.check(a);
                match self.boolean(a, " after `not`") {
                    Some(b) => Ty::Bool(Bool::Not(Box::new(b))),
                    None => Ty::Err,
                }
            }
            Ast::Logic(and, a, b) => {
                let ctx = if *and {
                    " on each side of `and`"
                } else {
                    " on each side of `or`"
                };
                let a = self.check(a);
                let b = self.check(b);
                let a = self.boolean(a, ctx);
                let b = self.boolean(b, ctx);
                match (a, b) {
                    (Some(a), Some(b)) if *and => Ty::Bool(Bool::And(Box::new(a), Box::new(b))),
                    (Some(a), Some(b)) => Ty::Bool(Bool::Or(Box::new(a), Box::new(b))),
                    _ => Ty::Err,
                }
            }
            Ast::Bin(op, a, b) => {
                let ctx = format!(" on each side of `{}`", op.symbol());
                let a = self.check(a);
                let b = self.check(b);
                let a = self.num(a, &ctx);
                let b = self.num(b, &ctx);
                match (a, b) {
                    (Some(a), Some(b)) => self.arith(*op, a, b),
                    _ => Ty::Err,
                }
            }
            Ast::Cmp(op, a, b) => {
                let a = self.check(a);
                let b = self.check(b);
                self.compare(*op, a, b, &span)
            }
            Ast::Call {
                name,
                name_span,
                args,
            } => self.call(name, name_span, args, &span),
        };
        T { ty, span }
    }

    fn name(&mut self, name: &str, span: &Range<usize>) -> Ty<'s> {
        let Some(entry) = self.scope.lookup(name) else {
            let names = self.scope.names();
            let hint = if FUNCTIONS.contains(&name) {
                Some(format!("`{name}` is a function: write `{name}(...)`"))
            } else {
                closest_match(name, names.iter().map(String::as_str))
                    .map(|n| format!("did you mean `{n}`?"))
            };
            self.err(span.clone(), format!("unknown name `{name}`"), hint);
            return Ty::Err;
        };
        let unit = |u: Option<&Unit>| match u {
            Some(unit) => UnitInfo::Known {
                unit: unit.clone(),
                empirical: false,
            },
            None => UnitInfo::Free { literal: false },
        };
        match entry.ty {
            ValueType::F64 => Ty::Num {
                n: Num::Slot(entry.slot),
                int: false,
                u: unit(entry.unit),
            },
            ValueType::I64 => Ty::Num {
                n: Num::Slot(entry.slot),
                int: true,
                u: unit(entry.unit),
            },
            ValueType::Bool => Ty::Bool(Bool::Slot(entry.slot)),
            ValueType::Enum => Ty::Enum {
                slot: entry.slot,
                states: entry.states,
            },
            ValueType::String => Ty::Str(entry.slot),
        }
    }

    fn arith(&mut self, op: BinOp, a: NumT, b: NumT) -> Ty<'s> {
        let (na, nb, u) = match op {
            BinOp::Add | BinOp::Sub | BinOp::Rem => {
                let join = match op {
                    BinOp::Add => Join::Add,
                    BinOp::Sub => Join::Sub,
                    _ => Join::Rem,
                };
                let int = a.int && b.int;
                match self.unify(join, a, b) {
                    Some((na, nb, u)) => {
                        return Ty::Num {
                            int: int && na.1 && nb.1,
                            n: Num::Bin(op, Box::new(na.0), Box::new(nb.0)),
                            u,
                        };
                    }
                    None => return Ty::Err,
                }
            }
            BinOp::Mul | BinOp::Div => {
                let u = match (a.u, b.u) {
                    (UnitInfo::Free { literal: l1 }, UnitInfo::Free { literal: l2 }) => {
                        UnitInfo::Free { literal: l1 || l2 }
                    }
                    (UnitInfo::Free { literal }, UnitInfo::Known { unit, empirical }) => {
                        UnitInfo::Known {
                            unit: if op == BinOp::Mul {
                                unit
                            } else {
                                Unit::dimensionless().div(&unit)
                            },
                            empirical: empirical || literal,
                        }
                    }
                    (UnitInfo::Known { unit, empirical }, UnitInfo::Free { literal }) => {
                        UnitInfo::Known {
                            unit,
                            empirical: empirical || literal,
                        }
                    }
                    (
                        UnitInfo::Known {
                            unit: ua,
                            empirical: ea,
                        },
                        UnitInfo::Known {
                            unit: ub,
                            empirical: eb,
                        },
                    ) => UnitInfo::Known {
                        unit: if op == BinOp::Mul {
                            ua.mul(&ub)
                        } else {
                            ua.div(&ub)
                        },
                        empirical: ea || eb,
                    },
                };
                ((a.n, a.int), (b.n, b.int), u)
            }
        };
        Ty::Num {
            int: op == BinOp::Mul && na.1 && nb.1,
            n: Num::Bin(op, Box::new(na.0), Box::new(nb.0)),
            u,
        }
    }

    /// Brings `b` into the unit of `a` (or `a`'s free number into `b`'s unit)
    /// under the rules of `join`; returns both nodes (with their integer
    /// flags) and the unit of the result.
    #[allow(clippy::type_complexity)] // a private helper's tuple, named at each use
    pub(crate) fn unify(
        &mut self,
        join: Join,
        a: NumT,
        b: NumT,
    ) -> Option<((Num, bool), (Num, bool), UnitInfo)> {
        let (ua, ea, ub, eb) = match (&a.u, &b.u) {
            (UnitInfo::Free { literal: l1 }, UnitInfo::Free { literal: l2 }) => {
                let u = UnitInfo::Free {
                    literal: *l1 || *l2,
                };
                return Some(((a.n, a.int), (b.n, b.int), u));
            }
            (UnitInfo::Free { .. }, known) | (known, UnitInfo::Free { .. }) => {
                let u = known.clone();
                return Some(((a.n, a.int), (b.n, b.int), u));
            }
            (
                UnitInfo::Known {
                    unit: ua,
                    empirical: ea,
                },
                UnitInfo::Known {
                    unit: ub,
                    empirical: eb,
                },
            ) => (ua, *ea, ub, *eb),
        };
        let what = match join {
            Join::Add => format!(
                "cannot add {} to {}",
                self.describe(&b.u, &b.span),
                self.describe(&a.u, &a.span)
            ),
            Join::Sub => format!(
                "cannot subtract {} from {}",
                self.describe(&b.u, &b.span),
                self.describe(&a.u, &a.span)
            ),
            Join::Rem => format!(
                "cannot take {} modulo {}",
                self.describe(&a.u, &a.span),
                self.describe(&b.u, &b.span)
            ),
            Join::Cmp => format!(
                "cannot compare {} with {}",
                self.describe(&a.u, &a.span),
                self.describe(&b.u, &b.span)
            ),
            Join::Args(f) => format!(
                "arguments of `{f}` must have the same dimension, found {} and {}",
                self.describe(&a.u, &a.span),
                self.describe(&b.u, &b.span)
            ),
            Join::Branches => format!(
                "branches of `if` must have the same dimension, found {} and {}",
                self.describe(&a.u, &a.span),
                self.describe(&b.u, &b.span)
            ),
        };
        let span = a.span.start.min(b.span.start)..a.span.end.max(b.span.end);
        let Some((mut scale, mut offset)) = ub.conversion_to(ua) else {
            self.err(span, what, None);
            return None;
        };
        let mut result = ua.clone();
        match join {
            // An absolute temperature plus one without offset (K, delta_degC):
            // the latter is a difference, converted by scale only.
            Join::Add if ua.has_offset() && !ub.has_offset() => offset = 0.0,
            Join::Sub if ua.has_offset() && !ub.has_offset() => offset = 0.0,
            // Two absolute temperatures: their difference has no offset.
            Join::Sub if ua.has_offset() => result = ua.difference(),
            _ => {}
        }
        if !is_one(scale) && (ea || eb) {
            self.err(
                span,
                format!(
                    "ambiguous units: expected {} and {} in the same unit, found units that \
                     differ in scale, and a formula with a literal factor is taken as written",
                    self.describe(&a.u, &a.span),
                    self.describe(&b.u, &b.span)
                ),
                Some(
                    "write both sides in the same unit, or make the formula a derived \
                     property with a declared unit"
                        .into(),
                ),
            );
            return None;
        }
        if is_one(scale) {
            scale = 1.0;
        }
        let b_int = b.int && scale == 1.0 && offset == 0.0;
        Some((
            (a.n, a.int),
            (lin(b.n, scale, offset), b_int),
            UnitInfo::Known {
                unit: result,
                empirical: ea || eb,
            },
        ))
    }

    fn compare(&mut self, op: CmpOp, a: T<'s>, b: T<'s>, span: &Range<usize>) -> Ty<'s> {
        let eq = match op {
            CmpOp::Eq => Some(true),
            CmpOp::Ne => Some(false),
            _ => None,
        };
        let (ta, tb) = (type_name(&a.ty), type_name(&b.ty));
        let text_a = self.text(&a.span);
        let text_b = self.text(&b.span);
        match (a.ty, b.ty) {
            (Ty::Err, _) | (_, Ty::Err) => Ty::Err,
            (
                Ty::Num { n, int, u },
                Ty::Num {
                    n: n2,
                    int: i2,
                    u: u2,
                },
            ) => {
                let a = NumT {
                    n,
                    int,
                    u,
                    span: a.span,
                };
                let b = NumT {
                    n: n2,
                    int: i2,
                    u: u2,
                    span: b.span,
                };
                match self.unify(Join::Cmp, a, b) {
                    Some((na, nb, _)) => Ty::Bool(Bool::Cmp(op, Box::new(na.0), Box::new(nb.0))),
                    None => Ty::Err,
                }
            }
            (Ty::Enum { slot, states }, Ty::StrLit(s))
            | (Ty::StrLit(s), Ty::Enum { slot, states }) => {
                let (enum_text, lit_span) = if ta == "enum" {
                    (text_a, b.span.clone())
                } else {
                    (text_b, a.span.clone())
                };
                let Some(eq) = eq else {
                    self.err(
                        span.clone(),
                        format!(
                            "cannot use `{}` on enum `{enum_text}`, expected `==` or `!=`",
                            op.symbol()
                        ),
                        None,
                    );
                    return Ty::Err;
                };
                match states.iter().position(|st| *st == s) {
                    Some(i) => Ty::Bool(Bool::EnumEq(
                        eq,
                        EnumSrc::Slot(slot),
                        EnumSrc::Const(i as u16),
                    )),
                    None => {
                        let list = states
                            .iter()
                            .map(|s| format!("\"{s}\""))
                            .collect::<Vec<_>>()
                            .join(", ");
                        let hint = closest_match(&s, states.iter().map(String::as_str))
                            .map(|n| format!("did you mean \"{n}\"?"));
                        self.err(
                            lit_span,
                            format!(
                                "unknown state \"{s}\" of `{enum_text}`, expected one of {list}"
                            ),
                            hint,
                        );
                        Ty::Err
                    }
                }
            }
            (
                Ty::Enum { slot, states },
                Ty::Enum {
                    slot: slot2,
                    states: states2,
                },
            ) if eq.is_some() => {
                if states != states2 {
                    self.err(
                        span.clone(),
                        format!(
                            "cannot compare enum `{text_a}` with enum `{text_b}`, \
                             expected enums with the same states"
                        ),
                        None,
                    );
                    return Ty::Err;
                }
                Ty::Bool(Bool::EnumEq(
                    eq == Some(true),
                    EnumSrc::Slot(slot),
                    EnumSrc::Slot(slot2),
                ))
            }
            (Ty::Str(x), Ty::StrLit(s)) | (Ty::StrLit(s), Ty::Str(x)) if eq.is_some() => {
                Ty::Bool(Bool::StrEq(
                    eq == Some(true),
                    StrSrc::Slot(x),
                    StrSrc::Const(Arc::from(s.as_str())),
                ))
            }
            (Ty::Str(x), Ty::Str(y)) if eq.is_some() => Ty::Bool(Bool::StrEq(
                eq == Some(true),
                StrSrc::Slot(x),
                StrSrc::Slot(y),
            )),
            (Ty::Bool(x), Ty::Bool(y)) if eq.is_some() => {
                Ty::Bool(Bool::Eq(eq == Some(true), Box::new(x), Box::new(y)))
            }
            (
                Ty::Bool(_) | Ty::Enum { .. } | Ty::Str(_),
                Ty::Bool(_) | Ty::Enum { .. } | Ty::Str(_) | Ty::StrLit(_),
            ) if ta == tb || tb == "string literal" => {
                self.err(
                    span.clone(),
                    format!(
                        "cannot use `{}` on {ta} `{text_a}`, expected `==` or `!=`",
                        op.symbol()
                    ),
                    None,
                );
                Ty::Err
            }
            _ => {
                let hint = (tb == "string literal" || ta == "string literal").then(|| {
                    "string literals can only be compared with enum or string properties"
                        .to_string()
                });
                self.err(
                    span.clone(),
                    format!("cannot compare {ta} `{text_a}` with {tb} `{text_b}`"),
                    hint,
                );
                Ty::Err
            }
        }
    }

    fn call(
        &mut self,
        name: &str,
        name_span: &Range<usize>,
        args: &[Expr],
        span: &Range<usize>,
    ) -> Ty<'s> {
        let checked: Vec<T<'s>> = args.iter().map(|a| self.check(a)).collect();
        let func = FUNCTIONS.iter().find(|f| **f == name).copied();
        let Some(func) = func else {
            let hint = match closest_match(name, FUNCTIONS.iter().copied()) {
                Some(f) => format!("did you mean `{f}`?"),
                None => format!("the functions are {}", FUNCTIONS.join(", ")),
            };
            self.err(
                name_span.clone(),
                format!("unknown function `{name}`"),
                Some(hint),
            );
            return Ty::Err;
        };
        let arity_ok = match func {
            "min" | "max" => checked.len() >= 2,
            "clamp" | "if" => checked.len() == 3,
            _ => checked.len() == 1,
        };
        if !arity_ok {
            let expected = match func {
                "min" | "max" => "at least 2 arguments".to_string(),
                "clamp" => "3 arguments (x, lo, hi)".to_string(),
                "if" => "3 arguments (condition, then, else)".to_string(),
                _ => "1 argument".to_string(),
            };
            self.err(
                span.clone(),
                format!("`{func}` takes {expected}, found {}", checked.len()),
                None,
            );
            return Ty::Err;
        }
        let ctx = format!(" as argument of `{func}`");
        let mut it = checked.into_iter();
        let mut next = || {
            it.next().unwrap_or(T {
                ty: Ty::Err,
                span: span.clone(),
            })
        };
        match func {
            "if" => {
                let c = next();
                let c = self.boolean(c, " as the condition of `if`");
                let (a, b) = (next(), next());
                let ty = match (&a.ty, &b.ty) {
                    (Ty::Err, _) | (_, Ty::Err) => return Ty::Err,
                    (Ty::Num { .. }, Ty::Num { .. }) => {
                        let (Some(a), Some(b)) = (self.num(a, ""), self.num(b, "")) else {
                            return Ty::Err;
                        };
                        let int = a.int && b.int;
                        let Some(((na, ia), (nb, ib), u)) = self.unify(Join::Branches, a, b) else {
                            return Ty::Err;
                        };
                        let Some(c) = c else { return Ty::Err };
                        Ty::Num {
                            n: Num::If(Box::new(c), Box::new(na), Box::new(nb)),
                            int: int && ia && ib,
                            u,
                        }
                    }
                    (Ty::Bool(_), Ty::Bool(_)) => {
                        let (Some(a), Some(b)) = (self.boolean(a, ""), self.boolean(b, "")) else {
                            return Ty::Err;
                        };
                        let Some(c) = c else { return Ty::Err };
                        Ty::Bool(Bool::If(Box::new(c), Box::new(a), Box::new(b)))
                    }
                    (x, y) => {
                        let msg = format!(
                            "branches of `if` must have the same type, expected numbers or bools, \
                             found {} `{}` and {} `{}`",
                            type_name(x),
                            self.text(&a.span),
                            type_name(y),
                            self.text(&b.span)
                        );
                        self.err(span.clone(), msg, None);
                        return Ty::Err;
                    }
                };
                return ty;
            }
            "min" | "max" | "clamp" => {
                let fname: &'static str = func;
                let mut nums = Vec::new();
                let mut ok = true;
                for t in it.by_ref() {
                    match self.num(t, &ctx) {
                        Some(n) => nums.push(n),
                        None => ok = false,
                    }
                }
                if !ok {
                    return Ty::Err;
                }
                let mut iter = nums.into_iter();
                let Some(first) = iter.next() else {
                    return Ty::Err;
                };
                let mut int = first.int;
                let mut acc_u = first.u.clone();
                let mut acc_span = first.span.clone();
                let mut out = vec![first.n];
                for b in iter {
                    let a = NumT {
                        n: Num::Const(0.0),
                        int: true,
                        u: acc_u.clone(),
                        span: acc_span.clone(),
                    };
                    let b_span = b.span.clone();
                    let Some((_, (nb, ib), u)) = self.unify(Join::Args(fname), a, b) else {
                        return Ty::Err;
                    };
                    int = int && ib;
                    acc_u = u;
                    acc_span = acc_span.start..b_span.end;
                    out.push(nb);
                }
                let n = match fname {
                    "min" => Num::Min(out.into_boxed_slice()),
                    "max" => Num::Max(out.into_boxed_slice()),
                    _ => {
                        let [x, lo, hi]: [Num; 3] = match out.try_into() {
                            Ok(v) => v,
                            Err(_) => return Ty::Err,
                        };
                        Num::Clamp(Box::new([x, lo, hi]))
                    }
                };
                return Ty::Num { n, int, u: acc_u };
            }
            _ => {}
        }
        let Some(x) = self.num(next(), &ctx) else {
            return Ty::Err;
        };
        let f = match func {
            "abs" => Func1::Abs,
            "sqrt" => Func1::Sqrt,
            "exp" => Func1::Exp,
            "ln" => Func1::Ln,
            "log10" => Func1::Log10,
            "round" => Func1::Round,
            "floor" => Func1::Floor,
            _ => Func1::Ceil,
        };
        let (u, int) = match f {
            Func1::Abs => (x.u, x.int),
            Func1::Round | Func1::Floor | Func1::Ceil => (x.u, true),
            Func1::Sqrt => (
                match x.u {
                    UnitInfo::Known { unit, empirical } => match unit.sqrt() {
                        Some(unit) => UnitInfo::Known { unit, empirical },
                        None => UnitInfo::Free { literal: true },
                    },
                    free => free,
                },
                false,
            ),
            Func1::Exp | Func1::Ln | Func1::Log10 => (
                match &x.u {
                    UnitInfo::Known { unit, empirical }
                        if unit.is_dimensionless() && is_one(unit.scale()) && !empirical =>
                    {
                        UnitInfo::Free { literal: false }
                    }
                    UnitInfo::Known { .. } => UnitInfo::Free { literal: true },
                    free => free.clone(),
                },
                false,
            ),
        };
        Ty::Num {
            n: Num::Call(f, Box::new(x.n)),
            int,
            u,
        }
    }

    /// Applies the caller's expectation to the root and builds the compiled
    /// form: the result type and the unit of the delivered value.
    pub(crate) fn finish(
        &mut self,
        t: T<'s>,
        expected: Expected<'_>,
    ) -> Option<(Top, ValueType, Option<Unit>)> {
        let text = self.text(&t.span);
        let wrong = |found: &str| {
            expected.ty.map(|ty| {
                (
                    format!("expected a {ty} result, found {found} `{text}`"),
                    ty,
                )
            })
        };
        match t.ty {
            Ty::Err => None,
            Ty::Num { n, int, u } => {
                if let Some(ty) = expected.ty.filter(|ty| !ty.is_numeric()) {
                    let found = type_name(&Ty::Num {
                        n: Num::Const(0.0),
                        int,
                        u: u.clone(),
                    });
                    self.err(
                        t.span,
                        format!("expected a {ty} result, found {found} `{text}`"),
                        None,
                    );
                    return None;
                }
                let as_int = match expected.ty {
                    Some(ValueType::I64) if !int => {
                        self.err(
                            t.span,
                            format!("expected an i64 result, found a fractional number `{text}`"),
                            Some("use round(), floor() or ceil()".into()),
                        );
                        return None;
                    }
                    Some(ValueType::I64) => true,
                    Some(_) => false,
                    None => int,
                };
                let (n, unit) = match (u, expected.unit) {
                    (UnitInfo::Free { .. }, e) => (n, e.cloned()),
                    (UnitInfo::Known { unit, empirical }, None) => {
                        (n, (!empirical).then_some(unit))
                    }
                    (UnitInfo::Known { unit, empirical }, Some(want)) => {
                        match unit.conversion_to(want) {
                            Some((s, o)) if is_one(s) => (lin(n, 1.0, o), Some(want.clone())),
                            _ if empirical => (n, Some(want.clone())),
                            Some((s, o)) => (lin(n, s, o), Some(want.clone())),
                            None => {
                                self.err(
                                    t.span,
                                    format!(
                                        "expected a result in `{}` [{}], found `{text}` in `{}` [{}]",
                                        want.symbol(),
                                        want.dimension_name(),
                                        unit.symbol(),
                                        unit.dimension_name()
                                    ),
                                    Some(
                                        "check the formula; an empirical formula with a literal \
                                         constant is taken as written in the declared unit"
                                            .into(),
                                    ),
                                );
                                return None;
                            }
                        }
                    }
                };
                let ty = if as_int {
                    ValueType::I64
                } else {
                    ValueType::F64
                };
                Some((Top::Num(n, as_int), ty, unit))
            }
            Ty::Bool(b) => {
                if let Some((msg, ty)) = wrong("a bool")
                    && ty != ValueType::Bool
                {
                    self.err(t.span, msg, None);
                    return None;
                }
                Some((Top::Bool(b), ValueType::Bool, None))
            }
            Ty::Enum { slot, .. } => {
                if let Some((msg, ty)) = wrong("an enum")
                    && ty != ValueType::Enum
                {
                    self.err(t.span, msg, None);
                    return None;
                }
                Some((Top::Enum(slot), ValueType::Enum, None))
            }
            Ty::Str(slot) => {
                if let Some((msg, ty)) = wrong("a string")
                    && ty != ValueType::String
                {
                    self.err(t.span, msg, None);
                    return None;
                }
                Some((Top::Str(slot), ValueType::String, None))
            }
            Ty::StrLit(_) => {
                self.err(
                    t.span,
                    format!(
                        "expected a number, bool or property, found the string literal `{text}`"
                    ),
                    Some(
                        "string literals can only be compared with enum or string properties"
                            .into(),
                    ),
                );
                None
            }
        }
    }
}
