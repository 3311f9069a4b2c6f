//! The versioned envelope every persisted value is wrapped in.
//!
//! ```text
//! [kind tag u8][version u8][postcard body]
//! ```
//!
//! The kind tag says which record this is (see [`RecordKind`]), so a value
//! read from the wrong keyspace is reported as such instead of decoded as
//! garbage. The version is the version of the body's shape. [`decode`]
//! rejects tags, versions and trailing bytes it does not expect, with an
//! error naming the record kind and what was found and expected.
//!
//! # Changing a record: how v2 reads v1
//!
//! Writers always write the newest version; readers read every version ever
//! written. To change the shape of, say, [`TwinRecord`]:
//!
//! 1. Copy today's struct into a frozen, private `TwinRecordV1` (same fields,
//!    same serde shape, including frozen copies of any nested shared type
//!    whose shape also changes), with `impl From<TwinRecordV1> for TwinRecord`
//!    filling new fields with defaults.
//! 2. Change [`TwinRecord`] and bump its [`Persisted::VERSION`] to 2.
//! 3. Implement [`Persisted::decode_older`]: for version 1, decode the body
//!    as `TwinRecordV1` with [`decode_body`] and convert.
//! 4. Keep `twin_record.v1.hex` as a decode-only golden fixture (it must still
//!    decode, through the upgrade) and bless a new `twin_record.v2.hex`.
//!
//! Records are upgraded lazily, when read; a later state write stores v2.
//! Nothing rewrites old history in place.
//!
//! Postcard is not self-describing: the body has no field names, so adding
//! an enum variant at the end of an enum is compatible, but inserting a
//! field, reordering fields or variants, or changing a field's type is not.
//! That includes the shared domain types records contain (`Value`,
//! `Quality`, `Slot`, `AlarmRecord`, ...); the golden fixtures catch such a
//! change.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::record::{EventRecord, HistoryPoint, TwinRecord};

/// Which record an envelope holds; its tag is the envelope's first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// A [`TwinRecord`], tag `b'S'`.
    TwinState,
    /// A [`HistoryPoint`], tag `b'H'`.
    HistoryPoint,
    /// An [`EventRecord`], tag `b'E'`.
    Event,
    /// A [`MetaValue`], tag `b'M'`.
    Meta,
    /// An audit record, tag `b'A'`. The record type lives with the audit
    /// log in the runtime; the store keeps its bytes opaque.
    Audit,
}

impl RecordKind {
    pub const ALL: [RecordKind; 5] = [
        RecordKind::TwinState,
        RecordKind::HistoryPoint,
        RecordKind::Event,
        RecordKind::Meta,
        RecordKind::Audit,
    ];

    pub const fn tag(self) -> u8 {
        match self {
            RecordKind::TwinState => b'S',
            RecordKind::HistoryPoint => b'H',
            RecordKind::Event => b'E',
            RecordKind::Meta => b'M',
            RecordKind::Audit => b'A',
        }
    }

    pub fn from_tag(tag: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.tag() == tag)
    }

    pub fn name(self) -> &'static str {
        match self {
            RecordKind::TwinState => "twin state",
            RecordKind::HistoryPoint => "history point",
            RecordKind::Event => "event",
            RecordKind::Meta => "meta",
            RecordKind::Audit => "audit",
        }
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why bytes could not be encoded or decoded as a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("{kind} record is {len} bytes, shorter than the 2-byte envelope header")]
    Truncated { kind: RecordKind, len: usize },
    #[error(
        "expected a {expected} record (tag {:#04x}), found tag {found:#04x}{}",
        expected.tag(),
        RecordKind::from_tag(*found).map(|k| format!(" ({k})")).unwrap_or_default()
    )]
    WrongKind { expected: RecordKind, found: u8 },
    #[error(
        "{kind} record has version {found}, expected version {expected} or an older one this build can upgrade"
    )]
    UnknownVersion {
        kind: RecordKind,
        found: u8,
        expected: u8,
    },
    #[error("malformed {kind} record body (version {version}): {source}")]
    Body {
        kind: RecordKind,
        version: u8,
        source: postcard::Error,
    },
    #[error("{kind} record (version {version}) has {count} bytes after its body")]
    TrailingBytes {
        kind: RecordKind,
        version: u8,
        count: usize,
    },
    #[error("cannot serialize {kind} record: {source}")]
    Serialize {
        kind: RecordKind,
        source: postcard::Error,
    },
}

/// A type that is persisted inside the envelope.
pub trait Persisted: Serialize + DeserializeOwned {
    const KIND: RecordKind;
    /// The version this build writes.
    const VERSION: u8;

    /// Decodes a body of an older `version`; `None` if that version is
    /// unknown. The default knows no older versions.
    fn decode_older(version: u8, body: &[u8]) -> Option<Result<Self, CodecError>> {
        let _ = (version, body);
        None
    }
}

/// A node metadata value: opaque bytes owned by whoever set them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MetaValue(pub Vec<u8>);

impl Persisted for TwinRecord {
    const KIND: RecordKind = RecordKind::TwinState;
    const VERSION: u8 = 1;
}

impl Persisted for HistoryPoint {
    const KIND: RecordKind = RecordKind::HistoryPoint;
    const VERSION: u8 = 1;
}

impl Persisted for EventRecord {
    const KIND: RecordKind = RecordKind::Event;
    const VERSION: u8 = 1;
}

impl Persisted for MetaValue {
    const KIND: RecordKind = RecordKind::Meta;
    const VERSION: u8 = 1;
}

/// Encodes a record in its envelope at the current version.
pub fn encode<T: Persisted>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(64);
    encode_into(value, &mut out)?;
    Ok(out)
}

/// Appends a record in its envelope to `out`.
pub fn encode_into<T: Persisted>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    out.push(T::KIND.tag());
    out.push(T::VERSION);
    postcard::to_extend(value, std::mem::take(out))
        .map(|v| *out = v)
        .map_err(|source| CodecError::Serialize {
            kind: T::KIND,
            source,
        })
}

/// Decodes an envelope, upgrading older versions the record knows.
pub fn decode<T: Persisted>(bytes: &[u8]) -> Result<T, CodecError> {
    let [tag, version, body @ ..] = bytes else {
        return Err(CodecError::Truncated {
            kind: T::KIND,
            len: bytes.len(),
        });
    };
    if *tag != T::KIND.tag() {
        return Err(CodecError::WrongKind {
            expected: T::KIND,
            found: *tag,
        });
    }
    if *version == T::VERSION {
        return decode_body(T::KIND, *version, body);
    }
    T::decode_older(*version, body).unwrap_or(Err(CodecError::UnknownVersion {
        kind: T::KIND,
        found: *version,
        expected: T::VERSION,
    }))
}

/// Decodes a whole postcard body as `B`: the shape of `kind` at `version`.
/// Trailing bytes are an error.
pub fn decode_body<B: DeserializeOwned>(
    kind: RecordKind,
    version: u8,
    body: &[u8],
) -> Result<B, CodecError> {
    let (value, rest) =
        postcard::take_from_bytes::<B>(body).map_err(|source| CodecError::Body {
            kind,
            version,
            source,
        })?;
    if !rest.is_empty() {
        return Err(CodecError::TrailingBytes {
            kind,
            version,
            count: rest.len(),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::alarm::{AlarmMode, AlarmState};
    use crate::id::TwinPath;
    use crate::quality::{Quality, Reason};
    use crate::store::record::{AlarmTransitionRecord, Event};
    use crate::time::Timestamp;
    use crate::value::Value;

    fn point() -> HistoryPoint {
        HistoryPoint {
            ts: Timestamp(-5),
            seq: 300,
            value: Value::String(Arc::from("open")),
            quality: Quality::Uncertain(Reason::Stale),
        }
    }

    #[test]
    fn round_trips_and_starts_with_tag_and_version() {
        let bytes = encode(&point()).unwrap();
        assert_eq!(&bytes[..2], &[b'H', 1]);
        assert_eq!(decode::<HistoryPoint>(&bytes).unwrap(), point());

        let ev = EventRecord {
            twin: TwinPath::parse("a/b").unwrap().id(),
            seq: 7,
            at: Timestamp(1),
            event: Event::Alarm {
                alarm: "high".into(),
                transition: AlarmTransitionRecord {
                    from_state: AlarmState::Normal,
                    to_state: AlarmState::ActiveUnacked,
                    from_mode: AlarmMode::Enabled,
                    to_mode: AlarmMode::Shelved {
                        until: Timestamp(9),
                    },
                    cause: "condition".into(),
                },
            },
        };
        assert_eq!(decode::<EventRecord>(&encode(&ev).unwrap()).unwrap(), ev);
        let meta = MetaValue(vec![0, 1, 255]);
        assert_eq!(decode::<MetaValue>(&encode(&meta).unwrap()).unwrap(), meta);
    }

    #[test]
    fn unknown_version_is_rejected_naming_kind_and_versions() {
        let mut bytes = encode(&point()).unwrap();
        bytes[1] = 2;
        let err = decode::<HistoryPoint>(&bytes).unwrap_err();
        assert_eq!(
            err,
            CodecError::UnknownVersion {
                kind: RecordKind::HistoryPoint,
                found: 2,
                expected: 1
            }
        );
        assert_eq!(
            err.to_string(),
            "history point record has version 2, expected version 1 or an older one this build can upgrade"
        );
    }

    #[test]
    fn wrong_kind_truncated_and_trailing_bytes_are_rejected() {
        let bytes = encode(&point()).unwrap();
        let err = decode::<TwinRecord>(&bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "expected a twin state record (tag 0x53), found tag 0x48 (history point)"
        );
        assert!(matches!(
            decode::<HistoryPoint>(&bytes[..1]),
            Err(CodecError::Truncated { len: 1, .. })
        ));
        assert!(matches!(
            decode::<HistoryPoint>(&bytes[..bytes.len() - 1]),
            Err(CodecError::Body { version: 1, .. })
        ));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            decode::<HistoryPoint>(&longer),
            Err(CodecError::TrailingBytes { count: 1, .. })
        ));
    }

    /// A stand-in for a record at version 2 that still reads version 1:
    /// the upgrade path the module docs describe, exercised.
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct NoteV2 {
        text: String,
        author: String,
    }

    #[derive(serde::Deserialize)]
    struct NoteV1 {
        text: String,
    }

    impl Persisted for NoteV2 {
        const KIND: RecordKind = RecordKind::Meta;
        const VERSION: u8 = 2;
        fn decode_older(version: u8, body: &[u8]) -> Option<Result<Self, CodecError>> {
            (version == 1).then(|| {
                decode_body::<NoteV1>(Self::KIND, version, body).map(|v1| NoteV2 {
                    text: v1.text,
                    author: String::new(),
                })
            })
        }
    }

    #[test]
    fn a_newer_version_upgrades_an_older_body() {
        let mut v1 = vec![b'M', 1];
        v1.extend(postcard::to_allocvec(&("hello",)).unwrap());
        assert_eq!(
            decode::<NoteV2>(&v1).unwrap(),
            NoteV2 {
                text: "hello".into(),
                author: String::new()
            }
        );
        let v2 = encode(&NoteV2 {
            text: "x".into(),
            author: "y".into(),
        })
        .unwrap();
        assert_eq!(v2[1], 2);
        assert_eq!(decode::<NoteV2>(&v2).unwrap().author, "y");
        let mut v3 = v2.clone();
        v3[1] = 3;
        assert!(matches!(
            decode::<NoteV2>(&v3),
            Err(CodecError::UnknownVersion {
                found: 3,
                expected: 2,
                ..
            })
        ));
    }
}
