//! Operational events: what callhook tells a tenant about its own integrations (one started
//! failing, was disabled, recovered; a delivery used up its retries). They are events like the
//! ingested ones — stored, routed to the tenant's integrations that subscribe to them, retried —
//! but made by callhook, with no call: their `data` is one of the typed shapes below.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::event::{Event, EventKind};

/// `data` of `integration.failing`, `integration.disabled` and `integration.recovered`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IntegrationAlert {
    /// The integration the event is about (never the one it is delivered to).
    pub integration_id: String,
    /// The same id in GUID form, as the console and seed 002's payloads show it.
    pub trigger_id: Option<String>,
    pub name: String,
    /// The endpoint's scheme, host and port only: its path and query may hold a credential.
    pub url: String,
    /// `active` or `disabled`, after the change.
    pub status: String,
    /// Why it was disabled (`integration.disabled` only).
    pub reason: Option<String>,
    /// The last attempt's error (not on `integration.recovered`).
    pub last_error: Option<String>,
    /// RFC 3339; when the current run of failures began.
    pub failing_since: Option<String>,
    pub consecutive_failures: u32,
}

/// `data` of `delivery.exhausted`: a delivery that will not be attempted again by itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryExhausted {
    pub integration_id: String,
    pub trigger_id: Option<String>,
    pub name: String,
    pub delivery_id: String,
    /// The event the delivery carried, and its type (the trigger it was routed under).
    pub event_id: String,
    pub event_type: String,
    pub call_id: Option<String>,
    pub attempts: u32,
    pub last_error: String,
    /// Other deliveries of this integration that used up their retries since the last
    /// `delivery.exhausted` about it, without an event of their own (one a minute at most).
    pub also_exhausted: u32,
}

/// An operational event of `tenant_id`, with an id of its own (`ntf_…`).
pub fn event(kind: EventKind, tenant_id: &str, data: &impl Serialize, now: i64) -> Event {
    debug_assert!(kind.is_operational());
    let data = match serde_json::to_value(data) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    Event {
        id: super::ids::new_id("ntf"),
        kind,
        tenant_id: tenant_id.to_string(),
        occurred_at_ms: now,
        call_id: String::new(),
        data,
    }
}

/// The integration an operational event is about: it is never delivered there, so an
/// integration that fails cannot feed itself events about its own failures.
pub fn subject(e: &Event) -> Option<&str> {
    if !e.kind.is_operational() {
        return None;
    }
    e.data.get("integration_id").and_then(Value::as_str)
}

/// An example `data` for each operational type (the integration test button, the catalogue).
pub fn sample(kind: EventKind) -> Value {
    let alert =
        |status: &str, reason: Option<&str>, error: Option<&str>, n: u32| IntegrationAlert {
            integration_id: "int_01jdqx8m4k2v3w5y6z7a8b9c0d".into(),
            trigger_id: super::ids::guid("int_01jdqx8m4k2v3w5y6z7a8b9c0d"),
            name: "CRM".into(),
            url: "https://crm.example.com".into(),
            status: status.into(),
            reason: reason.map(str::to_string),
            last_error: error.map(str::to_string),
            failing_since: (n > 0).then(|| "2026-11-22T10:00:00.000Z".to_string()),
            consecutive_failures: n,
        };
    let error = Some("status: the endpoint answered 503");
    let v = match kind {
        EventKind::IntegrationFailing => serde_json::to_value(alert("active", None, error, 1)),
        EventKind::IntegrationDisabled => serde_json::to_value(alert(
            "disabled",
            Some("20 consecutive failures"),
            error,
            20,
        )),
        EventKind::IntegrationRecovered => serde_json::to_value(alert("active", None, None, 0)),
        _ => serde_json::to_value(DeliveryExhausted {
            integration_id: "int_01jdqx8m4k2v3w5y6z7a8b9c0d".into(),
            trigger_id: super::ids::guid("int_01jdqx8m4k2v3w5y6z7a8b9c0d"),
            name: "CRM".into(),
            delivery_id: "dlv_01jdqx9a1b2c3d4e5f6g7h8j9k".into(),
            event_id: "pbx7-000123".into(),
            event_type: "call.completed".into(),
            call_id: Some("c-42".into()),
            attempts: 2,
            last_error: "status: the endpoint answered 503".into(),
            also_exhausted: 0,
        }),
    };
    v.unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operational_events_have_no_call_and_name_their_subject() {
        let e = event(
            EventKind::IntegrationFailing,
            "acme",
            &sample(EventKind::IntegrationFailing),
            0,
        );
        assert!(e.id.starts_with("ntf_"));
        assert_eq!(subject(&e), Some("int_01jdqx8m4k2v3w5y6z7a8b9c0d"));
        let json = e.canonical_json();
        assert!(!json.contains("call_id\":\"\""), "{json}");
        // Read back as stored: no call_id is fine for an operational event …
        let back =
            crate::model::event::parse_stored(serde_json::from_str(&json).unwrap_or_default());
        assert_eq!(back.map(|b| b.kind), Ok(EventKind::IntegrationFailing));
        // … but never from a source.
        let from_source =
            crate::model::event::parse_event(serde_json::from_str(&json).unwrap_or_default());
        assert!(from_source.is_err());
    }

    #[test]
    fn samples_match_their_types() {
        for k in EventKind::OPERATIONAL {
            let v = sample(k);
            let ok = if k == EventKind::DeliveryExhausted {
                serde_json::from_value::<DeliveryExhausted>(v).is_ok()
            } else {
                serde_json::from_value::<IntegrationAlert>(v).is_ok()
            };
            assert!(ok, "{k:?}");
        }
    }
}
