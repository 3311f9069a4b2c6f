//! `[settings]` of the topology and durations (`"5ms"`, `"1s"`, `"2m"`, `"1h"`).

use std::time::Duration;

use toml::Spanned;
use toml::de::DeValue;

use super::diag::{Sink, did_you_mean, one_of};
use super::raw::{
    PolicyHead, SettingsHead, Val, as_table, de_struct, de_value, entries, kind_of, loc,
};
use super::types::{RestartStrategy, Settings, SupervisionPolicy, Tier};

const CONTAINER_TIERS: &[&str] = &["enterprise", "region", "plant", "line"];
const POLICY_FIELDS: &[&str] = &["strategy", "max_restarts", "period"];
const STRATEGIES: &[&str] = &["one_for_one", "temporary"];

/// Parses a duration: a number and a unit among `us`, `ms`, `s`, `m`, `h`, `d`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return None;
    }
    let value: f64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "us" | "µs" => value / 1e6,
        "ms" => value / 1e3,
        "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86400.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(secs).ok()
}

/// A duration from a spanned string, reporting a located error if it is not one.
pub(crate) fn duration(
    sink: &mut Sink<'_>,
    file: usize,
    s: &Spanned<String>,
    what: &str,
) -> Option<Duration> {
    let d = parse_duration(s.get_ref());
    if d.is_none() {
        sink.error_hint(
            &loc(file, s),
            format!(
                "invalid duration `{}` for {what}: expected a number followed by `ms`, `s`, `m` or `h`",
                s.get_ref()
            ),
            Some("write durations like \"500ms\", \"1s\", \"2m\" or \"1h\"".into()),
        );
    }
    d
}

fn tier_of(name: &str) -> Option<Tier> {
    Tier::ALL.into_iter().find(|t| t.name() == name)
}

/// Reads `[settings]`; problems are reported and defaults kept.
pub(crate) fn read(sink: &mut Sink<'_>, file: usize, v: &Val<'_>) -> Settings {
    let mut settings = Settings::default();
    let (head, peeled) = de_struct::<SettingsHead>(
        sink,
        file,
        v,
        "`[settings]`",
        &["publish_interval", "supervision"],
    );
    if let Some(f) = head.and_then(|h| h.stale_factor) {
        if *f.get_ref() >= 1.0 && f.get_ref().is_finite() {
            settings.stale_factor = *f.get_ref();
        } else {
            sink.error(
                &loc(file, &f),
                format!(
                    "expected a `stale_factor` of at least 1, found {}",
                    f.get_ref()
                ),
            );
        }
    }
    for (k, v) in peeled {
        if k.get_ref() == "publish_interval" {
            read_publish(sink, file, &v, &mut settings);
        } else {
            read_supervision(sink, file, &v, &mut settings);
        }
    }
    settings
}

fn read_publish(sink: &mut Sink<'_>, file: usize, v: &Val<'_>, settings: &mut Settings) {
    let what = "`publish_interval`";
    if let DeValue::String(_) = v.get_ref() {
        if let Some(s) = de_value::<Spanned<String>>(sink, file, v.clone(), what)
            && let Some(d) = positive(sink, file, &s, what)
        {
            settings.publish_interval = super::types::TierMap::splat(d);
        }
        return;
    }
    let Some(t) = as_table(sink, file, v, what) else {
        return;
    };
    for (k, tv) in entries(t) {
        let Some(tier) = container_tier(sink, file, k, "publish_interval") else {
            continue;
        };
        let what = format!("`publish_interval.{}`", tier.name());
        if let Some(s) = de_value::<Spanned<String>>(sink, file, tv.clone(), &what)
            && let Some(d) = positive(sink, file, &s, &what)
        {
            settings.publish_interval.set(tier, d);
        }
    }
}

fn positive(sink: &mut Sink<'_>, file: usize, s: &Spanned<String>, what: &str) -> Option<Duration> {
    let d = duration(sink, file, s, what)?;
    if d.is_zero() {
        sink.error(
            &loc(file, s),
            format!(
                "expected a positive duration for {what}, found `{}`",
                s.get_ref()
            ),
        );
        return None;
    }
    Some(d)
}

fn container_tier(
    sink: &mut Sink<'_>,
    file: usize,
    k: &super::raw::Key<'_>,
    section: &str,
) -> Option<Tier> {
    let name = k.get_ref().as_ref();
    match tier_of(name) {
        Some(t) if t != Tier::Device => Some(t),
        Some(_) => {
            sink.error(
                &loc(file, k),
                format!(
                    "`{section}.device` has no effect: devices have no children; expected {}",
                    one_of(CONTAINER_TIERS)
                ),
            );
            None
        }
        None => {
            sink.error_hint(
                &loc(file, k),
                format!(
                    "unknown tier `{name}` in `{section}`: expected {}",
                    one_of(CONTAINER_TIERS)
                ),
                did_you_mean(name, CONTAINER_TIERS.iter().copied()),
            );
            None
        }
    }
}

fn read_supervision(sink: &mut Sink<'_>, file: usize, v: &Val<'_>, settings: &mut Settings) {
    let Some(t) = as_table(sink, file, v, "`supervision`") else {
        return;
    };
    // Keys `strategy`, `max_restarts`, `period` set every tier; tier tables override.
    let mut base = toml::de::DeTable::new();
    let mut tiers = Vec::new();
    for (k, tv) in entries(t) {
        if POLICY_FIELDS.contains(&k.get_ref().as_ref()) {
            base.insert(k.clone(), tv.clone());
        } else {
            tiers.push((k, tv));
        }
    }
    if !base.is_empty() {
        let v = Spanned::new(v.span(), DeValue::Table(base));
        let p = read_policy(
            sink,
            file,
            &v,
            SupervisionPolicy::default(),
            "`supervision`",
        );
        settings.supervision = super::types::TierMap::splat(p);
    }
    for (k, tv) in tiers {
        let name = k.get_ref().as_ref();
        if tier_of(name).is_none() && !matches!(tv.get_ref(), DeValue::Table(_)) {
            let mut expected = POLICY_FIELDS.to_vec();
            expected.extend_from_slice(CONTAINER_TIERS);
            sink.error_hint(
                &loc(file, k),
                format!(
                    "unknown field `{name}` in `supervision`: expected {}",
                    one_of(&expected)
                ),
                did_you_mean(name, expected.iter().copied()),
            );
            continue;
        }
        let Some(tier) = container_tier(sink, file, k, "supervision") else {
            continue;
        };
        if !matches!(tv.get_ref(), DeValue::Table(_)) {
            sink.error(
                &loc(file, tv),
                format!(
                    "expected a table for `supervision.{name}`, found {}",
                    kind_of(tv.get_ref())
                ),
            );
            continue;
        }
        let what = format!("`supervision.{name}`");
        let p = read_policy(sink, file, tv, settings.supervision.get(tier), &what);
        settings.supervision.set(tier, p);
    }
}

fn read_policy(
    sink: &mut Sink<'_>,
    file: usize,
    v: &Val<'_>,
    mut policy: SupervisionPolicy,
    what: &str,
) -> SupervisionPolicy {
    let (Some(head), _) = de_struct::<PolicyHead>(sink, file, v, what, &[]) else {
        return policy;
    };
    if let Some(s) = head.strategy {
        match s.get_ref().as_str() {
            "one_for_one" => policy.strategy = RestartStrategy::OneForOne,
            "temporary" => policy.strategy = RestartStrategy::Temporary,
            other => sink.error_hint(
                &loc(file, &s),
                format!(
                    "unknown restart strategy `{other}`: expected {}",
                    one_of(STRATEGIES)
                ),
                did_you_mean(other, STRATEGIES.iter().copied()),
            ),
        }
    }
    if let Some(m) = head.max_restarts {
        policy.max_restarts = *m.get_ref();
    }
    if let Some(p) = head.period
        && let Some(d) = positive(sink, file, &p, &format!("{what} period"))
    {
        policy.period = d;
    }
    policy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("5ms"), Some(Duration::from_millis(5)));
        assert_eq!(parse_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Some(Duration::from_micros(250)));
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
        for bad in ["", "5", "s", "5 sec", "-1s", "1.s", ".5s", "1e3s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
