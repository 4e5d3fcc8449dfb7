//! Delivery statistics by minute: how many deliveries succeeded, failed for good or were retried
//! in each minute, and how long the successful ones took from ingest to the receiver's 2xx.
//!
//! The store keeps one count per (integration, minute, kind), added to in the transaction that
//! records the outcomes, so a chart reads at most a day of small rows and never the deliveries
//! table. Latency is kept as a histogram with fixed bounds; percentiles are read off it, to the
//! resolution of its buckets.

/// Upper bounds (inclusive, ms) of the end-to-end latency buckets; a last bucket takes the rest.
pub const LATENCY_BOUNDS_MS: [i64; 15] = [
    25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000, 900_000,
    3_600_000, 21_600_000,
];

/// A delivery that failed for good this minute.
pub const FAILED: i64 = 0;
/// An attempt that failed and will be retried.
pub const RETRIED: i64 = 1;
/// A person's redelivery that succeeded: counted, but not a latency (its delivery may be days
/// old).
pub const SUCCEEDED_MANUAL: i64 = 2;
/// Successes are `SUCCEEDED_FIRST + bucket`.
pub const SUCCEEDED_FIRST: i64 = 3;

/// Every kind: failed, retried, manual, and a success per latency bucket (the last one open).
const KINDS: usize = SUCCEEDED_FIRST as usize + LATENCY_BOUNDS_MS.len() + 1;

/// The kind a success `latency_ms` after its delivery was created counts under.
pub fn succeeded(latency_ms: i64) -> i64 {
    let bucket = LATENCY_BOUNDS_MS
        .iter()
        .position(|b| latency_ms <= *b)
        .unwrap_or(LATENCY_BOUNDS_MS.len());
    SUCCEEDED_FIRST + bucket as i64
}

/// The minute (since the epoch) a time in ms falls in.
pub fn minute(ms: i64) -> i64 {
    ms.div_euclid(60_000)
}

/// One minute of an integration's (or a tenant's) deliveries.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct MinuteStats {
    /// RFC 3339: the minute's start.
    pub minute: String,
    pub succeeded: u64,
    pub failed: u64,
    pub retried: u64,
    /// End-to-end latency (ingest → 2xx) of this minute's successes, to bucket resolution;
    /// `null` without automatic successes.
    pub p50_ms: Option<i64>,
    pub p99_ms: Option<i64>,
}

/// Folds `(minute, kind, count)` rows (any order, repeats summed) into one entry per minute
/// that has any, in time order.
pub fn summarise(rows: &[(i64, i64, i64)]) -> Vec<MinuteStats> {
    let mut by_minute: std::collections::BTreeMap<i64, [u64; KINDS]> = Default::default();
    for &(m, kind, n) in rows {
        if let (Ok(k), Ok(n)) = (usize::try_from(kind), u64::try_from(n)) {
            if let Some(slot) = by_minute.entry(m).or_insert([0; KINDS]).get_mut(k) {
                *slot += n;
            }
        }
    }
    by_minute
        .into_iter()
        .map(|(m, c)| {
            let buckets = &c[SUCCEEDED_FIRST as usize..];
            MinuteStats {
                minute: crate::time::format_ms(m * 60_000),
                succeeded: c[SUCCEEDED_MANUAL as usize] + buckets.iter().sum::<u64>(),
                failed: c[FAILED as usize],
                retried: c[RETRIED as usize],
                p50_ms: percentile(buckets, 0.50),
                p99_ms: percentile(buckets, 0.99),
            }
        })
        .collect()
}

/// The upper bound of the bucket holding the `q` quantile; the last bucket reports its lower
/// bound (there is no upper one).
pub fn percentile(buckets: &[u64], q: f64) -> Option<i64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(
                LATENCY_BOUNDS_MS
                    .get(i)
                    .or(LATENCY_BOUNDS_MS.last())
                    .copied()
                    .unwrap_or(0),
            );
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_fall_in_their_buckets_and_percentiles_read_off_them() {
        assert_eq!(succeeded(0), SUCCEEDED_FIRST);
        assert_eq!(succeeded(25), SUCCEEDED_FIRST);
        assert_eq!(succeeded(26), SUCCEEDED_FIRST + 1);
        assert_eq!(succeeded(i64::MAX), SUCCEEDED_FIRST + 15);
        // 98 fast, 2 slow: p50 fast, p99 slow.
        let mut b = [0u64; 16];
        b[0] = 98;
        b[9] = 2;
        assert_eq!(percentile(&b, 0.5), Some(25));
        assert_eq!(percentile(&b, 0.99), Some(30_000));
        assert_eq!(percentile(&[0; 16], 0.5), None);
    }

    #[test]
    fn rows_fold_into_minutes_in_order() {
        let rows = [
            (10, succeeded(40), 3),
            (9, FAILED, 1),
            (10, RETRIED, 2),
            (10, succeeded(40), 1),
            (10, SUCCEEDED_MANUAL, 5),
        ];
        let s = summarise(&rows);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].failed, s[0].succeeded, s[0].p50_ms), (1, 0, None));
        assert_eq!(
            (s[1].succeeded, s[1].retried, s[1].p50_ms, s[1].p99_ms),
            (9, 2, Some(50), Some(50))
        );
        assert_eq!(s[1].minute, "1970-01-01T00:10:00.000Z");
    }

    #[test]
    fn a_success_slower_than_the_last_bound_is_counted_not_dropped() {
        let s = summarise(&[(0, succeeded(i64::MAX), 2), (0, succeeded(10), 1)]);
        assert_eq!(s[0].succeeded, 3);
        assert_eq!(s[0].p99_ms, Some(21_600_000));
    }
}
