//! The raw layer: each file parsed into spanned TOML tables, then each
//! section into a serde struct with `deny_unknown_fields`. One bad section
//! costs only that section, so every error in every file is reported.

use std::borrow::Cow;
use std::ops::Range;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::diag::{Loc, Sink, did_you_mean, one_of};
use super::types::Settings;

pub(crate) type Key<'i> = Spanned<Cow<'i, str>>;
pub(crate) type Val<'i> = Spanned<DeValue<'i>>;

/// Parses one file's TOML, reporting every syntax error found.
pub(crate) fn parse_file<'i>(
    sink: &mut Sink<'_>,
    file: usize,
    text: &'i str,
) -> Option<DeTable<'i>> {
    let (table, errors) = DeTable::parse_recoverable(text);
    if errors.is_empty() {
        return Some(table.into_inner());
    }
    for e in errors {
        let span = e.span().unwrap_or(0..0);
        sink.error(
            &Loc::new(file, span),
            format!("invalid TOML: {}", e.message()),
        );
    }
    None
}

/// The entries of a table in source order.
pub(crate) fn entries<'t, 'i>(t: &'t DeTable<'i>) -> Vec<(&'t Key<'i>, &'t Val<'i>)> {
    let mut v: Vec<_> = t.iter().collect();
    v.sort_by_key(|(k, _)| k.span().start);
    v
}

pub(crate) fn loc<T>(file: usize, s: &Spanned<T>) -> Loc {
    Loc::new(file, s.span())
}

/// The names of a struct's fields, from its `Deserialize` impl.
pub(crate) fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields = None;
    let _ = T::deserialize(FieldsCapture(&mut fields));
    fields.unwrap_or(&[])
}

struct FieldsCapture<'a>(&'a mut Option<&'static [&'static str]>);

impl<'de> serde::Deserializer<'de> for FieldsCapture<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = Some(fields);
        Err(serde::de::Error::custom("fields captured"))
    }

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _v: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("not a struct"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// What a TOML value is, for "expected X, found Y".
pub(crate) fn kind_of(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// The value as a table, or an error saying what it is instead.
pub(crate) fn as_table<'t, 'i>(
    sink: &mut Sink<'_>,
    file: usize,
    v: &'t Val<'i>,
    what: &str,
) -> Option<&'t DeTable<'i>> {
    match v.get_ref() {
        DeValue::Table(t) => Some(t),
        other => {
            sink.error(
                &loc(file, v),
                format!("expected a table for {what}, found {}", kind_of(other)),
            );
            None
        }
    }
}

/// Deserializes a table section into `T`. Keys in `peel` are taken out and
/// returned untouched; every unknown key is reported (with a did-you-mean
/// hint) and skipped, so the remaining fields are still checked.
pub(crate) fn de_struct<'i, T: DeserializeOwned>(
    sink: &mut Sink<'_>,
    file: usize,
    v: &Val<'i>,
    what: &str,
    peel: &[&str],
) -> (Option<T>, Vec<(Key<'i>, Val<'i>)>) {
    let Some(table) = as_table(sink, file, v, what) else {
        return (None, Vec::new());
    };
    let fields = fields_of::<T>();
    let mut rest = DeTable::new();
    let mut peeled = Vec::new();
    for (k, val) in entries(table) {
        let name = k.get_ref().as_ref();
        if peel.contains(&name) {
            peeled.push((k.clone(), val.clone()));
        } else if fields.contains(&name) {
            rest.insert(k.clone(), val.clone());
        } else {
            let mut expected: Vec<&str> = fields.to_vec();
            expected.extend_from_slice(peel);
            expected.sort_unstable();
            sink.error_hint(
                &loc(file, k),
                format!(
                    "unknown field `{name}` in {what}: expected {}",
                    one_of(&expected)
                ),
                did_you_mean(name, expected.iter().copied()),
            );
        }
    }
    let value = Spanned::new(v.span(), DeValue::Table(rest));
    (de_value(sink, file, value, what), peeled)
}

/// Deserializes any value into `T`, reporting a serde error at its span.
pub(crate) fn de_value<T: DeserializeOwned>(
    sink: &mut Sink<'_>,
    file: usize,
    v: Val<'_>,
    what: &str,
) -> Option<T> {
    let span = v.span();
    match T::deserialize(ValueDeserializer::from(v)) {
        Ok(t) => Some(t),
        Err(e) => {
            let at = Loc::new(file, e.span().unwrap_or(span));
            sink.error(&at, format!("{} in {what}", serde_message(e.message())));
            None
        }
    }
}

/// Rewrites serde's "invalid type: X, expected Y" as "expected Y, found X".
fn serde_message(msg: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: ", "invalid length "] {
        if let Some(rest) = msg.strip_prefix(prefix)
            && let Some((found, expected)) = rest.split_once(", expected ")
        {
            let found = found.replace("floating point", "float");
            return format!("expected {expected}, found {found}");
        }
    }
    msg.to_string()
}

/// Serde structs of the raw layer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClassHead {
    pub tier: Option<Spanned<String>>,
    pub extends: Option<Spanned<String>>,
    pub sim: Option<Spanned<String>>,
    #[allow(
        dead_code,
        reason = "documentation for readers of the model; not compiled"
    )]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PropHead {
    #[serde(rename = "type")]
    pub ty: Option<Spanned<String>>,
    pub unit: Option<Spanned<String>>,
    pub range: Option<Spanned<Vec<Spanned<f64>>>>,
    pub period: Option<Spanned<String>>,
    pub states: Option<Spanned<Vec<Spanned<String>>>>,
    pub default: Option<Spanned<toml::Value>>,
    pub expr: Option<Spanned<String>>,
    #[allow(
        dead_code,
        reason = "documentation for readers of the model; not compiled"
    )]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlarmHead {
    pub name: Spanned<String>,
    pub when: Spanned<String>,
    pub priority: Option<Spanned<String>>,
    pub deadband: Option<Spanned<f64>>,
    pub on_delay: Option<Spanned<String>>,
    pub off_delay: Option<Spanned<String>>,
    pub guidance: Option<String>,
    pub suppress_when_parent: Option<Spanned<String>>,
    #[allow(
        dead_code,
        reason = "documentation for readers of the model; not compiled"
    )]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RollupHead {
    pub expr: Spanned<String>,
    pub unit: Option<Spanned<String>>,
    #[allow(
        dead_code,
        reason = "documentation for readers of the model; not compiled"
    )]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TwinHead {
    pub name: Option<Spanned<String>>,
    pub class: Option<Spanned<String>>,
    pub count: Option<Spanned<i64>>,
    pub start: Option<Spanned<i64>>,
    pub aliases: Option<Vec<Spanned<String>>>,
    pub source: Option<Spanned<String>>,
    #[allow(
        dead_code,
        reason = "documentation for readers of the model; not compiled"
    )]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlarmOverrideHead {
    pub enabled: Option<bool>,
    pub priority: Option<Spanned<String>>,
    pub deadband: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BindingHead {
    pub source: Option<Spanned<String>>,
    pub address: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ModelHead {
    #[serde(rename = "use")]
    pub uses: Option<Vec<Spanned<String>>>,
    #[allow(
        dead_code,
        reason = "documentation for readers of the model; not compiled"
    )]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SettingsHead {
    pub stale_factor: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyHead {
    pub strategy: Option<Spanned<String>>,
    pub max_restarts: Option<Spanned<u32>>,
    pub period: Option<Spanned<String>>,
}

/// A class section as written, before inheritance is resolved.
#[derive(Debug)]
pub(crate) struct RawClass {
    pub file: usize,
    pub name: String,
    pub at: Loc,
    pub head: ClassHead,
    pub props: Vec<RawProp>,
    pub alarms: Vec<RawAlarm>,
    pub rollups: Vec<RawRollup>,
}

#[derive(Debug, Clone)]
pub(crate) struct RawProp {
    pub file: usize,
    pub name: String,
    pub at: Loc,
    pub head: PropHead,
}

#[derive(Debug, Clone)]
pub(crate) struct RawAlarm {
    pub file: usize,
    pub head: AlarmHead,
}

#[derive(Debug, Clone)]
pub(crate) struct RawRollup {
    pub file: usize,
    pub name: String,
    pub at: Loc,
    pub head: RollupHead,
}

/// A twin section (`[enterprise]` or `[twin."path"]`) as written.
#[derive(Debug)]
pub(crate) struct RawTwin {
    pub file: usize,
    /// Path template relative to the enterprise (empty for the enterprise).
    pub key: String,
    pub at: Loc,
    pub head: TwinHead,
    pub params: Vec<RawParam>,
    pub alarms: Vec<RawAlarmOverride>,
    pub bindings: Vec<RawBinding>,
}

#[derive(Debug)]
pub(crate) struct RawParam {
    pub name: String,
    pub at: Loc,
    pub value: Spanned<toml::Value>,
}

#[derive(Debug)]
pub(crate) struct RawAlarmOverride {
    pub name: String,
    pub at: Loc,
    pub head: AlarmOverrideHead,
}

#[derive(Debug)]
pub(crate) struct RawBinding {
    pub prop: String,
    pub at: Loc,
    pub source: Option<Spanned<String>>,
    pub address: Spanned<String>,
}

#[derive(Debug)]
pub(crate) struct RawSource {
    pub name: String,
    pub at: Loc,
    pub kind: Spanned<String>,
    pub config: toml::Table,
    /// Key paths of the table with their spans.
    pub keys: Vec<(String, Loc)>,
}

/// Everything one file declares.
#[derive(Debug, Default)]
pub(crate) struct RawFile {
    pub classes: Vec<RawClass>,
    pub twins: Vec<RawTwin>,
    pub enterprise: Option<RawTwin>,
    pub model: Option<(Loc, ModelHead)>,
    pub settings: Option<(Loc, Settings)>,
    pub sources: Vec<RawSource>,
}

const TOP_LEVEL: &[&str] = &["class", "enterprise", "model", "settings", "source", "twin"];

/// Reads one parsed file into its raw sections.
pub(crate) fn read_file(sink: &mut Sink<'_>, file: usize, root: &DeTable<'_>) -> RawFile {
    let mut out = RawFile::default();
    for (k, v) in entries(root) {
        let key = k.get_ref().as_ref();
        match key {
            "class" => {
                if let Some(t) = as_table(sink, file, v, "`class`") {
                    for (name, body) in entries(t) {
                        if let Some(c) = read_class(sink, file, name, body) {
                            out.classes.push(c);
                        }
                    }
                }
            }
            "twin" => {
                if let Some(t) = as_table(sink, file, v, "`twin`") {
                    for (path, body) in entries(t) {
                        if let Some(tw) = read_twin(sink, file, path, body, false) {
                            out.twins.push(tw);
                        }
                    }
                }
            }
            "enterprise" => out.enterprise = read_twin(sink, file, k, v, true),
            "model" => {
                let (head, _) = de_struct::<ModelHead>(sink, file, v, "`[model]`", &[]);
                out.model = head.map(|h| (loc(file, k), h));
            }
            "settings" => {
                out.settings = Some((loc(file, k), super::settings::read(sink, file, v)));
            }
            "source" => {
                if let Some(t) = as_table(sink, file, v, "`source`") {
                    for (name, body) in entries(t) {
                        if let Some(s) = read_source(sink, file, name, body) {
                            out.sources.push(s);
                        }
                    }
                }
            }
            other => sink.error_hint(
                &loc(file, k),
                format!(
                    "unknown top-level table `{other}`: expected {}",
                    one_of(TOP_LEVEL)
                ),
                did_you_mean(other, TOP_LEVEL.iter().copied()),
            ),
        }
    }
    out
}

fn read_class(
    sink: &mut Sink<'_>,
    file: usize,
    name: &Key<'_>,
    body: &Val<'_>,
) -> Option<RawClass> {
    let class_name = name.get_ref().to_string();
    let at = loc(file, name);
    if !is_class_name(&class_name) {
        sink.error(
            &at,
            format!(
                "class name `{class_name}` is not valid: expected letters, digits and `_`, starting with a letter"
            ),
        );
    }
    let what = format!("class `{class_name}`");
    let (head, peeled) = de_struct::<ClassHead>(
        sink,
        file,
        body,
        &what,
        &["properties", "alarms", "rollups"],
    );
    let mut class = RawClass {
        file,
        name: class_name.clone(),
        at,
        head: head.unwrap_or(ClassHead {
            tier: None,
            extends: None,
            sim: None,
            description: None,
        }),
        props: Vec::new(),
        alarms: Vec::new(),
        rollups: Vec::new(),
    };
    for (k, v) in peeled {
        match k.get_ref().as_ref() {
            "properties" => {
                let what = format!("properties of class `{class_name}`");
                let Some(t) = as_table(sink, file, &v, &what) else {
                    continue;
                };
                for (pk, pv) in entries(t) {
                    let pname = pk.get_ref().to_string();
                    check_ident(sink, &loc(file, pk), &pname, "property");
                    let what = format!("property `{pname}`");
                    if let (Some(head), _) = de_struct::<PropHead>(sink, file, pv, &what, &[]) {
                        class.props.push(RawProp {
                            file,
                            name: pname,
                            at: loc(file, pk),
                            head,
                        });
                    }
                }
            }
            "alarms" => {
                let DeValue::Array(items) = v.get_ref() else {
                    sink.error(
                        &loc(file, &v),
                        format!(
                            "expected an array of tables (`[[class.{class_name}.alarms]]`), found {}",
                            kind_of(v.get_ref())
                        ),
                    );
                    continue;
                };
                for item in items.iter() {
                    let what = format!("an alarm of class `{class_name}`");
                    if let (Some(head), _) = de_struct::<AlarmHead>(sink, file, item, &what, &[]) {
                        class.alarms.push(RawAlarm { file, head });
                    }
                }
            }
            _ => {
                let what = format!("roll-ups of class `{class_name}`");
                let Some(t) = as_table(sink, file, &v, &what) else {
                    continue;
                };
                for (rk, rv) in entries(t) {
                    let rname = rk.get_ref().to_string();
                    check_ident(sink, &loc(file, rk), &rname, "roll-up");
                    let head = match rv.get_ref() {
                        DeValue::String(s) => Some(RollupHead {
                            expr: Spanned::new(rv.span(), s.to_string()),
                            unit: None,
                            description: None,
                        }),
                        _ => {
                            let what = format!("roll-up `{rname}`");
                            de_struct::<RollupHead>(sink, file, rv, &what, &[]).0
                        }
                    };
                    if let Some(head) = head {
                        class.rollups.push(RawRollup {
                            file,
                            name: rname,
                            at: loc(file, rk),
                            head,
                        });
                    }
                }
            }
        }
    }
    Some(class)
}

fn read_twin(
    sink: &mut Sink<'_>,
    file: usize,
    key: &Key<'_>,
    body: &Val<'_>,
    root: bool,
) -> Option<RawTwin> {
    let path = key.get_ref().to_string();
    let what = if root {
        "`[enterprise]`".to_string()
    } else {
        format!("twin `{path}`")
    };
    let (head, peeled) =
        de_struct::<TwinHead>(sink, file, body, &what, &["params", "alarms", "bindings"]);
    let head = head?;
    let mut twin = RawTwin {
        file,
        key: if root { String::new() } else { path.clone() },
        at: loc(file, key),
        head,
        params: Vec::new(),
        alarms: Vec::new(),
        bindings: Vec::new(),
    };
    for (k, v) in peeled {
        let section = k.get_ref().to_string();
        let what = format!("`{section}` of {what}");
        let Some(t) = as_table(sink, file, &v, &what) else {
            continue;
        };
        for (ek, ev) in entries(t) {
            let name = ek.get_ref().to_string();
            let at = loc(file, ek);
            match section.as_str() {
                "params" => {
                    let what = format!("parameter `{name}`");
                    if let Some(value) =
                        de_value::<Spanned<toml::Value>>(sink, file, ev.clone(), &what)
                    {
                        twin.params.push(RawParam { name, at, value });
                    }
                }
                "alarms" => {
                    let what = format!("override of alarm `{name}`");
                    if let (Some(head), _) =
                        de_struct::<AlarmOverrideHead>(sink, file, ev, &what, &[])
                    {
                        twin.alarms.push(RawAlarmOverride { name, at, head });
                    }
                }
                _ => match ev.get_ref() {
                    DeValue::String(s) => twin.bindings.push(RawBinding {
                        prop: name,
                        at,
                        source: None,
                        address: Spanned::new(ev.span(), s.to_string()),
                    }),
                    _ => {
                        let what = format!("binding of `{name}`");
                        if let (Some(b), _) = de_struct::<BindingHead>(sink, file, ev, &what, &[]) {
                            twin.bindings.push(RawBinding {
                                prop: name,
                                at,
                                source: b.source,
                                address: b.address,
                            });
                        }
                    }
                },
            }
        }
    }
    Some(twin)
}

fn read_source(
    sink: &mut Sink<'_>,
    file: usize,
    name: &Key<'_>,
    body: &Val<'_>,
) -> Option<RawSource> {
    let sname = name.get_ref().to_string();
    let what = format!("source `{sname}`");
    let t = as_table(sink, file, body, &what)?;
    let Some((_, kind)) = t.iter().find(|(k, _)| k.get_ref() == "kind") else {
        sink.error_hint(
            &loc(file, name),
            format!("missing field `kind` in {what}"),
            Some(
                "set `kind` to the adapter that reads the source, like `kind = \"modbus\"`".into(),
            ),
        );
        return None;
    };
    let kind = de_value::<Spanned<String>>(sink, file, kind.clone(), &what)?;
    // Which kinds exist is the runtime's registry's business: `twinrt
    // check` reports an unknown kind there, at this span.
    if !is_ident(kind.get_ref()) {
        sink.error(
            &loc(file, &kind),
            format!(
                "source kind `{}` is not valid: expected letters, digits and `_`",
                kind.get_ref()
            ),
        );
        return None;
    }
    let mut keys = Vec::new();
    collect_keys(file, t, &mut String::new(), &mut keys);
    let mut config = de_value::<toml::Table>(sink, file, body.clone(), &what)?;
    config.remove("kind");
    Some(RawSource {
        name: sname,
        at: loc(file, name),
        kind,
        config,
        keys,
    })
}

/// Every key path of a table (`endpoints.0.timeout`) with the span of its
/// key, or of the element for list items.
fn collect_keys(file: usize, t: &DeTable<'_>, prefix: &mut String, out: &mut Vec<(String, Loc)>) {
    for (k, v) in t.iter() {
        let len = prefix.len();
        if !prefix.is_empty() {
            prefix.push('.');
        }
        prefix.push_str(k.get_ref());
        out.push((prefix.clone(), loc(file, k)));
        collect_value(file, v, prefix, out);
        prefix.truncate(len);
    }
}

fn collect_value(file: usize, v: &Val<'_>, prefix: &mut String, out: &mut Vec<(String, Loc)>) {
    match v.get_ref() {
        DeValue::Table(t) => collect_keys(file, t, prefix, out),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = prefix.len();
                prefix.push_str(&format!(".{i}"));
                out.push((prefix.clone(), loc(file, item)));
                collect_value(file, item, prefix, out);
                prefix.truncate(len);
            }
        }
        _ => {}
    }
}

pub(crate) fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_class_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphabetic()) && is_ident(s)
}

fn check_ident(sink: &mut Sink<'_>, at: &Loc, name: &str, what: &str) {
    if !is_ident(name) {
        sink.error(
            at,
            format!(
                "{what} name `{name}` is not valid: expected letters, digits and `_`, starting with a letter or `_`"
            ),
        );
    }
}

/// Maps a byte range inside a string value's contents to a byte range in
/// the file, given the span of the whole literal (quotes included).
/// Escapes in basic strings are decoded on the way (best effort).
pub(crate) fn inner_span(text: &str, lit: &Range<usize>, sub: &Range<usize>) -> Range<usize> {
    let Some(raw) = text.get(lit.clone()) else {
        return lit.clone();
    };
    let (delim, basic) = if raw.starts_with("\"\"\"") {
        (3, true)
    } else if raw.starts_with("'''") {
        (3, false)
    } else if raw.starts_with('"') {
        (1, true)
    } else if raw.starts_with('\'') {
        (1, false)
    } else {
        let s = (lit.start + sub.start).min(lit.end);
        return s..(lit.start + sub.end).min(lit.end).max(s);
    };
    let mut pos = delim;
    if delim == 3 {
        if raw[pos..].starts_with("\r\n") {
            pos += 2;
        } else if raw[pos..].starts_with('\n') {
            pos += 1;
        }
    }
    let mut content_end = raw.len().saturating_sub(delim).max(pos);
    while !raw.is_char_boundary(content_end) {
        content_end += 1;
    }
    let mut decoded = 0usize;
    let mut start = None;
    let mut end = None;
    let bytes = raw.as_bytes();
    while pos < content_end {
        if start.is_none() && decoded >= sub.start {
            start = Some(pos);
        }
        if decoded >= sub.end {
            end = Some(pos);
            break;
        }
        let c = raw[pos..].chars().next().unwrap_or(' ');
        if basic && c == '\\' && pos + 1 < content_end {
            let e = bytes[pos + 1];
            let (raw_len, dec_len) = match e {
                b'u' => (6, decoded_len(raw.get(pos + 2..(pos + 6).min(content_end)))),
                b'U' => (
                    10,
                    decoded_len(raw.get(pos + 2..(pos + 10).min(content_end))),
                ),
                b'x' => (4, decoded_len(raw.get(pos + 2..(pos + 4).min(content_end)))),
                b'\n' | b'\r' | b' ' | b'\t' => {
                    let skip = raw[pos + 1..content_end]
                        .find(|ch: char| !ch.is_whitespace())
                        .map_or(content_end - pos, |i| i + 1);
                    (skip, 0)
                }
                _ => (2, 1),
            };
            pos = (pos + raw_len).min(content_end);
            while !raw.is_char_boundary(pos) {
                pos += 1;
            }
            decoded += dec_len;
        } else {
            pos += c.len_utf8();
            decoded += c.len_utf8();
        }
    }
    let start = start.unwrap_or(pos);
    let end = end.unwrap_or(pos).max(start);
    (lit.start + start)..(lit.start + end)
}

fn decoded_len(hex: Option<&str>) -> usize {
    hex.and_then(|h| u32::from_str_radix(h, 16).ok())
        .and_then(char::from_u32)
        .map_or(1, char::len_utf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_struct_fields() {
        let f = fields_of::<AlarmOverrideHead>();
        assert_eq!(f, &["enabled", "priority", "deadband"]);
        assert!(fields_of::<PropHead>().contains(&"type"));
    }

    #[test]
    fn maps_offsets_through_quotes_and_escapes() {
        let text = r#"when = "a \"b\" > 3""#;
        let lit = 7..text.len();
        // decoded: a "b" > 3 ; `>` is at decoded offset 6
        let r = inner_span(text, &lit, &(6..7));
        assert_eq!(&text[r], ">");
        let text = "when = 'flow > 3'";
        let r = inner_span(text, &(7..text.len()), &(0..4));
        assert_eq!(&text[r], "flow");
        let text = "when = \"\"\"\nflow > 3\"\"\"";
        let r = inner_span(text, &(7..text.len()), &(7..8));
        assert_eq!(&text[r], "3");
    }

    #[test]
    fn survives_escapes_before_multibyte_text() {
        let text = "x = \"\\ué€é a\"";
        let lit = 4..text.len();
        for a in 0..12 {
            let r = inner_span(text, &lit, &(a..a + 1));
            assert!(text.is_char_boundary(r.start) && text.is_char_boundary(r.end));
        }
    }

    #[test]
    fn rewrites_serde_type_errors() {
        assert_eq!(
            serde_message("invalid type: string \"x\", expected f64"),
            "expected f64, found string \"x\""
        );
    }
}
