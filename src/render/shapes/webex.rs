//! `webex-cdr` (seed 003): records in Webex Calling's Detailed Call History format, in a body of
//! `{"items": [records]}` — one record in real time, a window's records in batch mode (the
//! window's span and part then travel in headers, not in the body).
//!
//! Every key is always present except the five a privacy rule can remove ("Called number",
//! "Caller ID number", "Calling number", "User number", "User UUID"). Strings are `""` where the
//! call record does not know the value; the three durations are whole seconds. Times are UTC
//! with milliseconds (`2020-05-14T11:01:16.545Z`) or `""`.

/// The `webex-cdr` payload.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebexCdrPayload {
    /// The records: exactly one in real time; a window part's (at most 1000, maybe none) in
    /// batch mode. Always present.
    pub items: Vec<WebexCdrRecord>,
}

/// One call's record; the "user" fields describe the tenant's party (the callee of an inbound
/// call, the caller otherwise).
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebexCdrRecord {
    /// `Yes` or `No`.
    #[serde(rename = "Answer indicator")]
    pub answer_indicator: String,
    /// When the call was answered, or `""`.
    #[serde(rename = "Answer time")]
    pub answer_time: String,
    /// `true` or `false`, as a string.
    #[serde(rename = "Answered")]
    pub answered: String,
    /// The last key pressed in the auto attendant (last character of `dtmf`), or `""`.
    #[serde(rename = "Auto Attendant Key Pressed")]
    pub auto_attendant_key_pressed: String,
    /// `successful` when the call has recordings, else `""`.
    #[serde(rename = "Call Recording Result")]
    pub call_recording_result: String,
    /// `Success`, `Refusal` or `Failure`, from the answer and the hang-up cause.
    #[serde(rename = "Call outcome")]
    pub call_outcome: String,
    /// `Normal`, `UserBusy`, `NoAnswer`, `CallRejected`, `UnassignedNumber`, `NoUserResponse`,
    /// `DestinationOutOfOrder` or `NoRouteToDestination`.
    #[serde(rename = "Call outcome reason")]
    pub call_outcome_reason: String,
    /// `SIP_ENTERPRISE`, `SIP_INBOUND`, `SIP_INTERNATIONAL`, `SIP_NATIONAL` or `UNKNOWN`.
    #[serde(rename = "Call type")]
    pub call_type: String,
    /// The callee's name, or `""`.
    #[serde(rename = "Called line ID")]
    pub called_line_id: String,
    /// The callee's number, or `""`. Sometimes present: absent when removed by a privacy rule.
    #[serde(
        rename = "Called number",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub called_number: Option<String>,
    /// The number presented: the caller's for inbound calls, else the line's (`circuit.number`)
    /// or the caller's; `""` when unknown. Sometimes present: absent when removed by a privacy
    /// rule.
    #[serde(
        rename = "Caller ID number",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub caller_id_number: Option<String>,
    /// The caller's name, or `""`.
    #[serde(rename = "Calling line ID")]
    pub calling_line_id: String,
    /// The caller's number, or `""`. Sometimes present: absent when removed by a privacy rule.
    #[serde(
        rename = "Calling number",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub calling_number: Option<String>,
    /// The call's id.
    #[serde(rename = "Correlation ID")]
    pub correlation_id: String,
    /// `TERMINATING` for inbound calls, else `ORIGINATING`.
    #[serde(rename = "Direction")]
    pub direction: String,
    /// Talk time, whole seconds: `talk_ms`, else answer to release for an answered call, else
    /// 0.
    #[serde(rename = "Duration")]
    pub duration: i64,
    /// Time on hold, whole seconds (rounded down); 0 when unknown.
    #[serde(rename = "Hold Duration")]
    pub hold_duration: i64,
    /// The callee's country on `SIP_INTERNATIONAL` calls, else `""`.
    #[serde(rename = "International country")]
    pub international_country: String,
    /// The tenant's party's location, or `""`.
    #[serde(rename = "Location")]
    pub location: String,
    /// The tenant's id.
    #[serde(rename = "Org UUID")]
    pub org_uuid: String,
    /// Who referred the call (`referred_by`), or `""`.
    #[serde(rename = "Redirecting number")]
    pub redirecting_number: String,
    /// `Call Queue` when the call was queued, else `""`.
    #[serde(rename = "Queue Type")]
    pub queue_type: String,
    /// When the call ended, or `""`.
    #[serde(rename = "Release time")]
    pub release_time: String,
    /// A stable UUID (version 8) per tenant and event, for receivers to drop copies.
    #[serde(rename = "Report ID")]
    pub report_id: String,
    /// When the call ended (else when the event occurred).
    #[serde(rename = "Report time")]
    pub report_time: String,
    /// Ringing, whole seconds (rounded half up); 0 when unknown.
    #[serde(rename = "Ring duration")]
    pub ring_duration: i64,
    /// The call start's offset from UTC in minutes (`"-300"`), or `""` for a start in UTC.
    #[serde(rename = "Site timezone")]
    pub site_timezone: String,
    /// When the call started, or `""`.
    #[serde(rename = "Start time")]
    pub start_time: String,
    /// The call this one followed (`previous_call_id`), or `""`.
    #[serde(rename = "Transfer related call ID")]
    pub transfer_related_call_id: String,
    /// The tenant's party's name (for inbound calls, who answered if known), or `""`.
    #[serde(rename = "User")]
    pub user: String,
    /// The tenant's party's number, or `""`. Sometimes present: absent when removed by a privacy
    /// rule.
    #[serde(
        rename = "User number",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub user_number: Option<String>,
    /// `User`, `HuntGroup`, `Place` (a workspace's licence) or `""`.
    #[serde(rename = "User type")]
    pub user_type: String,
    /// The owning user's id, else the tenant's party's, or `""`. Sometimes present: absent when
    /// removed by a privacy rule.
    #[serde(rename = "User UUID", default, skip_serializing_if = "Option::is_none")]
    pub user_uuid: Option<String>,
}
