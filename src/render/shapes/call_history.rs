//! `call-history` (seed 001): `{"call": {"id", "tenant_code", "details": [detail]}}` with the
//! integration's `custom_data` merged at the top level. Fed by `analysis.completed`,
//! `ivr.input` and `call.unanswered`.
//!
//! Most values are copied from the event as the source sent them and are not checked at
//! ingest (any JSON, `null` when unknown); times are ISO 8601 with the source's offset. "Always
//! present" fields are inserted on every render and are `null` when unknown; "sometimes
//! present" ones depend on the integration's options or can be removed by a privacy rule.

use serde_json::{Map, Value};

/// The `call-history` payload.
///
/// Not `deny_unknown_fields`: the integration's `custom_data` keys sit beside `call`, and serde
/// refuses every key a flattened map takes when both are set.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct CallHistoryPayload {
    /// The call. Always present.
    pub call: CallHistoryCall,
    /// The integration's `custom_data`, merged at the top level (any key but `call`).
    #[serde(flatten)]
    pub custom_data: Map<String, Value>,
}

/// The call and its one detail record.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallHistoryCall {
    /// The event's call id.
    pub id: String,
    /// The tenant's id.
    pub tenant_code: String,
    /// Exactly one detail: the call the event is about.
    pub details: Vec<CallHistoryDetail>,
}

/// The call record: the CDR itself for `call.unanswered`, else the event's `data.call`
/// snapshot, with the event's analysis, DTMF and transcript.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallHistoryDetail {
    /// The event's call id.
    pub id: String,
    /// When dialling started. Always present; null when unknown.
    pub dial_starts_at: Option<String>,
    /// When the call was answered. Always present; null when unknown or unanswered.
    pub dial_answered_at: Option<String>,
    /// When the call ended. Always present; null when unknown.
    pub dial_ends_at: Option<String>,
    /// When the call entered a queue. Always present; null when unknown or never queued.
    pub queueing_starts_at: Option<String>,
    /// When the queue's call was answered. Always present; null when unknown.
    pub queueing_answered_at: Option<String>,
    /// When the call left the queue. Always present; null when unknown.
    pub queueing_ends_at: Option<String>,
    /// `OUTGOING_CALL`, `OUTGOING_TRANSFER`, `INCOMING_CALL`, `QUEUEING_CALL`, `EXTENSION`,
    /// `EXTENSION_GROUP`, `EXTENSION_TRANSFER`, `EXTENSION_GROUP_TRANSFER`, `PREDICTIVE_DIAL`,
    /// `AUTOMATIC_TRANSFER`, `AUTOMATIC_RECORD`, `READ_DTMF` or `INCOMING_CALL_USER`. Always
    /// present; null when the call has no type.
    pub call_type: Option<String>,
    /// The line's number (`circuit.number`): an outgoing call's origin. Always present; null
    /// when unknown.
    pub circuit_number: Option<Value>,
    /// The line's name. Always present; null when unknown.
    pub circuit_name: Option<Value>,
    /// The caller's number. Sometimes present: null for outgoing calls (whose origin is
    /// `circuit_number`) and when unknown; absent when removed by a privacy rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_number: Option<Value>,
    /// The callee's number. Sometimes present: null when unknown; absent when removed by a
    /// privacy rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_number: Option<Value>,
    /// The call this one followed (`previous_call_id`). Always present; null when none.
    pub previous_id: Option<Value>,
    /// The keys pressed (`data.dtmf`, else the call's). Always present; null when none.
    pub dtmf: Option<Value>,
    /// The speech analysis. Always present; null unless the event is `analysis.completed`.
    pub analysis: Option<CallHistoryAnalysis>,
    /// The analysed participants. Always present; `[]` when none.
    pub participants: Vec<CallHistoryParticipant>,
    /// The call's memos. Always present; `[]` when none.
    pub tags: Vec<CallHistoryTag>,
    /// The call's comments. Always present; `[]` when none.
    pub comments: Vec<CallHistoryComment>,
    /// Keywords spotted. Sometimes present: only with the `include_keywords` option (on by
    /// default); `[]` when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keywords: Option<Vec<CallHistoryKeyword>>,
    /// Each participant's phrases. Sometimes present: only with the `include_transcript`
    /// option (on by default); `[]` when none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phrases: Option<Vec<CallHistoryPhrases>>,
    /// The transcript's text. Sometimes present: only with the `include_transcript` option;
    /// then null unless the event is `analysis.completed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speech_recognition: Option<CallHistorySpeechRecognition>,
}

/// The call's speech analysis.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallHistoryAnalysis {
    /// The call's score. Always present; null when unknown.
    pub score: Option<f64>,
    /// Talk/listen ratio (`talk_listen_ratio`). Always present; null when unknown.
    pub tlr: Option<f64>,
    /// Turns taken. Always present; null when unknown.
    pub rally_count: Option<Value>,
    /// Times both parties spoke at once. Always present; null when unknown.
    pub overlap_count: Option<Value>,
    /// Silences. Always present; null when unknown.
    pub silence_count: Option<Value>,
    /// Silences as `[start, end]` seconds, as the source sent them. Always present; `[]` when
    /// none.
    pub silence_positions: Value,
    /// Overlaps as `[start, end]` seconds, as the source sent them. Always present; `[]` when
    /// none.
    pub overlap_positions: Value,
}

/// One analysed participant.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallHistoryParticipant {
    /// The participant's id. Always present; null when unknown.
    pub id: Option<Value>,
    /// `FROM` or `TO` (from the source's `role`). Always present; null for other roles.
    pub from_to: Option<String>,
    /// The participant's name. Always present; null when unknown.
    pub name: Option<Value>,
    /// The participant's company. Always present; null when unknown.
    pub company_name: Option<Value>,
    /// The participant's voice analysis. Always present.
    pub analysis: CallHistoryVoice,
}

/// A participant's voice analysis; every field always present, null when unknown.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallHistoryVoice {
    /// Fundamental frequency, Hz.
    pub f0: Option<Value>,
    /// Speech rate (`voice.speech_rate`).
    pub speechrate: Option<Value>,
    /// Pitch variance.
    pub variance: Option<Value>,
    /// Filler words spoken.
    pub filler_count: Option<Value>,
    /// Positive sentiment score.
    pub positive_score: Option<Value>,
    /// Negative sentiment score.
    pub negative_score: Option<Value>,
}

/// A memo on the call (`memos`); every field always present, null when unknown.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallHistoryTag {
    /// Who wrote it.
    pub created_by: Option<Value>,
    /// What kind of author (`SYSTEM`, `TENANT_USER` …), as the source sent it.
    pub creator_type: Option<Value>,
    /// The memo.
    pub value: Option<Value>,
}

/// A comment on the call; every field always present, null when unknown.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallHistoryComment {
    /// When it was written, ISO 8601 with offset; null when unknown or not a valid time.
    pub created_at: Option<String>,
    /// Who wrote it.
    pub created_by: Option<Value>,
    /// The comment.
    pub value: Option<Value>,
}

/// A keyword spotted in the call; every field always present, null when unknown.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallHistoryKeyword {
    /// When it was said, seconds into the call.
    pub starts_at: Option<Value>,
    /// Who said it.
    pub participant_id: Option<Value>,
    /// The keyword.
    pub value: Option<Value>,
}

/// One participant's phrases, raw and summarised.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallHistoryPhrases {
    /// Who spoke. Always present; null when unknown.
    pub participant_id: Option<Value>,
    /// Every phrase. Always present; `[]` when none.
    pub raw: Vec<CallHistoryPhrase>,
    /// The phrases of the summary. Always present; `[]` when none.
    pub summary: Vec<CallHistoryPhrase>,
}

/// One phrase; every field always present, null when unknown.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallHistoryPhrase {
    /// Its place in the call.
    pub order: Option<Value>,
    /// The text (`text`).
    pub phrase: Option<Value>,
    /// The text without filler words (`text_nofiller`).
    pub phrase_nofiller: Option<Value>,
    /// Start, seconds into the call.
    pub start_at: Option<Value>,
    /// End, seconds into the call.
    pub end_at: Option<Value>,
    /// Filler words in it (`filler_count`).
    pub filler_num: Option<Value>,
}

/// The transcript's text; both fields always present, null when unknown.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallHistorySpeechRecognition {
    /// The whole transcript (`transcript.raw`).
    pub raw: Option<Value>,
    /// The summary's transcript (`transcript.summary`).
    pub summary: Option<Value>,
}
