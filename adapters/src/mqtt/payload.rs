//! Decoding payloads into point values: pure functions over bytes.
//!
//! [`decode_json`] reads each configured point at its JSON pointer;
//! [`decode_number`] reads a payload that is one value as text. A point whose
//! pointer finds nothing (or `null`) is reported in [`Decoded::missing`], and
//! one that finds an object or an array in [`Decoded::wrong_type`], not as an
//! error, so the other points of the payload still count; anything else that
//! does not fit is one [`PayloadError`] for the whole payload, naming the
//! topic and what was expected and found.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value as Json;
use twins::{Timestamp, Value};

/// Largest payload decoded unless configured otherwise: 256 KiB.
pub const DEFAULT_MAX_PAYLOAD: usize = 256 * 1024;

/// Name of the one point a [`decode_number`] payload yields.
pub const VALUE_POINT: &str = "value";

/// Longest excerpt of offending input an error quotes, in characters.
const EXCERPT: usize = 40;

/// What a payload held.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decoded {
    /// Point name, value and the sample time the payload carried, if any, in
    /// point-name order.
    pub points: Vec<(String, Value, Option<Timestamp>)>,
    /// Points whose pointer found nothing or `null`, in name order.
    pub missing: Vec<String>,
    /// Points whose pointer found an object or an array, with a description
    /// of what was found, in name order.
    pub wrong_type: Vec<(String, String)>,
}

/// Why a payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("topic `{topic}`: payload of {len} bytes: expected at most {limit} bytes")]
    TooLarge {
        topic: String,
        len: usize,
        limit: usize,
    },
    #[error("topic `{topic}`: expected a JSON document, found malformed JSON ({reason})")]
    Malformed { topic: String, reason: String },
    #[error("topic `{topic}`: point `{point}`: expected a finite number, found `{found}`")]
    NonFinite {
        topic: String,
        point: String,
        found: String,
    },
    #[error("topic `{topic}`: expected a number, `true` or `false`, found {found}")]
    NotANumber { topic: String, found: String },
    #[error(
        "topic `{topic}`: timestamp at `{pointer}`: expected epoch milliseconds or an RFC 3339 string, found {found}"
    )]
    BadTimestamp {
        topic: String,
        pointer: String,
        found: String,
    },
}

fn excerpt(s: &str) -> String {
    match s.char_indices().nth(EXCERPT) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Describes a JSON value for an error message.
fn describe(v: &Json) -> String {
    match v {
        Json::Null => "null".to_owned(),
        Json::Bool(b) => format!("boolean `{b}`"),
        Json::Number(n) => format!("number `{n}`"),
        Json::String(s) => format!("string `{}`", excerpt(s)),
        Json::Array(a) => format!("an array of {} elements", a.len()),
        Json::Object(o) => format!("an object of {} fields", o.len()),
    }
}

fn check_len(topic: &str, payload: &[u8], limit: usize) -> Result<(), PayloadError> {
    if payload.len() > limit {
        return Err(PayloadError::TooLarge {
            topic: topic.to_owned(),
            len: payload.len(),
            limit,
        });
    }
    Ok(())
}

/// Decodes a JSON payload: each of `points` (name → JSON pointer) is read at
/// its pointer, and the sample time at `timestamp` if given. Numbers become
/// [`Value::F64`], booleans [`Value::Bool`], strings [`Value::String`].
pub fn decode_json(
    topic: &str,
    payload: &[u8],
    points: &BTreeMap<String, String>,
    timestamp: Option<&str>,
    limit: usize,
) -> Result<Decoded, PayloadError> {
    check_len(topic, payload, limit)?;
    let doc: Json = serde_json::from_slice(payload).map_err(|e| PayloadError::Malformed {
        topic: topic.to_owned(),
        reason: e.to_string(),
    })?;
    let ts = match timestamp {
        None => None,
        Some(pointer) => Some(json_timestamp(topic, &doc, pointer)?),
    };
    let mut out = Decoded::default();
    for (point, pointer) in points {
        let value = match lookup(&doc, pointer) {
            None | Some(Json::Null) => {
                out.missing.push(point.clone());
                continue;
            }
            Some(Json::Bool(b)) => Value::Bool(*b),
            Some(Json::String(s)) => Value::String(Arc::from(s.as_str())),
            Some(Json::Number(n)) => match n.as_f64() {
                Some(f) if f.is_finite() => Value::F64(f),
                _ => {
                    return Err(PayloadError::NonFinite {
                        topic: topic.to_owned(),
                        point: point.clone(),
                        found: n.to_string(),
                    });
                }
            },
            Some(other) => {
                out.wrong_type.push((point.clone(), describe(other)));
                continue;
            }
        };
        out.points.push((point.clone(), value, ts));
    }
    Ok(out)
}

/// `doc.pointer(pointer)` (RFC 6901) without allocating for segments that
/// have no `~` escape: `serde_json::Value::pointer` builds two strings per
/// segment, the largest cost of decoding a small payload after parsing it.
fn lookup<'a>(doc: &'a Json, pointer: &str) -> Option<&'a Json> {
    if pointer.is_empty() {
        return Some(doc);
    }
    let rest = pointer.strip_prefix('/')?;
    let mut target = doc;
    for raw in rest.split('/') {
        let token: std::borrow::Cow<'_, str> = if raw.contains('~') {
            raw.replace("~1", "/").replace("~0", "~").into()
        } else {
            raw.into()
        };
        target = match target {
            Json::Object(map) => map.get(token.as_ref())?,
            Json::Array(list) => {
                // RFC 6901: an index is `0` or digits without a leading zero.
                if token.is_empty()
                    || !token.bytes().all(|b| b.is_ascii_digit())
                    || (token.len() > 1 && token.starts_with('0'))
                {
                    return None;
                }
                list.get(token.parse::<usize>().ok()?)?
            }
            _ => return None,
        };
    }
    Some(target)
}

fn json_timestamp(topic: &str, doc: &Json, pointer: &str) -> Result<Timestamp, PayloadError> {
    let bad = |found: String| PayloadError::BadTimestamp {
        topic: topic.to_owned(),
        pointer: pointer.to_owned(),
        found,
    };
    match lookup(doc, pointer) {
        None => Err(bad("nothing".to_owned())),
        Some(Json::Number(n)) => {
            let micros = match n.as_i64() {
                Some(ms) => ms.checked_mul(1000),
                None => n.as_f64().and_then(|ms| {
                    let us = (ms * 1000.0).round();
                    // i64::MAX as f64 rounds up to 2^63, so the bound is exclusive.
                    (us.is_finite() && us >= -(2f64.powi(63)) && us < 2f64.powi(63))
                        .then_some(us as i64)
                }),
            };
            micros
                .map(Timestamp::from_micros)
                .ok_or_else(|| bad(format!("number `{n}` out of range")))
        }
        Some(Json::String(s)) => parse_rfc3339(s)
            .map(Timestamp::from_micros)
            .ok_or_else(|| bad(describe(&Json::String(s.clone())))),
        Some(other) => Err(bad(describe(other))),
    }
}

/// Decodes a payload that is one value as text: a number (→ [`Value::F64`])
/// or `true`/`false` (→ [`Value::Bool`]), surrounding whitespace allowed.
/// The value is reported as point [`VALUE_POINT`].
pub fn decode_number(topic: &str, payload: &[u8], limit: usize) -> Result<Decoded, PayloadError> {
    check_len(topic, payload, limit)?;
    let not_a_number = |found: String| PayloadError::NotANumber {
        topic: topic.to_owned(),
        found,
    };
    let text = std::str::from_utf8(payload)
        .map_err(|_| not_a_number(format!("{} bytes that are not UTF-8", payload.len())))?
        .trim();
    let value = match text {
        "" => return Err(not_a_number("an empty payload".to_owned())),
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        t => match t.parse::<f64>() {
            Ok(f) if f.is_finite() => Value::F64(f),
            Ok(_) => {
                return Err(PayloadError::NonFinite {
                    topic: topic.to_owned(),
                    point: VALUE_POINT.to_owned(),
                    found: excerpt(t),
                });
            }
            Err(_) => return Err(not_a_number(format!("`{}`", excerpt(t)))),
        },
    };
    Ok(Decoded {
        points: vec![(VALUE_POINT.to_owned(), value, None)],
        ..Decoded::default()
    })
}

/// Parses an RFC 3339 date-time (`2026-11-21T07:11:02.5+01:00`) into
/// microseconds since the Unix epoch; digits past microseconds are dropped.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let d = b.get(r)?;
        d.iter()
            .all(u8::is_ascii_digit)
            .then(|| d.iter().fold(0i64, |acc, c| acc * 10 + i64::from(c - b'0')))
    };
    let sep = |i: usize, allowed: &[u8]| b.get(i).is_some_and(|c| allowed.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_len = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    // Second 60 is a leap second (RFC 3339 5.7); it lands on the next minute.
    if day < 1 || day > month_len || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if sep(i, b".") {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 6 {
                micros = micros * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..6 {
            micros *= 10;
        }
    }
    let offset_secs = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && sep(i + 3, b":") => {
            let (h, m) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            let o = h * 3600 + m * 60;
            if *sign == b'-' { -o } else { o }
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    Some(secs * 1_000_000 + micros)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    const TOPIC: &str = "plant/s1/pump7/telemetry";

    #[test]
    fn lookup_agrees_with_serde_json_pointer() {
        let doc: Json = serde_json::from_str(
            r#"{"a": {"b/c": [10, {"d~e": true}], "": 1, "0": 2}, "list": [0, 1, 2], "x": null}"#,
        )
        .unwrap();
        for p in [
            "",
            "/",
            "/a",
            "/a/b~1c",
            "/a/b~1c/0",
            "/a/b~1c/1/d~0e",
            "/a/",
            "/a/0",
            "/list/2",
            "/list/02",
            "/list/-",
            "/list/3",
            "/list/+1",
            "/x",
            "/x/y",
            "a",
            "/a/b~1c/1/d~01",
        ] {
            assert_eq!(lookup(&doc, p), doc.pointer(p), "pointer `{p}`");
        }
    }

    proptest! {
        #[test]
        fn lookup_agrees_with_serde_json_pointer_on_any_pointer(p in "(/[a-c0-2~/]{0,3}){0,4}") {
            let doc: Json = serde_json::from_str(
                r#"{"a": {"b": [1, {"c": 2}], "0": [3], "~": 4, "/": 5}, "1": {"2": 6}}"#,
            ).unwrap();
            prop_assert_eq!(lookup(&doc, &p), doc.pointer(&p));
        }
    }

    fn points(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn json(payload: &str, pts: &[(&str, &str)], ts: Option<&str>) -> Result<Decoded, String> {
        decode_json(
            TOPIC,
            payload.as_bytes(),
            &points(pts),
            ts,
            DEFAULT_MAX_PAYLOAD,
        )
        .map_err(|e| e.to_string())
    }

    fn number(payload: &[u8]) -> Result<Decoded, String> {
        decode_number(TOPIC, payload, DEFAULT_MAX_PAYLOAD).map_err(|e| e.to_string())
    }

    #[test]
    fn json_points_by_pointer() {
        let d = json(
            r#"{"t": 21.5, "run": true, "mode": "auto", "m": {"flow": [1, 2.5]}, "ts": 1700000000123}"#,
            &[("temp", "/t"), ("running", "/run"), ("mode", "/mode"), ("flow", "/m/flow/1")],
            Some("/ts"),
        )
        .expect("decodes");
        let ts = Some(Timestamp::from_millis(1_700_000_000_123));
        assert_eq!(
            d.points,
            vec![
                ("flow".to_owned(), Value::F64(2.5), ts),
                ("mode".to_owned(), Value::String("auto".into()), ts),
                ("running".to_owned(), Value::Bool(true), ts),
                ("temp".to_owned(), Value::F64(21.5), ts),
            ]
        );
        assert!(d.missing.is_empty());
    }

    #[test]
    fn missing_points_do_not_fail_the_others() {
        let d = json(
            r#"{"t": 1, "n": null}"#,
            &[("a", "/t"), ("b", "/nope"), ("c", "/n")],
            None,
        )
        .expect("decodes");
        assert_eq!(d.points, vec![("a".to_owned(), Value::F64(1.0), None)]);
        assert_eq!(d.missing, ["b", "c"]);
    }

    #[test]
    fn objects_and_arrays_are_wrong_types_of_their_points_only() {
        let d = json(
            r#"{"t": {"x": 1}, "u": [1, 2], "v": 3}"#,
            &[("a", "/t"), ("b", "/u"), ("c", "/v")],
            None,
        )
        .expect("decodes");
        assert_eq!(d.points, vec![("c".to_owned(), Value::F64(3.0), None)]);
        assert_eq!(
            d.wrong_type,
            [
                ("a".to_owned(), "an object of 1 fields".to_owned()),
                ("b".to_owned(), "an array of 2 elements".to_owned()),
            ]
        );
    }

    #[test]
    fn json_timestamps() {
        let at = |v: &str| {
            json(
                &format!(r#"{{"v": 1, "ts": {v}}}"#),
                &[("v", "/v")],
                Some("/ts"),
            )
            .map(|d| d.points[0].2)
        };
        let ms = Timestamp::from_millis;
        assert_eq!(at("0"), Ok(Some(ms(0))));
        assert_eq!(at("1.5"), Ok(Some(Timestamp::from_micros(1500))));
        assert_eq!(at("-1000"), Ok(Some(ms(-1000))));
        assert_eq!(at(r#""1970-01-01T00:00:00Z""#), Ok(Some(ms(0))));
        assert_eq!(
            at(r#""2023-11-14T22:13:20.123Z""#),
            Ok(Some(ms(1_700_000_000_123)))
        );
        assert_eq!(
            at(r#""2023-11-14t23:13:20.123+01:00""#),
            Ok(Some(ms(1_700_000_000_123)))
        );
        assert_eq!(
            at(r#""2023-11-14 21:13:20.123-01:00""#),
            Ok(Some(ms(1_700_000_000_123)))
        );
        assert_eq!(
            at(r#""2024-02-29T00:00:00.1234567Z""#),
            Ok(Some(Timestamp::from_micros(1_709_164_800_123_456)))
        );
        for bad in [
            r#""2023-02-29T00:00:00Z""#,
            r#""2023-13-01T00:00:00Z""#,
            r#""2023-01-01T24:00:00Z""#,
            r#""2023-01-01T00:00:00""#,
            r#""2023-01-01T00:00:00.Z""#,
            r#""2023-01-01T00:00:00Zjunk""#,
            r#""2023-01-01""#,
            r#""yesterday""#,
        ] {
            assert!(at(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_error_messages() {
        let t = "topic `plant/s1/pump7/telemetry`";
        assert_eq!(
            json("{\"t\": ", &[("a", "/t")], None),
            Err(format!(
                "{t}: expected a JSON document, found malformed JSON (EOF while parsing a value at line 1 column 6)"
            ))
        );
        assert_eq!(
            json(r#"{"t": 1}"#, &[("a", "/t")], Some("/ts")),
            Err(format!(
                "{t}: timestamp at `/ts`: expected epoch milliseconds or an RFC 3339 string, found nothing"
            ))
        );
        assert_eq!(
            json(r#"{"t": 1, "ts": true}"#, &[("a", "/t")], Some("/ts")),
            Err(format!(
                "{t}: timestamp at `/ts`: expected epoch milliseconds or an RFC 3339 string, found boolean `true`"
            ))
        );
        assert_eq!(
            json(r#"{"t": 1, "ts": "noon"}"#, &[("a", "/t")], Some("/ts")),
            Err(format!(
                "{t}: timestamp at `/ts`: expected epoch milliseconds or an RFC 3339 string, found string `noon`"
            ))
        );
        assert_eq!(
            json(r#"{"t": 1, "ts": 1e300}"#, &[("a", "/t")], Some("/ts")),
            Err(format!(
                "{t}: timestamp at `/ts`: expected epoch milliseconds or an RFC 3339 string, found number `1e+300` out of range"
            ))
        );
        let long = format!(r#"{{"ts": "{}"}}"#, "x".repeat(100));
        assert_eq!(
            json(&long, &[], Some("/ts")),
            Err(format!(
                "{t}: timestamp at `/ts`: expected epoch milliseconds or an RFC 3339 string, found string `{}…`",
                "x".repeat(40)
            ))
        );
    }

    #[test]
    fn too_large_payloads() {
        let big = vec![b' '; DEFAULT_MAX_PAYLOAD + 1];
        let msg = "topic `plant/s1/pump7/telemetry`: payload of 262145 bytes: expected at most 262144 bytes";
        assert_eq!(number(&big), Err(msg.to_owned()));
        assert_eq!(
            decode_json(TOPIC, &big, &BTreeMap::new(), None, DEFAULT_MAX_PAYLOAD)
                .map_err(|e| e.to_string()),
            Err(msg.to_owned())
        );
        assert!(decode_number(TOPIC, b"1", 1).is_ok());
        assert!(matches!(
            decode_number(TOPIC, b"12", 1),
            Err(PayloadError::TooLarge {
                len: 2,
                limit: 1,
                ..
            })
        ));
    }

    #[test]
    fn numbers() {
        let one = |p: &[u8]| number(p).map(|d| d.points[0].1.clone());
        assert_eq!(one(b"42"), Ok(Value::F64(42.0)));
        assert_eq!(one(b" -1.5e3\n"), Ok(Value::F64(-1500.0)));
        assert_eq!(one(b"true"), Ok(Value::Bool(true)));
        assert_eq!(one(b"false"), Ok(Value::Bool(false)));
        assert_eq!(
            number(b"7").map(|d| d.points[0].0.clone()),
            Ok(VALUE_POINT.to_owned())
        );
        let t = "topic `plant/s1/pump7/telemetry`";
        assert_eq!(
            number(b"abc"),
            Err(format!(
                "{t}: expected a number, `true` or `false`, found `abc`"
            ))
        );
        assert_eq!(
            number(b"  "),
            Err(format!(
                "{t}: expected a number, `true` or `false`, found an empty payload"
            ))
        );
        assert_eq!(
            number(&[0xff, 0xfe]),
            Err(format!(
                "{t}: expected a number, `true` or `false`, found 2 bytes that are not UTF-8"
            ))
        );
        assert_eq!(
            number(b"NaN"),
            Err(format!(
                "{t}: point `value`: expected a finite number, found `NaN`"
            ))
        );
        assert_eq!(
            number(b"1e400"),
            Err(format!(
                "{t}: point `value`: expected a finite number, found `1e400`"
            ))
        );
    }

    fn arb_json() -> impl Strategy<Value = Json> {
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            any::<i64>().prop_map(Json::from),
            any::<f64>().prop_map(Json::from),
            "[a-z0-9:.T+-]{0,24}".prop_map(Json::String),
            "20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9](\\.[0-9]{1,9})?(Z|[+-][0-2][0-9]:[0-5][0-9])"
                .prop_map(Json::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
                prop::collection::btree_map("a|b|ts|0|1", inner, 0..5)
                    .prop_map(|m| Json::Object(m.into_iter().collect())),
            ]
        })
    }

    fn arb_payload() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            3 => arb_json().prop_map(|v| serde_json::to_vec(&v).unwrap_or_default()),
            1 => (arb_json(), any::<prop::sample::Index>()).prop_map(|(v, i)| {
                let bytes = serde_json::to_vec(&v).unwrap_or_default();
                let cut = if bytes.is_empty() { 0 } else { i.index(bytes.len()) };
                bytes[..cut].to_vec()
            }),
            1 => prop::collection::vec(any::<u8>(), 0..64),
            1 => "[ ]?[-+]?[0-9.eEinfatrulsNI]{0,12}[ ]?".prop_map(String::into_bytes),
        ]
    }

    fn kind(e: &PayloadError) -> &'static str {
        match e {
            PayloadError::TooLarge { .. } => "too_large",
            PayloadError::Malformed { .. } => "malformed",
            PayloadError::NonFinite { .. } => "non_finite",
            PayloadError::NotANumber { .. } => "not_a_number",
            PayloadError::BadTimestamp { .. } => "bad_timestamp",
        }
    }

    /// 10,000 random payloads through both decoders: none panics, and each
    /// yields exactly one outcome, `Ok` or one error.
    #[test]
    fn random_payloads_never_panic_and_yield_one_outcome_each() {
        const N: usize = 10_000;
        let mut runner = TestRunner::deterministic();
        let strategy = arb_payload();
        let pts = points(&[("a", "/a"), ("b", "/b/0"), ("c", "/1/a"), ("whole", "")]);
        let mut json_counts: BTreeMap<&str, usize> = BTreeMap::new();
        let mut number_counts: BTreeMap<&str, usize> = BTreeMap::new();
        let mut wrong_type_payloads = 0;
        for i in 0..N {
            let payload = strategy
                .new_tree(&mut runner)
                .expect("strategy generates")
                .current();
            // Every tenth payload meets a tight limit, to reach `TooLarge`.
            let limit = if i % 10 == 0 { 16 } else { DEFAULT_MAX_PAYLOAD };
            let ts = (i % 2 == 0).then_some("/ts");
            let outcome = decode_json(TOPIC, &payload, &pts, ts, limit);
            *json_counts
                .entry(outcome.as_ref().map_or_else(kind, |_| "ok"))
                .or_default() += 1;
            if let Ok(d) = &outcome {
                assert_eq!(
                    d.points.len() + d.missing.len() + d.wrong_type.len(),
                    pts.len()
                );
                wrong_type_payloads += usize::from(!d.wrong_type.is_empty());
            }
            let outcome = decode_number(TOPIC, &payload, limit);
            *number_counts
                .entry(outcome.as_ref().map_or_else(kind, |_| "ok"))
                .or_default() += 1;
        }
        assert_eq!(json_counts.values().sum::<usize>(), N, "{json_counts:?}");
        assert_eq!(
            number_counts.values().sum::<usize>(),
            N,
            "{number_counts:?}"
        );
        assert!(wrong_type_payloads > 0, "json never wrong_type");
        for k in ["ok", "too_large", "malformed", "bad_timestamp"] {
            assert!(
                json_counts.get(k).is_some_and(|&n| n > 0),
                "json never {k}: {json_counts:?}"
            );
        }
        for k in ["ok", "too_large", "not_a_number", "non_finite"] {
            assert!(
                number_counts.get(k).is_some_and(|&n| n > 0),
                "number never {k}: {number_counts:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn rfc3339_round_trips_epoch_millis(ms in -62_135_596_800_000i64..253_402_300_799_999) {
            // Format `ms` as UTC by hand via the inverse of the parser's algorithm.
            let secs = ms.div_euclid(1000);
            let frac = ms.rem_euclid(1000);
            let days = secs.div_euclid(86_400);
            let sod = secs.rem_euclid(86_400);
            let z = days + 719_468;
            let era = z.div_euclid(146_097);
            let doe = z - era * 146_097;
            let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
            let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
            let mp = (5 * doy + 2) / 153;
            let d = doy - (153 * mp + 2) / 5 + 1;
            let m = if mp < 10 { mp + 3 } else { mp - 9 };
            let y = yoe + era * 400 + i64::from(m <= 2);
            let text = format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:03}Z",
                sod / 3600, sod % 3600 / 60, sod % 60
            );
            prop_assert_eq!(parse_rfc3339(&text), Some(ms * 1000), "{}", text);
        }
    }
}
