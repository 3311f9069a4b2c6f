//! The configuration examples in `docs/adapters.md` parse and validate, and
//! its example point addresses parse: the guide cannot drift from the code.

use adapters::modbus::{ModbusConfig, PointAddress};
use adapters::mqtt::MqttConfig;

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

/// The `[source.NAME]` table of a block, without its `kind` (the runtime
/// reads `kind`; the adapter the rest).
fn source_table(block: &str) -> (String, toml::Table) {
    let doc: toml::Table = toml::from_str(block).expect("example is valid TOML");
    let sources = doc["source"].as_table().expect("[source.NAME]");
    let (_, table) = sources.iter().next().expect("one source");
    let mut table = table.as_table().expect("a table").clone();
    let kind = table
        .remove("kind")
        .and_then(|k| k.as_str().map(str::to_string))
        .expect("kind");
    (kind, table)
}

#[test]
fn every_configuration_example_parses_and_validates() {
    let blocks = toml_blocks(&guide());
    let mut kinds = Vec::new();
    for block in &blocks {
        let (kind, table) = source_table(block);
        match kind.as_str() {
            "modbus" => {
                let config: ModbusConfig = table.try_into().expect("modbus example parses");
                config.validate().expect("modbus example validates");
            }
            "mqtt" => {
                let config: MqttConfig = table.try_into().expect("mqtt example parses");
                config.validate().expect("mqtt example validates");
            }
            other => panic!("unexpected source kind `{other}` in the guide"),
        }
        kinds.push(kind);
    }
    assert_eq!(kinds, ["modbus", "mqtt"]);
}

#[test]
fn the_example_point_addresses_parse() {
    for address in [
        "holding:100:f32:CDAB;scale=0.1;group=fast",
        "40011:i32",
        "coil:7",
        "input:20:bit:3",
    ] {
        assert!(guide().contains(address), "{address} is in the guide");
        PointAddress::parse(address).unwrap_or_else(|e| panic!("{address}: {e}"));
    }
}
