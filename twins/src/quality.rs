//! OPC UA-style data quality: Good, Uncertain or Bad, each with a reason.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a value is not (entirely) good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// No reason (used with Good).
    None,
    /// No sample has arrived yet.
    NoData,
    /// No sample within the expected period × the staleness factor.
    Stale,
    /// The link to the device or its source is down.
    CommFailure,
    /// The value lies outside the property's configured range.
    OutOfRange,
    /// The device reported a sensor fault.
    SensorFault,
    /// An operator set the value by hand.
    ManualOverride,
    /// An expression could not be evaluated (division by zero, domain error).
    CalcError,
    /// Some, not all, contributors of an aggregate are good.
    SubNormal,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::None => "none",
            Reason::NoData => "no_data",
            Reason::Stale => "stale",
            Reason::CommFailure => "comm_failure",
            Reason::OutOfRange => "out_of_range",
            Reason::SensorFault => "sensor_fault",
            Reason::ManualOverride => "manual_override",
            Reason::CalcError => "calc_error",
            Reason::SubNormal => "sub_normal",
        }
    }
}

/// The quality of a value, ordered from best to worst:
/// `Good < Uncertain(_) < Bad(_)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    Good,
    Uncertain(Reason),
    Bad(Reason),
}

/// The three quality classes, without reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum QualityClass {
    Good,
    Uncertain,
    Bad,
}

impl Quality {
    pub const NO_DATA: Quality = Quality::Bad(Reason::NoData);

    pub fn class(self) -> QualityClass {
        match self {
            Quality::Good => QualityClass::Good,
            Quality::Uncertain(_) => QualityClass::Uncertain,
            Quality::Bad(_) => QualityClass::Bad,
        }
    }

    pub fn reason(self) -> Reason {
        match self {
            Quality::Good => Reason::None,
            Quality::Uncertain(r) | Quality::Bad(r) => r,
        }
    }

    pub fn is_good(self) -> bool {
        matches!(self, Quality::Good)
    }

    pub fn is_bad(self) -> bool {
        matches!(self, Quality::Bad(_))
    }

    /// The worse of two qualities; on a tie of class, the greater reason wins,
    /// so the result does not depend on argument order.
    pub fn worst(self, other: Quality) -> Quality {
        use std::cmp::Ordering::*;
        match self.class().cmp(&other.class()) {
            Less => other,
            Greater => self,
            Equal => {
                if other.reason() > self.reason() {
                    other
                } else {
                    self
                }
            }
        }
    }
}

impl Default for Quality {
    fn default() -> Self {
        Quality::NO_DATA
    }
}

impl fmt::Display for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quality::Good => f.write_str("good"),
            Quality::Uncertain(r) => write!(f, "uncertain({})", r.name()),
            Quality::Bad(r) => write!(f, "bad({})", r.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reason() -> impl Strategy<Value = Reason> {
        prop_oneof![
            Just(Reason::None),
            Just(Reason::NoData),
            Just(Reason::Stale),
            Just(Reason::CommFailure),
            Just(Reason::OutOfRange),
            Just(Reason::SensorFault),
            Just(Reason::ManualOverride),
            Just(Reason::CalcError),
            Just(Reason::SubNormal),
        ]
    }

    fn quality() -> impl Strategy<Value = Quality> {
        prop_oneof![
            Just(Quality::Good),
            reason().prop_map(Quality::Uncertain),
            reason().prop_map(Quality::Bad),
        ]
    }

    proptest! {
        #[test]
        fn worst_is_commutative_associative_and_idempotent(a in quality(), b in quality(), c in quality()) {
            prop_assert_eq!(a.worst(b), b.worst(a));
            prop_assert_eq!(a.worst(b).worst(c), a.worst(b.worst(c)));
            prop_assert_eq!(a.worst(a), a);
            prop_assert_eq!(Quality::Good.worst(a), a);
            prop_assert!(a.worst(b).class() >= a.class());
        }
    }

    #[test]
    fn bad_beats_uncertain_beats_good() {
        let u = Quality::Uncertain(Reason::Stale);
        let b = Quality::Bad(Reason::CommFailure);
        assert_eq!(Quality::Good.worst(u), u);
        assert_eq!(u.worst(b), b);
        assert_eq!(b.worst(Quality::Good), b);
    }
}
