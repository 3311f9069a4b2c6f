//! Reads a model directory from disk and compiles it.

use std::path::{Path, PathBuf};

use twins::model::{Diagnostics, Model, SourceFile};

/// Why a model directory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read model directory `{path}`: {error}")]
    Io {
        path: PathBuf,
        /// Named `error`, not `source`: the message already includes it.
        error: std::io::Error,
    },
    #[error("model directory `{0}` has no .toml files")]
    Empty(PathBuf),
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Every `*.toml` file in `dir` (not recursive), sorted by name; paths as
/// `dir/file.toml` so messages point at what the user typed.
pub fn read_dir(dir: &Path) -> Result<Vec<SourceFile>, LoadError> {
    let io = |error| LoadError::Io {
        path: dir.to_path_buf(),
        error,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(LoadError::Empty(dir.to_path_buf()));
    }
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).map_err(|error| LoadError::Io {
                path: path.clone(),
                error,
            })?;
            Ok(SourceFile { path, text })
        })
        .collect()
}

/// Reads and compiles a model directory.
pub fn load(dir: &Path) -> Result<Model, LoadError> {
    let files = read_dir(dir)?;
    twins::model::compile(&files).map_err(LoadError::Invalid)
}
