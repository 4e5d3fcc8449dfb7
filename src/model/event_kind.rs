//! The event types: the five a source sends, and the two callhook makes.

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
        }
    }

    /// Every kind, the internal `cdr.batch` included.
    pub const EVERY: [EventKind; 7] = [
        EventKind::CallState,
        EventKind::CallCompleted,
        EventKind::CallUnanswered,
        EventKind::RecordingCompleted,
        EventKind::AnalysisCompleted,
        EventKind::IvrInput,
        EventKind::CdrBatch,
    ];

    pub fn parse(s: &str) -> Option<EventKind> {
        Self::EVERY.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether sources may send this type (`call.unanswered` is derived, `cdr.batch` internal).
    pub fn is_ingestible(self) -> bool {
        !matches!(self, EventKind::CallUnanswered | EventKind::CdrBatch)
    }

    /// Whether an integration may subscribe to this type.
    pub fn is_subscribable(self) -> bool {
        self != EventKind::CdrBatch
    }
}
