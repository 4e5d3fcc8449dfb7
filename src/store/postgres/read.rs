//! Read-side queries and retention on PostgreSQL.

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::access::recording_row;
use super::{execute, query, query_opt, PgResult};
use crate::model::event::EventKind;
use crate::store::*;
use crate::time::format_ms;

/// Held while purging: one node purges at a time (the others skip their turn).
const PURGE_LOCK: i64 = 0x7075_7267_6500_0001;

pub async fn next_due_at<C: GenericClient>(c: &C, integration_id: &str) -> PgResult<Option<i64>> {
    // Unleased rows in due order (one index step), and leased ones (few: those in some node's
    // memory) once both due and expired.
    let unleased: Option<i64> = query_opt(
        c,
        "SELECT next_attempt_at FROM deliveries WHERE integration_id = $1 AND status = 'pending'
           AND lease_until IS NULL ORDER BY next_attempt_at LIMIT 1",
        &[&integration_id],
    )
    .await?
    .map(|r| r.get(0));
    let leased: Option<i64> = query(
        c,
        "SELECT MIN(GREATEST(next_attempt_at, lease_until)) FROM deliveries
         WHERE integration_id = $1 AND status = 'pending' AND lease_until IS NOT NULL",
        &[&integration_id],
    )
    .await?
    .first()
    .and_then(|r| r.get(0));
    Ok(match (unleased, leased) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

pub async fn integrations_with_pending<C: GenericClient>(c: &C) -> PgResult<Vec<String>> {
    Ok(query(
        c,
        // Each half is one of the partial due indexes.
        "SELECT DISTINCT integration_id FROM deliveries WHERE status = 'pending' AND lease_until IS NULL
         UNION
         SELECT DISTINCT integration_id FROM deliveries WHERE status = 'pending' AND lease_until IS NOT NULL",
        &[],
    )
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect())
}

const VIEW_COLS: &str = "d.id, d.integration_id, e.id, d.trigger, d.call_id, d.status, d.attempts,
    d.next_attempt_at, d.last_status_code, d.last_error_class, d.created_at, d.updated_at";

fn view_row(r: &Row) -> DeliveryView {
    let status = DeliveryStatus::parse(r.get(5)).unwrap_or(DeliveryStatus::Pending);
    DeliveryView {
        id: r.get(0),
        integration_id: r.get(1),
        event_id: r.get(2),
        event_type: EventKind::parse(r.get(3))
            .map(EventKind::as_str)
            .unwrap_or("unknown"),
        call_id: r.get(4),
        status,
        attempts: r.get::<_, i64>(6) as u32,
        next_attempt_at: (status == DeliveryStatus::Pending).then(|| format_ms(r.get(7))),
        last_status_code: r.get::<_, Option<i64>>(8).map(|c| c as u16),
        last_error_class: r.get(9),
        created_at: format_ms(r.get(10)),
        updated_at: format_ms(r.get(11)),
    }
}

pub async fn list_deliveries<C: GenericClient>(
    c: &C,
    integration_id: &str,
    f: &DeliveryFilter,
) -> PgResult<Vec<DeliveryView>> {
    let sql = format!(
        "SELECT {VIEW_COLS} FROM deliveries d JOIN events e ON e.seq = d.event_seq
         WHERE d.integration_id = $1 AND ($2::text IS NULL OR d.status = $2)
           AND ($3::int8 IS NULL OR d.created_at >= $3) AND ($4::int8 IS NULL OR d.created_at < $4)
           AND ($5::text IS NULL OR d.id < $5)
         ORDER BY d.id DESC LIMIT $6"
    );
    let status = f.status.map(DeliveryStatus::as_str);
    Ok(query(
        c,
        &sql,
        &[
            &integration_id,
            &status,
            &f.since,
            &f.until,
            &f.before,
            &(f.limit as i64),
        ],
    )
    .await?
    .iter()
    .map(view_row)
    .collect())
}

pub async fn get_delivery<C: GenericClient>(
    c: &C,
    id: &str,
) -> PgResult<Option<(DeliveryView, Vec<AttemptView>)>> {
    let sql = format!(
        "SELECT {VIEW_COLS} FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE d.id = $1"
    );
    let Some(view) = query_opt(c, &sql, &[&id]).await?.map(|r| view_row(&r)) else {
        return Ok(None);
    };
    let attempts = query(
        c,
        "SELECT attempt, started_at, duration_ms, status_code, error_class, error, response_excerpt, manual
         FROM attempts WHERE delivery_id = $1 ORDER BY attempt",
        &[&id],
    )
    .await?
    .iter()
    .map(|r| AttemptView {
        attempt: r.get::<_, i64>(0) as u32,
        started_at: format_ms(r.get(1)),
        duration_ms: r.get::<_, i64>(2) as u32,
        status_code: r.get::<_, Option<i64>>(3).map(|c| c as u16),
        error_class: r.get(4),
        error: r.get(5),
        response_excerpt: r.get(6),
        manual: r.get(7),
    })
    .collect();
    Ok(Some((view, attempts)))
}

pub async fn cdr_counts<C: GenericClient>(
    c: &C,
    scope: &CdrScope,
    start: i64,
    end: i64,
    offset: u32,
    limit: u32,
) -> PgResult<(Vec<(String, u64)>, u64)> {
    let (from, pid) = match scope {
        CdrScope::Analytics { partner_id } => (
            "FROM events e JOIN tenants t ON t.id = e.tenant_id
             WHERE t.partner_id = $1 AND e.ended_at >= $2 AND e.ended_at < $3",
            partner_id,
        ),
        CdrScope::Billing { partner_id } => (
            "FROM events e WHERE e.license_partner = $1 AND e.ended_at >= $2 AND e.ended_at < $3",
            partner_id,
        ),
    };
    let total: i64 = query(
        c,
        &format!("SELECT COUNT(DISTINCT e.tenant_id) {from}"),
        &[pid, &start, &end],
    )
    .await?
    .first()
    .map(|r| r.get(0))
    .unwrap_or(0);
    let rows = query(
        c,
        &format!(
            "SELECT e.tenant_id, COUNT(*) {from} GROUP BY e.tenant_id ORDER BY e.tenant_id LIMIT $4 OFFSET $5"
        ),
        &[pid, &start, &end, &(limit as i64), &(offset as i64)],
    )
    .await?;
    Ok((
        rows.iter()
            .map(|r| (r.get(0), r.get::<_, i64>(1) as u64))
            .collect(),
        total as u64,
    ))
}

#[allow(clippy::too_many_arguments)]
pub async fn cdr_records<C: GenericClient>(
    c: &C,
    tenant_id: &str,
    scope: &Option<CdrScope>,
    start: i64,
    end: i64,
    after: Option<(i64, i64)>,
    limit: u32,
) -> PgResult<Vec<CdrRow>> {
    let (filter, pid) = match scope {
        None => ("", None),
        Some(CdrScope::Analytics { partner_id }) => (
            " AND e.tenant_id IN (SELECT id FROM tenants WHERE partner_id = $7)",
            Some(partner_id),
        ),
        Some(CdrScope::Billing { partner_id }) => (" AND e.license_partner = $7", Some(partner_id)),
    };
    let (after_end, after_seq) = after.unwrap_or((i64::MIN, i64::MIN));
    let sql = format!(
        "SELECT e.ended_at, e.seq, e.body FROM events e
         WHERE e.tenant_id = $1 AND e.ended_at >= $2 AND e.ended_at < $3
           AND (e.ended_at > $4 OR (e.ended_at = $4 AND e.seq > $5)){filter}
         ORDER BY e.ended_at, e.seq LIMIT $6"
    );
    let limit = limit as i64;
    let mut params: Vec<&(dyn ToSql + Sync)> =
        vec![&tenant_id, &start, &end, &after_end, &after_seq, &limit];
    if let Some(p) = &pid {
        params.push(p);
    }
    query(c, &sql, &params)
        .await?
        .iter()
        .map(|r| Ok(crate::store::shared::cdr_row(r.get(0), r.get(1), r.get(2))?))
        .collect()
}

pub async fn pending_stats<C: GenericClient>(c: &C) -> PgResult<(u64, Option<i64>)> {
    let row = query(
        c,
        "SELECT COUNT(*), MIN(created_at) FROM deliveries WHERE status IN ('pending', 'blocked')",
        &[],
    )
    .await?;
    Ok(row
        .first()
        .map(|r| (r.get::<_, i64>(0) as u64, r.get(1)))
        .unwrap_or((0, None)))
}

/// One step of retention, by whichever node holds the purge lock; the others find it taken
/// and report nothing to do this time.
pub async fn purge<C: GenericClient>(c: &C, before: i64, limit: u32) -> PgResult<PurgeReport> {
    let mut report = PurgeReport::default();
    let got: bool = query(c, "SELECT pg_try_advisory_xact_lock($1)", &[&PURGE_LOCK])
        .await?
        .first()
        .map(|r| r.get(0))
        .unwrap_or(false);
    if !got {
        return Ok(report);
    }
    let limit = limit as i64;
    let bound = crate::store::shared::delivery_id_bound(before);
    let ids: Vec<String> = query(
        c,
        "DELETE FROM deliveries WHERE id IN (
            SELECT id FROM deliveries WHERE id < $1 AND status NOT IN ('pending', 'blocked') LIMIT $2)
         RETURNING id",
        &[&bound, &limit],
    )
    .await?
    .iter()
    .map(|r| r.get(0))
    .collect();
    report.deliveries = ids.len() as u64;
    report.attempts = execute(
        c,
        "DELETE FROM attempts WHERE delivery_id = ANY($1)",
        &[&ids],
    )
    .await?;
    report.events = execute(
        c,
        "DELETE FROM events WHERE seq IN (
            SELECT seq FROM events e WHERE e.ingested_at < $1
              AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_seq = e.seq)
              AND NOT EXISTS (SELECT 1 FROM batch_queue q WHERE q.event_seq = e.seq)
            ORDER BY e.ingested_at LIMIT $2)",
        &[&before, &limit],
    )
    .await?;
    execute(
        c,
        "DELETE FROM call_progress WHERE (tenant_id, call_id) IN (
            SELECT tenant_id, call_id FROM call_progress WHERE updated_at < $1 LIMIT $2)",
        &[&before, &limit],
    )
    .await?;
    report.recordings = query(
        c,
        "DELETE FROM recordings WHERE (tenant_id, file_id) IN (
            SELECT tenant_id, file_id FROM recordings WHERE created_at < $1 ORDER BY created_at LIMIT $2)
         RETURNING file_id, tenant_id, content_type, bytes, sha256, created_at",
        &[&before, &limit],
    )
    .await?
    .iter()
    .map(recording_row)
    .collect();
    Ok(report)
}
