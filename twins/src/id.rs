//! Twin identity: the organisation path and the stable [`TwinId`] derived from it.
//!
//! A twin's path is its place in the organisation,
//! `acme/east/plant-3/crude-unit/p-101`. Its id is the UUID v5 of that path
//! under [`TWIN_NAMESPACE`], so the same twin has the same id on every node and
//! after every restart. External identifiers (asset tags, AAS globalAssetId)
//! are aliases that resolve to the same twin through a [`Resolver`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The namespace under which twin ids are derived: `UUIDv5(TWIN_NAMESPACE, path)`.
///
/// Fixed forever; changing it changes every twin's id.
pub const TWIN_NAMESPACE: Uuid = Uuid::from_u128(0x7c1e_2f0a_9b4d_5e61_8a3c_d0f4_b2e6_1a57);

/// Longest accepted path, in bytes.
pub const MAX_PATH_LEN: usize = 512;

/// Why a string is not a valid twin path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("twin path is empty")]
    Empty,
    #[error("twin path `{0}` is longer than {MAX_PATH_LEN} bytes")]
    TooLong(String),
    #[error("twin path `{path}` has an empty segment at position {index}")]
    EmptySegment { path: String, index: usize },
    #[error(
        "twin path `{path}` has invalid character `{ch}` in segment `{segment}`: expected letters, digits, `-`, `_` or `.`"
    )]
    InvalidChar {
        path: String,
        segment: String,
        ch: char,
    },
}

/// A validated organisation path: `/`-separated segments of `[A-Za-z0-9_.-]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TwinPath(Arc<str>);

impl TwinPath {
    /// Parses and validates a path.
    pub fn parse(text: &str) -> Result<Self, PathError> {
        if text.is_empty() {
            return Err(PathError::Empty);
        }
        if text.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong(text.to_string()));
        }
        for (index, segment) in text.split('/').enumerate() {
            validate_segment(text, segment, index)?;
        }
        Ok(Self(Arc::from(text)))
    }

    /// The path of a child of this twin.
    pub fn child(&self, segment: &str) -> Result<Self, PathError> {
        Self::parse(&format!("{}/{segment}", self.0))
    }

    /// The parent's path, `None` for a root.
    pub fn parent(&self) -> Option<Self> {
        self.0.rfind('/').map(|at| Self(Arc::from(&self.0[..at])))
    }

    /// The last segment: the twin's own name.
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// Number of segments (a root has depth 1).
    pub fn depth(&self) -> usize {
        self.0.split('/').count()
    }

    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// Whether `self` is `other` or lies below it.
    pub fn is_within(&self, other: &TwinPath) -> bool {
        self.0.len() >= other.0.len()
            && self.0.starts_with(&*other.0)
            && (self.0.len() == other.0.len() || self.0.as_bytes()[other.0.len()] == b'/')
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The stable id of the twin at this path.
    pub fn id(&self) -> TwinId {
        TwinId::of(self)
    }
}

fn validate_segment(path: &str, segment: &str, index: usize) -> Result<(), PathError> {
    if segment.is_empty() {
        return Err(PathError::EmptySegment {
            path: path.to_string(),
            index,
        });
    }
    if let Some(ch) = segment
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(PathError::InvalidChar {
            path: path.to_string(),
            segment: segment.to_string(),
            ch,
        });
    }
    Ok(())
}

impl TryFrom<String> for TwinPath {
    type Error = PathError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TwinPath> for String {
    fn from(value: TwinPath) -> Self {
        value.0.to_string()
    }
}

impl fmt::Display for TwinPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TwinPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TwinPath({})", self.0)
    }
}

/// A twin's stable identity: UUID v5 of its path under [`TWIN_NAMESPACE`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TwinId(pub Uuid);

impl TwinId {
    pub fn of(path: &TwinPath) -> Self {
        Self(Uuid::new_v5(&TWIN_NAMESPACE, path.as_str().as_bytes()))
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(Uuid::from_bytes(bytes))
    }

    pub fn parse(text: &str) -> Result<Self, uuid::Error> {
        Uuid::parse_str(text).map(Self)
    }
}

impl fmt::Display for TwinId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl fmt::Debug for TwinId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TwinId({})", self.0.hyphenated())
    }
}

/// Why an identifier could not be registered with a [`Resolver`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("alias `{alias}` already names `{existing}`, cannot also name `{path}`")]
    AliasTaken {
        alias: String,
        existing: TwinPath,
        path: TwinPath,
    },
    #[error("alias `{alias}` names `{path}`, which is not a known twin")]
    UnknownTwin { alias: String, path: TwinPath },
}

/// Identifier resolution: path ↔ id both ways, and external aliases to the same twin.
#[derive(Debug, Default, Clone)]
pub struct Resolver {
    by_id: HashMap<TwinId, TwinPath>,
    aliases: HashMap<String, TwinId>,
}

impl Resolver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a twin; returns its id.
    pub fn insert(&mut self, path: TwinPath) -> TwinId {
        let id = path.id();
        self.by_id.insert(id, path);
        id
    }

    /// Registers an external alias for an already registered twin.
    pub fn alias(&mut self, alias: &str, path: &TwinPath) -> Result<(), ResolveError> {
        let id = path.id();
        if !self.by_id.contains_key(&id) {
            return Err(ResolveError::UnknownTwin {
                alias: alias.to_string(),
                path: path.clone(),
            });
        }
        match self.aliases.get(alias) {
            Some(existing) if *existing != id => Err(ResolveError::AliasTaken {
                alias: alias.to_string(),
                existing: self.by_id[existing].clone(),
                path: path.clone(),
            }),
            _ => {
                self.aliases.insert(alias.to_string(), id);
                Ok(())
            }
        }
    }

    pub fn path_of(&self, id: TwinId) -> Option<&TwinPath> {
        self.by_id.get(&id)
    }

    /// Resolves any identifier: a path, a hyphenated id, or an alias.
    pub fn resolve(&self, ident: &str) -> Option<TwinId> {
        if let Some(id) = self.aliases.get(ident) {
            return Some(*id);
        }
        if let Ok(path) = TwinPath::parse(ident) {
            let id = path.id();
            if self.by_id.contains_key(&id) {
                return Some(id);
            }
        }
        TwinId::parse(ident)
            .ok()
            .filter(|id| self.by_id.contains_key(id))
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn segment() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_.-]{1,12}"
    }

    fn path() -> impl Strategy<Value = String> {
        proptest::collection::vec(segment(), 1..6).prop_map(|s| s.join("/"))
    }

    proptest! {
        #[test]
        fn path_round_trips_through_text_and_id(text in path()) {
            let p = TwinPath::parse(&text).unwrap();
            prop_assert_eq!(p.as_str(), text.as_str());
            let mut r = Resolver::new();
            let id = r.insert(p.clone());
            prop_assert_eq!(r.path_of(id), Some(&p));
            prop_assert_eq!(r.resolve(&text), Some(id));
            prop_assert_eq!(r.resolve(&id.to_string()), Some(id));
            prop_assert_eq!(TwinId::of(&TwinPath::parse(&text).unwrap()), id);
        }

        #[test]
        fn distinct_paths_have_distinct_ids(a in path(), b in path()) {
            prop_assume!(a != b);
            let (pa, pb) = (TwinPath::parse(&a).unwrap(), TwinPath::parse(&b).unwrap());
            prop_assert_ne!(pa.id(), pb.id());
        }

        #[test]
        fn parent_and_child_are_inverse(text in path(), seg in segment()) {
            let p = TwinPath::parse(&text).unwrap();
            let c = p.child(&seg).unwrap();
            prop_assert_eq!(c.parent(), Some(p.clone()));
            prop_assert_eq!(c.name(), seg.as_str());
            prop_assert!(c.is_within(&p));
            prop_assert_eq!(c.depth(), p.depth() + 1);
        }
    }

    #[test]
    fn ids_are_stable_across_releases() {
        // Golden value: an id must never change for a given path.
        let p = TwinPath::parse("acme/east/plant-3/crude-unit/p-101").unwrap();
        assert_eq!(p.id().to_string(), TwinId::of(&p).to_string());
        assert_eq!(
            p.id(),
            TwinId(Uuid::new_v5(
                &TWIN_NAMESPACE,
                b"acme/east/plant-3/crude-unit/p-101"
            ))
        );
        assert_eq!(p.id().to_string(), GOLDEN_ID);
    }
    const GOLDEN_ID: &str = "b1fe5c9c-7c12-57a3-8338-2fc57005c1e9";

    #[test]
    fn aliases_resolve_to_the_same_twin_and_conflicts_are_rejected() {
        let mut r = Resolver::new();
        let p = TwinPath::parse("acme/east/p1/l1/p-101").unwrap();
        let q = TwinPath::parse("acme/east/p1/l1/p-102").unwrap();
        let id = r.insert(p.clone());
        r.insert(q.clone());
        r.alias("TAG-P-101", &p).unwrap();
        r.alias("urn:aas:asset:p101", &p).unwrap();
        assert_eq!(r.resolve("TAG-P-101"), Some(id));
        assert_eq!(r.resolve("urn:aas:asset:p101"), Some(id));
        assert!(matches!(
            r.alias("TAG-P-101", &q),
            Err(ResolveError::AliasTaken { .. })
        ));
        let unknown = TwinPath::parse("acme/nowhere").unwrap();
        assert!(matches!(
            r.alias("X", &unknown),
            Err(ResolveError::UnknownTwin { .. })
        ));
        assert_eq!(r.resolve("acme/nowhere"), None);
    }

    #[test]
    fn invalid_paths_are_rejected_with_reasons() {
        assert_eq!(TwinPath::parse(""), Err(PathError::Empty));
        assert!(matches!(
            TwinPath::parse("acme//p1"),
            Err(PathError::EmptySegment { index: 1, .. })
        ));
        assert!(matches!(
            TwinPath::parse("acme/p 1"),
            Err(PathError::InvalidChar { ch: ' ', .. })
        ));
    }
}
