//! Payload profiles: which shape a delivery's payload takes, and which event types each shape
//! can carry. The shapes themselves are rendered in `render`.

use serde::{Deserialize, Serialize};

use crate::model::event::{Event, EventKind};

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub enum Profile {
    /// `{id, type, tenant_id, occurred_at, call_id, data}` as stored, plus `delivery_id`; the
    /// only profile that carries the operational events (which have no `call_id`).
    #[default]
    #[serde(rename = "canonical")]
    Canonical,
    /// Seed 000's recording object, with `summary` and `userId`.
    #[serde(rename = "recording.v2")]
    RecordingV2,
    /// Seed 000's first recording object.
    #[serde(rename = "recording.v1")]
    RecordingV1,
    /// Seed 001's call history with speech analysis.
    #[serde(rename = "call-history")]
    CallHistory,
    /// Seed 002's post-call CDR.
    #[serde(rename = "cdr")]
    Cdr,
    /// Seed 004's real-time call state.
    #[serde(rename = "call-state")]
    CallState,
    /// Seed 003's windowed CDR feed: `{feed, window, part, parts, items}`.
    #[serde(rename = "cdr-batch")]
    CdrBatch,
    /// Seed 003's records in Webex Calling's Detailed Call History format, as
    /// `{"items": [records]}`: one record in real time, a window's in batch mode.
    #[serde(rename = "webex-cdr")]
    WebexCdr,
    /// The integration's own `template`, filled from the canonical payload (privacy rules
    /// applied first).
    #[serde(rename = "template")]
    Template,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Canonical => "canonical",
            Profile::RecordingV2 => "recording.v2",
            Profile::RecordingV1 => "recording.v1",
            Profile::CallHistory => "call-history",
            Profile::Cdr => "cdr",
            Profile::CallState => "call-state",
            Profile::CdrBatch => "cdr-batch",
            Profile::WebexCdr => "webex-cdr",
            Profile::Template => "template",
        }
    }

    /// The event types a profile can render.
    pub fn feeds(self) -> &'static [EventKind] {
        use EventKind::*;
        match self {
            Profile::Canonical | Profile::Template => &EventKind::SUBSCRIBABLE,
            Profile::RecordingV2 | Profile::RecordingV1 => &[RecordingCompleted],
            Profile::CallHistory => &[AnalysisCompleted, IvrInput, CallUnanswered],
            Profile::Cdr => &[CallCompleted, CallUnanswered],
            Profile::CallState => &[CallState],
            Profile::CdrBatch | Profile::WebexCdr => &[CallCompleted, CallUnanswered],
        }
    }

    /// Refuses event types the profile cannot render.
    pub fn check_feeds(self, kinds: &[EventKind]) -> Result<(), String> {
        let feeds = self.feeds();
        match kinds.iter().find(|k| !feeds.contains(k)) {
            None => Ok(()),
            Some(k) => Err(format!(
                "profile `{}` cannot render `{}`; it takes {}",
                self.as_str(),
                k.as_str(),
                feeds
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// Whether, in batch mode, a window's calls are collected into one body (`items`), rather
    /// than each record held and sent on its own at the window's boundary.
    pub fn collects(self) -> bool {
        matches!(self, Profile::CdrBatch | Profile::WebexCdr)
    }

    /// Events a profile never sends although the type matches.
    pub fn accepts(self, event: &Event) -> bool {
        match self {
            // Seed 004 sends users' calls only, never an IVR, ACD or hunt-group number's.
            Profile::CallState => crate::model::fields::at(&event.data, "function").is_none(),
            _ => true,
        }
    }
}
