//! What both backends compute the same way, kept out of their SQL.

use crate::model::event::{Event, EventKind};
use crate::store::{
    BatchWindow, CdrScope, Cursor, DeliveryHead, StoreError, StoreResult, TailItem, TailPage,
};

/// The operational events, as SQL: the predicate of the partial index that lists a tenant's
/// notifications (the migrations spell it out the same way, so the planner can use the index).
pub const OPERATIONAL_TYPES: &str =
    "type IN ('integration.failing', 'integration.disabled', 'integration.recovered', 'delivery.exhausted')";

/// Calls in one batch part: a request stays well under a few megabytes.
pub const BATCH_PART_ITEMS: usize = 1000;
/// Calls one window takes at most; the rest go in the next window.
pub const BATCH_WINDOW_ITEMS: u32 = 100_000;

/// A call record's end time (its `ended_at`, else when the event occurred) and the partner whose
/// licence it used; `None` for events that are not call records.
pub fn cdr_keys(e: &Event) -> (Option<i64>, Option<String>) {
    if e.kind != EventKind::CallCompleted {
        return (None, None);
    }
    let ended = crate::model::fields::str_at(&e.data, "ended_at")
        .and_then(crate::time::parse_rfc3339_ms)
        .unwrap_or(e.occurred_at_ms);
    let licence = crate::model::fields::str_at(&e.data, "license.partner_id").map(String::from);
    (Some(ended), licence)
}

/// The `cdr.batch` events of a closed window: its calls (already rendered as batch items, in
/// end-time order) in parts of at most [`BATCH_PART_ITEMS`].
pub fn batch_parts(w: &BatchWindow, items: &[serde_json::Value]) -> Vec<Event> {
    let parts = items.len().div_ceil(BATCH_PART_ITEMS);
    let window = serde_json::json!({"start": crate::time::format_ms(w.window_start), "end": crate::time::format_ms(w.cutoff)});
    items
        .chunks(BATCH_PART_ITEMS)
        .enumerate()
        .map(|(i, chunk)| {
            let mut data = serde_json::Map::new();
            if let Some(feed) = w.feed {
                data.insert("feed".into(), serde_json::json!(feed.as_str()));
            }
            data.insert("window".into(), window.clone());
            data.insert("part".into(), serde_json::json!(i + 1));
            data.insert("parts".into(), serde_json::json!(parts));
            data.insert("items".into(), serde_json::Value::Array(chunk.to_vec()));
            Event {
                id: format!("batch-{}-{}-{}", w.integration_id, w.boundary, i + 1),
                kind: EventKind::CdrBatch,
                tenant_id: w.owner.clone(),
                occurred_at_ms: w.now,
                call_id: format!("window-{}", w.boundary),
                data,
            }
        })
        .collect()
}

/// When a new delivery may first be sent: the later of its own hold and the request's.
pub fn not_before(d: &crate::store::NewDelivery, request: Option<i64>) -> Option<i64> {
    match (d.not_before, request) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// The reconciliation counts' SQL for a scope, in `?N` placeholders (PostgreSQL turns them into
/// `$N`): the partner id, the statement counting the orgs listed (`?1` = partner; billing also
/// `?2`, `?3` = the window), and the page of `(org, count)` rows (`?1`–`?3`, then `?4` = limit,
/// `?5` = offset).
///
/// Analytics lists every tenant of the partner, those without a call in the window with 0 (a
/// partner reconciling needs the zero to know nothing is missing). Billing counts calls made
/// under the partner's licences in any tenant, so it can list only the orgs that have some.
pub fn cdr_count_sql(scope: &CdrScope) -> (&String, &'static str, &'static str) {
    match scope {
        CdrScope::Analytics { partner_id } => (
            partner_id,
            "SELECT COUNT(*) FROM tenants WHERE partner_id = ?1",
            "SELECT t.id, COUNT(e.ended_at) FROM tenants t
             LEFT JOIN events e ON e.tenant_id = t.id AND e.ended_at >= ?2 AND e.ended_at < ?3
             WHERE t.partner_id = ?1 GROUP BY t.id ORDER BY t.id LIMIT ?4 OFFSET ?5",
        ),
        CdrScope::Billing { partner_id } => (
            partner_id,
            "SELECT COUNT(DISTINCT tenant_id) FROM events
             WHERE license_partner = ?1 AND ended_at >= ?2 AND ended_at < ?3",
            "SELECT tenant_id, COUNT(*) FROM events
             WHERE license_partner = ?1 AND ended_at >= ?2 AND ended_at < ?3
             GROUP BY tenant_id ORDER BY tenant_id LIMIT ?4 OFFSET ?5",
        ),
    }
}

/// A stored call record read back for reconciliation.
pub fn cdr_row(
    ended_at: i64,
    seq: i64,
    body: String,
) -> crate::store::StoreResult<crate::store::CdrRow> {
    let bad = |e: String| crate::store::StoreError::Internal(format!("stored event {seq}: {e}"));
    let value = serde_json::from_str(&body).map_err(|e| bad(e.to_string()))?;
    let event = crate::model::event::parse_stored(value).map_err(bad)?;
    Ok(crate::store::CdrRow {
        ended_at,
        seq,
        event: std::sync::Arc::new(crate::model::event::StoredEvent { seq, event, body }),
    })
}

/// The head of a delivery created now and not yet attempted.
pub fn fresh_head(
    id: String,
    integration_id: String,
    call_id: String,
    trigger: EventKind,
    ordered: bool,
    now: i64,
) -> DeliveryHead {
    DeliveryHead {
        id,
        integration_id,
        call_id,
        trigger,
        ordered,
        manual: false,
        attempts: 0,
        retries_used: 0,
        created_at: now,
    }
}

/// Delivery ids are `dlv_<ULID>`, and ULIDs sort by time: every id below this bound was created
/// before `before_ms`, so the primary key serves as the age index.
pub fn delivery_id_bound(before_ms: i64) -> String {
    let ulid = ulid::Ulid::from_parts(before_ms.max(0) as u64, 0);
    format!("dlv_{}", ulid.to_string().to_ascii_lowercase())
}

/// A partner's brand as stored: name and accent as JSON (NULL when unset); the logo's type
/// lives in a column of its own, written only with the logo.
pub(crate) fn brand_text(b: &crate::model::tenancy::Brand) -> Option<String> {
    let kept = crate::model::tenancy::Brand {
        logo_type: None,
        ..b.clone()
    };
    (kept != Default::default()).then(|| serde_json::to_string(&kept).unwrap_or_default())
}

pub(crate) fn brand_from(
    text: Option<String>,
    logo_type: Option<String>,
) -> crate::model::tenancy::Brand {
    let mut b: crate::model::tenancy::Brand = text
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    b.logo_type = logo_type;
    b
}

/// An event read from the log for a live stream: its stored body parsed. One that does not
/// parse is skipped by the caller (logged), so it cannot stop every stream behind it.
pub(crate) fn tail_item(cursor: Cursor, body: String) -> StoreResult<TailItem> {
    let seq = cursor.seq;
    let value = serde_json::from_str(&body)
        .map_err(|e| StoreError::Internal(format!("stored event {seq}: {e}")))?;
    let event = crate::model::event::parse_stored(value)
        .map_err(|e| StoreError::Internal(format!("stored event {seq}: {e}")))?;
    Ok(TailItem {
        cursor,
        event: std::sync::Arc::new(crate::model::event::StoredEvent { seq, event, body }),
    })
}

/// A page of the log from its rows (position and body), an unreadable row skipped (logged) but
/// counted, so it can stop no stream behind it.
pub(crate) fn tail_page(rows: Vec<(Cursor, String)>) -> TailPage {
    let scanned = rows.len();
    let last = rows.last().map(|(c, _)| *c);
    let items = rows
        .into_iter()
        .filter_map(|(cursor, body)| {
            tail_item(cursor, body)
                .map_err(
                    |e| tracing::warn!(error = %e, "live streams: an unreadable event skipped"),
                )
                .ok()
        })
        .collect();
    TailPage {
        items,
        scanned,
        last,
    }
}

/// A claimed delivery whose event was removed since (its tenant deleted: the purge took the
/// delivery too) is left out of the claim, not the reason the whole claim fails.
pub(crate) fn event_gone(delivery_id: &str, seq: i64) {
    tracing::info!(
        delivery = delivery_id,
        seq,
        "a claimed delivery's event is gone (its tenant was deleted); left out"
    );
}

/// Why a deleted tenant's id cannot be taken yet, and when it can.
pub(crate) fn purging_tenant(id: &str) -> String {
    format!(
        "a tenant `{id}` was deleted and its call data is still being removed; \
         its id is free again once that is done (usually within seconds; create it again later)"
    )
}

#[cfg(test)]
mod operational_sql {
    #[test]
    fn the_notifications_predicate_names_every_operational_type() {
        for k in crate::model::event::EventKind::OPERATIONAL {
            assert!(super::OPERATIONAL_TYPES.contains(&format!("'{}'", k.as_str())));
        }
        assert_eq!(super::OPERATIONAL_TYPES.matches('\'').count(), 8);
    }
}
