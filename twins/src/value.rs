//! Typed property values.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The type of a property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueType {
    F64,
    I64,
    Bool,
    String,
    /// One of a closed set of named states; the value is the index of the state.
    Enum,
}

impl ValueType {
    pub fn name(self) -> &'static str {
        match self {
            ValueType::F64 => "f64",
            ValueType::I64 => "i64",
            ValueType::Bool => "bool",
            ValueType::String => "string",
            ValueType::Enum => "enum",
        }
    }

    /// Whether values of this type can be used in arithmetic and numeric roll-ups.
    pub fn is_numeric(self) -> bool {
        matches!(self, ValueType::F64 | ValueType::I64)
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A property value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub enum Value {
    /// No value yet.
    #[default]
    Null,
    F64(f64),
    I64(i64),
    Bool(bool),
    String(Arc<str>),
    Enum(u16),
}

impl Value {
    pub fn value_type(&self) -> Option<ValueType> {
        Some(match self {
            Value::Null => return None,
            Value::F64(_) => ValueType::F64,
            Value::I64(_) => ValueType::I64,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Enum(_) => ValueType::Enum,
        })
    }

    /// The value as a number: f64 and i64 as themselves, bool as 0/1,
    /// enum as its index; `None` for null and strings.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::F64(v) => Some(*v),
            Value::I64(v) => Some(*v as f64),
            Value::Bool(v) => Some(if *v { 1.0 } else { 0.0 }),
            Value::Enum(v) => Some(f64::from(*v)),
            Value::Null | Value::String(_) => None,
        }
    }

    /// The value as a truth value: bool as itself, numbers as non-zero.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(v) => Some(*v),
            Value::F64(v) => Some(*v != 0.0),
            Value::I64(v) => Some(*v != 0),
            Value::Null | Value::String(_) | Value::Enum(_) => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::F64(v) => write!(f, "{v}"),
            Value::I64(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::String(v) => write!(f, "{v:?}"),
            Value::Enum(v) => write!(f, "#{v}"),
        }
    }
}
