//! What the bench reads off the process and the machine: latency percentiles, CPU time,
//! cores, peak memory, the ratio to the ceiling.

use serde_json::{json, Value};

pub(crate) fn percentiles(sorted: &[u64]) -> Value {
    let p = |q: f64| -> Value {
        if sorted.is_empty() {
            return Value::Null;
        }
        let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
        json!(sorted[i] as f64 / 1000.0)
    };
    json!({"p50": p(0.5), "p99": p(0.99), "p999": p(0.999), "max": p(1.0), "samples": sorted.len()})
}

/// CPU time this process (server, receiver and load generator) has used, in seconds.
pub(crate) fn cpu_seconds() -> f64 {
    stat_cpu_seconds("/proc/self/stat").unwrap_or(f64::NAN)
}

/// utime + stime of the process whose `/proc/<pid>/stat` is at `path`, in seconds.
pub(crate) fn stat_cpu_seconds(path: &str) -> Option<f64> {
    // Fields 14 and 15, in clock ticks (100 per second on Linux); counted after the command
    // name, which is in parentheses and may hold spaces.
    let s = std::fs::read_to_string(path).ok()?;
    let rest = s.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub(crate) fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| (kb / 1024.0 * 10.0).round() / 10.0)
}

pub(crate) fn ratio(deliveries_per_s: &Value, ceiling: f64) -> Value {
    json!(((deliveries_per_s.as_f64().unwrap_or(0.0) / ceiling) * 1000.0).round() / 1000.0)
}
