//! `recording.v1` and `recording.v2`: one flat object per finished recording (seed 000).
//!
//! v1 is v2 without `summary` and `userId`; both are declared from one field list
//! (`recording_payload!`) so that they cannot drift apart. The call's fields come from the
//! event's `data.call` snapshot, whose durations are checked at ingest; its parties, agent and
//! answer group are not, and are copied as the source sent them (any JSON).
//!
//! Two kinds of optional field: "always present" ones are written with `put_or_null` and are
//! `null` when unknown; "sometimes present" ones are written with `put` (left out when unknown)
//! or reached by a privacy rule that can remove them.

use serde_json::Value;

/// Declares a recording payload struct: the fields v1 and v2 share, then `$extra`.
macro_rules! recording_payload {
    ($(#[$meta:meta])* $name:ident { $($extra:tt)* }) => {
        $(#[$meta])*
        #[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// callhook's numeric id of the call: the first 53 bits of SHA-256(tenant, call id),
            /// stable for a call and exact in every JSON parser. Always present.
            pub id: u64,
            /// Signed download links of the recording's files, valid 30 minutes from the
            /// attempt that carries them (bare file ids when no link key is set). Always
            /// present; `[]` when the event lists no files.
            #[serde(rename = "fileUrls")]
            pub file_urls: Vec<String>,
            /// The caller's number (`data.call.caller.number`). Sometimes present: absent when
            /// unknown or removed by a privacy rule; a string when masked or truncated.
            #[serde(rename = "callerNumber", default, skip_serializing_if = "Option::is_none")]
            pub caller_number: Option<Value>,
            /// The callee's number (`data.call.callee.number`). Sometimes present: absent when
            /// unknown or removed by a privacy rule; a string when masked or truncated.
            #[serde(rename = "calleeNumber", default, skip_serializing_if = "Option::is_none")]
            pub callee_number: Option<Value>,
            /// When the call started, epoch milliseconds. Sometimes present: absent when unknown.
            #[serde(rename = "startTime", default, skip_serializing_if = "Option::is_none")]
            pub start_time: Option<i64>,
            /// When the call ended, epoch milliseconds. Sometimes present: absent when unknown.
            #[serde(rename = "endTime", default, skip_serializing_if = "Option::is_none")]
            pub end_time: Option<i64>,
            /// Queue wait, milliseconds. Always present; null when unknown.
            #[serde(rename = "waitTime")]
            pub wait_time: Option<u64>,
            /// Talk time, milliseconds. Sometimes present: absent when unknown.
            #[serde(rename = "talkTime", default, skip_serializing_if = "Option::is_none")]
            pub talk_time: Option<u64>,
            /// The agent's id (`data.call.agent.id`). Sometimes present: null when unknown,
            /// absent when a privacy rule on the local user id removes it.
            #[serde(rename = "agentId", default, skip_serializing_if = "Option::is_none")]
            pub agent_id: Option<Value>,
            /// The agent's name. Always present; null when unknown.
            #[serde(rename = "agentName")]
            pub agent_name: Option<Value>,
            /// The answer group's name. Always present; null when unknown.
            #[serde(rename = "answerGroupName")]
            pub answer_group_name: Option<Value>,
            /// The answer group's id. Always present; null when unknown.
            #[serde(rename = "answerGroupId")]
            pub answer_group_id: Option<Value>,
            /// Where the call was referred to. Always present; null when unknown.
            #[serde(rename = "referredTo")]
            pub referred_to: Option<Value>,
            /// Who referred the call. Always present; null when unknown.
            #[serde(rename = "referredBy")]
            pub referred_by: Option<Value>,
            /// `inbound` or `outbound` as the recorder saw it: the call's own direction, else
            /// outbound when the recorder is the caller. Sometimes present: absent when neither
            /// the call's direction nor the recorder is known.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub direction: Option<String>,
            /// Who recorded (`data.recorder_id`): an e-mail or a number. Sometimes present:
            /// absent when unknown or removed by a privacy rule.
            #[serde(rename = "recorderId", default, skip_serializing_if = "Option::is_none")]
            pub recorder_id: Option<Value>,
            $($extra)*
        }
    };
}

recording_payload! {
    /// The `recording.v1` payload: seed 000's first recording object.
    RecordingV1Payload {}
}

recording_payload! {
    /// The `recording.v2` payload: v1 with `summary` and `userId`.
    RecordingV2Payload {
        /// The recording's summary. Sometimes present: only with the `include_summary` option
        /// (on by default), and absent when the event has none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub summary: Option<String>,
        /// The owning user's id (`data.owner.user_id`, else the call's). Sometimes present:
        /// absent when unknown or removed by a privacy rule.
        #[serde(rename = "userId", default, skip_serializing_if = "Option::is_none")]
        pub user_id: Option<String>,
    }
}
