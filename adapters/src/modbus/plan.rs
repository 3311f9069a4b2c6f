//! Read planning: which block reads serve a set of points.
//!
//! Points of the same poll group and table whose registers touch, overlap
//! or lie at most [`PlanLimits::max_gap`] registers apart are merged into one
//! read, as long as the read stays within the table's limit: 125 registers
//! (holding, input) or 2000 bits (coil, discrete), or less if configured. A
//! point that would straddle the limit starts the next read; a point never
//! splits across reads. The default gap is 0, because reading registers no
//! point is bound to may make a device answer "illegal data address" for the
//! whole read; raise it per endpoint where the device's map is dense.
//!
//! [`plan_reads`] is pure and deterministic: the same points in any order
//! give the same reads, sorted by group, table and start register.

use super::address::{PointAddress, Table};

/// A point to be read, as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanPoint {
    pub table: Table,
    /// 0-based number of the first register (or bit).
    pub register: u16,
    /// Registers (or bits) the point spans, at least 1.
    pub count: u16,
    /// Poll group name.
    pub group: String,
}

impl PlanPoint {
    /// The plan view of an address; points without `group=` go to `default_group`.
    pub fn from_address(address: &PointAddress, default_group: &str) -> PlanPoint {
        PlanPoint {
            table: address.table,
            register: address.register,
            count: address.ty.words(),
            group: address
                .group
                .clone()
                .unwrap_or_else(|| default_group.to_owned()),
        }
    }
}

/// Bounds on the reads the planner builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanLimits {
    /// Most registers per holding/input read; clamped to 1..=125.
    pub max_registers: u16,
    /// Most bits per coil/discrete read; clamped to 1..=2000.
    pub max_bits: u16,
    /// Most unbound registers (or bits) read between two points to merge
    /// them into one read. Default 0: only touching or overlapping points merge.
    pub max_gap: u16,
}

impl Default for PlanLimits {
    fn default() -> Self {
        PlanLimits {
            max_registers: 125,
            max_bits: 2000,
            max_gap: 0,
        }
    }
}

impl PlanLimits {
    /// The most items one read of `table` may cover.
    pub fn limit(&self, table: Table) -> u32 {
        let wanted = if table.is_bits() {
            self.max_bits
        } else {
            self.max_registers
        };
        u32::from(wanted.clamp(1, table.max_read()))
    }
}

/// One point served by a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    /// Index of the point in the planner's input.
    pub point: usize,
    /// Position of the point's first register in the read's response.
    pub offset: u16,
}

/// One read request: `count` registers (or bits) of `table` from `start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRead {
    pub group: String,
    pub table: Table,
    pub start: u16,
    pub count: u16,
    /// The points the read serves, by register then input index.
    pub points: Vec<Served>,
}

/// Builds the block reads serving `points`; every point is served by
/// exactly one read. A point longer than the limit (only possible with a
/// tiny configured limit) gets a read of its own.
pub fn plan_reads(points: &[PlanPoint], limits: &PlanLimits) -> Vec<BlockRead> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|&a, &b| {
        let (pa, pb) = (&points[a], &points[b]);
        (&pa.group, pa.table, pa.register, a).cmp(&(&pb.group, pb.table, pb.register, b))
    });
    let mut reads: Vec<BlockRead> = Vec::new();
    // End (exclusive) of the last read, kept wide to avoid overflow at 65535.
    let mut end: u32 = 0;
    for index in order {
        let p = &points[index];
        let start = u32::from(p.register);
        let stop = start + u32::from(p.count.max(1));
        let gap = u32::from(limits.max_gap);
        let limit = limits.limit(p.table);
        let joins = reads.last().is_some_and(|r| {
            r.group == p.group
                && r.table == p.table
                && start <= end + gap
                && stop.max(end) - u32::from(r.start) <= limit
        });
        match reads.last_mut() {
            Some(read) if joins => {
                end = end.max(stop);
                read.count = span(read.start, end);
                read.points.push(Served {
                    point: index,
                    offset: p.register - read.start,
                });
            }
            _ => {
                end = stop;
                reads.push(BlockRead {
                    group: p.group.clone(),
                    table: p.table,
                    start: p.register,
                    count: span(p.register, end),
                    points: vec![Served {
                        point: index,
                        offset: 0,
                    }],
                });
            }
        }
    }
    reads
}

/// Items from `start` to `end` (exclusive); at most 65536 - start, which
/// fits a u16 for every start above 0 and is clamped for a read of the
/// whole table (which no limit allows).
fn span(start: u16, end: u32) -> u16 {
    u16::try_from(end - u32::from(start)).unwrap_or(u16::MAX)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn pt(table: Table, register: u16, count: u16, group: &str) -> PlanPoint {
        PlanPoint {
            table,
            register,
            count,
            group: group.into(),
        }
    }

    fn h(register: u16, count: u16) -> PlanPoint {
        pt(Table::Holding, register, count, "g")
    }

    /// (start, count, [(point, offset)]) of one read.
    type Shape = (u16, u16, Vec<(usize, u16)>);
    /// (group, table, start, count, sorted [(offset, point count)]) of one read.
    type View = (String, Table, u16, u16, Vec<(u16, u16)>);

    fn shape(reads: &[BlockRead]) -> Vec<Shape> {
        reads
            .iter()
            .map(|r| {
                (
                    r.start,
                    r.count,
                    r.points.iter().map(|s| (s.point, s.offset)).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn contiguous_and_overlapping_points_merge() {
        // f32 at 10, u16 at 12, i32 at 13, bit points sharing register 12.
        let points = [h(13, 2), h(10, 2), h(12, 1), h(12, 1)];
        let reads = plan_reads(&points, &PlanLimits::default());
        assert_eq!(
            shape(&reads),
            [(10, 5, vec![(1, 0), (2, 2), (3, 2), (0, 3)])]
        );
        assert_eq!(
            (reads[0].table, reads[0].group.as_str()),
            (Table::Holding, "g")
        );
    }

    #[test]
    fn gaps_merge_only_up_to_max_gap() {
        let points = [h(0, 1), h(3, 1)];
        let with_gap = |max_gap| {
            let limits = PlanLimits {
                max_gap,
                ..PlanLimits::default()
            };
            shape(&plan_reads(&points, &limits))
        };
        let apart = vec![(0, 1, vec![(0, 0)]), (3, 1, vec![(1, 0)])];
        assert_eq!(with_gap(0), apart);
        assert_eq!(with_gap(1), apart);
        assert_eq!(with_gap(2), [(0, 4, vec![(0, 0), (1, 3)])]);
    }

    #[test]
    fn register_reads_split_at_125() {
        let points: Vec<PlanPoint> = (0..126).map(|r| h(r, 1)).collect();
        let reads = plan_reads(&points, &PlanLimits::default());
        assert_eq!(
            reads.iter().map(|r| (r.start, r.count)).collect::<Vec<_>>(),
            [(0, 125), (125, 1)]
        );
        assert_eq!(reads[0].points.len(), 125);
        assert_eq!(
            reads[1].points,
            [Served {
                point: 125,
                offset: 0
            }]
        );
    }

    #[test]
    fn a_point_straddling_the_limit_moves_to_the_next_read() {
        // 62 f32 fill registers 0..124; an f32 at 124 would end at 126.
        let points: Vec<PlanPoint> = (0..63).map(|i| h(i * 2, 2)).collect();
        let reads = plan_reads(&points, &PlanLimits::default());
        assert_eq!(
            reads.iter().map(|r| (r.start, r.count)).collect::<Vec<_>>(),
            [(0, 124), (124, 2)]
        );
        assert_eq!(
            reads[1].points,
            [Served {
                point: 62,
                offset: 0
            }]
        );
    }

    #[test]
    fn configured_limit_and_oversized_point() {
        let limits = PlanLimits {
            max_registers: 3,
            ..PlanLimits::default()
        };
        let points = [h(0, 1), h(1, 1), h(2, 1), h(3, 4)];
        assert_eq!(
            shape(&plan_reads(&points, &limits)),
            [(0, 3, vec![(0, 0), (1, 1), (2, 2)]), (3, 4, vec![(3, 0)])]
        );
    }

    #[test]
    fn bit_tables_split_at_2000() {
        let points: Vec<PlanPoint> = (0..2001).map(|r| pt(Table::Coil, r, 1, "g")).collect();
        let reads = plan_reads(&points, &PlanLimits::default());
        assert_eq!(
            reads.iter().map(|r| (r.start, r.count)).collect::<Vec<_>>(),
            [(0, 2000), (2000, 1)]
        );
        // The register limit does not apply to bits, nor the reverse.
        let limits = PlanLimits {
            max_registers: 5000,
            max_bits: 0,
            ..PlanLimits::default()
        };
        assert_eq!(
            (limits.limit(Table::Holding), limits.limit(Table::Discrete)),
            (125, 1)
        );
    }

    #[test]
    fn tables_and_groups_never_merge() {
        let points = [
            pt(Table::Input, 1, 1, "fast"),
            pt(Table::Holding, 0, 1, "fast"),
            pt(Table::Holding, 1, 1, "slow"),
            pt(Table::Coil, 2, 1, "fast"),
            pt(Table::Discrete, 3, 1, "fast"),
        ];
        let reads = plan_reads(&points, &PlanLimits::default());
        let keys: Vec<(&str, Table, u16, usize)> = reads
            .iter()
            .map(|r| (r.group.as_str(), r.table, r.start, r.points[0].point))
            .collect();
        assert_eq!(
            keys,
            [
                ("fast", Table::Holding, 0, 1),
                ("fast", Table::Input, 1, 0),
                ("fast", Table::Coil, 2, 3),
                ("fast", Table::Discrete, 3, 4),
                ("slow", Table::Holding, 1, 2),
            ]
        );
    }

    #[test]
    fn end_of_table() {
        let points = [h(65532, 4), h(65531, 1)];
        assert_eq!(
            shape(&plan_reads(&points, &PlanLimits::default())),
            [(65531, 5, vec![(1, 0), (0, 1)])]
        );
    }

    #[test]
    fn from_address_uses_the_default_group() {
        let a = PointAddress::parse("input:7:f64").unwrap();
        assert_eq!(
            PlanPoint::from_address(&a, "main"),
            pt(Table::Input, 7, 4, "main")
        );
        let b = PointAddress::parse("coil:7;group=fast").unwrap();
        assert_eq!(
            PlanPoint::from_address(&b, "main"),
            pt(Table::Coil, 7, 1, "fast")
        );
    }

    fn point() -> impl Strategy<Value = PlanPoint> {
        (
            prop::sample::select(vec![Table::Holding, Table::Input, Table::Coil]),
            0u16..400,
            prop::sample::select(vec![1u16, 2, 4]),
            prop::sample::select(vec!["a", "b"]),
        )
            .prop_map(|(table, register, count, group)| {
                let count = if table.is_bits() { 1 } else { count };
                pt(table, register, count, group)
            })
    }

    proptest! {
        #[test]
        fn every_point_is_served_once_within_limits(
            points in prop::collection::vec(point(), 0..200),
            max_registers in 1u16..130,
            max_gap in 0u16..6,
        ) {
            let limits = PlanLimits { max_registers, max_bits: 50, max_gap };
            let reads = plan_reads(&points, &limits);
            let mut served = vec![0; points.len()];
            for r in &reads {
                prop_assert!(!r.points.is_empty());
                let limit = limits.limit(r.table).max(4);
                prop_assert!(u32::from(r.count) <= limit);
                for s in &r.points {
                    served[s.point] += 1;
                    let p = &points[s.point];
                    prop_assert_eq!((&p.group, p.table), (&r.group, r.table));
                    prop_assert_eq!(p.register, r.start + s.offset);
                    prop_assert!(s.offset + p.count <= r.count);
                }
            }
            prop_assert!(served.iter().all(|&n| n == 1));
        }

        #[test]
        fn plan_does_not_depend_on_input_order(
            points in prop::collection::vec(point(), 0..100),
            seed in any::<u64>(),
        ) {
            let limits = PlanLimits { max_gap: 2, ..PlanLimits::default() };
            // A deterministic shuffle; reads name points by input index, so
            // compare them mapped back to the points themselves.
            let mut perm: Vec<usize> = (0..points.len()).collect();
            let mut s = seed | 1;
            for i in (1..perm.len()).rev() {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                perm.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let shuffled: Vec<PlanPoint> = perm.iter().map(|&i| points[i].clone()).collect();
            let a = plan_reads(&points, &limits);
            let b = plan_reads(&shuffled, &limits);
            let view = |reads: &[BlockRead], pts: &[PlanPoint]| -> Vec<View> {
                reads.iter().map(|r| {
                    let mut ps: Vec<(u16, u16)> = r.points.iter().map(|s| (s.offset, pts[s.point].count)).collect();
                    ps.sort_unstable();
                    (r.group.clone(), r.table, r.start, r.count, ps)
                }).collect()
            };
            prop_assert_eq!(view(&a, &points), view(&b, &shuffled));
        }
    }
}
