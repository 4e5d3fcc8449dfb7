//! The read side ([`Journal`]): the deliveries log, reconciliation counts and records, the
//! queue depth.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::events::*;
use super::*;
use crate::model::event::EventKind;
use crate::store::ports::*;
use crate::time::format_ms;

#[async_trait]
impl Journal for PgStore {
    async fn list_deliveries(
        &self,
        integration_id: &str,
        filter: DeliveryFilter,
    ) -> StoreResult<Vec<DeliveryView>> {
        on_conn!(self, |c| list_deliveries(&c, integration_id, &filter)
            .await?)
    }
    async fn get_delivery(
        &self,
        id: &str,
    ) -> StoreResult<Option<(DeliveryView, Vec<AttemptView>)>> {
        on_conn!(self, |c| get_delivery(&c, id).await?)
    }
    async fn delivery_job(&self, id: &str) -> StoreResult<Option<DispatchJob>> {
        on_conn!(self, |c| {
            match delivery_head(&c, id).await? {
                None => None,
                Some(head) => jobs_with_events(&c, vec![head], false).await?.pop(),
            }
        })
    }
    async fn cdr_counts(
        &self,
        scope: CdrScope,
        start: i64,
        end: i64,
        offset: u32,
        limit: u32,
    ) -> StoreResult<(Vec<(String, u64)>, u64)> {
        on_conn!(self, |c| cdr_counts(&c, &scope, start, end, offset, limit)
            .await?)
    }
    async fn cdr_records(
        &self,
        tenant_id: &str,
        scope: Option<CdrScope>,
        start: i64,
        end: i64,
        after: Option<(i64, i64)>,
        limit: u32,
    ) -> StoreResult<Vec<CdrRow>> {
        on_conn!(self, |c| cdr_records(
            &c, tenant_id, &scope, start, end, after, limit
        )
        .await?)
    }
    async fn pending_stats(&self) -> StoreResult<(u64, Option<i64>)> {
        on_conn!(self, |c| pending_stats(&c).await?)
    }
    async fn list_notifications(
        &self,
        tenant_id: &str,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<(i64, String)>> {
        let sql = format!(
            "SELECT seq, body FROM events WHERE tenant_id = $1 AND seq < $2 AND {}
             ORDER BY seq DESC LIMIT $3",
            crate::store::shared::OPERATIONAL_TYPES
        );
        let before = before.unwrap_or(i64::MAX);
        let limit = limit as i64;
        on_conn!(self, |c| query(&c, &sql, &[&tenant_id, &before, &limit])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }
}

pub(super) const VIEW_COLS: &str =
    "d.id, d.integration_id, e.id, d.trigger, d.call_id, d.status, d.attempts,
    d.next_attempt_at, d.last_status_code, d.last_error_class, d.created_at, d.updated_at";

pub(super) fn view_row(r: &Row) -> DeliveryView {
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
    let (pid, total_sql, rows_sql) = crate::store::shared::cdr_count_sql(scope);
    let (total_sql, rows_sql) = (total_sql.replace('?', "$"), rows_sql.replace('?', "$"));
    let total: i64 = match scope {
        CdrScope::Analytics { .. } => query(c, &total_sql, &[pid]).await?,
        CdrScope::Billing { .. } => query(c, &total_sql, &[pid, &start, &end]).await?,
    }
    .first()
    .map(|r| r.get(0))
    .unwrap_or(0);
    let rows = query(
        c,
        &rows_sql,
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
