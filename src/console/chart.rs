//! Charts as inline SVG, drawn on the server (no script): deliveries per minute by outcome, and
//! the end-to-end latency (p50, p99) of the successful ones, over the last hours. Pure: numbers
//! in, markup out; the markup holds nothing but numbers and fixed words, so it is safe to embed.
//!
//! The drawing is 360 units wide, a phone's width, and scales up to the page: text stays
//! readable on a phone, and a day's 1 440 minutes fit as one path per outcome.

use std::fmt::Write;

use crate::api::stats::Stats;

const W: f64 = 360.0;
const H: f64 = 120.0;
/// Left margin for the axis labels, bottom margin for the time labels.
const LEFT: f64 = 34.0;
const BOTTOM: f64 = 14.0;

/// One minute, placed: its index from the start, and its numbers.
struct Point {
    at: i64,
    succeeded: u64,
    retried: u64,
    failed: u64,
    p50: Option<i64>,
    p99: Option<i64>,
}

fn points(stats: &Stats, since_ms: i64) -> Vec<Point> {
    stats
        .minutes
        .iter()
        .filter_map(|m| {
            let at = (crate::time::parse_rfc3339_ms(&m.minute)? - since_ms) / 60_000;
            Some(Point {
                at,
                succeeded: m.succeeded,
                retried: m.retried,
                failed: m.failed,
                p50: m.p50_ms,
                p99: m.p99_ms,
            })
        })
        .collect()
}

fn frame(out: &mut String, id: &str, title: &str, span: i64) {
    let _ = write!(
        out,
        r##"<svg class="chart" id="{id}" viewBox="0 0 {W} {H}" role="img" aria-labelledby="{id}-t" xmlns="http://www.w3.org/2000/svg"><title id="{id}-t">{title}</title>"##
    );
    let plot_h = H - BOTTOM;
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" y1="{plot_h}" x2="{W}" y2="{plot_h}" class="axis"/>"##
    );
    // Time labels: the start, the middle and now.
    let hours = span / 60;
    for (i, label) in [
        format!("−{hours} h"),
        format!("−{} h", hours / 2),
        "now".to_string(),
    ]
    .iter()
    .enumerate()
    {
        let x = LEFT + (W - LEFT) * i as f64 / 2.0;
        let anchor = ["start", "middle", "end"][i];
        let _ = write!(
            out,
            r##"<text x="{x:.1}" y="{H}" text-anchor="{anchor}">{label}</text>"##
        );
    }
}

fn x_of(at: i64, span: i64) -> f64 {
    LEFT + (W - LEFT) * at as f64 / span as f64
}

/// Deliveries per minute, stacked: succeeded, retried, failed.
pub fn deliveries(stats: &Stats, since_ms: i64, span_minutes: i64) -> String {
    let pts = points(stats, since_ms);
    let (ok, retried, failed) = pts.iter().fold((0, 0, 0), |(a, b, c), p| {
        (a + p.succeeded, b + p.retried, c + p.failed)
    });
    let top = pts
        .iter()
        .map(|p| p.succeeded + p.retried + p.failed)
        .max()
        .unwrap_or(0)
        .max(1);
    let mut out = String::with_capacity(1024 + pts.len() * 90);
    let title = format!(
        "Deliveries per minute over the last {} hours: {ok} succeeded, {retried} retried, {failed} failed",
        span_minutes / 60
    );
    frame(&mut out, "chart-deliveries", &title, span_minutes);
    let plot_h = H - BOTTOM;
    let _ = write!(
        out,
        r##"<text x="{:.1}" y="8" text-anchor="end">{top}/min</text><text x="{:.1}" y="{plot_h}" text-anchor="end">0</text>"##,
        LEFT - 3.0,
        LEFT - 3.0
    );
    // A day's minute is a quarter of a unit wide: drawn at least 1.2 units wide, so that a
    // single busy minute is seen (neighbours overlap, the tallest shows).
    let bar = ((W - LEFT) / span_minutes as f64).max(1.2);
    let scale = (plot_h - 4.0) / top as f64;
    for (class, pick) in [("ok", 0usize), ("retried", 1), ("failed", 2)] {
        let mut d = String::new();
        for p in &pts {
            let stack = [p.succeeded, p.retried, p.failed];
            let below: u64 = stack[..pick].iter().sum();
            let h = stack[pick] as f64 * scale;
            if h <= 0.0 {
                continue;
            }
            let y = plot_h - below as f64 * scale - h;
            let x = x_of(p.at, span_minutes).min(W - bar);
            let _ = write!(d, "M{x:.2} {y:.2}h{bar:.2}v{h:.2}h-{bar:.2}z");
        }
        if !d.is_empty() {
            let _ = write!(out, r##"<path class="{class}" d="{d}"/>"##);
        }
    }
    out.push_str("</svg>");
    out
}

/// Where a latency goes on a log scale from 10 ms to 6 h.
fn y_of_ms(ms: i64, plot_h: f64) -> f64 {
    let (lo, hi) = (1.0f64, (21_600_000f64).log10());
    let v = (ms.max(10) as f64).log10().clamp(lo, hi);
    plot_h - 2.0 - (plot_h - 10.0) * (v - lo) / (hi - lo)
}

/// End-to-end latency of each minute's successes: p50 and p99, on a log scale.
pub fn latency(stats: &Stats, since_ms: i64, span_minutes: i64) -> String {
    let pts = points(stats, since_ms);
    let worst = pts.iter().filter_map(|p| p.p99).max();
    let title = match worst {
        Some(w) => format!(
            "End-to-end latency (ingest to 2xx) per minute, p50 and p99, over the last {} hours; the slowest minute's p99 was at most {}",
            span_minutes / 60,
            human(w)
        ),
        None => format!(
            "End-to-end latency over the last {} hours: no successful deliveries",
            span_minutes / 60
        ),
    };
    let mut out = String::with_capacity(1024 + pts.len() * 30);
    frame(&mut out, "chart-latency", &title, span_minutes);
    let plot_h = H - BOTTOM;
    for ms in [100, 1_000, 10_000, 60_000, 600_000] {
        let y = y_of_ms(ms, plot_h);
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{W}" y2="{y:.1}" class="grid"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT - 3.0,
            y + 3.0,
            human(ms)
        );
    }
    for (class, pick) in [("p50", false), ("p99", true)] {
        let mut d = String::new();
        let mut last: Option<i64> = None;
        for p in &pts {
            let Some(ms) = (if pick { p.p99 } else { p.p50 }) else {
                continue;
            };
            // A gap of more than a minute breaks the line.
            let cmd = if last.is_some_and(|l| p.at - l <= 1) {
                'L'
            } else {
                'M'
            };
            // Each minute is also a short stroke, so a lone minute shows as a dot.
            let x = x_of(p.at, span_minutes).min(W - 1.5);
            let _ = write!(d, "{cmd}{x:.2} {:.2}h1.5", y_of_ms(ms, plot_h));
            last = Some(p.at);
        }
        if !d.is_empty() {
            let _ = write!(out, r##"<path class="{class}" d="{d}"/>"##);
        }
    }
    out.push_str("</svg>");
    out
}

fn human(ms: i64) -> String {
    if ms < 1_000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{} s", ms / 1_000)
    } else if ms < 3_600_000 {
        format!("{} min", ms / 60_000)
    } else {
        format!("{} h", ms / 3_600_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::stats::MinuteStats;

    fn stats(minutes: Vec<MinuteStats>) -> Stats {
        Stats {
            since: "2026-11-22T00:01:00.000Z".into(),
            until: "2026-11-23T00:00:00.000Z".into(),
            minutes,
        }
    }

    fn minute(m: &str, ok: u64, failed: u64, p99: Option<i64>) -> MinuteStats {
        MinuteStats {
            minute: m.into(),
            succeeded: ok,
            failed,
            retried: 0,
            p50_ms: p99.map(|p| p / 2),
            p99_ms: p99,
        }
    }

    #[test]
    fn bars_stack_per_minute_and_the_title_says_the_totals() {
        let since = crate::time::parse_rfc3339_ms("2026-11-22T00:01:00Z").unwrap_or(0);
        let s = stats(vec![
            minute("2026-11-22T12:00:00.000Z", 3, 1, Some(250)),
            minute("2026-11-22T12:01:00.000Z", 0, 2, None),
        ]);
        let svg = deliveries(&s, since, 1440);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains("3 succeeded, 0 retried, 3 failed"), "{svg}");
        assert!(svg.contains(r#"<path class="ok""#));
        assert!(svg.contains(r#"<path class="failed""#));
        assert!(!svg.contains(r#"<path class="retried""#));
        assert_eq!(svg.matches('z').count(), 3, "one bar per non-empty count");
        assert!(svg.contains(">4/min<"), "the scale is the busiest minute");
        let lat = latency(&s, since, 1440);
        assert!(lat.contains("at most 250 ms"), "{lat}");
        assert!(lat.contains(r#"<path class="p99""#));
    }

    #[test]
    fn no_data_draws_an_empty_chart_that_says_so() {
        let svg = latency(&stats(vec![]), 0, 1440);
        assert!(svg.contains("no successful deliveries"));
        assert!(!svg.contains("<path"));
    }
}
