//! The event types: the five a source sends, the two callhook makes from them, and the four
//! operational events callhook tells a tenant about its own integrations.

use serde::{Deserialize, Serialize};

/// What an integration can subscribe to: the five ingested event types and the derived
/// `call.unanswered` (a `call.completed` with `answered = false`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    PartialOrd,
    Ord,
    utoipa::ToSchema,
)]
pub enum EventKind {
    #[serde(rename = "call.state")]
    CallState,
    #[serde(rename = "call.completed")]
    CallCompleted,
    #[serde(rename = "call.unanswered")]
    CallUnanswered,
    #[serde(rename = "recording.completed")]
    RecordingCompleted,
    #[serde(rename = "analysis.completed")]
    AnalysisCompleted,
    #[serde(rename = "ivr.input")]
    IvrInput,
    /// A part of a batch feed (internal: made by callhook at a window boundary, never ingested
    /// or subscribed to).
    #[serde(rename = "cdr.batch")]
    CdrBatch,
    /// An integration of the tenant started failing (operational, made by callhook).
    #[serde(rename = "integration.failing")]
    IntegrationFailing,
    /// An integration of the tenant was disabled, automatically or by a person.
    #[serde(rename = "integration.disabled")]
    IntegrationDisabled,
    /// A failing integration of the tenant delivered again.
    #[serde(rename = "integration.recovered")]
    IntegrationRecovered,
    /// A delivery of the tenant's used up its retries (or its endpoint is gone).
    #[serde(rename = "delivery.exhausted")]
    DeliveryExhausted,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::CallState,
        EventKind::CallCompleted,
        EventKind::CallUnanswered,
        EventKind::RecordingCompleted,
        EventKind::AnalysisCompleted,
        EventKind::IvrInput,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::CallState => "call.state",
            EventKind::CallCompleted => "call.completed",
            EventKind::CallUnanswered => "call.unanswered",
            EventKind::RecordingCompleted => "recording.completed",
            EventKind::AnalysisCompleted => "analysis.completed",
            EventKind::IvrInput => "ivr.input",
            EventKind::CdrBatch => "cdr.batch",
            EventKind::IntegrationFailing => "integration.failing",
            EventKind::IntegrationDisabled => "integration.disabled",
            EventKind::IntegrationRecovered => "integration.recovered",
            EventKind::DeliveryExhausted => "delivery.exhausted",
        }
    }

    /// The operational events: about the tenant's integrations, not about calls.
    pub const OPERATIONAL: [EventKind; 4] = [
        EventKind::IntegrationFailing,
        EventKind::IntegrationDisabled,
        EventKind::IntegrationRecovered,
        EventKind::DeliveryExhausted,
    ];

    /// What an integration may subscribe to: the call events and the operational ones.
    pub const SUBSCRIBABLE: [EventKind; 10] = [
        EventKind::CallState,
        EventKind::CallCompleted,
        EventKind::CallUnanswered,
        EventKind::RecordingCompleted,
        EventKind::AnalysisCompleted,
        EventKind::IvrInput,
        EventKind::IntegrationFailing,
        EventKind::IntegrationDisabled,
        EventKind::IntegrationRecovered,
        EventKind::DeliveryExhausted,
    ];

    /// Every kind, the internal `cdr.batch` included.
    pub const EVERY: [EventKind; 11] = [
        EventKind::CallState,
        EventKind::CallCompleted,
        EventKind::CallUnanswered,
        EventKind::RecordingCompleted,
        EventKind::AnalysisCompleted,
        EventKind::IvrInput,
        EventKind::CdrBatch,
        EventKind::IntegrationFailing,
        EventKind::IntegrationDisabled,
        EventKind::IntegrationRecovered,
        EventKind::DeliveryExhausted,
    ];

    pub fn parse(s: &str) -> Option<EventKind> {
        Self::EVERY.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether sources may send this type (`call.unanswered` is derived, `cdr.batch` internal,
    /// the operational events callhook's own).
    pub fn is_ingestible(self) -> bool {
        !matches!(self, EventKind::CallUnanswered | EventKind::CdrBatch) && !self.is_operational()
    }

    /// Whether this is an operational event (about an integration, not a call).
    pub fn is_operational(self) -> bool {
        Self::OPERATIONAL.contains(&self)
    }

    /// Whether an integration may subscribe to this type.
    pub fn is_subscribable(self) -> bool {
        self != EventKind::CdrBatch
    }
}
