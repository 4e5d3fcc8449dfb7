//! `canonical`: the stored event envelope as ingested, with `delivery_id` in front.
//!
//! Privacy rules edit fields inside `data` only (`data.caller.number`, `data.local.email` …), so
//! the envelope's keys are always the same; `data` keeps whatever the source sent.

use serde_json::{Map, Value};

/// The `canonical` payload: `{delivery_id, id, type, tenant_id, occurred_at, call_id, data}`.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CanonicalPayload {
    /// `dlv_…`: this delivery, the same on every retry of it. Always present.
    pub delivery_id: String,
    /// The event's id, as the source (or callhook, for the events it makes) gave it.
    pub id: String,
    /// The event type: `call.state`, `call.completed`, `recording.completed`,
    /// `analysis.completed`, `ivr.input`, or an operational type (`integration.failing`,
    /// `integration.disabled`, `integration.recovered`, `delivery.exhausted`).
    #[serde(rename = "type")]
    pub kind: String,
    /// The tenant the event belongs to.
    pub tenant_id: String,
    /// RFC 3339 UTC with milliseconds (`2026-11-22T10:00:00.123Z`).
    pub occurred_at: String,
    /// The call the event is about. Sometimes present: absent on operational events, which are
    /// about an integration, not a call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// The event's `data` as received, privacy rules applied: its known fields are checked at
    /// ingest, unknown ones are kept.
    #[schema(value_type = Object)]
    pub data: Map<String, Value>,
}

/// The `template` payload: the JSON the integration's `template` makes of the canonical
/// payload. Its shape is the template's; it is always valid JSON.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[schema(value_type = Value)]
pub struct TemplatePayload(pub Value);
