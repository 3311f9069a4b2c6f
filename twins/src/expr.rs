//! Expressions for derived properties, alarm conditions and suppression.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use crate::quality::{Quality, Reason};
use crate::sample::Slot;
use crate::units::Unit;
use crate::value::{Value, ValueType};

/// A compile error, located in the expression text.
#[derive(Debug, Clone, PartialEq)]
pub struct ExprError {
    /// Byte offsets into the expression text.
    pub span: Range<usize>,
    pub message: String,
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
    pub states: &'a [String],
}

/// Resolves the names an expression uses.
pub trait Scope {
    fn lookup(&self, name: &str) -> Option<ScopeEntry<'_>>;
    /// All names, for did-you-mean hints.
    fn names(&self) -> Vec<String>;
}

/// What the caller expects of the result.
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
}

/// A compiled expression: cheap to clone, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct CompiledExpr(Arc<Inner>);

/// Compiles `src` against `scope`, collecting every error found.
pub fn compile(
    src: &str,
    scope: &dyn Scope,
    expected: Expected<'_>,
) -> Result<CompiledExpr, Vec<ExprError>> {
    let _ = (scope, expected);
    Err(vec![ExprError {
        span: 0..src.len(),
        message: "expressions are not compiled yet".into(),
        hint: None,
    }])
}

impl CompiledExpr {
    pub fn eval(&self, slots: &[Slot]) -> (Value, Quality) {
        let _ = slots;
        (Value::Null, Quality::Bad(Reason::CalcError))
    }
    /// Slot indices read, sorted and deduplicated.
    pub fn inputs(&self) -> &[u16] {
        &self.0.inputs
    }
    pub fn ty(&self) -> ValueType {
        self.0.ty
    }
    pub fn unit(&self) -> Option<&Unit> {
        self.0.unit.as_ref()
    }
    pub fn source(&self) -> &str {
        &self.0.source
    }
}

/// Names used by `src`, in order of first use, for cycle detection before compilation.
pub fn referenced_names(src: &str) -> Result<Vec<String>, ExprError> {
    let _ = src;
    Ok(Vec::new())
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

/// An alarm or suppression condition.
#[derive(Debug, Clone)]
pub enum Condition {
    Compare {
        lhs: CompiledExpr,
        op: CmpOp,
        rhs: CompiledExpr,
    },
    Bool(CompiledExpr),
}

/// Compiles a condition: a top-level comparison becomes [`Condition::Compare`]
/// (rhs converted into lhs's unit), anything else must be bool.
pub fn compile_condition(src: &str, scope: &dyn Scope) -> Result<Condition, Vec<ExprError>> {
    compile(src, scope, Expected::default()).map(Condition::Bool)
}

impl Condition {
    /// `active` is the alarm's current condition; deadband (in lhs units) is
    /// hysteresis. Returns `None` for the value when an input is Null or the calc failed.
    pub fn eval(&self, slots: &[Slot], deadband: f64, active: bool) -> (Option<bool>, Quality) {
        let _ = (slots, deadband, active);
        (None, Quality::Bad(Reason::CalcError))
    }
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
                format!("{} {op:?} {}", lhs.source(), rhs.source())
            }
            Condition::Bool(e) => e.source().to_string(),
        }
    }
}
