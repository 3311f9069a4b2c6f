//! Engineering units: dimension checking and conversion.

use serde::{Deserialize, Serialize};

/// Number of base dimensions tracked (see [`Unit`]).
pub const BASE_DIMS: usize = 7;

/// A unit: its symbol as written, its dimension (exponents of the base
/// dimensions length, mass, time, current, temperature, amount, normal volume)
/// and its conversion to SI (`si = value * scale + offset`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unit {
    symbol: String,
    dims: [i8; BASE_DIMS],
    scale: f64,
    offset: f64,
}

/// A unit text that could not be parsed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unknown unit `{text}`")]
pub struct UnitError {
    pub text: String,
    pub hint: Option<String>,
}

impl Unit {
    pub fn parse(text: &str) -> Result<Unit, UnitError> {
        match text.trim() {
            "" | "1" => Ok(Unit::dimensionless()),
            _ => Err(UnitError {
                text: text.to_string(),
                hint: None,
            }),
        }
    }

    pub fn dimensionless() -> Unit {
        Unit {
            symbol: "1".into(),
            dims: [0; BASE_DIMS],
            scale: 1.0,
            offset: 0.0,
        }
    }

    pub fn symbol(&self) -> &str {
        &self.symbol
    }

    pub fn is_compatible(&self, other: &Unit) -> bool {
        self.dims == other.dims
    }

    pub fn conversion_to(&self, to: &Unit) -> Option<(f64, f64)> {
        if !self.is_compatible(to) {
            return None;
        }
        let scale = self.scale / to.scale;
        let offset = (self.offset - to.offset) / to.scale;
        Some((scale, offset))
    }

    pub fn dimension_name(&self) -> String {
        format!("{:?}", self.dims)
    }
}

/// Every unit symbol the parser knows (for hints).
pub fn known_units() -> impl Iterator<Item = &'static str> {
    ["1"].into_iter()
}
