//! Human durations for the command line: `250ms`, `5s`, `2m`, `1h`, `1.5s`, `500us`.

use std::fmt;
use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseDurationError(String);

impl fmt::Display for ParseDurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseDurationError {}

/// Parses `<number><unit>` where unit is one of `ns`, `us`, `ms`, `s`, `m`, `h`.
/// A bare `0` is accepted; any other number needs a unit, so that `5` is not
/// silently read as seconds by one reader and milliseconds by another.
pub fn parse(text: &str) -> Result<Duration, ParseDurationError> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| {
            ParseDurationError(format!("`{text}` has no unit (use e.g. 250ms, 5s, 2m)"))
        })?;
    let (number, unit) = text.split_at(split);
    let nanos_per_unit: f64 = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => {
            return Err(ParseDurationError(format!(
                "`{text}` has an unknown unit `{unit}` (use ns, us, ms, s, m or h)"
            )))
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| ParseDurationError(format!("`{text}` does not start with a number")))?;
    let nanos = value * nanos_per_unit;
    if !nanos.is_finite() || nanos > u64::MAX as f64 {
        return Err(ParseDurationError(format!("`{text}` is too long")));
    }
    Ok(Duration::from_nanos(nanos.round() as u64))
}

/// Formats a duration the way [`parse`] reads it, choosing the largest exact unit.
pub fn format(d: Duration) -> String {
    let ns = d.as_nanos();
    for (unit, size) in [
        ("h", 3_600_000_000_000u128),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
    ] {
        if ns >= size && ns % size == 0 {
            return format!("{}{unit}", ns / size);
        }
    }
    format!("{ns}ns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("500us"), Ok(Duration::from_micros(500)));
        assert_eq!(parse("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_with_a_reason() {
        assert!(parse("5").unwrap_err().to_string().contains("no unit"));
        assert!(parse("5x")
            .unwrap_err()
            .to_string()
            .contains("unknown unit"));
        assert!(parse("ms").unwrap_err().to_string().contains("number"));
        assert!(parse("1.2.3s").is_err());
        assert!(parse("").is_err());
        assert!(parse("-1s").is_err());
    }

    #[test]
    fn format_round_trips() {
        for d in [
            Duration::from_millis(250),
            Duration::from_secs(5),
            Duration::from_secs(120),
            Duration::from_micros(3),
            Duration::from_nanos(1),
        ] {
            assert_eq!(parse(&format(d)), Ok(d));
        }
        assert_eq!(format(Duration::from_secs(5)), "5s");
        assert_eq!(format(Duration::from_millis(1500)), "1500ms");
    }
}
