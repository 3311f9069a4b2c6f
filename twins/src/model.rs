//! The model language: classes and a topology in TOML, validated and
//! compiled into a [`Model`].
//!
//! A model is a set of TOML files (a model directory is every `*.toml` in
//! it; the caller reads them, this module does no IO). Classes may live in
//! any file; exactly one file holds the topology root `[enterprise]`, and
//! with it `[model]`, `[settings]` and `[source.NAME]`. `[model] use =
//! ["library"]` adds the shipped class library ([`library_files`]).
//! See `docs/modelling.md` for the language.
//!
//! ```
//! use twins::model::{compile, SourceFile};
//!
//! let text = r#"
//! [class.Site]
//! tier = "enterprise"
//!
//! [enterprise]
//! name = "acme"
//! class = "Site"
//! "#;
//! let model = compile(&[SourceFile { path: "acme.toml".into(), text: text.into() }]).unwrap();
//! assert_eq!(model.summary().twins, 1);
//! ```
//!
//! Errors come back all at once, each at `file:line:col`:
//!
//! ```
//! use twins::model::{compile, SourceFile};
//!
//! let text = "[class.Pump]\ntier = \"devise\"\n";
//! let errors = compile(&[SourceFile { path: "pump.toml".into(), text: text.into() }]).unwrap_err();
//! assert_eq!(errors.0[0].line, 2);
//! assert!(errors.to_string().contains("did you mean `device`?"));
//! ```

mod classes;
mod diag;
mod library;
mod raw;
mod rollup;
mod settings;
mod topology;
mod types;

use std::path::PathBuf;

pub use classes::{PropsScope, SIM_MODELS};
pub use diag::{Diagnostic, Diagnostics, SourceSpan, did_you_mean, one_of};
pub use library::library_files;
pub use settings::parse_duration;
pub use types::*;

/// One model file: its path as the user gave it (used in messages) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

/// Counts of a compiled model, as `twinrt check` prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub classes: usize,
    pub twins: usize,
    /// Property slots over all twins.
    pub properties: usize,
    /// Alarm instances over all twins.
    pub alarms: usize,
    pub sources: usize,
    /// Twins per tier, indexed by [`Tier::index`].
    pub by_tier: [usize; 5],
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} classes, {} twins ({} enterprise, {} regions, {} plants, {} lines, {} devices), {} properties, {} alarms, {} sources",
            self.classes,
            self.twins,
            self.by_tier[0],
            self.by_tier[1],
            self.by_tier[2],
            self.by_tier[3],
            self.by_tier[4],
            self.properties,
            self.alarms,
            self.sources
        )
    }
}

impl Model {
    pub fn summary(&self) -> Summary {
        let mut s = Summary {
            classes: self.classes.len(),
            twins: self.twins.len(),
            sources: self.sources.len(),
            ..Summary::default()
        };
        for t in &self.twins {
            let class = &self.classes[t.class];
            s.properties += class.props.len();
            s.alarms += class.alarms.len();
            s.by_tier[class.tier.index()] += 1;
        }
        s
    }
}

/// Whether any file's `[model] use` names the shipped library.
fn uses_library(files: &[SourceFile]) -> bool {
    files.iter().any(|f| {
        let (root, _) = toml::de::DeTable::parse_recoverable(&f.text);
        root.get_ref()
            .iter()
            .find(|(k, _)| k.get_ref() == "model")
            .and_then(|(_, m)| m.get_ref().as_table())
            .and_then(|m| m.iter().find(|(k, _)| k.get_ref() == "use"))
            .and_then(|(_, u)| u.get_ref().as_array())
            .is_some_and(|a| a.iter().any(|v| v.get_ref().as_str() == Some("library")))
    })
}

/// Validates and compiles a model, reporting every error found.
///
/// Files are taken in path order. A set of files without `[enterprise]`
/// is a class library: it compiles to a model without twins.
pub fn compile(files: &[SourceFile]) -> Result<Model, Diagnostics> {
    // Library first: a user class that reuses a library name is the duplicate.
    let mut all: Vec<SourceFile> = if uses_library(files) {
        library_files()
    } else {
        Vec::new()
    };
    let mut user = files.to_vec();
    user.sort_by(|a, b| a.path.cmp(&b.path));
    all.extend(user);
    let mut sink = diag::Sink::new(&all);
    let parsed: Vec<_> = all
        .iter()
        .enumerate()
        .map(|(i, f)| raw::parse_file(&mut sink, i, &f.text))
        .collect();
    if sink.has_errors() {
        // Later checks would only repeat what the syntax errors already say.
        return Err(sink.finish());
    }
    let mut raws = Vec::with_capacity(parsed.len());
    for (i, table) in parsed.iter().enumerate() {
        if let Some(table) = table {
            raws.push(raw::read_file(&mut sink, i, table));
        }
    }
    let raw_classes = raws
        .iter_mut()
        .flat_map(|f| std::mem::take(&mut f.classes))
        .collect();
    let classes = classes::build(&mut sink, raw_classes);
    let topo = topology::build(&mut sink, &raws, &classes);
    if sink.has_errors() {
        return Err(sink.finish());
    }
    Ok(Model {
        classes: classes
            .list
            .into_iter()
            .map(|c| std::sync::Arc::new(c.class))
            .collect(),
        twins: topo.twins,
        sources: topo.sources,
        settings: topo.settings,
    })
}
