//! Model parameters: named `f64` knobs with documented defaults and ranges.

use std::collections::BTreeMap;

use crate::models;

/// One tunable constant of a process model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Param {
    pub name: &'static str,
    /// The design or rated value used when the knob is not set.
    pub default: f64,
    /// Values are clamped into `[min, max]`.
    pub min: f64,
    pub max: f64,
    pub unit: &'static str,
    pub doc: &'static str,
}

impl Param {
    pub const fn new(
        name: &'static str,
        default: f64,
        (min, max): (f64, f64),
        unit: &'static str,
        doc: &'static str,
    ) -> Self {
        Self {
            name,
            default,
            min,
            max,
            unit,
            doc,
        }
    }
}

/// Scales every model's measurement noise and random wander (0: smooth).
pub const NOISE: Param = Param {
    name: "noise",
    default: 1.0,
    min: 0.0,
    max: 10.0,
    unit: "",
    doc: "multiplier on measurement noise and random wander; 0 makes the model smooth",
};

/// Scales every model's rate of trips and disturbances (0: none).
pub const UPSET_RATE: Param = Param {
    name: "upset_rate",
    default: 1.0,
    min: 0.0,
    max: 100.0,
    unit: "",
    doc: "multiplier on the rate of trips and disturbances; 0 turns them off",
};

/// Knob values for one model instance; unset knobs take their defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelParams {
    values: BTreeMap<String, f64>,
}

impl ModelParams {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a knob, builder style.
    pub fn with(mut self, name: impl Into<String>, value: f64) -> Self {
        self.set(name, value);
        self
    }

    pub fn set(&mut self, name: impl Into<String>, value: f64) {
        self.values.insert(name.into(), value);
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        self.values.get(name).copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.values.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// The value of `p` for a model: the one set here clamped into its range,
    /// or its default when unset or not finite.
    pub fn value(&self, p: &Param) -> f64 {
        match self.get(p.name) {
            Some(v) if v.is_finite() => v.clamp(p.min, p.max),
            _ => p.default,
        }
    }

    /// Checks these knobs against a model: the model must exist and every knob
    /// must be one of its parameters, finite and within range. Collects every
    /// problem.
    pub fn check(&self, kind: &str) -> Result<(), Vec<ParamError>> {
        let Some(spec) = params_for(kind) else {
            return Err(vec![ParamError::UnknownModel {
                kind: kind.to_owned(),
                known: models::KNOWN.join(", "),
            }]);
        };
        let errors: Vec<ParamError> = self
            .iter()
            .filter_map(|(name, value)| match spec.iter().find(|p| p.name == name) {
                None => Some(ParamError::UnknownParam {
                    kind: kind.to_owned(),
                    name: name.to_owned(),
                    known: spec.iter().map(|p| p.name).collect::<Vec<_>>().join(", "),
                }),
                Some(p) if !(p.min..=p.max).contains(&value) => Some(ParamError::OutOfRange {
                    name: name.to_owned(),
                    min: p.min,
                    max: p.max,
                    value,
                }),
                Some(_) => None,
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// A problem with a model's knobs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParamError {
    #[error("unknown process model: expected one of {known}, found {kind:?}")]
    UnknownModel { kind: String, known: String },
    #[error("unknown parameter of {kind}: expected one of {known}, found {name:?}")]
    UnknownParam {
        kind: String,
        name: String,
        known: String,
    },
    #[error("parameter {name} out of range: expected {min} to {max}, found {value}")]
    OutOfRange {
        name: String,
        min: f64,
        max: f64,
        value: f64,
    },
}

/// The parameters of a process model, `None` for an unknown kind.
pub fn params_for(kind: &str) -> Option<&'static [Param]> {
    models::params_for(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_clamped_and_defaulted() {
        let p = ModelParams::new()
            .with("noise", 50.0)
            .with("upset_rate", f64::NAN);
        assert_eq!(p.value(&NOISE), 10.0);
        assert_eq!(p.value(&UPSET_RATE), 1.0);
        assert_eq!(ModelParams::new().value(&NOISE), 1.0);
    }

    #[test]
    fn check_collects_every_problem() {
        let p = ModelParams::new()
            .with("noise", -1.0)
            .with("rated_flow", 300.0)
            .with("colour", 1.0);
        let errs = p.check("centrifugal_pump").unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        let msgs: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert!(msgs.iter().any(|m| m.starts_with(
            "unknown parameter of centrifugal_pump: expected one of noise, upset_rate"
        )));
        assert!(
            msgs.iter()
                .any(|m| m == "parameter noise out of range: expected 0 to 10, found -1")
        );
        for m in &msgs {
            assert!(!m.ends_with('.') && m.contains("expected") && m.contains("found"));
        }
        assert!(matches!(
            ModelParams::new().check("boiler").unwrap_err()[..],
            [ParamError::UnknownModel { .. }]
        ));
        for kind in crate::known_models() {
            assert_eq!(ModelParams::new().check(kind), Ok(()));
            let spec = params_for(kind).unwrap();
            let all = spec
                .iter()
                .fold(ModelParams::new(), |p, s| p.with(s.name, s.default));
            assert_eq!(all.check(kind), Ok(()), "{kind}: defaults must be in range");
        }
    }
}
