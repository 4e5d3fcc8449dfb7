//! What PostgreSQL spent per delivery in a throughput phase: the database's CPU (its processes
//! on this machine) and, when the server preloads `pg_stat_statements`
//! (`PG_CLUSTER_OPTIONS="-c shared_preload_libraries=pg_stat_statements" scripts/pg-cluster start
//! DIR`), the execution time of each statement — the cost of each write per delivery.

use serde_json::{json, Value};

use super::env::admin_client;

/// Clears the statement counters of the bench's database; false when the extension is not
/// available (the phase then reports the CPU alone).
pub(crate) async fn reset(url: &str) -> bool {
    let Ok(client) = admin_client(url).await else {
        return false;
    };
    client
        .batch_execute(
            "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset();",
        )
        .await
        .is_ok()
}

/// The statements that took the most time since [`reset`], per delivery.
pub(crate) async fn top(url: &str, deliveries: u64) -> Value {
    let Ok(client) = admin_client(url).await else {
        return Value::Null;
    };
    let rows = client
        .query(
            "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 90), calls, total_exec_time
             FROM pg_stat_statements
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND query NOT ILIKE '%pg_stat_statements%'
             ORDER BY total_exec_time DESC LIMIT 10",
            &[],
        )
        .await;
    let per = deliveries.max(1) as f64;
    match rows {
        Ok(rows) => json!(rows
            .iter()
            .map(|r| {
                let query: String = r.get(0);
                let calls: i64 = r.get(1);
                let ms: f64 = r.get(2);
                json!({
                    "statement": query,
                    "calls_per_delivery": (calls as f64 / per * 1000.0).round() / 1000.0,
                    "us_per_delivery": (ms * 1000.0 / per * 10.0).round() / 10.0,
                })
            })
            .collect::<Vec<_>>()),
        Err(_) => Value::Null,
    }
}
