//! Roll-up arithmetic (sans-IO): incremental aggregation of children's
//! contributions.
//!
//! A container twin keeps each child's latest [`Contribution`] and a
//! [`RollupSet`] of running aggregates. When a child's contribution changes,
//! [`RollupSet::replace`] retracts the old one and adds the new one in O(roll-ups),
//! whatever the number of children. Sums use Neumaier-compensated arithmetic
//! and are re-derived from the children every [`RECOMPUTE_EVERY`] replacements
//! per child, so rounding drift stays bounded; min and max are recomputed only
//! when the child holding the extreme moves away from it.
//!
//! Quality follows OPC UA aggregate practice: Bad inputs are excluded from the
//! value and counted; the result is Good when every present contributor is
//! Good, Uncertain(sub_normal) when some are not, and Bad(no_data) when no
//! contributor has a usable value (for functions undefined on the empty set).

use serde::{Deserialize, Serialize};

use crate::alarm::Priority;
use crate::model::AggFunc;
use crate::quality::{Quality, QualityClass, Reason};
use crate::value::Value;

/// Sums are re-derived from scratch after this many replacements per child.
pub const RECOMPUTE_EVERY: u32 = 64;

/// One child's input to one roll-up of its parent.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub enum Input {
    /// The child does not take part (filtered out by class, or has no such property).
    #[default]
    Absent,
    /// The child's value (bools as 0/1), its weight (1 unless `wavg`) and quality.
    Present {
        value: f64,
        weight: f64,
        quality: Quality,
    },
}

impl Input {
    pub fn present(value: f64, quality: Quality) -> Self {
        Input::Present {
            value,
            weight: 1.0,
            quality,
        }
    }

    /// The input as aggregated: non-finite values count as Bad(calc_error).
    fn normalized(self) -> Input {
        match self {
            Input::Present {
                value,
                weight,
                quality,
            } if !quality.is_bad() && (!value.is_finite() || !weight.is_finite()) => {
                Input::Present {
                    value,
                    weight,
                    quality: Quality::Bad(Reason::CalcError),
                }
            }
            other => other,
        }
    }

    /// Value and weight if the input is usable (present and not Bad).
    fn usable(self) -> Option<(f64, f64)> {
        match self {
            Input::Present {
                value,
                weight,
                quality,
            } if !quality.is_bad() => Some((value, weight)),
            _ => None,
        }
    }

    fn class(self) -> Option<QualityClass> {
        match self {
            Input::Absent => None,
            Input::Present { quality, .. } => Some(quality.class()),
        }
    }
}

/// Active (annunciated) and unacknowledged alarm counts by priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AlarmCounts {
    pub active: [u32; 4],
    pub unacked: [u32; 4],
}

impl AlarmCounts {
    pub fn add(&mut self, other: &AlarmCounts) {
        for i in 0..4 {
            self.active[i] += other.active[i];
            self.unacked[i] += other.unacked[i];
        }
    }

    pub fn sub(&mut self, other: &AlarmCounts) {
        for i in 0..4 {
            self.active[i] = self.active[i].saturating_sub(other.active[i]);
            self.unacked[i] = self.unacked[i].saturating_sub(other.unacked[i]);
        }
    }

    pub fn active_total(&self) -> u32 {
        self.active.iter().sum()
    }

    pub fn active_of(&self, p: Priority) -> u32 {
        self.active[p.index()]
    }
}

/// Everything one child contributes to its parent.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Contribution {
    /// One entry per roll-up of the parent, in the parent's roll-up order.
    pub inputs: Vec<Input>,
    /// Active alarms of the child and its whole subtree.
    pub alarms: AlarmCounts,
}

/// How many children took part in an aggregate, by quality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counts {
    pub total: u32,
    pub good: u32,
    pub uncertain: u32,
    pub bad: u32,
}

impl Counts {
    fn add(&mut self, class: QualityClass) {
        self.total += 1;
        match class {
            QualityClass::Good => self.good += 1,
            QualityClass::Uncertain => self.uncertain += 1,
            QualityClass::Bad => self.bad += 1,
        }
    }

    fn sub(&mut self, class: QualityClass) {
        self.total -= 1;
        match class {
            QualityClass::Good => self.good -= 1,
            QualityClass::Uncertain => self.uncertain -= 1,
            QualityClass::Bad => self.bad -= 1,
        }
    }
}

/// An aggregate's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    pub value: Value,
    pub quality: Quality,
    pub counts: Counts,
}

/// A compensated running sum (Neumaier) that supports retraction.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct KahanSum {
    sum: f64,
    comp: f64,
}

impl KahanSum {
    fn add(&mut self, x: f64) {
        let t = self.sum + x;
        if self.sum.abs() >= x.abs() {
            self.comp += (self.sum - t) + x;
        } else {
            self.comp += (x - t) + self.sum;
        }
        self.sum = t;
    }

    fn value(&self) -> f64 {
        self.sum + self.comp
    }
}

/// The running state of one roll-up.
#[derive(Debug, Clone, PartialEq)]
struct Running {
    func: AggFunc,
    counts: Counts,
    /// Usable (non-Bad) contributors.
    usable: u32,
    sum: KahanSum,
    wsum: KahanSum,
    wvsum: KahanSum,
    n_true: u32,
    extreme: Option<(f64, usize)>,
    extreme_dirty: bool,
}

impl Running {
    fn new(func: AggFunc) -> Self {
        Self {
            func,
            counts: Counts::default(),
            usable: 0,
            sum: KahanSum::default(),
            wsum: KahanSum::default(),
            wvsum: KahanSum::default(),
            n_true: 0,
            extreme: None,
            extreme_dirty: false,
        }
    }

    fn better(&self, a: f64, b: f64) -> bool {
        match self.func {
            AggFunc::Min => a < b,
            _ => a > b,
        }
    }

    fn is_extreme(&self) -> bool {
        matches!(self.func, AggFunc::Min | AggFunc::Max)
    }

    fn apply(&mut self, child: usize, input: Input, sign: f64) {
        let Some(class) = input.class() else { return };
        if sign > 0.0 {
            self.counts.add(class);
        } else {
            self.counts.sub(class);
        }
        let Some((v, w)) = input.usable() else { return };
        if sign > 0.0 {
            self.usable += 1;
        } else {
            self.usable -= 1;
        }
        self.sum.add(sign * v);
        self.wsum.add(sign * w);
        self.wvsum.add(sign * v * w);
        if v != 0.0 {
            if sign > 0.0 {
                self.n_true += 1;
            } else {
                self.n_true -= 1;
            }
        }
        if self.is_extreme() && !self.extreme_dirty {
            if sign > 0.0 {
                match self.extreme {
                    Some((e, _)) if !self.better(v, e) => {}
                    _ => self.extreme = Some((v, child)),
                }
            } else if matches!(self.extreme, Some((_, holder)) if holder == child) {
                self.extreme_dirty = true;
            }
        }
    }

    fn result(&self) -> Aggregate {
        let c = self.counts;
        let quality = if c.total == 0 || (c.good == c.total) {
            Quality::Good
        } else if self.usable == 0 {
            Quality::Bad(Reason::NoData)
        } else {
            Quality::Uncertain(Reason::SubNormal)
        };
        let undefined = Aggregate {
            value: Value::Null,
            quality: Quality::Bad(Reason::NoData),
            counts: c,
        };
        let value = match self.func {
            AggFunc::Count => Value::I64(i64::from(self.usable)),
            AggFunc::CountTrue => Value::I64(i64::from(self.n_true)),
            AggFunc::Any if self.usable == 0 && c.total > 0 => return undefined,
            AggFunc::Any => Value::Bool(self.n_true > 0),
            AggFunc::All if self.usable == 0 && c.total > 0 => return undefined,
            AggFunc::All => Value::Bool(self.n_true == self.usable),
            AggFunc::Sum if self.usable == 0 && c.total > 0 => return undefined,
            AggFunc::Sum => Value::F64(self.sum.value()),
            _ if self.usable == 0 => return undefined,
            AggFunc::Avg => Value::F64(self.sum.value() / f64::from(self.usable)),
            AggFunc::WAvg => {
                let w = self.wsum.value();
                if w == 0.0 {
                    return Aggregate {
                        value: Value::Null,
                        quality: Quality::Bad(Reason::CalcError),
                        counts: c,
                    };
                }
                Value::F64(self.wvsum.value() / w)
            }
            AggFunc::Min | AggFunc::Max => match self.extreme {
                Some((e, _)) => Value::F64(e),
                None => return undefined,
            },
        };
        Aggregate {
            value,
            quality,
            counts: c,
        }
    }
}

/// All roll-ups of one container twin over its children.
#[derive(Debug, Clone)]
pub struct RollupSet {
    running: Vec<Running>,
    children: Vec<Contribution>,
    alarms: AlarmCounts,
    replacements: u32,
}

impl RollupSet {
    /// A set for `funcs` (the parent's roll-ups in order) over `children` children,
    /// each initially contributing nothing.
    pub fn new(funcs: &[AggFunc], children: usize) -> Self {
        let empty = Contribution {
            inputs: vec![Input::Absent; funcs.len()],
            alarms: AlarmCounts::default(),
        };
        Self {
            running: funcs.iter().map(|f| Running::new(*f)).collect(),
            children: vec![empty; children],
            alarms: AlarmCounts::default(),
            replacements: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.running.len()
    }

    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    pub fn child_count(&self) -> usize {
        self.children.len()
    }

    pub fn contribution(&self, child: usize) -> &Contribution {
        &self.children[child]
    }

    /// Replaces child `child`'s contribution. Inputs beyond the number of
    /// roll-ups are ignored; missing ones count as absent.
    pub fn replace(&mut self, child: usize, mut new: Contribution) {
        new.inputs.resize(self.running.len(), Input::Absent);
        for input in &mut new.inputs {
            *input = input.normalized();
        }
        let old = std::mem::replace(&mut self.children[child], new);
        let new = &self.children[child];
        for (j, r) in self.running.iter_mut().enumerate() {
            if old.inputs[j] != new.inputs[j] {
                r.apply(child, old.inputs[j], -1.0);
                r.apply(child, new.inputs[j], 1.0);
            }
        }
        self.alarms.sub(&old.alarms);
        self.alarms.add(&new.alarms);
        self.replacements += 1;
        if self.replacements >= RECOMPUTE_EVERY.saturating_mul(self.children.len().max(1) as u32) {
            self.recompute();
        }
    }

    /// The current result of roll-up `j`.
    pub fn result(&mut self, j: usize) -> Aggregate {
        if self.running[j].extreme_dirty {
            self.recompute_extreme(j);
        }
        self.running[j].result()
    }

    /// Subtree alarm counts of all children together.
    pub fn alarms(&self) -> AlarmCounts {
        self.alarms
    }

    fn recompute_extreme(&mut self, j: usize) {
        let r = &mut self.running[j];
        r.extreme = None;
        r.extreme_dirty = false;
        for (child, c) in self.children.iter().enumerate() {
            if let Some((v, _)) = c.inputs[j].usable() {
                match r.extreme {
                    Some((e, _)) if !r.better(v, e) => {}
                    _ => r.extreme = Some((v, child)),
                }
            }
        }
    }

    /// Re-derives every running aggregate from the children.
    pub fn recompute(&mut self) {
        let funcs: Vec<AggFunc> = self.running.iter().map(|r| r.func).collect();
        let fresh = Self::from_scratch(&funcs, &self.children);
        self.running = fresh.running;
        self.alarms = fresh.alarms;
        self.replacements = 0;
    }

    /// The aggregates computed from scratch over `children` (the reference
    /// the incremental path must agree with).
    pub fn from_scratch(funcs: &[AggFunc], children: &[Contribution]) -> Self {
        let mut set = Self::new(funcs, 0);
        set.children = children.to_vec();
        for (child, c) in children.iter().enumerate() {
            for (j, r) in set.running.iter_mut().enumerate() {
                r.apply(child, c.inputs.get(j).copied().unwrap_or_default(), 1.0);
            }
            set.alarms.add(&c.alarms);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FUNCS: [AggFunc; 9] = AggFunc::ALL;

    fn good(v: f64) -> Input {
        Input::present(v, Quality::Good)
    }

    fn contribution(inputs: Vec<Input>) -> Contribution {
        Contribution {
            inputs,
            alarms: AlarmCounts::default(),
        }
    }

    #[test]
    fn sums_and_counts_follow_replacements() {
        let mut set = RollupSet::new(&[AggFunc::Sum, AggFunc::Count, AggFunc::Max], 3);
        for (i, v) in [10.0, 20.0, 30.0].into_iter().enumerate() {
            set.replace(i, contribution(vec![good(v); 3]));
        }
        assert_eq!(set.result(0).value, Value::F64(60.0));
        assert_eq!(set.result(1).value, Value::I64(3));
        assert_eq!(set.result(2).value, Value::F64(30.0));
        set.replace(2, contribution(vec![good(5.0); 3]));
        assert_eq!(set.result(0).value, Value::F64(35.0));
        assert_eq!(set.result(2).value, Value::F64(20.0));
    }

    #[test]
    fn bad_children_are_excluded_and_counted() {
        let mut set = RollupSet::new(&[AggFunc::Sum, AggFunc::Avg], 3);
        set.replace(0, contribution(vec![good(4.0); 2]));
        set.replace(1, contribution(vec![good(6.0); 2]));
        set.replace(
            2,
            contribution(vec![
                Input::present(
                    1000.0,
                    Quality::Bad(Reason::CommFailure)
                );
                2
            ]),
        );
        let sum = set.result(0);
        assert_eq!(sum.value, Value::F64(10.0));
        assert_eq!(sum.quality, Quality::Uncertain(Reason::SubNormal));
        assert_eq!(
            sum.counts,
            Counts {
                total: 3,
                good: 2,
                uncertain: 0,
                bad: 1
            }
        );
        assert_eq!(set.result(1).value, Value::F64(5.0));
    }

    #[test]
    fn stale_children_keep_their_value_but_degrade_quality() {
        let mut set = RollupSet::new(&[AggFunc::Sum], 2);
        set.replace(0, contribution(vec![good(1.0)]));
        set.replace(
            1,
            contribution(vec![Input::present(2.0, Quality::Uncertain(Reason::Stale))]),
        );
        let r = set.result(0);
        assert_eq!(r.value, Value::F64(3.0));
        assert_eq!(r.quality, Quality::Uncertain(Reason::SubNormal));
        assert_eq!(r.counts.uncertain, 1);
    }

    #[test]
    fn empty_sets_have_defined_results() {
        let mut set = RollupSet::new(&FUNCS, 2);
        assert_eq!(set.result(0).value, Value::F64(0.0)); // sum
        assert_eq!(set.result(1).quality, Quality::Bad(Reason::NoData)); // avg
        assert_eq!(set.result(4).value, Value::I64(0)); // count
        assert_eq!(set.result(6).value, Value::Bool(false)); // any
        assert_eq!(set.result(7).value, Value::Bool(true)); // all, vacuously
    }

    #[test]
    fn wavg_weights_values() {
        let mut set = RollupSet::new(&[AggFunc::WAvg], 2);
        let w = |v, w| Input::Present {
            value: v,
            weight: w,
            quality: Quality::Good,
        };
        set.replace(0, contribution(vec![w(10.0, 1.0)]));
        set.replace(1, contribution(vec![w(20.0, 3.0)]));
        assert_eq!(set.result(0).value, Value::F64(17.5));
    }

    #[test]
    fn non_finite_values_count_as_bad() {
        let mut set = RollupSet::new(&[AggFunc::Sum], 2);
        set.replace(0, contribution(vec![good(f64::NAN)]));
        set.replace(1, contribution(vec![good(2.0)]));
        let r = set.result(0);
        assert_eq!(r.value, Value::F64(2.0));
        assert_eq!(r.counts.bad, 1);
    }

    #[test]
    fn alarm_counts_add_up_and_retract() {
        let mut set = RollupSet::new(&[], 2);
        let mut a = AlarmCounts::default();
        a.active[Priority::High.index()] = 2;
        set.replace(
            0,
            Contribution {
                inputs: vec![],
                alarms: a,
            },
        );
        set.replace(
            1,
            Contribution {
                inputs: vec![],
                alarms: a,
            },
        );
        assert_eq!(set.alarms().active_of(Priority::High), 4);
        set.replace(1, Contribution::default());
        assert_eq!(set.alarms().active_of(Priority::High), 2);
    }

    // ----- property test: incremental == from scratch -----

    fn quality() -> impl Strategy<Value = Quality> {
        prop_oneof![
            6 => Just(Quality::Good),
            2 => Just(Quality::Uncertain(Reason::Stale)),
            1 => Just(Quality::Bad(Reason::CommFailure)),
            1 => Just(Quality::Bad(Reason::NoData)),
        ]
    }

    fn input() -> impl Strategy<Value = Input> {
        prop_oneof![
            1 => Just(Input::Absent),
            2 => (0u8..2).prop_map(|b| Input::present(f64::from(b), Quality::Good)),
            6 => (-1.0e6..1.0e6f64, 0.1..100.0f64, quality())
                .prop_map(|(value, weight, quality)| Input::Present { value, weight, quality }),
        ]
    }

    fn counts() -> impl Strategy<Value = AlarmCounts> {
        ([0u32..5, 0..5, 0..5, 0..5], [0u32..3, 0..3, 0..3, 0..3])
            .prop_map(|(active, unacked)| AlarmCounts { active, unacked })
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// A child publishes a new contribution.
        Update(usize, Vec<Input>, AlarmCounts),
        /// A child restarts: its contribution resets to nothing until it reports again.
        Restart(usize),
        /// A child goes stale: same values, quality Uncertain(stale).
        Stale(usize),
    }

    fn op(children: usize) -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..children, proptest::collection::vec(input(), FUNCS.len()), counts())
                .prop_map(|(c, i, a)| Op::Update(c, i, a)),
            1 => (0..children).prop_map(Op::Restart),
            2 => (0..children).prop_map(Op::Stale),
        ]
    }

    fn close(a: &Aggregate, b: &Aggregate, scale: f64) -> bool {
        if a.quality != b.quality || a.counts != b.counts {
            return false;
        }
        match (&a.value, &b.value) {
            (Value::F64(x), Value::F64(y)) => (x - y).abs() <= 1e-9 * scale.max(1.0),
            (x, y) => x == y,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn incremental_equals_from_scratch(
            children in 1usize..12,
            ops in (1usize..12).prop_flat_map(|n| proptest::collection::vec(op(n), 1..200)),
        ) {
            let mut set = RollupSet::new(&FUNCS, children);
            let mut model: Vec<Contribution> = vec![
                Contribution { inputs: vec![Input::Absent; FUNCS.len()], alarms: AlarmCounts::default() };
                children
            ];
            for op in ops {
                match op {
                    Op::Update(c, inputs, alarms) => {
                        let c = c % children;
                        model[c] = Contribution { inputs, alarms };
                        set.replace(c, model[c].clone());
                    }
                    Op::Restart(c) => {
                        let c = c % children;
                        model[c] = Contribution { inputs: vec![Input::Absent; FUNCS.len()], alarms: AlarmCounts::default() };
                        set.replace(c, model[c].clone());
                    }
                    Op::Stale(c) => {
                        let c = c % children;
                        for i in &mut model[c].inputs {
                            if let Input::Present { quality, .. } = i
                                && quality.is_good() {
                                    *quality = Quality::Uncertain(Reason::Stale);
                                }
                        }
                        set.replace(c, model[c].clone());
                    }
                }
                let mut scratch = RollupSet::from_scratch(&FUNCS, &model);
                let scale: f64 = model
                    .iter()
                    .flat_map(|c| c.inputs.iter())
                    .filter_map(|i| i.usable())
                    .map(|(v, w)| v.abs() * w.max(1.0))
                    .sum();
                for (j, func) in FUNCS.iter().enumerate() {
                    let (inc, fresh) = (set.result(j), scratch.result(j));
                    prop_assert!(close(&inc, &fresh, scale), "{:?}: incremental {:?} != scratch {:?}", func, inc, fresh);
                }
                prop_assert_eq!(set.alarms(), scratch.alarms());
            }
        }
    }
}
