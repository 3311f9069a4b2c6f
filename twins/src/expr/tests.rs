//! Checker, evaluator and condition tests, and a property test against a
//! reference tree-walk interpreter.

use super::*;
use crate::time::Timestamp;

struct Prop {
    name: &'static str,
    ty: ValueType,
    unit: Option<Unit>,
    states: Vec<String>,
}

struct TestScope(Vec<Prop>);

impl Scope for TestScope {
    fn lookup(&self, name: &str) -> Option<ScopeEntry<'_>> {
        self.0
            .iter()
            .position(|p| p.name == name)
            .map(|i| ScopeEntry {
                slot: i as u16,
                ty: self.0[i].ty,
                unit: self.0[i].unit.as_ref(),
                states: &self.0[i].states,
            })
    }
    fn names(&self) -> Vec<String> {
        self.0.iter().map(|p| p.name.to_string()).collect()
    }
}

fn unit(s: &str) -> Unit {
    Unit::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

const PROPS: &[(&str, ValueType, &str)] = &[
    ("flow", ValueType::F64, "m3/h"),
    ("discharge_pressure", ValueType::F64, "bar"),
    ("suction_pressure", ValueType::F64, "kPa"),
    ("power", ValueType::F64, "kW"),
    ("running", ValueType::Bool, ""),
    ("mode", ValueType::Enum, ""),
    ("count", ValueType::I64, ""),
    ("ratio", ValueType::F64, ""),
    ("t_in", ValueType::F64, "degC"),
    ("t_out", ValueType::F64, "degC"),
    ("dt", ValueType::F64, "K"),
    ("tag", ValueType::String, ""),
    ("level", ValueType::F64, "%"),
    ("flow_lps", ValueType::F64, "L/s"),
    ("mode2", ValueType::Enum, ""),
    ("area", ValueType::F64, "m2"),
    ("valve", ValueType::Enum, ""),
    ("tripped", ValueType::Bool, ""),
];

fn scope() -> TestScope {
    let states = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    TestScope(
        PROPS
            .iter()
            .map(|(name, ty, u)| Prop {
                name,
                ty: *ty,
                unit: (!u.is_empty()).then(|| unit(u)),
                states: match *name {
                    "mode" | "mode2" => states(&["stopped", "running", "tripped"]),
                    "valve" => states(&["open", "closed"]),
                    _ => Vec::new(),
                },
            })
            .collect(),
    )
}

fn slot_of(name: &str) -> usize {
    PROPS
        .iter()
        .position(|p| p.0 == name)
        .unwrap_or_else(|| panic!("{name}"))
}

/// Slots with every property Good and set to a plain value, then `set` applied.
fn slots(set: &[(&str, Value)]) -> Vec<Slot> {
    let mut v: Vec<Slot> = PROPS
        .iter()
        .map(|(name, ty, _)| {
            let value = match (name, ty) {
                (_, ValueType::F64) => Value::F64(1.0),
                (_, ValueType::I64) => Value::I64(1),
                (_, ValueType::Bool) => Value::Bool(false),
                (_, ValueType::Enum) => Value::Enum(0),
                (_, ValueType::String) => Value::String("p-101".into()),
            };
            Slot::new(value, Quality::Good, Timestamp::ZERO)
        })
        .collect();
    for (name, value) in set {
        v[slot_of(name)].value = value.clone();
    }
    v
}

fn with_quality(mut s: Vec<Slot>, name: &str, q: Quality) -> Vec<Slot> {
    s[slot_of(name)].quality = q;
    s
}

fn ok(src: &str) -> CompiledExpr {
    compile(src, &scope(), Expected::default()).unwrap_or_else(|e| panic!("{src}: {e:?}"))
}

fn ok_in(src: &str, u: &str) -> CompiledExpr {
    let want = unit(u);
    compile(
        src,
        &scope(),
        Expected {
            ty: None,
            unit: Some(&want),
        },
    )
    .unwrap_or_else(|e| panic!("{src}: {e:?}"))
}

fn errs(src: &str) -> Vec<ExprError> {
    match compile(src, &scope(), Expected::default()) {
        Ok(_) => panic!("{src} compiled"),
        Err(e) => e,
    }
}

fn err1(src: &str) -> ExprError {
    let mut e = errs(src);
    assert_eq!(e.len(), 1, "{src}: {e:?}");
    e.remove(0)
}

fn num(e: &CompiledExpr, s: &[Slot]) -> f64 {
    match e.eval(s) {
        (Value::F64(v), _) => v,
        (Value::I64(v), _) => v as f64,
        other => panic!("{}: {other:?}", e.source()),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn f(v: f64) -> Value {
    Value::F64(v)
}

// ---------------------------------------------------------------- checker

#[test]
fn unknown_name_suggests() {
    let e = err1("dischage_pressure > 18");
    assert_eq!(e.span, 0..17);
    assert_eq!(e.message, "unknown name `dischage_pressure`");
    assert_eq!(
        e.hint.as_deref(),
        Some("did you mean `discharge_pressure`?")
    );
    let e = err1("flow + max");
    assert_eq!(
        e.hint.as_deref(),
        Some("`max` is a function: write `max(...)`")
    );
}

#[test]
fn collects_all_errors() {
    let e = errs("sqr(flow) + clamp(flow, 0) + dischage_pressure + foo");
    assert_eq!(e.len(), 4, "{e:?}");
    assert_eq!(e[0].span, 0..3);
    assert_eq!(e[0].message, "unknown function `sqr`");
    assert_eq!(e[0].hint.as_deref(), Some("did you mean `sqrt`?"));
    assert_eq!(e[1].span, 12..26);
    assert_eq!(
        e[1].message,
        "`clamp` takes 3 arguments (x, lo, hi), found 2"
    );
    assert_eq!(e[2].message, "unknown name `dischage_pressure`");
    assert_eq!(e[3].message, "unknown name `foo`");
    assert_eq!(e[3].hint, None);
}

#[test]
fn arity() {
    let e = err1("min(flow)");
    assert_eq!(e.span, 0..9);
    assert_eq!(e.message, "`min` takes at least 2 arguments, found 1");
    let e = err1("abs(flow, 1)");
    assert_eq!(e.message, "`abs` takes 1 argument, found 2");
    let e = err1("if(running, 1)");
    assert_eq!(
        e.message,
        "`if` takes 3 arguments (condition, then, else), found 2"
    );
    let e = err1("frobnicate(1)");
    assert_eq!(
        e.hint
            .as_deref()
            .map(|h| h.starts_with("the functions are")),
        Some(true)
    );
}

#[test]
fn unit_mismatch_names_both_sides() {
    let e = err1("discharge_pressure + flow");
    assert_eq!(e.span, 0..25);
    assert_eq!(
        e.message,
        "cannot add `flow` [m3/h, volumetric flow] to `discharge_pressure` [bar, pressure]"
    );
    let e = err1("flow - power");
    assert!(
        e.message
            .starts_with("cannot subtract `power` [kW, power] from `flow`")
    );
    let e = err1("flow > discharge_pressure");
    assert_eq!(
        e.message,
        "cannot compare `flow` [m3/h, volumetric flow] with `discharge_pressure` [bar, pressure]"
    );
    let e = err1("max(flow, 1, power)");
    assert!(
        e.message
            .starts_with("arguments of `max` must have the same dimension"),
        "{e}"
    );
    let e = err1("flow * 2 + flow_lps");
    assert_eq!(
        e.message,
        "ambiguous units: expected `flow * 2` [m3/h, volumetric flow, with a literal factor] \
         and `flow_lps` [L/s, volumetric flow] in the same unit, found units that differ in \
         scale, and a formula with a literal factor is taken as written"
    );
    assert!(e.hint.is_some());
    // the same unit on both sides is not ambiguous
    let e = ok("flow * 2 + flow");
    assert!(close(num(&e, &slots(&[("flow", f(3.0))])), 9.0));
}

#[test]
fn compatible_units_convert() {
    let s = slots(&[
        ("suction_pressure", f(100.0)),
        ("discharge_pressure", f(2.0)),
    ]);
    let e = ok("suction_pressure + discharge_pressure");
    assert_eq!(e.unit().map(Unit::symbol), Some("kPa"));
    assert!(close(num(&e, &s), 300.0));
    let e = ok("discharge_pressure + suction_pressure");
    assert_eq!(e.unit().map(Unit::symbol), Some("bar"));
    assert!(close(num(&e, &s), 3.0));
    let e = ok("discharge_pressure - suction_pressure");
    assert!(close(num(&e, &s), 1.0));
    let e = ok("suction_pressure < discharge_pressure");
    assert_eq!(e.eval(&s).0, Value::Bool(true));
    let e = ok("max(suction_pressure, discharge_pressure)");
    assert!(close(num(&e, &s), 200.0));
    // delivered in a declared unit
    let e = ok_in("suction_pressure + discharge_pressure", "bar");
    assert!(close(num(&e, &s), 3.0));
    let e = ok_in("flow", "L/s");
    assert!(close(num(&e, &slots(&[("flow", f(36.0))])), 10.0));
    // literals take the other side's unit
    let e = ok("discharge_pressure > 18");
    assert_eq!(
        e.eval(&slots(&[("discharge_pressure", f(18.5))])).0,
        Value::Bool(true)
    );
    assert_eq!(
        e.eval(&slots(&[("discharge_pressure", f(17.5))])).0,
        Value::Bool(false)
    );
}

#[test]
fn empirical_formulas() {
    let s = slots(&[("flow", f(36.0)), ("discharge_pressure", f(10.0))]);
    // the DESIGN.md example: a literal constant, taken as written in kW
    let e = ok_in("flow * discharge_pressure / 36", "kW");
    assert_eq!(e.unit().map(Unit::symbol), Some("kW"));
    assert!(close(num(&e, &s), 10.0));
    // without a literal, the same dimension converts properly: 36 m3/h * 10 bar = 10 kW
    let e = ok_in("flow * discharge_pressure", "kW");
    assert!(close(num(&e, &s), 10.0));
    let e = ok_in("flow * discharge_pressure", "W");
    assert!(close(num(&e, &s), 10_000.0));
    // a different dimension without literal is an error
    let want = unit("m3/h");
    let e = compile(
        "flow * discharge_pressure",
        &scope(),
        Expected {
            ty: None,
            unit: Some(&want),
        },
    )
    .expect_err("dimension mismatch");
    assert_eq!(
        e[0].message,
        "expected a result in `m3/h` [volumetric flow], found `flow * discharge_pressure` \
         in `m3/h*bar` [power]"
    );
    // with a literal, it is empirical and taken as is
    let e = ok_in("flow * 2", "kW");
    assert!(close(num(&e, &s), 72.0));
    // sqrt of a pressure has no unit: empirical valve formula
    let e = ok_in("ratio * sqrt(discharge_pressure)", "m3/h");
    assert!(close(
        num(
            &e,
            &slots(&[("ratio", f(3.0)), ("discharge_pressure", f(4.0))])
        ),
        6.0
    ));
    // sqrt of an area is a length
    let e = ok_in("sqrt(area)", "mm");
    assert!(close(num(&e, &slots(&[("area", f(4.0))])), 2000.0));
    // without expected unit, an empirical formula has no known unit
    assert_eq!(ok("flow * discharge_pressure / 36").unit(), None);
    assert_eq!(
        ok("flow * discharge_pressure").unit().map(Unit::symbol),
        Some("m3/h*bar")
    );
    // percent converts when the formula has no literal
    let e = ok_in("level", "1");
    assert!(close(num(&e, &slots(&[("level", f(50.0))])), 0.5));
    let e = ok_in("level / 100", "1");
    assert!(close(num(&e, &slots(&[("level", f(50.0))])), 0.5));
}

#[test]
fn temperatures() {
    let s = slots(&[("t_in", f(60.0)), ("t_out", f(80.0)), ("dt", f(5.0))]);
    let e = ok_in("t_out - t_in", "K");
    assert!(close(num(&e, &s), 20.0));
    assert_eq!(
        ok("t_out - t_in").unit().map(Unit::symbol),
        Some("delta_degC")
    );
    let e = ok_in("t_in + dt", "degC");
    assert!(close(num(&e, &s), 65.0));
    let e = ok_in("(t_in + t_out) / 2", "K");
    assert!(close(num(&e, &s), 343.15));
    let e = ok_in("t_in", "K");
    assert!(close(num(&e, &s), 333.15));
    let e = ok("t_out > 350");
    assert_eq!(e.eval(&s).0, Value::Bool(false));
}

#[test]
fn enum_states() {
    let running = slots(&[("mode", Value::Enum(1))]);
    let e = ok("mode == \"running\"");
    assert_eq!(e.eval(&running).0, Value::Bool(true));
    assert_eq!(e.eval(&slots(&[])).0, Value::Bool(false));
    let e = ok("'tripped' != mode");
    assert_eq!(e.eval(&running).0, Value::Bool(true));
    let e = err1("mode == \"runing\"");
    assert_eq!(e.span, 8..16);
    assert_eq!(
        e.message,
        "unknown state \"runing\" of `mode`, expected one of \"stopped\", \"running\", \"tripped\""
    );
    assert_eq!(e.hint.as_deref(), Some("did you mean \"running\"?"));
    let e = err1("mode > \"running\"");
    assert_eq!(
        e.message,
        "cannot use `>` on enum `mode`, expected `==` or `!=`"
    );
    let e = ok("mode == mode2");
    assert_eq!(
        e.eval(&slots(&[("mode2", Value::Enum(0))])).0,
        Value::Bool(true)
    );
    let e = err1("mode == valve");
    assert!(e.message.contains("same states"), "{e}");
    let e = err1("flow == \"running\"");
    assert_eq!(
        e.message,
        "cannot compare number `flow` with string literal `\"running\"`"
    );
    let e = err1("\"running\"");
    assert!(e.message.contains("string literal"), "{e}");
    // an enum on its own is passed through
    let e = ok("mode");
    assert_eq!(e.ty(), ValueType::Enum);
    assert_eq!(e.eval(&running), (Value::Enum(1), Quality::Good));
    // strings compare with literals
    let e = ok("tag == 'p-101'");
    assert_eq!(e.eval(&slots(&[])).0, Value::Bool(true));
}

#[test]
fn if_branches_must_agree() {
    let e = err1("if(running, flow, discharge_pressure)");
    assert_eq!(e.span, 12..36);
    assert!(
        e.message
            .starts_with("branches of `if` must have the same dimension"),
        "{e}"
    );
    let e = err1("if(running, flow, true)");
    assert_eq!(e.span, 0..23);
    assert_eq!(
        e.message,
        "branches of `if` must have the same type, expected numbers or bools, \
         found number `flow` and bool `true`"
    );
    let e = err1("if(flow, 1, 2)");
    assert_eq!(
        e.message,
        "expected a bool as the condition of `if`, found number `flow`"
    );
    let e = ok("if(running, flow, 0)");
    assert_eq!(e.unit().map(Unit::symbol), Some("m3/h"));
}

#[test]
fn types() {
    let e = err1("running + 1");
    assert_eq!(e.span, 0..7);
    assert_eq!(
        e.message,
        "expected a number on each side of `+`, found bool `running`"
    );
    let e = err1("flow and running");
    assert_eq!(
        e.message,
        "expected a bool on each side of `and`, found number `flow`"
    );
    assert_eq!(
        e.hint.as_deref(),
        Some("compare it, for example `flow > 0`")
    );
    let e = err1("not count");
    assert_eq!(
        e.message,
        "expected a bool after `not`, found integer `count`"
    );
    let e = err1("running > tripped");
    assert_eq!(
        e.message,
        "cannot use `>` on bool `running`, expected `==` or `!=`"
    );
    let e = ok("running == tripped");
    assert_eq!(e.eval(&slots(&[])).0, Value::Bool(true));
    let e = compile(
        "flow",
        &scope(),
        Expected {
            ty: Some(ValueType::Bool),
            unit: None,
        },
    )
    .expect_err("type");
    assert_eq!(e[0].message, "expected a bool result, found number `flow`");
    let e = compile(
        "flow / 2",
        &scope(),
        Expected {
            ty: Some(ValueType::I64),
            unit: None,
        },
    )
    .expect_err("type");
    assert_eq!(
        e[0].message,
        "expected an i64 result, found a fractional number `flow / 2`"
    );
    // integers stay integers
    let e = ok("count * 2 + 1");
    assert_eq!(e.ty(), ValueType::I64);
    assert_eq!(
        e.eval(&slots(&[("count", Value::I64(20))])).0,
        Value::I64(41)
    );
    let e = compile(
        "round(flow)",
        &scope(),
        Expected {
            ty: Some(ValueType::I64),
            unit: None,
        },
    )
    .expect("round gives an integer");
    assert_eq!(e.eval(&slots(&[("flow", f(2.6))])).0, Value::I64(3));
    let e = compile(
        "count",
        &scope(),
        Expected {
            ty: Some(ValueType::F64),
            unit: None,
        },
    )
    .expect("i64 promotes");
    assert_eq!(
        e.eval(&slots(&[("count", Value::I64(3))])).0,
        Value::F64(3.0)
    );
    assert_eq!(ok("flow / 2").ty(), ValueType::F64);
    assert_eq!(ok("flow > 2").ty(), ValueType::Bool);
}

#[test]
fn inputs_and_names() {
    let e = ok("if(running, flow + flow, ratio) > count");
    assert_eq!(e.inputs(), &[0, 4, 6, 7]);
    assert_eq!(e.source(), "if(running, flow + flow, ratio) > count");
    assert_eq!(
        referenced_names("max(b, a) + b * sqrt(c) > 0 and d").expect("parses"),
        ["b", "a", "c", "d"]
    );
    let e = referenced_names("a + ").expect_err("syntax error");
    assert_eq!(e.span, 4..4);
    fn send_sync<T: Send + Sync>() {}
    send_sync::<CompiledExpr>();
    send_sync::<Condition>();
}

// -------------------------------------------------------------- evaluator

#[test]
fn operators() {
    let s = slots(&[
        ("flow", f(7.0)),
        ("ratio", f(2.0)),
        ("count", Value::I64(3)),
    ]);
    for (src, want) in [
        ("flow + ratio", 9.0),
        ("flow - ratio", 5.0),
        ("flow * ratio", 14.0),
        ("flow / ratio", 3.5),
        ("flow % ratio", 1.0),
        ("-flow", -7.0),
        ("- -flow", 7.0),
        ("flow - ratio * 3 / 2", 4.0),
        ("count * ratio", 6.0),
        ("abs(ratio - flow)", 5.0),
        ("min(flow, ratio, 4)", 2.0),
        ("max(flow, ratio, 4)", 7.0),
        ("clamp(flow, 0, 5)", 5.0),
        ("clamp(ratio, 3, 5)", 3.0),
        ("clamp(ratio, 0, 5)", 2.0),
        ("sqrt(ratio * 8)", 4.0),
        ("exp(ratio)", 2f64.exp()),
        ("ln(flow)", 7f64.ln()),
        ("log10(ratio * 50)", 2.0),
        ("round(flow / ratio)", 4.0),
        ("floor(flow / ratio)", 3.0),
        ("ceil(flow / ratio)", 4.0),
        ("if(flow > ratio, 1, 2)", 1.0),
        ("if(flow < ratio, 1, 2)", 2.0),
        ("1e-3 * 1000", 1.0),
    ] {
        let e = ok(src);
        assert!(
            close(num(&e, &s), want),
            "{src} = {} != {want}",
            num(&e, &s)
        );
        assert_eq!(e.eval(&s).1, Quality::Good);
    }
    for (src, want) in [
        ("flow > ratio", true),
        ("flow >= 7", true),
        ("flow < ratio", false),
        ("flow <= 7", true),
        ("flow == 7", true),
        ("flow != 7", false),
        ("flow > 1 and ratio > 1", true),
        ("flow > 1 && ratio > 5", false),
        ("flow > 10 or ratio > 1", true),
        ("flow > 10 || ratio > 5", false),
        ("not flow > 10", true),
        ("!(flow > 1)", false),
        ("true and not false", true),
        ("if(running, false, true)", true),
        ("running == false", true),
        ("running != false", false),
    ] {
        let e = ok(src);
        assert_eq!(e.eval(&s), (Value::Bool(want), Quality::Good), "{src}");
    }
}

#[test]
fn quality_is_worst_of_inputs_read() {
    let stale = Quality::Uncertain(Reason::Stale);
    let comm = Quality::Bad(Reason::CommFailure);
    let s = with_quality(slots(&[("flow", f(2.0))]), "flow", stale);
    let e = ok("flow + ratio");
    assert_eq!(e.eval(&s), (f(3.0), stale));
    let s = with_quality(s, "ratio", comm);
    assert_eq!(e.eval(&s), (f(3.0), comm));
    // inputs not read do not count: `and` short-circuits, `if` takes one branch
    let e = ok("running and flow > 1");
    assert_eq!(e.eval(&s), (Value::Bool(false), Quality::Good));
    let e = ok("if(running, flow, ratio)");
    assert_eq!(e.eval(&s), (f(1.0), comm));
    let s2 = slots(&[("running", Value::Bool(true))]);
    let s2 = with_quality(s2, "flow", stale);
    assert_eq!(e.eval(&s2), (f(1.0), stale));
    // a Null input gives no data, but only if read
    let s = slots(&[("flow", Value::Null)]);
    assert_eq!(
        ok("flow * 2").eval(&s),
        (Value::Null, Quality::Bad(Reason::NoData))
    );
    assert_eq!(ok("if(running, flow, 0)").eval(&s), (f(0.0), Quality::Good));
    assert_eq!(
        ok("running or flow > 0").eval(&s),
        (Value::Null, Quality::Bad(Reason::NoData))
    );
    // a missing slot is no data too
    assert_eq!(
        ok("flow").eval(&[]),
        (Value::Null, Quality::Bad(Reason::NoData))
    );
}

#[test]
fn calc_errors() {
    let calc = (Value::Null, Quality::Bad(Reason::CalcError));
    let s = slots(&[("flow", f(0.0)), ("ratio", f(-1.0))]);
    for src in [
        "1 / flow",
        "ratio % flow",
        "sqrt(ratio)",
        "ln(flow)",
        "ln(ratio)",
        "log10(flow)",
        "exp(1000 - flow)",
        "clamp(flow, 1, ratio)",
        "1e300 * 1e300 + flow",
        "1 / flow > 1",
    ] {
        assert_eq!(ok(src).eval(&s), calc, "{src}");
    }
    let nan = slots(&[("flow", f(f64::NAN))]);
    assert_eq!(ok("flow + 1").eval(&nan), calc);
    // a value of the wrong type in a slot is a calc error, not a panic
    let wrong = slots(&[("flow", Value::Bool(true))]);
    assert_eq!(ok("flow + 1").eval(&wrong), calc);
}

// ------------------------------------------------------------- conditions

fn cond(src: &str) -> Condition {
    compile_condition(src, &scope()).unwrap_or_else(|e| panic!("{src}: {e:?}"))
}

fn at(c: &Condition, name: &str, v: f64, deadband: f64, active: bool) -> Option<bool> {
    c.eval(&slots(&[(name, f(v))]), deadband, active).0
}

#[test]
fn condition_shapes() {
    let c = cond("discharge_pressure > 18");
    let Condition::Compare { lhs, op, rhs } = &c else {
        panic!("{c:?}")
    };
    assert_eq!(*op, CmpOp::Gt);
    assert_eq!(lhs.source(), "discharge_pressure");
    assert_eq!(rhs.source(), "18");
    assert_eq!(lhs.unit().map(Unit::symbol), Some("bar"));
    assert_eq!(c.source(), "discharge_pressure > 18");
    assert_eq!(c.inputs(), [1]);
    // rhs converted into lhs's unit
    let c = cond("suction_pressure > discharge_pressure");
    let Condition::Compare { rhs, .. } = &c else {
        panic!("{c:?}")
    };
    assert_eq!(rhs.unit().map(Unit::symbol), Some("kPa"));
    let s = slots(&[
        ("discharge_pressure", f(2.0)),
        ("suction_pressure", f(150.0)),
    ]);
    assert_eq!(rhs.eval(&s).0, f(200.0));
    assert_eq!(c.eval(&s, 0.0, false), (Some(false), Quality::Good));
    assert_eq!(c.eval(&s, 60.0, true), (Some(true), Quality::Good));
    assert_eq!(c.inputs(), [1, 2]);
    // anything else is a bool condition
    let c = cond("mode == 'tripped'");
    assert!(matches!(c, Condition::Bool(_)), "{c:?}");
    assert_eq!(
        c.eval(&slots(&[("mode", Value::Enum(2))]), 1.0, false),
        (Some(true), Quality::Good)
    );
    let c = cond("running and flow < 5");
    assert!(matches!(c, Condition::Bool(_)));
    assert_eq!(c.source(), "running and flow < 5");
    // errors
    let e = compile_condition("flow + 1", &scope()).expect_err("not bool");
    assert_eq!(
        e[0].message,
        "expected a bool result, found number `flow + 1`"
    );
    let e = compile_condition("flow > discharge_pressure", &scope()).expect_err("units");
    assert!(e[0].message.starts_with("cannot compare"));
    let e = compile_condition("mode == 'runing'", &scope()).expect_err("state");
    assert_eq!(e.len(), 1);
    assert!(e[0].message.starts_with("unknown state"));
    let e = compile_condition("dischage_pressure > foo", &scope()).expect_err("names");
    assert_eq!(e.len(), 2);
}

#[test]
fn condition_quality_and_failures() {
    let c = cond("flow > 1 / ratio");
    let s = with_quality(
        slots(&[("flow", f(3.0))]),
        "ratio",
        Quality::Uncertain(Reason::Stale),
    );
    assert_eq!(
        c.eval(&s, 0.0, false),
        (Some(true), Quality::Uncertain(Reason::Stale))
    );
    let s = slots(&[("ratio", f(0.0))]);
    assert_eq!(
        c.eval(&s, 0.0, false),
        (None, Quality::Bad(Reason::CalcError))
    );
    let s = slots(&[("flow", Value::Null)]);
    assert_eq!(c.eval(&s, 0.0, true), (None, Quality::Bad(Reason::NoData)));
    let c = cond("running");
    let s = slots(&[("running", Value::Null)]);
    assert_eq!(c.eval(&s, 0.0, false), (None, Quality::Bad(Reason::NoData)));
}

#[test]
fn deadband_hysteresis_per_operator() {
    let db = 0.5;
    // >: activates above 18, stays active while above 17.5
    let c = cond("discharge_pressure > 18");
    let p = "discharge_pressure";
    assert_eq!(at(&c, p, 17.8, db, false), Some(false));
    assert_eq!(at(&c, p, 18.1, db, false), Some(true));
    assert_eq!(at(&c, p, 17.8, db, true), Some(true));
    assert_eq!(at(&c, p, 17.5, db, true), Some(false));
    assert_eq!(at(&c, p, 17.8, 0.0, true), Some(false));
    // >=
    let c = cond("discharge_pressure >= 18");
    assert_eq!(at(&c, p, 18.0, db, false), Some(true));
    assert_eq!(at(&c, p, 17.9, db, false), Some(false));
    assert_eq!(at(&c, p, 17.5, db, true), Some(true));
    assert_eq!(at(&c, p, 17.4, db, true), Some(false));
    // <: activates below 2, stays active while below 2.5
    let c = cond("discharge_pressure < 2");
    assert_eq!(at(&c, p, 2.2, db, false), Some(false));
    assert_eq!(at(&c, p, 1.9, db, false), Some(true));
    assert_eq!(at(&c, p, 2.2, db, true), Some(true));
    assert_eq!(at(&c, p, 2.5, db, true), Some(false));
    // <=
    let c = cond("discharge_pressure <= 2");
    assert_eq!(at(&c, p, 2.0, db, false), Some(true));
    assert_eq!(at(&c, p, 2.1, db, false), Some(false));
    assert_eq!(at(&c, p, 2.5, db, true), Some(true));
    assert_eq!(at(&c, p, 2.6, db, true), Some(false));
    // ==: activates on equality, stays active within the band
    let c = cond("discharge_pressure == 5");
    assert_eq!(at(&c, p, 5.0, db, false), Some(true));
    assert_eq!(at(&c, p, 5.2, db, false), Some(false));
    assert_eq!(at(&c, p, 5.4, db, true), Some(true));
    assert_eq!(at(&c, p, 4.6, db, true), Some(true));
    assert_eq!(at(&c, p, 5.6, db, true), Some(false));
    // !=: activates only beyond the band, clears on equality
    let c = cond("discharge_pressure != 5");
    assert_eq!(at(&c, p, 5.4, db, false), Some(false));
    assert_eq!(at(&c, p, 5.6, db, false), Some(true));
    assert_eq!(at(&c, p, 4.4, db, false), Some(true));
    assert_eq!(at(&c, p, 5.1, db, true), Some(true));
    assert_eq!(at(&c, p, 5.0, db, true), Some(false));
    assert_eq!(at(&c, p, 5.1, 0.0, false), Some(true));
    // a negative or NaN deadband counts as none
    let c = cond("discharge_pressure > 18");
    assert_eq!(at(&c, p, 17.8, -1.0, true), Some(false));
    assert_eq!(at(&c, p, 17.8, f64::NAN, true), Some(false));
    // deadband in lhs units after conversion: 150 kPa vs 2 bar = 200 kPa
    let c = cond("suction_pressure < discharge_pressure");
    let s = slots(&[
        ("discharge_pressure", f(2.0)),
        ("suction_pressure", f(230.0)),
    ]);
    assert_eq!(c.eval(&s, 50.0, true).0, Some(true));
    assert_eq!(c.eval(&s, 20.0, true).0, Some(false));
}

// ------------------------------------------------ reference interpreter

mod reference {
    use super::*;
    use proptest::prelude::*;

    /// Slots of the generated expressions: two f64 and one i64 without unit,
    /// two bools.
    const NAMES: [(&str, ValueType); 5] = [
        ("a", ValueType::F64),
        ("b", ValueType::F64),
        ("c", ValueType::I64),
        ("p", ValueType::Bool),
        ("q", ValueType::Bool),
    ];

    struct Vars;
    impl Scope for Vars {
        fn lookup(&self, name: &str) -> Option<ScopeEntry<'_>> {
            NAMES.iter().position(|n| n.0 == name).map(|i| ScopeEntry {
                slot: i as u16,
                ty: NAMES[i].1,
                unit: None,
                states: &[],
            })
        }
        fn names(&self) -> Vec<String> {
            NAMES.iter().map(|n| n.0.to_string()).collect()
        }
    }

    #[derive(Debug, Clone)]
    enum N {
        Lit(f64),
        Var(usize),
        Neg(Box<N>),
        Bin(&'static str, Box<N>, Box<N>),
        F1(&'static str, Box<N>),
        MinMax(bool, Vec<N>),
        Clamp(Box<[N; 3]>),
        If(Box<B>, Box<N>, Box<N>),
    }

    #[derive(Debug, Clone)]
    enum B {
        Lit(bool),
        Var(usize),
        Not(Box<B>),
        Logic(bool, Box<B>, Box<B>),
        Cmp(&'static str, Box<N>, Box<N>),
        Eq(bool, Box<B>, Box<B>),
        If(Box<B>, Box<B>, Box<B>),
    }

    /// A small deterministic generator: proptest supplies the seed.
    struct Gen(u64);
    impl Gen {
        fn next(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
        fn num(&mut self, depth: u32) -> N {
            let leaf = depth == 0 || self.next(4) == 0;
            if leaf {
                return match self.next(3) {
                    0 => N::Lit([0.0, 1.0, 2.0, 0.5, 3.25, 10.0, 1e-3][self.next(7) as usize]),
                    1 => N::Var(0),
                    _ => N::Var(1 + self.next(2) as usize),
                };
            }
            let d = depth - 1;
            match self.next(7) {
                0 => N::Neg(Box::new(self.num(d))),
                1 | 2 => {
                    let op = ["+", "-", "*", "/", "%"][self.next(5) as usize];
                    N::Bin(op, Box::new(self.num(d)), Box::new(self.num(d)))
                }
                3 => {
                    let f = [
                        "abs", "sqrt", "exp", "ln", "log10", "round", "floor", "ceil",
                    ][self.next(8) as usize];
                    N::F1(f, Box::new(self.num(d)))
                }
                4 => {
                    let n = 2 + self.next(3) as usize;
                    N::MinMax(self.next(2) == 0, (0..n).map(|_| self.num(d)).collect())
                }
                5 => N::Clamp(Box::new([self.num(d), self.num(d), self.num(d)])),
                _ => N::If(
                    Box::new(self.boolean(d)),
                    Box::new(self.num(d)),
                    Box::new(self.num(d)),
                ),
            }
        }
        fn boolean(&mut self, depth: u32) -> B {
            let leaf = depth == 0 || self.next(4) == 0;
            if leaf {
                return match self.next(2) {
                    0 => B::Lit(self.next(2) == 0),
                    _ => B::Var(3 + self.next(2) as usize),
                };
            }
            let d = depth - 1;
            match self.next(6) {
                0 => B::Not(Box::new(self.boolean(d))),
                1 => B::Logic(
                    self.next(2) == 0,
                    Box::new(self.boolean(d)),
                    Box::new(self.boolean(d)),
                ),
                2 | 3 => {
                    let op = [">", ">=", "<", "<=", "==", "!="][self.next(6) as usize];
                    B::Cmp(op, Box::new(self.num(d)), Box::new(self.num(d)))
                }
                4 => B::Eq(
                    self.next(2) == 0,
                    Box::new(self.boolean(d)),
                    Box::new(self.boolean(d)),
                ),
                _ => B::If(
                    Box::new(self.boolean(d)),
                    Box::new(self.boolean(d)),
                    Box::new(self.boolean(d)),
                ),
            }
        }
    }

    fn src_n(n: &N) -> String {
        match n {
            N::Lit(v) => format!("{v:?}"),
            N::Var(i) => NAMES[*i].0.to_string(),
            N::Neg(a) => format!("-({})", src_n(a)),
            N::Bin(op, a, b) => format!("({} {op} {})", src_n(a), src_n(b)),
            N::F1(f, a) => format!("{f}({})", src_n(a)),
            N::MinMax(min, args) => format!(
                "{}({})",
                if *min { "min" } else { "max" },
                args.iter().map(src_n).collect::<Vec<_>>().join(", ")
            ),
            N::Clamp(args) => format!(
                "clamp({}, {}, {})",
                src_n(&args[0]),
                src_n(&args[1]),
                src_n(&args[2])
            ),
            N::If(c, a, b) => format!("if({}, {}, {})", src_b(c), src_n(a), src_n(b)),
        }
    }

    fn src_b(b: &B) -> String {
        match b {
            B::Lit(v) => format!("{v}"),
            B::Var(i) => NAMES[*i].0.to_string(),
            B::Not(a) => format!("(not {})", src_b(a)),
            B::Logic(and, a, b) => {
                format!(
                    "({} {} {})",
                    src_b(a),
                    if *and { "and" } else { "||" },
                    src_b(b)
                )
            }
            B::Cmp(op, a, b) => format!("({} {op} {})", src_n(a), src_n(b)),
            B::Eq(eq, a, b) => {
                format!(
                    "({} {} {})",
                    src_b(a),
                    if *eq { "==" } else { "!=" },
                    src_b(b)
                )
            }
            B::If(c, a, b) => format!("if({}, {}, {})", src_b(c), src_b(a), src_b(b)),
        }
    }

    /// Why the reference stopped: `true` for no data, `false` for a calc error.
    type Res<T> = Result<T, bool>;

    fn fin(v: f64) -> Res<f64> {
        if v.is_finite() { Ok(v) } else { Err(false) }
    }

    fn read(s: &[Slot], i: usize, q: &mut Quality) -> Res<Value> {
        let slot = &s[i];
        if slot.value.is_null() {
            return Err(true);
        }
        *q = q.worst(slot.quality);
        Ok(slot.value.clone())
    }

    fn eval_n(n: &N, s: &[Slot], q: &mut Quality) -> Res<f64> {
        match n {
            N::Lit(v) => Ok(*v),
            N::Var(i) => match read(s, *i, q)? {
                Value::F64(v) => fin(v),
                Value::I64(v) => Ok(v as f64),
                _ => Err(false),
            },
            N::Neg(a) => Ok(-eval_n(a, s, q)?),
            N::Bin(op, a, b) => {
                let x = eval_n(a, s, q)?;
                let y = eval_n(b, s, q)?;
                if (*op == "/" || *op == "%") && y == 0.0 {
                    return Err(false);
                }
                fin(match *op {
                    "+" => x + y,
                    "-" => x - y,
                    "*" => x * y,
                    "/" => x / y,
                    _ => x % y,
                })
            }
            N::F1(f, a) => {
                let x = eval_n(a, s, q)?;
                let bad = match *f {
                    "sqrt" => x < 0.0,
                    "ln" | "log10" => x <= 0.0,
                    _ => false,
                };
                if bad {
                    return Err(false);
                }
                fin(match *f {
                    "abs" => x.abs(),
                    "sqrt" => x.sqrt(),
                    "exp" => x.exp(),
                    "ln" => x.ln(),
                    "log10" => x.log10(),
                    "round" => x.round(),
                    "floor" => x.floor(),
                    _ => x.ceil(),
                })
            }
            N::MinMax(min, args) => {
                let mut vals = Vec::new();
                for a in args {
                    vals.push(eval_n(a, s, q)?);
                }
                Ok(vals
                    .into_iter()
                    .reduce(|x, y| if *min { x.min(y) } else { x.max(y) })
                    .unwrap_or(0.0))
            }
            N::Clamp(args) => {
                let x = eval_n(&args[0], s, q)?;
                let lo = eval_n(&args[1], s, q)?;
                let hi = eval_n(&args[2], s, q)?;
                if lo > hi {
                    return Err(false);
                }
                Ok(x.max(lo).min(hi))
            }
            N::If(c, a, b) => {
                if eval_b(c, s, q)? {
                    eval_n(a, s, q)
                } else {
                    eval_n(b, s, q)
                }
            }
        }
    }

    fn eval_b(b: &B, s: &[Slot], q: &mut Quality) -> Res<bool> {
        match b {
            B::Lit(v) => Ok(*v),
            B::Var(i) => match read(s, *i, q)? {
                Value::Bool(v) => Ok(v),
                _ => Err(false),
            },
            B::Not(a) => Ok(!eval_b(a, s, q)?),
            B::Logic(and, a, b) => {
                let x = eval_b(a, s, q)?;
                if x != *and {
                    return Ok(x);
                }
                eval_b(b, s, q)
            }
            B::Cmp(op, a, b) => {
                let x = eval_n(a, s, q)?;
                let y = eval_n(b, s, q)?;
                Ok(match *op {
                    ">" => x > y,
                    ">=" => x >= y,
                    "<" => x < y,
                    "<=" => x <= y,
                    "==" => x == y,
                    _ => x != y,
                })
            }
            B::Eq(eq, a, b) => Ok((eval_b(a, s, q)? == eval_b(b, s, q)?) == *eq),
            B::If(c, a, b) => {
                if eval_b(c, s, q)? {
                    eval_b(a, s, q)
                } else {
                    eval_b(b, s, q)
                }
            }
        }
    }

    fn outcome<T>(r: Res<T>, q: Quality, wrap: impl Fn(T) -> Value) -> (Value, Quality) {
        match r {
            Ok(v) => (wrap(v), q),
            Err(true) => (Value::Null, Quality::Bad(Reason::NoData)),
            Err(false) => (Value::Null, Quality::Bad(Reason::CalcError)),
        }
    }

    fn quality() -> impl Strategy<Value = Quality> {
        prop_oneof![
            3 => Just(Quality::Good),
            1 => Just(Quality::Uncertain(Reason::Stale)),
            1 => Just(Quality::Bad(Reason::CommFailure)),
            1 => Just(Quality::Uncertain(Reason::OutOfRange)),
        ]
    }

    fn slot_values() -> impl Strategy<Value = Vec<Slot>> {
        let num = prop_oneof![
            8 => (-20i32..20).prop_map(|v| Value::F64(f64::from(v) / 4.0)),
            1 => Just(Value::Null),
        ];
        let int = prop_oneof![
            8 => (-5i64..6).prop_map(Value::I64),
            1 => Just(Value::Null),
        ];
        let b = prop_oneof![8 => any::<bool>().prop_map(Value::Bool), 1 => Just(Value::Null)];
        (
            (num.clone(), quality()),
            (num, quality()),
            (int, quality()),
            (b.clone(), quality()),
            (b, quality()),
        )
            .prop_map(|(a, b, c, p, q)| {
                [a, b, c, p, q]
                    .into_iter()
                    .map(|(v, q)| Slot::new(v, q, Timestamp::ZERO))
                    .collect()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn compiled_equals_reference(seed in 1u64.., depth in 0u32..6, s in slot_values()) {
            let mut g = Gen(seed);
            if g.next(3) == 0 {
                let b = g.boolean(depth);
                let src = src_b(&b);
                let e = compile(&src, &Vars, Expected::default())
                    .map_err(|e| TestCaseError::fail(format!("{src}: {e:?}")))?;
                let mut q = Quality::Good;
                let want = outcome(eval_b(&b, &s, &mut q), q, Value::Bool);
                prop_assert_eq!(e.eval(&s), want, "{}", src);
            } else {
                let n = g.num(depth);
                let src = src_n(&n);
                let expected = Expected { ty: Some(ValueType::F64), unit: None };
                let e = compile(&src, &Vars, expected)
                    .map_err(|e| TestCaseError::fail(format!("{src}: {e:?}")))?;
                let mut q = Quality::Good;
                let want = outcome(eval_n(&n, &s, &mut q), q, Value::F64);
                prop_assert_eq!(e.eval(&s), want, "{}", src);
                let mut inputs = Vec::new();
                collect(&n, &mut inputs);
                inputs.sort_unstable();
                inputs.dedup();
                prop_assert_eq!(e.inputs(), &inputs[..]);
            }
        }
    }

    fn collect(n: &N, out: &mut Vec<u16>) {
        match n {
            N::Lit(_) => {}
            N::Var(i) => out.push(*i as u16),
            N::Neg(a) | N::F1(_, a) => collect(a, out),
            N::Bin(_, a, b) => {
                collect(a, out);
                collect(b, out);
            }
            N::MinMax(_, args) => args.iter().for_each(|a| collect(a, out)),
            N::Clamp(args) => args.iter().for_each(|a| collect(a, out)),
            N::If(c, a, b) => {
                collect_b(c, out);
                collect(a, out);
                collect(b, out);
            }
        }
    }

    fn collect_b(b: &B, out: &mut Vec<u16>) {
        match b {
            B::Lit(_) => {}
            B::Var(i) => out.push(*i as u16),
            B::Not(a) => collect_b(a, out),
            B::Logic(_, a, b) | B::Eq(_, a, b) => {
                collect_b(a, out);
                collect_b(b, out);
            }
            B::If(c, a, b) => {
                collect_b(c, out);
                collect_b(a, out);
                collect_b(b, out);
            }
            B::Cmp(_, a, b) => {
                collect(a, out);
                collect(b, out);
            }
        }
    }
}

mod robustness {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any text compiles or reports errors whose spans lie inside it.
        #[test]
        fn arbitrary_text_never_panics(src in "[ -~°µé]{0,40}") {
            match compile(&src, &scope(), Expected::default()) {
                Ok(e) => { let _ = e.eval(&slots(&[])); }
                Err(errors) => {
                    prop_assert!(!errors.is_empty());
                    for e in errors {
                        prop_assert!(e.span.start <= e.span.end && e.span.end <= src.len(), "{:?}", e);
                        prop_assert!(src.is_char_boundary(e.span.start) && src.is_char_boundary(e.span.end));
                    }
                }
            }
            let _ = compile_condition(&src, &scope());
            let _ = referenced_names(&src);
            let _ = Unit::parse(&src);
        }

        /// Token soup from the language's own alphabet reaches the checker more often.
        #[test]
        fn token_soup_never_panics(parts in proptest::collection::vec(prop_oneof![
            Just("flow"), Just("mode"), Just("running"), Just("count"), Just("t_in"),
            Just("1"), Just("2.5"), Just("\"running\""), Just("("), Just(")"), Just(","),
            Just("+"), Just("-"), Just("*"), Just("/"), Just("%"), Just(">"), Just("=="),
            Just("and"), Just("not"), Just("if("), Just("max("), Just("clamp("), Just("sqrt("),
        ], 0..12)) {
            let src = parts.join(" ");
            if let Ok(e) = compile(&src, &scope(), Expected::default()) {
                let _ = e.eval(&slots(&[]));
            }
            if let Ok(c) = compile_condition(&src, &scope()) {
                let _ = c.eval(&slots(&[]), 0.5, true);
            }
        }
    }
}
