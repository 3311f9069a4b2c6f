//! Engineering units: dimension checking and conversion.

/// A unit (placeholder; being written).
#[derive(Debug, Clone, PartialEq)]
pub struct Unit;
