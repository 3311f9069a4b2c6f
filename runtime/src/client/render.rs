//! The client's tables: pure functions of the API's answers and the time
//! they are shown at.

use std::fmt::Write as _;

use serde_json::Value as Json;
use twins::Timestamp;

use super::{Alarm, Contributors, History, Twin};

/// The wall clock, as the node stamps its times.
pub fn now() -> Timestamp {
    let us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    Timestamp::from_micros(us)
}

/// Columns of text, padded to their widest cell; `right` lists the columns
/// aligned right (numbers). The last column is not padded.
pub fn table(headers: &[&str], rows: &[Vec<String>], right: &[usize]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            if i > 0 {
                line.push_str("  ");
            }
            if right.contains(&i) {
                let _ = write!(line, "{cell:>w$}");
            } else if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A number as people read it: no trailing zeros, three decimals at most.
pub fn number(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    if x != 0.0 && (x.abs() >= 1e9 || x.abs() < 1e-3) {
        return format!("{x:.3e}");
    }
    let s = format!("{x:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// A property value: numbers via [`number`], `-` for none.
pub fn value(v: &Json) -> String {
    match v {
        Json::Null => "-".into(),
        Json::Number(n) => n.as_f64().map_or_else(|| n.to_string(), number),
        Json::String(s) => s.clone(),
        Json::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// `good`, or `bad (comm_failure)`.
pub fn quality(q: &str, reason: Option<&str>) -> String {
    match reason {
        Some(r) if q != "good" => format!("{q} ({r})"),
        _ => q.to_string(),
    }
}

/// A duration in the largest unit that fits: `0.4s`, `12s`, `5m`, `3h`, `2d`.
pub fn span(us: i64) -> String {
    let s = us.max(0) as f64 / 1e6;
    if s < 10.0 {
        format!("{s:.1}s")
    } else if s < 120.0 {
        format!("{s:.0}s")
    } else if s < 7200.0 {
        format!("{:.0}m", s / 60.0)
    } else if s < 172_800.0 {
        format!("{:.0}h", s / 3600.0)
    } else {
        format!("{:.0}d", s / 86_400.0)
    }
}

/// How long ago `ts` (RFC 3339) was: `12s ago`; the time itself when it is
/// more than a day ago or cannot be read, `-` for the epoch (never set).
pub fn ago(ts: &str, now: Timestamp) -> String {
    match crate::http::timeparse::parse_time(ts, now) {
        Ok(t) if t.as_micros() <= 0 => "-".into(),
        Ok(t) if now.as_micros() - t.as_micros() <= 86_400_000_000 => {
            format!("{} ago", span(now.as_micros() - t.as_micros()))
        }
        _ => ts.to_string(),
    }
}

/// `5/6 good`, with the uncertain and bad ones when there are.
pub fn contributors(c: &Contributors) -> String {
    let mut s = format!("{}/{} good", c.good, c.total);
    if c.uncertain > 0 {
        let _ = write!(s, ", {} uncertain", c.uncertain);
    }
    if c.bad > 0 {
        let _ = write!(s, ", {} bad", c.bad);
    }
    s
}

/// `text` cut to `max` characters, with `…` where it was cut.
pub fn shorten(text: &str, max: usize) -> String {
    let text = text.split('\n').next().unwrap_or("").trim();
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// The table of `twinrt get`.
pub fn twin(t: &Twin, now: Timestamp) -> String {
    let mut out = format!("{}  {} ({})  seq {}\n\n", t.path, t.class, t.tier, t.seq);
    let rows: Vec<Vec<String>> = t
        .properties
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                value(&p.value),
                p.unit.clone().unwrap_or_default(),
                quality(&p.quality, p.reason.as_deref()),
                ago(&p.ts, now),
                p.contributors
                    .as_ref()
                    .map(contributors)
                    .unwrap_or_default(),
            ]
        })
        .collect();
    if rows.is_empty() {
        out.push_str("no properties\n");
    } else {
        out.push_str(&table(
            &[
                "PROPERTY",
                "VALUE",
                "UNIT",
                "QUALITY",
                "AGE",
                "CONTRIBUTORS",
            ],
            &rows,
            &[1],
        ));
    }
    out.push('\n');
    let sum = t.alarm_summary;
    let _ = writeln!(
        out,
        "ALARMS  {} here; in the subtree {} active, {} unacked (urgent {}, high {}, medium {}, low {} active)",
        t.alarms.len(),
        sum.active.total(),
        sum.unacked.total(),
        sum.active.urgent,
        sum.active.high,
        sum.active.medium,
        sum.active.low,
    );
    if !t.alarms.is_empty() {
        out.push_str(&alarms(&t.alarms, now, false));
    }
    out.push('\n');
    let _ = writeln!(out, "CHILDREN  {}", t.children.len());
    for c in &t.children {
        let _ = writeln!(out, "  {c}");
    }
    out
}

/// An alarm table, with the twin column or without (one twin's alarms).
pub fn alarms(list: &[Alarm], now: Timestamp, with_twin: bool) -> String {
    if list.is_empty() {
        return "no alarms\n".into();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|a| {
            let mode = match &a.shelved_until {
                Some(u) => format!("{} until {}", a.mode, short_time(u)),
                None => a.mode.clone(),
            };
            let mut row = vec![a.priority.clone(), a.state.clone(), mode];
            if with_twin {
                row.push(a.twin.clone());
            }
            row.extend([a.name.clone(), ago(&a.since, now), shorten(&a.guidance, 48)]);
            row
        })
        .collect();
    let mut headers = vec!["PRIORITY", "STATE", "MODE"];
    if with_twin {
        headers.push("TWIN");
    }
    headers.extend(["ALARM", "SINCE", "GUIDANCE"]);
    table(&headers, &rows, &[])
}

/// `HH:MM:SS.mmm` of an RFC 3339 UTC time, or the text as it is.
pub fn short_time(ts: &str) -> String {
    match ts.get(11..23) {
        Some(t) if ts.len() > 23 && ts.as_bytes()[10] == b'T' => t.to_string(),
        _ => ts.to_string(),
    }
}

/// `▁▂▃▅▇`: one bar per value, scaled between their minimum and maximum.
pub fn sparkline(values: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let finite = values.iter().copied().filter(|v| v.is_finite());
    let lo = finite.clone().fold(f64::INFINITY, f64::min);
    let hi = finite.fold(f64::NEG_INFINITY, f64::max);
    values
        .iter()
        .map(|v| {
            if !v.is_finite() {
                ' '
            } else if hi > lo {
                BARS[(((v - lo) / (hi - lo)) * 7.0).round().clamp(0.0, 7.0) as usize]
            } else {
                BARS[3]
            }
        })
        .collect()
}

/// The table of `twinrt history` and its summary line.
pub fn history(h: &History) -> String {
    let same_day = h.from.get(..10) == h.to.get(..10);
    let time = |ts: &str| {
        if same_day {
            short_time(ts)
        } else {
            ts.to_string()
        }
    };
    let rows: Vec<Vec<String>> = h
        .points
        .iter()
        .map(|b| {
            vec![
                time(&b.ts),
                number(b.min),
                number(b.avg),
                number(b.max),
                b.n.to_string(),
                if b.bad > 0 {
                    b.bad.to_string()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    let mut out = String::new();
    if !rows.is_empty() {
        out.push_str(&table(
            &["TIME", "MIN", "AVG", "MAX", "N", "NOT GOOD"],
            &rows,
            &[1, 2, 3, 4, 5],
        ));
    }
    let unit = h
        .unit
        .as_deref()
        .map(|u| format!(" ({u})"))
        .unwrap_or_default();
    let _ = write!(out, "{} {}{unit}, {} to {}: ", h.twin, h.prop, h.from, h.to);
    let n: u64 = h.points.iter().map(|b| b.n).sum();
    if n == 0 {
        out.push_str("no values\n");
        return out;
    }
    let min = h.points.iter().map(|b| b.min).fold(f64::INFINITY, f64::min);
    let max = h
        .points
        .iter()
        .map(|b| b.max)
        .fold(f64::NEG_INFINITY, f64::max);
    let avg = h.points.iter().map(|b| b.avg * b.n as f64).sum::<f64>() / n as f64;
    let bad: u64 = h.points.iter().map(|b| b.bad).sum();
    let buckets = if h.bucket_ms > 0 {
        format!("{} buckets of {}", h.points.len(), span(h.bucket_ms * 1000))
    } else {
        format!("{} points", h.points.len())
    };
    let sampled = if h.sampled { " (sampled)" } else { "" };
    let avgs: Vec<f64> = h.points.iter().map(|b| b.avg).collect();
    let _ = writeln!(
        out,
        "{n} values{sampled} in {buckets}; min {}, avg {}, max {}; {bad} not good  {}",
        number(min),
        number(avg),
        number(max),
        sparkline(&avgs),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(number(212.5), "212.5");
        assert_eq!(number(1040.0), "1040");
        assert_eq!(number(0.12345), "0.123");
        assert_eq!(number(-0.0001), "-1.000e-4");
        assert_eq!(number(0.0), "0");
        assert_eq!(value(&Json::Null), "-");
        assert_eq!(value(&serde_json::json!("running")), "running");
    }

    #[test]
    fn tables_align_columns_and_numbers_right() {
        let t = table(
            &["NAME", "VALUE", "UNIT"],
            &[
                vec!["flow".into(), "212.5".into(), "m3/h".into()],
                vec!["total_flow".into(), "3".into(), "".into()],
            ],
            &[1],
        );
        assert_eq!(
            t,
            "NAME        VALUE  UNIT\nflow        212.5  m3/h\ntotal_flow      3\n"
        );
    }

    #[test]
    fn ages_spans_and_sparklines() {
        let now = Timestamp::from_millis(1_795_000_000_000);
        let ts = Timestamp::from_millis(1_795_000_000_000 - 12_300).to_string();
        assert_eq!(ago(&ts, now), "12s ago");
        assert_eq!(ago("1970-01-01T00:00:00.000Z", now), "-");
        assert_eq!(span(400_000), "0.4s");
        assert_eq!(span(3_600_000_000), "60m");
        assert_eq!(sparkline(&[0.0, 7.0, 3.5]), "▁█▅");
        assert_eq!(sparkline(&[2.0, 2.0]), "▄▄");
        assert_eq!(
            contributors(&Contributors {
                total: 6,
                good: 5,
                uncertain: 0,
                bad: 1
            }),
            "5/6 good, 1 bad"
        );
        assert_eq!(shorten("check the bearing temperature", 10), "check the…");
    }
}
