//! Ingest: request bodies become validated events, each with the deliveries routing assigns it.
//! Pure: the API handler stores the result and hands the ready deliveries to the dispatcher.

pub mod accept;
pub mod freeswitch;
pub mod from_states;

use serde_json::Value;

use crate::model::event::{parse_event, Event};

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
