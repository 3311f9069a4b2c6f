//! Engineering units: dimension checking and conversion.
//!
//! A [`Unit`] is parsed from the text an engineer writes (`"m3/h"`, `"bar"`,
//! `"kg/m3"`, `"W/(m2.K)"`) into its dimension (exponents of seven base
//! dimensions) and its conversion to SI (`si = value * scale + offset`).
//!
//! Syntax: unit names from a fixed table (see [`known_units`]) combined with
//! `*`, `.` or `·` (product), `/` (quotient, left-associative: `a/b/c` is
//! `a/(b*c)`), parentheses and exponents written `m^3`, `m^-1`, `m3` (digits
//! right after a name) or `m³`. `1` is the dimensionless unit (`1/min`).
//!
//! Decisions worth knowing:
//! - **Gauge pressure**: `barg`, `psig` are treated exactly like `bar`, `psi`
//!   (no atmospheric offset is added); `bara`, `psia` likewise. A model that
//!   mixes gauge and absolute pressures must convert explicitly.
//! - **Normal volume**: `Nm3` (normal cubic metre, 0 °C and 1.01325 bar) has its
//!   own base dimension, so `Nm3/h` converts to `Nm3/s` but not to `m3/h`:
//!   the conversion depends on the gas and its state.
//! - **Temperature**: `degC`/`°C` and `degF`/`°F` carry an offset; `K` has
//!   none. A temperature *difference* is written `K`, `delta_degC` (same as
//!   `K`) or `delta_degF`. In compound units (`degC/min`, `W/(m2.K)`) offsets
//!   are dropped: a compound is always a rate of differences.
//! - **Percent**: `%` is dimensionless with scale 0.01 (`50 %` converts to `0.5`
//!   of `1`); `ppm` is 1e-6. Levels in `%` are dimensionless too.
//! - **Rotational speed**: `rpm` is `1/min`, so it converts to `Hz`.
//! - **Torque** is written `N.m` or `N*m`; it shares its dimension with energy.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Number of base dimensions tracked: length, mass, time, current,
/// temperature, amount of substance, normal volume.
pub const BASE_DIMS: usize = 7;

/// Exponents of the base dimensions, in the order of [`BASE_SYMBOLS`].
pub type Dims = [i8; BASE_DIMS];

/// SI symbol of each base dimension, used in exponent-form dimension names.
pub const BASE_SYMBOLS: [&str; BASE_DIMS] = ["m", "kg", "s", "A", "K", "mol", "Nm3"];

const fn d(l: i8, m: i8, t: i8, i: i8, th: i8, n: i8, nv: i8) -> Dims {
    [l, m, t, i, th, n, nv]
}

const ONE: Dims = d(0, 0, 0, 0, 0, 0, 0);
const LENGTH: Dims = d(1, 0, 0, 0, 0, 0, 0);
const VOLUME: Dims = d(3, 0, 0, 0, 0, 0, 0);
const MASS: Dims = d(0, 1, 0, 0, 0, 0, 0);
const TIME: Dims = d(0, 0, 1, 0, 0, 0, 0);
const CURRENT: Dims = d(0, 0, 0, 1, 0, 0, 0);
const TEMPERATURE: Dims = d(0, 0, 0, 0, 1, 0, 0);
const AMOUNT: Dims = d(0, 0, 0, 0, 0, 1, 0);
const NORMAL_VOLUME: Dims = d(0, 0, 0, 0, 0, 0, 1);
const FREQUENCY: Dims = d(0, 0, -1, 0, 0, 0, 0);
const FORCE: Dims = d(1, 1, -2, 0, 0, 0, 0);
const PRESSURE: Dims = d(-1, 1, -2, 0, 0, 0, 0);
const ENERGY: Dims = d(2, 1, -2, 0, 0, 0, 0);
const POWER: Dims = d(2, 1, -3, 0, 0, 0, 0);
const VOLTAGE: Dims = d(2, 1, -3, -1, 0, 0, 0);
const RESISTANCE: Dims = d(2, 1, -3, -2, 0, 0, 0);
const DYN_VISCOSITY: Dims = d(-1, 1, -1, 0, 0, 0, 0);
const KIN_VISCOSITY: Dims = d(2, 0, -1, 0, 0, 0, 0);

/// Named units: symbol, dimension, scale to SI, offset to SI.
const ATOMS: &[(&str, Dims, f64, f64)] = &[
    // dimensionless
    ("1", ONE, 1.0, 0.0),
    ("%", ONE, 0.01, 0.0),
    ("ppm", ONE, 1e-6, 0.0),
    // length
    ("m", LENGTH, 1.0, 0.0),
    ("mm", LENGTH, 1e-3, 0.0),
    ("cm", LENGTH, 1e-2, 0.0),
    ("km", LENGTH, 1e3, 0.0),
    ("in", LENGTH, 0.0254, 0.0),
    ("ft", LENGTH, 0.3048, 0.0),
    // volume
    ("L", VOLUME, 1e-3, 0.0),
    ("l", VOLUME, 1e-3, 0.0),
    ("mL", VOLUME, 1e-6, 0.0),
    ("bbl", VOLUME, 0.158_987_294_928, 0.0),
    ("gal", VOLUME, 0.003_785_411_784, 0.0),
    ("Nm3", NORMAL_VOLUME, 1.0, 0.0),
    // mass
    ("kg", MASS, 1.0, 0.0),
    ("g", MASS, 1e-3, 0.0),
    ("t", MASS, 1e3, 0.0),
    ("lb", MASS, 0.453_592_37, 0.0),
    // time
    ("s", TIME, 1.0, 0.0),
    ("ms", TIME, 1e-3, 0.0),
    ("min", TIME, 60.0, 0.0),
    ("h", TIME, 3600.0, 0.0),
    ("hr", TIME, 3600.0, 0.0),
    ("d", TIME, 86400.0, 0.0),
    // current
    ("A", CURRENT, 1.0, 0.0),
    ("mA", CURRENT, 1e-3, 0.0),
    ("kA", CURRENT, 1e3, 0.0),
    // temperature
    ("K", TEMPERATURE, 1.0, 0.0),
    ("degC", TEMPERATURE, 1.0, 273.15),
    ("°C", TEMPERATURE, 1.0, 273.15),
    ("degF", TEMPERATURE, 5.0 / 9.0, 459.67 * 5.0 / 9.0),
    ("°F", TEMPERATURE, 5.0 / 9.0, 459.67 * 5.0 / 9.0),
    ("delta_degC", TEMPERATURE, 1.0, 0.0),
    ("delta_degF", TEMPERATURE, 5.0 / 9.0, 0.0),
    // amount of substance
    ("mol", AMOUNT, 1.0, 0.0),
    ("kmol", AMOUNT, 1e3, 0.0),
    // frequency and rotational speed
    ("Hz", FREQUENCY, 1.0, 0.0),
    ("kHz", FREQUENCY, 1e3, 0.0),
    ("rpm", FREQUENCY, 1.0 / 60.0, 0.0),
    // force
    ("N", FORCE, 1.0, 0.0),
    ("kN", FORCE, 1e3, 0.0),
    // pressure
    ("Pa", PRESSURE, 1.0, 0.0),
    ("hPa", PRESSURE, 1e2, 0.0),
    ("kPa", PRESSURE, 1e3, 0.0),
    ("MPa", PRESSURE, 1e6, 0.0),
    ("bar", PRESSURE, 1e5, 0.0),
    ("barg", PRESSURE, 1e5, 0.0),
    ("bara", PRESSURE, 1e5, 0.0),
    ("mbar", PRESSURE, 1e2, 0.0),
    ("psi", PRESSURE, 6_894.757_293_168, 0.0),
    ("psig", PRESSURE, 6_894.757_293_168, 0.0),
    ("psia", PRESSURE, 6_894.757_293_168, 0.0),
    ("atm", PRESSURE, 101_325.0, 0.0),
    ("mmHg", PRESSURE, 133.322_387_415, 0.0),
    ("mmH2O", PRESSURE, 9.806_65, 0.0),
    // energy
    ("J", ENERGY, 1.0, 0.0),
    ("kJ", ENERGY, 1e3, 0.0),
    ("MJ", ENERGY, 1e6, 0.0),
    ("GJ", ENERGY, 1e9, 0.0),
    ("Wh", ENERGY, 3.6e3, 0.0),
    ("kWh", ENERGY, 3.6e6, 0.0),
    ("MWh", ENERGY, 3.6e9, 0.0),
    ("GWh", ENERGY, 3.6e12, 0.0),
    ("kcal", ENERGY, 4184.0, 0.0),
    // power
    ("W", POWER, 1.0, 0.0),
    ("kW", POWER, 1e3, 0.0),
    ("MW", POWER, 1e6, 0.0),
    ("GW", POWER, 1e9, 0.0),
    // electrical
    ("V", VOLTAGE, 1.0, 0.0),
    ("mV", VOLTAGE, 1e-3, 0.0),
    ("kV", VOLTAGE, 1e3, 0.0),
    ("ohm", RESISTANCE, 1.0, 0.0),
    // viscosity
    ("mPa", PRESSURE, 1e-3, 0.0),
    ("cP", DYN_VISCOSITY, 1e-3, 0.0),
    ("cSt", KIN_VISCOSITY, 1e-6, 0.0),
];

/// Compound units engineers commonly write; offered as did-you-mean hints.
const COMMON_COMPOUNDS: &[&str] = &[
    "m3/h", "m3/s", "L/s", "L/min", "L/h", "Nm3/h", "kg/s", "kg/h", "t/h", "kg/m3", "m/s", "N.m",
    "kN.m", "Pa.s", "mPa.s", "m2", "m3", "W/(m2.K)", "J/(kg.K)", "kJ/kg", "K/min",
];

/// Names of dimensions engineers recognise, for error messages.
const DIMENSION_NAMES: &[(Dims, &str)] = &[
    (ONE, "dimensionless"),
    (LENGTH, "length"),
    (d(2, 0, 0, 0, 0, 0, 0), "area"),
    (VOLUME, "volume"),
    (MASS, "mass"),
    (TIME, "time"),
    (CURRENT, "current"),
    (TEMPERATURE, "temperature"),
    (AMOUNT, "amount of substance"),
    (NORMAL_VOLUME, "normal volume"),
    (FREQUENCY, "frequency"),
    (d(1, 0, -1, 0, 0, 0, 0), "velocity"),
    (d(1, 0, -2, 0, 0, 0, 0), "acceleration"),
    (d(3, 0, -1, 0, 0, 0, 0), "volumetric flow"),
    (d(0, 0, -1, 0, 0, 0, 1), "normal volumetric flow"),
    (d(0, 1, -1, 0, 0, 0, 0), "mass flow"),
    (d(0, 0, -1, 0, 0, 1, 0), "molar flow"),
    (d(-3, 1, 0, 0, 0, 0, 0), "density"),
    (FORCE, "force"),
    (PRESSURE, "pressure"),
    (ENERGY, "energy or torque"),
    (POWER, "power"),
    (VOLTAGE, "voltage"),
    (RESISTANCE, "resistance"),
    (DYN_VISCOSITY, "dynamic viscosity"),
    (KIN_VISCOSITY, "kinematic viscosity"),
    (d(0, 1, -3, 0, -1, 0, 0), "heat transfer coefficient"),
    (d(2, 0, -2, 0, -1, 0, 0), "specific heat capacity"),
    (d(2, 0, -2, 0, 0, 0, 0), "specific energy"),
    (d(0, 0, -1, 0, 1, 0, 0), "temperature rate"),
];

/// A unit: its symbol as written, its dimension and its conversion to SI
/// (`si = value * scale + offset`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unit {
    symbol: String,
    dims: Dims,
    scale: f64,
    offset: f64,
}

/// A unit text that could not be parsed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}{}", hint.as_ref().map(|h| format!(", did you mean `{h}`?")).unwrap_or_default())]
pub struct UnitError {
    /// The text as given.
    pub text: String,
    /// What was expected and what was found.
    pub message: String,
    /// A close known unit, if any.
    pub hint: Option<String>,
}

impl Unit {
    /// Parses a unit as an engineer writes it: `"bar"`, `"m3/h"`, `"W/(m2.K)"`.
    pub fn parse(text: &str) -> Result<Unit, UnitError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(UnitError {
                text: text.to_string(),
                message: "empty unit, expected a unit such as `m3/h`, or `1` for dimensionless"
                    .into(),
                hint: None,
            });
        }
        let mut p = UnitParser {
            text: trimmed,
            pos: 0,
        };
        let parsed = p.product().and_then(|u| {
            p.skip_ws();
            match p.peek() {
                None => Ok(u),
                Some(c) => Err(p.error(format!(
                    "expected `*`, `/` or the end of the unit, found `{c}`"
                ))),
            }
        });
        match parsed {
            Ok(mut u) => {
                u.symbol = trimmed.to_string();
                Ok(u)
            }
            Err(e) => {
                let hint = closest_match(trimmed, known_units()).map(str::to_string);
                let hint = hint.or(e.atom_hint);
                let message = match e.unknown {
                    Some(atom) if atom == trimmed => format!("unknown unit `{atom}`"),
                    Some(atom) => format!("unknown unit `{atom}` in `{trimmed}`"),
                    None => format!("invalid unit `{trimmed}`: {}", e.message),
                };
                Err(UnitError {
                    text: text.to_string(),
                    message,
                    hint,
                })
            }
        }
    }

    /// The unit `1`.
    pub fn dimensionless() -> Unit {
        Unit {
            symbol: "1".into(),
            dims: ONE,
            scale: 1.0,
            offset: 0.0,
        }
    }

    /// The symbol as written (trimmed), or as composed by [`Unit::mul`] and friends.
    pub fn symbol(&self) -> &str {
        &self.symbol
    }

    /// Exponents of the base dimensions (see [`BASE_SYMBOLS`]).
    pub fn dims(&self) -> Dims {
        self.dims
    }

    /// Factor to SI: `si = value * scale + offset`.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Offset to SI (non-zero only for `degC` and `degF`).
    pub fn offset(&self) -> f64 {
        self.offset
    }

    pub fn is_dimensionless(&self) -> bool {
        self.dims == ONE
    }

    /// Whether the unit has an offset (an absolute temperature scale other than K).
    pub fn has_offset(&self) -> bool {
        self.offset != 0.0
    }

    /// Same dimension: values convert.
    pub fn is_compatible(&self, other: &Unit) -> bool {
        self.dims == other.dims
    }

    /// `(scale, offset)` such that `v_to = v * scale + offset`; `None` if the
    /// dimensions differ.
    pub fn conversion_to(&self, to: &Unit) -> Option<(f64, f64)> {
        if !self.is_compatible(to) {
            return None;
        }
        let scale = self.scale / to.scale;
        let offset = (self.offset - to.offset) / to.scale;
        Some((scale, offset))
    }

    /// Converts a value into `to`, `None` if the dimensions differ.
    pub fn convert(&self, v: f64, to: &Unit) -> Option<f64> {
        self.conversion_to(to).map(|(s, o)| v * s + o)
    }

    /// The dimension in words (`"pressure"`, `"volumetric flow"`), or in
    /// exponent form (`"m^2·kg·s^-3·K^-1"`) when it has no common name.
    pub fn dimension_name(&self) -> String {
        dimension_name(&self.dims)
    }

    /// The product unit (offsets dropped: a product is of differences).
    pub fn mul(&self, other: &Unit) -> Unit {
        let symbol = match (self.symbol.as_str(), other.symbol.as_str()) {
            ("1", s) | (s, "1") => s.to_string(),
            (a, b) => format!("{}*{}", a, wrap_if(b, &['/', '*', '.', '·'])),
        };
        Unit {
            symbol,
            dims: add_dims(&self.dims, &other.dims, 1),
            scale: self.scale * other.scale,
            offset: 0.0,
        }
    }

    /// The quotient unit (offsets dropped).
    pub fn div(&self, other: &Unit) -> Unit {
        let symbol = match (self.symbol.as_str(), other.symbol.as_str()) {
            (s, "1") => s.to_string(),
            (a, b) => format!("{a}/{}", wrap_if(b, &['/', '*', '.', '·'])),
        };
        Unit {
            symbol,
            dims: add_dims(&self.dims, &other.dims, -1),
            scale: self.scale / other.scale,
            offset: 0.0,
        }
    }

    /// The square root, `None` if an exponent is odd.
    pub fn sqrt(&self) -> Option<Unit> {
        if self.dims.iter().any(|e| e % 2 != 0) {
            return None;
        }
        let mut dims = self.dims;
        for e in &mut dims {
            *e /= 2;
        }
        Some(Unit {
            symbol: format!("({})^0.5", self.symbol),
            dims,
            scale: self.scale.sqrt(),
            offset: 0.0,
        })
    }

    /// The unit of a difference of two values in this unit: the same scale
    /// without offset (`degC` gives `delta_degC`, i.e. `K`).
    pub fn difference(&self) -> Unit {
        if !self.has_offset() {
            return self.clone();
        }
        let symbol = match self.symbol.as_str() {
            "degC" | "°C" => "delta_degC".to_string(),
            "degF" | "°F" => "delta_degF".to_string(),
            s => format!("delta_{s}"),
        };
        Unit {
            symbol,
            dims: self.dims,
            scale: self.scale,
            offset: 0.0,
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.symbol)
    }
}

impl FromStr for Unit {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Unit::parse(s)
    }
}

/// Every unit name the parser knows and the compounds engineers commonly
/// write (for hints).
pub fn known_units() -> impl Iterator<Item = &'static str> {
    ATOMS
        .iter()
        .map(|a| a.0)
        .chain(COMMON_COMPOUNDS.iter().copied())
}

/// The dimension in words or exponent form (see [`Unit::dimension_name`]).
pub fn dimension_name(dims: &Dims) -> String {
    if let Some((_, name)) = DIMENSION_NAMES.iter().find(|(d, _)| d == dims) {
        return (*name).to_string();
    }
    let parts: Vec<String> = dims
        .iter()
        .zip(BASE_SYMBOLS)
        .filter(|(e, _)| **e != 0)
        .map(|(e, s)| {
            if *e == 1 {
                s.to_string()
            } else {
                format!("{s}^{e}")
            }
        })
        .collect();
    parts.join("·")
}

fn add_dims(a: &Dims, b: &Dims, sign: i8) -> Dims {
    let mut out = *a;
    for (o, e) in out.iter_mut().zip(b) {
        *o = o.saturating_add(e.saturating_mul(sign));
    }
    out
}

fn wrap_if(s: &str, ops: &[char]) -> String {
    if s.contains(ops) {
        format!("({s})")
    } else {
        s.to_string()
    }
}

fn atom(name: &str) -> Option<Unit> {
    ATOMS
        .iter()
        .find(|a| a.0 == name)
        .map(|&(symbol, dims, scale, offset)| Unit {
            symbol: symbol.to_string(),
            dims,
            scale,
            offset,
        })
}

fn powi(u: &Unit, n: i8) -> Unit {
    if n == 1 {
        return u.clone();
    }
    let mut dims = u.dims;
    for e in &mut dims {
        *e = e.saturating_mul(n);
    }
    Unit {
        symbol: format!("{}^{n}", u.symbol),
        dims,
        scale: u.scale.powi(i32::from(n)),
        offset: 0.0,
    }
}

struct ParseFail {
    message: String,
    unknown: Option<String>,
    atom_hint: Option<String>,
}

struct UnitParser<'a> {
    text: &'a str,
    pos: usize,
}

impl UnitParser<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn error(&self, message: String) -> ParseFail {
        ParseFail {
            message,
            unknown: None,
            atom_hint: None,
        }
    }

    fn found(&self) -> String {
        match self.peek() {
            Some(c) => format!("`{c}`"),
            None => "the end of the unit".into(),
        }
    }

    fn product(&mut self) -> Result<Unit, ParseFail> {
        let mut acc = self.power()?;
        loop {
            self.skip_ws();
            match self.peek() {
                Some('*' | '.' | '·') => {
                    self.bump();
                    let rhs = self.power()?;
                    acc = acc.mul(&rhs);
                }
                Some('/') => {
                    self.bump();
                    let rhs = self.power()?;
                    acc = acc.div(&rhs);
                }
                _ => return Ok(acc),
            }
        }
    }

    fn power(&mut self) -> Result<Unit, ParseFail> {
        let base = self.primary()?;
        match self.peek() {
            Some('^') => {
                self.bump();
                let paren = self.peek() == Some('(');
                if paren {
                    self.bump();
                }
                let n = self.integer()?;
                if paren {
                    if self.peek() != Some(')') {
                        return Err(self.error(format!("expected `)`, found {}", self.found())));
                    }
                    self.bump();
                }
                Ok(powi(&base, n))
            }
            Some(c @ ('²' | '³')) => {
                self.bump();
                Ok(powi(&base, if c == '²' { 2 } else { 3 }))
            }
            _ => Ok(base),
        }
    }

    fn integer(&mut self) -> Result<i8, ParseFail> {
        let start = self.pos;
        if self.peek() == Some('-') {
            self.bump();
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
        }
        self.text[start..self.pos].parse::<i8>().map_err(|_| {
            self.error(format!(
                "expected an integer exponent, found `{}`",
                &self.text[start..self.pos.max(start)]
            ))
        })
    }

    fn primary(&mut self) -> Result<Unit, ParseFail> {
        self.skip_ws();
        match self.peek() {
            Some('(') => {
                self.bump();
                let u = self.product()?;
                self.skip_ws();
                if self.peek() != Some(')') {
                    return Err(self.error(format!("expected `)`, found {}", self.found())));
                }
                self.bump();
                Ok(u)
            }
            Some('%') => {
                self.bump();
                Ok(atom("%").unwrap_or_else(Unit::dimensionless))
            }
            Some('1') => {
                self.bump();
                if self.peek().is_some_and(|c| c.is_ascii_digit()) {
                    return Err(self.error("expected `1` or a unit name, found a number".into()));
                }
                Ok(Unit::dimensionless())
            }
            Some(c) if c.is_alphabetic() || c == '°' || c == 'µ' || c == '_' => {
                let start = self.pos;
                while self.peek().is_some_and(|c| {
                    c.is_alphabetic() || c.is_ascii_digit() || c == '_' || c == '°'
                }) {
                    self.bump();
                }
                let word = &self.text[start..self.pos];
                if let Some(u) = atom(word) {
                    return Ok(u);
                }
                let name = word.trim_end_matches(|c: char| c.is_ascii_digit());
                if name.len() < word.len()
                    && let Some(u) = atom(name)
                {
                    let n = word[name.len()..].parse::<i8>().map_err(|_| {
                        self.error(format!(
                            "expected a small exponent, found `{}`",
                            &word[name.len()..]
                        ))
                    })?;
                    return Ok(powi(&u, n));
                }
                Err(ParseFail {
                    message: format!("unknown unit `{word}`"),
                    unknown: Some(word.to_string()),
                    atom_hint: closest_match(word, ATOMS.iter().map(|a| a.0))
                        .map(|h| format!("{}{h}{}", &self.text[..start], &self.text[self.pos..])),
                })
            }
            _ => Err(self.error(format!("expected a unit name, found {}", self.found()))),
        }
    }
}

/// Levenshtein distance over chars.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `word`: an exact case-insensitive match first,
/// else the smallest edit distance within a tolerance that grows with length.
pub(crate) fn closest_match<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let limit = match word.chars().count() {
        0..=3 => 1,
        4..=6 => 2,
        _ => 3,
    };
    let lower = word.to_lowercase();
    let mut best: Option<(usize, &'a str)> = None;
    for c in candidates {
        if c == word {
            continue;
        }
        let dist = if c.to_lowercase() == lower {
            0
        } else {
            edit_distance(word, c)
        };
        if dist <= limit && best.is_none_or(|(b, _)| dist < b) {
            best = Some((dist, c));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Unit {
        Unit::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn conv(v: f64, from: &str, to: &str) -> f64 {
        u(from)
            .convert(v, &u(to))
            .unwrap_or_else(|| panic!("{from} -> {to} incompatible"))
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn kpa_bar_exact() {
        assert_eq!(conv(100.0, "kPa", "bar"), 1.0);
        assert_eq!(conv(2.5, "bar", "kPa"), 250.0);
        assert_eq!(conv(1.0, "MPa", "bar"), 10.0);
        assert_eq!(conv(1000.0, "mbar", "bar"), 1.0);
        assert_eq!(u("kPa").conversion_to(&u("bar")), Some((0.01, 0.0)));
    }

    #[test]
    fn temperature_offsets() {
        assert!(close(conv(0.0, "degC", "K"), 273.15));
        assert!(close(conv(300.0, "K", "degC"), 26.85));
        assert!(close(conv(212.0, "degF", "degC"), 100.0));
        assert!(close(conv(-40.0, "degC", "degF"), -40.0));
        assert!(close(conv(100.0, "°C", "degF"), 212.0));
        // differences have no offset
        assert!(close(conv(10.0, "delta_degC", "K"), 10.0));
        assert!(close(conv(9.0, "delta_degF", "K"), 5.0));
        assert_eq!(u("degC").difference().symbol(), "delta_degC");
        assert!(close(
            u("degF").difference().convert(18.0, &u("K")).unwrap_or(0.0),
            10.0
        ));
    }

    #[test]
    fn flows() {
        assert!(close(conv(36.0, "m3/h", "L/s"), 10.0));
        assert!(close(conv(1.0, "L/s", "m3/h"), 3.6));
        assert!(close(conv(60.0, "L/min", "L/s"), 1.0));
        assert!(close(conv(1.0, "m3/s", "m3/h"), 3600.0));
        assert!(close(conv(1.0, "m^3/h", "m3/h"), 1.0));
        assert!(close(conv(1.0, "m³/h", "L/h"), 1000.0));
        assert!(close(conv(3600.0, "Nm3/h", "Nm3/s"), 1.0));
        assert!(close(conv(3.6, "t/h", "kg/s"), 1.0));
        assert!(close(conv(1.0, "kg/s", "kg/h"), 3600.0));
        assert_eq!(u("Nm3/h").dimension_name(), "normal volumetric flow");
        assert_eq!(u("m3/h").dimension_name(), "volumetric flow");
    }

    #[test]
    fn energy_and_power() {
        assert!(close(conv(1.0, "kWh", "MJ"), 3.6));
        assert!(close(conv(7.2, "MJ", "kWh"), 2.0));
        assert!(close(conv(1.0, "MWh", "GJ"), 3.6));
        assert!(close(conv(1500.0, "kW", "MW"), 1.5));
        assert!(close(conv(1.0, "kJ", "J"), 1000.0));
        assert!(u("kW").is_compatible(&u("J/s")));
        assert!(u("kWh").is_compatible(&u("kW*h")));
        // m3/h * bar is a power: 1 m3/h·bar = 1e5/3600 W
        assert!(close(conv(1.0, "m3/h*bar", "W"), 1e5 / 3600.0));
        assert!(close(
            u("m3/h")
                .mul(&u("bar"))
                .convert(36.0, &u("kW"))
                .unwrap_or(0.0),
            1.0
        ));
    }

    #[test]
    fn other_quantities() {
        assert!(close(conv(60.0, "rpm", "Hz"), 1.0));
        assert!(close(conv(1.0, "1/min", "rpm"), 1.0));
        assert!(close(conv(50.0, "%", "1"), 0.5));
        assert!(close(conv(1.0, "1", "%"), 100.0));
        assert!(close(conv(1.0, "kV", "V"), 1000.0));
        assert!(close(conv(1.0, "psi", "kPa"), 6.894_757_293_168));
        assert!(close(conv(1.0, "atm", "bar"), 1.01325));
        assert!(close(conv(1.0, "barg", "kPa"), 100.0));
        assert!(close(conv(1.0, "t", "kg"), 1000.0));
        assert!(close(conv(1.0, "h", "min"), 60.0));
        assert!(close(conv(1.0, "g/L", "kg/m3"), 1.0));
        assert!(close(conv(1.0, "cP", "Pa.s"), 1e-3));
        assert!(close(conv(1.0, "kN.m", "N*m"), 1000.0));
        assert!(close(conv(1.0, "W/(m2.K)", "W/m2/K"), 1.0));
        assert!(close(conv(1.0, "m/s", "km/h"), 3.6));
        assert!(close(conv(1.0, "mm", "m"), 1e-3));
        assert!(close(conv(1.0, "cm^2", "m2"), 1e-4));
        assert!(close(conv(2.0, "s^-1", "Hz"), 2.0));
        assert!(close(conv(1.0, "m^(-1)", "1/m"), 1.0));
        assert_eq!(u("kg/m3").dimension_name(), "density");
        assert_eq!(u("N.m").dimension_name(), "energy or torque");
        assert_eq!(u("W/(m2.K)").dimension_name(), "heat transfer coefficient");
        assert_eq!(u("m2*kg*A").dimension_name(), "m^2·kg·A");
        assert_eq!(u(" m3/h ").symbol(), "m3/h");
    }

    #[test]
    fn incompatible_pairs() {
        for (a, b) in [
            ("bar", "m3/h"),
            ("Nm3/h", "m3/h"),
            ("kW", "kWh"),
            ("degC", "bar"),
            ("%", "m"),
            ("kg/s", "m3/h"),
            ("A", "V"),
        ] {
            assert!(!u(a).is_compatible(&u(b)), "{a} vs {b}");
            assert_eq!(u(a).conversion_to(&u(b)), None, "{a} vs {b}");
        }
        assert_eq!(u("bar").dimension_name(), "pressure");
    }

    #[test]
    fn parse_errors_suggest() {
        let e = Unit::parse("m3/hr2x").unwrap_err();
        assert!(e.message.contains("hr2x"), "{e}");
        let e = Unit::parse("kpa").unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("kPa"));
        assert_eq!(e.to_string(), "unknown unit `kpa`, did you mean `kPa`?");
        let e = Unit::parse("m3/hour").unwrap_err();
        assert_eq!(e.message, "unknown unit `hour` in `m3/hour`");
        assert!(e.hint.is_some());
        let e = Unit::parse("m3/ h)").unwrap_err();
        assert!(e.message.starts_with("invalid unit `m3/ h)`"), "{e}");
        assert!(e.message.contains("found `)`"), "{e}");
        let e = Unit::parse("W/(m2.K").unwrap_err();
        assert!(e.message.contains("expected `)`"), "{e}");
        let e = Unit::parse("").unwrap_err();
        assert!(e.message.starts_with("empty unit"), "{e}");
        let e = Unit::parse("m^x").unwrap_err();
        assert!(e.message.contains("integer exponent"), "{e}");
        let e = Unit::parse("KW").unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("kW"));
        let e = Unit::parse("m3/hh").unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("m3/h"));
        assert!(Unit::parse("10/s").is_err());
    }

    #[test]
    fn known_units_all_parse() {
        for k in known_units() {
            let p = u(k);
            assert_eq!(p.symbol(), k);
        }
    }

    #[test]
    fn composed_symbols_reparse() {
        let a = u("m3/h");
        let b = u("bar");
        for c in [
            a.mul(&b),
            a.div(&b),
            b.div(&a.mul(&b)),
            u("kg").div(&a.div(&b)),
        ] {
            let r = u(c.symbol());
            assert_eq!(r.dims(), c.dims(), "{}", c.symbol());
            assert!(close(r.scale(), c.scale()), "{}", c.symbol());
        }
    }

    proptest::proptest! {
        /// Converting there and back is the identity, and via SI equals direct.
        #[test]
        fn conversions_invert(i in 0..ATOMS.len(), j in 0..ATOMS.len(), v in -1e6..1e6f64) {
            let (a, b) = (u(ATOMS[i].0), u(ATOMS[j].0));
            proptest::prop_assert_eq!(a.is_compatible(&b), a.conversion_to(&b).is_some());
            if let (Some(there), Some(si)) = (a.convert(v, &b), a.convert(v, &u(&dimension_si(&a)))) {
                let back = b.convert(there, &a).unwrap_or(f64::NAN);
                proptest::prop_assert!((back - v).abs() <= 1e-6 * v.abs().max(1.0), "{} -> {}", a, b);
                let via = u(&dimension_si(&a)).convert(si, &b).unwrap_or(f64::NAN);
                proptest::prop_assert!((via - there).abs() <= 1e-6 * there.abs().max(1.0));
            }
        }
    }

    /// The SI unit of `u`'s dimension, as text.
    fn dimension_si(u: &Unit) -> String {
        let parts: Vec<String> = u
            .dims()
            .iter()
            .zip(BASE_SYMBOLS)
            .filter(|(e, _)| **e != 0)
            .map(|(e, s)| format!("{s}^{e}"))
            .collect();
        if parts.is_empty() {
            "1".into()
        } else {
            parts.join("*")
        }
    }

    #[test]
    fn distance() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(
            closest_match("dischage_pressure", ["flow", "discharge_pressure"]),
            Some("discharge_pressure")
        );
        assert_eq!(closest_match("xyz", ["flow", "discharge_pressure"]), None);
    }
}
