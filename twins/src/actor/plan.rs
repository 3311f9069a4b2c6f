//! How a child of one class feeds the roll-ups of a parent of another.

use std::sync::Arc;

use crate::model::{AggFunc, Class};
use crate::rollup::{Contribution, Input};
use crate::sample::Slot;

/// For each roll-up of the parent: where the child's input comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub inputs: Vec<Option<Source>>,
}

/// A child's slot feeding one roll-up, with the unit conversion into the
/// parent's unit (`v * scale + offset`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Source {
    pub slot: u16,
    pub weight: Option<u16>,
    pub scale: f64,
    pub offset: f64,
}

impl Plan {
    /// The plan for a child of class `child` under a parent of class `parent`.
    pub fn new(parent: &Class, child: &Class) -> Arc<Plan> {
        let inputs = parent
            .rollups
            .iter()
            .map(|r| {
                if !r.class_filter.is_empty() && !r.class_filter.iter().any(|c| child.is_a(c)) {
                    return None;
                }
                let slot = child.prop_index(&r.input)?;
                let weight = match (&r.weight, r.func) {
                    (Some(w), AggFunc::WAvg) => Some(child.prop_index(w)?),
                    _ => None,
                };
                let (scale, offset) = match (&child.props[slot as usize].unit, &r.unit) {
                    (Some(from), Some(to)) => from.conversion_to(to).unwrap_or((1.0, 0.0)),
                    _ => (1.0, 0.0),
                };
                Some(Source {
                    slot,
                    weight,
                    scale,
                    offset,
                })
            })
            .collect();
        Arc::new(Plan { inputs })
    }

    /// The child's contribution given its current slots.
    pub fn contribution(&self, slots: &[Slot], alarms: crate::rollup::AlarmCounts) -> Contribution {
        let inputs = self
            .inputs
            .iter()
            .map(|src| match src {
                None => Input::Absent,
                Some(s) => {
                    let slot = &slots[s.slot as usize];
                    let Some(v) = slot.value.as_f64() else {
                        return Input::Present {
                            value: 0.0,
                            weight: 0.0,
                            quality: slot.quality.worst(crate::Quality::NO_DATA),
                        };
                    };
                    let (weight, wq) = match s.weight {
                        None => (1.0, crate::Quality::Good),
                        Some(w) => {
                            let ws = &slots[w as usize];
                            (ws.value.as_f64().unwrap_or(0.0), ws.quality)
                        }
                    };
                    Input::Present {
                        value: v * s.scale + s.offset,
                        weight,
                        quality: slot.quality.worst(wq),
                    }
                }
            })
            .collect();
        Contribution { inputs, alarms }
    }
}
