//! Topic templates: MQTT topic filters with named one-level captures.
//!
//! A template such as `plant/{site}/{line}/+/{device}/telemetry` is a topic
//! filter in which `{name}` matches exactly one level (like `+`) and records
//! it. [`TopicTemplate::to_filter`] gives the filter to subscribe with,
//! [`TopicTemplate::match_topic`] checks a received topic and returns the
//! captures, and [`TopicTemplate::fill`] builds a topic or a twin path (a
//! template without wildcards, e.g. `acme/{site}/{line}/{device}`) from them.

use std::collections::BTreeMap;
use std::fmt;

/// One level of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    /// Matches this text exactly.
    Literal(String),
    /// `{name}`: matches any one level and captures it.
    Named(String),
    /// `+`: matches any one level.
    Plus,
    /// `#`: matches this and all remaining levels, including none.
    Hash,
}

/// A parsed topic template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTemplate {
    text: String,
    levels: Vec<Level>,
}

/// Named levels captured from a topic, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captures(BTreeMap<String, String>);

impl Captures {
    pub fn new() -> Self {
        Self::default()
    }

    /// The level captured as `name`, if any.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Sets the value of `name`, returning the previous one.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) -> Option<String> {
        self.0.insert(name.into(), value.into())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Captures in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Why a template is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("template is empty: expected at least one topic level")]
    Empty,
    #[error("template `{template}`: level {level} is empty: expected text, `+`, `#` or `{{name}}`")]
    EmptyLevel { template: String, level: usize },
    #[error("template `{template}`: `#` is level {level}: expected it only as the last level")]
    HashNotLast { template: String, level: usize },
    #[error(
        "template `{template}`: capture `{name}` appears more than once: expected unique names"
    )]
    DuplicateName { template: String, name: String },
    #[error(
        "template `{template}`: level {level} `{found}`: expected `+`, `#`, `{{name}}` with name of letters, digits and `_`, or text without `+`, `#`, `{{`, `}}` and NUL"
    )]
    BadLevel {
        template: String,
        level: usize,
        found: String,
    },
}

/// Why a template could not be filled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FillError {
    #[error(
        "template `{template}`: level {level} is a wildcard: expected only text and `{{name}}` levels to fill"
    )]
    Wildcard { template: String, level: usize },
    #[error("template `{template}`: no capture `{name}`: expected one of [{available}]")]
    MissingCapture {
        template: String,
        name: String,
        available: String,
    },
    #[error(
        "template `{template}`: capture `{name}` is `{value}`: expected a non-empty level without `/`, `+`, `#` and NUL"
    )]
    BadValue {
        template: String,
        name: String,
        value: String,
    },
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `s` may stand as one level of a topic name (not a filter).
fn is_topic_level(s: &str) -> bool {
    !s.is_empty() && !s.contains(['/', '+', '#', '\0'])
}

impl TopicTemplate {
    /// Parses a template. Levels are separated by `/`; each is text, `+`,
    /// `#` (last level only) or `{name}`.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        if text.is_empty() {
            return Err(TemplateError::Empty);
        }
        let parts: Vec<&str> = text.split('/').collect();
        let mut levels = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let level = i + 1;
            let bad = || TemplateError::BadLevel {
                template: text.to_owned(),
                level,
                found: (*part).to_owned(),
            };
            let parsed = match *part {
                "" => {
                    return Err(TemplateError::EmptyLevel {
                        template: text.to_owned(),
                        level,
                    });
                }
                "+" => Level::Plus,
                "#" => {
                    if i + 1 != parts.len() {
                        return Err(TemplateError::HashNotLast {
                            template: text.to_owned(),
                            level,
                        });
                    }
                    Level::Hash
                }
                p => match p.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
                    Some(name) if is_name(name) => {
                        if levels.contains(&Level::Named(name.to_owned())) {
                            return Err(TemplateError::DuplicateName {
                                template: text.to_owned(),
                                name: name.to_owned(),
                            });
                        }
                        Level::Named(name.to_owned())
                    }
                    Some(_) => return Err(bad()),
                    None if p.contains(['+', '#', '{', '}', '\0']) => return Err(bad()),
                    None => Level::Literal(p.to_owned()),
                },
            };
            levels.push(parsed);
        }
        Ok(Self {
            text: text.to_owned(),
            levels,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Names of the captures, in level order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.levels.iter().filter_map(|l| match l {
            Level::Named(n) => Some(n.as_str()),
            _ => None,
        })
    }

    /// Whether the template has `+`, `#` or a named level (so it is a filter
    /// rather than one topic).
    pub fn has_wildcards(&self) -> bool {
        self.levels.iter().any(|l| !matches!(l, Level::Literal(_)))
    }

    /// The MQTT subscription filter: named levels become `+`.
    pub fn to_filter(&self) -> String {
        let parts: Vec<&str> = self
            .levels
            .iter()
            .map(|l| match l {
                Level::Literal(s) => s.as_str(),
                Level::Named(_) | Level::Plus => "+",
                Level::Hash => "#",
            })
            .collect();
        parts.join("/")
    }

    /// Matches a received topic name against the template, returning the
    /// named captures. Per the MQTT specification (4.7.2), a topic whose
    /// first level starts with `$` does not match a leading wildcard.
    pub fn match_topic(&self, topic: &str) -> Option<Captures> {
        if topic.is_empty() {
            return None;
        }
        let mut captures = Captures::new();
        let mut parts = topic.split('/');
        for (i, level) in self.levels.iter().enumerate() {
            if i == 0 && topic.starts_with('$') && !matches!(level, Level::Literal(_)) {
                return None;
            }
            match level {
                Level::Hash => return Some(captures),
                Level::Literal(s) => {
                    if parts.next()? != s {
                        return None;
                    }
                }
                Level::Plus => {
                    parts.next()?;
                }
                Level::Named(name) => {
                    let part = parts.next()?;
                    captures.insert(name.clone(), part);
                }
            }
        }
        parts.next().is_none().then_some(captures)
    }

    /// Fills the named levels from `captures`. The template must have no
    /// `+` or `#`; every value must be a non-empty topic level.
    pub fn fill(&self, captures: &Captures) -> Result<String, FillError> {
        let mut out = String::with_capacity(self.text.len());
        for (i, level) in self.levels.iter().enumerate() {
            if i > 0 {
                out.push('/');
            }
            match level {
                Level::Literal(s) => out.push_str(s),
                Level::Plus | Level::Hash => {
                    return Err(FillError::Wildcard {
                        template: self.text.clone(),
                        level: i + 1,
                    });
                }
                Level::Named(name) => {
                    let value = captures
                        .get(name)
                        .ok_or_else(|| FillError::MissingCapture {
                            template: self.text.clone(),
                            name: name.clone(),
                            available: captures
                                .iter()
                                .map(|(k, _)| k)
                                .collect::<Vec<_>>()
                                .join(", "),
                        })?;
                    if !is_topic_level(value) {
                        return Err(FillError::BadValue {
                            template: self.text.clone(),
                            name: name.clone(),
                            value: value.to_owned(),
                        });
                    }
                    out.push_str(value);
                }
            }
        }
        Ok(out)
    }
}

impl fmt::Display for TopicTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: &str) -> TopicTemplate {
        TopicTemplate::parse(s).expect("valid template")
    }

    fn caps(pairs: &[(&str, &str)]) -> Captures {
        let mut c = Captures::new();
        for (k, v) in pairs {
            c.insert(*k, *v);
        }
        c
    }

    #[test]
    fn filter_replaces_names_with_plus() {
        let tpl = t("plant/{site}/{line}/+/{device}/telemetry");
        assert_eq!(tpl.to_filter(), "plant/+/+/+/+/telemetry");
        assert_eq!(tpl.names().collect::<Vec<_>>(), ["site", "line", "device"]);
        assert_eq!(t("a/#").to_filter(), "a/#");
        assert!(!t("a/b").has_wildcards());
        assert!(t("a/{b}").has_wildcards());
    }

    #[test]
    fn matches_and_captures() {
        let tpl = t("plant/{site}/{line}/+/{device}/telemetry");
        let got = tpl.match_topic("plant/s1/l2/x/pump7/telemetry");
        assert_eq!(
            got,
            Some(caps(&[("site", "s1"), ("line", "l2"), ("device", "pump7")]))
        );
    }

    #[test]
    fn non_matching_topics() {
        let tpl = t("plant/{site}/{line}/+/{device}/telemetry");
        for topic in [
            "plant/s1/l2/x/pump7/status",
            "plant/s1/l2/x/pump7",
            "plant/s1/l2/x/pump7/telemetry/extra",
            "factory/s1/l2/x/pump7/telemetry",
            "",
        ] {
            assert_eq!(tpl.match_topic(topic), None, "{topic}");
        }
    }

    #[test]
    fn hash_matches_zero_or_more_levels() {
        let tpl = t("a/{b}/#");
        assert_eq!(tpl.match_topic("a/x"), Some(caps(&[("b", "x")])));
        assert_eq!(tpl.match_topic("a/x/y/z"), Some(caps(&[("b", "x")])));
        assert_eq!(tpl.match_topic("a"), None);
        assert!(t("#").match_topic("anything/at/all").is_some());
    }

    #[test]
    fn empty_levels_in_topics_match_plus() {
        // MQTT allows empty levels in topic names; `+` matches them.
        assert_eq!(t("a/+/c").match_topic("a//c"), Some(Captures::new()));
        assert_eq!(t("a/{x}").match_topic("a/"), Some(caps(&[("x", "")])));
    }

    #[test]
    fn dollar_topics_never_match_a_leading_wildcard() {
        assert_eq!(t("#").match_topic("$SYS/broker/uptime"), None);
        assert_eq!(t("+/broker/uptime").match_topic("$SYS/broker/uptime"), None);
        assert_eq!(t("{x}/broker/#").match_topic("$SYS/broker/uptime"), None);
        assert!(t("$SYS/#").match_topic("$SYS/broker/uptime").is_some());
        // Only the first level is special.
        assert!(t("a/+").match_topic("a/$b").is_some());
    }

    #[test]
    fn parse_errors() {
        assert_eq!(TopicTemplate::parse(""), Err(TemplateError::Empty));
        assert_eq!(
            TopicTemplate::parse("a//b").map_err(|e| e.to_string()),
            Err("template `a//b`: level 2 is empty: expected text, `+`, `#` or `{name}`".into())
        );
        assert_eq!(
            TopicTemplate::parse("a/#/b").map_err(|e| e.to_string()),
            Err("template `a/#/b`: `#` is level 2: expected it only as the last level".into())
        );
        assert_eq!(
            TopicTemplate::parse("{x}/b/{x}").map_err(|e| e.to_string()),
            Err(
                "template `{x}/b/{x}`: capture `x` appears more than once: expected unique names"
                    .into()
            )
        );
        for bad in [
            "a+/b", "a/b#", "a/{x", "a/x}", "a/{}", "a/{x-y}", "a/{x}y", "a/\0",
        ] {
            assert!(
                matches!(
                    TopicTemplate::parse(bad),
                    Err(TemplateError::BadLevel { .. })
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            TopicTemplate::parse("a/{x y}").map_err(|e| e.to_string()),
            Err("template `a/{x y}`: level 2 `{x y}`: expected `+`, `#`, `{name}` with name of letters, digits and `_`, or text without `+`, `#`, `{`, `}` and NUL".into())
        );
    }

    #[test]
    fn fill_twin_path() {
        let path = t("acme/{site}/{line}/{device}");
        let c = caps(&[
            ("site", "s1"),
            ("line", "l2"),
            ("device", "pump7"),
            ("extra", "x"),
        ]);
        assert_eq!(path.fill(&c).as_deref(), Ok("acme/s1/l2/pump7"));
    }

    #[test]
    fn fill_errors() {
        assert_eq!(
            t("a/+/{x}").fill(&caps(&[("x", "1")])).map_err(|e| e.to_string()),
            Err("template `a/+/{x}`: level 2 is a wildcard: expected only text and `{name}` levels to fill".into())
        );
        assert_eq!(
            t("a/{x}/{y}")
                .fill(&caps(&[("x", "1"), ("z", "2")]))
                .map_err(|e| e.to_string()),
            Err("template `a/{x}/{y}`: no capture `y`: expected one of [x, z]".into())
        );
        for value in ["", "a/b", "+", "#", "a\0"] {
            assert!(
                matches!(
                    t("a/{x}").fill(&caps(&[("x", value)])),
                    Err(FillError::BadValue { .. })
                ),
                "{value:?}"
            );
        }
    }

    #[derive(Debug, Clone)]
    enum Gen {
        Lit(String),
        Named,
    }

    fn template_strategy() -> impl Strategy<Value = Vec<Gen>> {
        prop::collection::vec(
            prop_oneof!["[a-z0-9_.-]{1,6}".prop_map(Gen::Lit), Just(Gen::Named),],
            1..8,
        )
    }

    proptest! {
        #[test]
        fn fill_then_match_gives_the_captures_back(
            shape in template_strategy(),
            values in prop::collection::vec("[A-Za-z0-9_.:$ -]{1,10}", 8),
        ) {
            let mut text = Vec::new();
            let mut expected = Captures::new();
            for (i, g) in shape.iter().enumerate() {
                match g {
                    Gen::Lit(s) => text.push(s.clone()),
                    Gen::Named => {
                        let name = format!("n{i}");
                        text.push(format!("{{{name}}}"));
                        // A leading `$` level cannot match a leading wildcard (MQTT 4.7.2).
                        let v = if i == 0 { values[i].trim_start_matches('$') } else { values[i].as_str() };
                        let v = if v.is_empty() { "v" } else { v };
                        expected.insert(name, v);
                    }
                }
            }
            let tpl = TopicTemplate::parse(&text.join("/")).expect("generated template is valid");
            let topic = tpl.fill(&expected).expect("generated captures are valid");
            prop_assert_eq!(tpl.match_topic(&topic), Some(expected.clone()));
            // The filter accepts the topic too.
            let filter = TopicTemplate::parse(&tpl.to_filter()).expect("filter is a template");
            prop_assert_eq!(filter.match_topic(&topic), Some(Captures::new()));
        }
    }
}
