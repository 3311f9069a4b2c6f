//! The shipped class library, embedded so a model that says
//! `[model] use = ["library"]` compiles wherever it is copied.

use std::path::PathBuf;

use super::SourceFile;

/// `(path, text)` of each library file, in path order.
const FILES: &[(&str, &str)] = &[];

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
