//! Timestamps in Cinder's wire format: naive UTC with microseconds, no zone.

use chrono::{DateTime, Utc};

/// The current time as `YYYY-MM-DDTHH:MM:SS.ffffff`; lexical order is time order.
pub fn now() -> String {
    format(Utc::now())
}

/// Formats a UTC instant as Cinder does.
pub fn format(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// A timestamp `seconds` from now (negative for the past).
pub fn offset_from_now(seconds: i64) -> String {
    format(Utc::now() + chrono::Duration::seconds(seconds))
}
