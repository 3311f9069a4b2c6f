//! The configuration examples in `docs/adapters.md` parse and validate, and
//! its example point addresses parse: the guide cannot drift from the code.

use std::sync::Arc;

use adapters::modbus::PointAddress;
use adapters::{Registry, SourceEnv};

fn guide() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/adapters.md");
    std::fs::read_to_string(path).expect("docs/adapters.md is readable")
}

/// Every ```toml block of the guide.
fn toml_blocks(text: &str) -> Vec<String> {
    text.split("```toml\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .map(str::to_string)
        .collect()
}

/// Every `[source.NAME]` table of a block: name, kind and the rest.
fn source_tables(block: &str) -> Vec<(String, String, toml::Table)> {
    let doc: toml::Table = toml::from_str(block).expect("example is valid TOML");
    let Some(sources) = doc.get("source").and_then(|s| s.as_table()) else {
        return Vec::new();
    };
    sources
        .iter()
        .map(|(name, table)| {
            let mut table = table.as_table().expect("a table").clone();
            let kind = table
                .remove("kind")
                .and_then(|k| k.as_str().map(str::to_string))
                .expect("kind");
            (name.clone(), kind, table)
        })
        .collect()
}

fn env() -> SourceEnv {
    let model = twins::model::compile(&[twins::model::SourceFile {
        path: "docs.toml".into(),
        text: "[class.E]\ntier = \"enterprise\"\n[enterprise]\nname = \"acme\"\nclass = \"E\"\n"
            .into(),
    }])
    .unwrap_or_else(|e| panic!("{e}"));
    SourceEnv {
        clock: twins::Clock::system(),
        model: Arc::new(model),
        changes: twins::actor::ChangeFeed::new(1),
    }
}

/// Each source example builds with its kind's factory, as `twinrt check`
/// builds it.
#[test]
fn every_configuration_example_builds() {
    let registry = Registry::builtin();
    let env = env();
    let mut kinds = Vec::new();
    for block in toml_blocks(&guide()) {
        for (name, kind, table) in source_tables(&block) {
            let factory = registry
                .get(&kind)
                .unwrap_or_else(|| panic!("unknown source kind `{kind}` in the guide"));
            if let Err(issues) = factory.build(&name, &table, &env) {
                let text: Vec<String> = issues.iter().map(ToString::to_string).collect();
                panic!(
                    "example source `{name}` does not build:\n{}",
                    text.join("\n")
                );
            }
            kinds.push(kind);
        }
    }
    for kind in ["modbus", "mqtt"] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "the guide has a `{kind}` example"
        );
    }
}

#[test]
fn the_example_point_addresses_parse() {
    for address in [
        "holding:100:f32:CDAB;scale=0.1;group=fast",
        "40011:i32",
        "coil:7",
        "input:20:bit:3",
        "holding:100:f32:CDAB;scale=0.1;group=fast;endpoint=crude-unit-plc",
        "input:10:u16;scale=0.1;deadband=0.5;endpoint=tank-farm-gw",
        "holding:200:f32:CDAB;scale=0.01;writable;endpoint=crude-unit-plc",
        "coil:7;writable;endpoint=tank-farm-gw",
    ] {
        assert!(guide().contains(address), "{address} is in the guide");
        PointAddress::parse(address).unwrap_or_else(|e| panic!("{address}: {e}"));
    }
}
