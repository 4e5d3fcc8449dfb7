//! Prometheus metrics, kept in process-wide atomics (cheap enough for the hot path: one relaxed
//! add per event or attempt) and rendered as text at `/metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::event::EventKind;

/// Latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

pub struct Histogram {
    buckets: [AtomicU64; 14],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    const fn new() -> Self {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; 14],
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }

    pub fn observe_ms(&self, ms: f64) {
        let secs = ms.max(0.0) / 1000.0;
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add((ms.max(0.0) * 1000.0) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Where an attempt ended up.
pub const OUTCOMES: [&str; 4] = ["succeeded", "retry", "failed", "held"];
/// Error classes, and `none` for attempts without one.
pub const CLASSES: [&str; 10] = [
    "none",
    "timeout",
    "connect",
    "tls",
    "dns",
    "refused_destination",
    "http_status",
    "request",
    "broker",
    "render",
];
const KINDS: [EventKind; 11] = EventKind::EVERY;

pub struct Metrics {
    ingested: [AtomicU64; 11],
    duplicates: AtomicU64,
    stale_states: AtomicU64,
    /// Requests that waited for an endpoint's rate limit (`delivery.max_per_second`).
    rate_limited: AtomicU64,
    operational_dropped: AtomicU64,
    deliveries: [[AtomicU64; 10]; 4],
    pub attempt_latency: Histogram,
    pub end_to_end: Histogram,
}

pub static METRICS: Metrics = Metrics {
    ingested: [const { AtomicU64::new(0) }; 11],
    duplicates: AtomicU64::new(0),
    stale_states: AtomicU64::new(0),
    rate_limited: AtomicU64::new(0),
    operational_dropped: AtomicU64::new(0),
    deliveries: [const { [const { AtomicU64::new(0) }; 10] }; 4],
    attempt_latency: Histogram::new(),
    end_to_end: Histogram::new(),
};

impl Metrics {
    pub fn ingested(&self, kind: EventKind) {
        if let Some(i) = KINDS.iter().position(|k| *k == kind) {
            self.ingested[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn duplicate(&self) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
    }

    /// A request that waited for its endpoint's rate limit.
    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// An operational event for a tenant dropped because its queue was full.
    pub fn operational_event_dropped(&self) {
        self.operational_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// A call state stored but not sent: not past the call's latest state.
    pub fn stale_state(&self) {
        self.stale_states.fetch_add(1, Ordering::Relaxed);
    }

    pub fn delivery(&self, outcome: &str, class: Option<&str>) {
        let o = OUTCOMES.iter().position(|x| *x == outcome).unwrap_or(2);
        let c = CLASSES.iter().position(|x| Some(*x) == class).unwrap_or(0);
        self.deliveries[o][c].fetch_add(1, Ordering::Relaxed);
    }
}

/// Gauges read at scrape time.
pub struct Gauges {
    pub queued_in_memory: u64,
    pub retries_in_memory: u64,
    /// Bytes of request bodies held against the body budget now.
    pub body_bytes_held: u64,
    pub pending: u64,
    pub oldest_pending_age_s: f64,
    pub integrations: Vec<(&'static str, u64)>,
}

pub fn render(g: &Gauges) -> String {
    let m = &METRICS;
    let mut out = String::with_capacity(8192);
    out.push_str("# HELP callhook_events_ingested_total Events accepted, by type.\n# TYPE callhook_events_ingested_total counter\n");
    for (i, k) in KINDS.iter().enumerate().filter(|(_, k)| k.is_ingestible()) {
        let _ = writeln!(
            out,
            "callhook_events_ingested_total{{type=\"{}\"}} {}",
            k.as_str(),
            m.ingested[i].load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(out, "# HELP callhook_events_duplicate_total Events skipped because their id was already stored.\n# TYPE callhook_events_duplicate_total counter\ncallhook_events_duplicate_total {}", m.duplicates.load(Ordering::Relaxed));
    let _ = writeln!(out, "# HELP callhook_operational_events_dropped_total Operational events for tenants dropped because their queue was full.\n# TYPE callhook_operational_events_dropped_total counter\ncallhook_operational_events_dropped_total {}", m.operational_dropped.load(Ordering::Relaxed));
    let _ = writeln!(out, "# HELP callhook_rate_limited_total Requests that waited for their endpoint's rate limit (delivery.max_per_second).\n# TYPE callhook_rate_limited_total counter\ncallhook_rate_limited_total {}", m.rate_limited.load(Ordering::Relaxed));
    let _ = writeln!(out, "# HELP callhook_call_states_stale_total Call states stored but not sent: not past their call's latest state.\n# TYPE callhook_call_states_stale_total counter\ncallhook_call_states_stale_total {}", m.stale_states.load(Ordering::Relaxed));
    out.push_str("# HELP callhook_attempts_total Delivery attempts, by outcome and error class.\n# TYPE callhook_attempts_total counter\n");
    for (o, outcome) in OUTCOMES.iter().enumerate() {
        for (c, class) in CLASSES.iter().enumerate() {
            let v = m.deliveries[o][c].load(Ordering::Relaxed);
            if v > 0 {
                let _ = writeln!(
                    out,
                    "callhook_attempts_total{{outcome=\"{outcome}\",error_class=\"{class}\"}} {v}"
                );
            }
        }
    }
    m.attempt_latency.render(
        &mut out,
        "callhook_attempt_duration_seconds",
        "Time from sending an attempt to its response.",
    );
    m.end_to_end.render(
        &mut out,
        "callhook_end_to_end_seconds",
        "Time from ingest to a 2xx from the receiver.",
    );
    let _ = writeln!(out, "# HELP callhook_request_body_bytes Bytes of request bodies held in memory now (bounded by CALLHOOK_BODY_MEMORY_BYTES).\n# TYPE callhook_request_body_bytes gauge\ncallhook_request_body_bytes {}", g.body_bytes_held);
    let _ = writeln!(out, "# HELP callhook_queue_in_memory Deliveries waiting in this node's memory queues.\n# TYPE callhook_queue_in_memory gauge\ncallhook_queue_in_memory {}", g.queued_in_memory);
    let _ = writeln!(out, "# HELP callhook_retries_in_memory Retries waiting in memory for their time.\n# TYPE callhook_retries_in_memory gauge\ncallhook_retries_in_memory {}", g.retries_in_memory);
    let _ = writeln!(out, "# HELP callhook_deliveries_pending Deliveries not yet settled (store).\n# TYPE callhook_deliveries_pending gauge\ncallhook_deliveries_pending {}", g.pending);
    let _ = writeln!(out, "# HELP callhook_oldest_pending_age_seconds Age of the oldest pending delivery.\n# TYPE callhook_oldest_pending_age_seconds gauge\ncallhook_oldest_pending_age_seconds {}", g.oldest_pending_age_s);
    out.push_str("# HELP callhook_integrations Integrations, by status.\n# TYPE callhook_integrations gauge\n");
    for (status, n) in &g.integrations {
        let _ = writeln!(out, "callhook_integrations{{status=\"{status}\"}} {n}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_text_is_prometheus_shaped() {
        let h = Histogram::new();
        h.observe_ms(0.5);
        h.observe_ms(7.0);
        h.observe_ms(90_000.0);
        let mut out = String::new();
        h.render(&mut out, "x", "help");
        assert!(out.contains("x_bucket{le=\"0.001\"} 1\n"));
        assert!(out.contains("x_bucket{le=\"0.01\"} 2\n"));
        assert!(out.contains("x_bucket{le=\"30\"} 2\n"));
        assert!(out.contains("x_bucket{le=\"+Inf\"} 3\n"));
        assert!(out.contains("x_count 3\n"));
    }
}
