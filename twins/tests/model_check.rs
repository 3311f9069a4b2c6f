//! The model language end to end: the shipped library, the acme example and
//! invalid models, each asserting its message and location.

use std::time::Duration;

use twins::Value;
use twins::alarm::Priority;
use twins::model::{
    AlarmOverride, Model, PropKind, SourceFile, Summary, Tier, TwinDef, compile, library_files,
};

fn topo(text: &str) -> Vec<SourceFile> {
    vec![SourceFile {
        path: "topology.toml".into(),
        text: text.into(),
    }]
}

#[test]
fn library_compiles_alone() {
    match compile(&library_files()) {
        Ok(m) => {
            let s = m.summary();
            assert_eq!(s.classes, 10, "{s}");
            assert_eq!(s.twins, 0);
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn library_compiles_with_a_topology() {
    let files = topo(
        r#"
[model]
use = ["library"]

[enterprise]
name = "acme"
class = "Enterprise"
"#,
    );
    if let Err(e) = compile(&files) {
        panic!("{e}");
    }
}

/// Every `*.toml` of a directory under the workspace root, named relative to it.
fn read_dir(rel: &str) -> Vec<SourceFile> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files: Vec<SourceFile> = std::fs::read_dir(root.join(rel))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| SourceFile {
            path: std::path::Path::new(rel).join(p.file_name().unwrap()),
            text: std::fs::read_to_string(&p).unwrap(),
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

fn acme() -> Model {
    match compile(&read_dir("examples/acme")) {
        Ok(m) => m,
        Err(e) => panic!("{e}"),
    }
}

fn twin<'m>(m: &'m Model, path: &str) -> &'m TwinDef {
    m.twin_by_path(path)
        .unwrap_or_else(|| panic!("no twin `{path}`"))
}

#[test]
fn acme_compiles_with_the_expected_size() {
    let s = acme().summary();
    assert_eq!(
        s,
        Summary {
            classes: 12,
            twins: 223,
            properties: 2437,
            alarms: 774,
            sources: 0,
            by_tier: [1, 2, 4, 12, 204],
        },
        "{s}"
    );
}

#[test]
fn acme_tree_is_in_pre_order_and_consistent() {
    let m = acme();
    assert_eq!(m.twins[0].path.as_str(), "acme");
    assert_eq!(m.twins[0].parent, None);
    for (i, t) in m.twins.iter().enumerate() {
        let class = &m.classes[t.class];
        if let Some(p) = t.parent {
            assert!(p < i, "parent of {} comes after it", t.path);
            assert!(m.twins[p].children.contains(&i));
            assert_eq!(t.path.parent().as_ref(), Some(&m.twins[p].path));
            assert_eq!(m.classes[m.twins[p].class].tier.below(), Some(class.tier));
        }
        for &c in &t.children {
            assert_eq!(m.twins[c].parent, Some(i));
        }
    }
    for c in &m.classes {
        for (i, r) in c.rollups.iter().enumerate() {
            assert!(
                matches!(c.props[r.prop as usize].kind, PropKind::Rollup(j) if j as usize == i),
                "{}: roll-up {i} points at slot {}",
                c.name,
                r.prop
            );
        }
        for &slot in &c.eval_order {
            assert!(matches!(c.props[slot as usize].kind, PropKind::Derived(_)));
        }
        let derived = c
            .props
            .iter()
            .filter(|p| matches!(p.kind, PropKind::Derived(_)));
        assert_eq!(derived.count(), c.eval_order.len(), "{}", c.name);
    }
    // Children keep declaration order: pumps, then valves, tanks, ...
    let line = twin(&m, "acme/east/baytown/crude-unit");
    let names: Vec<&str> = line
        .children
        .iter()
        .map(|&c| m.twins[c].path.name())
        .collect();
    assert_eq!(
        &names[..7],
        ["p-01", "p-02", "p-03", "p-04", "p-05", "p-06", "fv-01"]
    );
    assert_eq!(names.len(), 17);
}

#[test]
fn acme_overrides_aliases_and_inheritance() {
    let m = acme();
    let p = twin(&m, "acme/east/baytown/crude-unit/p-03");
    let class = &m.classes[p.class];
    assert_eq!(class.name, "CentrifugalPump");
    let slot = class.prop_index("rated_flow").unwrap();
    assert!(p.params.contains(&(slot, Value::F64(400.0))));
    assert_eq!(p.aliases, ["BAY-CRU-P003"]);
    let vib = class
        .alarms
        .iter()
        .position(|a| a.name == "high_vibration")
        .unwrap();
    assert_eq!(
        p.alarm_overrides,
        [AlarmOverride {
            alarm: vib as u16,
            enabled: None,
            priority: Some(Priority::Urgent),
            deadband: Some(0.5),
        }]
    );
    let tank = twin(&m, "acme/east/deer-park/polymer-1/tk-2");
    let tank_class = &m.classes[tank.class];
    let low = tank_class
        .alarms
        .iter()
        .position(|a| a.name == "low_level")
        .unwrap();
    assert_eq!(tank.alarm_overrides[0].alarm, low as u16);
    assert_eq!(tank.alarm_overrides[0].enabled, Some(false));
    assert_eq!(
        twin(&m, "acme/east/baytown").aliases,
        ["urn:acme:plant:baytown"]
    );

    let bfp = m.class_by_name("BoilerFeedPump").unwrap();
    assert_eq!(bfp.lineage, ["BoilerFeedPump", "CentrifugalPump"]);
    assert_eq!(bfp.sim.as_deref(), Some("centrifugal_pump"));
    // An inherited property redefined in place keeps its slot.
    let pump = m.class_by_name("CentrifugalPump").unwrap();
    assert_eq!(
        bfp.prop_index("discharge_pressure"),
        pump.prop_index("discharge_pressure")
    );
    assert_eq!(
        bfp.props[bfp.prop_index("discharge_pressure").unwrap() as usize].range,
        Some((0.0, 180.0))
    );
    assert!(bfp.prop_index("head").is_some());
    assert_eq!(bfp.alarms.len(), pump.alarms.len() + 1);
    let crude = m.class_by_name("CrudeLine").unwrap();
    assert!(crude.is_a("Line"));
    let r = &crude.rollups[crude.rollups.len() - 1];
    assert_eq!(
        (r.input.as_str(), r.class_filter.as_slice()),
        ("bearing_temp", &["CentrifugalPump".to_string()][..])
    );

    let s = &m.settings;
    assert_eq!(
        s.publish_interval.get(Tier::Line),
        Duration::from_millis(50)
    );
    assert_eq!(
        s.publish_interval.get(Tier::Enterprise),
        Duration::from_millis(250)
    );
    assert_eq!(s.supervision.get(Tier::Enterprise).max_restarts, 10);
    assert_eq!(
        s.supervision.get(Tier::Enterprise).period,
        Duration::from_secs(60)
    );
    assert_eq!(s.supervision.get(Tier::Plant).max_restarts, 5);
    assert_eq!(s.stale_factor, 3.0);
}

#[test]
fn suppression_is_compiled_per_parent_class_and_shared() {
    let m = acme();
    let a = twin(&m, "acme/east/baytown/vacuum-unit/p-01");
    let b = twin(&m, "acme/west/richmond/reformer/p-06");
    let class = &m.classes[a.class];
    let (sa, sb) = (
        a.suppression.clone().unwrap(),
        b.suppression.clone().unwrap(),
    );
    assert!(
        std::sync::Arc::ptr_eq(&sa, &sb),
        "same (Line, CentrifugalPump) pair"
    );
    assert_eq!(sa.len(), class.alarms.len());
    for (alarm, s) in class.alarms.iter().zip(sa.iter()) {
        assert_eq!(
            alarm.suppress_when_parent.is_some(),
            s.is_some(),
            "{}",
            alarm.name
        );
    }
    // Under a CrudeLine the pair differs, so the conditions are compiled again.
    let c = twin(&m, "acme/east/baytown/crude-unit/p-01");
    assert!(!std::sync::Arc::ptr_eq(
        &sa,
        c.suppression.as_ref().unwrap()
    ));
    // Classes without suppression get none.
    assert!(
        twin(&m, "acme/east/baytown/vacuum-unit/tk-1")
            .suppression
            .is_none()
    );
}

/// Renders diagnostics as the lines `expected.txt` files hold:
/// `file:line:col: message`, then `  help: hint` when there is one.
fn render(diags: &twins::model::Diagnostics) -> String {
    let mut out = String::new();
    for d in diags {
        out.push_str(&format!(
            "{}:{}:{}: {}\n",
            d.file.display(),
            d.line,
            d.col,
            d.message
        ));
        if let Some(h) = &d.hint {
            out.push_str(&format!("  help: {h}\n"));
        }
    }
    out
}

/// Each directory under `tests/fixtures/invalid` is a model that must fail
/// with exactly the errors in its `expected.txt`. `TWINRT_BLESS=1` writes
/// the files from the current output (review the diff before committing).
#[test]
fn invalid_models_report_every_error_at_its_place() {
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let bless = std::env::var_os("TWINRT_BLESS").is_some();
    let mut dirs: Vec<_> = std::fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 20,
        "expected at least 20 invalid models, found {}",
        dirs.len()
    );
    let mut failures = Vec::new();
    for dir in &dirs {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let mut files: Vec<SourceFile> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .map(|p| SourceFile {
                path: p.file_name().unwrap().into(),
                text: std::fs::read_to_string(&p).unwrap(),
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let actual = match compile(&files) {
            Ok(_) => "(compiled without errors)\n".to_string(),
            Err(d) => {
                // Display must agree with the fields.
                let shown = d.to_string();
                for x in &d {
                    let head = format!(
                        "{}:{}:{}: error: {}",
                        x.file.display(),
                        x.line,
                        x.col,
                        x.message
                    );
                    assert!(shown.contains(&head), "{name}: display lacks `{head}`");
                    assert!(
                        shown.contains(&x.snippet),
                        "{name}: display lacks the snippet"
                    );
                }
                render(&d)
            }
        };
        let expected_path = dir.join("expected.txt");
        if bless {
            std::fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("{name}: missing expected.txt"));
        if expected != actual {
            failures.push(format!(
                "--- {name}\nexpected:\n{expected}actual:\n{actual}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn files(list: &[(&str, &str)]) -> Vec<SourceFile> {
    list.iter()
        .map(|(p, t)| SourceFile {
            path: (*p).into(),
            text: (*t).into(),
        })
        .collect()
}

#[test]
fn errors_in_two_files_are_all_reported_sorted() {
    let model = files(&[
        (
            "b.toml",
            "[class.Pump]\ntier = \"device\"\n\n[class.Pump.properties]\nflow = { unit = \"m3/h\", range = [10, 0] }\nhead = { unit = \"m\", expr = \"flw * 2\" }\n",
        ),
        (
            "a.toml",
            "[class.Valve]\ntier = \"devce\"\n\n[class.Pump2]\nextends = \"Pump\"\ncolour = \"red\"\n",
        ),
    ]);
    let errors = compile(&model).unwrap_err();
    let at: Vec<(String, usize, usize)> = errors
        .iter()
        .map(|d| (d.file.display().to_string(), d.line, d.col))
        .collect();
    assert_eq!(
        at,
        [
            ("a.toml".to_string(), 2, 8),
            ("a.toml".to_string(), 6, 1),
            ("b.toml".to_string(), 5, 33),
            ("b.toml".to_string(), 6, 30),
        ]
    );
    assert!(errors.to_string().ends_with("4 errors"));
}

#[test]
fn misspelt_property_gets_a_hint_in_the_rendered_report() {
    let model = files(&[(
        "pump.toml",
        r#"[class.Pump]
tier = "device"

[class.Pump.properties]
flow = { unit = "m3/h" }
discharge_pressure = { unit = "bar" }
hydraulic_power = { unit = "kW", expr = "flow * discharge_presure / 36" }
"#,
    )]);
    let text = compile(&model).unwrap_err().to_string();
    let expected = "pump.toml:7:49: error: unknown name `discharge_presure`
  |
7 | hydraulic_power = { unit = \"kW\", expr = \"flow * discharge_presure / 36\" }
  |                                                 ^^^^^^^^^^^^^^^^^
  = help: did you mean `discharge_pressure`?

1 error";
    assert_eq!(text, expected);
}

#[test]
fn units_convert_between_compatible_units() {
    let model = files(&[(
        "pump.toml",
        r#"[class.Pump]
tier = "device"

[class.Pump.properties]
suction_pressure = { unit = "kPa" }
discharge_pressure = { unit = "bar" }
differential_pressure = { unit = "bar", expr = "discharge_pressure - suction_pressure" }
"#,
    )]);
    let m = compile(&model).unwrap_or_else(|e| panic!("{e}"));
    let c = &m.classes[0];
    let dp = &c.props[c.prop_index("differential_pressure").unwrap() as usize];
    assert_eq!(dp.unit.as_ref().map(|u| u.symbol()), Some("bar"));
    assert_eq!(m.summary().twins, 0, "a class library has no twins");
}

#[test]
fn sources_and_numbered_bindings() {
    let model = files(&[(
        "site.toml",
        r#"[model]
use = ["library"]

[source.plc1]
kind = "modbus"
host = "10.0.0.5"
port = 502

[source.broker]
kind = "mqtt"
url = "mqtt://localhost:1883"

[enterprise]
name = "acme"
class = "Enterprise"

[twin."east"]
class = "Region"
[twin."east/works"]
class = "Plant"
[twin."east/works/unit"]
class = "Line"

[twin."east/works/unit/p-{n:02}"]
class = "CentrifugalPump"
count = 3
start = 7
source = "plc1"
aliases = ["P-{n}"]
bindings = { flow = "holding:4{n:03}:f32", running = { source = "broker", address = "site/p-{n}/run" } }
"#,
    )]);
    let m = compile(&model).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.sources.len(), 2);
    assert_eq!(m.sources[0].name, "plc1");
    assert_eq!(m.sources[0].kind, "modbus");
    assert_eq!(
        m.sources[0].config.get("port").and_then(|v| v.as_integer()),
        Some(502)
    );
    assert!(m.sources[0].config.get("kind").is_none());
    let p = twin(&m, "acme/east/works/unit/p-09");
    let class = &m.classes[p.class];
    assert_eq!(p.aliases, ["P-9"]);
    let flow = class.prop_index("flow").unwrap();
    let running = class.prop_index("running").unwrap();
    let bindings: Vec<_> = p
        .bindings
        .iter()
        .map(|b| (b.prop, b.source, b.address.as_str()))
        .collect();
    assert_eq!(
        bindings,
        [(flow, 0, "holding:4009:f32"), (running, 1, "site/p-9/run")]
    );
    // Each binding remembers where its address is written, for later checks.
    let at = p.bindings[0].at.as_deref().expect("binding location");
    assert_eq!((at.line, at.col, at.span_len), (30, 21, 21), "{at:?}");
    assert!(at.snippet.starts_with("bindings = "), "{at:?}");
    // And each source where its keys are written.
    let plc = &m.sources[0];
    assert_eq!((plc.at.line, plc.kind_at.line), (4, 5));
    assert_eq!(plc.locate("port").line, 7);
    assert_eq!(plc.locate("port.nested.deeper").line, 7);
    assert_eq!(plc.locate("unknown").line, 4);
    assert!(m.twin_by_path("acme/east/works/unit/p-06").is_none());
    assert!(m.twin_by_path("acme/east/works/unit/p-10").is_none());
    assert_eq!(m.summary().sources, 2);
}

#[test]
fn embedded_library_matches_the_models_library_directory() {
    let on_disk = read_dir("models/library");
    let embedded = library_files();
    assert_eq!(
        on_disk.len(),
        embedded.len(),
        "add new library files to model/library.rs"
    );
    for (d, e) in on_disk.iter().zip(&embedded) {
        assert_eq!(d.path.file_name(), e.path.file_name());
        assert!(e.path.starts_with("library"));
        assert_eq!(d.text, e.text);
    }
    for sim in [
        "centrifugal_pump",
        "control_valve",
        "tank",
        "heat_exchanger",
        "compressor",
        "electric_motor",
    ] {
        let m = compile(&embedded).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            m.classes.iter().any(|c| c.sim.as_deref() == Some(sim)),
            "{sim}"
        );
    }
}

#[test]
fn toml_snippets_of_the_modelling_guide_parse() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let guide = std::fs::read_to_string(root.join("docs/modelling.md")).unwrap();
    let mut blocks = 0;
    for (i, block) in guide.split("```toml\n").skip(1).enumerate() {
        let text = block.split("```").next().unwrap();
        if let Err(e) = text.parse::<toml::Table>() {
            panic!("toml block {i} of docs/modelling.md: {e}\n{text}");
        }
        blocks += 1;
    }
    assert!(blocks >= 8, "found {blocks} toml blocks");
}

mod robustness {
    use super::*;
    use proptest::prelude::*;

    fn corpus() -> Vec<Vec<SourceFile>> {
        let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
        let mut sets = vec![read_dir("examples/acme"), library_files()];
        for name in [
            "05-undefined-name",
            "13-binding-unknown-source",
            "26-unknown-enum-state-in-condition",
            "32-bad-settings",
        ] {
            let dir = base.join(name);
            let mut files = Vec::new();
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|x| x == "toml") {
                    files.push(SourceFile {
                        path: p.file_name().unwrap().into(),
                        text: std::fs::read_to_string(&p).unwrap(),
                    });
                }
            }
            sets.push(files);
        }
        sets
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any edit of a real model compiles or reports located errors; never panics.
        #[test]
        fn edited_models_never_panic(
            set in 0usize..6,
            file in 0usize..8,
            at in 0usize..20_000,
            cut in 0usize..12,
            insert in "[a-z_{}\\[\\]\"'=.,()<>:/\\\\ é€\n0-9-]{0,6}",
        ) {
            let mut sets = corpus();
            let files = &mut sets[set];
            let i = file % files.len();
            let text = &mut files[i].text;
            let mut at = at % (text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            let mut end = (at + cut).min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            text.replace_range(at..end, &insert);
            if let Err(d) = compile(files) {
                prop_assert!(!d.is_empty());
                let shown = d.to_string();
                for x in &d {
                    prop_assert!(x.line >= 1 && x.col >= 1 && x.span_len >= 1);
                    prop_assert!(shown.contains(&x.message));
                }
            }
        }
    }
}
