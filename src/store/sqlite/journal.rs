//! The read side ([`Journal`]), on the reader pool: the deliveries log, reconciliation
//! counts and records, the queue depth.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::*;
use crate::model::event::EventKind;
use crate::store::ports::*;
use crate::store::*;

use super::events::*;
use crate::time::format_ms;

#[async_trait]
impl Journal for SqliteStore {
    async fn list_deliveries(
        &self,
        integration_id: &str,
        filter: DeliveryFilter,
    ) -> StoreResult<Vec<DeliveryView>> {
        let id = owned(integration_id);
        self.read(move |c| list_deliveries(c, &id, &filter)).await
    }
    async fn get_delivery(
        &self,
        id: &str,
    ) -> StoreResult<Option<(DeliveryView, Vec<AttemptView>)>> {
        let id = owned(id);
        self.read(move |c| get_delivery(c, &id)).await
    }
    async fn delivery_job(&self, id: &str) -> StoreResult<Option<DispatchJob>> {
        let id = owned(id);
        self.read(move |c| match delivery_head(c, &id)? {
            None => Ok(None),
            Some(head) => Ok(jobs_with_events(c, vec![head])?.pop()),
        })
        .await
    }
    async fn cdr_counts(
        &self,
        scope: CdrScope,
        start: i64,
        end: i64,
        offset: u32,
        limit: u32,
    ) -> StoreResult<(Vec<(String, u64)>, u64)> {
        self.read(move |c| cdr_counts(c, &scope, start, end, offset, limit))
            .await
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
        let tid = owned(tenant_id);
        self.read(move |c| cdr_records(c, &tid, &scope, start, end, after, limit))
            .await
    }
    async fn pending_stats(&self) -> StoreResult<(u64, Option<i64>)> {
        self.read(|c| {
            c.query_row(
                "SELECT COUNT(*), MIN(created_at) FROM deliveries WHERE status IN ('pending', 'blocked')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(internal)
        })
        .await
    }
    async fn list_notifications(
        &self,
        tenant_id: &str,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<(i64, String)>> {
        let tid = owned(tenant_id);
        self.read(move |c| {
            let sql = format!(
                "SELECT seq, body FROM events WHERE tenant_id = ?1 AND seq < ?2 AND {}
                 ORDER BY seq DESC LIMIT ?3",
                crate::store::shared::OPERATIONAL_TYPES
            );
            let mut st = c.prepare_cached(&sql).map_err(internal)?;
            let rows = st
                .query_map(params![tid, before.unwrap_or(i64::MAX), limit], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .map_err(internal)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(internal)
        })
        .await
    }
}

pub(super) const VIEW_COLS: &str =
    "d.id, d.integration_id, e.id, d.trigger, d.call_id, d.status, d.attempts,
    d.next_attempt_at, d.last_status_code, d.last_error_class, d.created_at, d.updated_at";

pub(super) fn view_row(r: &Row) -> rusqlite::Result<DeliveryView> {
    let status = DeliveryStatus::parse(&r.get::<_, String>(5)?).unwrap_or(DeliveryStatus::Pending);
    let trigger: String = r.get(3)?;
    Ok(DeliveryView {
        id: r.get(0)?,
        integration_id: r.get(1)?,
        event_id: r.get(2)?,
        event_type: EventKind::parse(&trigger)
            .map(EventKind::as_str)
            .unwrap_or("unknown"),
        call_id: r.get(4)?,
        status,
        attempts: r.get(6)?,
        next_attempt_at: (status == DeliveryStatus::Pending)
            .then(|| format_ms(r.get(7).unwrap_or(0))),
        last_status_code: r.get(8)?,
        last_error_class: r.get(9)?,
        created_at: format_ms(r.get(10)?),
        updated_at: format_ms(r.get(11)?),
    })
}

pub fn list_deliveries(
    c: &Connection,
    integration_id: &str,
    f: &DeliveryFilter,
) -> StoreResult<Vec<DeliveryView>> {
    let sql = format!(
        "SELECT {VIEW_COLS} FROM deliveries d JOIN events e ON e.seq = d.event_seq
         WHERE d.integration_id = ?1 AND (?2 IS NULL OR d.status = ?2)
           AND (?3 IS NULL OR d.created_at >= ?3) AND (?4 IS NULL OR d.created_at < ?4)
           AND (?5 IS NULL OR d.id < ?5)
         ORDER BY d.id DESC LIMIT ?6"
    );
    let mut st = c.prepare_cached(&sql).map_err(internal)?;
    let rows = st
        .query_map(
            params![
                integration_id,
                f.status.map(DeliveryStatus::as_str),
                f.since,
                f.until,
                f.before,
                f.limit
            ],
            view_row,
        )
        .map_err(internal)?;
    rows.collect::<Result<_, _>>().map_err(internal)
}

pub fn get_delivery(
    c: &Connection,
    id: &str,
) -> StoreResult<Option<(DeliveryView, Vec<AttemptView>)>> {
    let sql = format!(
        "SELECT {VIEW_COLS} FROM deliveries d JOIN events e ON e.seq = d.event_seq WHERE d.id = ?1"
    );
    let Some(view) = c
        .query_row(&sql, [id], view_row)
        .optional()
        .map_err(internal)?
    else {
        return Ok(None);
    };
    let mut st = c
        .prepare_cached(
            "SELECT attempt, started_at, duration_ms, status_code, error_class, error, response_excerpt, manual
             FROM attempts WHERE delivery_id = ?1 ORDER BY attempt",
        )
        .map_err(internal)?;
    let rows = st
        .query_map([id], |r| {
            Ok(AttemptView {
                attempt: r.get(0)?,
                started_at: format_ms(r.get(1)?),
                duration_ms: r.get(2)?,
                status_code: r.get(3)?,
                error_class: r.get(4)?,
                error: r.get(5)?,
                response_excerpt: r.get(6)?,
                manual: r.get(7)?,
            })
        })
        .map_err(internal)?;
    let attempts = rows.collect::<Result<_, _>>().map_err(internal)?;
    Ok(Some((view, attempts)))
}

pub(super) fn scope_filter(scope: &Option<CdrScope>) -> (&'static str, Option<String>) {
    match scope {
        None => ("", None),
        Some(CdrScope::Analytics { partner_id }) => (
            " AND e.tenant_id IN (SELECT id FROM tenants WHERE partner_id = ?9)",
            Some(partner_id.clone()),
        ),
        Some(CdrScope::Billing { partner_id }) => {
            (" AND e.license_partner = ?9", Some(partner_id.clone()))
        }
    }
}

pub fn cdr_counts(
    c: &Connection,
    scope: &CdrScope,
    start: i64,
    end: i64,
    offset: u32,
    limit: u32,
) -> StoreResult<(Vec<(String, u64)>, u64)> {
    let (pid, total_sql, rows_sql) = crate::store::shared::cdr_count_sql(scope);
    let total: u64 = match scope {
        CdrScope::Analytics { .. } => c.query_row(total_sql, params![pid], |r| r.get(0)),
        CdrScope::Billing { .. } => c.query_row(total_sql, params![pid, start, end], |r| r.get(0)),
    }
    .map_err(internal)?;
    let mut st = c.prepare_cached(rows_sql).map_err(internal)?;
    let rows = st
        .query_map(params![pid, start, end, limit, offset], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .map_err(internal)?;
    Ok((rows.collect::<Result<_, _>>().map_err(internal)?, total))
}

#[allow(clippy::too_many_arguments)]
pub fn cdr_records(
    c: &Connection,
    tenant_id: &str,
    scope: &Option<CdrScope>,
    start: i64,
    end: i64,
    after: Option<(i64, i64)>,
    limit: u32,
) -> StoreResult<Vec<CdrRow>> {
    let (filter, pid) = scope_filter(scope);
    let (after_end, after_seq) = after.unwrap_or((i64::MIN, i64::MIN));
    let sql = format!(
        "SELECT e.ended_at, e.seq, e.body FROM events e
         WHERE e.tenant_id = ?1 AND e.ended_at >= ?2 AND e.ended_at < ?3
           AND (e.ended_at > ?4 OR (e.ended_at = ?4 AND e.seq > ?5)){filter}
         ORDER BY e.ended_at, e.seq LIMIT ?6"
    );
    let mut st = c.prepare_cached(&sql).map_err(internal)?;
    let map = |r: &rusqlite::Row| -> rusqlite::Result<(i64, i64, String)> {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    };
    let rows: Vec<(i64, i64, String)> = match pid {
        None => st.query_map(
            params![tenant_id, start, end, after_end, after_seq, limit],
            map,
        ),
        Some(p) => st.query_map(
            rusqlite::params_from_iter([
                rusqlite::types::Value::from(tenant_id.to_string()),
                start.into(),
                end.into(),
                after_end.into(),
                after_seq.into(),
                (limit as i64).into(),
                rusqlite::types::Value::Null,
                rusqlite::types::Value::Null,
                p.into(),
            ]),
            map,
        ),
    }
    .and_then(|rows| rows.collect())
    .map_err(internal)?;
    rows.into_iter()
        .map(|(ended_at, seq, body)| crate::store::shared::cdr_row(ended_at, seq, body))
        .collect()
}
