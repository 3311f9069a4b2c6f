//! Expressions for derived properties, alarm conditions and suppression.
//!
//! An expression is parsed and checked once against a [`Scope`] (the
//! properties and parameters of a class), then evaluated many times over a
//! twin's slots. Evaluation never touches text and does not allocate for
//! numeric and boolean results.
//!
//! ```
//! use twins::expr::{compile, Expected, Scope, ScopeEntry};
//! use twins::units::Unit;
//! use twins::{Quality, Slot, Timestamp, Value, ValueType};
//!
//! struct Pump { bar: Unit }
//! impl Scope for Pump {
//!     fn lookup(&self, name: &str) -> Option<ScopeEntry<'_>> {
//!         (name == "discharge_pressure").then(|| ScopeEntry {
//!             slot: 0, ty: ValueType::F64, unit: Some(&self.bar), states: &[],
//!         })
//!     }
//!     fn names(&self) -> Vec<String> { vec!["discharge_pressure".into()] }
//! }
//! let scope = Pump { bar: Unit::parse("bar").unwrap() };
//! let e = compile("discharge_pressure > 18", &scope, Expected::default()).unwrap();
//! let slots = [Slot::new(Value::F64(19.0), Quality::Good, Timestamp::ZERO)];
//! assert_eq!(e.eval(&slots), (Value::Bool(true), Quality::Good));
//! ```
//!
//! # Language
//!
//! - Numbers `1`, `2.5`, `1e-3`; `true`, `false`; string literals `"running"`
//!   or `'running'`, only to compare with an enum (or string) property.
//! - Names of the twin's properties and parameters.
//! - `+ - * / %`, unary `-`; comparisons `> >= < <= == !=` (not chainable);
//!   `and or not`, also written `&& || !`. Precedence, loosest first:
//!   `or`, `and`, `not`, comparisons, `+ -`, `* / %`, unary `-`.
//! - Functions: `abs(x)`, `min(a, b, ...)`, `max(a, b, ...)`,
//!   `clamp(x, lo, hi)`, `sqrt`, `exp`, `ln`, `log10`, `round`, `floor`, `ceil`,
//!   and the conditional `if(condition, then, else)` (only the function form:
//!   there is no `if ... then ... else`).
//!
//! Types: arithmetic is on numbers (i64 promoted to f64), comparisons give
//! bools, `and`/`or`/`not` take bools, `==`/`!=` also compare an enum property
//! with a string literal naming one of its states (an unknown state is a
//! compile error), bools with bools and strings with strings. Both branches
//! of `if` must have the same type and dimension. A numeric result is `i64`
//! when every operand is an integer and only `+ - * %`, `abs`, `min`, `max`,
//! `clamp`, `if`, `round`, `floor`, `ceil` are used, else `f64`.
//!
//! Evaluation: `and`, `or` and `if` evaluate left to right and skip what
//! they do not need. The result's quality is the worst quality of the inputs
//! actually read. A Null input gives `(Null, Bad(no_data))`; division or `%`
//! by zero, `sqrt` of a negative, `ln`/`log10` of a number ≤ 0, `clamp` with
//! `lo > hi` and any non-finite value give `(Null, Bad(calc_error))`.
//!
//! # Units in expressions
//!
//! (This section is written to be copied into the modelling guide.)
//!
//! Every property name has the unit of its property; a property declared
//! without a unit, like every number literal, has *no* unit.
//!
//! - **Adding, subtracting, comparing** (`+ - % == != < <= > >=`, `min`,
//!   `max`, `clamp`, the branches of `if`): two quantities with units must
//!   have the same dimension, else it is an error
//!   (``cannot add `flow` [m3/h, volumetric flow] to `discharge_pressure`
//!   [bar, pressure]``). Compatible units are converted: the right operand is
//!   converted into the unit of the left one, so `p_kpa + p_bar` is in kPa and
//!   `p_kpa > p_bar` compares in kPa. A number without unit takes the unit of
//!   the other side: `discharge_pressure > 18` means 18 bar.
//! - **Temperatures**: a `degC`/`degF` value plus or minus a `K` (or
//!   `delta_degC`) value treats the latter as a difference; the difference of
//!   two `degC` values is in `delta_degC` (= `K`); comparisons convert fully.
//! - **Multiplying, dividing** multiplies dimensions: `flow * discharge_pressure`
//!   is in `m3/h*bar`, a power. Numbers are dimensionless factors.
//! - **The declared unit of a derived property**: if the formula's dimension
//!   equals the declared one, its value is converted (`flow_lps = flow` with
//!   `flow` in m3/h and the property in `L/s` divides by 3.6). **But formulas
//!   with literal constants are taken as empirical: their numeric result is in
//!   the declared unit.** When a number literal is a factor of a product or
//!   quotient in the formula and the formula's unit differs in scale or
//!   dimension from the declared one, the number the formula computes is taken
//!   as it is, in the declared unit: `hydraulic_power = { unit = "kW", expr =
//!   "flow * discharge_pressure / 36" }` gives 10 kW for 36 m3/h and 10 bar,
//!   as the engineer intended. A formula without literal factor whose
//!   dimension differs from the declared one is an error. So do not rely on
//!   conversion in a formula with constants: `2 * flow` declared in `L/s` is
//!   twice the m3/h number.
//! - Inside a formula the checker still verifies additions and comparisons
//!   between quantities. Adding or comparing a formula that has a literal
//!   factor to a quantity whose unit differs in scale (`flow * p / 36 >
//!   power_kw`) is an error, because the conversion is ambiguous: declare the
//!   formula as a derived property with its unit and use that.
//! - `exp`, `ln`, `log10` and the `sqrt` of a quantity whose dimension has
//!   odd exponents (`sqrt(dp)` in a valve formula) return a number without
//!   unit that counts as a literal constant (the formula becomes empirical);
//!   `sqrt` of an area is a length; `abs`, `round`, `floor`, `ceil` keep the
//!   unit.
//! - Alarm conditions `lhs op rhs` compare in the unit of `lhs`, and the
//!   alarm's deadband is in that unit.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use crate::quality::{Quality, Reason};
use crate::sample::Slot;
use crate::units::Unit;
use crate::value::{Value, ValueType};

mod check;
mod eval;
mod lexer;
mod parser;
#[cfg(test)]
mod tests;

use check::{Checker, NumT, Ty, UnitInfo};
use eval::{Fail, Top};
use parser::Ast;

/// A compile error, located in the expression text.
#[derive(Debug, Clone, PartialEq)]
pub struct ExprError {
    /// Byte offsets into the expression text.
    pub span: Range<usize>,
    pub message: String,
    /// A suggestion ("did you mean `discharge_pressure`?").
    pub hint: Option<String>,
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ExprError {}

/// What a name resolves to.
#[derive(Debug, Clone, Copy)]
pub struct ScopeEntry<'a> {
    pub slot: u16,
    pub ty: ValueType,
    pub unit: Option<&'a Unit>,
    /// State names of an enum, in index order; empty otherwise.
    pub states: &'a [String],
}

/// Resolves the names an expression uses.
pub trait Scope {
    fn lookup(&self, name: &str) -> Option<ScopeEntry<'_>>;
    /// All names, for did-you-mean hints.
    fn names(&self) -> Vec<String>;
}

/// What the caller expects of the result: a type and, for numbers, the
/// declared unit the value is delivered in (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct Expected<'a> {
    pub ty: Option<ValueType>,
    pub unit: Option<&'a Unit>,
}

#[derive(Debug)]
struct Inner {
    source: String,
    inputs: Vec<u16>,
    ty: ValueType,
    unit: Option<Unit>,
    top: Top,
}

/// A compiled expression: cheap to clone, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct CompiledExpr(Arc<Inner>);

impl CompiledExpr {
    fn new(source: &str, top: Top, ty: ValueType, unit: Option<Unit>) -> Self {
        let mut inputs = Vec::new();
        top.slots(&mut inputs);
        inputs.sort_unstable();
        inputs.dedup();
        CompiledExpr(Arc::new(Inner {
            source: source.to_string(),
            inputs,
            ty,
            unit,
            top,
        }))
    }

    /// Evaluates over a twin's slots: the value and the worst quality of the
    /// inputs read, or `Null` with `Bad(no_data)` / `Bad(calc_error)`.
    pub fn eval(&self, slots: &[Slot]) -> (Value, Quality) {
        self.0.top.eval(slots)
    }

    /// The numeric value, for conditions (no `Value` wrapping).
    fn eval_f64(&self, slots: &[Slot], q: &mut Quality) -> Result<f64, Fail> {
        match &self.0.top {
            Top::Num(n, _) => n.eval(slots, q),
            _ => Err(Fail::Calc),
        }
    }

    /// Slot indices read, sorted and deduplicated.
    pub fn inputs(&self) -> &[u16] {
        &self.0.inputs
    }

    pub fn ty(&self) -> ValueType {
        self.0.ty
    }

    /// The unit of the delivered value: the expected unit if one was given,
    /// else the unit computed from the operands (`None` for numbers without
    /// unit and for empirical formulas, whose unit is unknown).
    pub fn unit(&self) -> Option<&Unit> {
        self.0.unit.as_ref()
    }

    pub fn source(&self) -> &str {
        &self.0.source
    }
}

fn sorted(mut errors: Vec<ExprError>) -> Vec<ExprError> {
    errors.sort_by_key(|e| (e.span.start, e.span.end));
    errors
}

/// Compiles `src` against `scope`, collecting every error found (all lexical
/// errors, or the first syntax error, or every name, type and unit error).
pub fn compile(
    src: &str,
    scope: &dyn Scope,
    expected: Expected<'_>,
) -> Result<CompiledExpr, Vec<ExprError>> {
    let ast = parser::parse(src)?;
    let mut c = Checker::new(src, scope);
    let t = c.check(&ast);
    let done = c.finish(t, expected);
    match done {
        Some((top, ty, unit)) if c.errors.is_empty() => Ok(CompiledExpr::new(src, top, ty, unit)),
        _ => Err(sorted(c.errors)),
    }
}

/// Names used by `src`, in order of first use (function names excluded), for
/// cycle detection before compilation.
pub fn referenced_names(src: &str) -> Result<Vec<String>, ExprError> {
    let ast = parser::parse(src).map_err(|mut e| e.remove(0))?;
    let mut out = Vec::new();
    parser::collect_names(&ast, &mut out);
    Ok(out)
}

/// Comparison operators of conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl CmpOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
        }
    }
}

impl fmt::Display for CmpOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// An alarm or suppression condition.
#[derive(Debug, Clone)]
pub enum Condition {
    /// A numeric comparison at the top: `lhs op rhs`, with `rhs` already
    /// converted into the unit of `lhs` (deadbands apply).
    Compare {
        lhs: CompiledExpr,
        op: CmpOp,
        rhs: CompiledExpr,
    },
    /// Any other boolean expression (deadbands do not apply).
    Bool(CompiledExpr),
}

/// Compiles a condition: a top-level numeric comparison becomes
/// [`Condition::Compare`] (rhs converted into lhs's unit); anything else
/// must be bool and becomes [`Condition::Bool`].
pub fn compile_condition(src: &str, scope: &dyn Scope) -> Result<Condition, Vec<ExprError>> {
    let ast = parser::parse(src)?;
    let mut c = Checker::new(src, scope);
    if let Ast::Cmp(op, l, r) = &ast.ast {
        let lt = c.check(l);
        let rt = c.check(r);
        if let (Ty::Num { .. }, Ty::Num { .. }) = (&lt.ty, &rt.ty) {
            let (
                Ty::Num { n, int, u },
                Ty::Num {
                    n: n2,
                    int: i2,
                    u: u2,
                },
            ) = (lt.ty, rt.ty)
            else {
                return Err(sorted(c.errors));
            };
            let a = NumT {
                n,
                int,
                u,
                span: lt.span.clone(),
            };
            let b = NumT {
                n: n2,
                int: i2,
                u: u2,
                span: rt.span.clone(),
            };
            let joined = c.unify(check::Join::Cmp, a, b);
            return match joined {
                Some(((na, _), (nb, _), u)) if c.errors.is_empty() => {
                    let unit = match u {
                        UnitInfo::Known { unit, .. } => Some(unit),
                        UnitInfo::Free { .. } => None,
                    };
                    let side = |n, span: &Range<usize>| {
                        CompiledExpr::new(
                            src.get(span.clone()).unwrap_or(""),
                            Top::Num(n, false),
                            ValueType::F64,
                            unit.clone(),
                        )
                    };
                    Ok(Condition::Compare {
                        lhs: side(na, &lt.span),
                        op: *op,
                        rhs: side(nb, &rt.span),
                    })
                }
                _ => Err(sorted(c.errors)),
            };
        }
        // Not numeric: enum, string or bool comparison; checked as a whole.
        c.errors.clear();
    }
    let t = c.check(&ast);
    let expected = Expected {
        ty: Some(ValueType::Bool),
        unit: None,
    };
    match c.finish(t, expected) {
        Some((top, ty, unit)) if c.errors.is_empty() => {
            Ok(Condition::Bool(CompiledExpr::new(src, top, ty, unit)))
        }
        _ => Err(sorted(c.errors)),
    }
}

/// `x op y` with hysteresis: once `active`, the condition holds until `x`
/// leaves the alarm region by more than `deadband`.
fn hysteresis(op: CmpOp, x: f64, y: f64, deadband: f64, active: bool) -> bool {
    let db = if deadband.is_finite() && deadband > 0.0 {
        deadband
    } else {
        0.0
    };
    match (op, active) {
        (CmpOp::Gt, true) => x > y - db,
        (CmpOp::Ge, true) => x >= y - db,
        (CmpOp::Lt, true) => x < y + db,
        (CmpOp::Le, true) => x <= y + db,
        // `==` stays active while within the band around y.
        (CmpOp::Eq, true) => (x - y).abs() <= db,
        // `!=` activates only once x is more than the band away from y, and
        // stays active until x equals y.
        (CmpOp::Ne, false) => (x - y).abs() > db,
        (op, _) => eval::compare(op, x, y),
    }
}

impl Condition {
    /// `active` is the alarm's current condition; deadband (in lhs units) is
    /// hysteresis: `x > 18` with deadband 0.5 stays true while x > 17.5 once
    /// active (`<`, `<=` mirror it; `==` stays active while `|x - y| <=
    /// deadband`; `!=` activates only when `|x - y| > deadband`). Returns None
    /// for the value when an input is Null or the calc failed.
    pub fn eval(&self, slots: &[Slot], deadband: f64, active: bool) -> (Option<bool>, Quality) {
        match self {
            Condition::Compare { lhs, op, rhs } => {
                let mut q = Quality::Good;
                let r = lhs
                    .eval_f64(slots, &mut q)
                    .and_then(|x| rhs.eval_f64(slots, &mut q).map(|y| (x, y)));
                match r {
                    Ok((x, y)) => (Some(hysteresis(*op, x, y, deadband, active)), q),
                    Err(f) => (None, f.quality()),
                }
            }
            Condition::Bool(e) => match e.eval(slots) {
                (Value::Bool(b), q) => (Some(b), q),
                (Value::Null, q) => (None, q),
                (_, _) => (None, Quality::Bad(Reason::CalcError)),
            },
        }
    }

    /// Slot indices read by either side, sorted and deduplicated.
    pub fn inputs(&self) -> Vec<u16> {
        match self {
            Condition::Compare { lhs, rhs, .. } => {
                let mut v: Vec<u16> = lhs.inputs().iter().chain(rhs.inputs()).copied().collect();
                v.sort_unstable();
                v.dedup();
                v
            }
            Condition::Bool(e) => e.inputs().to_vec(),
        }
    }

    pub fn source(&self) -> String {
        match self {
            Condition::Compare { lhs, op, rhs } => {
                format!("{} {op} {}", lhs.source(), rhs.source())
            }
            Condition::Bool(e) => e.source().to_string(),
        }
    }
}
