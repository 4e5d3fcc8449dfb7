//! Wall-clock helpers. Times cross the store and the API as epoch milliseconds (UTC) so that
//! both storage backends compare them as plain integers.

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// `2026-11-22T10:00:00.123Z`, the one timestamp spelling callhook emits.
pub fn format_ms(ms: i64) -> String {
    match Utc.timestamp_millis_opt(ms).single() {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => String::from("1970-01-01T00:00:00.000Z"),
    }
}

/// Parses an RFC 3339 timestamp (any offset) into epoch milliseconds. Times before 1970 are
/// refused: no call event happened then, and epoch milliseconds stay non-negative.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc).timestamp_millis())
        .filter(|ms| *ms >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip_with_millis() {
        let ms = parse_rfc3339_ms("2026-11-22T11:00:00.123+01:00").unwrap_or_default();
        assert_eq!(format_ms(ms), "2026-11-22T10:00:00.123Z");
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
        assert_eq!(parse_rfc3339_ms("0000-01-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339_ms("1969-12-31T23:59:59Z"), None);
    }
}
