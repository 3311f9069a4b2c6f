//! Setpoint writes, sans-IO: a value for a `writable` point to the request
//! that writes it. The poller sends the request on the endpoint's
//! connection.
//!
//! A number is unscaled (`(value - offset) / scale`, the inverse of the
//! point's `scale=` and `offset=`) and encoded in the point's type and word
//! order with [`encode`]; integer types round to the nearest integer. A
//! coil takes a boolean, as do `bool` and `bit:N` holding points (`bool`
//! writes 0 or 1; `bit:N` reads the register and writes it back with the
//! bit changed).

use twins::Value;

use super::address::{DataType, PointAddress, Table};
use super::decode::encode;

/// One write request, ready for the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    /// Write single coil (function 5).
    Coil { register: u16, on: bool },
    /// Write single register (function 6) for one word, write multiple
    /// registers (function 16) for more.
    Registers { register: u16, words: Vec<u16> },
    /// Read the register, set or clear bit `bit`, write it back (function 6).
    Bit { register: u16, bit: u8, on: bool },
}

/// The request writing `value` to the point at `address`, or why it cannot
/// be written (a message for [`crate::WriteError::Invalid`]). Does not check
/// `writable`: the caller's allow-list does.
pub fn write_op(address: &PointAddress, value: &Value) -> Result<WriteOp, String> {
    let register = address.register;
    let found = || value.value_type().map_or("null", |t| t.name());
    let boolean = || match value {
        Value::Bool(on) => Ok(*on),
        _ => Err(format!(
            "expected a bool for a {} {} point, found {}",
            address.table,
            address.ty,
            found()
        )),
    };
    match (address.table, address.ty) {
        (Table::Coil, _) => Ok(WriteOp::Coil {
            register,
            on: boolean()?,
        }),
        (Table::Holding, DataType::Bit(bit)) => Ok(WriteOp::Bit {
            register,
            bit,
            on: boolean()?,
        }),
        (Table::Holding, DataType::Bool) => Ok(WriteOp::Registers {
            register,
            words: vec![u16::from(boolean()?)],
        }),
        (Table::Holding, ty) => {
            let scaling = address.scaling();
            let raw = match value {
                // Unscaled integers keep every bit of an i64.
                Value::I64(v) if scaling.is_identity() => Value::I64(*v),
                Value::I64(_) | Value::F64(_) => {
                    let v = value.as_f64().unwrap_or(f64::NAN);
                    if !v.is_finite() {
                        return Err(format!("expected a finite number, found {v}"));
                    }
                    let raw = scaling.raw(v);
                    if !raw.is_finite() {
                        return Err(format!(
                            "unscaled value ({v} - {}) / {} is not finite",
                            scaling.offset, scaling.scale
                        ));
                    }
                    Value::F64(raw)
                }
                _ => {
                    return Err(format!(
                        "expected a number for a {ty} point, found {}",
                        found()
                    ));
                }
            };
            let words = encode(ty, address.order, &raw).map_err(|e| {
                if scaling.is_identity() {
                    e.to_string()
                } else {
                    format!(
                        "{e} (after unscaling with scale {} and offset {})",
                        scaling.scale, scaling.offset
                    )
                }
            })?;
            Ok(WriteOp::Registers { register, words })
        }
        (table, _) => Err(format!("table `{table}` is read-only")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(address: &str, value: Value) -> Result<WriteOp, String> {
        write_op(&PointAddress::parse(address).unwrap(), &value)
    }

    #[test]
    fn numbers_are_unscaled_and_encoded_in_the_point_order() {
        // 12.5 = (1250 * 0.01) → raw 1250.0 as f32 CDAB: 0x449C4000 word-swapped.
        assert_eq!(
            op("holding:10:f32:CDAB;scale=0.01;writable", Value::F64(12.5)),
            Ok(WriteOp::Registers {
                register: 10,
                words: vec![0x4000, 0x449C]
            })
        );
        // (50 - 10) / 0.5 = 80, rounded into a u16.
        assert_eq!(
            op("holding:3;scale=0.5;offset=10;writable", Value::I64(50)),
            Ok(WriteOp::Registers {
                register: 3,
                words: vec![80]
            })
        );
        assert_eq!(
            op("holding:0:i64;writable", Value::I64(i64::MIN + 1)),
            Ok(WriteOp::Registers {
                register: 0,
                words: vec![0x8000, 0, 0, 1]
            })
        );
    }

    #[test]
    fn booleans_go_to_coils_bools_and_bits() {
        assert_eq!(
            op("coil:7;writable", Value::Bool(true)),
            Ok(WriteOp::Coil {
                register: 7,
                on: true
            })
        );
        assert_eq!(
            op("holding:2:bool;writable", Value::Bool(true)),
            Ok(WriteOp::Registers {
                register: 2,
                words: vec![1]
            })
        );
        assert_eq!(
            op("holding:2:bit:4;writable", Value::Bool(false)),
            Ok(WriteOp::Bit {
                register: 2,
                bit: 4,
                on: false
            })
        );
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        let e = |a, v| op(a, v).unwrap_err();
        assert_eq!(
            e("coil:1;writable", Value::F64(1.0)),
            "expected a bool for a coil bool point, found f64"
        );
        assert_eq!(
            e("holding:1:f32;writable", Value::Bool(true)),
            "expected a number for a f32 point, found bool"
        );
        assert_eq!(
            e("holding:1:f32;writable", Value::F64(f64::NAN)),
            "expected a finite number, found NaN"
        );
        assert_eq!(
            e("holding:1:u16;writable", Value::I64(70000)),
            "value 70000 is out of range for u16"
        );
        assert_eq!(
            e("holding:1:u16;scale=2;writable", Value::F64(131072.0)),
            "value 65536.0 is out of range for u16 (after unscaling with scale 2 and offset 0)"
        );
        assert_eq!(
            e("holding:1:i16;writable", Value::F64(-40000.0)),
            "value -40000.0 is out of range for i16"
        );
        assert_eq!(
            e("holding:1:f32;writable", Value::F64(1e39)),
            "value 1e39 is out of range for f32"
        );
        assert_eq!(
            e("input:1;scale=2", Value::I64(1)),
            "table `input` is read-only"
        );
    }
}
