//! Times in query parameters: RFC 3339 (`2026-11-21T10:00:00Z`,
//! `2026-11-21T10:00:00.250+01:00`), `now`, or relative to now (`-1h`,
//! `-15m`, `-90s`).

use twins::Timestamp;

/// Parses `text` as a time; `now` is the node's clock.
pub fn parse_time(text: &str, now: Timestamp) -> Result<Timestamp, String> {
    let t = text.trim();
    if t == "now" {
        return Ok(now);
    }
    if let Some(rel) = t.strip_prefix('-') {
        return twins::model::parse_duration(rel)
            .map(|d| now.saturating_sub(d))
            .ok_or_else(|| {
                format!("`{t}` is not a relative time: write e.g. `-1h`, `-15m` or `-30s`")
            });
    }
    parse_rfc3339(t).ok_or_else(|| {
        format!("`{t}` is not a time: write RFC 3339 (`2026-11-21T10:00:00Z`), `now` or `-1h`")
    })
}

fn parse_rfc3339(t: &str) -> Option<Timestamp> {
    let b = t.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = t.get(r)?;
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let mut rest = &t[19..];
    let mut micros = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let mut scale = 100_000i64;
        for c in frac[..digits].bytes().take(6) {
            micros += i64::from(c - b'0') * scale;
            scale /= 10;
        }
        rest = &frac[digits..];
    }
    let offset_secs = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let oh: i64 = rest[1..3].parse().ok()?;
            let om: i64 = rest[4..6].parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + s - offset_secs;
    Some(Timestamp(secs * 1_000_000 + micros))
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_through_the_timestamp_display() {
        let now = Timestamp(0);
        for us in [
            0i64,
            1_763_719_200_123_000,
            951_782_400_000_000,
            -86_400_000_000,
        ] {
            let text = Timestamp(us).to_string();
            assert_eq!(parse_time(&text, now), Ok(Timestamp(us)), "{text}");
        }
        assert_eq!(
            parse_time("2026-11-21T11:00:00+01:00", now),
            parse_time("2026-11-21T10:00:00Z", now)
        );
        assert_eq!(
            parse_time("1970-01-01T00:00:00.5Z", now),
            Ok(Timestamp(500_000))
        );
    }

    #[test]
    fn relative_times_and_errors() {
        let now = Timestamp(10_000_000_000);
        assert_eq!(parse_time("now", now), Ok(now));
        assert_eq!(
            parse_time("-1h", now),
            Ok(Timestamp(10_000_000_000 - 3_600_000_000))
        );
        assert!(
            parse_time("-1 fortnight", now)
                .unwrap_err()
                .contains("relative")
        );
        assert!(
            parse_time("yesterday", now)
                .unwrap_err()
                .contains("RFC 3339")
        );
        assert!(parse_time("2026-13-01T00:00:00Z", now).is_err());
    }
}
