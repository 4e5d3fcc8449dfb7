//! `call-state` (seed 004): one flat object per state change of a user's call.
//!
//! States, directions and device types are UPPERCASE. The parties' ids, e-mails and numbers
//! are checked as strings at ingest; every one of them, and the device type, can be removed by
//! a privacy rule (numbers can also be masked or truncated, and stay strings).

/// The `call-state` payload.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallStatePayload {
    /// The source's sequence number of the state (`seq`). Always present: the renderer writes
    /// it with `put`, but ingest refuses a `call.state` without an unsigned `seq`.
    pub seq_num: u64,
    /// The call's id. Always present.
    pub call_id: String,
    /// When the state changed (the event's `occurred_at`), RFC 3339 UTC with milliseconds.
    /// Always present.
    pub timestamp: String,
    /// `TRYING`, `PROCEEDING`, `EARLY`, `CONFIRMED` or `TERMINATED`. Always present: written
    /// with `put`, but ingest refuses a `call.state` without a valid `state`.
    pub state: String,
    /// `CANCELLED`, `ANSWERED_ELSEWHERE`, `HANGUP` or `REJECTED`. Sometimes present: only on
    /// `TERMINATED`, and only when the source gave a reason.
    #[serde(
        rename = "termination-reason",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub termination_reason: Option<String>,
    /// `INCOMING` or `OUTGOING`. Sometimes present: absent when the source gave no direction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// The local user's e-mail. Sometimes present: absent when unknown or removed by a privacy
    /// rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_email: Option<String>,
    /// The local user's id. Sometimes present: absent when unknown or removed by a privacy
    /// rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_user_id: Option<String>,
    /// The local party's number. Sometimes present: absent when unknown or removed by a privacy
    /// rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_number: Option<String>,
    /// The local device: `MOBILE`, `SOFT`, `DESKTOP`, `FXS`, `EXTERNAL_PBX`, `FAX`,
    /// `VOICEMAIL`, `EXTERNAL`, `MOBILE_EXT`, `CONFERENCE`, `QUEUE`, `MOBILE_VOIP` or `WEB`.
    /// Sometimes present: absent when unknown or removed by a privacy rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_type: Option<String>,
    /// The remote party's e-mail. Sometimes present: absent when unknown or removed by a
    /// privacy rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_email: Option<String>,
    /// The remote party's user id. Sometimes present: absent when unknown or removed by a
    /// privacy rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_user_id: Option<String>,
    /// The remote party's number. Sometimes present: absent when unknown or removed by a
    /// privacy rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_number: Option<String>,
}
