//! Registers to values and back.
//!
//! [`decode`] turns the registers of one point, in wire order, into a
//! [`Value`]: booleans for `bool` and `bit:N`, [`Value::I64`] for the integer
//! types, [`Value::F64`] for `f32` and `f64`. A non-finite float is an error
//! (the poller reports the point with bad quality). [`Scaling`] then applies
//! `value * scale + offset`. [`encode`] is the inverse for setpoint writes;
//! [`set_bit`] does the read-modify-write of a `bit:N` point.

use twins::Value;

use super::address::{DataType, WordOrder};

/// Why registers do not decode to a value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("{ty} needs {expected} registers, found {found}")]
    WordCount {
        ty: DataType,
        expected: u16,
        found: usize,
    },
    #[error("{ty} registers hold {value}, expected a finite number")]
    NonFinite { ty: DataType, value: f64 },
    #[error("u64 registers hold {0}, expected at most {max} (the largest i64)", max = i64::MAX)]
    U64TooLarge(u64),
    #[error("scaled value {raw} * {scale} + {offset} is not finite, expected a finite number")]
    ScaledNonFinite { raw: f64, scale: f64, offset: f64 },
}

/// Why a value cannot be written as registers.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EncodeError {
    #[error("cannot write a {found} value as {ty}, expected {expected}")]
    TypeMismatch {
        ty: DataType,
        found: &'static str,
        expected: &'static str,
    },
    #[error("value {value} is out of range for {ty}")]
    OutOfRange { ty: DataType, value: String },
    #[error("bit:{0} is one bit of a shared register, expected `set_bit` on the current register")]
    BitNeedsRegister(u8),
}

/// Decodes the registers of one point (`words`, as read from the wire) as
/// type `ty` stored in `order`.
pub fn decode(ty: DataType, order: WordOrder, words: &[u16]) -> Result<Value, DecodeError> {
    if words.len() != usize::from(ty.words()) {
        return Err(DecodeError::WordCount {
            ty,
            expected: ty.words(),
            found: words.len(),
        });
    }
    let bits = canonical(order, words);
    Ok(match ty {
        DataType::Bool => Value::Bool(bits != 0),
        DataType::Bit(n) => Value::Bool((bits >> n) & 1 == 1),
        DataType::U16 => Value::I64(i64::from(bits as u16)),
        DataType::I16 => Value::I64(i64::from(bits as u16 as i16)),
        DataType::U32 => Value::I64(i64::from(bits as u32)),
        DataType::I32 => Value::I64(i64::from(bits as u32 as i32)),
        DataType::U64 => {
            Value::I64(i64::try_from(bits).map_err(|_| DecodeError::U64TooLarge(bits))?)
        }
        DataType::I64 => Value::I64(bits as i64),
        DataType::F32 => finite(ty, f64::from(f32::from_bits(bits as u32)))?,
        DataType::F64 => finite(ty, f64::from_bits(bits))?,
    })
}

fn finite(ty: DataType, value: f64) -> Result<Value, DecodeError> {
    if value.is_finite() {
        Ok(Value::F64(value))
    } else {
        Err(DecodeError::NonFinite { ty, value })
    }
}

/// The big-endian bit pattern of `words` read in `order`.
fn canonical(order: WordOrder, words: &[u16]) -> u64 {
    let n = words.len();
    (0..n).fold(0u64, |acc, i| {
        let w = if order.words_reversed() {
            words[n - 1 - i]
        } else {
            words[i]
        };
        let w = if order.bytes_swapped() {
            w.swap_bytes()
        } else {
            w
        };
        (acc << 16) | u64::from(w)
    })
}

/// The inverse of [`canonical`]: `n` wire registers holding `bits` in `order`.
fn wire(order: WordOrder, bits: u64, n: usize) -> Vec<u16> {
    let mut words: Vec<u16> = (0..n)
        .map(|i| {
            let w = (bits >> (16 * (n - 1 - i))) as u16;
            if order.bytes_swapped() {
                w.swap_bytes()
            } else {
                w
            }
        })
        .collect();
    if order.words_reversed() {
        words.reverse();
    }
    words
}

/// Encodes `value` as the registers of a point of type `ty` in `order`.
/// Integer types take [`Value::I64`] or a finite [`Value::F64`] (rounded to
/// the nearest integer); float types take either number; `bool` takes
/// [`Value::Bool`]. `bit:N` shares its register: use [`set_bit`].
pub fn encode(ty: DataType, order: WordOrder, value: &Value) -> Result<Vec<u16>, EncodeError> {
    let n = usize::from(ty.words());
    let out_of_range = || EncodeError::OutOfRange {
        ty,
        value: match value {
            Value::F64(v) => format!("{v:?}"),
            Value::I64(v) => v.to_string(),
            _ => String::new(),
        },
    };
    let mismatch = |expected| EncodeError::TypeMismatch {
        ty,
        found: value.value_type().map_or("null", |t| t.name()),
        expected,
    };
    let bits: u64 = match ty {
        DataType::Bit(n) => return Err(EncodeError::BitNeedsRegister(n)),
        DataType::Bool => match value {
            Value::Bool(b) => u64::from(*b),
            _ => return Err(mismatch("a bool")),
        },
        DataType::F32 | DataType::F64 => {
            let v = match value {
                Value::F64(v) => *v,
                Value::I64(v) => *v as f64,
                _ => return Err(mismatch("a number")),
            };
            if ty == DataType::F32 {
                let v = v as f32;
                if !v.is_finite() {
                    return Err(out_of_range());
                }
                u64::from(v.to_bits())
            } else {
                if !v.is_finite() {
                    return Err(out_of_range());
                }
                v.to_bits()
            }
        }
        _ => {
            let v: i128 = match value {
                Value::I64(v) => i128::from(*v),
                Value::F64(v) if v.is_finite() => v.round() as i128,
                Value::F64(_) => return Err(out_of_range()),
                _ => return Err(mismatch("a number")),
            };
            let (min, max): (i128, i128) = match ty {
                DataType::U16 => (0, u16::MAX.into()),
                DataType::I16 => (i16::MIN.into(), i16::MAX.into()),
                DataType::U32 => (0, u32::MAX.into()),
                DataType::I32 => (i32::MIN.into(), i32::MAX.into()),
                DataType::U64 => (0, u64::MAX.into()),
                _ => (i64::MIN.into(), i64::MAX.into()),
            };
            if v < min || v > max {
                return Err(out_of_range());
            }
            // Two's complement, truncated to the type's width by `wire`.
            v as u64
        }
    };
    Ok(wire(order, bits, n))
}

/// `word` with bit `n` (0 = least significant) set to `on`: the register to
/// write back for a `bit:N` setpoint.
pub fn set_bit(word: u16, n: u8, on: bool) -> u16 {
    let mask = 1u16 << (n & 15);
    if on { word | mask } else { word & !mask }
}

/// Linear scaling of a decoded number: engineering = raw * scale + offset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scaling {
    pub scale: f64,
    pub offset: f64,
}

impl Default for Scaling {
    fn default() -> Self {
        Scaling {
            scale: 1.0,
            offset: 0.0,
        }
    }
}

impl Scaling {
    /// Whether the scaling leaves values unchanged.
    pub fn is_identity(&self) -> bool {
        self.scale == 1.0 && self.offset == 0.0
    }

    /// Scales a decoded value. Booleans and unscaled integers pass through;
    /// a scaled integer becomes [`Value::F64`].
    pub fn apply(&self, raw: Value) -> Result<Value, DecodeError> {
        if self.is_identity() {
            return Ok(raw);
        }
        let x = match raw {
            Value::F64(v) => v,
            Value::I64(v) => v as f64,
            other => return Ok(other),
        };
        let v = x * self.scale + self.offset;
        if v.is_finite() {
            Ok(Value::F64(v))
        } else {
            Err(DecodeError::ScaledNonFinite {
                raw: x,
                scale: self.scale,
                offset: self.offset,
            })
        }
    }

    /// The raw number to write for an engineering value: `(v - offset) / scale`.
    pub fn raw(&self, engineering: f64) -> f64 {
        (engineering - self.offset) / self.scale
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const ORDERS: [WordOrder; 4] = [
        WordOrder::Abcd,
        WordOrder::Cdab,
        WordOrder::Badc,
        WordOrder::Dcba,
    ];

    /// Checks one hand-computed vector per order (ABCD, CDAB, BADC, DCBA),
    /// both ways.
    fn vectors(ty: DataType, value: Value, wires: [&[u16]; 4]) {
        for (order, words) in ORDERS.into_iter().zip(wires) {
            assert_eq!(
                decode(ty, order, words).unwrap(),
                value,
                "decode {ty} {order}"
            );
            assert_eq!(
                encode(ty, order, &value).unwrap(),
                words,
                "encode {ty} {order}"
            );
        }
    }

    #[test]
    fn f32_vectors() {
        // 123.456f32 = 0x42F6E979
        let v = Value::F64(f64::from(123.456f32));
        vectors(
            DataType::F32,
            v,
            [
                &[0x42F6, 0xE979],
                &[0xE979, 0x42F6],
                &[0xF642, 0x79E9],
                &[0x79E9, 0xF642],
            ],
        );
    }

    #[test]
    fn i32_and_u32_vectors() {
        // -2i32 = 0xFFFFFFFE
        vectors(
            DataType::I32,
            Value::I64(-2),
            [
                &[0xFFFF, 0xFFFE],
                &[0xFFFE, 0xFFFF],
                &[0xFFFF, 0xFEFF],
                &[0xFEFF, 0xFFFF],
            ],
        );
        vectors(
            DataType::U32,
            Value::I64(0x0102_0304),
            [
                &[0x0102, 0x0304],
                &[0x0304, 0x0102],
                &[0x0201, 0x0403],
                &[0x0403, 0x0201],
            ],
        );
    }

    #[test]
    fn sixteen_bit_vectors() {
        vectors(
            DataType::U16,
            Value::I64(0x1234),
            [&[0x1234], &[0x1234], &[0x3412], &[0x3412]],
        );
        vectors(
            DataType::I16,
            Value::I64(-2),
            [&[0xFFFE], &[0xFFFE], &[0xFEFF], &[0xFEFF]],
        );
    }

    #[test]
    fn sixty_four_bit_vectors() {
        vectors(
            DataType::U64,
            Value::I64(0x0102_0304_0506_0708),
            [
                &[0x0102, 0x0304, 0x0506, 0x0708],
                &[0x0708, 0x0506, 0x0304, 0x0102],
                &[0x0201, 0x0403, 0x0605, 0x0807],
                &[0x0807, 0x0605, 0x0403, 0x0201],
            ],
        );
        // -2i64 = 0xFFFF_FFFF_FFFF_FFFE
        vectors(
            DataType::I64,
            Value::I64(-2),
            [
                &[0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE],
                &[0xFFFE, 0xFFFF, 0xFFFF, 0xFFFF],
                &[0xFFFF, 0xFFFF, 0xFFFF, 0xFEFF],
                &[0xFEFF, 0xFFFF, 0xFFFF, 0xFFFF],
            ],
        );
        // 123.456f64 = 0x405EDD2F1A9FBE77
        vectors(
            DataType::F64,
            Value::F64(123.456),
            [
                &[0x405E, 0xDD2F, 0x1A9F, 0xBE77],
                &[0xBE77, 0x1A9F, 0xDD2F, 0x405E],
                &[0x5E40, 0x2FDD, 0x9F1A, 0x77BE],
                &[0x77BE, 0x9F1A, 0x2FDD, 0x5E40],
            ],
        );
    }

    #[test]
    fn bools_and_bits() {
        assert_eq!(
            decode(DataType::Bool, WordOrder::Abcd, &[0]).unwrap(),
            Value::Bool(false)
        );
        assert_eq!(
            decode(DataType::Bool, WordOrder::Abcd, &[0x0100]).unwrap(),
            Value::Bool(true)
        );
        assert_eq!(
            encode(DataType::Bool, WordOrder::Abcd, &Value::Bool(true)).unwrap(),
            [1]
        );
        let word = 0b1000_0000_0000_0101;
        let bits: Vec<bool> = (0..16)
            .map(|n| {
                decode(DataType::Bit(n), WordOrder::Abcd, &[word]).unwrap() == Value::Bool(true)
            })
            .collect();
        let expected: Vec<bool> = (0..16).map(|n| n == 0 || n == 2 || n == 15).collect();
        assert_eq!(bits, expected);
        assert_eq!(set_bit(word, 1, true), 0b1000_0000_0000_0111);
        assert_eq!(set_bit(word, 15, false), 0b0000_0000_0000_0101);
        assert_eq!(
            encode(DataType::Bit(3), WordOrder::Abcd, &Value::Bool(true))
                .unwrap_err()
                .to_string(),
            "bit:3 is one bit of a shared register, expected `set_bit` on the current register"
        );
    }

    #[test]
    fn decode_errors() {
        let msg = |ty, words: &[u16]| decode(ty, WordOrder::Abcd, words).unwrap_err().to_string();
        assert_eq!(msg(DataType::F32, &[1]), "f32 needs 2 registers, found 1");
        assert_eq!(
            msg(DataType::F32, &[0x7FC0, 0]),
            "f32 registers hold NaN, expected a finite number"
        );
        assert_eq!(
            msg(DataType::F32, &[0xFF80, 0]),
            "f32 registers hold -inf, expected a finite number"
        );
        assert_eq!(
            msg(DataType::F64, &[0x7FF0, 0, 0, 0]),
            "f64 registers hold inf, expected a finite number"
        );
        assert_eq!(
            msg(DataType::U64, &[0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF]),
            "u64 registers hold 18446744073709551615, expected at most 9223372036854775807 (the largest i64)"
        );
    }

    #[test]
    fn encode_errors() {
        let msg = |ty, v: Value| encode(ty, WordOrder::Abcd, &v).unwrap_err().to_string();
        assert_eq!(
            msg(DataType::U16, Value::I64(65536)),
            "value 65536 is out of range for u16"
        );
        assert_eq!(
            msg(DataType::U16, Value::I64(-1)),
            "value -1 is out of range for u16"
        );
        assert_eq!(
            msg(DataType::I16, Value::F64(32767.6)),
            "value 32767.6 is out of range for i16"
        );
        assert_eq!(
            msg(DataType::F32, Value::F64(1e300)),
            "value 1e300 is out of range for f32"
        );
        assert_eq!(
            msg(DataType::F64, Value::F64(f64::NAN)),
            "value NaN is out of range for f64"
        );
        assert_eq!(
            msg(DataType::I32, Value::Bool(true)),
            "cannot write a bool value as i32, expected a number"
        );
        assert_eq!(
            msg(DataType::Bool, Value::F64(1.0)),
            "cannot write a f64 value as bool, expected a bool"
        );
        // Floats round to the nearest integer.
        assert_eq!(
            encode(DataType::I16, WordOrder::Abcd, &Value::F64(-2.6)).unwrap(),
            [0xFFFD]
        );
    }

    #[test]
    fn scaling() {
        let s = Scaling {
            scale: 0.1,
            offset: -40.0,
        };
        assert_eq!(s.apply(Value::I64(650)).unwrap(), Value::F64(25.0));
        assert_eq!(s.apply(Value::Bool(true)).unwrap(), Value::Bool(true));
        assert!((s.raw(25.0) - 650.0).abs() < 1e-9);
        assert_eq!(
            Scaling::default().apply(Value::I64(7)).unwrap(),
            Value::I64(7)
        );
        let huge = Scaling {
            scale: 1e308,
            offset: 0.0,
        };
        assert!(matches!(
            huge.apply(Value::F64(1e10)),
            Err(DecodeError::ScaledNonFinite { .. })
        ));
    }

    fn order() -> impl Strategy<Value = WordOrder> {
        prop::sample::select(ORDERS.to_vec())
    }

    /// Every type with a value of its domain.
    fn typed_value() -> impl Strategy<Value = (DataType, Value)> {
        prop_oneof![
            any::<bool>().prop_map(|b| (DataType::Bool, Value::Bool(b))),
            any::<u16>().prop_map(|v| (DataType::U16, Value::I64(v.into()))),
            any::<i16>().prop_map(|v| (DataType::I16, Value::I64(v.into()))),
            any::<u32>().prop_map(|v| (DataType::U32, Value::I64(v.into()))),
            any::<i32>().prop_map(|v| (DataType::I32, Value::I64(v.into()))),
            (0..=i64::MAX).prop_map(|v| (DataType::U64, Value::I64(v))),
            any::<i64>().prop_map(|v| (DataType::I64, Value::I64(v))),
            any::<f32>()
                .prop_filter("finite", |v| v.is_finite())
                .prop_map(|v| (DataType::F32, Value::F64(v.into()))),
            any::<f64>()
                .prop_filter("finite", |v| v.is_finite())
                .prop_map(|v| (DataType::F64, Value::F64(v))),
        ]
    }

    proptest! {
        #[test]
        fn encode_then_decode_round_trips((ty, value) in typed_value(), order in order()) {
            let words = encode(ty, order, &value).unwrap();
            prop_assert_eq!(words.len(), usize::from(ty.words()));
            prop_assert_eq!(decode(ty, order, &words).unwrap(), value);
        }

        #[test]
        fn decode_then_encode_round_trips_integer_registers(
            ty in prop::sample::select(vec![DataType::U16, DataType::I16, DataType::U32, DataType::I32, DataType::I64]),
            order in order(),
            words in prop::collection::vec(any::<u16>(), 4),
        ) {
            let words = &words[..usize::from(ty.words())];
            let value = decode(ty, order, words).unwrap();
            prop_assert_eq!(encode(ty, order, &value).unwrap(), words);
        }

        #[test]
        fn orders_agree_up_to_their_permutation((ty, value) in typed_value()) {
            let abcd = encode(ty, WordOrder::Abcd, &value).unwrap();
            let mut cdab = abcd.clone();
            cdab.reverse();
            let badc: Vec<u16> = abcd.iter().map(|w| w.swap_bytes()).collect();
            let mut dcba = badc.clone();
            dcba.reverse();
            prop_assert_eq!(encode(ty, WordOrder::Cdab, &value).unwrap(), cdab);
            prop_assert_eq!(encode(ty, WordOrder::Badc, &value).unwrap(), badc);
            prop_assert_eq!(encode(ty, WordOrder::Dcba, &value).unwrap(), dcba);
        }

        #[test]
        fn set_bit_then_decode(word in any::<u16>(), n in 0u8..16, on in any::<bool>()) {
            let w = set_bit(word, n, on);
            prop_assert_eq!(decode(DataType::Bit(n), WordOrder::Abcd, &[w]).unwrap(), Value::Bool(on));
            prop_assert_eq!(w & !(1 << n), word & !(1 << n));
        }
    }
}
