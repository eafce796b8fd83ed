//! Timestamps in Cinder's wire format: naive UTC with microseconds, no zone.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Cinder's format, `YYYY-MM-DDTHH:MM:SS.ffffff`.
const FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6f";

/// The current time as `YYYY-MM-DDTHH:MM:SS.ffffff`; lexical order is time order.
pub fn now() -> String {
    format(Utc::now())
}

/// Formats a UTC instant as Cinder does.
pub fn format(t: DateTime<Utc>) -> String {
    t.format(FORMAT).to_string()
}

/// A timestamp `seconds` from now (negative for the past).
pub fn offset_from_now(seconds: i64) -> String {
    format(Utc::now() + chrono::Duration::seconds(seconds))
}

/// An instant, to the microsecond, compared as a time and written in Cinder's format
/// (also by serde).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// Now, to the microsecond.
    pub fn now() -> Self {
        Timestamp::from(Utc::now())
    }

    /// `seconds` from now (negative for the past).
    pub fn from_now(seconds: i64) -> Self {
        Timestamp::from(Utc::now() + chrono::Duration::seconds(seconds))
    }

    /// The instant.
    pub fn utc(self) -> DateTime<Utc> {
        self.0
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Timestamp(t.trunc_subsecs(6))
    }
}

impl FromStr for Timestamp {
    type Err = String;

    /// Reads Cinder's format (any number of fractional digits, or none).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
            .map(|t| Timestamp::from(t.and_utc()))
            .map_err(|e| format!("not a timestamp: {s:?}: {e}"))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.format(FORMAT))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_cinder_format() {
        let text = "2026-12-03T10:11:58.123456";
        let t: Timestamp = text.parse().unwrap();
        assert_eq!(t.to_string(), text);
        assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{text}\""));
        assert_eq!(
            serde_json::from_str::<Timestamp>(&format!("\"{text}\"")).unwrap(),
            t
        );
        assert!("yesterday".parse::<Timestamp>().is_err());
    }

    #[test]
    fn compares_as_time() {
        let early: Timestamp = "2026-01-01T09:00:00".parse().unwrap();
        let late: Timestamp = "2026-01-01T10:00:00.5".parse().unwrap();
        assert!(early < late);
        assert_eq!(late.to_string(), "2026-01-01T10:00:00.500000");
        assert_eq!(Timestamp::now().utc().timestamp_subsec_nanos() % 1000, 0);
    }
}
