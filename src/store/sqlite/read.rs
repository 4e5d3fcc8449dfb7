//! Read-side queries (run on the reader pool).

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::internal;
use crate::model::event::EventKind;
use crate::store::*;
use crate::time::format_ms;

pub fn next_due_at(c: &Connection, integration_id: &str) -> StoreResult<Option<i64>> {
    // A row is claimable once it is due and its lease (if any) has run out.
    c.query_row(
        "SELECT MIN(MAX(next_attempt_at, COALESCE(lease_until, 0))) FROM deliveries
         WHERE integration_id = ?1 AND status = 'pending'",
        [integration_id],
        |r| r.get(0),
    )
    .map_err(internal)
}

pub fn integrations_with_pending(c: &Connection) -> StoreResult<Vec<String>> {
    let mut st = c
        .prepare("SELECT DISTINCT integration_id FROM deliveries WHERE status = 'pending'")
        .map_err(internal)?;
    let rows = st.query_map([], |r| r.get(0)).map_err(internal)?;
    rows.collect::<Result<_, _>>().map_err(internal)
}

const VIEW_COLS: &str = "d.id, d.integration_id, e.id, d.trigger, d.call_id, d.status, d.attempts,
    d.next_attempt_at, d.last_status_code, d.last_error_class, d.created_at, d.updated_at";

fn view_row(r: &Row) -> rusqlite::Result<DeliveryView> {
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
