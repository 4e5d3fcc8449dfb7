//! Ingest: request bodies become validated events, each with the deliveries routing assigns it.
//! Pure: the API handler stores the result and hands the ready deliveries to the dispatcher.

pub mod accept;
pub mod freeswitch;
pub mod from_states;

use serde_json::Value;

use crate::cache::{Integration, IntegrationCache};
use crate::model::event::{parse_event, Event, EventKind};
use crate::model::integration::{DeliveryMode, Feed};
use crate::route::route;
use crate::store::{IngestItem, IntegrationStatus, NewDelivery};

/// The most events one request may carry.
pub const MAX_BATCH: usize = 10_000;

/// One event, or `{"events": [...]}`. A batch is all or nothing: the first invalid event is
/// named and nothing is stored.
pub fn parse_body(body: Value) -> Result<Vec<Event>, String> {
    let raw = match body {
        Value::Object(obj) if obj.contains_key("events") && obj.contains_key("type") => {
            return Err(
                "the body is both an event and a batch (`type` and `events`); send one event, or {\"events\": [...]}".into(),
            )
        }
        Value::Object(mut obj) if obj.contains_key("events") => {
            match obj.remove("events") {
                Some(Value::Array(items)) => items,
                _ => return Err("`events` must be an array of events".into()),
            }
        }
        obj @ Value::Object(_) => vec![obj],
        _ => return Err("the body must be an event object or {\"events\": [...]}".into()),
    };
    if raw.is_empty() {
        return Err("`events` is empty; send at least one event".into());
    }
    if raw.len() > MAX_BATCH {
        return Err(format!(
            "{} events in one request; at most {MAX_BATCH} are accepted, split the batch",
            raw.len()
        ));
    }
    let many = raw.len() > 1;
    raw.into_iter()
        .enumerate()
        .map(|(i, v)| {
            parse_event(v).map_err(|e| if many { format!("events[{i}]: {e}") } else { e })
        })
        .collect()
}

/// Whether a partner integration's feed carries this call: analytics takes every call of the
/// partner's tenants, billing every call made under a licence the partner sold.
fn in_feed(i: &Integration, event: &Event, tenant_partner: Option<&str>) -> bool {
    let Some(pid) = i.partner_id.as_deref() else {
        return false;
    };
    match i.valid.spec.feed.unwrap_or(Feed::Analytics) {
        Feed::Analytics => tenant_partner == Some(pid),
        Feed::Billing => {
            event.kind == EventKind::CallCompleted
                && crate::render::fields::str_at(&event.data, "license.partner_id") == Some(pid)
        }
    }
}

/// Routes an event to its tenant's integrations and to the partner feeds that carry it, and
/// serialises it once, at `now`. Batch integrations whose profile collects a window's calls get
/// the call queued for their next window; other batch integrations get a delivery held until
/// the window's boundary.
pub fn plan(
    event: Event,
    cache: &IntegrationCache,
    tenant_partner: Option<&str>,
    now: i64,
) -> IngestItem {
    let own = cache.for_tenant(&event.tenant_id);
    let partners = cache.partner_integrations();
    let mut deliveries = Vec::new();
    let mut batch = Vec::new();
    let feeds = partners
        .iter()
        .filter(|i| in_feed(i, &event, tenant_partner));
    for i in own.iter().chain(feeds) {
        let Some(trigger) = route(&event, &i.valid) else {
            continue;
        };
        let spec = &i.valid.spec;
        if spec.delivery.mode == DeliveryMode::Batch && spec.profile.collects() {
            batch.push(i.id.clone());
            continue;
        }
        deliveries.push(NewDelivery {
            id: crate::model::ids::new_id("dlv"),
            integration_id: i.id.clone(),
            trigger,
            ordered: i.valid.ordered(),
            held: i.status == IntegrationStatus::Disabled,
            defer: false,
            not_before: i.valid.held_until(now),
        });
    }
    IngestItem {
        body: event.canonical_json(),
        event,
        deliveries,
        batch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(id: &str) -> Value {
        json!({"id": id, "type": "ivr.input", "tenant_id": "t", "occurred_at": "2026-11-22T10:00:00Z",
               "call_id": "c", "data": {"dtmf": "1"}})
    }

    #[test]
    fn single_events_and_batches_parse() {
        assert_eq!(parse_body(ev("a")).map(|v| v.len()), Ok(1));
        assert_eq!(
            parse_body(json!({"events": [ev("a"), ev("b")]})).map(|v| v.len()),
            Ok(2)
        );
    }

    #[test]
    fn a_bad_event_fails_the_batch_and_is_named_by_index() {
        let mut bad = ev("b");
        bad["type"] = json!("call.exploded");
        let err = parse_body(json!({"events": [ev("a"), bad]}))
            .err()
            .unwrap_or_default();
        assert!(err.starts_with("events[1]:"), "{err}");
        assert!(parse_body(json!({"events": []})).is_err());
        assert!(parse_body(json!([1, 2])).is_err());
    }
}
