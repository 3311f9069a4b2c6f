//! Point addresses: `holding:100:f32:CDAB;scale=0.1;group=fast` and the
//! Modicon form `40101:f32`. The grammar is in the [module docs](super).

use std::fmt;

use super::decode::Scaling;

/// A Modbus data table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// Holding registers (function 3 read, 6/16 write), Modicon `4xxxx`.
    Holding,
    /// Input registers (function 4, read-only), Modicon `3xxxx`.
    Input,
    /// Coils (function 1 read, 5/15 write), Modicon `0xxxx`.
    Coil,
    /// Discrete inputs (function 2, read-only), Modicon `1xxxx`.
    Discrete,
}

impl Table {
    /// The table's name in an address.
    pub fn name(self) -> &'static str {
        match self {
            Table::Holding => "holding",
            Table::Input => "input",
            Table::Coil => "coil",
            Table::Discrete => "discrete",
        }
    }

    /// Whether the table holds single bits (coils, discrete inputs) rather
    /// than 16-bit registers.
    pub fn is_bits(self) -> bool {
        matches!(self, Table::Coil | Table::Discrete)
    }

    /// The most items one read request may cover: 2000 bits or 125 registers.
    pub fn max_read(self) -> u16 {
        if self.is_bits() { 2000 } else { 125 }
    }

    fn from_modicon_digit(d: u8) -> Option<Table> {
        match d {
            b'4' => Some(Table::Holding),
            b'3' => Some(Table::Input),
            b'0' => Some(Table::Coil),
            b'1' => Some(Table::Discrete),
            _ => None,
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a point's registers encode its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// A coil or discrete input, or "register is non-zero".
    Bool,
    /// One bit of a register, 0 = least significant.
    Bit(u8),
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
}

impl DataType {
    /// How many registers (or bits, in a bit table) the type spans.
    pub fn words(self) -> u16 {
        match self {
            DataType::Bool | DataType::Bit(_) | DataType::U16 | DataType::I16 => 1,
            DataType::U32 | DataType::I32 | DataType::F32 => 2,
            DataType::U64 | DataType::I64 | DataType::F64 => 4,
        }
    }

    /// Whether the type decodes to a boolean.
    pub fn is_bool(self) -> bool {
        matches!(self, DataType::Bool | DataType::Bit(_))
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataType::Bool => f.write_str("bool"),
            DataType::Bit(n) => write!(f, "bit:{n}"),
            DataType::U16 => f.write_str("u16"),
            DataType::I16 => f.write_str("i16"),
            DataType::U32 => f.write_str("u32"),
            DataType::I32 => f.write_str("i32"),
            DataType::U64 => f.write_str("u64"),
            DataType::I64 => f.write_str("i64"),
            DataType::F32 => f.write_str("f32"),
            DataType::F64 => f.write_str("f64"),
        }
    }
}

/// Word and byte order of a multi-register value, named by where the bytes
/// `A B C D` of the big-endian value sit on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WordOrder {
    /// Big-endian words, big-endian bytes: the Modbus standard.
    #[default]
    Abcd,
    /// Word-swapped: the least significant word first (for 64-bit values
    /// all four words reversed), bytes big-endian within each word.
    Cdab,
    /// Byte-swapped within each word, words most significant first.
    Badc,
    /// Fully reversed: little-endian words and bytes.
    Dcba,
}

impl WordOrder {
    /// Whether registers come least significant word first.
    pub fn words_reversed(self) -> bool {
        matches!(self, WordOrder::Cdab | WordOrder::Dcba)
    }

    /// Whether the two bytes of each register are swapped.
    pub fn bytes_swapped(self) -> bool {
        matches!(self, WordOrder::Badc | WordOrder::Dcba)
    }
}

impl fmt::Display for WordOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WordOrder::Abcd => "ABCD",
            WordOrder::Cdab => "CDAB",
            WordOrder::Badc => "BADC",
            WordOrder::Dcba => "DCBA",
        })
    }
}

/// A parsed point address.
#[derive(Debug, Clone, PartialEq)]
pub struct PointAddress {
    pub table: Table,
    /// 0-based register (or bit) number of the first register.
    pub register: u16,
    pub ty: DataType,
    pub order: WordOrder,
    /// Multiplier of the decoded value (1 unless `scale=`).
    pub scale: f64,
    /// Added after scaling (0 unless `offset=`).
    pub offset: f64,
    /// Smallest change worth reporting, in scaled units (0 unless `deadband=`).
    pub deadband: f64,
    /// Poll group; `None` means the endpoint's first group.
    pub group: Option<String>,
    /// Endpoint of the source the point is read from; `None` means the
    /// source's only endpoint (required when it has several).
    pub endpoint: Option<String>,
    /// Whether setpoints may be written to the point.
    pub writable: bool,
}

/// Why an address does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("empty address, expected `table:register[:type[:order]]` or a Modicon reference")]
    Empty,
    #[error("unknown table `{0}`, expected one of holding, input, coil, discrete")]
    UnknownTable(String),
    #[error("missing register after `{0}:`, expected a 0-based number 0..=65535")]
    MissingRegister(String),
    #[error("register `{0}` is not valid, expected a 0-based number 0..=65535")]
    BadRegister(String),
    #[error(
        "Modicon reference `{0}` is not valid, expected 5 or 6 digits starting with 4, 3, 0 or 1, like 40001"
    )]
    BadModicon(String),
    #[error(
        "unknown data type `{0}`, expected one of bool, bit:N, u16, i16, u32, i32, u64, i64, f32, f64"
    )]
    UnknownType(String),
    #[error("bit index `{0}` is not valid, expected 0..=15")]
    BadBit(String),
    #[error("unknown word order `{0}`, expected one of ABCD, CDAB, BADC, DCBA")]
    UnknownOrder(String),
    #[error("unexpected `{0}` after the word order, expected `;` and options")]
    TrailingHead(String),
    #[error("data type `{ty}` does not fit table `{table}`, expected {expected}")]
    TypeForTable {
        ty: DataType,
        table: Table,
        expected: &'static str,
    },
    #[error("word order `{order}` given for data type `{ty}`, expected none for a single bit")]
    OrderOnBool { order: WordOrder, ty: DataType },
    #[error("{ty} at register {register} ends past register 65535")]
    PastEnd { ty: DataType, register: u16 },
    #[error(
        "unknown option `{0}`, expected one of scale, offset, deadband, group, endpoint, writable"
    )]
    UnknownOption(String),
    #[error("option `{0}` given twice, expected it at most once")]
    DuplicateOption(&'static str),
    #[error("option `{option}` has value `{found}`, expected {expected}")]
    BadOptionValue {
        option: &'static str,
        found: String,
        expected: &'static str,
    },
    #[error("option `{option}` on data type `{ty}`, expected it only on numeric types")]
    ScaleOnBool { option: &'static str, ty: DataType },
    #[error("`writable` on table `{0}`, expected holding or coil (the others are read-only)")]
    ReadOnlyTable(Table),
}

impl PointAddress {
    /// A point at `register` of `table` with type `ty` and every option at its default.
    pub fn new(table: Table, register: u16, ty: DataType) -> PointAddress {
        PointAddress {
            table,
            register,
            ty,
            order: WordOrder::Abcd,
            scale: 1.0,
            offset: 0.0,
            deadband: 0.0,
            group: None,
            endpoint: None,
            writable: false,
        }
    }

    /// The point's `scale=` and `offset=` as a [`Scaling`].
    pub fn scaling(&self) -> Scaling {
        Scaling {
            scale: self.scale,
            offset: self.offset,
        }
    }

    /// Parses an address in the grammar of the [module docs](super).
    pub fn parse(text: &str) -> Result<PointAddress, AddressError> {
        let mut pieces = text.split(';');
        let head = pieces.next().unwrap_or_default().trim();
        if head.is_empty() {
            return Err(AddressError::Empty);
        }
        let mut parts = head.split(':').map(str::trim);
        let first = parts.next().unwrap_or_default();
        let (table, register) = if !first.is_empty() && first.bytes().all(|b| b.is_ascii_digit()) {
            parse_modicon(first)?
        } else {
            let table = parse_table(first)?;
            let reg = parts
                .next()
                .filter(|r| !r.is_empty())
                .ok_or_else(|| AddressError::MissingRegister(first.to_owned()))?;
            let register = reg
                .parse::<u16>()
                .map_err(|_| AddressError::BadRegister(reg.to_owned()))?;
            (table, register)
        };
        let ty = match parts.next() {
            None => {
                if table.is_bits() {
                    DataType::Bool
                } else {
                    DataType::U16
                }
            }
            Some("bit") => {
                let n = parts.next().unwrap_or_default();
                match n.parse::<u8>() {
                    Ok(n) if n < 16 => DataType::Bit(n),
                    _ => return Err(AddressError::BadBit(n.to_owned())),
                }
            }
            Some(t) => parse_type(t)?,
        };
        let order = match parts.next() {
            None => None,
            Some(o) => Some(parse_order(o)?),
        };
        if let Some(rest) = parts.next() {
            return Err(AddressError::TrailingHead(rest.to_owned()));
        }
        check_type(table, ty)?;
        if let (Some(order), true) = (order, ty.is_bool()) {
            return Err(AddressError::OrderOnBool { order, ty });
        }
        if u32::from(register) + u32::from(ty.words()) > 0x1_0000 {
            return Err(AddressError::PastEnd { ty, register });
        }
        let mut point = PointAddress::new(table, register, ty);
        point.order = order.unwrap_or_default();
        parse_options(&mut point, pieces)?;
        Ok(point)
    }
}

fn parse_table(text: &str) -> Result<Table, AddressError> {
    match text.to_ascii_lowercase().as_str() {
        "holding" => Ok(Table::Holding),
        "input" => Ok(Table::Input),
        "coil" => Ok(Table::Coil),
        "discrete" => Ok(Table::Discrete),
        _ => Err(AddressError::UnknownTable(text.to_owned())),
    }
}

/// `40001` → holding 0; `400001` → holding 0; `465536` → holding 65535.
fn parse_modicon(text: &str) -> Result<(Table, u16), AddressError> {
    let bad = || AddressError::BadModicon(text.to_owned());
    let (max, ok_len) = match text.len() {
        5 => (9999, true),
        6 => (65536, true),
        _ => (0, false),
    };
    if !ok_len {
        return Err(bad());
    }
    let table = Table::from_modicon_digit(text.as_bytes()[0]).ok_or_else(bad)?;
    let number: u32 = text[1..].parse().map_err(|_| bad())?;
    if !(1..=max).contains(&number) {
        return Err(bad());
    }
    let register = u16::try_from(number - 1).map_err(|_| bad())?;
    Ok((table, register))
}

fn parse_type(text: &str) -> Result<DataType, AddressError> {
    Ok(match text.to_ascii_lowercase().as_str() {
        "bool" => DataType::Bool,
        "u16" => DataType::U16,
        "i16" => DataType::I16,
        "u32" => DataType::U32,
        "i32" => DataType::I32,
        "u64" => DataType::U64,
        "i64" => DataType::I64,
        "f32" => DataType::F32,
        "f64" => DataType::F64,
        _ => return Err(AddressError::UnknownType(text.to_owned())),
    })
}

fn parse_order(text: &str) -> Result<WordOrder, AddressError> {
    match text.to_ascii_uppercase().as_str() {
        "ABCD" => Ok(WordOrder::Abcd),
        "CDAB" => Ok(WordOrder::Cdab),
        "BADC" => Ok(WordOrder::Badc),
        "DCBA" => Ok(WordOrder::Dcba),
        _ => Err(AddressError::UnknownOrder(text.to_owned())),
    }
}

fn check_type(table: Table, ty: DataType) -> Result<(), AddressError> {
    if table.is_bits() && ty != DataType::Bool {
        return Err(AddressError::TypeForTable {
            ty,
            table,
            expected: "bool",
        });
    }
    Ok(())
}

fn parse_options<'a>(
    point: &mut PointAddress,
    pieces: impl Iterator<Item = &'a str>,
) -> Result<(), AddressError> {
    let mut seen: Vec<&'static str> = Vec::new();
    for piece in pieces {
        let piece = piece.trim();
        let (key, value) = match piece.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (piece, None),
        };
        let name: &'static str = match key {
            "scale" => "scale",
            "offset" => "offset",
            "deadband" => "deadband",
            "group" => "group",
            "endpoint" => "endpoint",
            "writable" => "writable",
            _ => return Err(AddressError::UnknownOption(piece.to_owned())),
        };
        if seen.contains(&name) {
            return Err(AddressError::DuplicateOption(name));
        }
        seen.push(name);
        let bad = |expected: &'static str| AddressError::BadOptionValue {
            option: name,
            found: value.unwrap_or_default().to_owned(),
            expected,
        };
        match name {
            "writable" => {
                if value.is_some() {
                    return Err(bad("no value"));
                }
                if !matches!(point.table, Table::Holding | Table::Coil) {
                    return Err(AddressError::ReadOnlyTable(point.table));
                }
                point.writable = true;
            }
            "group" | "endpoint" => match value {
                Some(g)
                    if !g.is_empty()
                        && g.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
                {
                    let slot = if name == "group" {
                        &mut point.group
                    } else {
                        &mut point.endpoint
                    };
                    *slot = Some(g.to_owned());
                }
                _ => return Err(bad("a name of letters, digits, `_` or `-`")),
            },
            _ => {
                if point.ty.is_bool() {
                    return Err(AddressError::ScaleOnBool {
                        option: name,
                        ty: point.ty,
                    });
                }
                let number = value
                    .and_then(|v| v.parse::<f64>().ok())
                    .filter(|v| v.is_finite());
                match (name, number) {
                    ("scale", Some(v)) if v != 0.0 => point.scale = v,
                    ("scale", _) => return Err(bad("a finite non-zero number")),
                    ("offset", Some(v)) => point.offset = v,
                    ("deadband", Some(v)) if v >= 0.0 => point.deadband = v,
                    ("deadband", _) => return Err(bad("a finite number >= 0")),
                    _ => return Err(bad("a finite number")),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        match PointAddress::parse(text) {
            Ok(a) => panic!("`{text}` parsed as {a:?}, expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn full_table_form() {
        let a = PointAddress::parse(
            "holding:100:f32:CDAB;scale=0.1;offset=-5;deadband=0.5;group=fast;endpoint=plc-2;writable",
        )
        .unwrap();
        assert_eq!(
            a,
            PointAddress {
                table: Table::Holding,
                register: 100,
                ty: DataType::F32,
                order: WordOrder::Cdab,
                scale: 0.1,
                offset: -5.0,
                deadband: 0.5,
                group: Some("fast".into()),
                endpoint: Some("plc-2".into()),
                writable: true,
            }
        );
        assert_eq!(
            a.scaling(),
            Scaling {
                scale: 0.1,
                offset: -5.0
            }
        );
    }

    #[test]
    fn endpoint_option_takes_a_name_once() {
        let a = PointAddress::parse("coil:3; endpoint = line_1").unwrap();
        assert_eq!(a.endpoint.as_deref(), Some("line_1"));
        assert_eq!(
            err("holding:1;endpoint="),
            "option `endpoint` has value ``, expected a name of letters, digits, `_` or `-`"
        );
        assert_eq!(
            err("holding:1;endpoint=a;endpoint=b"),
            "option `endpoint` given twice, expected it at most once"
        );
    }

    #[test]
    fn defaults() {
        assert_eq!(
            PointAddress::parse("holding:7").unwrap(),
            PointAddress::new(Table::Holding, 7, DataType::U16)
        );
        assert_eq!(
            PointAddress::parse("coil:12").unwrap(),
            PointAddress::new(Table::Coil, 12, DataType::Bool)
        );
        assert_eq!(
            PointAddress::parse("discrete:0:bool").unwrap(),
            PointAddress::new(Table::Discrete, 0, DataType::Bool)
        );
    }

    #[test]
    fn table_form_numbers_are_zero_based() {
        let a = PointAddress::parse("holding:40001:f32:ABCD").unwrap();
        assert_eq!((a.table, a.register), (Table::Holding, 40001));
    }

    #[test]
    fn modicon_forms() {
        let cases = [
            ("40001", Table::Holding, 0),
            ("49999", Table::Holding, 9998),
            ("400001", Table::Holding, 0),
            ("465536", Table::Holding, 65535),
            ("30010", Table::Input, 9),
            ("00001", Table::Coil, 0),
            ("10002", Table::Discrete, 1),
        ];
        for (text, table, register) in cases {
            let a = PointAddress::parse(text).unwrap();
            assert_eq!((a.table, a.register), (table, register), "{text}");
        }
        let a = PointAddress::parse("40101:i32:dcba;scale=2").unwrap();
        assert_eq!(
            (a.register, a.ty, a.order, a.scale),
            (100, DataType::I32, WordOrder::Dcba, 2.0)
        );
    }

    #[test]
    fn bits_and_whitespace() {
        let a = PointAddress::parse(" input : 3 : bit:15 ; group = slow ").unwrap();
        assert_eq!(
            (a.table, a.register, a.ty),
            (Table::Input, 3, DataType::Bit(15))
        );
        assert_eq!(a.group.as_deref(), Some("slow"));
    }

    #[test]
    fn every_type_and_order_parses() {
        let types = [
            ("u16", DataType::U16),
            ("i16", DataType::I16),
            ("u32", DataType::U32),
            ("i32", DataType::I32),
            ("u64", DataType::U64),
            ("i64", DataType::I64),
            ("f32", DataType::F32),
            ("f64", DataType::F64),
        ];
        let orders = [
            ("ABCD", WordOrder::Abcd),
            ("CDAB", WordOrder::Cdab),
            ("BADC", WordOrder::Badc),
            ("DCBA", WordOrder::Dcba),
        ];
        for (tn, ty) in types {
            for (on, order) in orders {
                let a = PointAddress::parse(&format!("input:9:{tn}:{on}")).unwrap();
                assert_eq!((a.ty, a.order), (ty, order));
                assert_eq!(a.ty.to_string(), tn);
                assert_eq!(a.order.to_string(), on);
            }
        }
    }

    #[test]
    fn error_messages() {
        let cases = [
            (
                "",
                "empty address, expected `table:register[:type[:order]]` or a Modicon reference",
            ),
            (
                "holdin:1",
                "unknown table `holdin`, expected one of holding, input, coil, discrete",
            ),
            (
                "holding",
                "missing register after `holding:`, expected a 0-based number 0..=65535",
            ),
            (
                "holding:65536",
                "register `65536` is not valid, expected a 0-based number 0..=65535",
            ),
            (
                "holding:-1",
                "register `-1` is not valid, expected a 0-based number 0..=65535",
            ),
            (
                "50001",
                "Modicon reference `50001` is not valid, expected 5 or 6 digits starting with 4, 3, 0 or 1, like 40001",
            ),
            (
                "40000",
                "Modicon reference `40000` is not valid, expected 5 or 6 digits starting with 4, 3, 0 or 1, like 40001",
            ),
            (
                "465537",
                "Modicon reference `465537` is not valid, expected 5 or 6 digits starting with 4, 3, 0 or 1, like 40001",
            ),
            (
                "4001",
                "Modicon reference `4001` is not valid, expected 5 or 6 digits starting with 4, 3, 0 or 1, like 40001",
            ),
            (
                "holding:1:float",
                "unknown data type `float`, expected one of bool, bit:N, u16, i16, u32, i32, u64, i64, f32, f64",
            ),
            (
                "holding:1:bit:16",
                "bit index `16` is not valid, expected 0..=15",
            ),
            (
                "holding:1:bit",
                "bit index `` is not valid, expected 0..=15",
            ),
            (
                "holding:1:f32:ABDC",
                "unknown word order `ABDC`, expected one of ABCD, CDAB, BADC, DCBA",
            ),
            (
                "holding:1:f32:ABCD:x",
                "unexpected `x` after the word order, expected `;` and options",
            ),
            (
                "coil:1:u16",
                "data type `u16` does not fit table `coil`, expected bool",
            ),
            (
                "holding:1:bit:3:CDAB",
                "word order `CDAB` given for data type `bit:3`, expected none for a single bit",
            ),
            (
                "holding:65535:f32",
                "f32 at register 65535 ends past register 65535",
            ),
            (
                "holding:1;gain=2",
                "unknown option `gain=2`, expected one of scale, offset, deadband, group, endpoint, writable",
            ),
            (
                "holding:1;scale=2;scale=3",
                "option `scale` given twice, expected it at most once",
            ),
            (
                "holding:1;scale=abc",
                "option `scale` has value `abc`, expected a finite non-zero number",
            ),
            (
                "holding:1;scale=0",
                "option `scale` has value `0`, expected a finite non-zero number",
            ),
            (
                "holding:1;offset=inf",
                "option `offset` has value `inf`, expected a finite number",
            ),
            (
                "holding:1;offset",
                "option `offset` has value ``, expected a finite number",
            ),
            (
                "holding:1;deadband=-1",
                "option `deadband` has value `-1`, expected a finite number >= 0",
            ),
            (
                "holding:1;group=",
                "option `group` has value ``, expected a name of letters, digits, `_` or `-`",
            ),
            (
                "holding:1;writable=yes",
                "option `writable` has value `yes`, expected no value",
            ),
            (
                "coil:1;scale=2",
                "option `scale` on data type `bool`, expected it only on numeric types",
            ),
            (
                "input:1;writable",
                "`writable` on table `input`, expected holding or coil (the others are read-only)",
            ),
        ];
        for (text, message) in cases {
            assert_eq!(err(text), message, "address `{text}`");
        }
    }
}
