//! The shipped class library, embedded so a model that says
//! `[model] use = ["library"]` compiles wherever it is copied.

use std::path::PathBuf;

use super::SourceFile;

/// `(path, text)` of each library file, in path order.
const FILES: &[(&str, &str)] = &[
    (
        "library/compressor.toml",
        include_str!("../../../models/library/compressor.toml"),
    ),
    (
        "library/heat_exchanger.toml",
        include_str!("../../../models/library/heat_exchanger.toml"),
    ),
    (
        "library/motor.toml",
        include_str!("../../../models/library/motor.toml"),
    ),
    (
        "library/pump.toml",
        include_str!("../../../models/library/pump.toml"),
    ),
    (
        "library/tank.toml",
        include_str!("../../../models/library/tank.toml"),
    ),
    (
        "library/tiers.toml",
        include_str!("../../../models/library/tiers.toml"),
    ),
    (
        "library/valve.toml",
        include_str!("../../../models/library/valve.toml"),
    ),
];

/// The shipped library as source files named `library/<file>.toml`.
pub fn library_files() -> Vec<SourceFile> {
    FILES
        .iter()
        .map(|(path, text)| SourceFile {
            path: PathBuf::from(path),
            text: (*text).to_string(),
        })
        .collect()
}
