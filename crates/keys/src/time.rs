//! Instants and spans of time, in whole seconds.
//!
//! The core never reads a clock: every function that depends on time takes `now` as an argument,
//! so tests can drive days of rotation in microseconds.

use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::Error;

/// Seconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_unix(seconds: i64) -> Self {
        Self(seconds)
    }

    pub const fn unix(self) -> i64 {
        self.0
    }

    #[must_use]
    pub fn plus(self, span: Span) -> Self {
        Self(self.0.saturating_add(span.seconds()))
    }

    /// RFC 3339 in UTC, e.g. `2026-11-22T09:30:00Z`.
    pub fn rfc3339(self) -> String {
        OffsetDateTime::from_unix_timestamp(self.0)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_else(|| self.0.to_string())
    }

    /// Parses an RFC 3339 date or a plain count of Unix seconds.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        if let Ok(seconds) = text.parse::<i64>() {
            return Ok(Self(seconds));
        }
        OffsetDateTime::parse(text, &Rfc3339)
            .map(|t| Self(t.unix_timestamp()))
            .map_err(|_| {
                Error::Time(format!(
                    "'{text}' is neither an RFC 3339 date nor Unix seconds"
                ))
            })
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339())
    }
}

/// A length of time, written as operators write it in `signet.toml`: `30s`, `15m`, `96h`, `7d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span(i64);

impl Span {
    pub const ZERO: Span = Span(0);

    pub const fn seconds_from(seconds: i64) -> Self {
        Self(seconds)
    }

    pub const fn hours(hours: i64) -> Self {
        Self(hours * 3600)
    }

    pub const fn days(days: i64) -> Self {
        Self(days * 86_400)
    }

    pub const fn seconds(self) -> i64 {
        self.0
    }
}

impl FromStr for Span {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        let bad = || {
            Error::Time(format!(
                "'{text}' is not a duration: write a whole number and a unit, e.g. 30s, 15m, 96h, 7d"
            ))
        };
        let text = text.trim();
        let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (number, unit) = text.split_at(split);
        let number: i64 = number.parse().map_err(|_| bad())?;
        let unit = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(bad()),
        };
        number.checked_mul(unit).map(Span).ok_or_else(bad)
    }
}

impl fmt::Display for Span {
    /// The largest unit that divides the span exactly, so `96h` stays `4d` and `90m` stays `90m`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        match s {
            0 => f.write_str("0s"),
            _ if s % 86_400 == 0 => write!(f, "{}d", s / 86_400),
            _ if s % 3600 == 0 => write!(f, "{}h", s / 3600),
            _ if s % 60 == 0 => write!(f, "{}m", s / 60),
            _ => write!(f, "{s}s"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_parse_and_print() {
        for (text, seconds, shown) in [
            ("30s", 30, "30s"),
            ("15m", 900, "15m"),
            ("96h", 345_600, "4d"),
            ("7d", 604_800, "7d"),
            ("0s", 0, "0s"),
            ("90m", 5400, "90m"),
        ] {
            let span: Span = text.parse().unwrap();
            assert_eq!(span.seconds(), seconds, "{text}");
            assert_eq!(span.to_string(), shown);
        }
    }

    #[test]
    fn bad_spans_are_refused_with_the_text() {
        for text in ["", "h", "5", "5w", "-5s", "1.5h", "99999999999999999999d"] {
            let err = text.parse::<Span>().unwrap_err().to_string();
            assert!(err.contains("is not a duration"), "{text}: {err}");
        }
    }

    #[test]
    fn timestamps_round_trip_rfc3339() {
        let t = Timestamp::parse("2026-11-22T09:30:00Z").unwrap();
        assert_eq!(t.unix(), 1_795_339_800);
        assert_eq!(t.to_string(), "2026-11-22T09:30:00Z");
        assert_eq!(Timestamp::parse("1795339800").unwrap(), t);
        assert!(Timestamp::parse("yesterday").is_err());
    }
}
