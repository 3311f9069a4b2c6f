//! The model language: classes and topology in TOML, validated and compiled.

mod types;

pub use types::*;
