//! The sans-IO core of the Modbus TCP adapter: endpoint configuration,
//! point addresses, register decoding and read planning. Nothing here opens
//! a socket; [`poller`] ([`ModbusSource`]) calls these functions.
//!
//! - [`config`]: the serde layer of `[source.NAME]` for Modbus endpoints.
//! - [`address`]: [`PointAddress::parse`], the grammar below.
//! - [`decode`](mod@decode): registers to values and back, in any word/byte order.
//! - [`plan`]: points to block reads of at most 125 registers (2000 bits).
//! - [`deadband`]: which readings of a point with `deadband=` are delivered.
//! - [`write`](mod@write): a setpoint value to the request that writes it.
//! - [`stats`]: per-endpoint counters, readable while the source runs.
//!
//! # Point address grammar
//!
//! A point's topology binding address is a head, then options after `;`:
//!
//! ```text
//! address  = head *( ";" option )
//! head     = table ":" register [ ":" type [ ":" order ] ]   ; table form
//!          | modicon [ ":" type [ ":" order ] ]              ; Modicon form
//! table    = "holding" | "input" | "coil" | "discrete"
//! register = 0-based register number, decimal, 0..=65535
//! modicon  = 5 or 6 digits: a table digit (4 holding, 3 input, 0 coil,
//!            1 discrete), then the 1-based number: 1..=9999 with 5 digits,
//!            1..=65536 with 6. `40001` and `400001` are holding register 0
//! type     = "bool" | "bit:" 0..=15 | "u16" | "i16" | "u32" | "i32"
//!          | "u64" | "i64" | "f32" | "f64"
//! order    = "ABCD" | "CDAB" | "BADC" | "DCBA"   ; case-insensitive
//! option   = "scale=" number | "offset=" number | "deadband=" number
//!          | "group=" name | "endpoint=" name | "writable"
//! ```
//!
//! In the table form the number is always 0-based: `holding:40001` is
//! register 40001, not register 0; write `40001` alone for the Modicon
//! reference. The type defaults to `bool` for coils and discrete inputs
//! (the only type they take) and to `u16` for registers. `bool` on a
//! register is "register is non-zero"; `bit:N` is bit N (0 = least
//! significant) of one register. The order defaults to `ABCD` and is not
//! allowed on `bool` and `bit:N`. A decoded number becomes
//! `value * scale + offset` (defaults 1 and 0; not on booleans).
//! `deadband` (>= 0, in scaled units) suppresses changes smaller than it
//! from the last delivered value; the point is still re-delivered once per
//! expected period (else every ten poll intervals), see [`deadband`].
//! `group` names the endpoint poll group (default: the endpoint's first).
//! `endpoint` names the source's endpoint the point is read from; required
//! when the source has several endpoints, else it defaults to the only one.
//! `writable` marks a setpoint; only holding registers and coils are.
//! Each option may appear once; spaces around pieces are ignored.
//!
//! ```
//! use adapters::modbus::{DataType, PointAddress, Table, WordOrder};
//!
//! let a = PointAddress::parse("holding:100:f32:CDAB;scale=0.1;group=fast").unwrap();
//! assert_eq!((a.table, a.register, a.ty, a.order), (Table::Holding, 100, DataType::F32, WordOrder::Cdab));
//! assert_eq!(a.group.as_deref(), Some("fast"));
//! assert_eq!(PointAddress::parse("30001:i16").unwrap().register, 0);
//! ```

pub mod address;
pub mod config;
pub mod deadband;
pub mod decode;
pub mod factory;
pub mod plan;
pub mod poller;
pub mod stats;
pub mod write;

pub use address::{AddressError, DataType, PointAddress, Table, WordOrder};
pub use config::{ConfigError, EndpointConfig, ModbusConfig, PollGroup};
pub use deadband::Deadband;
pub use decode::{DecodeError, EncodeError, Scaling, decode, encode, set_bit};
pub use factory::Factory;
pub use plan::{BlockRead, PlanLimits, PlanPoint, Served, plan_reads};
pub use poller::{ModbusSource, ModbusWriter, WRITE_QUEUE, exception_quality};
pub use stats::{ModbusMetrics, ModbusMetricsSnapshot, ModbusStats};
pub use write::{WriteOp, write_op};
