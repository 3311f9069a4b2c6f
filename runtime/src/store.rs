//! Storage backends of the node.
//!
//! The interface, the records, the in-memory backend and the write-behind
//! writer live in [`twins::store`]; this module holds the backends that touch
//! a disk.
//!
//! - [`fjall`]: [`FjallStore`], the embedded default, under the node's
//!   `--data-dir` (in [`STORE_DIR`]).

pub mod fjall;

use std::path::Path;

pub use self::fjall::FjallStore;
pub use twins::store::{Store, StoreError};

/// The store's directory below the node's data directory.
pub const STORE_DIR: &str = "store";

/// Opens the default store of a node whose data directory is `data_dir`.
pub fn open_default(data_dir: &Path) -> Result<FjallStore, StoreError> {
    FjallStore::open(&data_dir.join(STORE_DIR))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_store_lives_below_the_data_directory() {
        let data = tempfile::tempdir().unwrap();
        let store = open_default(data.path()).unwrap();
        assert_eq!(store.path(), data.path().join(STORE_DIR));
        assert!(data.path().join(STORE_DIR).is_dir());
    }
}
