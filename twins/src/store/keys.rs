//! Byte layouts of keys for ordered key-value backends (fjall today, a
//! FoundationDB backend later). Pure functions; changing a layout changes the
//! on-disk format, which the golden test below pins.
//!
//! | keyspace  | key                                                   | value (see [`super::codec`]) |
//! |-----------|-------------------------------------------------------|------------------------------|
//! | `state`   | twin id (16 bytes)                                    | [`super::TwinRecord`]        |
//! | `history` | twin id ‖ prop name (UTF-8) ‖ `0x00` ‖ ts ‖ seq       | [`super::HistoryPoint`]      |
//! | `events`  | twin id ‖ seq                                         | [`super::EventRecord`]       |
//! | `meta`    | key (UTF-8)                                           | [`super::codec::MetaValue`]  |
//! | `audit`   | seq                                                   | opaque bytes, as written     |
//!
//! `ts` is the timestamp's microseconds as `i64` with the sign bit flipped,
//! big-endian, so byte order is time order across negative and positive
//! times; `seq` is a big-endian `u64`. Byte order is therefore
//! `(twin, prop, ts, seq)` order, and a time range of one property is one
//! contiguous key range. The `0x00` terminator keeps `flow` apart from
//! `flow_rate`; property names therefore must not contain NUL
//! ([`super::WriteBatch::validate`]).

use crate::id::TwinId;
use crate::time::Timestamp;

pub const TWIN_ID_LEN: usize = 16;
const U64_LEN: usize = 8;

/// A timestamp as 8 bytes whose byte order is time order.
pub fn encode_ts(ts: Timestamp) -> [u8; 8] {
    ((ts.as_micros() as u64) ^ (1 << 63)).to_be_bytes()
}

pub fn decode_ts(bytes: [u8; 8]) -> Timestamp {
    Timestamp((u64::from_be_bytes(bytes) ^ (1 << 63)) as i64)
}

/// Key of a twin's latest state.
pub fn state_key(id: TwinId) -> [u8; TWIN_ID_LEN] {
    *id.as_bytes()
}

pub fn parse_state_key(key: &[u8]) -> Option<TwinId> {
    Some(TwinId::from_bytes(key.try_into().ok()?))
}

/// The prefix all history keys of one property share: twin ‖ prop ‖ `0x00`.
pub fn history_prefix(id: TwinId, prop: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(TWIN_ID_LEN + prop.len() + 1 + 2 * U64_LEN);
    key.extend_from_slice(id.as_bytes());
    key.extend_from_slice(prop.as_bytes());
    key.push(0);
    key
}

/// Key of one history point.
pub fn history_key(id: TwinId, prop: &str, ts: Timestamp, seq: u64) -> Vec<u8> {
    let mut key = history_prefix(id, prop);
    key.extend_from_slice(&encode_ts(ts));
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The smallest history key of a property at `ts`: a range from
/// `history_bound(.., from)` up to (excluding) `history_bound(.., to)` holds
/// exactly the points with `from <= ts < to`.
pub fn history_bound(id: TwinId, prop: &str, ts: Timestamp) -> Vec<u8> {
    history_key(id, prop, ts, 0)
}

/// Splits a history key into twin, property, timestamp and seq.
pub fn parse_history_key(key: &[u8]) -> Option<(TwinId, &str, Timestamp, u64)> {
    let min = TWIN_ID_LEN + 1 + 2 * U64_LEN;
    if key.len() < min {
        return None;
    }
    let (id, rest) = key.split_at(TWIN_ID_LEN);
    let (prop, tail) = rest.split_at(rest.len() - 1 - 2 * U64_LEN);
    let (nul, tail) = tail.split_first()?;
    if *nul != 0 {
        return None;
    }
    let (ts, seq) = tail.split_at(U64_LEN);
    Some((
        TwinId::from_bytes(id.try_into().ok()?),
        std::str::from_utf8(prop).ok()?,
        decode_ts(ts.try_into().ok()?),
        u64::from_be_bytes(seq.try_into().ok()?),
    ))
}

/// Key of one journal entry.
pub fn event_key(id: TwinId, seq: u64) -> [u8; TWIN_ID_LEN + U64_LEN] {
    let mut key = [0; TWIN_ID_LEN + U64_LEN];
    key[..TWIN_ID_LEN].copy_from_slice(id.as_bytes());
    key[TWIN_ID_LEN..].copy_from_slice(&seq.to_be_bytes());
    key
}

pub fn parse_event_key(key: &[u8]) -> Option<(TwinId, u64)> {
    if key.len() != TWIN_ID_LEN + U64_LEN {
        return None;
    }
    let (id, seq) = key.split_at(TWIN_ID_LEN);
    Some((
        TwinId::from_bytes(id.try_into().ok()?),
        u64::from_be_bytes(seq.try_into().ok()?),
    ))
}

/// Key of one audit record.
pub fn audit_key(seq: u64) -> [u8; U64_LEN] {
    seq.to_be_bytes()
}

pub fn parse_audit_key(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::TwinPath;
    use crate::store::hex;
    use proptest::prelude::*;

    fn twin() -> TwinId {
        TwinPath::parse("acme/east/plant-3/crude-unit/p-101")
            .unwrap()
            .id()
    }

    #[test]
    fn layouts_are_stable() {
        // Golden: these bytes are the on-disk key format.
        assert_eq!(
            hex(&history_key(twin(), "flow", Timestamp(-2), 258)),
            "b1fe5c9c7c1257a383382fc57005c1e9666c6f77007ffffffffffffffe0000000000000102"
        );
        assert_eq!(
            hex(&event_key(twin(), 65_536)),
            "b1fe5c9c7c1257a383382fc57005c1e90000000000010000"
        );
        assert_eq!(hex(&state_key(twin())), "b1fe5c9c7c1257a383382fc57005c1e9");
        assert_eq!(hex(&encode_ts(Timestamp(0))), "8000000000000000");
        assert_eq!(hex(&audit_key(258)), "0000000000000102");
    }

    proptest! {
        #[test]
        fn key_order_is_ts_then_seq_order(a in any::<i64>(), b in any::<i64>(), sa in any::<u64>(), sb in any::<u64>()) {
            let ka = history_key(twin(), "p", Timestamp(a), sa);
            let kb = history_key(twin(), "p", Timestamp(b), sb);
            prop_assert_eq!(ka.cmp(&kb), (a, sa).cmp(&(b, sb)));
            prop_assert_eq!(event_key(twin(), sa).cmp(&event_key(twin(), sb)), sa.cmp(&sb));
            prop_assert_eq!(audit_key(sa).cmp(&audit_key(sb)), sa.cmp(&sb));
        }

        #[test]
        fn keys_parse_back(ts in any::<i64>(), seq in any::<u64>(), prop in "[a-z_0-9]{0,20}") {
            let k = history_key(twin(), &prop, Timestamp(ts), seq);
            prop_assert_eq!(parse_history_key(&k), Some((twin(), prop.as_str(), Timestamp(ts), seq)));
            prop_assert_eq!(parse_event_key(&event_key(twin(), seq)), Some((twin(), seq)));
            prop_assert_eq!(parse_state_key(&state_key(twin())), Some(twin()));
            prop_assert_eq!(parse_audit_key(&audit_key(seq)), Some(seq));
        }

        #[test]
        fn a_property_range_holds_no_other_property(ts in any::<i64>(), seq in any::<u64>(), suffix in "[a-z_0-9]{1,8}") {
            // `flow` and `flow<suffix>`: no key of the longer name falls in the shorter's range.
            let other = history_key(twin(), &format!("flow{suffix}"), Timestamp(ts), seq);
            let lo = history_bound(twin(), "flow", Timestamp(i64::MIN));
            let hi = history_prefix(twin(), "flow");
            let mut hi_end = hi.clone();
            hi_end.extend_from_slice(&[0xff; 16]);
            prop_assert!(!(lo <= other && other <= hi_end));
        }
    }
}
