//! Expressions for derived properties, alarm conditions and suppression.

/// A compiled expression (placeholder; being written).
#[derive(Debug, Clone)]
pub struct CompiledExpr;

/// An alarm condition (placeholder; being written).
#[derive(Debug, Clone)]
pub struct Condition;
