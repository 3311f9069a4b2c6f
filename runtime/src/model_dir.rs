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

/// Reads and compiles a model directory, with the [`fingerprint`] of its files.
pub fn load_fingerprinted(dir: &Path) -> Result<(Model, String), LoadError> {
    let files = read_dir(dir)?;
    let fp = fingerprint(&files);
    let model = twins::model::compile(&files).map_err(LoadError::Invalid)?;
    Ok((model, fp))
}

/// A sha256 (hex) over the files' names (without their directory) and
/// contents, in the order given ([`read_dir`] sorts by name): the same model
/// text gives the same fingerprint wherever the directory lives.
pub fn fingerprint(files: &[SourceFile]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for f in files {
        let name = f
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Lengths first, so that no two file lists hash the same bytes.
        h.update((name.len() as u64).to_be_bytes());
        h.update(name.as_bytes());
        h.update((f.text.len() as u64).to_be_bytes());
        h.update(f.text.as_bytes());
    }
    twins::store::hex(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> SourceFile {
        SourceFile {
            path: PathBuf::from("some/dir").join(name),
            text: text.to_string(),
        }
    }

    #[test]
    fn the_fingerprint_follows_names_and_contents_not_the_directory() {
        let a = fingerprint(&[file("a.toml", "x = 1"), file("b.toml", "y = 2")]);
        assert_eq!(a.len(), 64);
        let mut moved = file("a.toml", "x = 1");
        moved.path = PathBuf::from("elsewhere/a.toml");
        assert_eq!(a, fingerprint(&[moved, file("b.toml", "y = 2")]));
        assert_ne!(
            a,
            fingerprint(&[file("a.toml", "x = 2"), file("b.toml", "y = 2")])
        );
        assert_ne!(
            a,
            fingerprint(&[file("c.toml", "x = 1"), file("b.toml", "y = 2")])
        );
        // Moving text from one file to the next changes it too.
        assert_ne!(
            a,
            fingerprint(&[file("a.toml", "x = 1y"), file("b.toml", " = 2")])
        );
    }
}
