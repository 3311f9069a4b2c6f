//! The compiled form: a typed tree over slot indices, and its evaluation.
//!
//! Evaluation reads slots by index, never looks at text and does not
//! allocate: numbers are `f64` (i64 promoted), booleans `bool`, and the
//! quality of every slot actually read is folded into one accumulator.

use std::sync::Arc;

use super::CmpOp;
use super::parser::BinOp;
use crate::quality::{Quality, Reason};
use crate::sample::Slot;
use crate::value::Value;

/// Why evaluation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fail {
    /// An input was Null (or its slot missing).
    NoData,
    /// A domain error: division by zero, sqrt of a negative, ln of ≤ 0, a
    /// non-finite result, or a slot holding a value of the wrong type.
    Calc,
}

impl Fail {
    pub(crate) fn quality(self) -> Quality {
        match self {
            Fail::NoData => Quality::Bad(Reason::NoData),
            Fail::Calc => Quality::Bad(Reason::CalcError),
        }
    }
}

type R<T> = Result<T, Fail>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func1 {
    Abs,
    Sqrt,
    Exp,
    Ln,
    Log10,
    Round,
    Floor,
    Ceil,
}

/// A numeric node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Num {
    Const(f64),
    Slot(u16),
    Neg(Box<Num>),
    Bin(BinOp, Box<Num>, Box<Num>),
    /// Unit conversion `x * scale + offset`.
    Lin(Box<Num>, f64, f64),
    Call(Func1, Box<Num>),
    Min(Box<[Num]>),
    Max(Box<[Num]>),
    Clamp(Box<[Num; 3]>),
    If(Box<Bool>, Box<Num>, Box<Num>),
}

/// Operand of an enum comparison.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum EnumSrc {
    Slot(u16),
    Const(u16),
}

/// Operand of a string comparison.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StrSrc {
    Slot(u16),
    Const(Arc<str>),
}

/// A boolean node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bool {
    Const(bool),
    Slot(u16),
    Not(Box<Bool>),
    And(Box<Bool>, Box<Bool>),
    Or(Box<Bool>, Box<Bool>),
    Cmp(CmpOp, Box<Num>, Box<Num>),
    /// `==` (true) or `!=` (false) on enum indices.
    EnumEq(bool, EnumSrc, EnumSrc),
    StrEq(bool, StrSrc, StrSrc),
    /// `==` (true) or `!=` (false) on two bools.
    Eq(bool, Box<Bool>, Box<Bool>),
    If(Box<Bool>, Box<Bool>, Box<Bool>),
}

/// The root of a compiled expression, by result type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Top {
    /// A number; `true`: delivered as i64 (rounded).
    Num(Num, bool),
    Bool(Bool),
    Enum(u16),
    Str(u16),
}

#[inline]
fn read<'a>(slots: &'a [Slot], i: u16, q: &mut Quality) -> R<&'a Value> {
    let slot = slots.get(usize::from(i)).ok_or(Fail::NoData)?;
    if slot.value.is_null() {
        return Err(Fail::NoData);
    }
    *q = q.worst(slot.quality);
    Ok(&slot.value)
}

#[inline]
fn finite(v: f64) -> R<f64> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(Fail::Calc)
    }
}

impl Num {
    pub(crate) fn eval(&self, s: &[Slot], q: &mut Quality) -> R<f64> {
        match self {
            Num::Const(v) => Ok(*v),
            Num::Slot(i) => match read(s, *i, q)? {
                Value::F64(v) => finite(*v),
                Value::I64(v) => Ok(*v as f64),
                _ => Err(Fail::Calc),
            },
            Num::Neg(a) => Ok(-a.eval(s, q)?),
            Num::Bin(op, a, b) => {
                let x = a.eval(s, q)?;
                let y = b.eval(s, q)?;
                finite(match op {
                    BinOp::Add => x + y,
                    BinOp::Sub => x - y,
                    BinOp::Mul => x * y,
                    BinOp::Div if y == 0.0 => return Err(Fail::Calc),
                    BinOp::Div => x / y,
                    BinOp::Rem if y == 0.0 => return Err(Fail::Calc),
                    BinOp::Rem => x % y,
                })
            }
            Num::Lin(a, scale, offset) => finite(a.eval(s, q)? * scale + offset),
            Num::Call(f, a) => {
                let x = a.eval(s, q)?;
                finite(match f {
                    Func1::Abs => x.abs(),
                    Func1::Sqrt if x < 0.0 => return Err(Fail::Calc),
                    Func1::Sqrt => x.sqrt(),
                    Func1::Exp => x.exp(),
                    Func1::Ln | Func1::Log10 if x <= 0.0 => return Err(Fail::Calc),
                    Func1::Ln => x.ln(),
                    Func1::Log10 => x.log10(),
                    Func1::Round => x.round(),
                    Func1::Floor => x.floor(),
                    Func1::Ceil => x.ceil(),
                })
            }
            Num::Min(args) => {
                let mut acc = f64::INFINITY;
                for a in args.iter() {
                    acc = acc.min(a.eval(s, q)?);
                }
                Ok(acc)
            }
            Num::Max(args) => {
                let mut acc = f64::NEG_INFINITY;
                for a in args.iter() {
                    acc = acc.max(a.eval(s, q)?);
                }
                Ok(acc)
            }
            Num::Clamp(args) => {
                let [x, lo, hi] = &**args;
                let x = x.eval(s, q)?;
                let lo = lo.eval(s, q)?;
                let hi = hi.eval(s, q)?;
                if lo > hi {
                    return Err(Fail::Calc);
                }
                Ok(x.clamp(lo, hi))
            }
            Num::If(c, a, b) => {
                if c.eval(s, q)? {
                    a.eval(s, q)
                } else {
                    b.eval(s, q)
                }
            }
        }
    }

    /// Adds every slot index read to `out`.
    pub(crate) fn slots(&self, out: &mut Vec<u16>) {
        match self {
            Num::Const(_) => {}
            Num::Slot(i) => out.push(*i),
            Num::Neg(a) | Num::Lin(a, ..) | Num::Call(_, a) => a.slots(out),
            Num::Bin(_, a, b) => {
                a.slots(out);
                b.slots(out);
            }
            Num::Min(args) | Num::Max(args) => args.iter().for_each(|a| a.slots(out)),
            Num::Clamp(args) => args.iter().for_each(|a| a.slots(out)),
            Num::If(c, a, b) => {
                c.slots(out);
                a.slots(out);
                b.slots(out);
            }
        }
    }
}

/// `lhs op rhs` without hysteresis.
#[inline]
pub(crate) fn compare(op: CmpOp, x: f64, y: f64) -> bool {
    match op {
        CmpOp::Gt => x > y,
        CmpOp::Ge => x >= y,
        CmpOp::Lt => x < y,
        CmpOp::Le => x <= y,
        CmpOp::Eq => x == y,
        CmpOp::Ne => x != y,
    }
}

impl EnumSrc {
    fn eval(&self, s: &[Slot], q: &mut Quality) -> R<u16> {
        match self {
            EnumSrc::Const(v) => Ok(*v),
            EnumSrc::Slot(i) => match read(s, *i, q)? {
                Value::Enum(v) => Ok(*v),
                _ => Err(Fail::Calc),
            },
        }
    }
}

impl StrSrc {
    fn eval<'a>(&'a self, s: &'a [Slot], q: &mut Quality) -> R<&'a str> {
        match self {
            StrSrc::Const(v) => Ok(v),
            StrSrc::Slot(i) => match read(s, *i, q)? {
                Value::String(v) => Ok(v),
                _ => Err(Fail::Calc),
            },
        }
    }
}

impl Bool {
    pub(crate) fn eval(&self, s: &[Slot], q: &mut Quality) -> R<bool> {
        match self {
            Bool::Const(b) => Ok(*b),
            Bool::Slot(i) => match read(s, *i, q)? {
                Value::Bool(b) => Ok(*b),
                _ => Err(Fail::Calc),
            },
            Bool::Not(a) => Ok(!a.eval(s, q)?),
            Bool::And(a, b) => Ok(a.eval(s, q)? && b.eval(s, q)?),
            Bool::Or(a, b) => Ok(a.eval(s, q)? || b.eval(s, q)?),
            Bool::Cmp(op, a, b) => {
                let x = a.eval(s, q)?;
                let y = b.eval(s, q)?;
                Ok(compare(*op, x, y))
            }
            Bool::EnumEq(eq, a, b) => Ok((a.eval(s, q)? == b.eval(s, q)?) == *eq),
            Bool::StrEq(eq, a, b) => Ok((a.eval(s, q)? == b.eval(s, q)?) == *eq),
            Bool::Eq(eq, a, b) => Ok((a.eval(s, q)? == b.eval(s, q)?) == *eq),
            Bool::If(c, a, b) => {
                if c.eval(s, q)? {
                    a.eval(s, q)
                } else {
                    b.eval(s, q)
                }
            }
        }
    }

    pub(crate) fn slots(&self, out: &mut Vec<u16>) {
        let src = |e: &EnumSrc, out: &mut Vec<u16>| {
            if let EnumSrc::Slot(i) = e {
                out.push(*i);
            }
        };
        match self {
            Bool::Const(_) => {}
            Bool::Slot(i) => out.push(*i),
            Bool::Not(a) => a.slots(out),
            Bool::And(a, b) | Bool::Or(a, b) | Bool::Eq(_, a, b) => {
                a.slots(out);
                b.slots(out);
            }
            Bool::Cmp(_, a, b) => {
                a.slots(out);
                b.slots(out);
            }
            Bool::EnumEq(_, a, b) => {
                src(a, out);
                src(b, out);
            }
            Bool::StrEq(_, a, b) => {
                for x in [a, b] {
                    if let StrSrc::Slot(i) = x {
                        out.push(*i);
                    }
                }
            }
            Bool::If(c, a, b) => {
                c.slots(out);
                a.slots(out);
                b.slots(out);
            }
        }
    }
}

impl Top {
    pub(crate) fn eval(&self, s: &[Slot]) -> (Value, Quality) {
        let mut q = Quality::Good;
        let r = match self {
            Top::Num(n, as_int) => n.eval(s, &mut q).and_then(|v| {
                if !*as_int {
                    Ok(Value::F64(v))
                } else if v.abs() < 9.2e18 {
                    Ok(Value::I64(v.round() as i64))
                } else {
                    Err(Fail::Calc)
                }
            }),
            Top::Bool(b) => b.eval(s, &mut q).map(Value::Bool),
            Top::Enum(i) => read(s, *i, &mut q).and_then(|v| match v {
                Value::Enum(_) => Ok(v.clone()),
                _ => Err(Fail::Calc),
            }),
            Top::Str(i) => read(s, *i, &mut q).and_then(|v| match v {
                Value::String(_) => Ok(v.clone()),
                _ => Err(Fail::Calc),
            }),
        };
        match r {
            Ok(v) => (v, q),
            Err(f) => (Value::Null, f.quality()),
        }
    }

    pub(crate) fn slots(&self, out: &mut Vec<u16>) {
        match self {
            Top::Num(n, _) => n.slots(out),
            Top::Bool(b) => b.slots(out),
            Top::Enum(i) | Top::Str(i) => out.push(*i),
        }
    }
}
